//! `cargo fuzz run rpc`: see `rdptrace::fuzzing::rpc` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdptrace::fuzzing::rpc(data);
});
