//! Diagnosis: a pure function from a [`Trace`] to a [`Verdict`].
//!
//! The trace holds observations (PDUs, closes, deadlines); this module decides which of them ended the
//! connection, in order from the most specific evidence (a code the server sent) to the least (the
//! connection just closed).

use crate::codes::{self, Table};
use crate::dissect::early_user_auth::ACCESS_DENIED;
use crate::dissect::licensing::{ST_TOTAL_ABORT, STATUS_VALID_CLIENT};
use crate::dissect::x224::PROTOCOL_RDP;
use crate::mstsc;
use crate::pdu::{LicenseMessage, Negotiation, PduInfo};
use crate::trace::{CloseKind, ConnectError, EventKind, PhaseName, PhaseStatus, Side, Trace};
use crate::verdict::{Cause, Code, Verdict};

/// The verdict on a trace.
pub fn diagnose(trace: &Trace) -> Verdict {
    let findings = Findings::gather(trace);
    let failed = trace.failed_phase();
    let reached_active = trace.phase(PhaseName::Active).status == PhaseStatus::Ok
        || trace.phase(PhaseName::Active).start_ms.is_some();

    let (cause, phase, detail, mut evidence) = match failed {
        None if reached_active => (
            Cause::Connected,
            None,
            connected_detail(trace),
            vec!["Font Map received: the connection sequence is complete".to_owned()],
        ),
        None => (
            Cause::CaptureEnded,
            Some(trace.current()),
            format!(
                "the trace ends in the {} phase with the connection still open",
                trace.current()
            ),
            Vec::new(),
        ),
        Some(phase) => {
            let (cause, detail, evidence) = explain_failure(trace, phase, &findings);
            (cause, Some(phase), detail, evidence)
        }
    };

    let error_info = findings.error_info.map(|(_, code)| Code {
        code,
        name: codes::name(Table::ErrorInfo, code),
    });
    if let Some((at, code)) = findings.error_info {
        let line = format!(
            "{at:.1} ms: server Set Error Info {}",
            codes::Display(Table::ErrorInfo, code)
        );
        if !evidence.contains(&line) {
            evidence.push(line);
        }
    }
    let hints = hints(trace, cause, &findings);
    let mstsc = mstsc::translate(trace, cause, phase, findings.error_info.map(|(_, c)| c));
    Verdict {
        ok: cause == Cause::Connected,
        phase,
        cause,
        detail,
        error_info,
        mstsc,
        evidence,
        hints,
    }
}

/// The evidence diagnosis looks at, collected once.
#[derive(Debug, Default)]
struct Findings {
    neg_failure: Option<(f64, u32)>,
    selected: Option<u32>,
    no_negotiation: bool,
    server_alert: Option<(f64, Option<u8>, bool)>,
    client_alert: Option<(f64, Option<u8>)>,
    credssp_error: Option<(f64, u32)>,
    early_auth: Option<(f64, u32)>,
    /// The last nonzero Set Error Info.
    error_info: Option<(f64, u32)>,
    license_error: Option<(f64, u32, u32)>,
    redirected: Option<(f64, String)>,
    deactivated: Option<f64>,
    reactivated_after_deactivate: bool,
    dpu_from_server: Option<(f64, u8)>,
    closed: Option<(f64, Side, CloseKind)>,
    timed_out: Option<(f64, String, f64, bool)>,
    protocol_error: Option<(f64, Side, String, Option<usize>, String)>,
    client_limit: Option<(f64, String)>,
    tls_failed: Option<(f64, String)>,
    connect_failed: Option<(f64, String, ConnectError)>,
    resolve_failed: Option<(f64, String, String)>,
    client_closed: bool,
    capture_ended: bool,
    incomplete_server: Option<(f64, u64, u8)>,
    credssp_auth_sent: bool,
    last_server_pdu: Option<(PhaseName, String)>,
    last_client_pdu: Option<(PhaseName, String)>,
}

