//! `cargo fuzz run rdp_file`: see `rdptrace::fuzzing::rdp_file` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdptrace::fuzzing::rdp_file(data);
});
