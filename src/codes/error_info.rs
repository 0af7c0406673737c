//! [MS-RDPBCGR 2.2.5.1.1] errorInfo values of the Set Error Info PDU.

use super::CodeEntry;

const S: &str = "MS-RDPBCGR 2.2.5.1.1";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0000_0000,
        name: "ERRINFO_NONE",
        meaning: "no error",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0007,
        name: "ERRINFO_SERVER_DENIED_CONNECTION",
        meaning: "server denied the connection",
        section: S,
    },
];
