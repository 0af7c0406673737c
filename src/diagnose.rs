//! Diagnosis: a pure function from a [`Trace`] to a [`Verdict`].
//!
//! The trace holds observations (PDUs, closes, deadlines); this module decides which of them ended the
//! connection, in order from the most specific evidence (a code the server sent) to the least (the
//! connection just closed).

use crate::codes::{self, Table};
use crate::dissect::early_user_auth::ACCESS_DENIED;
use crate::dissect::licensing::{ST_TOTAL_ABORT, STATUS_VALID_CLIENT};
use crate::dissect::x224::{PROTOCOL_HYBRID, PROTOCOL_RDP, PROTOCOL_SSL};
use crate::mstsc;
use crate::pdu::{LicenseMessage, Negotiation, PduInfo};
use crate::trace::{CloseKind, ConnectError, EventKind, PhaseName, PhaseStatus, Side, Trace};
use crate::verdict::{Cause, Code, Verdict};

/// The verdict on a trace.
pub fn diagnose(trace: &Trace) -> Verdict {
    let findings = Findings::gather(trace);
    let reached_active = trace.phase(PhaseName::Active).status == PhaseStatus::Ok
        || trace.phase(PhaseName::Active).start_ms.is_some();
    // A session deactivated and never reactivated is over, whoever closed it afterwards.
    let deactivated = reached_active && trace.deactivated_for_good();
    let failed = trace
        .failed_phase()
        .or_else(|| deactivated.then_some(PhaseName::Active));

    let (cause, phase, detail, mut evidence) = match failed {
        None if reached_active => (
            Cause::Connected,
            None,
            connected_detail(trace, &findings),
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
    let mut detail = detail;
    let mut hints = hints(trace, cause, &findings);
    if let Some((at, first, client, server)) = findings.gaps {
        // A capture that misses bytes: the dissector stops reading a direction at its first gap, so what
        // comes after is not known. Say so rather than let the verdict look complete.
        evidence.push(format!(
            "{at:.1} ms: the capture misses {client} bytes from the client and {server} from the server, the first in the {first} phase; rdptrace does not read a direction past its first gap"
        ));
        if phase.is_some_and(|p| p >= first) {
            detail.push_str(&format!(
                "; the capture misses bytes from the {first} phase on (packets cut short by a snap length, or dropped), so the connection may have got further than this phase"
            ));
        }
        hints.push("capture again with whole packets and no drops (tcpdump -s 0, and a capture on the client or the server rather than a span port); every byte of the connection sequence is needed to follow it".to_owned());
    }
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
    tls_failed: Option<(f64, crate::trace::TlsError)>,
    connect_failed: Option<(f64, String, ConnectError)>,
    resolve_failed: Option<(f64, String, String)>,
    client_closed: bool,
    capture_ended: bool,
    incomplete_server: Option<(f64, u64, u8)>,
    credssp_auth_sent: bool,
    /// The lowest TSRequest version the server sent.
    credssp_server_version: Option<u32>,
    tls_established: bool,
    /// The version the server's TLS ServerHello chose.
    server_tls_version: Option<(f64, u16)>,
    /// The certificate problems the client noticed, in words: `expired (expired on ...)`.
    cert_problems: Vec<String>,
    last_server_pdu: Option<(PhaseName, String)>,
    last_client_pdu: Option<(PhaseName, String)>,
    /// Bytes the capture misses: when and in which phase the first gap came, and the bytes missing from
    /// the client and from the server.
    gaps: Option<(f64, PhaseName, u64, u64)>,
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
                PduInfo::TlsServerHello { version, .. } => {
                    f.server_tls_version = Some((pdu.at_ms, *version));
                }
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
                    version,
                    ..
                } if pdu.from == Side::Server => {
                    f.credssp_error = Some((pdu.at_ms, *code));
                    f.note_credssp_version(*version);
                }
                PduInfo::TsRequest { version, .. } if pdu.from == Side::Server => {
                    f.note_credssp_version(*version);
                }
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
        for (phase, e) in trace.events() {
            match &e.kind {
                EventKind::Gap { from, bytes } => {
                    let g = f.gaps.get_or_insert((e.at_ms, phase, 0, 0));
                    if e.at_ms < g.0 {
                        (g.0, g.1) = (e.at_ms, phase);
                    }
                    match from {
                        Side::Client => g.2 = g.2.saturating_add(*bytes),
                        Side::Server => g.3 = g.3.saturating_add(*bytes),
                    }
                }
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
                EventKind::TlsEstablished { .. } => f.tls_established = true,
                EventKind::CertificateProblem { problem, detail } => {
                    f.cert_problems
                        .push(format!("{} ({detail})", problem.as_str()));
                }
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

    /// Keeps the lowest TSRequest version the server sent.
    fn note_credssp_version(&mut self, version: u32) {
        self.credssp_server_version = Some(
            self.credssp_server_version
                .map_or(version, |v| v.min(version)),
        );
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

    /// The server's Disconnect Provider Ultimatum, if one came, then the close: how the server ended it.
    fn push_ending(&self, ev: &mut Vec<String>) {
        if let Some((at, reason)) = self.dpu_from_server {
            ev.push(format!(
                "{at:.1} ms: server Disconnect Provider Ultimatum {}",
                codes::name(Table::DpuReason, u32::from(reason))
            ));
        }
        ev.extend(self.close_evidence());
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

fn connected_detail(trace: &Trace, f: &Findings) -> String {
    let selected = trace
        .phase(PhaseName::X224)
        .facts
        .get(crate::trace::Fact::SelectedProtocol)
        .and_then(|v| v.as_str())
        .unwrap_or("an unknown protocol")
        .to_owned();
    let tls = trace
        .phase(PhaseName::Tls)
        .facts
        .get(crate::trace::Fact::TlsVersion)
        .and_then(|v| v.as_str())
        .map(|v| format!(" over {v}"))
        .unwrap_or_default();
    let credssp = match f.credssp_server_version {
        Some(v) if v < CREDSSP_NONCE_VERSION => format!(
            "; the server speaks CredSSP version {v}, which binds the TLS key without a nonce ([MS-CSSP] 3.1.5) and has no errorCode: older than the CVE-2018-0886 update"
        ),
        _ => String::new(),
    };
    let cert = if f.cert_problems.is_empty() {
        String::new()
    } else {
        format!(
            "; the certificate has problems, not fatal without --strict-cert: {}",
            f.cert_problems.join(", ")
        )
    };
    format!("the connection reached the active state ({selected}{tls}){credssp}{cert}")
}

/// [MS-CSSP] 3.1.5: from version 5 on, the TLS key is bound with a client nonce (the CVE-2018-0886 update).
const CREDSSP_NONCE_VERSION: u32 = 5;

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
                    "{addr} did not answer the TCP SYN{}: a firewall drops it, or the host is down",
                    f.timed_out
                        .as_ref()
                        .map(|(_, _, seconds, per_phase)| format!(
                            " within {}",
                            deadline_words(*seconds, *per_phase)
                        ))
                        .unwrap_or_default()
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
        let meaning = if tls_without_nla(trace, code) {
            // [2.2.1.2.2] "If only CredSSP was requested then the server only supports TLS."
            "to a request for CredSSP alone this means that the server does not do network level authentication and only supports TLS".to_owned()
        } else {
            codes::meaning(Table::NegFailure, code).to_owned()
        };
        // [3.3.5.3.2] After sending RDP_NEG_FAILURE the server MUST close the connection.
        let after = match (f.closed, f.client_closed) {
            (Some((_, Side::Server, _)), _) => {
                f.push_ending(&mut ev);
                String::new()
            }
            (_, true) => {
                ev.push(
                    "the server kept the connection open after its RDP_NEG_FAILURE; the client closed it"
                        .to_owned(),
                );
                "; the server then kept the connection open instead of closing it as it must ([MS-RDPBCGR] 3.3.5.3.2; FreeRDP-based servers do this), so the client closed it".to_owned()
            }
            _ => String::new(),
        };
        return (
            Cause::NegotiationFailure,
            format!(
                "the server refused the requested security protocols ({requested}): {} ({meaning}){after}",
                codes::name(Table::NegFailure, code),
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
    // Seen from a capture, a client that does not speak the server's old TLS version just leaves.
    if let Some((at, version)) = f.server_tls_version
        && version < 0x0303
        && phase == PhaseName::Tls
        && !f.tls_established
    {
        ev.push(format!(
            "{at:.1} ms: server TLS ServerHello chose {}",
            crate::dissect::tls::version_name(version)
        ));
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        return (
            Cause::ClientLimit,
            crate::dissect::tls::old_version_limit(version),
            ev,
        );
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
    if let Some((at, reason)) = f.dpu_from_server
        && phase == PhaseName::Tls
        && !f.tls_established
    {
        // Before TLS is up, a Disconnect Provider Ultimatum can only come in clear.
        let name = codes::name(Table::DpuReason, u32::from(reason));
        ev.push(format!(
            "{at:.1} ms: server Disconnect Provider Ultimatum {name}, in clear instead of TLS"
        ));
        if let Some(c) = f.close_evidence() {
            ev.push(c);
        }
        return (
            Cause::DisconnectedByServer,
            format!(
                "the server selected TLS, then answered the ClientHello with a cleartext Disconnect Provider Ultimatum ({name}) instead of TLS{}: it could not start TLS, which points to its certificate or private key (missing, unreadable, or not matching the certificate), as xrdp does",
                close.map(|c| format!(", then {c}")).unwrap_or_default()
            ),
            ev,
        );
    }
    if let Some((at, error)) = &f.tls_failed
        && phase == PhaseName::Tls
    {
        ev.push(format!("{at:.1} ms: TLS handshake failed: {error}"));
        let cert = error.is_certificate();
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
        f.push_ending(&mut ev);
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
    if let Some((_, reason)) = f.dpu_from_server {
        f.push_ending(&mut ev);
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
                return (Cause::NegotiationMismatch, detail, ev);
            }
        }
    }
    if let Some((at, waiting_for, seconds, per_phase)) = &f.timed_out {
        let within = deadline_words(*seconds, *per_phase);
        ev.push(format!(
            "{at:.1} ms: no answer within {within} while waiting for {waiting_for}"
        ));
        if let Some((p, last)) = &f.last_server_pdu {
            ev.push(format!("last PDU from the server: {last} ({p})"));
        }
        return (
            Cause::TimedOut,
            format!(
                "the server stopped answering in the {phase} phase: {waiting_for} did not come within {within}{}",
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
            let last_client = trace.last_pdu_from(Side::Client).map(|(_, p)| &p.info);
            let after = match last_client {
                Some(PduInfo::TsRequest {
                    token: Some(crate::pdu::AuthToken::NtlmAuthenticate { .. }),
                    ..
                }) => " right after the client's NTLM AUTHENTICATE".to_owned(),
                Some(PduInfo::TsRequest {
                    auth_info: true, ..
                }) => " right after the client's credentials (TSRequest authInfo)".to_owned(),
                _ => after,
            };
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
            // A client that waited in silence for the server before it left gave up on its own deadline.
            let last = trace
                .pdus()
                .map(|(_, p)| p)
                .filter(|p| {
                    !matches!(
                        p.info,
                        PduInfo::TlsHandshake { .. }
                            | PduInfo::TlsEncrypted
                            | PduInfo::TlsAlert { .. }
                    )
                })
                .max_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
            if let Some(last) = last
                && phase < PhaseName::Active
                && at - last.at_ms >= CLIENT_GAVE_UP_AFTER_MS
            {
                let waited = (at - last.at_ms) / 1000.0;
                return (
                    Cause::TimedOut,
                    format!(
                        "the server stopped answering in the {phase} phase: after the {}'s {}, the client waited {waited:.1} s with nothing from the server and gave up ({})",
                        last.from.as_str(),
                        last.name,
                        close.unwrap_or_default()
                    ),
                    ev,
                );
            }
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

/// [2.2.1.2.2] SSL_REQUIRED_BY_SERVER in answer to a request for CredSSP without TLS: the server does TLS
/// and no network level authentication.
fn tls_without_nla(trace: &Trace, code: u32) -> bool {
    const SSL_REQUIRED_BY_SERVER: u32 = 0x1;
    code == SSL_REQUIRED_BY_SERVER
        && trace
            .request
            .requested_protocols
            .is_some_and(|req| req & PROTOCOL_HYBRID != 0 && req & PROTOCOL_SSL == 0)
}

/// The deadline that expired, in words: "3 s (--phase-timeout)".
fn deadline_words(seconds: f64, per_phase: bool) -> String {
    let option = if per_phase {
        "--phase-timeout"
    } else {
        "--timeout"
    };
    format!("{seconds} s ({option})")
}

/// In a capture, a client that closes after waiting this long in silence for the server gave up on a
/// deadline of its own.
const CLIENT_GAVE_UP_AFTER_MS: f64 = 900.0;

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

/// What to look at after a fatal TLS alert from the server ([RFC 8446] 6.2).
static TLS_ALERT_HINTS: &[(u8, &str)] = &[
    (
        40,
        "handshake_failure: no cipher suite or signature algorithm in common; the server may allow only legacy suites (static RSA, CBC, 3DES): check its TLS configuration (sslscan --rdp)",
    ),
    (
        70,
        "protocol_version: the server accepts none of the TLS versions offered (TLS 1.2 and 1.3); an old server limited to TLS 1.0 or 1.1 answers this way (xrdp and OpenSSL do); enable TLS 1.2 on the server",
    ),
    (
        80,
        "internal_error: FreeRDP-based servers answer a TLS version they refuse this way; otherwise look at the server's log",
    ),
];

/// What xfreerdp reports for a Disconnect Provider Ultimatum without error info, by [T.125] reason: it makes an
/// errorInfo of it that was never on the wire.
static DPU_AS_XFREERDP_SHOWS: &[(u8, &str)] = &[
    (1, "ERRINFO_RPC_INITIATED_DISCONNECT"),
    (3, "ERRINFO_LOGOFF_BY_USER"),
];

fn hints(trace: &Trace, cause: Cause, f: &Findings) -> Vec<String> {
    let mut out = Vec::new();
    match cause {
        Cause::Connected
            if f.credssp_server_version
                .is_some_and(|v| v < CREDSSP_NONCE_VERSION) =>
        {
            out.push("Windows clients with the CVE-2018-0886 update refuse a server that cannot bind the TLS key with a nonce (\"CredSSP encryption oracle remediation\"), unless their Encryption Oracle Remediation policy is set to Vulnerable: update the server".to_owned());
        }
        Cause::TlsAlert => {
            if let Some((_, Some(alert), _)) = f.server_alert
                && let Some((_, hint)) = TLS_ALERT_HINTS.iter().find(|(a, _)| *a == alert)
            {
                out.push((*hint).to_owned());
            }
        }
        // A cleartext ultimatum during the TLS handshake fails xfreerdp's TLS layer first: it never reads it.
        Cause::DisconnectedByServer
            if f.tls_established || trace.failed_phase() != Some(PhaseName::Tls) =>
        {
            if let Some((_, reason)) = f.dpu_from_server
                && let Some((_, name)) = DPU_AS_XFREERDP_SHOWS.iter().find(|(r, _)| *r == reason)
            {
                out.push(format!(
                    "no Set Error Info was sent: xfreerdp reports this Disconnect Provider Ultimatum as {name}, which was not on the wire"
                ));
            }
        }
        Cause::NegotiationFailure => {
            if let Some((_, code)) = f.neg_failure {
                if tls_without_nla(trace, code) {
                    out.push("the server does TLS without NLA: try --security tls".to_owned());
                    return out;
                }
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
