//! What the server says about itself before anyone logs on: an anonymous NTLM exchange over CredSSP
//! ([MS-CSSP] 3.1.5) stopped after the server's CHALLENGE ([MS-NLMP] 2.2.1.2), whose target information
//! names the computer and the domain and whose VERSION gives the OS build.
//!
//! And the TLS session rustls makes after an X.224 exchange: version, suite and the certificate chain,
//! which TLS 1.3 sends encrypted.

use std::sync::Arc;

use serde::Serialize;
use sspi::credssp::TsRequest;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::Endpoint;
use super::link::Link;
use super::negotiate;
use crate::pdu::{AuthToken, Negotiation, NtlmChallengeInfo};

/// [MS-NLMP] 2.2.2.5 The flags of the NEGOTIATE the scan sends: UNICODE, OEM, REQUEST_TARGET, SIGN,
/// SEAL, NTLM, ALWAYS_SIGN, EXTENDED_SESSIONSECURITY, TARGET_INFO, VERSION, 128, KEY_EXCH, 56.
const NEGOTIATE_FLAGS: u32 = 0xe288_8237;

/// [MS-NLMP] 2.2.1.1 NEGOTIATE_MESSAGE with no domain and no workstation, and a VERSION
/// ([MS-NLMP] 2.2.2.10) of 10.0 with NTLMSSP_REVISION_W2K3.
pub fn negotiate_message() -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(b"NTLMSSP\0");
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&NEGOTIATE_FLAGS.to_le_bytes());
    // DomainNameFields and WorkstationFields: length, maximum length, offset (all zero: absent).
    m.extend_from_slice(&[0u8; 16]);
    m.extend_from_slice(&[10, 0, 0, 0, 0, 0, 0, 0x0f]);
    m
}

/// A TLS session made with rustls after the X.224 exchange.
pub struct Session {
    pub stream: TlsStream<TcpStream>,
    pub version: String,
    pub suite: String,
    pub chain: Vec<Vec<u8>>,
    pub selected: u32,
    pub deadline: tokio::time::Instant,
}

/// Negotiates `request`, then makes a TLS handshake with rustls (TLS 1.2 or 1.3).
pub async fn tls_session(ep: &Endpoint, request: u32) -> Result<Session, String> {
    let (answer, link) = negotiate::negotiate(ep, request).await;
    let Some(link) = link else {
        return Err(answer.text());
    };
    let selected = match answer.negotiation() {
        Some(Negotiation::Response {
            selected_protocol, ..
        }) if selected_protocol & super::tls::TLS_PROTOCOLS != 0
            && selected_protocol & !request == 0 =>
        {
            selected_protocol
        }
        _ => return Err(answer.text()),
    };
    let (stream, _, deadline) = link.into_parts();
    let config = crate::probe::tls::client_config(None, None, crate::probe::TlsMax::Tls13)
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let name = crate::probe::tls::server_name(&ep.host)
        .ok_or_else(|| format!("{} is not a valid TLS server name", ep.host))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
        Err(_) => return Err("no TLS handshake before the deadline".to_owned()),
        Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
        Ok(Ok(s)) => s,
    };
    let (_, conn) = stream.get_ref();
    let version = conn
        .protocol_version()
        .map(crate::probe::tls::version_name)
        .unwrap_or_default();
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let chain = conn
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.as_ref().to_vec()).collect())
        .unwrap_or_default();
    Ok(Session {
        stream,
        version,
        suite,
        chain,
        selected,
        deadline,
    })
}

/// What the anonymous NTLM exchange gave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NtlmResult {
    /// Whether the exchange was tried (the server accepts PROTOCOL_HYBRID or PROTOCOL_HYBRID_EX).
    pub tested: bool,
    /// The CHALLENGE's target information, when the server sent one.
    pub info: Option<NtlmChallengeInfo>,
    /// What the server answered, in words.
    pub answer: String,
}

/// Runs the anonymous exchange: X.224 with `request` (CredSSP), TLS, a TSRequest with an NTLM NEGOTIATE;
/// reads one TSRequest and closes.
pub async fn challenge(ep: &Endpoint, request: u32) -> NtlmResult {
    let _permit = ep.permit().await;
    let mut out = NtlmResult {
        tested: true,
        ..NtlmResult::default()
    };
    let session = match tls_session(ep, request).await {
        Ok(s) => s,
        Err(e) => {
            out.answer = e;
            return out;
        }
    };
    let mut link = Link::wrap(session.stream, session.deadline);
    let request = TsRequest {
        nego_tokens: Some(negotiate_message()),
        ..TsRequest::default()
    };
    let mut bytes = Vec::new();
    if let Err(e) = request.encode_ts_request(&mut bytes) {
        out.answer = format!("cannot encode the TSRequest: {e}");
        return out;
    }
    if let Err(e) = link.send(&bytes).await {
        out.answer = e.to_string();
        return out;
    }
    let frame = link.read_der().await;
    link.close().await;
    let frame = match frame {
        Ok(f) => f,
        Err(e) => {
            out.answer = format!("no TSRequest: {e}");
            return out;
        }
    };
    let ts = match TsRequest::from_buffer(&frame) {
        Ok(ts) => ts,
        Err(e) => {
            out.answer = format!("the TSRequest does not decode: {e}");
            return out;
        }
    };
    if let Some(code) = ts.error_code {
        out.answer = format!(
            "TSRequest errorCode {}",
            crate::codes::Display(crate::codes::Table::NtStatus, code.0)
        );
        return out;
    }
    match ts
        .nego_tokens
        .as_deref()
        .map(crate::dissect::credssp::auth_token)
    {
        Some(AuthToken::NtlmChallenge(info)) => {
            out.answer = "NTLM CHALLENGE".to_owned();
            out.info = Some(info);
        }
        Some(other) => out.answer = format!("not an NTLM CHALLENGE: {other:?}"),
        None => out.answer = "a TSRequest without a token".to_owned(),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_negotiate_reads_as_one() {
        let m = negotiate_message();
        assert_eq!(m.len(), 40);
        assert!(matches!(
            crate::dissect::credssp::auth_token(&m),
            AuthToken::NtlmNegotiate
        ));
    }
}
