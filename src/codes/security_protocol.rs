//! [MS-RDPBCGR 2.2.1.1.1] security protocol flags.

use ironrdp_pdu::nego::SecurityProtocol;

use super::CodeEntry;

const S: &str = "MS-RDPBCGR 2.2.1.1.1";

/// The flags as the `u32` of requestedProtocols / selectedProtocol, from ironrdp's [`SecurityProtocol`] (whose
/// empty set is PROTOCOL_RDP).
pub const PROTOCOL_RDP: u32 = SecurityProtocol::empty().bits();
pub const PROTOCOL_SSL: u32 = SecurityProtocol::SSL.bits();
pub const PROTOCOL_HYBRID: u32 = SecurityProtocol::HYBRID.bits();
pub const PROTOCOL_RDSTLS: u32 = SecurityProtocol::RDSTLS.bits();
pub const PROTOCOL_HYBRID_EX: u32 = SecurityProtocol::HYBRID_EX.bits();
pub const PROTOCOL_RDSAAD: u32 = SecurityProtocol::RDSAAD.bits();

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
