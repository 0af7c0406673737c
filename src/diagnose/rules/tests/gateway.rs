//! The rules of [`super::super::gateway`], one test each (or more), in the order of the table.

use super::{Build, explained};
use crate::codes::gateway::{
    E_PROXY_MAXCONNECTIONSREACHED, E_PROXY_NAP_ACCESSDENIED, E_PROXY_RAP_ACCESSDENIED,
};
use crate::gateway::packet::kind;
use crate::pdu::{AuthToken, PduInfo};
use crate::trace::{
    CertificateFailure, CloseKind, ConnectError, Deadline, EventKind, PhaseName, Side, TlsError,
    TunnelEnd,
};
use crate::verdict::Cause;

const GATEWAY: &str = "https://127.0.0.1:8443";

fn request(auth_scheme: Option<&str>) -> PduInfo {
    PduInfo::HttpRequest {
        method: "RDG_OUT_DATA".to_owned(),
        auth_scheme: auth_scheme.map(str::to_owned),
        upgrade: true,
        kerberos: None,
    }
}

fn response(status: u16, offered: &[&str]) -> PduInfo {
    PduInfo::HttpResponse {
        status,
        auth_offered: offered.iter().map(|s| (*s).to_owned()).collect(),
        kerberos: None,
    }
}

/// A trace through the gateway up to its tunnel phase: connected, authenticated, upgraded.
fn authenticated() -> Build {
    Build::through(GATEWAY)
        .enter(PhaseName::GatewayAuth)
        .client("RDG_OUT_DATA", request(Some("NTLM")))
        .server("HTTP 101 Switching Protocols", response(101, &[]))
        .enter(PhaseName::GatewayTunnel)
}

/// A trace through the gateway, the tunnel and the channel open, in `phase` of the RDP connection.
fn tunnelled(phase: PhaseName) -> Build {
    authenticated()
        .server(
            "HTTP_CHANNEL_RESPONSE",
            PduInfo::GatewayPacket {
                packet_type: kind::CHANNEL_RESPONSE,
                code: Some(0),
            },
        )
        .enter(PhaseName::Tcp)
        .enter(phase)
}

#[test]
fn gateway_unreachable_refused_and_unresolved() {
    let refused = Build::through(GATEWAY)
        .event(EventKind::ConnectFailed {
            addr: "127.0.0.1:8443".to_owned(),
            error: ConnectError::Refused,
        })
        .failed();
    let (rule, e) = explained(&refused);
    assert_eq!(rule, "gateway_unreachable");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::Refused, Some(PhaseName::GatewayConnect))
    );
    assert!(e.detail.contains("RD Gateway"), "{}", e.detail);

    let unresolved = Build::through("https://gw.invalid")
        .event(EventKind::ResolveFailed {
            host: "gw.invalid".to_owned(),
            error: "no such host".to_owned(),
        })
        .failed();
    let (rule, e) = explained(&unresolved);
    assert_eq!(rule, "gateway_unreachable");
    assert_eq!(e.cause, Cause::ResolveFailed);
    assert!(
        e.detail.contains("RD Gateway's name gw.invalid"),
        "{}",
        e.detail
    );
}

#[test]
fn gateway_tls_certificate_refused() {
    let trace = Build::through(GATEWAY)
        .event(EventKind::TlsFailed {
            error: TlsError::Certificate(CertificateFailure::Strict(vec![
                "self-signed".to_owned(),
            ])),
        })
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "gateway_tls");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::CertificateRejected, Some(PhaseName::GatewayConnect))
    );
    assert!(e.hints[0].contains("RD Gateway Manager"), "{:?}", e.hints);
}

#[test]
fn gateway_http_error_without_and_with_credentials() {
    let asked = Build::through(GATEWAY)
        .enter(PhaseName::GatewayAuth)
        .client("RDG_OUT_DATA", request(None))
        .server("HTTP 401", response(401, &["NTLM", "Negotiate"]))
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&asked);
    assert_eq!(rule, "gateway_http_error");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::GatewayHttpError, Some(PhaseName::GatewayAuth))
    );
    assert!(e.detail.contains("sent no credentials"), "{}", e.detail);

    let refused = Build::through(GATEWAY)
        .enter(PhaseName::GatewayAuth)
        .client("RDG_OUT_DATA", request(Some("NTLM")))
        .server("HTTP 401", response(401, &["NTLM"]))
        .failed();
    let (rule, e) = explained(&refused);
    assert_eq!(rule, "gateway_http_error");
    assert!(e.detail.contains("refused the credentials"), "{}", e.detail);

    let not_a_gateway = Build::through(GATEWAY)
        .enter(PhaseName::GatewayAuth)
        .client("RDG_OUT_DATA", request(None))
        .server("HTTP 404", response(404, &[]))
        .failed();
    let (rule, e) = explained(&not_a_gateway);
    assert_eq!(rule, "gateway_http_error");
    assert!(e.detail.contains("no RD Gateway"), "{}", e.detail);
}

