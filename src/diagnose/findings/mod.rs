//! What diagnosis looks at: the observations of a trace, gathered in one pass into named findings.
//!
//! Rules ([`super::rules`]) read these and nothing else. A rule that needs something new adds a finding here,
//! filled in by [`Findings::gather`] (in `gather.rs`), rather than walking the trace itself.

mod gather;
mod kerberos;

pub use kerberos::{KdcFailure, KdcNotFound, Kerberos, KrbFailure, KrbFrom};

use crate::codes::{self, Table};
use crate::trace::{CloseKind, ConnectError, Deadline, Millis, Pdu, PhaseName, Side};

/// Everything a rule reads, gathered once from a trace. Borrows the trace's text.
#[derive(Debug)]
pub struct Findings<'t> {
    // ---- where the trace stands ----
    /// The target of the trace (`host:port`).
    pub target: &'t str,
    /// The phase that failed: the trace's failed phase, or `active` for a session deactivated and never
    /// reactivated. `None` for a trace that did not fail.
    pub failed: Option<PhaseName>,
    /// The phase the trace ends in.
    pub current: PhaseName,
    /// The active phase was entered.
    pub reached_active: bool,
    /// [2.2.1.1.1] requestedProtocols of the client's Connection Request, when it had an RDP_NEG_REQ.
    pub requested_protocols: Option<u32>,

    // ---- x224 ----
    pub neg_failure: Option<NegFailure>,
    /// [2.2.1.2.1] selectedProtocol of the server's RDP_NEG_RSP.
    pub selected_protocol: Option<u32>,
    /// The server's Connection Confirm had no negotiation data (Standard RDP Security only).
    pub no_negotiation: bool,
    /// The `selected_protocol` fact of the x224 phase, in words.
    pub selected_protocol_words: Option<&'t str>,

    // ---- tls ----
    pub server_hello: Option<ServerHello>,
    /// The server's last TLS alert.
    pub server_alert: Option<TlsAlert>,
    pub tls_established: bool,
    /// The `tls_version` fact of the tls phase, in words.
    pub tls_version_words: Option<&'t str>,
    /// The client's last TLS failure.
    pub tls_failure: Option<TlsFailure<'t>>,
    /// The certificate problems the client noticed, in words: `expired (expired on ...)`.
    pub cert_problems: Vec<String>,

    // ---- credssp and early user authorization ----
    /// The server's last TSRequest errorCode.
    pub credssp_error: Option<CredsspError>,
    /// The lowest TSRequest version the server sent.
    pub credssp_server_version: Option<u32>,
    /// The client sent its NTLM AUTHENTICATE or its credentials (TSRequest authInfo).
    pub credssp_auth_sent: bool,
    pub early_auth: Option<EarlyAuth>,
    /// Kerberos: the KDC's answers and failures, the server's Kerberos tokens, the fallback to NTLM.
    pub kerberos: Kerberos<'t>,

    // ---- what the server reported ----
    /// The last nonzero Set Error Info.
    pub error_info: Option<ErrorInfo>,
    /// The last Licensing Error Message other than STATUS_VALID_CLIENT.
    pub license_error: Option<LicenseError>,
    /// The server's Redirection PDU, else the first redirection event.
    pub redirection: Option<Redirection>,
    /// The last Deactivate All, in the order of the phases.
    pub deactivation: Option<Deactivation>,
    /// The server's last Disconnect Provider Ultimatum.
    pub ultimatum: Option<Ultimatum>,

    // ---- how it ended ----
    /// The first close.
    pub close: Option<Close>,
    /// The client ended the connection on purpose.
    pub client_closed: bool,
    /// The last deadline that expired.
    pub timeout: Option<Timeout<'t>>,
    /// The first PDU that did not decode.
    pub protocol_error: Option<ProtocolError<'t>>,
    /// The last point where the client could not go on.
    pub client_limit: Option<ClientLimit<'t>>,
    pub connect_failure: Option<ConnectFailure<'t>>,
    pub resolve_failure: Option<ResolveFailure<'t>>,
    /// The capture ends with the connection still open.
    pub capture_ended: bool,
    /// The server's last bytes that never made a whole frame.
    pub incomplete_server_frame: Option<IncompleteFrame>,
    /// Bytes the capture misses.
    pub gaps: Option<Gaps>,

    // ---- the RD Gateway, the broker ----
    /// What the RD Gateway said, when the connection went through one.
    pub gateway: Option<Gateway<'t>>,
    /// The connections before this one, which redirected the client here, in order.
    pub hops: Vec<Hop>,
    /// The client's X.224 Connection Request carried a routing token (load-balance info).
    pub routing_token_sent: bool,

    // ---- encrypted records nobody decrypted ----
    /// What the sizes of the encrypted records show ([`crate::infer`]), when the trace has them.
    pub inferred: Option<Inferred<'t>>,

    // ---- the last PDUs, by time ----
    pub last_server_pdu: Option<Seen<'t>>,
    pub last_client_pdu: Option<Seen<'t>>,
    /// The last PDU that is not part of the TLS layer (handshake messages, alerts, undecrypted records).
    pub last_non_tls_pdu: Option<Seen<'t>>,
}

