//! `cargo fuzz run capture_readings`: see `rdptrace::fuzzing::capture_readings` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = rdptrace::fuzzing::capture_readings(data) {
        panic!("{e}");
    }
});
