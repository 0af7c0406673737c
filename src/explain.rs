//! `rdptrace explain`: an mstsc pair, or one code, explained offline from the tables in [`crate::codes`].

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The mstsc "Error code" (discReason), then the "Extended error code": `0x904 0x7`.
    pub codes: Vec<String>,
}

pub fn run(args: ExplainArgs) -> ExitCode {
    let _ = args;
    crate::cli::error("explain is not available yet")
}
