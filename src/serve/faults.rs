//! The PDUs a fault sends, encoded for the wire.
//!
//! The Set Error Info PDU and the Licensing Error Message are built here rather than through ironrdp-pdu's
//! types: those only encode the values their enums know, and a fault must be able to send any value (0x19 and
//! 0x1A among them). The TLS answers of an old server are written here too: rustls speaks only TLS 1.2 and
//! 1.3. Everything else (MCS, X.224, share control headers, the License Request, the redirection) comes from
//! ironrdp-pdu, and the CredSSP messages from sspi.

use std::borrow::Cow;

use ironrdp_connector::sspi::credssp::{EarlyUserAuthResult, NStatusCode, TsRequest};
use ironrdp_pdu::mcs::{DisconnectProviderUltimatum, DisconnectReason, SendDataIndication};
use ironrdp_pdu::nego::{ConnectionConfirm, FailureCode, ResponseFlags, SecurityProtocol};
use ironrdp_pdu::rdp::headers::{
    BasicSecurityHeader, BasicSecurityHeaderFlags, ServerDeactivateAll, ShareControlHeader,
    ShareControlPdu,
};
use ironrdp_pdu::rdp::server_license::cert::{
    CertificateType, ProprietaryCertificate, RsaPublicKey,
};
use ironrdp_pdu::rdp::server_license::{
    LicenseHeader, PreambleFlags, PreambleType, PreambleVersion, ProductInfo, Scope,
    ServerCertificate, ServerLicenseRequest,
};
use ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu;
use ironrdp_pdu::x224::X224;
use rsa::BoxedUint;

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
/// [2.2.8.1.1.2.1] SEC_LICENSE_PKT.
const SEC_LICENSE_PKT: u16 = 0x0080;
/// [2.2.1.12.1.1] bMsgType ERROR_ALERT and the flags byte PREAMBLE_VERSION_3_0.
const ERROR_ALERT: u8 = 0xff;
const PREAMBLE_VERSION_3_0: u8 = 0x03;
/// [2.2.1.12.1.2] wBlobType BB_ERROR_BLOB.
const BB_ERROR_BLOB: u16 = 0x0004;
/// [2.2.1.4.3.1.1] wPublicKeyBlobType BB_RSA_KEY_BLOB.
const BB_RSA_KEY_BLOB: u16 = 0x0006;
/// [RFC 5246] 6.2.1 ContentType values and the TLS 1.0 version (3, 1).
const TLS_ALERT: u8 = 21;
const TLS_HANDSHAKE: u8 = 22;
const TLS_1_0: [u8; 2] = [0x03, 0x01];
/// [RFC 5246] 7.2 AlertLevel fatal.
const ALERT_LEVEL_FATAL: u8 = 2;
/// [RFC 5246] 7.4 HandshakeType values.
const HANDSHAKE_SERVER_HELLO: u8 = 2;
const HANDSHAKE_CERTIFICATE: u8 = 11;
const HANDSHAKE_SERVER_HELLO_DONE: u8 = 14;
/// [RFC 5246] A.5 TLS_RSA_WITH_AES_128_CBC_SHA.
const TLS_RSA_WITH_AES_128_CBC_SHA: u16 = 0x002f;

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

/// [2.2.2.3] MCS Disconnect Provider Ultimatum with a [T.125] reason: rn-provider-initiated (1) is what a
/// server sends when it ends the connection ([3.1.5.1.1], [1.3.1.4.3]); xrdp sends rn-user-requested (3).
pub fn disconnect_provider_ultimatum(reason: u8) -> Result<Vec<u8>, EncodeError> {
    let reason = DisconnectReason::from_u8(reason).ok_or_else(|| EncodeError {
        what: "the Disconnect Provider Ultimatum",
        detail: format!("no reason {reason} in T.125"),
    })?;
    let pdu = DisconnectProviderUltimatum::from_reason(reason);
    encode("the Disconnect Provider Ultimatum", &X224(pdu))
}

