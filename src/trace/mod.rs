//! The one data model: a [`Trace`] of phases, each holding the PDUs, events and facts seen in it.
//!
//! The live probe, the capture replay and the built-in target fill it; [`crate::diagnose`] turns it into a
//! [`crate::verdict::Verdict`]; [`crate::report`] renders both. Nothing in here does I/O.

mod fact;
mod per_side;

use core::fmt;
use std::net::SocketAddr;

use serde::{Serialize, Serializer};

use crate::pdu::PduInfo;

/// The phases of a connection, in wire order: those of an RD Gateway ([MS-TSGU] 3.3.5) when the connection
/// goes through one, then those of the RDP connection sequence ([MS-RDPBCGR] 1.3.1.1).
///
/// The gateway phases are phases of the same connection (the verdict names them, exit codes order them, the
/// catalogue expects them); a trace that does not go through a gateway never serialises them, so its JSON is
/// what it was before they existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// [MS-TSGU] 3.3.5.1 Name resolution, the TCP handshake and the TLS handshake to the RD Gateway, with its
    /// certificate.
    GatewayConnect,
    /// [MS-TSGU] 3.3.5.1 The HTTP authentication to the gateway (NTLM, Negotiate, Basic) and the transport it
    /// grants: a WebSocket upgrade, or the RDG_OUT_DATA and RDG_IN_DATA channels.
    GatewayAuth,
    /// [MS-TSGU] 3.3.5.2 The handshake, tunnel creation, tunnel authorization and channel creation to the
    /// target server.
    GatewayTunnel,
    /// Name resolution and the TCP handshake.
    Tcp,
    /// [2.2.1.1] / [2.2.1.2] X.224 Connection Request and Confirm with RDP_NEG_REQ / RSP / FAILURE.
    X224,
    /// [5.4.5.1] The TLS handshake of Enhanced RDP Security.
    Tls,
    /// [MS-CSSP] The CredSSP (NLA) exchange of TSRequests.
    Credssp,
    /// [2.2.10.2] Early User Authorization Result PDU (PROTOCOL_HYBRID_EX).
    EarlyUserAuth,
    /// [2.2.1.3] / [2.2.1.4] MCS Connect Initial and Connect Response with the GCC blocks.
    McsConnect,
    /// [2.2.1.5] - [2.2.1.9] Erect Domain, Attach User and the Channel Joins.
    ChannelJoin,
    /// [2.2.1.10] Security Exchange (Standard RDP Security) and [2.2.1.11] Client Info.
    SecureSettings,
    /// [2.2.1.12] Licensing ([MS-RDPELE]).
    Licensing,
    /// [2.2.1.13] Demand Active and Confirm Active.
    Capabilities,
    /// [2.2.1.14] - [2.2.1.22] Synchronize, Control, Font List and Font Map.
    Finalization,
    /// After the connection sequence: the watch for what the server does next.
    Active,
}

impl PhaseName {
    /// The gateway phases, in wire order.
    pub const GATEWAY: [PhaseName; 3] = [
        PhaseName::GatewayConnect,
        PhaseName::GatewayAuth,
        PhaseName::GatewayTunnel,
    ];

    /// Every phase, gateway phases first, in wire order: the phases a [`Trace`] holds.
    pub const EVERY: [PhaseName; 15] = [
        PhaseName::GatewayConnect,
        PhaseName::GatewayAuth,
        PhaseName::GatewayTunnel,
        PhaseName::Tcp,
        PhaseName::X224,
        PhaseName::Tls,
        PhaseName::Credssp,
        PhaseName::EarlyUserAuth,
        PhaseName::McsConnect,
        PhaseName::ChannelJoin,
        PhaseName::SecureSettings,
        PhaseName::Licensing,
        PhaseName::Capabilities,
        PhaseName::Finalization,
        PhaseName::Active,
    ];

    /// Every phase of the RDP connection sequence, in wire order.
    pub const ALL: [PhaseName; 12] = [
        PhaseName::Tcp,
        PhaseName::X224,
        PhaseName::Tls,
        PhaseName::Credssp,
        PhaseName::EarlyUserAuth,
        PhaseName::McsConnect,
        PhaseName::ChannelJoin,
        PhaseName::SecureSettings,
        PhaseName::Licensing,
        PhaseName::Capabilities,
        PhaseName::Finalization,
        PhaseName::Active,
    ];

