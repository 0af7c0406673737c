//! [2.2.1.12.1.3] Licensing Error Message: dwErrorCode and dwStateTransition values ([MS-RDPELE] 2.2.2.8
//! uses the same message and defers to this section for the values).

use super::CodeEntry;

// [2.2.1.12.1.3] the dwErrorCode and dwStateTransition values rdptrace names in its own code.
pub const ERR_NO_LICENSE_SERVER: u32 = 0x0000_0006;
pub const STATUS_VALID_CLIENT: u32 = 0x0000_0007;
pub const ERR_INVALID_CLIENT: u32 = 0x0000_0008;
pub const ST_TOTAL_ABORT: u32 = 0x0000_0001;
pub const ST_NO_TRANSITION: u32 = 0x0000_0002;

const S: &str = "MS-RDPBCGR 2.2.1.12.1.3";

/// dwErrorCode values (some sent by the client, some by the server, ERR_INVALID_MAC by both).
pub static ERROR_ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0000_0001,
        name: "ERR_INVALID_SERVER_CERTIFICATE",
        meaning: "the client could not authenticate the server certificate",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0002,
        name: "ERR_NO_LICENSE",
        meaning: "the client has no license to present",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0003,
        name: "ERR_INVALID_MAC",
        meaning: "a licensing message failed its MAC check",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0004,
        name: "ERR_INVALID_SCOPE",
        meaning: "invalid licensing scope",
        section: S,
    },
    CodeEntry {
        code: ERR_NO_LICENSE_SERVER,
        name: "ERR_NO_LICENSE_SERVER",
        meaning: "no license server available",
        section: S,
    },
    CodeEntry {
        code: STATUS_VALID_CLIENT,
        name: "STATUS_VALID_CLIENT",
        meaning: "the client is licensed (licensing succeeded)",
        section: S,
    },
    CodeEntry {
        code: ERR_INVALID_CLIENT,
        name: "ERR_INVALID_CLIENT",
        meaning: "the server rejected the client's licensing data",
        section: S,
    },
    CodeEntry {
        code: 0x0000_000B,
        name: "ERR_INVALID_PRODUCTID",
        meaning: "invalid product id",
        section: S,
    },
    CodeEntry {
        code: 0x0000_000C,
        name: "ERR_INVALID_MESSAGE_LEN",
        meaning: "invalid licensing message length",
        section: S,
    },
];

/// dwStateTransition values ([MS-RDPELE] 3.1.5.2 says how each is acted on).
pub static TRANSITION_ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: ST_TOTAL_ABORT,
        name: "ST_TOTAL_ABORT",
        meaning: "abort the licensing protocol",
        section: S,
    },
    CodeEntry {
        code: ST_NO_TRANSITION,
        name: "ST_NO_TRANSITION",
        meaning: "stay in the current state (with STATUS_VALID_CLIENT: licensing is done)",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0003,
        name: "ST_RESET_PHASE_TO_START",
        meaning: "restart the licensing protocol",
        section: S,
    },
    CodeEntry {
        code: 0x0000_0004,
        name: "ST_RESEND_LAST_MESSAGE",
        meaning: "resend the last licensing message",
        section: S,
    },
];