/// [2.2.1.2.2] X.224 Connection Confirm with RDP_NEG_FAILURE.
pub fn negotiation_failure(code: u32) -> Result<Vec<u8>, EncodeError> {
    let pdu = ConnectionConfirm::Failure {
        code: FailureCode::from(code),
    };
    encode("the RDP_NEG_FAILURE", &X224(pdu))
}

/// [2.2.1.2.1] X.224 Connection Confirm with RDP_NEG_RSP selecting `protocol` (EXTENDED_CLIENT_DATA_SUPPORTED,
/// as xrdp and Windows set it).
pub fn negotiation_response(protocol: u32) -> Result<Vec<u8>, EncodeError> {
    let pdu = ConnectionConfirm::Response {
        flags: ResponseFlags::EXTENDED_CLIENT_DATA_SUPPORTED,
        protocol: SecurityProtocol::from_bits_retain(protocol),
    };
    encode("the RDP_NEG_RSP", &X224(pdu))
}

/// [2.2.1.2] X.224 Connection Confirm without negotiation data: TPKT ([T.123] 8), then the Connection Confirm
/// TPDU ([X.224] 13.4: LI 6, CC code 0xD0, DST-REF 0, SRC-REF 0x1234, class 0). ironrdp-pdu always writes an
/// RDP_NEG_RSP or RDP_NEG_FAILURE, so this one is written here.
pub fn confirm_without_negotiation() -> Vec<u8> {
    vec![
        0x03, 0x00, 0x00, 0x0b, 0x06, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00,
    ]
}

/// [RFC 5246] 6.2.1 / 7.2 a fatal alert in a TLS 1.0 record, as a server that fails the handshake at once
/// writes it. Written by hand: rustls only speaks TLS 1.2 and 1.3.
pub fn tls_alert(description: u8) -> Vec<u8> {
    vec![
        TLS_ALERT,
        0x03,
        0x01,
        0x00,
        0x02,
        ALERT_LEVEL_FATAL,
        description,
    ]
}

/// [RFC 2246] 7.4.1.3, 7.4.2, 7.4.5 a TLS 1.0 server's first flight, in one handshake record: ServerHello
/// (version 1.0, TLS_RSA_WITH_AES_128_CBC_SHA, no compression, an empty renegotiation_info extension
/// ([RFC 5746] 3.6)), Certificate (the chain, leaf first) and ServerHelloDone. Written by hand: rustls only
/// speaks TLS 1.2 and 1.3.
pub fn tls10_server_flight(chain: &[&[u8]]) -> Result<Vec<u8>, EncodeError> {
    let too_long = |what: &'static str| EncodeError {
        what,
        detail: "longer than a TLS record holds".to_owned(),
    };
    let u24 = |n: usize, what: &'static str| -> Result<[u8; 3], EncodeError> {
        let n = u32::try_from(n).map_err(|_| too_long(what))?;
        if n > 0x00ff_ffff {
            return Err(too_long(what));
        }
        let [_, a, b, c] = n.to_be_bytes();
        Ok([a, b, c])
    };
    let mut hello = Vec::with_capacity(80);
    hello.extend_from_slice(&TLS_1_0);
    let random: [u8; 32] = rand::random();
    hello.extend_from_slice(&random);
    let session: [u8; 32] = rand::random();
    hello.push(32);
    hello.extend_from_slice(&session);
    hello.extend_from_slice(&TLS_RSA_WITH_AES_128_CBC_SHA.to_be_bytes());
    hello.push(0); // compression: null
    // extensions: renegotiation_info (0xff01) with an empty renegotiated_connection
    hello.extend_from_slice(&[0x00, 0x05, 0xff, 0x01, 0x00, 0x01, 0x00]);

    let mut certs = Vec::new();
    for cert in chain {
        certs.extend_from_slice(&u24(cert.len(), "a certificate")?);
        certs.extend_from_slice(cert);
    }
    let mut certificate = u24(certs.len(), "the certificate list")?.to_vec();
    certificate.extend_from_slice(&certs);

    let mut handshake = Vec::new();
    for (msg_type, body) in [
        (HANDSHAKE_SERVER_HELLO, hello.as_slice()),
        (HANDSHAKE_CERTIFICATE, certificate.as_slice()),
        (HANDSHAKE_SERVER_HELLO_DONE, &[][..]),
    ] {
        handshake.push(msg_type);
        handshake.extend_from_slice(&u24(body.len(), "a handshake message")?);
        handshake.extend_from_slice(body);
    }
    let len = u16::try_from(handshake.len())
        .ok()
        .filter(|n| *n <= 1 << 14)
        .ok_or_else(|| too_long("the TLS 1.0 server flight"))?;
    let mut record = vec![TLS_HANDSHAKE];
    record.extend_from_slice(&TLS_1_0);
    record.extend_from_slice(&len.to_be_bytes());
    record.extend_from_slice(&handshake);
    Ok(record)
}