/// The readings of the encrypted records ([`crate::infer`]) and the PDUs the trace shows from the first.
#[derive(Debug)]
pub struct Inferred<'t> {
    pub inference: &'t crate::infer::Inference,
    /// The phases the readings end in, earliest first: more than one when the records fit several places.
    pub phases: Vec<PhaseName>,
    /// How the readings say the server ended, without repeats.
    pub endings: Vec<crate::infer::ServerEnd>,
    /// The inferred PDUs the rules name, by what they are: the last of each.
    pub set_error_info: Option<InferredPdu>,
    pub ultimatum: Option<InferredPdu>,
    pub credssp_error: Option<InferredPdu>,
    pub early_auth: Option<InferredPdu>,
    /// [2.2.1.12.1.3] The server's last licensing PDU that ends licensing (a Licensing Error Message or a
    /// license).
    pub license_final: Option<InferredPdu>,
}

/// An inferred PDU: when, and how long the record was.
#[derive(Debug, Clone, Copy)]
pub struct InferredPdu {
    pub at_ms: Millis,
    pub plaintext: crate::infer::record::Span,
}

impl Inferred<'_> {
    /// Every reading says the server ended the connection this way.
    pub fn all_end(&self, f: impl Fn(crate::infer::ServerEnd) -> bool) -> bool {
        !self.endings.is_empty() && self.endings.iter().all(|e| f(*e))
    }

    /// Some readings say so and others do not.
    pub fn some_end(&self, f: impl Fn(crate::infer::ServerEnd) -> bool) -> bool {
        self.endings.iter().any(|e| f(*e)) && !self.all_end(f)
    }
}

/// [2.2.1.2.2] The server's RDP_NEG_FAILURE.
#[derive(Debug, Clone, Copy)]
pub struct NegFailure {
    pub at_ms: Millis,
    pub code: u32,
}

/// The server's TLS ServerHello.
#[derive(Debug, Clone, Copy)]
pub struct ServerHello {
    pub at_ms: Millis,
    /// The version it chose (0x0303 for TLS 1.2).
    pub version: u16,
}

/// [RFC 8446] 6 A TLS alert.
#[derive(Debug, Clone, Copy)]
pub struct TlsAlert {
    pub at_ms: Millis,
    /// Unknown when the alert was encrypted and nobody could decrypt it.
    pub description: Option<u8>,
    pub encrypted: bool,
}

/// The client's TLS handshake failed (not by an alert the server sent).
#[derive(Debug, Clone, Copy)]
pub struct TlsFailure<'t> {
    pub at_ms: Millis,
    pub error: &'t crate::trace::TlsError,
}

impl TlsFailure<'_> {
    /// The failure is the client refusing the server's certificate.
    pub fn certificate_failure(&self) -> bool {
        self.error.is_certificate()
    }
}

/// [MS-CSSP] 2.2.1 A server TSRequest with an errorCode.
#[derive(Debug, Clone, Copy)]
pub struct CredsspError {
    pub at_ms: Millis,
    /// An NTSTATUS ([MS-ERREF] 2.3.1).
    pub status: u32,
}

/// [2.2.10.2] The Early User Authorization Result.
#[derive(Debug, Clone, Copy)]
pub struct EarlyAuth {
    pub at_ms: Millis,
    pub result: u32,
}

