//! `channel_join` phase: [2.2.1.5] Erect Domain Request, [2.2.1.6] / [2.2.1.7] Attach User Request and
//! Confirm, [2.2.1.8] / [2.2.1.9] Channel Join Request and Confirm ([T.125] PER, ALIGNED).

use super::Dissector;
use super::mcs_connect::mcs_result_name;
use crate::pdu::PduInfo;
use crate::trace::Fact;
use crate::trace::{EventKind, Side};
use crate::wire::{Reader, WireResult};

/// [T.125] DomainMCSPDU choices.
pub const ERECT_DOMAIN_REQUEST: u8 = 1;
pub const ATTACH_USER_REQUEST: u8 = 10;
pub const ATTACH_USER_CONFIRM: u8 = 11;
pub const CHANNEL_JOIN_REQUEST: u8 = 14;
pub const CHANNEL_JOIN_CONFIRM: u8 = 15;

/// [T.125] user ids are sent as offsets from 1001.
const BASE_CHANNEL_ID: u16 = 1001;

/// Decodes one domain PDU: its name, summary and content (facts of the connection are noted on the way).
fn decode(d: &mut Dissector, r: &mut Reader<'_>) -> WireResult<(&'static str, String, PduInfo)> {
    let choice = r.u8("DomainMCSPDU choice")?;
    Ok(match choice >> 2 {
        ERECT_DOMAIN_REQUEST => (
            "MCS Erect Domain Request",
            String::new(),
            PduInfo::ErectDomainRequest,
        ),
        ATTACH_USER_REQUEST => (
            "MCS Attach User Request",
            String::new(),
            PduInfo::AttachUserRequest,
        ),
        ATTACH_USER_CONFIRM => {
            let result = r.u8("result")?;
            let user_id = if choice & 0x02 != 0 && r.remaining() >= 2 {
                Some(r.u16_be("initiator")?.wrapping_add(BASE_CHANNEL_ID))
            } else {
                None
            };
            if let Some(id) = user_id {
                d.state.user_channel = Some(id);
                d.trace.fact(Fact::UserChannel, id);
            }
            if result != 0 {
                d.trace
                    .fact(Fact::AttachUserResult, mcs_result_name(result));
            }
            (
                "MCS Attach User Confirm",
                format!(
                    "{}{}",
                    mcs_result_name(result),
                    user_id
                        .map(|id| format!(", user id {id}"))
                        .unwrap_or_default()
                ),
                PduInfo::AttachUserConfirm { result, user_id },
            )
        }
        CHANNEL_JOIN_REQUEST => {
            let user_id = r.u16_be("initiator")?.wrapping_add(BASE_CHANNEL_ID);
            let channel_id = r.u16_be("channelId")?;
            (
                "MCS Channel Join Request",
                format!("channel {channel_id}"),
                PduInfo::ChannelJoinRequest {
                    user_id,
                    channel_id,
                },
            )
        }
        _ => {
            let result = r.u8("result")?;
            r.u16_be("initiator")?;
            let requested = r.u16_be("requested")?;
            let channel_id = if r.remaining() >= 2 {
                r.u16_be("channelId")?
            } else {
                requested
            };
            let joined = d.trace.current_facts_list(Fact::JoinedChannels);
            if result == 0 {
                d.trace.fact(
                    Fact::JoinedChannels,
                    format!(
                        "{joined}{}{channel_id}",
                        if joined.is_empty() { "" } else { ", " }
                    ),
                );
            } else {
                d.trace.fact(
                    Fact::ChannelJoinResult,
                    format!("{channel_id}: {}", mcs_result_name(result)),
                );
            }
            (
                "MCS Channel Join Confirm",
                format!("channel {channel_id}, {}", mcs_result_name(result)),
                PduInfo::ChannelJoinConfirm { result, channel_id },
            )
        }
    })
}

pub(super) fn domain_pdu(d: &mut Dissector, from: Side, frame_len: usize, mcs: &[u8], base: usize) {
    let decoded = decode(d, &mut Reader::with_base(mcs, base));
    match decoded {
        Ok((name, summary, info)) => d.pdu(from, frame_len, name, summary, info),
        Err(e) => {
            d.trace.record_event(
                d.now,
                EventKind::ProtocolError {
                    from,
                    pdu: "MCS domain PDU".to_owned(),
                    offset: Some(e.offset),
                    detail: e.what.to_owned(),
                },
            );
            d.pdu(
                from,
                frame_len,
                "MCS domain PDU",
                format!("does not decode: {e}"),
                PduInfo::Undecoded {
                    detail: e.what.to_owned(),
                    offset: Some(e.offset),
                },
            );
        }
    }
}
