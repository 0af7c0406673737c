//! [T.125] 7 (part 4) Reason values of the MCS Disconnect Provider Ultimatum ([2.2.2.3]; [4.2.3] says which
//! ones RDP uses: rn-provider-initiated for an administrator's disconnect, rn-user-requested for a user's).

use super::CodeEntry;

// [T.125] 7 the Reason values rdptrace names in its own code (one byte on the wire).
pub const RN_PROVIDER_INITIATED: u8 = 1;
pub const RN_USER_REQUESTED: u8 = 3;

const S: &str = "T.125 7";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0,
        name: "rn-domain-disconnected",
        meaning: "the MCS domain was disconnected",
        section: S,
    },
    CodeEntry {
        code: RN_PROVIDER_INITIATED as u32,
        name: "rn-provider-initiated",
        meaning: "the provider (an administrator, in RDP) ended the connection",
        section: S,
    },
    CodeEntry {
        code: 2,
        name: "rn-token-purged",
        meaning: "a token was purged",
        section: S,
    },
    CodeEntry {
        code: RN_USER_REQUESTED as u32,
        name: "rn-user-requested",
        meaning: "the user asked to disconnect",
        section: S,
    },
    CodeEntry {
        code: 4,
        name: "rn-channel-purged",
        meaning: "a channel was purged",
        section: S,
    },
];
