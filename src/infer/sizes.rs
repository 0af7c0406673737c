//! The sizes of the PDUs of the connection sequence whose length does not depend on the session, taken from
//! their encoders (ironrdp-pdu) rather than written down: what a TLS record of that plaintext length most
//! likely holds.

use std::borrow::Cow;
use std::sync::OnceLock;

use ironrdp_pdu::mcs::{
    AttachUserConfirm, AttachUserRequest, ChannelJoinConfirm, ChannelJoinRequest,
    DisconnectProviderUltimatum, DisconnectReason, ErectDomainPdu, SendDataIndication,
    SendDataRequest,
};
use ironrdp_pdu::rdp::finalization_messages::{
    ControlAction, ControlPdu, FontPdu, SequenceFlags, SynchronizePdu,
};
use ironrdp_pdu::rdp::headers::{
    CompressionFlags, ShareControlHeader, ShareControlPdu, ShareDataHeader, ShareDataPdu,
    StreamPriority,
};
use ironrdp_pdu::rdp::server_error_info::{
    ErrorInfo, ProtocolIndependentCode, ServerSetErrorInfoPdu,
};
use ironrdp_pdu::x224::X224;

/// Plaintext lengths, in bytes, of whole frames (TPKT header included) of fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// [2.2.1.5] MCS Erect Domain Request.
    pub erect_domain: u32,
    /// [2.2.1.6] MCS Attach User Request.
    pub attach_user_request: u32,
    /// [2.2.1.7] MCS Attach User Confirm.
    pub attach_user_confirm: u32,
    /// [2.2.1.8] MCS Channel Join Request.
    pub channel_join_request: u32,
    /// [2.2.1.9] MCS Channel Join Confirm.
    pub channel_join_confirm: u32,
    /// [2.2.1.12.1.3] Licensing Error Message with an empty bbErrorInfo (STATUS_VALID_CLIENT).
    pub license_error: u32,
    /// [2.2.1.14] / [2.2.1.19] Synchronize PDU.
    pub synchronize: u32,
    /// [2.2.1.15] / [2.2.1.16] / [2.2.1.20] / [2.2.1.21] Control PDU (Cooperate, Request, Granted).
    pub control: u32,
    /// [2.2.1.18] Font List and [2.2.1.22] Font Map.
    pub font: u32,
    /// [2.2.5.1] Set Error Info PDU.
    pub set_error_info: u32,
    /// [2.2.2.3] MCS Disconnect Provider Ultimatum.
    pub ultimatum: u32,
    /// [2.2.10.2] Early User Authorization Result PDU.
    pub early_user_auth: u32,
    /// A TLS alert: level and description ([RFC 5246] 7.2).
    pub alert: u32,
}

/// The sizes, computed once.
pub fn sizes() -> &'static Sizes {
    static SIZES: OnceLock<Sizes> = OnceLock::new();
    SIZES.get_or_init(compute)
}

/// The user and channel ids of the encoders' PDUs: any values in the ranges servers use (PER encodes them
/// in a fixed two bytes, so they do not change the sizes).
const USER: u16 = 1007;
const IO: u16 = 1003;

fn len<T: ironrdp_core::Encode>(pdu: &T) -> u32 {
    // INVARIANT: every PDU below encodes (fixed fields, in range); a failure is a bug that a unit test catches,
    // and 0 then matches no record rather than a wrong one.
    ironrdp_core::encode_vec(pdu)
        .ok()
        .and_then(|v| u32::try_from(v.len()).ok())
        .unwrap_or(0)
}

/// A Share Data PDU as the server sends it on the I/O channel (a Send Data Indication).
fn share_data(pdu: ShareDataPdu) -> u32 {
    let share = ShareControlHeader {
        share_control_pdu: ShareControlPdu::Data(ShareDataHeader {
            share_data_pdu: pdu,
            stream_priority: StreamPriority::Low,
            compression_flags: CompressionFlags::empty(),
            compression_type: ironrdp_pdu::rdp::client_info::CompressionType::K8,
        }),
        pdu_source: USER,
        share_id: 0x0001_03ea,
    };
    let body = ironrdp_core::encode_vec(&share).unwrap_or_default();
    len(&X224(SendDataIndication {
        initiator_id: USER,
        channel_id: IO,
        user_data: Cow::Owned(body),
    }))
}