    /// Whether this is a phase of the RD Gateway.
    pub fn is_gateway(self) -> bool {
        matches!(
            self,
            PhaseName::GatewayConnect | PhaseName::GatewayAuth | PhaseName::GatewayTunnel
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::GatewayConnect => "gateway_connect",
            PhaseName::GatewayAuth => "gateway_auth",
            PhaseName::GatewayTunnel => "gateway_tunnel",
            PhaseName::Tcp => "tcp",
            PhaseName::X224 => "x224",
            PhaseName::Tls => "tls",
            PhaseName::Credssp => "credssp",
            PhaseName::EarlyUserAuth => "early_user_auth",
            PhaseName::McsConnect => "mcs_connect",
            PhaseName::ChannelJoin => "channel_join",
            PhaseName::SecureSettings => "secure_settings",
            PhaseName::Licensing => "licensing",
            PhaseName::Capabilities => "capabilities",
            PhaseName::Finalization => "finalization",
            PhaseName::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<PhaseName> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        PhaseName::EVERY.into_iter().find(|p| p.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    /// The phase completed.
    Ok,
    /// The connection ended, or could not go on, in this phase.
    Failed,
    /// The phase does not apply to this connection (for example `credssp` when TLS was selected).
    Skipped,
    /// The connection never got this far.
    NotReached,
}

impl PhaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseStatus::Ok => "ok",
            PhaseStatus::Failed => "failed",
            PhaseStatus::Skipped => "skipped",
            PhaseStatus::NotReached => "not reached",
        }
    }
}

/// Which peer sent something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// Milliseconds since the start of the trace.
pub type Millis = f64;

/// One PDU seen on the wire, decoded as far as rdptrace can.
#[derive(Debug, Clone, Serialize)]
pub struct Pdu {
    pub at_ms: Millis,
    pub from: Side,
    /// Bytes of the PDU on its layer (TPKT length, TLS record payload, TSRequest length).
    pub len: usize,
    /// The PDU's name as the specification spells it.
    pub name: String,
    /// One line of the fields that matter.
    pub summary: String,
    /// The decoded content that diagnosis reads.
    pub info: PduInfo,
}

/// How a TCP connection ended, seen from one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseKind {
    /// An orderly close (FIN, or end of stream on the socket).
    Fin,
    /// A reset (RST, or ECONNRESET on the socket).
    Rst,
}

/// Why a TCP connect did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum ConnectError {
    /// The host answered the SYN with a reset: nothing listens, or a firewall rejects.
    Refused,
    /// No answer before the deadline: a silent firewall or a host that is down.
    TimedOut,
    /// ICMP unreachable (host or network), or no route.
    Unreachable(String),
    Other(String),
}

/// Which deadline expired.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Deadline {
    /// `--phase-timeout`: one phase took too long.
    Phase { seconds: f64 },
    /// `--timeout`: the whole probe took too long.
    Total { seconds: f64 },
}

impl Deadline {
    pub fn seconds(self) -> f64 {
        match self {
            Deadline::Phase { seconds } | Deadline::Total { seconds } => seconds,
        }
    }
}

/// A problem with the server's certificate. Recorded, not fatal, unless `--strict-cert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertProblem {
    SelfSigned,
    Expired,
    NotYetValid,
    NameMismatch,
    WeakKey,
    Unparsable,
}

impl CertProblem {
    pub fn as_str(&self) -> &'static str {
        match self {
            CertProblem::SelfSigned => "self-signed",
            CertProblem::Expired => "expired",
            CertProblem::NotYetValid => "not yet valid",
            CertProblem::NameMismatch => "name mismatch",
            CertProblem::WeakKey => "weak key",
            CertProblem::Unparsable => "unparsable",
        }
    }
}

/// Why the client's TLS handshake failed: rustls's typed error, closed to the kinds diagnosis tells apart.
///
/// It serialises as the line it displays (the server's alert by name, otherwise what rustls or the socket
/// said).
#[derive(Debug, Clone)]
pub enum TlsError {
    /// The server sent a fatal alert ([RFC 8446] 6.2, [RFC 5246] 7.2.2).
    AlertReceived(rustls::AlertDescription),
    /// The server's certificate was refused.
    Certificate(CertificateFailure),
    /// The server offered nothing the client supports (versions, cipher suites, groups, signature schemes).
    PeerIncompatible(rustls::PeerIncompatible),
    /// The server broke the TLS protocol.
    PeerMisbehaved(rustls::PeerMisbehaved),
    /// The socket failed under the handshake (not a close: a close is an [`EventKind::Closed`]).
    Io {
        kind: std::io::ErrorKind,
        detail: String,
    },
    /// Any other error of rustls, as rustls describes it.
    Other(rustls::Error),
}