/// [MS-CSSP] 2.2.1 a TSRequest carrying only an NTSTATUS errorCode, as a server sends it when the SPNEGO
/// exchange fails ([MS-CSSP] 3.1.5).
pub fn credssp_error(version: u32, status: u32) -> Result<Vec<u8>, EncodeError> {
    let request = TsRequest {
        version,
        error_code: Some(NStatusCode(status)),
        ..TsRequest::default()
    };
    let mut out = Vec::new();
    request
        .encode_ts_request(&mut out)
        .map_err(|e| EncodeError {
            what: "the TSRequest",
            detail: e.to_string(),
        })?;
    Ok(out)
}

/// [2.2.10.2] Early User Authorization Result: ACCESS_DENIED.
pub fn early_auth_denied() -> Result<Vec<u8>, EncodeError> {
    let answer = EarlyUserAuthResult::AccessDenied;
    let mut out = Vec::with_capacity(answer.buffer_len());
    answer.to_buffer(&mut out).map_err(|e| EncodeError {
        what: "the Early User Authorization Result",
        detail: e.to_string(),
    })?;
    Ok(out)
}

/// [2.2.1.12.1.3] Licensing Error Message with any dwErrorCode and dwStateTransition (ironrdp-pdu's type only
/// takes the values its enums know), on the I/O channel: security header with SEC_LICENSE_PKT
/// ([2.2.8.1.1.2.1]), preamble ([2.2.1.12.1.1], ERROR_ALERT, PREAMBLE_VERSION_3_0), the two codes and an empty
/// bbErrorInfo (BB_ERROR_BLOB).
pub fn license_error(code: u32, transition: u32) -> Result<Vec<u8>, EncodeError> {
    let mut body = Vec::with_capacity(20);
    body.extend_from_slice(&SEC_LICENSE_PKT.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes()); // flagsHi
    body.push(ERROR_ALERT);
    body.push(PREAMBLE_VERSION_3_0);
    // wMsgSize: the preamble (4), dwErrorCode, dwStateTransition and the blob header (4 each).
    body.extend_from_slice(&16u16.to_le_bytes());
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&transition.to_le_bytes());
    body.extend_from_slice(&BB_ERROR_BLOB.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    send_data_indication("the Licensing Error Message", body)
}

