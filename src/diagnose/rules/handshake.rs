//! Rules on how far the handshake got: the connected verdict, the name and the TCP connect, the X.224
//! negotiation, the TLS handshake.

use super::syn_dropped_hint;
use crate::codes::neg_failure::{
    HYBRID_REQUIRED_BY_SERVER, INCONSISTENT_FLAGS, SSL_CERT_NOT_ON_SERVER,
    SSL_NOT_ALLOWED_BY_SERVER, SSL_REQUIRED_BY_SERVER, SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER,
};
use crate::codes::security_protocol::{PROTOCOL_HYBRID, PROTOCOL_RDP, PROTOCOL_SSL};
use crate::codes::tls_alert::{HANDSHAKE_FAILURE, INTERNAL_ERROR, PROTOCOL_VERSION};
use crate::codes::{self, Table};
use crate::diagnose::Explained;
use crate::diagnose::findings::{Findings, TlsFailure};
use crate::dissect::tls::{old_version_limit, version_name};
use crate::trace::{ConnectError, PhaseName, Side};
use crate::verdict::Cause;

/// [MS-CSSP] 3.1.5: from version 5 on, the TLS key is bound with a client nonce (the CVE-2018-0886 update).
const CREDSSP_NONCE_VERSION: u32 = 5;

/// [RFC 5246] TLS 1.2, the oldest version the probe's TLS stack speaks.
const TLS12: u16 = 0x0303;

/// Font Map received and the session not deactivated for good: the connection sequence is complete.
pub fn connected(f: &Findings) -> Option<Explained> {
    if f.failed.is_some() || !f.reached_active {
        return None;
    }
    let selected = f.selected_protocol_words.unwrap_or("an unknown protocol");
    let tls = f
        .tls_version_words
        .map(|v| format!(" over {v}"))
        .unwrap_or_default();
    let old_credssp = f
        .credssp_server_version
        .filter(|v| *v < CREDSSP_NONCE_VERSION);
    let credssp = old_credssp.map(|v| format!(
        "; the server speaks CredSSP version {v}, which binds the TLS key without a nonce ([MS-CSSP] 3.1.5) and has no errorCode: older than the CVE-2018-0886 update"
    )).unwrap_or_default();
    let cert = if f.cert_problems.is_empty() {
        String::new()
    } else {
        format!(
            "; the certificate has problems, not fatal without --strict-cert: {}",
            f.cert_problems.join(", ")
        )
    };
    let hint = old_credssp.map(|_| "Windows clients with the CVE-2018-0886 update refuse a server that cannot bind the TLS key with a nonce (\"CredSSP encryption oracle remediation\"), unless their Encryption Oracle Remediation policy is set to Vulnerable: update the server".to_owned());
    Some(
        Explained::new(
            Cause::Connected,
            None,
            format!("the connection reached the active state ({selected}{tls}){credssp}{cert}"),
        )
        .evidence(["Font Map received: the connection sequence is complete".to_owned()])
        .hint(hint),
    )
}

/// The host name did not resolve.
pub fn resolve_failed(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let r = f.resolve_failure?;
    Some(
        Explained::failed(
            Cause::ResolveFailed,
            phase,
            format!("the host name {} did not resolve ({})", r.host, r.error),
        )
        .evidence([format!(
            "{:.1} ms: {} did not resolve: {}",
            r.at_ms, r.host, r.error
        )]),
    )
}

/// The TCP connect failed: refused (a RST to the SYN), no answer, unreachable.
pub fn connect_failed(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::Tcp)?;
    let c = f.connect_failure?;
    let addr = c.addr;
    let (cause, words) = match c.error {
        ConnectError::Refused => (
            Cause::Refused,
            format!(
                "{addr} refused the TCP connection (RST to the SYN): nothing listens there, or a firewall rejects it"
            ),
        ),
        ConnectError::TimedOut => {
            let within = f
                .timeout
                .map(|t| format!(" within {}", t.within()))
                .unwrap_or_default();
            (
                Cause::TimedOut,
                format!(
                    "{addr} did not answer the TCP SYN{within}: a firewall drops it, or the host is down"
                ),
            )
        }
        ConnectError::Unreachable(why) => {
            (Cause::Unreachable, format!("{addr} is unreachable: {why}"))
        }
        ConnectError::Other(why) => (
            Cause::Unreachable,
            format!("the TCP connection to {addr} failed: {why}"),
        ),
    };
    let evidence = format!("{:.1} ms: connect to {addr}: {words}", c.at_ms);
    Some(
        Explained::failed(cause, phase, words)
            .evidence([evidence])
            .hint(syn_dropped_hint(cause, phase)),
    )
}

