//! [2.2.10.2] Early User Authorization Result PDU: authorizationResult values.

use super::CodeEntry;

// [2.2.10.2] authorizationResult values.
pub const AUTHZ_SUCCESS: u32 = 0x0000_0000;
pub const AUTHZ_ACCESS_DENIED: u32 = 0x0000_0005;

const S: &str = "MS-RDPBCGR 2.2.10.2";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: AUTHZ_SUCCESS,
        name: "AUTHZ_SUCCESS",
        meaning: "the user may access the server",
        section: S,
    },
    CodeEntry {
        code: AUTHZ_ACCESS_DENIED,
        name: "AUTHZ_ACCESS_DENIED",
        meaning: "the user may not access the server",
        section: S,
    },
];
