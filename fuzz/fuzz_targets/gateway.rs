//! `cargo fuzz run gateway`: see `rdptrace::fuzzing::gateway` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdptrace::fuzzing::gateway(data);
});