/// What to try after each [2.2.1.2.2] RDP_NEG_FAILURE code.
static NEG_FAILURE_HINTS: &[(u32, &str)] = &[
    (
        SSL_REQUIRED_BY_SERVER,
        "the server requires TLS or NLA: try --security tls, or --security nla with --user",
    ),
    (
        SSL_NOT_ALLOWED_BY_SERVER,
        "the server only speaks Standard RDP Security: try --security rdp",
    ),
    (
        SSL_CERT_NOT_ON_SERVER,
        "the server has no usable TLS certificate configured",
    ),
    (
        INCONSISTENT_FLAGS,
        "the client sent inconsistent security flags in its negotiation request",
    ),
    (
        HYBRID_REQUIRED_BY_SERVER,
        "the server requires NLA: give --user (and a password) so that rdptrace can do CredSSP",
    ),
    (
        SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER,
        "the server requires TLS with client certificate authentication",
    ),
];

/// [2.2.1.2.2] SSL_REQUIRED_BY_SERVER in answer to a request for CredSSP without TLS: "If only CredSSP was
/// requested then the server only supports TLS", so the server does TLS and no network level authentication.
fn tls_without_nla(f: &Findings, code: u32) -> bool {
    code == SSL_REQUIRED_BY_SERVER
        && f.requested_protocols
            .is_some_and(|req| req & PROTOCOL_HYBRID != 0 && req & PROTOCOL_SSL == 0)
}

/// [2.2.1.2.2] The server refused the requested protocols with an RDP_NEG_FAILURE; [3.3.5.3.2] it must then
/// close the connection.
pub fn negotiation_failure(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let n = f.neg_failure?;
    let mut evidence = vec![format!(
        "{:.1} ms: server RDP_NEG_FAILURE {}",
        n.at_ms,
        codes::Display(Table::NegFailure, n.code)
    )];
    let requested = f
        .requested_protocols
        .map_or_else(|| "no negotiation".to_owned(), codes::protocol_names);
    let tls_only = tls_without_nla(f, n.code);
    let meaning = if tls_only {
        "to a request for CredSSP alone this means that the server does not do network level authentication and only supports TLS"
    } else {
        codes::meaning(Table::NegFailure, n.code)
    };
    let after = match (f.close, f.client_closed) {
        (Some(close), _) if close.by == Side::Server => {
            evidence.extend(f.ending_evidence());
            ""
        }
        (_, true) => {
            evidence.push(
                "the server kept the connection open after its RDP_NEG_FAILURE; the client closed it"
                    .to_owned(),
            );
            "; the server then kept the connection open instead of closing it as it must ([MS-RDPBCGR] 3.3.5.3.2; FreeRDP-based servers do this), so the client closed it"
        }
        _ => "",
    };
    let hint = if tls_only {
        "the server does TLS without NLA: try --security tls"
    } else {
        NEG_FAILURE_HINTS
            .iter()
            .find(|(c, _)| *c == n.code)
            .map_or("compare --security with what the server allows", |(_, h)| h)
    };
    Some(
        Explained::failed(
            Cause::NegotiationFailure,
            phase,
            format!(
                "the server refused the requested security protocols ({requested}): {} ({meaning}){after}",
                codes::name(Table::NegFailure, n.code),
            ),
        )
        .evidence(evidence)
        .hint([hint.to_owned()]),
    )
}

/// [3.3.5.3.2] The server selected a protocol the client did not offer, or answered without negotiation
/// data to a client that asked for more than Standard RDP Security.
pub fn negotiation_mismatch(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::X224)?;
    let req = f.requested_protocols?;
    let sel = match (f.selected_protocol, f.no_negotiation) {
        (Some(sel), _) => sel,
        (None, true) => PROTOCOL_RDP,
        (None, false) => return None,
    };
    let offered = if sel == PROTOCOL_RDP {
        req == PROTOCOL_RDP
    } else {
        sel & req == sel
    };
    if offered {
        return None;
    }
    let how = if f.no_negotiation {
        "answered without negotiation data (Standard RDP Security only)".to_owned()
    } else {
        format!("selected {}", codes::protocol_names(sel))
    };
    let req_names = codes::protocol_names(req);
    let no_nla = if req & PROTOCOL_HYBRID != 0 && sel & PROTOCOL_HYBRID == 0 {
        "the server does not offer network level authentication (CredSSP): "
    } else {
        ""
    };
    let detail = if sel == PROTOCOL_RDP {
        format!(
            "{no_nla}the server {how} although the client asked for {req_names}: a server may always fall back to Standard RDP Security ([MS-RDPBCGR] 3.3.5.3.2), but a client that requires {req_names}, as this probe does, stops here; probe with --security rdp to go on"
        )
    } else {
        format!(
            "{no_nla}the server {how}, which the client did not ask for ({req_names}): instead of refusing with RDP_NEG_FAILURE it chose something else, which [MS-RDPBCGR] 3.3.5.3.2 does not allow; a client that requires {req_names} stops here"
        )
    };
    Some(
        Explained::failed(Cause::NegotiationMismatch, phase, detail).evidence([format!(
            "server {how} after the client asked for {req_names}"
        )]),
    )
}

