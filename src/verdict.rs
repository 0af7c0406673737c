//! The verdict: which phase failed, why, and what mstsc would have shown.

use serde::Serialize;

use crate::trace::PhaseName;

/// Why a connection ended where it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The connection reached the active state.
    Connected,
    /// The host name did not resolve.
    ResolveFailed,
    /// The TCP connect was refused (RST to the SYN).
    Refused,
    /// No route, or an ICMP unreachable.
    Unreachable,
    /// A deadline expired while waiting for the server.
    TimedOut,
    /// The server closed the connection (FIN) with no error report.
    ClosedByServer,
    /// The connection was reset (RST) with no error report.
    ResetByServer,
    /// The client closed or reset the connection before the server said anything conclusive (seen in
    /// captures: a client that gives up, or checks NLA and leaves).
    ClosedByClient,
    /// [2.2.1.2.2] RDP_NEG_FAILURE.
    NegotiationFailure,
    /// The server chose something the client did not offer, or answered without negotiation data.
    NegotiationMismatch,
    /// The server sent a TLS alert.
    TlsAlert,
    /// The TLS handshake failed on the client side.
    TlsFailed,
    /// The certificate was rejected (`--strict-cert`).
    CertificateRejected,
    /// [MS-CSSP] TSRequest errorCode.
    CredsspError,
    /// The server ended the connection during CredSSP without an errorCode.
    CredsspRejected,
    /// [RFC 4120] 5.9.1 Kerberos failed with a KRB-ERROR (from the KDC, or the server's in CredSSP) and
    /// nothing took its place.
    KerberosError,
    /// No KDC could be found or reached for the client's realm, and nothing took Kerberos's place.
    KdcUnreachable,
    /// [2.2.10.2] Early User Authorization Result: access denied.
    EarlyAuthDenied,
    /// [2.2.5.1.1] The server sent a Set Error Info PDU.
    ServerErrorInfo,
    /// [2.2.1.12.1.3] The server sent a licensing error that ends the connection.
    LicenseError,
    /// [2.2.2.3] Disconnect Provider Ultimatum without error info.
    DisconnectedByServer,
    /// [2.2.13.1] The server redirected the client elsewhere.
    Redirected,
    /// [2.2.3.1] Deactivate All with no reactivation.
    Deactivated,
    /// A PDU did not decode.
    ProtocolError,
    /// The client cannot go on although the server is within the specification (TLS 1.0 only, RC4).
    ClientLimit,
    /// A capture ends before the connection does.
    CaptureEnded,
    /// [MS-TSGU] 3.3.5.1 the RD Gateway answered an HTTP request with an error status (401, 403, 404, 5xx).
    GatewayHttpError,
    /// [MS-TSGU] 2.2.6 the RD Gateway refused the tunnel or the channel with an HRESULT (E_PROXY_*).
    GatewayRefused,
    /// The RD Gateway ended the tunnel while the RDP connection ran in it, without closing the channel.
    TunnelDropped,
    /// [MS-RDPBCGR] 3.2.5.13.1 the client was redirected again and again (a loop of brokers, or more
    /// redirections than a client follows).
    RedirectLoop,
}

impl Cause {
    /// Every cause, in declaration order.
    pub const ALL: [Cause; 30] = [
        Cause::Connected,
        Cause::ResolveFailed,
        Cause::Refused,
        Cause::Unreachable,
        Cause::TimedOut,
        Cause::ClosedByServer,
        Cause::ResetByServer,
        Cause::ClosedByClient,
        Cause::NegotiationFailure,
        Cause::NegotiationMismatch,
        Cause::TlsAlert,
        Cause::TlsFailed,
        Cause::CertificateRejected,
        Cause::CredsspError,
        Cause::CredsspRejected,
        Cause::KerberosError,
        Cause::KdcUnreachable,
        Cause::EarlyAuthDenied,
        Cause::ServerErrorInfo,
        Cause::LicenseError,
        Cause::DisconnectedByServer,
        Cause::Redirected,
        Cause::Deactivated,
        Cause::ProtocolError,
        Cause::ClientLimit,
        Cause::CaptureEnded,
        Cause::GatewayHttpError,
        Cause::GatewayRefused,
        Cause::TunnelDropped,
        Cause::RedirectLoop,
    ];

    /// The cause named `s` as [`Cause::as_str`] writes it (`-` for `_` accepted).
    pub fn parse(s: &str) -> Option<Cause> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Cause::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Connected => "connected",
            Cause::ResolveFailed => "resolve_failed",
            Cause::Refused => "refused",
            Cause::Unreachable => "unreachable",
            Cause::TimedOut => "timed_out",
            Cause::ClosedByServer => "closed_by_server",
            Cause::ResetByServer => "reset_by_server",
            Cause::ClosedByClient => "closed_by_client",
            Cause::NegotiationFailure => "negotiation_failure",
            Cause::NegotiationMismatch => "negotiation_mismatch",
            Cause::TlsAlert => "tls_alert",
            Cause::TlsFailed => "tls_failed",
            Cause::CertificateRejected => "certificate_rejected",
            Cause::CredsspError => "credssp_error",
            Cause::CredsspRejected => "credssp_rejected",
            Cause::KerberosError => "kerberos_error",
            Cause::KdcUnreachable => "kdc_unreachable",
            Cause::EarlyAuthDenied => "early_auth_denied",
            Cause::ServerErrorInfo => "server_error_info",
            Cause::LicenseError => "license_error",
            Cause::DisconnectedByServer => "disconnected_by_server",
            Cause::Redirected => "redirected",
            Cause::Deactivated => "deactivated",
            Cause::ProtocolError => "protocol_error",
            Cause::ClientLimit => "client_limit",
            Cause::CaptureEnded => "capture_ended",
            Cause::GatewayHttpError => "gateway_http_error",
            Cause::GatewayRefused => "gateway_refused",
            Cause::TunnelDropped => "tunnel_dropped",
            Cause::RedirectLoop => "redirect_loop",
        }
    }
}