/// [MS-RDPELE] 2.2.2.1 Server License Request, as xrdp sends it: a server random, product information, RSA
/// key exchange, a proprietary certificate ([2.2.1.4.3.1.1]) for `public_key` signed with the Terminal Services
/// signing key ([5.3.3.1.2]), and one scope.
pub fn license_request(public_key: &LicenseKey) -> Result<Vec<u8>, EncodeError> {
    let key = RsaPublicKey {
        public_exponent: public_key.exponent,
        modulus: public_key.modulus_le_padded(),
    };
    let signature = proprietary_signature(&key)?;
    let certificate = ServerCertificate {
        issued_permanently: false,
        certificate: CertificateType::Proprietary(ProprietaryCertificate {
            public_key: key,
            signature,
        }),
    };
    let mut request = ServerLicenseRequest {
        license_header: LicenseHeader {
            security_header: BasicSecurityHeader {
                flags: BasicSecurityHeaderFlags::LICENSE_PKT,
            },
            preamble_message_type: PreambleType::LicenseRequest,
            preamble_flags: PreambleFlags::empty(),
            preamble_version: PreambleVersion::V3,
            preamble_message_size: 0,
        },
        server_random: rand::random::<[u8; 32]>().to_vec(),
        product_info: ProductInfo {
            version: 0x0006_0000,
            company_name: "rdptrace".to_owned(),
            product_id: "A02".to_owned(),
        },
        server_certificate: Some(certificate),
        scope_list: vec![Scope("microsoft.com".to_owned())],
    };
    // wMsgSize counts the preamble and the message, not the security header (4 bytes).
    request.license_header.preamble_message_size =
        u16::try_from(request.size() - 4).map_err(|_| EncodeError {
            what: "the Server License Request",
            detail: "longer than wMsgSize holds".to_owned(),
        })?;
    let mut body = vec![0u8; request.size()];
    let mut cursor = ironrdp_core::WriteCursor::new(&mut body);
    request.encode(&mut cursor).map_err(|e| EncodeError {
        what: "the Server License Request",
        detail: e.to_string(),
    })?;
    send_data_indication("the Server License Request", body)
}

/// An RSA public key for the proprietary certificate of a License Request.
#[derive(Debug, Clone)]
pub struct LicenseKey {
    /// The modulus, big-endian, as the `rsa` crate gives it.
    pub modulus_be: Vec<u8>,
    pub exponent: u32,
}

impl LicenseKey {
    /// [2.2.1.4.3.1.1.1] the modulus little-endian, followed by eight bytes of zero padding.
    fn modulus_le_padded(&self) -> Vec<u8> {
        let mut modulus: Vec<u8> = self.modulus_be.iter().rev().copied().collect();
        modulus.extend_from_slice(&[0; 8]);
        modulus
    }
}

/// [5.3.3.1.1] the Terminal Services signing key, little-endian: its modulus and private exponent are
/// published so that anyone can sign a proprietary certificate.
const TSSK_MODULUS: [u8; 64] = [
    0x3d, 0x3a, 0x5e, 0xbd, 0x72, 0x43, 0x3e, 0xc9, 0x4d, 0xbb, 0xc1, 0x1e, 0x4a, 0xba, 0x5f, 0xcb,
    0x3e, 0x88, 0x20, 0x87, 0xef, 0xf5, 0xc1, 0xe2, 0xd7, 0xb7, 0x6b, 0x9a, 0xf2, 0x52, 0x45, 0x95,
    0xce, 0x63, 0x65, 0x6b, 0x58, 0x3a, 0xfe, 0xef, 0x7c, 0xe7, 0xbf, 0xfe, 0x3d, 0xf6, 0x5c, 0x7d,
    0x6c, 0x5e, 0x06, 0x09, 0x1a, 0xf5, 0x61, 0xbb, 0x20, 0x93, 0x09, 0x5f, 0x05, 0x6d, 0xea, 0x87,
];
const TSSK_PRIVATE_EXPONENT: [u8; 64] = [
    0x87, 0xa7, 0x19, 0x32, 0xda, 0x11, 0x87, 0x55, 0x58, 0x00, 0x16, 0x16, 0x25, 0x65, 0x68, 0xf8,
    0x24, 0x3e, 0xe6, 0xfa, 0xe9, 0x67, 0x49, 0x94, 0xcf, 0x92, 0xcc, 0x33, 0x99, 0xe8, 0x08, 0x60,
    0x17, 0x9a, 0x12, 0x9f, 0x24, 0xdd, 0xb1, 0x24, 0x99, 0xc7, 0x3a, 0xb8, 0x0a, 0x7b, 0x0d, 0xdd,
    0x35, 0x07, 0x79, 0x17, 0x0b, 0x51, 0x9b, 0xb3, 0xc7, 0x10, 0x01, 0x13, 0xe7, 0x3f, 0xf3, 0x5f,
];

