//! Standard RDP Security ([5.3]): which encryption methods the server accepts and at which level.
//!
//! One connection per method: an X.224 Connection Request for PROTOCOL_RDP, then an MCS Connect Initial
//! ([2.2.1.3]) whose Client Security Data ([2.2.1.3.3]) offers that one method. The server's Security
//! Data in the Connect Response ([2.2.1.4.3]) names the method it chose and the level; a server that does
//! not accept the method chooses another, answers ENCRYPTION_METHOD_NONE, or ends the connection. Both
//! directions go through the passive dissector, which decodes the Connect Response.

use ironrdp_core::encode_vec;
use ironrdp_pdu::gcc::{
    ClientCoreData, ClientCoreOptionalData, ClientEarlyCapabilityFlags, ClientGccBlocks,
    ClientSecurityData, ColorDepth, ConnectionType, EncryptionMethod, HighColorDepth, KeyboardType,
    RdpVersion, SecureAccessSequence, SupportedColorDepths,
};
use ironrdp_pdu::mcs::ConnectInitial;
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_pdu::x224::{X224, X224Data};
use serde::Serialize;

use super::Endpoint;
use super::negotiate;
use crate::dissect::Dissector;
use crate::dissect::mcs_connect::{encryption_level_name, encryption_method_name};
use crate::dissect::x224::PROTOCOL_RDP;
use crate::pdu::PduInfo;
use crate::trace::{Origin, Side, Trace};

/// [2.2.1.3.3] The methods the scan offers one at a time, weakest first.
pub const METHODS: [u32; 4] = [0x01, 0x08, 0x02, 0x10];

/// What the server did with one offered method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodResult {
    /// `ENCRYPTION_METHOD_40BIT`.
    pub method: String,
    pub value: u32,
    /// The server chose exactly this method.
    pub accepted: bool,
    /// What the server answered: the method and level it chose, or why there was no answer.
    pub answer: String,
    /// The server's encryptionLevel, when it answered with Security Data.
    #[serde(skip)]
    pub level: Option<u32>,
    /// The kind of server certificate (`proprietary`, `x509`), when sent.
    #[serde(skip)]
    pub server_certificate: Option<String>,
}

/// [2.2.1.3] The MCS Connect Initial in its X.224 Data TPDU, offering `methods` (flags of
/// [2.2.1.3.3] encryptionMethods) for Standard RDP Security.
pub fn connect_initial(methods: u32) -> Result<Vec<u8>, String> {
    let blocks = ClientGccBlocks {
        core: ClientCoreData {
            version: RdpVersion::V5_PLUS,
            desktop_width: 1024,
            desktop_height: 768,
            color_depth: ColorDepth::Bpp8,
            sec_access_sequence: SecureAccessSequence::Del,
            keyboard_layout: 0x0409,
            client_build: 0,
            client_name: "rdptrace".to_owned(),
            keyboard_type: KeyboardType::IBM_ENHANCED,
            keyboard_subtype: 0,
            keyboard_functional_keys_count: 12,
            ime_file_name: String::new(),
            optional_data: ClientCoreOptionalData {
                post_beta2_color_depth: Some(ColorDepth::Bpp8),
                client_product_id: Some(1),
                serial_number: Some(0),
                high_color_depth: Some(HighColorDepth::Bpp24),
                supported_color_depths: Some(
                    SupportedColorDepths::BPP24
                        | SupportedColorDepths::BPP16
                        | SupportedColorDepths::BPP15,
                ),
                early_capability_flags: Some(ClientEarlyCapabilityFlags::SUPPORT_ERR_INFO_PDU),
                dig_product_id: Some(String::new()),
                connection_type: Some(ConnectionType::NotUsed),
                server_selected_protocol: Some(SecurityProtocol::empty()),
                desktop_physical_width: None,
                desktop_physical_height: None,
                desktop_orientation: None,
                desktop_scale_factor: None,
                device_scale_factor: None,
            },
        },
        security: ClientSecurityData {
            encryption_methods: EncryptionMethod::from_bits_retain(methods),
            ext_encryption_methods: 0,
        },
        network: None,
        cluster: None,
        monitor: None,
        message_channel: None,
        multi_transport_channel: None,
        monitor_extended: None,
    };
    let ci = ConnectInitial::with_gcc_blocks(blocks).map_err(|e| e.to_string())?;
    let mcs = encode_vec(&ci).map_err(|e| e.to_string())?;
    encode_vec(&X224(X224Data {
        data: std::borrow::Cow::Owned(mcs),
    }))
    .map_err(|e| e.to_string())
}

