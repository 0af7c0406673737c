//! `finalization` phase: [2.2.1.14] - [2.2.1.22] Synchronize, Control (Cooperate, Request Control, Granted
//! Control), Persistent Key List, Font List and Font Map.

use super::Dissector;
use crate::pdu::PduInfo;
use crate::trace::{PhaseName, Side};
use crate::wire::Reader;

/// [2.2.8.1.1.1.2] pduType2 values of the finalization PDUs.
pub const PDUTYPE2_CONTROL: u8 = 20;
pub const PDUTYPE2_SYNCHRONIZE: u8 = 31;
pub const PDUTYPE2_FONTLIST: u8 = 39;
pub const PDUTYPE2_FONTMAP: u8 = 40;
pub const PDUTYPE2_BITMAPCACHE_PERSISTENT_LIST: u8 = 43;

/// [2.2.1.15.1] action values.
pub fn control_action_name(action: u16) -> &'static str {
    match action {
        0x0001 => "CTRLACTION_REQUEST_CONTROL",
        0x0002 => "CTRLACTION_GRANTED_CONTROL",
        0x0003 => "CTRLACTION_DETACH",
        0x0004 => "CTRLACTION_COOPERATE",
        _ => "unknown action",
    }
}

pub(super) fn share_data(
    d: &mut Dissector,
    from: Side,
    frame_len: usize,
    pdu_type2: u8,
    body: &[u8],
) {
    if d.trace.current() < PhaseName::Finalization {
        d.enter(PhaseName::Finalization);
    }
    let (name, summary, info) = match pdu_type2 {
        PDUTYPE2_SYNCHRONIZE => ("Synchronize", String::new(), PduInfo::Synchronize),
        PDUTYPE2_CONTROL => {
            let action = Reader::new(body).u16_le("action").unwrap_or(0);
            (
                "Control",
                control_action_name(action).to_owned(),
                PduInfo::Control { action },
            )
        }
        PDUTYPE2_FONTLIST => ("Font List", String::new(), PduInfo::FontList),
        PDUTYPE2_FONTMAP => ("Font Map", String::new(), PduInfo::FontMap),
        _ => (
            "Persistent Key List",
            String::new(),
            PduInfo::PersistentKeyList,
        ),
    };
    d.pdu(from, frame_len, name, summary, info);
    if pdu_type2 == PDUTYPE2_FONTMAP {
        d.state.font_map_seen = true;
        // [1.3.1.1] The Font Map PDU ends the connection sequence.
        d.enter(PhaseName::Active);
    }
}