/// The client cannot go on although the server is within the specification (recorded by the producer).
pub fn client_limit(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let l = f.client_limit?;
    Some(
        Explained::failed(Cause::ClientLimit, phase, l.detail)
            .evidence([format!("{:.1} ms: {}", l.at_ms, l.detail)])
            .evidence(f.close_evidence()),
    )
}

/// [5.4.5.1] The server chose a TLS version below 1.2, which the specification allows and the client does
/// not speak: seen from a capture, such a client just leaves.
pub fn old_tls_version(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::Tls)?;
    let hello = f.server_hello.filter(|h| h.version < TLS12)?;
    if f.tls_established {
        return None;
    }
    Some(
        Explained::failed(Cause::ClientLimit, phase, old_version_limit(hello.version))
            .evidence([format!(
                "{:.1} ms: server TLS ServerHello chose {}",
                hello.at_ms,
                version_name(hello.version)
            )])
            .evidence(f.close_evidence()),
    )
}

/// What to look at after a fatal TLS alert from the server ([RFC 8446] 6.2), after the alert's name.
static TLS_ALERT_HINTS: &[(u8, &str)] = &[
    (
        HANDSHAKE_FAILURE,
        "no cipher suite or signature algorithm in common; the server may allow only legacy suites (static RSA, CBC, 3DES): check its TLS configuration (sslscan --rdp)",
    ),
    (
        PROTOCOL_VERSION,
        "the server accepts none of the TLS versions offered (TLS 1.2 and 1.3); an old server limited to TLS 1.0 or 1.1 answers this way (xrdp and OpenSSL do); enable TLS 1.2 on the server",
    ),
    (
        INTERNAL_ERROR,
        "FreeRDP-based servers answer a TLS version they refuse this way; otherwise look at the server's log",
    ),
];

/// [RFC 8446] 6 The server ended the TLS handshake with an alert (in clear, or before TLS was up).
pub fn server_tls_alert(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let alert = f.server_alert?;
    if phase > PhaseName::Tls && alert.encrypted {
        return None;
    }
    let name = alert.description.map_or_else(
        || "encrypted alert".to_owned(),
        |d| codes::name(Table::TlsAlert, u32::from(d)),
    );
    let hint = alert.description.and_then(|d| {
        let (_, hint) = TLS_ALERT_HINTS.iter().find(|(a, _)| *a == d)?;
        Some(format!("{name}: {hint}"))
    });
    Some(
        Explained::failed(
            Cause::TlsAlert,
            phase,
            format!("the server ended the TLS handshake with alert {name}"),
        )
        .evidence([format!("{:.1} ms: server TLS alert {name}", alert.at_ms)])
        .hint(hint),
    )
}

/// [2.2.2.3] A Disconnect Provider Ultimatum in clear in answer to the ClientHello: the server could not
/// start TLS, as xrdp does when its certificate or key is unusable. No hint on how xfreerdp shows it: a
/// cleartext ultimatum fails xfreerdp's TLS layer first, which never reads it.
pub fn cleartext_ultimatum(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::Tls)?;
    let u = f.ultimatum?;
    if f.tls_established {
        return None;
    }
    let name = codes::name(Table::DpuReason, u32::from(u.reason));
    let then = f
        .close_words()
        .map(|c| format!(", then {c}"))
        .unwrap_or_default();
    Some(
        Explained::failed(
            Cause::DisconnectedByServer,
            phase,
            format!(
                "the server selected TLS, then answered the ClientHello with a cleartext Disconnect Provider Ultimatum ({name}) instead of TLS{then}: it could not start TLS, which points to its certificate or private key (missing, unreadable, or not matching the certificate), as xrdp does"
            ),
        )
        .evidence([format!(
            "{:.1} ms: server Disconnect Provider Ultimatum {name}, in clear instead of TLS",
            u.at_ms
        )])
        .evidence(f.close_evidence()),
    )
}

/// The client refused the server's certificate (`--strict-cert`, or a TLS stack that verifies).
pub fn certificate_rejected(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::Tls)?;
    let t = f.tls_failure.filter(|t| t.certificate_failure())?;
    Some(tls_failure(Cause::CertificateRejected, phase, t))
}

/// The client's TLS handshake failed for another reason than an alert from the server or its certificate.
pub fn tls_failed(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::Tls)?;
    let t = f.tls_failure?;
    Some(tls_failure(Cause::TlsFailed, phase, t))
}

fn tls_failure(cause: Cause, phase: PhaseName, t: TlsFailure) -> Explained {
    Explained::failed(
        cause,
        phase,
        format!("the TLS handshake failed: {}", t.error),
    )
    .evidence([format!(
        "{:.1} ms: TLS handshake failed: {}",
        t.at_ms, t.error
    )])
}
