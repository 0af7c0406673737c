//! `cargo fuzz run tls_records`: see `rdptrace::fuzzing::tls_records` for what the input stands for.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdptrace::fuzzing::tls_records(data);
});