/// [5.3.3.1.2] the signature of a proprietary certificate: the MD5 of its first six fields (dwVersion,
/// dwSigAlgId, dwKeyAlgId, and the public key blob with its type and length) in a 63-byte block
/// (hash, 0x00, 0xFF..., 0x01), read as a little-endian integer and raised to the Terminal Services private
/// exponent; 64 bytes little-endian, then eight bytes of zero padding.
fn proprietary_signature(key: &RsaPublicKey) -> Result<Vec<u8>, EncodeError> {
    let err = |detail: String| EncodeError {
        what: "the proprietary certificate signature",
        detail,
    };
    let key_bytes = ironrdp_core::encode_vec(key).map_err(|e| err(e.to_string()))?;
    let key_len = u16::try_from(key_bytes.len()).map_err(|_| err("key too long".to_owned()))?;
    let mut signed = Vec::with_capacity(16 + key_bytes.len());
    signed.extend_from_slice(&1u32.to_le_bytes()); // dwVersion: CERT_CHAIN_VERSION_1
    signed.extend_from_slice(&1u32.to_le_bytes()); // dwSigAlgId: SIGNATURE_ALG_RSA
    signed.extend_from_slice(&1u32.to_le_bytes()); // dwKeyAlgId: KEY_EXCHANGE_ALG_RSA
    signed.extend_from_slice(&BB_RSA_KEY_BLOB.to_le_bytes());
    signed.extend_from_slice(&key_len.to_le_bytes());
    signed.extend_from_slice(&key_bytes);
    let hash = <md5::Md5 as md5::Digest>::digest(&signed);
    let mut block = [0xffu8; 63];
    block[..16].copy_from_slice(&hash);
    block[16] = 0x00;
    block[62] = 0x01;
    let bits = 512;
    let n = BoxedUint::from_le_slice(&TSSK_MODULUS, bits).map_err(|e| err(e.to_string()))?;
    let d =
        BoxedUint::from_le_slice(&TSSK_PRIVATE_EXPONENT, bits).map_err(|e| err(e.to_string()))?;
    let m = BoxedUint::from_le_slice(&block, bits).map_err(|e| err(e.to_string()))?;
    // s = m^d mod n: the raw RSA operation with d as the exponent.
    let signer = rsa::RsaPublicKey::new_unchecked(n, d);
    let s = rsa::hazmat::rsa_encrypt(&signer, &m).map_err(|e| err(e.to_string()))?;
    let mut signature = s.to_le_bytes().to_vec();
    signature.resize(64, 0);
    signature.extend_from_slice(&[0; 8]);
    Ok(signature)
}

/// [2.2.3.1] Server Deactivate All PDU on the I/O channel.
pub fn deactivate_all() -> Result<Vec<u8>, EncodeError> {
    let pdu = ShareControlHeader {
        share_control_pdu: ShareControlPdu::ServerDeactivateAll(ServerDeactivateAll),
        pdu_source: IO_CHANNEL_ID,
        share_id: SHARE_ID,
    };
    let body = encode("the Deactivate All PDU", &pdu)?;
    send_data_indication("the Deactivate All PDU", body)
}

/// [2.2.13.3.1] Enhanced Security Server Redirection PDU: session `session_id`, target address `target`.
pub fn server_redirection(session_id: u32, target: &str) -> Result<Vec<u8>, EncodeError> {
    server_redirection_with(session_id, target, None, None)
}