/// Why the server's certificate was refused.
#[derive(Debug, Clone)]
pub enum CertificateFailure {
    /// rustls refused it (the probe's verifier accepts any chain; a handshake signature that does not verify
    /// with the certificate's key ends here).
    Invalid(rustls::CertificateError),
    /// The server sent no certificate.
    NonePresented,
    /// `--strict-cert`: the problems found, each as described.
    Strict(Vec<String>),
}

impl TlsError {
    /// Whether the server's certificate is what ended the handshake.
    pub fn is_certificate(&self) -> bool {
        matches!(self, TlsError::Certificate(_))
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        match e {
            rustls::Error::AlertReceived(alert) => TlsError::AlertReceived(alert),
            rustls::Error::InvalidCertificate(e) => {
                TlsError::Certificate(CertificateFailure::Invalid(e))
            }
            rustls::Error::NoCertificatesPresented => {
                TlsError::Certificate(CertificateFailure::NonePresented)
            }
            rustls::Error::PeerIncompatible(why) => TlsError::PeerIncompatible(why),
            rustls::Error::PeerMisbehaved(why) => TlsError::PeerMisbehaved(why),
            other => TlsError::Other(other),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // rustls's own words for its errors, through the error they came from.
        let rustls = |e: rustls::Error, f: &mut fmt::Formatter<'_>| fmt::Display::fmt(&e, f);
        match self {
            TlsError::AlertReceived(alert) => write!(f, "the server sent alert {alert:?}"),
            TlsError::Certificate(CertificateFailure::Invalid(e)) => {
                rustls(rustls::Error::InvalidCertificate(e.clone()), f)
            }
            TlsError::Certificate(CertificateFailure::NonePresented) => {
                rustls(rustls::Error::NoCertificatesPresented, f)
            }
            TlsError::Certificate(CertificateFailure::Strict(problems)) => write!(
                f,
                "certificate rejected (--strict-cert): {}",
                problems.join("; ")
            ),
            TlsError::PeerIncompatible(why) => {
                rustls(rustls::Error::PeerIncompatible(why.clone()), f)
            }
            TlsError::PeerMisbehaved(why) => rustls(rustls::Error::PeerMisbehaved(why.clone()), f),
            TlsError::Io { detail, .. } => f.write_str(detail),
            TlsError::Other(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl Serialize for TlsError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Something that happened that is not a PDU.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at_ms: Millis,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum EventKind {
    /// The host name resolved to these addresses.
    Resolved { host: String, addrs: Vec<String> },
    /// The host name did not resolve.
    ResolveFailed { host: String, error: String },
    /// A TCP connect attempt to one address failed.
    ConnectFailed { addr: String, error: ConnectError },
    /// The TCP handshake completed.
    Connected { local: String, remote: String },
    /// The TLS handshake completed.
    TlsEstablished {
        version: String,
        cipher_suite: String,
    },
    /// The TLS handshake failed: an alert from the server, or what the client's TLS stack refused.
    TlsFailed { error: TlsError },
    /// A certificate problem the client noticed.
    CertificateProblem {
        problem: CertProblem,
        detail: String,
    },
    /// The peer closed the connection.
    Closed { by: Side, how: CloseKind },
    /// A deadline expired while waiting for the peer.
    TimedOut {
        deadline: Deadline,
        waiting_for: String,
    },
    /// A PDU that should have decoded did not.
    ProtocolError {
        from: Side,
        pdu: String,
        offset: Option<usize>,
        detail: String,
    },
    /// The client side cannot go on, though the server did nothing wrong by the specification.
    ClientLimit { detail: String },
    /// The server asked the client to connect elsewhere.
    Redirected { detail: String },
    /// The RD Gateway ended the tunnel that carried the connection.
    TunnelEnded { end: TunnelEnd },
    /// A part of the stream is missing from a capture.
    Gap { from: Side, bytes: u64 },
    /// Bytes at the end of a stream that never made a whole frame (a peer that is not an RDP server, or a
    /// connection cut in the middle of a PDU).
    IncompleteFrame {
        from: Side,
        bytes: u64,
        first_byte: u8,
    },
    /// The capture ends here, with the connection still open.
    CaptureEnded,
    /// The client ended the connection on purpose (end of the active watch).
    ClientClosed { reason: String },
    /// Something worth a look that does not stop the connection.
    Anomaly { detail: String },
    /// The KDC the client uses for a realm, and how it was found.
    KdcChosen {
        realm: String,
        kdc: String,
        source: KdcSource,
    },
    /// No KDC was found for a realm.
    KdcNotFound { realm: String, tried: Vec<String> },
    /// [RFC 4120] 7.2 a Kerberos message to or from a KDC (UDP, TCP or an [MS-KKDCP] KDC proxy).
    Kdc {
        kdc: String,
        /// The address the message went to or came from, when the KDC was reached directly.
        #[serde(skip_serializing_if = "Option::is_none")]
        addr: Option<String>,
        direction: KdcDirection,
        message: crate::pdu::KrbMessage,
    },
    /// A KDC could not be reached, or its answer could not be read.
    KdcFailed { kdc: String, error: KdcError },
    /// Negotiate gave up on Kerberos and went on with NTLM ([MS-SPNG] 3.1.5.1): why.
    AuthFallback { reason: String },
    /// Kerberos is not tried for this target (or cannot work): why.
    KerberosNotUsed { reason: String },
}

/// Where the KDC of a realm came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KdcSource {
    /// `--kdc`.
    Option,
    /// A `kdc` line of `[realms]` in a krb5.conf.
    Krb5Conf { path: String },
    /// [RFC 4120] 7.2.3.2 a DNS SRV record.
    DnsSrv { name: String, server: String },
    /// A capture: the address the client sent its requests to.
    Capture,
}

impl fmt::Display for KdcSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KdcSource::Option => f.write_str("--kdc"),
            KdcSource::Krb5Conf { path } => write!(f, "krb5.conf ({path})"),
            KdcSource::DnsSrv { name, server } => write!(f, "DNS SRV {name} (from {server})"),
            KdcSource::Capture => f.write_str("the capture"),
        }
    }
}

/// Which way a KDC message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KdcDirection {
    ToKdc,
    FromKdc,
}