/// A Send Data Request carrying `body` bytes (the client's side of the I/O channel).
fn send_data_request(body: usize) -> u32 {
    len(&X224(SendDataRequest {
        initiator_id: USER,
        channel_id: IO,
        user_data: Cow::Owned(vec![0; body]),
    }))
}

fn compute() -> Sizes {
    let font = FontPdu {
        number: 0,
        total_number: 0,
        flags: SequenceFlags::FIRST | SequenceFlags::LAST,
        entry_size: 4,
    };
    // [2.2.8.1.1.2.1] basic security header (4) + [2.2.1.12.1.1] preamble (4) + dwErrorCode, dwStateTransition
    // and the blob header (4 each).
    let license_body = 4 + 4 + 12;
    // The request side carries the same bytes as the indication: one size for both directions.
    debug_assert_eq!(
        send_data_request(license_body),
        len(&X224(SendDataIndication {
            initiator_id: USER,
            channel_id: IO,
            user_data: Cow::Owned(vec![0; license_body]),
        }))
    );
    Sizes {
        erect_domain: len(&X224(ErectDomainPdu {
            sub_height: 0,
            sub_interval: 0,
        })),
        attach_user_request: len(&X224(AttachUserRequest)),
        attach_user_confirm: len(&X224(AttachUserConfirm {
            result: 0,
            initiator_id: USER,
        })),
        channel_join_request: len(&X224(ChannelJoinRequest {
            initiator_id: USER,
            channel_id: IO,
        })),
        channel_join_confirm: len(&X224(ChannelJoinConfirm {
            result: 0,
            initiator_id: USER,
            requested_channel_id: IO,
            channel_id: IO,
        })),
        license_error: send_data_request(license_body),
        synchronize: share_data(ShareDataPdu::Synchronize(SynchronizePdu {
            target_user_id: USER,
        })),
        control: share_data(ShareDataPdu::Control(ControlPdu {
            action: ControlAction::Cooperate,
            grant_id: 0,
            control_id: 0,
        })),
        font: share_data(ShareDataPdu::FontMap(font)),
        set_error_info: share_data(ShareDataPdu::ServerSetErrorInfo(ServerSetErrorInfoPdu(
            ErrorInfo::ProtocolIndependentCode(ProtocolIndependentCode::None),
        ))),
        ultimatum: len(&X224(DisconnectProviderUltimatum::from_reason(
            DisconnectReason::ProviderInitiated,
        ))),
        early_user_auth: 4,
        alert: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sizes_the_encoders_give() {
        // The numbers a decrypted capture shows for these PDUs (tests/replay.rs, the keyed captures).
        assert_eq!(
            *sizes(),
            Sizes {
                erect_domain: 12,
                attach_user_request: 8,
                attach_user_confirm: 11,
                channel_join_request: 12,
                channel_join_confirm: 15,
                license_error: 34,
                synchronize: 36,
                control: 40,
                font: 40,
                set_error_info: 36,
                ultimatum: 9,
                early_user_auth: 4,
                alert: 2,
            }
        );
    }

    #[test]
    fn the_built_in_targets_pdus_have_these_sizes() {
        let s = sizes();
        let sei = crate::serve::faults::set_error_info(7).expect("encodes");
        assert_eq!(sei.len(), s.set_error_info as usize);
        let dpu = crate::serve::faults::disconnect_provider_ultimatum(1).expect("encodes");
        assert_eq!(dpu.len(), s.ultimatum as usize);
        let lic = crate::serve::faults::license_error(7, 2).expect("encodes");
        assert_eq!(lic.len(), s.license_error as usize);
    }
}
