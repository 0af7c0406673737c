//! `cargo fuzz run replay_threads`: see `rdptrace::fuzzing::replay_threads` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = rdptrace::fuzzing::replay_threads(data) {
        panic!("{e}");
    }
});
