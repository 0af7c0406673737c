//! `rdptrace replay`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {}

pub fn run(args: ReplayArgs) -> ExitCode {
    let _ = args;
    crate::cli::error("replay is not available yet")
}