/// Why a KDC could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum KdcError {
    /// The KDC's name did not resolve.
    ResolveFailed(String),
    /// The TCP connect was refused (or, over UDP, an ICMP port unreachable came back).
    Refused,
    /// No answer before the deadline.
    TimedOut,
    /// No route, or an ICMP unreachable.
    Unreachable(String),
    /// The KDC closed the connection without an answer.
    Closed,
    /// [MS-KKDCP] the KDC proxy answered with this HTTP status.
    HttpStatus(u16),
    /// The TLS handshake with the KDC proxy failed.
    Tls(String),
    /// The answer is not a Kerberos message (or a KDC proxy message).
    Malformed(String),
    /// Any other failure of the socket.
    Io(String),
    /// In a capture: the client's requests to the KDC, and no answer to them in the capture in the time it
    /// shows after the last (whole milliseconds).
    Unanswered { requests: u32, waited_ms: u64 },
}

impl fmt::Display for KdcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KdcError::ResolveFailed(e) => write!(f, "the KDC's name did not resolve: {e}"),
            KdcError::Refused => f.write_str("connection refused"),
            KdcError::TimedOut => f.write_str("no answer"),
            KdcError::Unreachable(e) => write!(f, "unreachable: {e}"),
            KdcError::Closed => f.write_str("the KDC closed the connection without answering"),
            KdcError::HttpStatus(s) => write!(f, "the KDC proxy answered HTTP {s}"),
            KdcError::Tls(e) => write!(f, "TLS with the KDC proxy failed: {e}"),
            KdcError::Malformed(e) => write!(f, "the answer is not a Kerberos message: {e}"),
            KdcError::Io(e) => f.write_str(e),
            KdcError::Unanswered {
                requests: 1,
                waited_ms,
            } => write!(
                f,
                "no answer to the request in the {:.1} s the capture shows after it",
                *waited_ms as f64 / 1000.0
            ),
            KdcError::Unanswered {
                requests,
                waited_ms,
            } => write!(
                f,
                "no answer to {requests} requests in the {:.1} s the capture shows after the last",
                *waited_ms as f64 / 1000.0
            ),
        }
    }
}

/// How an RD Gateway ended the tunnel that carried a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TunnelEnd {
    /// [MS-TSGU] 2.2.10.23 an HTTP_CLOSE_PACKET (PKT_TYPE_CLOSE_CHANNEL) with its statusCode: the gateway
    /// closed the channel, when the target server closed its side or for a reason the code gives.
    ChannelClose { status: u32 },
    /// [RFC 6455] 5.5.1 a WebSocket Close frame, with its status code when it has one.
    WebSocketClose { code: Option<u16> },
    /// The gateway's connection ended (a FIN, or a reset) without closing the channel first.
    Dropped { how: CloseKind },
}

impl fmt::Display for TunnelEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelEnd::ChannelClose { status } => write!(
                f,
                "the gateway closed the channel (HTTP_CLOSE_PACKET, statusCode {})",
                crate::codes::Display(crate::codes::Table::Gateway, *status)
            ),
            TunnelEnd::WebSocketClose { code: Some(code) } => {
                write!(f, "the gateway sent a WebSocket Close frame (code {code})")
            }
            TunnelEnd::WebSocketClose { code: None } => {
                f.write_str("the gateway sent a WebSocket Close frame")
            }
            TunnelEnd::Dropped { how } => write!(
                f,
                "the gateway's connection ended ({}) without closing the channel",
                match how {
                    CloseKind::Fin => "FIN",
                    CloseKind::Rst => "RST",
                }
            ),
        }
    }
}

