//! The gateway exchange as the trace keeps it: one [`Pdu`] per HTTP head and per packet of the HTTP
//! transport, made the same way by the probe (what it sent and read) and the replay (what a capture holds).
//! Authorization headers are kept by scheme only.

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

use base64::Engine as _;

use super::http::{self, Request, Response};
use super::packet::Packet;
use crate::pdu::{AuthToken, KrbMessage, PduInfo};
use crate::trace::{Fact, Millis, Pdu, Side, Trace};

/// How the summary of a packet named from the size of an encrypted record starts (the replay of a gateway
/// connection nobody could open).
pub const BY_SIZE: &str = "by the size of an encrypted record";

/// [MS-NLMP] 2.2.1 the message an NTLM token holds: `NEGOTIATE`, `CHALLENGE`, `AUTHENTICATE`.
fn ntlm_message(token: &str) -> Option<&'static str> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    // Inside SPNEGO (Negotiate) the NTLM message is somewhere in the DER: find its signature.
    let at = bytes.windows(8).position(|w| w == b"NTLMSSP\0")?;
    match bytes.get(at + 8) {
        Some(1) => Some("NEGOTIATE"),
        Some(2) => Some("CHALLENGE"),
        Some(3) => Some("AUTHENTICATE"),
        _ => None,
    }
}

/// [RFC 4559] the Kerberos token of a Negotiate header (`None` for NTLM inside SPNEGO, which the summary
/// names by its message).
fn kerberos_token(token: &str) -> Option<AuthToken> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    match crate::dissect::credssp::auth_token(&bytes) {
        t @ AuthToken::Kerberos { .. } => Some(t),
        _ => None,
    }
}

/// A Kerberos token in words: the message, and what it names.
fn kerberos_words(t: &AuthToken) -> String {
    let AuthToken::Kerberos { message, krb, .. } = t else {
        return String::new();
    };
    match krb {
        Some(KrbMessage::ApReq { ticket, .. }) => {
            format!("Kerberos {message} for {}", ticket.server)
        }
        Some(KrbMessage::Error(e)) => format!(
            "Kerberos KRB-ERROR {} for {}",
            crate::kerberos::message::error_name(e.code),
            e.server
        ),
        _ => format!("Kerberos {message}"),
    }
}

/// The PDU of a request head of `len` bytes.
pub fn request_pdu(at_ms: Millis, len: usize, req: &Request) -> Pdu {
    let auth = http::header(&req.headers, "Authorization").map(http::authorization);
    let upgrade = http::has_token(&req.headers, "Upgrade", "websocket");
    let mut summary = format!("{} {}", req.method, req.uri);
    let kerberos = auth
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Negotiate"))
        .and_then(|(_, token)| kerberos_token(token));
    if let Some((scheme, token)) = auth {
        match (ntlm_message(token), &kerberos) {
            (Some(m), _) => summary.push_str(&format!(", {scheme} {m}")),
            (None, Some(k)) => summary.push_str(&format!(", {scheme} {}", kerberos_words(k))),
            (None, None) => summary.push_str(&format!(", {scheme} credentials (not shown)")),
        }
    }
    if upgrade {
        summary.push_str(", WebSocket upgrade");
    }
    if http::header(&req.headers, "Transfer-Encoding").is_some_and(|v| v.contains("chunked")) {
        summary.push_str(", chunked body");
    }
    Pdu {
        at_ms,
        from: Side::Client,
        len,
        name: "HTTP request".to_owned(),
        summary,
        info: PduInfo::HttpRequest {
            method: req.method.clone(),
            auth_scheme: auth.map(|(s, _)| s.to_owned()),
            upgrade,
            kerberos,
        },
    }
}

