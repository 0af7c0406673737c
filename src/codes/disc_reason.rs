//! mstsc disconnect reasons (discReason) and extended disconnect reasons.

use super::CodeEntry;

pub static ROWS: &[CodeEntry] = &[CodeEntry {
    code: 0x904,
    name: "socket closed",
    meaning: "socket closed",
    section: "IMsTscAxEvents::OnDisconnected",
}];

pub static EXTENDED_ROWS: &[CodeEntry] = &[CodeEntry {
    code: 0x7,
    name: "exDiscReasonServerDeniedConnection",
    meaning: "server denied the connection",
    section: "ExtendedDisconnectReasonCode",
}];
