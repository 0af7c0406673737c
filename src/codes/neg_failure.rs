//! [2.2.1.2.2] RDP_NEG_FAILURE failureCode values.

use super::CodeEntry;

const S: &str = "MS-RDPBCGR 2.2.1.2.2";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0000_0001,
        name: "SSL_REQUIRED_BY_SERVER",
        meaning: "the server requires TLS or CredSSP",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0002,
        name: "SSL_NOT_ALLOWED_BY_SERVER",
        meaning: "the server only allows standard RDP security",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0003,
        name: "SSL_CERT_NOT_ON_SERVER",
        meaning: "the server has no usable certificate for TLS",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0004,
        name: "INCONSISTENT_FLAGS",
        meaning: "the requested protocols contradict the security already in effect",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0005,
        name: "HYBRID_REQUIRED_BY_SERVER",
        meaning: "the server requires CredSSP (network level authentication)",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0006,
        name: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
        meaning: "the server requires TLS with a client certificate",
        section: S,
    },
];
