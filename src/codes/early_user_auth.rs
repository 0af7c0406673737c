//! [2.2.10.2] Early User Authorization Result PDU: authorizationResult values.

use super::CodeEntry;

const S: &str = "MS-RDPBCGR 2.2.10.2";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0000_0000,
        name: "AUTHZ_SUCCESS",
        meaning: "the user may access the server",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0005,
        name: "AUTHZ_ACCESS_DENIED",
        meaning: "the user may not access the server",
        section: S,
    },
];