/// A code with its name, as the tables in [`crate::codes`] give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Code {
    pub code: u32,
    pub name: String,
}

/// How sure a rule is: a rule of the mstsc translation ([`crate::mstsc`]), or a diagnosis rule
/// ([`crate::diagnose::rules::RULES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// A specification says so (the errorInfo value becomes the extended code; the server sent a PDU or a
    /// code whose meaning a specification defines).
    Specified,
    /// Follows from the documented meaning of the codes, or from what the trace shows and the order of the
    /// protocol, not stated anywhere as such.
    Inferred,
    /// Observed of an implementation (the Windows client, a server) and reported, not specified.
    Reported,
}

/// What mstsc would have shown: "Error code 0x904, Extended error code 0x7".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mstsc {
    pub disc_reason: Code,
    /// `None`: the extended code is the errorInfo of a Set Error Info the trace holds encrypted ([2.2.5.1.1]).
    pub extended: Option<Code>,
    pub basis: Basis,
    /// One sentence: why this pair.
    pub why: String,
}

impl Mstsc {
    /// The extended code, when the trace shows it.
    pub fn extended_code(&self) -> Option<u32> {
        self.extended.as_ref().map(|e| e.code)
    }
}

/// The verdict on one trace.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The connection reached the active state and stayed.
    pub ok: bool,
    /// The phase that failed; `None` when `ok`.
    pub phase: Option<PhaseName>,
    pub cause: Cause,
    /// What happened, in words a user understands.
    pub detail: String,
    /// The server's Set Error Info code, when one was received.
    pub error_info: Option<Code>,
    pub mstsc: Option<Mstsc>,
    /// The PDUs and events this verdict rests on, one line each.
    pub evidence: Vec<String>,
    /// What to look at next.
    pub hints: Vec<String>,
    /// When the evidence fits several causes, the pair mstsc would show for each (and `mstsc` is `None`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mstsc_either: Vec<Mstsc>,
    /// The verdict rests on the sizes of encrypted records nobody decrypted ([`crate::infer`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inferred: Option<Inferred>,
}

/// How a verdict inferred from encrypted records stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inferred {
    /// Encrypted records read after the TLS handshake (or after the Client Info, under Standard RDP
    /// Security).
    pub records: u32,
    /// The plaintext lengths were exact (AEAD or stream ciphers) rather than known to a cipher block.
    pub exact: bool,
    /// The records fit the connection sequence; `false`: they fit nothing rdptrace knows.
    pub explained: bool,
    /// The phases the readings of the records end in: more than one when they fit several places.
    pub phases: Vec<PhaseName>,
}

// ---- Exit codes -----------------------------------------------------------------------------------------
// README.md, "Exit codes": what a command that judged connections exits with. The codes that are not a
// verdict's (1 failure to run, 2 usage, 4 expectations not met) are in `crate::command`.

/// Exit code: the connection reached the active state (and the server did not end it during the watch).
pub const EXIT_OK: u8 = 0;
/// Exit code: no phase failed but the connection did not complete (a capture that ends early).
pub const EXIT_INCOMPLETE: u8 = 3;

impl Verdict {
    /// [`EXIT_OK`] when the connection reached the active state, otherwise the failed phase's code
    /// ([`phase_exit_code`]), or [`EXIT_INCOMPLETE`] when no phase failed.
    pub fn exit_code(&self) -> u8 {
        if self.ok {
            return EXIT_OK;
        }
        self.phase.map_or(EXIT_INCOMPLETE, phase_exit_code)
    }
}

/// The exit code of a connection that failed in `phase`: 10 for `tcp` to 21 for `active`, in the order of
/// the connection sequence, and 7 to 9 for the RD Gateway's phases before them.
pub const fn phase_exit_code(phase: PhaseName) -> u8 {
    match phase {
        PhaseName::GatewayConnect => 7,
        PhaseName::GatewayAuth => 8,
        PhaseName::GatewayTunnel => 9,
        PhaseName::Tcp => 10,
        PhaseName::X224 => 11,
        PhaseName::Tls => 12,
        PhaseName::Credssp => 13,
        PhaseName::EarlyUserAuth => 14,
        PhaseName::McsConnect => 15,
        PhaseName::ChannelJoin => 16,
        PhaseName::SecureSettings => 17,
        PhaseName::Licensing => 18,
        PhaseName::Capabilities => 19,
        PhaseName::Finalization => 20,
        PhaseName::Active => 21,
    }
}