impl Findings {
    fn gather(trace: &Trace) -> Self {
        let mut f = Findings::default();
        for (_, pdu) in trace.pdus() {
            match &pdu.info {
                PduInfo::X224ConnectionConfirm { negotiation } => match negotiation {
                    Negotiation::Failure { code } => f.neg_failure = Some((pdu.at_ms, *code)),
                    Negotiation::Response {
                        selected_protocol, ..
                    } => f.selected = Some(*selected_protocol),
                    Negotiation::None => f.no_negotiation = true,
                },
                PduInfo::TlsAlert {
                    description,
                    encrypted,
                    ..
                } => match pdu.from {
                    Side::Server => f.server_alert = Some((pdu.at_ms, *description, *encrypted)),
                    Side::Client => f.client_alert = Some((pdu.at_ms, *description)),
                },
                PduInfo::TsRequest {
                    error_code: Some(code),
                    ..
                } if pdu.from == Side::Server => f.credssp_error = Some((pdu.at_ms, *code)),
                PduInfo::TsRequest {
                    auth_info: true, ..
                } if pdu.from == Side::Client => f.credssp_auth_sent = true,
                PduInfo::TsRequest { token, .. } if pdu.from == Side::Client => {
                    if matches!(token, Some(crate::pdu::AuthToken::NtlmAuthenticate { .. })) {
                        f.credssp_auth_sent = true;
                    }
                }
                PduInfo::EarlyUserAuthResult { result } => {
                    f.early_auth = Some((pdu.at_ms, *result))
                }
                PduInfo::SetErrorInfo { code } if *code != 0 => {
                    f.error_info = Some((pdu.at_ms, *code))
                }
                PduInfo::License {
                    message: LicenseMessage::ErrorAlert { code, transition },
                } if *code != STATUS_VALID_CLIENT => {
                    f.license_error = Some((pdu.at_ms, *code, *transition))
                }
                PduInfo::ServerRedirection { session_id, target } => {
                    f.redirected = Some((
                        pdu.at_ms,
                        format!(
                            "session {session_id}{}",
                            target
                                .as_ref()
                                .map(|t| format!(" on {t}"))
                                .unwrap_or_default()
                        ),
                    ));
                }
                PduInfo::DeactivateAll => {
                    f.deactivated = Some(pdu.at_ms);
                    f.reactivated_after_deactivate = false;
                }
                PduInfo::DemandActive { .. } if f.deactivated.is_some() => {
                    f.reactivated_after_deactivate = true
                }
                PduInfo::DisconnectProviderUltimatum { reason } if pdu.from == Side::Server => {
                    f.dpu_from_server = Some((pdu.at_ms, *reason));
                }
                _ => {}
            }
        }
        for (_, e) in trace.events() {
            match &e.kind {
                EventKind::Closed { by, how } if f.closed.is_none() => {
                    f.closed = Some((e.at_ms, *by, *how))
                }
                EventKind::TimedOut {
                    deadline,
                    waiting_for,
                } => {
                    f.timed_out = Some((
                        e.at_ms,
                        waiting_for.clone(),
                        deadline.seconds(),
                        matches!(deadline, crate::trace::Deadline::Phase { .. }),
                    ));
                }
                EventKind::ProtocolError {
                    from,
                    pdu,
                    offset,
                    detail,
                } if f.protocol_error.is_none() => {
                    f.protocol_error = Some((e.at_ms, *from, pdu.clone(), *offset, detail.clone()));
                }
                EventKind::ClientLimit { detail } => {
                    f.client_limit = Some((e.at_ms, detail.clone()))
                }
                EventKind::TlsFailed { error } => f.tls_failed = Some((e.at_ms, error.clone())),
                EventKind::ConnectFailed { addr, error } => {
                    f.connect_failed = Some((e.at_ms, addr.clone(), error.clone()));
                }
                EventKind::ResolveFailed { host, error } => {
                    f.resolve_failed = Some((e.at_ms, host.clone(), error.clone()));
                }
                EventKind::ClientClosed { .. } => f.client_closed = true,
                EventKind::CaptureEnded => f.capture_ended = true,
                EventKind::IncompleteFrame {
                    from: Side::Server,
                    bytes,
                    first_byte,
                } => f.incomplete_server = Some((e.at_ms, *bytes, *first_byte)),
                EventKind::Redirected { detail } if f.redirected.is_none() => {
                    f.redirected = Some((e.at_ms, detail.clone()));
                }
                _ => {}
            }
        }
        f.last_server_pdu = trace
            .last_pdu_from(Side::Server)
            .map(|(p, pdu)| (p, pdu.name.clone()));
        f.last_client_pdu = trace
            .last_pdu_from(Side::Client)
            .map(|(p, pdu)| (p, pdu.name.clone()));
        f
    }

