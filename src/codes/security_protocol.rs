//! [MS-RDPBCGR 2.2.1.1.1] security protocol flags.

use super::CodeEntry;

// [2.2.1.1.1] requestedProtocols / selectedProtocol flags.
pub const PROTOCOL_RDP: u32 = 0x0000_0000;
pub const PROTOCOL_SSL: u32 = 0x0000_0001;
pub const PROTOCOL_HYBRID: u32 = 0x0000_0002;
pub const PROTOCOL_RDSTLS: u32 = 0x0000_0004;
pub const PROTOCOL_HYBRID_EX: u32 = 0x0000_0008;
pub const PROTOCOL_RDSAAD: u32 = 0x0000_0010;

const S: &str = "MS-RDPBCGR 2.2.1.1.1";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: PROTOCOL_RDP,
        name: "PROTOCOL_RDP",
        meaning: "standard RDP security",
        section: S,
    },
    CodeEntry {
        code: PROTOCOL_SSL,
        name: "PROTOCOL_SSL",
        meaning: "TLS",
        section: S,
    },
    CodeEntry {
        code: PROTOCOL_HYBRID,
        name: "PROTOCOL_HYBRID",
        meaning: "CredSSP",
        section: S,
    },
    CodeEntry {
        code: PROTOCOL_RDSTLS,
        name: "PROTOCOL_RDSTLS",
        meaning: "RDSTLS",
        section: S,
    },
    CodeEntry {
        code: PROTOCOL_HYBRID_EX,
        name: "PROTOCOL_HYBRID_EX",
        meaning: "CredSSP with early user authorization",
        section: S,
    },
    CodeEntry {
        code: PROTOCOL_RDSAAD,
        name: "PROTOCOL_RDSAAD",
        meaning: "RDS AAD authentication",
        section: S,
    },
];
