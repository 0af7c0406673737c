//! [MS-RDPBCGR 2.2.1.1.1] security protocol flags.

use super::CodeEntry;

const S: &str = "MS-RDPBCGR 2.2.1.1.1";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0000_0000,
        name: "PROTOCOL_RDP",
        meaning: "standard RDP security",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0001,
        name: "PROTOCOL_SSL",
        meaning: "TLS",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0002,
        name: "PROTOCOL_HYBRID",
        meaning: "CredSSP",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0004,
        name: "PROTOCOL_RDSTLS",
        meaning: "RDSTLS",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0008,
        name: "PROTOCOL_HYBRID_EX",
        meaning: "CredSSP with early user authorization",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0010,
        name: "PROTOCOL_RDSAAD",
        meaning: "RDS AAD authentication",
        section: S,
    },
];