/// [2.2.5.1.1] A Set Error Info PDU.
#[derive(Debug, Clone, Copy)]
pub struct ErrorInfo {
    pub at_ms: Millis,
    pub code: u32,
}

/// [2.2.1.12.1.3] A Licensing Error Message.
#[derive(Debug, Clone, Copy)]
pub struct LicenseError {
    pub at_ms: Millis,
    pub code: u32,
    pub transition: u32,
}

/// [2.2.13.1] A redirection of the client elsewhere.
#[derive(Debug, Clone)]
pub struct Redirection {
    pub at_ms: Millis,
    /// Where to: `session 3 on 127.0.0.2`.
    pub to: String,
    /// The target's address (or FQDN), when the PDU names one.
    pub target: Option<String>,
    /// The routing token the next connection carries.
    pub load_balance_info: Option<String>,
}

/// [MS-TSGU] what the RD Gateway of the connection said.
#[derive(Debug, Clone, Default)]
pub struct Gateway<'t> {
    /// `https://host:port`.
    pub address: &'t str,
    /// The gateway's last HTTP response.
    pub last_response: Option<HttpStatus<'t>>,
    /// The client sent credentials (an Authorization header).
    pub credentials_sent: bool,
    /// The schemes the gateway offered, in words.
    pub offered: Option<&'t str>,
    /// [MS-TSGU] 2.2.6 the first answer with a failing HRESULT.
    pub refusal: Option<GatewayRefusal>,
    /// How the gateway ended the tunnel.
    pub tunnel_end: Option<(Millis, crate::trace::TunnelEnd)>,
    /// The target the channel was to go to.
    pub target: Option<&'t str>,
    /// Packets named from the sizes of encrypted records (a capture without the gateway's TLS secrets): the
    /// first one's time, and whether the target's X.224 Connection Confirm was among them.
    pub by_size: Option<(Millis, bool)>,
}

/// An HTTP response of the gateway.
#[derive(Debug, Clone, Copy)]
pub struct HttpStatus<'t> {
    pub at_ms: Millis,
    pub status: u16,
    /// Its summary, as the trace has it.
    pub summary: &'t str,
}

/// [MS-TSGU] 2.2.10 an answer of the gateway with a failing HRESULT.
#[derive(Debug, Clone, Copy)]
pub struct GatewayRefusal {
    pub at_ms: Millis,
    /// [MS-TSGU] 2.2.5.3.3 the packet type (HTTP transport).
    pub packet_type: u16,
    /// [MS-TSGU] 3.2.4 over RPC: the opnum of the TsProxy call refused (the packet type is then 0).
    pub rpc_opnum: Option<u16>,
    pub code: u32,
}

/// [MS-RDPBCGR] 3.2.5.13.1 a connection that redirected the client to the next one.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The server it connected to.
    pub server: String,
    /// Where it was sent: the PDU's target, when it named one.
    pub to: Option<String>,
    /// The routing token it gave.
    pub token: Option<String>,
}

/// [2.2.3.1] A Deactivate All PDU.
#[derive(Debug, Clone, Copy)]
pub struct Deactivation {
    pub at_ms: Millis,
    /// A Demand Active followed it.
    pub reactivated: bool,
}

/// [2.2.2.3] A Disconnect Provider Ultimatum from the server.
#[derive(Debug, Clone, Copy)]
pub struct Ultimatum {
    pub at_ms: Millis,
    /// [T.125] 7 its reason.
    pub reason: u8,
}

/// The end of the TCP connection.
#[derive(Debug, Clone, Copy)]
pub struct Close {
    pub at_ms: Millis,
    pub by: Side,
    pub how: CloseKind,
}

/// A deadline that expired while waiting for the server.
#[derive(Debug, Clone, Copy)]
pub struct Timeout<'t> {
    pub at_ms: Millis,
    pub deadline: Deadline,
    pub waiting_for: &'t str,
}

impl Timeout<'_> {
    /// The deadline in words: "3 s (--phase-timeout)".
    pub fn within(&self) -> String {
        let option = match self.deadline {
            Deadline::Phase { .. } => "--phase-timeout",
            Deadline::Total { .. } => "--timeout",
        };
        format!("{} s ({option})", self.deadline.seconds())
    }
}

