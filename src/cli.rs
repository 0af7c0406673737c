//! The command line. `main.rs` calls [`main`].

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
