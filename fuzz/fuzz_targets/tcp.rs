//! `cargo fuzz run tcp`: see `rdptrace::fuzzing::tcp` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdptrace::fuzzing::tcp(data);
});
