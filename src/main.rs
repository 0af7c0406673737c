#![forbid(unsafe_code)]

use std::process::ExitCode;

/// See ARCHITECTURE.md (`src/main.rs`): frees across threads, in a threaded replay, cost glibc its arena locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    rdptrace::cli::main()
}
