//! `rdptrace serve`, `demo` and `scenarios`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

pub fn serve(args: ServeArgs) -> ExitCode {
    let _ = args;
    crate::cli::error("serve is not available yet")
}

pub fn demo(args: DemoArgs) -> ExitCode {
    let _ = args;
    crate::cli::error("demo is not available yet")
}

pub fn scenarios() -> ExitCode {
    crate::cli::error("scenarios is not available yet")
}