/// Offers one method on its own connection.
pub async fn try_method(ep: &Endpoint, method: u32) -> MethodResult {
    let name = encryption_method_name(method);
    let mut result = MethodResult {
        method: name.clone(),
        value: method,
        accepted: false,
        answer: String::new(),
        level: None,
        server_certificate: None,
    };
    let mut link = match ep.open().await {
        Ok(l) => l,
        Err(e) => {
            result.answer = e.to_string();
            return result;
        }
    };
    let cr = negotiate::connection_request(PROTOCOL_RDP);
    let (answer, confirm) = negotiate::exchange_raw(&mut link, PROTOCOL_RDP).await;
    if !negotiate::accepts(PROTOCOL_RDP, &answer) {
        result.answer = format!("PROTOCOL_RDP not accepted: {}", answer.text());
        link.close().await;
        return result;
    }
    let ci = match connect_initial(method) {
        Ok(ci) => ci,
        Err(e) => {
            result.answer = format!("cannot encode the MCS Connect Initial: {e}");
            link.close().await;
            return result;
        }
    };
    if let Err(e) = link.send(&ci).await {
        result.answer = e.to_string();
        return result;
    }
    let response = link.read_tpkt().await;
    link.close().await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            result.answer = format!("no MCS Connect Response: {e}");
            return result;
        }
    };
    // The dissector reads the exchange as it reads any other.
    let mut d = Dissector::new(Trace::new(ep.target(), Origin::Probe));
    d.on_tcp_data(Side::Client, 0.0, &cr);
    d.on_tcp_data(Side::Server, 0.0, &confirm.unwrap_or_default());
    d.on_tcp_data(Side::Client, 0.0, &ci);
    d.on_tcp_data(Side::Server, 0.0, &response);
    let trace = d.into_trace();
    let decoded = trace.pdus().find_map(|(_, p)| match &p.info {
        PduInfo::McsConnectResponse {
            result,
            encryption_method,
            encryption_level,
            server_certificate,
            ..
        } => Some((
            *result,
            *encryption_method,
            *encryption_level,
            server_certificate.clone(),
        )),
        _ => None,
    });
    match decoded {
        Some((0, Some(m), Some(l), cert)) => {
            result.accepted = m == method;
            result.level = Some(l);
            result.server_certificate = cert;
            result.answer = format!(
                "the server chose {}, {}",
                encryption_method_name(m),
                encryption_level_name(l)
            );
        }
        Some((0, _, _, _)) => {
            result.answer = "a Connect Response without Server Security Data".to_owned();
        }
        Some((r, _, _, _)) => {
            result.answer = format!(
                "MCS Connect Response {}",
                crate::dissect::mcs_connect::mcs_result_name(r)
            );
        }
        None => {
            let error = trace
                .events()
                .find_map(|(_, e)| match &e.kind {
                    crate::trace::EventKind::ProtocolError { pdu, detail, .. } => {
                        Some(format!("{pdu}: {detail}"))
                    }
                    _ => None,
                })
                .unwrap_or_else(|| "not an MCS Connect Response".to_owned());
            result.answer = format!("the answer does not decode: {error}");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_initial_offers_one_method() {
        for method in METHODS {
            let ci = connect_initial(method).unwrap();
            let mut d = Dissector::new(Trace::new("t".to_owned(), Origin::Probe));
            d.on_tcp_data(
                Side::Client,
                0.0,
                &negotiate::connection_request(PROTOCOL_RDP),
            );
            // [2.2.1.2] A Connection Confirm with an RDP_NEG_RSP selecting PROTOCOL_RDP.
            let cc = [
                0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00, 0x02, 0x00, 0x08,
                0x00, 0x00, 0x00, 0x00, 0x00,
            ];
            d.on_tcp_data(Side::Server, 0.0, &cc);
            d.on_tcp_data(Side::Client, 0.0, &ci);
            let trace = d.into_trace();
            let offered = trace.pdus().find_map(|(_, p)| match &p.info {
                PduInfo::McsConnectInitial {
                    encryption_methods, ..
                } => *encryption_methods,
                _ => None,
            });
            assert_eq!(offered, Some(method));
        }
    }
}