/// The PDU of a response head of `len` bytes.
pub fn response_pdu(at_ms: Millis, len: usize, resp: &Response) -> Pdu {
    let offered: Vec<String> = http::challenges(&resp.headers)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let mut summary = format!("{} {}", resp.status, resp.reason);
    let challenge = http::challenges(&resp.headers)
        .into_iter()
        .find_map(|(_, t)| t.and_then(|t| ntlm_message(&t)));
    let kerberos = http::challenges(&resp.headers)
        .into_iter()
        .filter(|(s, _)| s.eq_ignore_ascii_case("Negotiate"))
        .find_map(|(_, t)| t.and_then(|t| kerberos_token(&t)));
    match (challenge, &kerberos) {
        (Some(m), _) => summary.push_str(&format!(", {m}")),
        (None, Some(k)) => summary.push_str(&format!(", {}", kerberos_words(k))),
        (None, None) if !offered.is_empty() => {
            summary.push_str(&format!(", offers {}", offered.join(", ")));
        }
        (None, None) => {}
    }
    Pdu {
        at_ms,
        from: Side::Server,
        len,
        name: "HTTP response".to_owned(),
        summary,
        info: PduInfo::HttpResponse {
            status: resp.status,
            auth_offered: offered,
            kerberos,
        },
    }
}

/// The PDU of one packet of the HTTP transport (`None` for data packets, which carry the RDP connection).
pub fn packet_pdu(at_ms: Millis, from: Side, bytes: &[u8]) -> Option<Pdu> {
    match Packet::decode(bytes) {
        Ok(Packet::Data(_)) => None,
        Ok(p) => Some(Pdu {
            at_ms,
            from,
            len: bytes.len(),
            name: p.name().to_owned(),
            summary: p.summary(),
            info: PduInfo::GatewayPacket {
                packet_type: p.packet_type(),
                code: p.code(),
            },
        }),
        Err(e) => Some(Pdu {
            at_ms,
            from,
            len: bytes.len(),
            name: "HTTP transport packet".to_owned(),
            summary: format!("does not decode: {e}"),
            info: PduInfo::Undecoded {
                detail: e.to_string(),
                offset: Some(e.offset),
            },
        }),
    }
}

/// The PDU of one PDU of RPC over HTTP ([MS-TSGU] 3.2): an RTS PDU by its name, a bind and its answer, a
/// TsProxy request or answer by its method (`opnum`: the request's, or the call an answer is to), a fault
/// with its status. NTLM tokens are named by their message.
pub fn rpc_pdu(at_ms: Millis, from: Side, bytes: &[u8], opnum: Option<u16>) -> Pdu {
    use super::rpc::ndr::{self, Reply};
    use super::rpc::pdu::{self as rpc, Body};
    let pdu = match rpc::Pdu::decode(bytes) {
        Ok(p) => p,
        Err(e) => {
            return Pdu {
                at_ms,
                from,
                len: bytes.len(),
                name: "RPC PDU".to_owned(),
                summary: format!("does not decode: {e}"),
                info: PduInfo::Undecoded {
                    detail: e.to_string(),
                    offset: Some(e.offset),
                },
            };
        }
    };
    let ntlm = pdu
        .auth
        .as_ref()
        .and_then(|a| {
            let token = base64::engine::general_purpose::STANDARD.encode(&a.value);
            ntlm_message(&token)
        })
        .map(|m| format!(", NTLM {m}"))
        .unwrap_or_default();
    let method = |op: Option<u16>| op.map(ndr::method).unwrap_or("a call");
    let (name, summary, op, code) = match &pdu.body {
        Body::Rts(rts) => (rts.name().to_owned(), rts.summary(), None, None),
        Body::Bind { contexts, .. } => (
            "bind".to_owned(),
            format!("{} presentation contexts{ntlm}", contexts.len()),
            None,
            None,
        ),
        Body::BindAck { max_recv, .. } => (
            "bind_ack".to_owned(),
            format!("fragments up to {max_recv} bytes{ntlm}"),
            None,
            None,
        ),
        Body::BindNak { reason } => (
            "bind_nak".to_owned(),
            format!("reason {reason}"),
            None,
            None,
        ),
        Body::Auth3 { .. } => (
            "rpc_auth_3".to_owned(),
            ntlm.trim_start_matches(", ").to_owned(),
            None,
            None,
        ),
        Body::Request { opnum, stub, .. } => (
            format!("{} request", ndr::method(*opnum)),
            format!("call {}, {} bytes of stub", pdu.call_id, stub.len()),
            Some(*opnum),
            None,
        ),
        Body::Response { stub, .. } => {
            let status = opnum
                .and_then(|op| Reply::decode(op, stub).ok())
                .map(|r| r.status());
            let summary = match status {
                Some(s) => format!(
                    "call {}: {}",
                    pdu.call_id,
                    crate::codes::Display(crate::codes::Table::Gateway, s)
                ),
                None => format!("call {}, {} bytes of stub", pdu.call_id, stub.len()),
            };
            (
                format!("{} response", method(opnum)),
                summary,
                opnum,
                status,
            )
        }
        Body::Fault { status, .. } => (
            format!("{} fault", method(opnum)),
            format!(
                "call {}: {}",
                pdu.call_id,
                crate::codes::Display(crate::codes::Table::Gateway, *status)
            ),
            opnum,
            Some(*status),
        ),
    };
    Pdu {
        at_ms,
        from,
        len: bytes.len(),
        name,
        summary,
        info: PduInfo::RpcPdu {
            ptype: pdu.ptype(),
            opnum: op,
            code,
        },
    }
}