/// A PDU that should have decoded and did not.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolError<'t> {
    pub at_ms: Millis,
    pub from: Side,
    pub pdu: &'t str,
    pub offset: Option<usize>,
    pub detail: &'t str,
}

/// The client cannot go on, though the server is within the specification.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimit<'t> {
    pub at_ms: Millis,
    pub detail: &'t str,
}

/// A TCP connect attempt that failed.
#[derive(Debug, Clone, Copy)]
pub struct ConnectFailure<'t> {
    pub at_ms: Millis,
    pub addr: &'t str,
    pub error: &'t ConnectError,
}

/// A host name that did not resolve.
#[derive(Debug, Clone, Copy)]
pub struct ResolveFailure<'t> {
    pub at_ms: Millis,
    pub host: &'t str,
    pub error: &'t str,
}

/// Bytes at the end of the server's stream that never made a whole frame.
#[derive(Debug, Clone, Copy)]
pub struct IncompleteFrame {
    pub bytes: u64,
    pub first_byte: u8,
}

/// Bytes a capture misses.
#[derive(Debug, Clone, Copy)]
pub struct Gaps {
    /// When the first gap came, and in which phase.
    pub first_at_ms: Millis,
    pub first_phase: PhaseName,
    pub client_bytes: u64,
    pub server_bytes: u64,
}

/// A PDU and the phase it was recorded in.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'t> {
    pub phase: PhaseName,
    pub pdu: &'t Pdu,
}

impl Findings<'_> {
    /// The cause a close gives a verdict that has nothing more specific: the server's FIN or RST, or the
    /// client's close; `otherwise` when nobody closed.
    pub fn close_cause(&self, otherwise: crate::verdict::Cause) -> crate::verdict::Cause {
        use crate::verdict::Cause;
        match self.close {
            Some(c) if c.by == Side::Server && c.how == CloseKind::Fin => Cause::ClosedByServer,
            Some(c) if c.by == Side::Server => Cause::ResetByServer,
            Some(_) => Cause::ClosedByClient,
            None => otherwise,
        }
    }

    /// How the connection ended, in words: "the server closed the connection (FIN)".
    pub fn close_words(&self) -> Option<&'static str> {
        let close = self.close?;
        Some(match (close.by, close.how) {
            (Side::Server, CloseKind::Fin) => "the server closed the connection (FIN)",
            (Side::Server, CloseKind::Rst) => "the connection was reset (RST)",
            (Side::Client, CloseKind::Fin) => "the client closed the connection (FIN)",
            (Side::Client, CloseKind::Rst) => "the client reset the connection (RST)",
        })
    }

    /// The close as a line of evidence: "12.5 ms: server closed (FIN)".
    pub fn close_evidence(&self) -> Option<String> {
        let close = self.close?;
        let how = match close.how {
            CloseKind::Fin => "closed (FIN)",
            CloseKind::Rst => "reset (RST)",
        };
        Some(format!(
            "{:.1} ms: {} {how}",
            close.at_ms,
            close.by.as_str()
        ))
    }

    /// How the server ended it: its Disconnect Provider Ultimatum, if one came, then the close.
    pub fn ending_evidence(&self) -> Vec<String> {
        let ultimatum = self.ultimatum.map(|u| {
            format!(
                "{:.1} ms: server Disconnect Provider Ultimatum {}",
                u.at_ms,
                codes::name(Table::DpuReason, u32::from(u.reason))
            )
        });
        ultimatum.into_iter().chain(self.close_evidence()).collect()
    }

    /// A note on the server's bytes that never made a whole frame, or nothing.
    pub fn incomplete_note(&self) -> String {
        match self.incomplete_server_frame {
            Some(IncompleteFrame {
                bytes,
                first_byte: 0x03,
                ..
            }) => format!(
                "; the server's last {bytes} bytes start like a TPKT header but the frame never completed: the peer may not be an RDP server"
            ),
            Some(IncompleteFrame {
                bytes, first_byte, ..
            }) => format!(
                "; the server's last {bytes} bytes (first byte 0x{first_byte:02x}) never made a whole frame"
            ),
            None => String::new(),
        }
    }
}
