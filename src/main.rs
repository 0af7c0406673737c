#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    rdptrace::cli::main()
}
