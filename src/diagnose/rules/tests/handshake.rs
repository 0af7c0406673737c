//! The rules of [`super::super::handshake`], one test each (or more), in the order of the table.

use super::{Build, explained};
use crate::codes::neg_failure::{HYBRID_REQUIRED_BY_SERVER, SSL_REQUIRED_BY_SERVER};
use crate::codes::security_protocol::{PROTOCOL_HYBRID, PROTOCOL_RDP, PROTOCOL_SSL};
use crate::codes::tls_alert::PROTOCOL_VERSION;
use crate::pdu::{Negotiation, PduInfo};
use crate::trace::{CloseKind, ConnectError, Deadline, EventKind, PhaseName, Side};
use crate::verdict::Cause;

fn server_hello(version: u16) -> PduInfo {
    PduInfo::TlsServerHello {
        version,
        cipher_suite: 0x002f,
    }
}

#[test]
fn connected_once_the_font_map_came() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .ts_request(Side::Server, None, false, None)
        .enter(PhaseName::Active)
        .server("Font Map", PduInfo::FontMap)
        .finished();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "connected");
    assert_eq!((e.cause, e.phase), (Cause::Connected, None));
    assert!(e.hints.is_empty(), "{:?}", e.hints);
}

#[test]
fn connected_to_a_server_older_than_the_credssp_nonce() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .pdu(
            Side::Server,
            "TSRequest",
            PduInfo::TsRequest {
                version: 3,
                token: None,
                auth_info: false,
                pub_key_auth: true,
                client_nonce: false,
                error_code: None,
            },
        )
        .enter(PhaseName::Active)
        .finished();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "connected");
    assert!(e.detail.contains("CredSSP version 3"), "{}", e.detail);
    assert!(e.hints[0].contains("CVE-2018-0886"), "{:?}", e.hints);
}

#[test]
fn resolve_failed() {
    let trace = Build::new()
        .event(EventKind::ResolveFailed {
            host: "rdp.invalid".to_owned(),
            error: "no such host".to_owned(),
        })
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "resolve_failed");
    assert_eq!(e.cause, Cause::ResolveFailed);
    assert_eq!(
        e.detail,
        "the host name rdp.invalid did not resolve (no such host)"
    );
}

#[test]
fn connect_failed_refused_and_unanswered() {
    let refused = Build::new()
        .event(EventKind::ConnectFailed {
            addr: "192.0.2.1:3389".to_owned(),
            error: ConnectError::Refused,
        })
        .failed();
    let (rule, e) = explained(&refused);
    assert_eq!(rule, "connect_failed");
    assert_eq!((e.cause, e.phase), (Cause::Refused, Some(PhaseName::Tcp)));
    assert!(e.hints.is_empty());

    let unanswered = Build::new()
        .event(EventKind::TimedOut {
            deadline: Deadline::Total { seconds: 3.0 },
            waiting_for: "the SYN-ACK".to_owned(),
        })
        .event(EventKind::ConnectFailed {
            addr: "192.0.2.1:3389".to_owned(),
            error: ConnectError::TimedOut,
        })
        .failed();
    let (rule, e) = explained(&unanswered);
    assert_eq!(rule, "connect_failed");
    assert_eq!(e.cause, Cause::TimedOut);
    assert!(
        e.detail.contains("SYN within 3 s (--timeout)"),
        "{}",
        e.detail
    );
    assert!(e.hints[0].contains("drops SYNs"), "{:?}", e.hints);
}

#[test]
fn negotiation_failure_then_the_servers_close() {
    let trace = Build::new()
        .requesting(PROTOCOL_SSL)
        .x224(Negotiation::Failure {
            code: HYBRID_REQUIRED_BY_SERVER,
        })
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "negotiation_failure");
    assert_eq!(e.cause, Cause::NegotiationFailure);
    assert!(e.detail.starts_with("the server refused the requested security protocols (PROTOCOL_SSL): HYBRID_REQUIRED_BY_SERVER"), "{}", e.detail);
    assert_eq!(e.evidence.len(), 2, "{:?}", e.evidence);
    assert!(e.hints[0].contains("--user"), "{:?}", e.hints);
}

