//! [T.125 7] Disconnect Provider Ultimatum reasons.

use super::CodeEntry;

pub static ROWS: &[CodeEntry] = &[CodeEntry {
    code: 3,
    name: "rn-provider-initiated",
    meaning: "provider initiated",
    section: "MS-RDPBCGR 2.2.2.3",
}];