pub use fact::Fact;
pub use per_side::{Pairing, PerSide};

/// A value in the fact list of a phase.
pub type FactValue = serde_json::Value;

/// Ordered key/value facts of one phase (`selected_protocol`, `tls_version`, ...).
#[derive(Debug, Clone, Default)]
pub struct Facts(Vec<(Fact, FactValue)>);

impl Facts {
    /// Sets a fact, replacing an earlier value of the same key in place.
    pub fn set(&mut self, key: Fact, value: impl Into<FactValue>) {
        let value = value.into();
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.0.push((key, value));
        }
    }

    pub fn get(&self, key: Fact) -> Option<&FactValue> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Removes a fact and gives its value.
    pub fn take(&mut self, key: Fact) -> Option<FactValue> {
        let i = self.0.iter().position(|(k, _)| *k == key)?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Fact, &FactValue)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Facts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_str(), v)?;
        }
        map.end()
    }
}

/// Counters for PDUs that are too many to list one by one (fast-path output in the active phase).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub name: String,
    pub count: u64,
    pub bytes: u64,
}

/// One phase of the connection sequence.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: PhaseName,
    pub status: PhaseStatus,
    /// When the first byte of the phase was sent or seen.
    pub start_ms: Option<Millis>,
    pub duration_ms: Option<Millis>,
    /// Bytes received from the server in this phase (on the TCP stream, outer layer).
    pub bytes_in: u64,
    /// Bytes sent by the client in this phase (on the TCP stream, outer layer).
    pub bytes_out: u64,
    pub facts: Facts,
    pub pdus: Vec<Pdu>,
    pub events: Vec<Event>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tallies: Vec<Tally>,
}

impl Phase {
    fn new(name: PhaseName) -> Self {
        Phase {
            name,
            status: PhaseStatus::NotReached,
            start_ms: None,
            duration_ms: None,
            bytes_in: 0,
            bytes_out: 0,
            facts: Facts::default(),
            pdus: Vec::new(),
            events: Vec::new(),
            tallies: Vec::new(),
        }
    }

    fn touch(&mut self, at: Millis) {
        match self.start_ms {
            None => {
                self.start_ms = Some(at);
                self.duration_ms = Some(0.0);
            }
            Some(start) => {
                let d = (at - start).max(0.0);
                if self.duration_ms.is_none_or(|old| d > old) {
                    self.duration_ms = Some(d);
                }
            }
        }
    }
}

/// Where a trace came from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    /// A live probe by this process.
    Probe,
    /// A capture file read offline.
    Replay { file: String, session: usize },
    /// The built-in target's view of a client.
    Serve { scenario: String },
}

/// What the client asked for; diagnosis needs it to explain the server's answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Request {
    /// `requestedProtocols` of the RDP_NEG_REQ, `None` when no RDP_NEG_REQ was sent.
    pub requested_protocols: Option<u32>,
    /// Whether credentials were given (never the credentials themselves).
    pub credentials: bool,
    pub user: Option<String>,
    pub domain: Option<String>,
    pub strict_cert: bool,
    /// The RD Gateway the connection goes through (`https://gw.example:443`), when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The routing token of the X.224 Connection Request: the load-balance info of the collection, or of a
    /// Server Redirection PDU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balance_info: Option<String>,
}

/// Bound on PDUs kept per phase; the rest are tallied. A hostile or chatty peer must not grow a trace
/// without limit.
pub const MAX_PDUS_PER_PHASE: usize = 256;
/// PDUs that decide a verdict are kept past [`MAX_PDUS_PER_PHASE`], up to this many more.
pub const MAX_DECISIVE_EXTRA: usize = 64;
/// Bound on events kept per phase.
pub const MAX_EVENTS_PER_PHASE: usize = 256;

