//! The one pass over a trace that fills the [`Findings`].

use super::{
    ClientLimit, Close, ConnectFailure, CredsspError, Deactivation, EarlyAuth, ErrorInfo, Findings,
    Gaps, Gateway, GatewayRefusal, Hop, HttpStatus, IncompleteFrame, Inferred, InferredPdu,
    LicenseError, NegFailure, ProtocolError, Redirection, ResolveFailure, Seen, ServerHello,
    Timeout, TlsAlert, TlsFailure, Ultimatum,
};
use crate::codes::licensing::STATUS_VALID_CLIENT;
use crate::pdu::{AuthToken, LicenseMessage, Negotiation, PduInfo};
use crate::trace::{EventKind, Fact, Millis, Phase, PhaseName, PhaseStatus, Side, Trace};

/// What the PDU pass keeps on the side, settled into findings at the end.
#[derive(Default)]
struct Pass {
    failed_phase: Option<PhaseName>,
    /// The Redirection PDU, which a redirection event does not override.
    redirection_pdu: Option<Redirection>,
    /// The latest Deactivate All or Demand Active by time: `true` for a Deactivate All.
    latest_activation: Option<(Millis, bool)>,
}

impl<'t> Findings<'t> {
    /// Walks the trace once: each phase, its PDUs, then its events.
    pub fn gather(trace: &'t Trace) -> Self {
        let mut f = Findings {
            target: &trace.target,
            failed: None,
            current: trace.current(),
            reached_active: false,
            requested_protocols: trace.request.requested_protocols,
            neg_failure: None,
            selected_protocol: None,
            no_negotiation: false,
            selected_protocol_words: None,
            server_hello: None,
            server_alert: None,
            tls_established: false,
            tls_version_words: None,
            tls_failure: None,
            cert_problems: Vec::new(),
            credssp_error: None,
            credssp_server_version: None,
            credssp_auth_sent: false,
            early_auth: None,
            kerberos: super::Kerberos::default(),
            error_info: None,
            license_error: None,
            redirection: None,
            deactivation: None,
            ultimatum: None,
            close: None,
            client_closed: false,
            timeout: None,
            protocol_error: None,
            client_limit: None,
            connect_failure: None,
            resolve_failure: None,
            capture_ended: false,
            incomplete_server_frame: None,
            gaps: None,
            gateway: trace.request.gateway.as_deref().map(|address| Gateway {
                address,
                ..Gateway::default()
            }),
            hops: trace.hops.iter().map(hop).collect(),
            routing_token_sent: false,
            last_server_pdu: None,
            last_client_pdu: None,
            last_non_tls_pdu: None,
            inferred: None,
        };
        f.inferred = trace.inference.as_ref().map(|inference| {
            let (phases, mut endings) = match &inference.outcome {
                crate::infer::Outcome::Explained { readings } => (
                    inference.phases(),
                    readings.iter().map(|r| r.server_end).collect::<Vec<_>>(),
                ),
                _ => (Vec::new(), Vec::new()),
            };
            endings.sort();
            endings.dedup();
            Inferred {
                inference,
                phases,
                endings,
                set_error_info: None,
                ultimatum: None,
                credssp_error: None,
                early_auth: None,
                license_final: None,
            }
        });
        let mut pass = Pass::default();
        for phase in &trace.phases {
            if phase.status == PhaseStatus::Failed && pass.failed_phase.is_none() {
                pass.failed_phase = Some(phase.name);
            }
            if phase.name == PhaseName::GatewayTunnel
                && let Some(g) = f.gateway.as_mut()
            {
                g.target = fact_words(phase, Fact::GatewayTarget);
            }
            if phase.name == PhaseName::GatewayAuth
                && let Some(g) = f.gateway.as_mut()
            {
                g.offered = fact_words(phase, Fact::GatewayAuthOffered);
            }
            match phase.name {
                PhaseName::X224 => {
                    f.selected_protocol_words = fact_words(phase, Fact::SelectedProtocol);
                }
                PhaseName::Tls => f.tls_version_words = fact_words(phase, Fact::TlsVersion),
                PhaseName::Active => {
                    f.reached_active = phase.status == PhaseStatus::Ok || phase.start_ms.is_some();
                }
                _ => {}
            }
            for pdu in &phase.pdus {
                f.note_pdu(
                    &mut pass,
                    Seen {
                        phase: phase.name,
                        pdu,
                    },
                );
            }
            for event in &phase.events {
                f.note_event(phase.name, event.at_ms, &event.kind);
            }
        }
        if pass.redirection_pdu.is_some() {
            f.redirection = pass.redirection_pdu;
        }
        // [2.2.3.1] A session deactivated and never reactivated is over, whoever closed it afterwards.
        let deactivated_for_good = pass
            .latest_activation
            .is_some_and(|(_, deactivate)| deactivate);
        f.failed = pass
            .failed_phase
            .or_else(|| (f.reached_active && deactivated_for_good).then_some(PhaseName::Active));
        f
    }