/// The facts of a gateway's answer, in the current phase (the probe's and the replay's).
pub fn reply_facts(trace: &mut Trace, reply: &Packet) {
    match reply {
        Packet::HandshakeResponse {
            major,
            minor,
            server_version,
            ..
        } => trace.fact(
            Fact::GatewayVersion,
            format!("{major}.{minor}, server version {server_version}"),
        ),
        Packet::TunnelResponse {
            tunnel_id,
            caps,
            consent,
            ..
        } => {
            if let Some(id) = tunnel_id {
                trace.fact(Fact::GatewayTunnelId, *id);
            }
            if let Some(c) = caps {
                trace.fact(Fact::GatewayCapabilities, format!("0x{c:x}"));
            }
            if let Some(m) = consent {
                trace.fact(Fact::GatewayMessage, m.clone());
            }
        }
        Packet::TunnelAuthResponse {
            redirection_flags,
            idle_timeout,
            ..
        } => {
            if let Some(f) = redirection_flags {
                trace.fact(Fact::GatewayRedirectionFlags, format!("0x{f:08x}"));
            }
            if let Some(t) = idle_timeout {
                trace.fact(Fact::GatewayIdleTimeout, format!("{t} min"));
            }
        }
        Packet::ChannelResponse {
            channel_id: Some(id),
            ..
        } => trace.fact(Fact::GatewayChannelId, *id),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_is_kept_by_scheme() {
        let negotiate = crate::scan::ntlm::negotiate_message();
        let token = base64::engine::general_purpose::STANDARD.encode(negotiate);
        let req = Request {
            method: "RDG_OUT_DATA".to_owned(),
            uri: "/remoteDesktopGateway/".to_owned(),
            headers: vec![
                ("Authorization".to_owned(), format!("NTLM {token}")),
                ("Upgrade".to_owned(), "websocket".to_owned()),
            ],
        };
        let pdu = request_pdu(1.0, 100, &req);
        assert_eq!(
            pdu.summary,
            "RDG_OUT_DATA /remoteDesktopGateway/, NTLM NEGOTIATE, WebSocket upgrade"
        );
        let basic = Request {
            headers: vec![(
                "Authorization".to_owned(),
                format!("Basic {}", http::basic("u", "marker-secret")),
            )],
            ..req
        };
        let pdu = request_pdu(1.0, 100, &basic);
        let json = serde_json::to_string(&pdu).unwrap();
        assert!(!json.contains(&http::basic("u", "marker-secret")), "{json}");
        assert!(pdu.summary.contains("Basic credentials (not shown)"));
    }
}