/// A whole connection, phase by phase.
///
/// It serialises (JSON `rdptrace/1`) with the gateway phases only when the connection went through a
/// gateway, and with `hops` only when it followed a redirection: the document of a direct connection is
/// what it was before either existed.
#[derive(Debug, Clone)]
pub struct Trace {
    /// What the user pointed rdptrace at (`host:port`, or the server address of a capture).
    pub target: String,
    pub origin: Origin,
    /// Wall-clock start, RFC 3339.
    pub started_at: Option<String>,
    pub client_addr: Option<String>,
    pub server_addr: Option<String>,
    pub request: Request,
    /// INVARIANT: one entry per [`PhaseName`], in [`PhaseName::EVERY`] order.
    pub phases: Vec<Phase>,
    /// [MS-RDPBCGR] 3.2.5.13.1 The connections before this one, in order, when the client followed Server
    /// Redirection PDUs to get here (a connection broker, then the session host): each one's own trace.
    /// This trace is the last hop's, and the verdict is on the whole.
    pub hops: Vec<Trace>,
    /// What the sizes of the records nobody could decrypt show (replay without secrets).
    pub inference: Option<crate::infer::Inference>,
    /// The phase the connection is in (the last one that saw something).
    current: PhaseName,
}

impl Serialize for Trace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The serialised view: the fields in their order, the gateway phases of a gateway connection only,
        /// the hops when there are some.
        #[derive(Serialize)]
        struct View<'a> {
            target: &'a str,
            origin: &'a Origin,
            started_at: &'a Option<String>,
            client_addr: &'a Option<String>,
            server_addr: &'a Option<String>,
            request: &'a Request,
            phases: Vec<&'a Phase>,
            #[serde(skip_serializing_if = "Option::is_none")]
            inference: &'a Option<crate::infer::Inference>,
            #[serde(skip_serializing_if = "<[Trace]>::is_empty")]
            hops: &'a [Trace],
        }
        let gateway = self.through_gateway();
        View {
            target: &self.target,
            origin: &self.origin,
            started_at: &self.started_at,
            client_addr: &self.client_addr,
            server_addr: &self.server_addr,
            request: &self.request,
            phases: self
                .phases
                .iter()
                .filter(|p| gateway || !p.name.is_gateway())
                .collect(),
            inference: &self.inference,
            hops: &self.hops,
        }
        .serialize(serializer)
    }
}

impl Trace {
    pub fn new(target: impl Into<String>, origin: Origin) -> Self {
        Trace {
            target: target.into(),
            origin,
            started_at: None,
            client_addr: None,
            server_addr: None,
            request: Request::default(),
            phases: PhaseName::EVERY.into_iter().map(Phase::new).collect(),
            hops: Vec::new(),
            inference: None,
            current: PhaseName::Tcp,
        }
    }

    /// Whether the connection went through an RD Gateway: one was asked for, or a gateway phase saw
    /// something.
    pub fn through_gateway(&self) -> bool {
        self.request.gateway.is_some()
            || PhaseName::GATEWAY
                .into_iter()
                .any(|p| self.phase(p).start_ms.is_some())
    }

    /// The phases to show: the gateway phases only for a connection through a gateway.
    pub fn shown_phases(&self) -> impl Iterator<Item = &Phase> {
        let gateway = self.through_gateway();
        self.phases
            .iter()
            .filter(move |p| gateway || !p.name.is_gateway())
    }

    pub fn set_addrs(&mut self, client: Option<SocketAddr>, server: Option<SocketAddr>) {
        self.client_addr = client.map(|a| a.to_string());
        self.server_addr = server.map(|a| a.to_string());
    }

    pub fn phase(&self, name: PhaseName) -> &Phase {
        // INVARIANT: `phases` holds every PhaseName in order, so the index is in bounds.
        &self.phases[name.index()]
    }

    pub fn phase_mut(&mut self, name: PhaseName) -> &mut Phase {
        &mut self.phases[name.index()]
    }

    /// The phase the connection is in now.
    pub fn current(&self) -> PhaseName {
        self.current
    }

    /// Moves the connection into `name`.
    ///
    /// Phases between the old current one and `name` that saw nothing are marked skipped, the old current
    /// phase is marked ok. Moving backwards (a Deactivate All followed by a new capability exchange) is
    /// allowed and keeps the earlier statuses.
    pub fn enter(&mut self, name: PhaseName, at: Millis) {
        if name == self.current && self.phase(name).start_ms.is_some() {
            return;
        }
        if name > self.current {
            let old = self.current;
            if self.phase(old).status != PhaseStatus::Failed && self.phase(old).start_ms.is_some() {
                self.phase_mut(old).status = PhaseStatus::Ok;
            }
            for between in PhaseName::ALL {
                if between > old && between < name && self.phase(between).start_ms.is_none() {
                    self.phase_mut(between).status = PhaseStatus::Skipped;
                }
            }
        }
        self.current = name;
        let phase = self.phase_mut(name);
        phase.touch(at);
        if phase.status == PhaseStatus::NotReached || phase.status == PhaseStatus::Skipped {
            // In progress; `finish` settles the last one.
            phase.status = PhaseStatus::Ok;
        }
    }