    fn note_pdu(&mut self, pass: &mut Pass, seen: Seen<'t>) {
        let pdu = seen.pdu;
        let at_ms = pdu.at_ms;
        self.kerberos.note_pdu(pdu);
        match pdu.from {
            Side::Server => keep_later(&mut self.last_server_pdu, seen),
            Side::Client => keep_later(&mut self.last_client_pdu, seen),
        }
        if !matches!(
            pdu.info,
            PduInfo::TlsHandshake { .. } | PduInfo::TlsEncrypted | PduInfo::TlsAlert { .. }
        ) {
            keep_later(&mut self.last_non_tls_pdu, seen);
        }
        match &pdu.info {
            PduInfo::X224ConnectionRequest { routing_token, .. } => {
                self.routing_token_sent |= routing_token.is_some();
            }
            PduInfo::HttpRequest { auth_scheme, .. } => {
                if let Some(g) = self.gateway.as_mut() {
                    g.credentials_sent |= auth_scheme.is_some();
                }
            }
            PduInfo::HttpResponse { status, .. } => {
                if let Some(g) = self.gateway.as_mut() {
                    g.last_response = Some(HttpStatus {
                        at_ms,
                        status: *status,
                        summary: &pdu.summary,
                    });
                }
            }
            PduInfo::GatewayPacket { packet_type, .. }
                if pdu.summary.starts_with(crate::gateway::record::BY_SIZE) =>
            {
                if let Some(g) = self.gateway.as_mut() {
                    let (at, confirm) = g.by_size.get_or_insert((at_ms, false));
                    *at = at.min(at_ms);
                    *confirm |= *packet_type == crate::gateway::packet::kind::DATA;
                }
            }
            PduInfo::GatewayPacket {
                packet_type,
                code: Some(code),
            } if pdu.from == Side::Server && crate::codes::gateway::failed(*code) => {
                if let Some(g) = self.gateway.as_mut()
                    && g.refusal.is_none()
                {
                    g.refusal = Some(GatewayRefusal {
                        at_ms,
                        packet_type: *packet_type,
                        rpc_opnum: None,
                        code: *code,
                    });
                }
            }
            PduInfo::RpcPdu {
                opnum,
                code: Some(code),
                ..
            } if pdu.from == Side::Server && crate::codes::gateway::failed(*code) => {
                if let Some(g) = self.gateway.as_mut()
                    && g.refusal.is_none()
                {
                    g.refusal = Some(GatewayRefusal {
                        at_ms,
                        packet_type: 0,
                        rpc_opnum: Some(opnum.unwrap_or_default()),
                        code: *code,
                    });
                }
            }
            PduInfo::X224ConnectionConfirm { negotiation } => match negotiation {
                Negotiation::Failure { code } => {
                    self.neg_failure = Some(NegFailure { at_ms, code: *code });
                }
                Negotiation::Response {
                    selected_protocol, ..
                } => self.selected_protocol = Some(*selected_protocol),
                Negotiation::None => self.no_negotiation = true,
            },
            PduInfo::TlsServerHello { version, .. } => {
                self.server_hello = Some(ServerHello {
                    at_ms,
                    version: *version,
                });
            }
            PduInfo::TlsAlert {
                description,
                encrypted,
                ..
            } if pdu.from == Side::Server => {
                self.server_alert = Some(TlsAlert {
                    at_ms,
                    description: *description,
                    encrypted: *encrypted,
                });
            }
            PduInfo::TsRequest {
                version,
                error_code,
                ..
            } if pdu.from == Side::Server => {
                if let Some(status) = error_code {
                    self.credssp_error = Some(CredsspError {
                        at_ms,
                        status: *status,
                    });
                }
                self.credssp_server_version = Some(
                    self.credssp_server_version
                        .map_or(*version, |v| v.min(*version)),
                );
            }
            PduInfo::Inferred {
                step, plaintext, ..
            } => {
                use crate::infer::Step;
                let seen = Some(InferredPdu {
                    at_ms,
                    plaintext: *plaintext,
                });
                if let Some(i) = self.inferred.as_mut() {
                    match (pdu.from, step) {
                        (Side::Server, Step::SetErrorInfo) => i.set_error_info = seen,
                        (Side::Server, Step::Ultimatum) => i.ultimatum = seen,
                        (Side::Server, Step::TsRequestError) => i.credssp_error = seen,
                        (Side::Server, Step::EarlyUserAuth) => i.early_auth = seen,
                        (Side::Server, Step::LicenseFinal) => i.license_final = seen,
                        _ => {}
                    }
                }
                if pdu.from == Side::Client
                    && matches!(step, Step::NtlmAuthenticate | Step::AuthInfo)
                {
                    self.credssp_auth_sent = true;
                }
            }
            // From the client: its NTLM AUTHENTICATE, or its credentials.
            PduInfo::TsRequest {
                token, auth_info, ..
            } if *auth_info || matches!(token, Some(AuthToken::NtlmAuthenticate { .. })) => {
                self.credssp_auth_sent = true;
            }
            PduInfo::EarlyUserAuthResult { result } => {
                self.early_auth = Some(EarlyAuth {
                    at_ms,
                    result: *result,
                });
            }
            PduInfo::SetErrorInfo { code } if *code != 0 => {
                self.error_info = Some(ErrorInfo { at_ms, code: *code });
            }
            PduInfo::License {
                message: LicenseMessage::ErrorAlert { code, transition },
            } if *code != STATUS_VALID_CLIENT => {
                self.license_error = Some(LicenseError {
                    at_ms,
                    code: *code,
                    transition: *transition,
                });
            }
            PduInfo::ServerRedirection {
                session_id,
                target,
                fqdn,
                load_balance_info,
                ..
            } => {
                let on = target
                    .as_ref()
                    .or(fqdn.as_ref())
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_default();
                pass.redirection_pdu = Some(Redirection {
                    at_ms,
                    to: format!("session {session_id}{on}"),
                    target: target.clone().or_else(|| fqdn.clone()),
                    load_balance_info: load_balance_info.clone(),
                });
            }
            PduInfo::DeactivateAll => {
                self.deactivation = Some(Deactivation {
                    at_ms,
                    reactivated: false,
                });
                note_activation(pass, at_ms, true);
            }
            PduInfo::DemandActive { .. } => {
                if let Some(d) = &mut self.deactivation {
                    d.reactivated = true;
                }
                note_activation(pass, at_ms, false);
            }
            PduInfo::DisconnectProviderUltimatum { reason } if pdu.from == Side::Server => {
                self.ultimatum = Some(Ultimatum {
                    at_ms,
                    reason: *reason,
                });
            }
            _ => {}
        }
    }