#[test]
fn gateway_refused_by_the_cap_the_rap_and_its_limit() {
    for (packet_type, code, words) in [
        (kind::TUNNEL_RESPONSE, E_PROXY_NAP_ACCESSDENIED, "RD CAP"),
        (kind::CHANNEL_RESPONSE, E_PROXY_RAP_ACCESSDENIED, "RD RAP"),
        (
            kind::TUNNEL_RESPONSE,
            E_PROXY_MAXCONNECTIONSREACHED,
            "maximum number of connections",
        ),
    ] {
        let trace = authenticated()
            .server(
                "gateway answer",
                PduInfo::GatewayPacket {
                    packet_type,
                    code: Some(code),
                },
            )
            .closed(Side::Server, CloseKind::Fin)
            .failed();
        let (rule, e) = explained(&trace);
        assert_eq!(rule, "gateway_refused");
        assert_eq!(
            (e.cause, e.phase),
            (Cause::GatewayRefused, Some(PhaseName::GatewayTunnel))
        );
        assert!(e.detail.contains(words), "{}", e.detail);
        assert!(e.detail.contains(&format!("{code:#010x}")), "{}", e.detail);
    }
}

#[test]
fn gateway_ended_without_an_answer() {
    let closed = authenticated()
        .closed(Side::Server, CloseKind::Rst)
        .failed();
    let (rule, e) = explained(&closed);
    assert_eq!(rule, "gateway_ended");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::ResetByServer, Some(PhaseName::GatewayTunnel))
    );

    // The client closing during the gateway's phases is not the gateway ending it.
    let by_client = authenticated()
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&by_client);
    assert_ne!(rule, "gateway_ended");
    assert_eq!(e.cause, Cause::ClosedByClient, "{rule}: {}", e.detail);

    let silent = authenticated()
        .event(EventKind::TimedOut {
            deadline: Deadline::Phase { seconds: 5.0 },
            waiting_for: "the gateway's tunnel response".to_owned(),
        })
        .failed();
    let (rule, e) = explained(&silent);
    assert_eq!(rule, "gateway_ended");
    assert_eq!(e.cause, Cause::TimedOut);
}

#[test]
fn tunnel_ended_dropped_and_closed_with_a_code() {
    let dropped = tunnelled(PhaseName::Tls)
        .client("TLS ClientHello", PduInfo::TlsEncrypted)
        .event(EventKind::TunnelEnded {
            end: TunnelEnd::Dropped {
                how: CloseKind::Fin,
            },
        })
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&dropped);
    assert_eq!(rule, "tunnel_ended");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::TunnelDropped, Some(PhaseName::Tls))
    );

    let closed = tunnelled(PhaseName::Credssp)
        .event(EventKind::TunnelEnded {
            end: TunnelEnd::ChannelClose {
                status: E_PROXY_RAP_ACCESSDENIED,
            },
        })
        .failed();
    let (rule, e) = explained(&closed);
    assert_eq!(rule, "tunnel_ended");
    assert_eq!(e.cause, Cause::GatewayRefused);

    // A close with ERROR_SUCCESS relays the target's own close: the rules of closes explain it.
    let relayed = tunnelled(PhaseName::Credssp)
        .ts_request(Side::Client, Some(AuthToken::NtlmNegotiate), false, None)
        .event(EventKind::TunnelEnded {
            end: TunnelEnd::ChannelClose { status: 0 },
        })
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, _) = explained(&relayed);
    assert_ne!(rule, "tunnel_ended");
}

#[test]
fn a_gateway_connection_nobody_decrypted_is_named_by_its_sizes() {
    let mut b = Build::through(GATEWAY)
        .enter(PhaseName::GatewayAuth)
        .enter(PhaseName::GatewayTunnel);
    for (from, packet_type) in [
        (Side::Client, kind::HANDSHAKE_REQUEST),
        (Side::Server, kind::HANDSHAKE_RESPONSE),
        (Side::Server, kind::DATA),
    ] {
        b.trace.record_pdu(crate::trace::Pdu {
            at_ms: 5.0,
            from,
            len: 20,
            name: "packet".to_owned(),
            summary: format!("{} (20 B)", crate::gateway::record::BY_SIZE),
            info: PduInfo::GatewayPacket {
                packet_type,
                code: None,
            },
        });
    }
    let trace = b.closed(Side::Client, CloseKind::Fin).finished();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "gateway_not_decrypted");
    assert_eq!(e.cause, Cause::ClosedByClient);
    assert!(
        e.detail.contains("X.224 Connection Confirm") && e.detail.contains("not known"),
        "{}",
        e.detail
    );
}

#[test]
fn a_gateway_that_refuses_the_kerberos_ticket_is_named_with_its_krb_error() {
    let server = "HTTP/gw.corp.example@CORP.EXAMPLE";
    let error =
        crate::pdu::KrbErrorInfo::about(crate::codes::kerberos::KRB_AP_ERR_MODIFIED, server);
    let trace = Build::through(GATEWAY)
        .enter(PhaseName::GatewayAuth)
        .client("RDG_OUT_DATA", request(Some("Negotiate")))
        .server(
            "HTTP response",
            PduInfo::HttpResponse {
                status: 401,
                auth_offered: vec!["Negotiate".to_owned()],
                kerberos: Some(AuthToken::Kerberos {
                    message: "KRB-ERROR".to_owned(),
                    spnego: None,
                    krb: Some(crate::pdu::KrbMessage::Error(error)),
                }),
            },
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "gateway_http_error");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::GatewayHttpError, Some(PhaseName::GatewayAuth))
    );
    assert!(
        e.detail.contains("KRB_AP_ERR_MODIFIED") && e.detail.contains(server),
        "{}",
        e.detail
    );
    assert!(
        e.hints.iter().any(|h| h.contains("setspn")),
        "{:?}",
        e.hints
    );
}