    /// Marks a phase that does not apply (for example `tls` under Standard RDP Security).
    pub fn skip(&mut self, name: PhaseName) {
        let phase = self.phase_mut(name);
        if phase.start_ms.is_none() {
            phase.status = PhaseStatus::Skipped;
        }
    }

    /// Records a PDU in the current phase.
    pub fn record_pdu(&mut self, pdu: Pdu) {
        let phase_name = self.current;
        let phase = self.phase_mut(phase_name);
        phase.touch(pdu.at_ms);
        if phase.pdus.len() < MAX_PDUS_PER_PHASE
            || (pdu.info.is_decisive()
                && phase.pdus.len() < MAX_PDUS_PER_PHASE + MAX_DECISIVE_EXTRA)
        {
            phase.pdus.push(pdu);
        } else {
            let name = pdu.name.clone();
            tally(&mut phase.tallies, &name, pdu.len as u64);
        }
    }

    /// Counts a PDU without keeping it.
    pub fn tally(&mut self, name: &str, len: usize, at: Millis) {
        let phase_name = self.current;
        let phase = self.phase_mut(phase_name);
        phase.touch(at);
        tally(&mut phase.tallies, name, len as u64);
    }

    /// Records an event in the current phase.
    pub fn record_event(&mut self, at_ms: Millis, kind: EventKind) {
        let phase_name = self.current;
        self.record_event_in(phase_name, at_ms, kind);
    }

    /// Records an event in a given phase.
    pub fn record_event_in(&mut self, phase_name: PhaseName, at_ms: Millis, kind: EventKind) {
        let phase = self.phase_mut(phase_name);
        if phase.start_ms.is_none() {
            phase.start_ms = Some(at_ms);
        }
        phase.touch(at_ms);
        if phase.events.len() < MAX_EVENTS_PER_PHASE {
            phase.events.push(Event { at_ms, kind });
        }
    }

    /// Records an event from outside the connection (a client's KDC exchange that a capture holds) in a
    /// given phase, without moving the phase's timing or status: the phase's own bytes set those.
    pub fn note_event_in(&mut self, phase_name: PhaseName, at_ms: Millis, kind: EventKind) {
        let phase = self.phase_mut(phase_name);
        if phase.events.len() < MAX_EVENTS_PER_PHASE {
            phase.events.push(Event { at_ms, kind });
        }
    }

    /// Sets a fact on the current phase.
    pub fn fact(&mut self, key: Fact, value: impl Into<FactValue>) {
        let phase_name = self.current;
        self.phase_mut(phase_name).facts.set(key, value);
    }