    fn note_event(&mut self, phase: PhaseName, at_ms: Millis, kind: &'t EventKind) {
        self.kerberos.note_event(at_ms, kind);
        match kind {
            EventKind::Gap { from, bytes } => {
                let g = self.gaps.get_or_insert(Gaps {
                    first_at_ms: at_ms,
                    first_phase: phase,
                    client_bytes: 0,
                    server_bytes: 0,
                });
                if at_ms < g.first_at_ms {
                    (g.first_at_ms, g.first_phase) = (at_ms, phase);
                }
                match from {
                    Side::Client => g.client_bytes = g.client_bytes.saturating_add(*bytes),
                    Side::Server => g.server_bytes = g.server_bytes.saturating_add(*bytes),
                }
            }
            EventKind::Closed { by, how } if self.close.is_none() => {
                self.close = Some(Close {
                    at_ms,
                    by: *by,
                    how: *how,
                });
            }
            EventKind::TimedOut {
                deadline,
                waiting_for,
            } => {
                self.timeout = Some(Timeout {
                    at_ms,
                    deadline: *deadline,
                    waiting_for,
                });
            }
            EventKind::ProtocolError {
                from,
                pdu,
                offset,
                detail,
            } if self.protocol_error.is_none() => {
                self.protocol_error = Some(ProtocolError {
                    at_ms,
                    from: *from,
                    pdu,
                    offset: *offset,
                    detail,
                });
            }
            EventKind::ClientLimit { detail } => {
                self.client_limit = Some(ClientLimit { at_ms, detail });
            }
            EventKind::TlsFailed { error } => self.tls_failure = Some(TlsFailure { at_ms, error }),
            EventKind::ConnectFailed { addr, error } => {
                self.connect_failure = Some(ConnectFailure { at_ms, addr, error });
            }
            EventKind::ResolveFailed { host, error } => {
                self.resolve_failure = Some(ResolveFailure { at_ms, host, error });
            }
            EventKind::ClientClosed { .. } => self.client_closed = true,
            EventKind::TunnelEnded { end } => {
                if let Some(g) = self.gateway.as_mut()
                    && g.tunnel_end.is_none()
                {
                    g.tunnel_end = Some((at_ms, *end));
                }
            }
            EventKind::TlsEstablished { .. } => self.tls_established = true,
            EventKind::CertificateProblem { problem, detail } => {
                self.cert_problems
                    .push(format!("{} ({detail})", problem.as_str()));
            }
            EventKind::CaptureEnded => self.capture_ended = true,
            EventKind::IncompleteFrame {
                from: Side::Server,
                bytes,
                first_byte,
            } => {
                self.incomplete_server_frame = Some(IncompleteFrame {
                    bytes: *bytes,
                    first_byte: *first_byte,
                });
            }
            EventKind::Redirected { detail } if self.redirection.is_none() => {
                self.redirection = Some(Redirection {
                    at_ms,
                    to: detail.clone(),
                    target: None,
                    load_balance_info: None,
                });
            }
            _ => {}
        }
    }
}

