//! `cargo fuzz run targets_file`: see `rdptrace::fuzzing::targets_file` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdptrace::fuzzing::targets_file(data);
});