    /// A note on the server's bytes that never made a whole frame, or nothing.
    fn incomplete_note(&self) -> String {
        match self.incomplete_server {
            Some((_, bytes, 0x03)) => format!(
                "; the server's last {bytes} bytes start like a TPKT header but the frame never completed: the peer may not be an RDP server"
            ),
            Some((_, bytes, first)) => format!(
                "; the server's last {bytes} bytes (first byte 0x{first:02x}) never made a whole frame"
            ),
            None => String::new(),
        }
    }

    /// How the connection ended, in words: "the server closed the connection (FIN)".
    fn close_words(&self) -> Option<String> {
        let (_, by, how) = self.closed?;
        Some(match (by, how) {
            (Side::Server, CloseKind::Fin) => "the server closed the connection (FIN)".to_owned(),
            (Side::Server, CloseKind::Rst) => "the connection was reset (RST)".to_owned(),
            (Side::Client, CloseKind::Fin) => "the client closed the connection (FIN)".to_owned(),
            (Side::Client, CloseKind::Rst) => "the client reset the connection (RST)".to_owned(),
        })
    }

    fn close_evidence(&self) -> Option<String> {
        let (at, by, how) = self.closed?;
        Some(format!(
            "{at:.1} ms: {} {}",
            by.as_str(),
            match how {
                CloseKind::Fin => "closed (FIN)",
                CloseKind::Rst => "reset (RST)",
            }
        ))
    }
}

fn connected_detail(trace: &Trace) -> String {
    let selected = trace
        .phase(PhaseName::X224)
        .facts
        .get("selected_protocol")
        .and_then(|v| v.as_str())
        .unwrap_or("an unknown protocol")
        .to_owned();
    let tls = trace
        .phase(PhaseName::Tls)
        .facts
        .get("tls_version")
        .and_then(|v| v.as_str())
        .map(|v| format!(" over {v}"))
        .unwrap_or_default();
    format!("the connection reached the active state ({selected}{tls})")
}