    /// The text of a fact of the current phase, or an empty string.
    pub fn current_facts_list(&self, key: Fact) -> String {
        match self.phase(self.current).facts.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    /// Sets a fact on a given phase.
    pub fn fact_in(&mut self, phase: PhaseName, key: Fact, value: impl Into<FactValue>) {
        self.phase_mut(phase).facts.set(key, value);
    }

    /// Adds bytes to the current phase's counters.
    pub fn count_bytes(&mut self, from: Side, n: usize) {
        let phase_name = self.current;
        let phase = self.phase_mut(phase_name);
        match from {
            Side::Server => phase.bytes_in += n as u64,
            Side::Client => phase.bytes_out += n as u64,
        }
    }

    /// Settles the statuses once the connection is over.
    ///
    /// `reached_end` says whether the connection ended the way it should (the client left the active
    /// phase on purpose). Otherwise the current phase failed and every later one was not reached.
    pub fn finish(&mut self, failed: bool) {
        let current = self.current;
        for phase in &mut self.phases {
            if phase.name > current && phase.start_ms.is_none() {
                phase.status = PhaseStatus::NotReached;
            }
        }
        let phase = self.phase_mut(current);
        phase.status = if failed {
            PhaseStatus::Failed
        } else {
            PhaseStatus::Ok
        };
        if phase.start_ms.is_none() {
            phase.start_ms = Some(0.0);
            phase.duration_ms = Some(0.0);
        }
    }

    /// Every PDU of the trace, in phase order.
    pub fn pdus(&self) -> impl Iterator<Item = (PhaseName, &Pdu)> {
        self.phases
            .iter()
            .flat_map(|p| p.pdus.iter().map(move |pdu| (p.name, pdu)))
    }

    /// Every event of the trace, in phase order.
    pub fn events(&self) -> impl Iterator<Item = (PhaseName, &Event)> {
        self.phases
            .iter()
            .flat_map(|p| p.events.iter().map(move |e| (p.name, e)))
    }

    /// The last PDU of the trace (by time), if any.
    pub fn last_pdu(&self) -> Option<(PhaseName, &Pdu)> {
        self.pdus().max_by(|a, b| a.1.at_ms.total_cmp(&b.1.at_ms))
    }

    /// The last PDU sent by `side`.
    pub fn last_pdu_from(&self, side: Side) -> Option<(PhaseName, &Pdu)> {
        self.pdus()
            .filter(|(_, p)| p.from == side)
            .max_by(|a, b| a.1.at_ms.total_cmp(&b.1.at_ms))
    }

    /// [2.2.3.1] The server sent a Deactivate All after which no Demand Active came: the session is over.
    pub fn deactivated_for_good(&self) -> bool {
        let mut deactivated = false;
        let mut pdus: Vec<&Pdu> = self.pdus().map(|(_, p)| p).collect();
        pdus.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        for pdu in pdus {
            match pdu.info {
                PduInfo::DeactivateAll => deactivated = true,
                PduInfo::DemandActive { .. } => deactivated = false,
                _ => {}
            }
        }
        deactivated
    }

    /// The phase that failed, if one did.
    pub fn failed_phase(&self) -> Option<PhaseName> {
        self.phases
            .iter()
            .find(|p| p.status == PhaseStatus::Failed)
            .map(|p| p.name)
    }
}

fn tally(tallies: &mut Vec<Tally>, name: &str, bytes: u64) {
    if let Some(t) = tallies.iter_mut().find(|t| t.name == name) {
        t.count += 1;
        t.bytes += bytes;
    } else if tallies.len() < MAX_PDUS_PER_PHASE {
        tallies.push(Tally {
            name: name.to_owned(),
            count: 1,
            bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdu(at_ms: Millis, from: Side, info: PduInfo) -> Pdu {
        Pdu {
            at_ms,
            from,
            len: 0,
            name: String::new(),
            summary: String::new(),
            info,
        }
    }

    fn demand_active(at_ms: Millis) -> Pdu {
        pdu(
            at_ms,
            Side::Server,
            PduInfo::DemandActive {
                share_id: 1,
                capability_sets: Vec::new(),
            },
        )
    }

    /// A TLS failure keeps its kind and reads, in text and JSON, as the line rustls (or the probe) gives it.
    #[test]
    fn a_tls_error_serialises_as_its_line_and_knows_its_kind() {
        let json = |error: TlsError| {
            serde_json::to_value(EventKind::TlsFailed { error }).expect("serialises")
        };
        assert_eq!(
            json(TlsError::from(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            ))),
            serde_json::json!({"event": "tls_failed", "error": "the server sent alert HandshakeFailure"})
        );
        let rustls_errors = [
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature),
            rustls::Error::NoCertificatesPresented,
            rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered),
            rustls::Error::PeerMisbehaved(rustls::PeerMisbehaved::TooManyEmptyFragments),
            rustls::Error::DecryptError,
        ];
        for e in rustls_errors {
            let line = e.to_string();
            let typed = TlsError::from(e);
            assert_eq!(typed.to_string(), line);
            assert_eq!(json(typed.clone())["error"], line.as_str());
            let certificate = line.contains("certificate");
            assert_eq!(typed.is_certificate(), certificate, "{line}");
        }
        let strict = TlsError::Certificate(CertificateFailure::Strict(vec![
            "self-signed".to_owned(),
            "expired".to_owned(),
        ]));
        assert_eq!(
            strict.to_string(),
            "certificate rejected (--strict-cert): self-signed; expired"
        );
        assert!(strict.is_certificate());
        // An alert is the server's refusal, whatever it names.
        let alert = TlsError::from(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate,
        ));
        assert!(!alert.is_certificate());
        let io = TlsError::Io {
            kind: std::io::ErrorKind::Other,
            detail: "no route".to_owned(),
        };
        assert_eq!(io.to_string(), "no route");
        assert!(!io.is_certificate());
    }

    /// [2.2.3.1] A reactivation goes back to the capabilities phase: its Demand Active is listed before the
    /// Deactivate All of the active phase, and came after it.
    #[test]
    fn a_demand_active_after_the_deactivate_all_reactivates_whatever_phase_holds_it() {
        let mut trace = Trace::new("t", Origin::Probe);
        trace.enter(PhaseName::Capabilities, 1.0);
        trace.record_pdu(demand_active(1.0));
        trace.enter(PhaseName::Active, 2.0);
        trace.record_pdu(pdu(3.0, Side::Server, PduInfo::DeactivateAll));
        assert!(trace.deactivated_for_good());
        trace.enter(PhaseName::Capabilities, 4.0);
        trace.record_pdu(demand_active(4.0));
        assert!(!trace.deactivated_for_good());
    }
}
