//! [2.2.1.2.2] RDP_NEG_FAILURE failureCode values.

use super::CodeEntry;

// [2.2.1.2.2] failureCode values, as the rows below name them.
pub const SSL_REQUIRED_BY_SERVER: u32 = 0x0000_0001;
pub const SSL_NOT_ALLOWED_BY_SERVER: u32 = 0x0000_0002;
pub const SSL_CERT_NOT_ON_SERVER: u32 = 0x0000_0003;
pub const INCONSISTENT_FLAGS: u32 = 0x0000_0004;
pub const HYBRID_REQUIRED_BY_SERVER: u32 = 0x0000_0005;
pub const SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER: u32 = 0x0000_0006;

const S: &str = "MS-RDPBCGR 2.2.1.2.2";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: SSL_REQUIRED_BY_SERVER,
        name: "SSL_REQUIRED_BY_SERVER",
        meaning: "the server requires TLS or CredSSP",
        section: S,
    },
    CodeEntry {
        code: SSL_NOT_ALLOWED_BY_SERVER,
        name: "SSL_NOT_ALLOWED_BY_SERVER",
        meaning: "the server only allows standard RDP security",
        section: S,
    },
    CodeEntry {
        code: SSL_CERT_NOT_ON_SERVER,
        name: "SSL_CERT_NOT_ON_SERVER",
        meaning: "the server has no usable certificate for TLS",
        section: S,
    },
    CodeEntry {
        code: INCONSISTENT_FLAGS,
        name: "INCONSISTENT_FLAGS",
        meaning: "the requested protocols contradict the security already in effect",
        section: S,
    },
    CodeEntry {
        code: HYBRID_REQUIRED_BY_SERVER,
        name: "HYBRID_REQUIRED_BY_SERVER",
        meaning: "the server requires CredSSP (network level authentication)",
        section: S,
    },
    CodeEntry {
        code: SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER,
        name: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
        meaning: "the server requires TLS with a client certificate",
        section: S,
    },
];
