//! `cargo fuzz run probe_frames`: see `rdptrace::fuzzing::probe_frames` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdptrace::fuzzing::probe_frames(data);
});
