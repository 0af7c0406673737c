//! [RFC 8446 6] and [RFC 5246 7.2] TLS alert descriptions.

use super::CodeEntry;

pub static ROWS: &[CodeEntry] = &[CodeEntry {
    code: 40,
    name: "handshake_failure",
    meaning: "handshake failure",
    section: "RFC 8446 6",
}];
