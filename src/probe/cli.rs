//! `rdptrace probe`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {}

pub fn run(args: ProbeArgs) -> ExitCode {
    let _ = args;
    crate::cli::error("probe is not available yet")
}