#[test]
fn negotiation_failure_to_credssp_alone_means_tls_without_nla() {
    let trace = Build::new()
        .requesting(PROTOCOL_HYBRID)
        .x224(Negotiation::Failure {
            code: SSL_REQUIRED_BY_SERVER,
        })
        .event(EventKind::ClientClosed {
            reason: "done".to_owned(),
        })
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "negotiation_failure");
    assert!(e.detail.contains("only supports TLS"), "{}", e.detail);
    assert!(
        e.detail.contains("kept the connection open"),
        "{}",
        e.detail
    );
    assert_eq!(
        e.hints,
        ["the server does TLS without NLA: try --security tls"]
    );
}

#[test]
fn negotiation_mismatch_when_the_server_falls_back_to_standard_security() {
    let trace = Build::new()
        .requesting(PROTOCOL_SSL | PROTOCOL_HYBRID)
        .x224(Negotiation::Response {
            selected_protocol: PROTOCOL_RDP,
            flags: 0,
        })
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "negotiation_mismatch");
    assert_eq!(e.cause, Cause::NegotiationMismatch);
    assert!(
        e.detail
            .starts_with("the server does not offer network level authentication"),
        "{}",
        e.detail
    );
    // What the client asked for, selected: no mismatch, the close explains it.
    let fine = Build::new()
        .requesting(PROTOCOL_SSL | PROTOCOL_HYBRID)
        .x224(Negotiation::Response {
            selected_protocol: PROTOCOL_HYBRID,
            flags: 0,
        })
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    assert_eq!(explained(&fine).0, "closed_by_client");
}

#[test]
fn client_limit() {
    let trace = Build::new()
        .enter(PhaseName::Tls)
        .event(EventKind::ClientLimit {
            detail: "the server chose RC4".to_owned(),
        })
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "client_limit");
    assert_eq!(
        (e.cause, e.detail.as_str()),
        (Cause::ClientLimit, "the server chose RC4")
    );
    assert_eq!(e.evidence.len(), 2);
}

#[test]
fn old_tls_version() {
    let trace = Build::new()
        .enter(PhaseName::Tls)
        .server("TLS ServerHello", server_hello(0x0301))
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "old_tls_version");
    assert_eq!(e.cause, Cause::ClientLimit);
    assert!(
        e.detail.starts_with("the server chose TLS 1.0"),
        "{}",
        e.detail
    );
    // TLS 1.2 is no limit.
    let modern = Build::new()
        .enter(PhaseName::Tls)
        .server("TLS ServerHello", server_hello(0x0303))
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    assert_ne!(explained(&modern).0, "old_tls_version");
}

#[test]
fn server_tls_alert_with_its_hint() {
    let trace = Build::new()
        .enter(PhaseName::Tls)
        .server(
            "TLS Alert",
            PduInfo::TlsAlert {
                level: Some(2),
                description: Some(PROTOCOL_VERSION),
                encrypted: false,
            },
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "server_tls_alert");
    assert_eq!(
        e.detail,
        "the server ended the TLS handshake with alert protocol_version"
    );
    assert!(
        e.hints[0].starts_with("protocol_version: the server accepts none"),
        "{:?}",
        e.hints
    );
}

#[test]
fn cleartext_ultimatum_in_answer_to_the_client_hello() {
    let trace = Build::new()
        .enter(PhaseName::Tls)
        .server(
            "MCS Disconnect Provider Ultimatum",
            PduInfo::DisconnectProviderUltimatum { reason: 1 },
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "cleartext_ultimatum");
    assert_eq!(e.cause, Cause::DisconnectedByServer);
    assert!(
        e.detail.contains(
            "(rn-provider-initiated) instead of TLS, then the server closed the connection (FIN)"
        ),
        "{}",
        e.detail
    );
    assert!(e.hints.is_empty(), "{:?}", e.hints);
}

fn tls_failed(error: rustls::Error) -> crate::trace::Trace {
    Build::new()
        .enter(PhaseName::Tls)
        .event(EventKind::TlsFailed {
            error: error.into(),
        })
        .failed()
}

#[test]
fn certificate_rejected() {
    let (rule, e) = explained(&tls_failed(rustls::Error::InvalidCertificate(
        rustls::CertificateError::Expired,
    )));
    assert_eq!(rule, "certificate_rejected");
    assert_eq!(e.cause, Cause::CertificateRejected);
}

#[test]
fn tls_failed_otherwise() {
    let (rule, e) = explained(&tls_failed(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::NoCipherSuitesInCommon,
    )));
    assert_eq!(rule, "tls_failed");
    assert_eq!(e.cause, Cause::TlsFailed);
    assert_eq!(
        e.detail,
        "the TLS handshake failed: peer is incompatible: NoCipherSuitesInCommon"
    );
}