/// [2.2.13.3.1] Enhanced Security Server Redirection PDU with a LoadBalanceInfo (the routing token of the
/// next connection) and a Password.
pub fn server_redirection_with(
    session_id: u32,
    target: &str,
    load_balance_info: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
) -> Result<Vec<u8>, EncodeError> {
    let pdu = ShareControlHeader {
        share_control_pdu: ShareControlPdu::ServerRedirect(ServerRedirectionPdu {
            session_id,
            target_net_address: Some(target.to_owned()),
            load_balance_info,
            password,
            ..ServerRedirectionPdu::default()
        }),
        pdu_source: IO_CHANNEL_ID,
        share_id: 0,
    };
    let body = encode("the Server Redirection PDU", &pdu)?;
    send_data_indication("the Server Redirection PDU", body)
}

/// [2.2.1.13.1] the shareId the acceptor gives its Demand Active.
const SHARE_ID: u32 = 0;

/// An MCS Send Data Indication on the I/O channel carrying `body`.
fn send_data_indication(what: &'static str, body: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
    let pdu = SendDataIndication {
        initiator_id: SERVER_CHANNEL_ID,
        channel_id: IO_CHANNEL_ID,
        user_data: Cow::Owned(body),
    };
    encode(what, &X224(pdu))
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
        let bytes = disconnect_provider_ultimatum(1).expect("encodes");
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

    #[test]
    fn ultimatum_as_xrdp_writes_it() {
        // lab/HOSTS.md: every Disconnect Provider Ultimatum xrdp sends is these 9 bytes (rn-user-requested).
        let bytes = disconnect_provider_ultimatum(3).expect("encodes");
        assert_eq!(
            bytes,
            [0x03, 0x00, 0x00, 0x09, 0x02, 0xf0, 0x80, 0x21, 0x80]
        );
        assert!(disconnect_provider_ultimatum(9).is_err(), "no such reason");
    }

    #[test]
    fn negotiation_answers_without_failure() {
        let pdus = dissect(&negotiation_response(0).expect("encodes"));
        assert!(
            matches!(
                pdus.as_slice(),
                [PduInfo::X224ConnectionConfirm {
                    negotiation: Negotiation::Response {
                        selected_protocol: 0,
                        ..
                    }
                }]
            ),
            "{pdus:?}"
        );
        let pdus = dissect(&confirm_without_negotiation());
        assert!(
            matches!(
                pdus.as_slice(),
                [PduInfo::X224ConnectionConfirm {
                    negotiation: Negotiation::None
                }]
            ),
            "{pdus:?}"
        );
    }

    #[test]
    fn tls_answers_of_an_old_server() {
        let pdus = dissect(&tls_alert(70));
        assert!(
            matches!(
                pdus.as_slice(),
                [PduInfo::TlsAlert {
                    level: Some(2),
                    description: Some(70),
                    encrypted: false
                }]
            ),
            "{pdus:?}"
        );
        let cert = crate::serve::tls::certificate(
            &crate::serve::scenario::CertProfile::DEFAULT,
            "rdptrace-target",
            None,
        )
        .expect("a certificate");
        let leaf = cert.chain.first().expect("a leaf").as_ref();
        let pdus = dissect(&tls10_server_flight(&[leaf]).expect("encodes"));
        assert!(
            matches!(
                pdus.as_slice(),
                [
                    PduInfo::TlsServerHello {
                        version: 0x0301,
                        cipher_suite: 0x002f
                    },
                    PduInfo::TlsCertificate { chain },
                    PduInfo::TlsHandshake { msg_type: 14 },
                ] if chain.len() == 1 && chain[0].subject == "CN=rdptrace-target"
            ),
            "{pdus:?}"
        );
    }

    #[test]
    fn credssp_answers() {
        let bytes = credssp_error(6, 0xC000_0234).expect("encodes");
        let request = TsRequest::from_buffer(&bytes).expect("a TSRequest");
        assert_eq!(request.version, 6);
        assert_eq!(request.error_code, Some(NStatusCode(0xC000_0234)));
        assert!(request.nego_tokens.is_none() && request.pub_key_auth.is_none());
        // [2.2.10.2] ACCESS_DENIED is 0x00000005, little-endian.
        assert_eq!(early_auth_denied().expect("encodes"), [5, 0, 0, 0]);
    }

    #[test]
    fn licensing_error_with_any_code() {
        let pdus = dissect(&license_error(0x6, 0x1).expect("encodes"));
        assert!(
            matches!(
                pdus.as_slice(),
                [PduInfo::License {
                    message: crate::pdu::LicenseMessage::ErrorAlert {
                        code: 6,
                        transition: 1
                    }
                }]
            ),
            "{pdus:?}"
        );
    }

    /// [5.3.3.1.1] the public exponent of the Terminal Services signing key, little-endian.
    const TSSK_PUBLIC_EXPONENT: [u8; 4] = [0x5b, 0x7b, 0x88, 0xc0];

    #[test]
    fn license_request_carries_a_signed_proprietary_certificate() {
        let key = LicenseKey {
            modulus_be: vec![0xc3; 256],
            exponent: 0x0001_0001,
        };
        let bytes = license_request(&key).expect("encodes");
        let pdus = dissect(&bytes);
        assert!(
            matches!(
                pdus.as_slice(),
                [PduInfo::License {
                    message: crate::pdu::LicenseMessage::LicenseRequest
                }]
            ),
            "{pdus:?}"
        );
        // ironrdp-pdu reads it back; [5.3.3.1.3] the signature opens with the public exponent to the padded
        // MD5 of the first six fields.
        let indication = ironrdp_pdu::mcs::decode_send_data_indication(&bytes).expect("MCS");
        let pdu: ironrdp_pdu::rdp::server_license::LicensePdu =
            indication.decode_user_data().expect("a licensing PDU");
        let ironrdp_pdu::rdp::server_license::LicensePdu::ServerLicenseRequest(request) = pdu
        else {
            panic!("not a License Request: {pdu:?}");
        };
        let Some(ServerCertificate {
            certificate: CertificateType::Proprietary(cert),
            ..
        }) = &request.server_certificate
        else {
            panic!("no proprietary certificate");
        };
        assert_eq!(cert.signature.len(), 72);
        let n = BoxedUint::from_le_slice(&TSSK_MODULUS, 512).expect("n");
        let e = BoxedUint::from_le_slice(&TSSK_PUBLIC_EXPONENT, 512).expect("e");
        let s = BoxedUint::from_le_slice(&cert.signature[..64], 512).expect("s");
        let m = rsa::hazmat::rsa_encrypt(&rsa::RsaPublicKey::new_unchecked(n, e), &s)
            .expect("the public operation");
        let m = m.to_le_bytes();
        let key_bytes = ironrdp_core::encode_vec(&cert.public_key).expect("the key");
        let mut signed = Vec::new();
        for v in [1u32, 1, 1] {
            signed.extend_from_slice(&v.to_le_bytes());
        }
        signed.extend_from_slice(&BB_RSA_KEY_BLOB.to_le_bytes());
        signed.extend_from_slice(&(key_bytes.len() as u16).to_le_bytes());
        signed.extend_from_slice(&key_bytes);
        let hash = <md5::Md5 as md5::Digest>::digest(&signed);
        assert_eq!(&m[..16], hash.as_slice());
        assert_eq!(m[16], 0x00);
        assert!(m[17..62].iter().all(|b| *b == 0xff));
        assert_eq!(m[62], 0x01);
    }

    #[test]
    fn deactivation_and_redirection() {
        let pdus = dissect(&deactivate_all().expect("encodes"));
        assert!(
            matches!(pdus.as_slice(), [PduInfo::DeactivateAll]),
            "{pdus:?}"
        );
        let pdus = dissect(&server_redirection(7, "127.0.0.2").expect("encodes"));
        assert!(
            matches!(
                pdus.as_slice(),
                [PduInfo::ServerRedirection { session_id: 7, target: Some(t), .. }] if t == "127.0.0.2"
            ),
            "{pdus:?}"
        );
    }
}