fn explain_failure(trace: &Trace, phase: PhaseName, f: &Findings) -> (Cause, String, Vec<String>) {
    let mut ev = Vec::new();
    let close = f.close_words();

    if let Some((at, host, error)) = &f.resolve_failed {
        ev.push(format!("{at:.1} ms: {host} did not resolve: {error}"));
        return (
            Cause::ResolveFailed,
            format!("the host name {host} did not resolve ({error})"),
            ev,
        );
    }
    if let Some((at, addr, error)) = &f.connect_failed
        && phase == PhaseName::Tcp
    {
        let (cause, words) = match error {
            ConnectError::Refused => (
                Cause::Refused,
                format!(
                    "{addr} refused the TCP connection (RST to the SYN): nothing listens there, or a firewall rejects it"
                ),
            ),
            ConnectError::TimedOut => (
                Cause::TimedOut,
                format!(
                    "{addr} did not answer the TCP SYN: a firewall drops it, or the host is down"
                ),
            ),
            ConnectError::Unreachable(why) => {
                (Cause::Unreachable, format!("{addr} is unreachable: {why}"))
            }
            ConnectError::Other(why) => (
                Cause::Unreachable,
                format!("the TCP connection to {addr} failed: {why}"),
            ),
        };
        ev.push(format!("{at:.1} ms: connect to {addr}: {}", words));
        return (cause, words, ev);
    }
    if let Some((at, code)) = f.neg_failure {
        ev.push(format!(
            "{at:.1} ms: server RDP_NEG_FAILURE {}",
            codes::Display(Table::NegFailure, code)
        ));
        let requested = trace
            .request
            .requested_protocols
            .map(codes::protocol_names)
            .unwrap_or_else(|| "no negotiation".to_owned());
        return (
            Cause::NegotiationFailure,
            format!(
                "the server refused the requested security protocols ({requested}): {} ({})",
                codes::name(Table::NegFailure, code),
                codes::meaning(Table::NegFailure, code)
            ),
            ev,
        );
    }
    if let Some((at, detail)) = &f.client_limit {
        ev.push(format!("{at:.1} ms: {detail}"));
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        return (Cause::ClientLimit, detail.clone(), ev);
    }
    if let Some((at, desc, encrypted)) = f.server_alert
        && (phase <= PhaseName::Tls || !encrypted)
    {
        let name = desc.map_or_else(
            || "encrypted alert".to_owned(),
            |d| codes::name(Table::TlsAlert, u32::from(d)),
        );
        ev.push(format!("{at:.1} ms: server TLS alert {name}"));
        return (
            Cause::TlsAlert,
            format!("the server ended the TLS handshake with alert {name}"),
            ev,
        );
    }
    if let Some((at, error)) = &f.tls_failed
        && phase == PhaseName::Tls
    {
        ev.push(format!("{at:.1} ms: TLS handshake failed: {error}"));
        let cert = error.contains("certificate");
        return (
            if cert {
                Cause::CertificateRejected
            } else {
                Cause::TlsFailed
            },
            format!("the TLS handshake failed: {error}"),
            ev,
        );
    }
    if let Some((at, code)) = f.credssp_error {
        ev.push(format!(
            "{at:.1} ms: server TSRequest errorCode {}",
            codes::Display(Table::NtStatus, code)
        ));
        return (
            Cause::CredsspError,
            format!(
                "network level authentication failed: the server answered {} ({})",
                codes::name(Table::NtStatus, code),
                codes::meaning(Table::NtStatus, code)
            ),
            ev,
        );
    }
    if let Some((at, result)) = f.early_auth
        && result == ACCESS_DENIED
    {
        let name = codes::name(Table::EarlyAuthResult, result);
        ev.push(format!(
            "{at:.1} ms: server Early User Authorization Result {name}"
        ));
        return (
            Cause::EarlyAuthDenied,
            format!(
                "the server authenticated the user but denied access (Early User Authorization Result {name}): the account may not log on remotely"
            ),
            ev,
        );
    }
    if let Some((at, code)) = f.error_info {
        ev.push(format!(
            "{at:.1} ms: server Set Error Info {}",
            codes::Display(Table::ErrorInfo, code)
        ));
        if let Some((at, reason)) = f.dpu_from_server {
            ev.push(format!(
                "{at:.1} ms: server Disconnect Provider Ultimatum {}",
                codes::name(Table::DpuReason, u32::from(reason))
            ));
        }
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        return (
            Cause::ServerErrorInfo,
            format!(
                "the server reported {} ({}) and ended the connection",
                codes::name(Table::ErrorInfo, code),
                codes::meaning(Table::ErrorInfo, code)
            ),
            ev,
        );
    }
    if let Some((at, code, transition)) = f.license_error {
        ev.push(format!(
            "{at:.1} ms: server Licensing Error Message {}, {}",
            codes::Display(Table::LicenseError, code),
            codes::name(Table::LicenseTransition, transition)
        ));
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        let abort = if transition == ST_TOTAL_ABORT {
            ", and aborted licensing"
        } else {
            ""
        };
        return (
            Cause::LicenseError,
            format!(
                "licensing failed: the server sent {} ({}){abort}",
                codes::name(Table::LicenseError, code),
                codes::meaning(Table::LicenseError, code)
            ),
            ev,
        );
    }
    if let Some((at, detail)) = &f.redirected {
        ev.push(format!("{at:.1} ms: server redirection to {detail}"));
        return (
            Cause::Redirected,
            format!(
                "the server redirected the client to {detail}; rdptrace does not follow redirections"
            ),
            ev,
        );
    }
    if let Some(at) = f.deactivated
        && !f.reactivated_after_deactivate
    {
        ev.push(format!("{at:.1} ms: server Deactivate All"));
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        return (
            Cause::Deactivated,
            format!(
                "the server deactivated the session (Deactivate All) and never reactivated it{}",
                close
                    .as_ref()
                    .map(|c| format!("; then {c}"))
                    .unwrap_or_default()
            ),
            ev,
        );
    }
    if let Some((at, reason)) = f.dpu_from_server {
        ev.push(format!(
            "{at:.1} ms: server Disconnect Provider Ultimatum {}",
            codes::name(Table::DpuReason, u32::from(reason))
        ));
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        return (
            Cause::DisconnectedByServer,
            format!(
                "the server disconnected in the {phase} phase (Disconnect Provider Ultimatum, {}) without sending error info",
                codes::name(Table::DpuReason, u32::from(reason))
            ),
            ev,
        );
    }
    if let Some((at, from, pdu, offset, detail)) = &f.protocol_error
        && (*from == Side::Server || f.closed.is_none())
    {
        ev.push(format!(
            "{at:.1} ms: {} {pdu} does not decode: {detail}{}",
            from.as_str(),
            offset.map(|o| format!(" (offset {o})")).unwrap_or_default()
        ));
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        return (
            Cause::ProtocolError,
            format!(
                "the {} sent a {pdu} that does not decode: {detail}{}",
                from.as_str(),
                offset
                    .map(|o| format!(" at offset {o}"))
                    .unwrap_or_default()
            ),
            ev,
        );
    }
    if phase == PhaseName::X224
        && let Some(req) = trace.request.requested_protocols
    {
        let selected = match (f.selected, f.no_negotiation) {
            (Some(sel), _) => Some(sel),
            (None, true) => Some(PROTOCOL_RDP),
            _ => None,
        };
        if let Some(sel) = selected {
            let offered = if sel == PROTOCOL_RDP {
                req == PROTOCOL_RDP
            } else {
                sel & req == sel
            };
            if !offered {
                let how = if f.no_negotiation {
                    "answered without negotiation data (Standard RDP Security only)".to_owned()
                } else {
                    format!("selected {}", codes::protocol_names(sel))
                };
                let req_names = codes::protocol_names(req);
                ev.push(format!(
                    "server {how} after the client asked for {req_names}"
                ));
                let detail = if sel == PROTOCOL_RDP {
                    format!(
                        "the server {how} although the client asked for {req_names}: a server may always fall back to Standard RDP Security ([MS-RDPBCGR] 3.3.5.3.2), but a client that requires {req_names}, as this probe does, stops here; probe with --security rdp to go on"
                    )
                } else {
                    format!(
                        "the server {how}, which the client did not ask for ({req_names}): instead of refusing with RDP_NEG_FAILURE it chose something else, which [MS-RDPBCGR] 3.3.5.3.2 does not allow; a client that requires {req_names} stops here"
                    )
                };
                return (Cause::NegotiationMismatch, detail, ev);
            }
        }
    }
    if let Some((at, waiting_for, seconds, per_phase)) = &f.timed_out {
        ev.push(format!(
            "{at:.1} ms: no answer within {seconds} s ({}) while waiting for {waiting_for}",
            if *per_phase {
                "--phase-timeout"
            } else {
                "--timeout"
            }
        ));
        if let Some((p, last)) = &f.last_server_pdu {
            ev.push(format!("last PDU from the server: {last} ({p})"));
        }
        return (
            Cause::TimedOut,
            format!(
                "the server stopped answering in the {phase} phase: no {waiting_for} within {seconds} s{}",
                f.incomplete_note()
            ),
            ev,
        );
    }
    if let Some((at, by, how)) = f.closed {
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        let after = match by {
            Side::Server => f.last_client_pdu.as_ref(),
            Side::Client => f.last_server_pdu.as_ref(),
        }
        .map(|(_, name)| format!(" after the {} sent {name}", by.other().as_str()))
        .unwrap_or_default();
        if phase == PhaseName::Credssp && by == Side::Server && f.credssp_auth_sent {
            return (
                Cause::CredsspRejected,
                format!(
                    "{} during network level authentication{after}, without a TSRequest errorCode: the server rejected the credentials (FreeRDP-based servers close this way on a wrong password)",
                    close.unwrap_or_default()
                ),
                ev,
            );
        }
        let _ = at;
        let incomplete = f.incomplete_note();
        if by == Side::Client {
            return (
                Cause::ClosedByClient,
                format!(
                    "{} in the {phase} phase{after}, before the server said anything conclusive{incomplete}",
                    close.unwrap_or_default()
                ),
                ev,
            );
        }
        let cause = match how {
            CloseKind::Fin => Cause::ClosedByServer,
            CloseKind::Rst => Cause::ResetByServer,
        };
        let tls_hint = if phase == PhaseName::Tls {
            " during the TLS handshake (endpoint security, or a server without a usable certificate)"
        } else {
            ""
        };
        return (
            cause,
            format!(
                "{} in the {phase} phase{after}{tls_hint}, with no error report{incomplete}",
                close.unwrap_or_default()
            ),
            ev,
        );
    }
    if f.capture_ended {
        return (
            Cause::CaptureEnded,
            format!(
                "the capture ends in the {phase} phase with the connection still open{}",
                f.incomplete_note()
            ),
            ev,
        );
    }
    (
        Cause::ProtocolError,
        format!("the connection stopped in the {phase} phase for a reason rdptrace did not record"),
        ev,
    )
}

