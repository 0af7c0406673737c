//! The PDUs a fault sends, encoded for the wire.
//!
//! The Set Error Info PDU is built here rather than through ironrdp-pdu's `ServerSetErrorInfoPdu`: that type
//! only encodes the errorInfo values its enum knows, and a fault must be able to send any value (0x19 and
//! 0x1A among them). The MCS and X.224 layers around it come from ironrdp-pdu.

use std::borrow::Cow;

use ironrdp_pdu::mcs::{DisconnectProviderUltimatum, DisconnectReason, SendDataIndication};
use ironrdp_pdu::nego::{ConnectionConfirm, FailureCode};
use ironrdp_pdu::x224::X224;

/// [3.3.1.5] The MCS server channel id (0x03EA), the initiator of the server's Send Data Indications.
pub const SERVER_CHANNEL_ID: u16 = 1002;
/// The I/O channel id the target assigns ([2.2.1.4.2] MCSChannelId).
pub const IO_CHANNEL_ID: u16 = 1003;

/// [2.2.8.1.1.1.1] TS_PROTOCOL_VERSION | PDUTYPE_DATAPDU.
const PDUTYPE_DATAPDU: u16 = 0x0010 | 0x0007;
/// [2.2.8.1.1.1.2] STREAM_LOW.
const STREAM_LOW: u8 = 0x01;
/// [2.2.8.1.1.1.2] PDUTYPE2_SET_ERROR_INFO_PDU.
const PDUTYPE2_SET_ERROR_INFO_PDU: u8 = 0x2f;

/// Encoding failed (a bug, not a peer's doing).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {what}: {detail}")]
pub struct EncodeError {
    what: &'static str,
    detail: String,
}

fn encode<T: ironrdp_core::Encode>(what: &'static str, pdu: &T) -> Result<Vec<u8>, EncodeError> {
    ironrdp_core::encode_vec(pdu).map_err(|e| EncodeError {
        what,
        detail: e.to_string(),
    })
}

/// [2.2.5.1] Server Set Error Info PDU: an MCS Send Data Indication on the I/O channel carrying a Share
/// Control Header ([2.2.8.1.1.1.1]), a Share Data Header ([2.2.8.1.1.1.2]) and the errorInfo
/// ([2.2.5.1.1]). No security header: Enhanced RDP Security encrypts below RDP.
pub fn set_error_info(code: u32) -> Result<Vec<u8>, EncodeError> {
    let body = code.to_le_bytes();
    // Share Control Header (6) + Share Data Header (12) + errorInfo (4).
    let total: u16 = 6 + 12 + 4;
    let mut share = Vec::with_capacity(usize::from(total));
    share.extend_from_slice(&total.to_le_bytes());
    share.extend_from_slice(&PDUTYPE_DATAPDU.to_le_bytes());
    share.extend_from_slice(&0u16.to_le_bytes()); // pduSource: zero, as [2.2.5.1.1] requires
    share.extend_from_slice(&0u32.to_le_bytes()); // shareId: no share before the Demand Active
    share.push(0); // pad1
    share.push(STREAM_LOW);
    // uncompressedLength counts the body and the pduType2, compressedType and compressedLength fields, as
    // the examples of [4.1] do.
    share.extend_from_slice(&(4u16 + 4).to_le_bytes());
    share.push(PDUTYPE2_SET_ERROR_INFO_PDU);
    share.push(0); // compressedType
    share.extend_from_slice(&0u16.to_le_bytes()); // compressedLength
    share.extend_from_slice(&body);
    let pdu = SendDataIndication {
        initiator_id: SERVER_CHANNEL_ID,
        channel_id: IO_CHANNEL_ID,
        user_data: Cow::Owned(share),
    };
    encode("the Set Error Info PDU", &X224(pdu))
}

/// [2.2.2.3] MCS Disconnect Provider Ultimatum with the reason rn-provider-initiated, as a server sends it
/// when it ends the connection ([3.1.5.1.1], [1.3.1.4.3]).
pub fn disconnect_provider_ultimatum() -> Result<Vec<u8>, EncodeError> {
    let pdu = DisconnectProviderUltimatum::from_reason(DisconnectReason::ProviderInitiated);
    encode("the Disconnect Provider Ultimatum", &X224(pdu))
}

/// [2.2.1.2.2] X.224 Connection Confirm with RDP_NEG_FAILURE.
pub fn negotiation_failure(code: u32) -> Result<Vec<u8>, EncodeError> {
    let pdu = ConnectionConfirm::Failure {
        code: FailureCode::from(code),
    };
    encode("the RDP_NEG_FAILURE", &X224(pdu))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::Dissector;
    use crate::pdu::{Negotiation, PduInfo};
    use crate::trace::{Origin, Side, Trace};

    fn dissect(bytes: &[u8]) -> Vec<PduInfo> {
        let mut d = Dissector::new(Trace::new("t", Origin::Probe));
        d.on_tcp_data(Side::Server, 0.0, bytes);
        d.into_trace().pdus().map(|(_, p)| p.info.clone()).collect()
    }

    #[test]
    fn set_error_info_any_code() {
        for code in [0x7, 0x19, 0x1a, 0x0000_10c9] {
            let bytes = set_error_info(code).expect("encodes");
            let pdus = dissect(&bytes);
            assert!(
                matches!(pdus.as_slice(), [PduInfo::SetErrorInfo { code: c }] if *c == code),
                "{code:#x}: {pdus:?}"
            );
        }
    }

    #[test]
    fn ultimatum_is_provider_initiated() {
        let bytes = disconnect_provider_ultimatum().expect("encodes");
        // [4.2.3] has `03 00 00 09 02 f0 80 21 80` for rn-user-requested (3); rn-provider-initiated (1)
        // moves the reason's bits: choice 8 << 2 | 1 >> 1, then 1 << 7.
        assert_eq!(
            bytes,
            [0x03, 0x00, 0x00, 0x09, 0x02, 0xf0, 0x80, 0x20, 0x80]
        );
        let pdus = dissect(&bytes);
        assert!(
            matches!(
                pdus.as_slice(),
                [PduInfo::DisconnectProviderUltimatum { reason: 1 }]
            ),
            "{pdus:?}"
        );
    }

    #[test]
    fn negotiation_failure_code() {
        let bytes = negotiation_failure(5).expect("encodes");
        let pdus = dissect(&bytes);
        assert!(
            matches!(
                pdus.as_slice(),
                [PduInfo::X224ConnectionConfirm {
                    negotiation: Negotiation::Failure { code: 5 }
                }]
            ),
            "{pdus:?}"
        );
    }
}