/// What a hop's trace says of the redirection that ended it.
fn hop(trace: &Trace) -> Hop {
    let redirection = trace.pdus().find_map(|(_, p)| match &p.info {
        PduInfo::ServerRedirection {
            target,
            fqdn,
            load_balance_info,
            ..
        } => Some((
            target.clone().or_else(|| fqdn.clone()),
            load_balance_info.clone(),
        )),
        _ => None,
    });
    let (to, token) = redirection.unwrap_or_default();
    Hop {
        server: trace.target.clone(),
        to,
        token,
    }
}

/// The text of a fact of a phase.
fn fact_words(phase: &Phase, key: Fact) -> Option<&str> {
    phase.facts.get(key).and_then(|v| v.as_str())
}

/// Keeps the later of `slot` and `seen` (by time; of two at the same time, the one recorded last).
fn keep_later<'t>(slot: &mut Option<Seen<'t>>, seen: Seen<'t>) {
    if slot.is_none_or(|s| seen.pdu.at_ms.total_cmp(&s.pdu.at_ms).is_ge()) {
        *slot = Some(seen);
    }
}

/// Keeps the latest Deactivate All or Demand Active by time (of two at the same time, the one recorded last).
fn note_activation(pass: &mut Pass, at_ms: Millis, deactivate: bool) {
    if pass
        .latest_activation
        .is_none_or(|(at, _)| at_ms.total_cmp(&at).is_ge())
    {
        pass.latest_activation = Some((at_ms, deactivate));
    }
}
