//! [MS-RDPBCGR 2.2.1.2.2] RDP_NEG_FAILURE failureCode.

use super::CodeEntry;

pub static ROWS: &[CodeEntry] = &[CodeEntry {
    code: 0x01,
    name: "SSL_REQUIRED_BY_SERVER",
    meaning: "server requires TLS",
    section: "MS-RDPBCGR 2.2.1.2.2",
}];
