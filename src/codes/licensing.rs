//! [MS-RDPBCGR 2.2.1.12.1.3] licensing error codes and state transitions.

use super::CodeEntry;

pub static ERROR_ROWS: &[CodeEntry] = &[CodeEntry {
    code: 0x07,
    name: "STATUS_VALID_CLIENT",
    meaning: "valid client",
    section: "MS-RDPBCGR 2.2.1.12.1.3",
}];

pub static TRANSITION_ROWS: &[CodeEntry] = &[CodeEntry {
    code: 0x02,
    name: "ST_NO_TRANSITION",
    meaning: "no transition",
    section: "MS-RDPBCGR 2.2.1.12.1.3",
}];