/// What to try after each [2.2.1.2.2] RDP_NEG_FAILURE code.
static NEG_FAILURE_HINTS: &[(u32, &str)] = &[
    (
        0x1,
        "the server requires TLS or NLA: try --security tls, or --security nla with --user",
    ),
    (
        0x2,
        "the server only speaks Standard RDP Security: try --security rdp",
    ),
    (0x3, "the server has no usable TLS certificate configured"),
    (
        0x4,
        "the client sent inconsistent security flags in its negotiation request",
    ),
    (
        0x5,
        "the server requires NLA: give --user (and a password) so that rdptrace can do CredSSP",
    ),
    (
        0x6,
        "the server requires TLS with client certificate authentication",
    ),
];

fn hints(trace: &Trace, cause: Cause, f: &Findings) -> Vec<String> {
    let mut out = Vec::new();
    match cause {
        Cause::NegotiationFailure => {
            if let Some((_, code)) = f.neg_failure {
                let hint = NEG_FAILURE_HINTS
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map_or("compare --security with what the server allows", |(_, h)| h);
                out.push(hint.to_owned());
            }
        }
        Cause::CredsspError | Cause::CredsspRejected => {
            out.push("check the user name, domain and password; NTLM needs the account's domain or the server's name as domain".to_owned());
        }
        Cause::TimedOut if trace.failed_phase() == Some(PhaseName::Tcp) => {
            out.push(
                "a firewall that drops SYNs looks like this; check the path to the port".to_owned(),
            );
        }
        Cause::ResetByServer | Cause::ClosedByServer
            if f.error_info.is_none()
                && trace.failed_phase().is_some_and(|p| p < PhaseName::Active) =>
        {
            out.push("mstsc reports a close while the connection is pending as 0x904 with extended 0x7, the same pair as a deliberate denial; this one had no Set Error Info".to_owned());
        }
        _ => {}
    }
    out
}
