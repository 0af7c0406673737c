//! `cargo fuzz run capture`: see `rdptrace::fuzzing::capture` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdptrace::fuzzing::capture(data);
});
