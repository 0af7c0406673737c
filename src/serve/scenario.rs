//! The catalogue of scenarios: what the built-in target does to a client, as data.
//!
//! A [`Scenario`] names a real-world situation, says in one sentence what the target does on the wire, gives
//! the verdict a probe must reach against it, and lists its [`Fault`]s: an [`Action`] taken at a
//! [`ServerPoint`] of the server's connection sequence. The driver in [`super::target`] interprets them.
//! Adding a scenario is adding one entry to [`CATALOGUE`].

use core::fmt;

use crate::codes::{self, Table};
use crate::dissect::x224::{PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX, PROTOCOL_SSL};
use crate::mstsc::DISC_SOCKET_CLOSED;
use crate::trace::PhaseName;
use crate::verdict::Cause;

/// [2.2.5.1.1] ERRINFO_SERVER_DENIED_CONNECTION.
pub const ERRINFO_SERVER_DENIED_CONNECTION: u32 = 0x0000_0007;

/// A point in the server's side of the connection sequence ([1.3.1.1]) where a fault can act.
///
/// Each point belongs to the phase a client is in when the server acts there (see [`ServerPoint::phase`]):
/// the server has just received the client's PDU, or just sent its own, and the client waits for the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerPoint {
    /// The TCP connection is accepted; nothing has been read.
    Accepted,
    /// [2.2.1.1] The X.224 Connection Request is read; the Connection Confirm is not sent.
    ConnectionRequest,
    /// [2.2.1.2] The X.224 Connection Confirm is sent; the TLS handshake has not started.
    ConnectionConfirm,
    /// [5.4.5.1] The TLS handshake is complete; nothing has been read inside TLS.
    TlsEstablished,
    /// [MS-CSSP] 3.1.5 The client's credentials (TSRequest authInfo) are read and checked; under
    /// PROTOCOL_HYBRID_EX the Early User Authorization Result ([2.2.10.2]) is not sent.
    CredsspAuthenticated,
    /// CredSSP is over (with its Early User Authorization Result under PROTOCOL_HYBRID_EX).
    CredsspDone,
    /// [2.2.1.3] The MCS Connect Initial is read; the Connect Response is not sent.
    ConnectInitial,
    /// [2.2.1.4] The MCS Connect Response is sent.
    ConnectResponse,
    /// [2.2.1.9] The last Channel Join Confirm is sent.
    ChannelsJoined,
    /// [2.2.1.11] The Client Info PDU is read; licensing has not started.
    ClientInfo,
    /// [2.2.1.13.1] The Demand Active PDU is sent.
    DemandActive,
    /// [2.2.1.13.2] The Confirm Active PDU is read; finalization has not started.
    ConfirmActive,
    /// [2.2.1.22] The Font Map PDU is sent: the connection is active.
    Active,
}

impl ServerPoint {
    /// Every point, in the order the server reaches them.
    pub const ALL: [ServerPoint; 13] = [
        ServerPoint::Accepted,
        ServerPoint::ConnectionRequest,
        ServerPoint::ConnectionConfirm,
        ServerPoint::TlsEstablished,
        ServerPoint::CredsspAuthenticated,
        ServerPoint::CredsspDone,
        ServerPoint::ConnectInitial,
        ServerPoint::ConnectResponse,
        ServerPoint::ChannelsJoined,
        ServerPoint::ClientInfo,
        ServerPoint::DemandActive,
        ServerPoint::ConfirmActive,
        ServerPoint::Active,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServerPoint::Accepted => "accepted",
            ServerPoint::ConnectionRequest => "connection_request",
            ServerPoint::ConnectionConfirm => "connection_confirm",
            ServerPoint::TlsEstablished => "tls_established",
            ServerPoint::CredsspAuthenticated => "credssp_authenticated",
            ServerPoint::CredsspDone => "credssp_done",
            ServerPoint::ConnectInitial => "connect_initial",
            ServerPoint::ConnectResponse => "connect_response",
            ServerPoint::ChannelsJoined => "channels_joined",
            ServerPoint::ClientInfo => "client_info",
            ServerPoint::DemandActive => "demand_active",
            ServerPoint::ConfirmActive => "confirm_active",
            ServerPoint::Active => "active",
        }
    }

    /// The phase a client is in when the server acts at this point, given the protocol the server selected.
    pub fn phase(self, selected_protocol: u32) -> PhaseName {
        let nla = selected_protocol & (PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX) != 0;
        match self {
            ServerPoint::Accepted => PhaseName::Tcp,
            ServerPoint::ConnectionRequest => PhaseName::X224,
            ServerPoint::ConnectionConfirm => PhaseName::Tls,
            ServerPoint::TlsEstablished if nla => PhaseName::Credssp,
            ServerPoint::TlsEstablished => PhaseName::McsConnect,
            ServerPoint::CredsspAuthenticated if selected_protocol & PROTOCOL_HYBRID_EX != 0 => {
                PhaseName::EarlyUserAuth
            }
            ServerPoint::CredsspAuthenticated => PhaseName::Credssp,
            ServerPoint::CredsspDone | ServerPoint::ConnectInitial => PhaseName::McsConnect,
            ServerPoint::ConnectResponse => PhaseName::ChannelJoin,
            ServerPoint::ChannelsJoined => PhaseName::SecureSettings,
            ServerPoint::ClientInfo => PhaseName::Licensing,
            ServerPoint::DemandActive => PhaseName::Capabilities,
            ServerPoint::ConfirmActive => PhaseName::Finalization,
            ServerPoint::Active => PhaseName::Active,
        }
    }

    /// The point `--at PHASE` names: where the server answers a client that waits in that phase.
    pub fn for_phase(phase: PhaseName) -> ServerPoint {
        match phase {
            PhaseName::Tcp => ServerPoint::Accepted,
            PhaseName::X224 => ServerPoint::ConnectionRequest,
            PhaseName::Tls => ServerPoint::ConnectionConfirm,
            PhaseName::Credssp => ServerPoint::TlsEstablished,
            PhaseName::EarlyUserAuth => ServerPoint::CredsspAuthenticated,
            PhaseName::McsConnect => ServerPoint::ConnectInitial,
            PhaseName::ChannelJoin => ServerPoint::ConnectResponse,
            PhaseName::SecureSettings => ServerPoint::ChannelsJoined,
            PhaseName::Licensing => ServerPoint::ClientInfo,
            PhaseName::Capabilities => ServerPoint::DemandActive,
            PhaseName::Finalization => ServerPoint::ConfirmActive,
            PhaseName::Active => ServerPoint::Active,
        }
    }

    /// Whether the MCS domain exists here, so that PDUs on the I/O channel can be sent.
    pub fn has_mcs_domain(self) -> bool {
        matches!(
            self,
            ServerPoint::ConnectInitial
                | ServerPoint::ConnectResponse
                | ServerPoint::ChannelsJoined
                | ServerPoint::ClientInfo
                | ServerPoint::DemandActive
                | ServerPoint::ConfirmActive
                | ServerPoint::Active
        )
    }

    /// Whether the X.224 Connection Confirm is still to be sent here.
    pub fn before_confirm(self) -> bool {
        matches!(self, ServerPoint::Accepted | ServerPoint::ConnectionRequest)
    }
}

impl fmt::Display for ServerPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server does at a [`ServerPoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// [2.2.5.1] a Set Error Info PDU with this errorInfo, then [2.2.2.3] a Disconnect Provider Ultimatum
    /// (rn-provider-initiated), then an orderly close: a server-initiated disconnection as [1.3.1.4.3]
    /// describes it. Needs the MCS domain ([`ServerPoint::has_mcs_domain`]).
    ErrorInfo(u32),
    /// [2.2.1.2.2] an RDP_NEG_FAILURE with this failureCode instead of the Connection Confirm, then an orderly
    /// close. Only where the Connection Confirm is still to be sent ([`ServerPoint::before_confirm`]).
    NegFailure(u32),
    /// An orderly close: TLS close_notify when TLS is up, then FIN.
    Close,
    /// A reset: SO_LINGER 0, then the socket is dropped (RST).
    Reset,
    /// No answer any more: the server reads and discards what the client sends, keeping the socket open
    /// until the client leaves or the idle limit passes.
    Stall,
}

impl Action {
    /// One phrase for listings and logs.
    pub fn describe(self) -> String {
        match self {
            Action::ErrorInfo(code) => format!(
                "Set Error Info {}, a Disconnect Provider Ultimatum (rn-provider-initiated), then FIN",
                codes::Display(Table::ErrorInfo, code)
            ),
            Action::NegFailure(code) => format!(
                "RDP_NEG_FAILURE {}, then FIN",
                codes::Display(Table::NegFailure, code)
            ),
            Action::Close => "FIN (close_notify first when TLS is up)".to_owned(),
            Action::Reset => "RST".to_owned(),
            Action::Stall => "silence, the socket left open".to_owned(),
        }
    }
}

/// One fault: an action at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub at: ServerPoint,
    pub action: Action,
}

impl Fault {
    /// Whether the action can be taken at the point: a reason when it cannot.
    pub fn check(&self) -> Result<(), String> {
        match self.action {
            Action::ErrorInfo(_) if !self.at.has_mcs_domain() => Err(format!(
                "error info at {} ({}) is not possible: a Set Error Info PDU needs the MCS domain, at mcs_connect or a later phase",
                self.at,
                self.at.phase(PROTOCOL_HYBRID_EX)
            )),
            Action::NegFailure(_) if !self.at.before_confirm() => Err(format!(
                "a negotiation failure at {} ({}) is not possible: it answers the Connection Request, at x224",
                self.at,
                self.at.phase(PROTOCOL_HYBRID_EX)
            )),
            _ => Ok(()),
        }
    }
}

/// Which security protocols ([2.2.1.1.1] requestedProtocols flags) the target accepts. The target selects
/// the strongest one the client requested among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols(pub u32);

impl Protocols {
    /// PROTOCOL_SSL, PROTOCOL_HYBRID and PROTOCOL_HYBRID_EX.
    pub const ENHANCED: Protocols = Protocols(PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX);
    /// PROTOCOL_RDP alone: Standard RDP Security ([5.3]), whatever the client requests, with the encryption of
    /// [`super::TargetConfig::standard_security`].
    pub const RDP: Protocols = Protocols(0);
}

/// The key of the target's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048, as Windows and xrdp make their self-signed certificates.
    Rsa2048,
    /// ECDSA P-256.
    EcdsaP256,
}

/// The validity period of the target's certificate, relative to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From a day ago for a year.
    Current,
    /// Ended a year ago.
    Expired,
    /// Starts in a year.
    NotYetValid,
}

/// The name in the target's certificate (subject CN and DNS subject alternative name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertName {
    /// The target's host name (`--host-name`, or `rdptrace-target`).
    Host,
    /// A fixed name, for a name mismatch.
    Other(&'static str),
}

/// The target's certificate: always self-signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertProfile {
    pub key: KeyKind,
    pub validity: Validity,
    pub name: CertName,
}

impl CertProfile {
    /// RSA 2048, currently valid, in the host's name.
    pub const DEFAULT: CertProfile = CertProfile {
        key: KeyKind::Rsa2048,
        validity: Validity::Current,
        name: CertName::Host,
    };
}

/// The TLS versions the target accepts (rustls speaks 1.2 and 1.3 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersions {
    Tls12And13,
    Tls12Only,
    Tls13Only,
}

/// The TLS side of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsProfile {
    pub cert: CertProfile,
    pub versions: TlsVersions,
}

impl TlsProfile {
    pub const DEFAULT: TlsProfile = TlsProfile {
        cert: CertProfile::DEFAULT,
        versions: TlsVersions::Tls12And13,
    };
}

/// The verdict a probe must give against a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The phase that fails, `None` when the connection succeeds.
    pub phase: Option<PhaseName>,
    pub cause: Cause,
    /// The errorInfo of the server's Set Error Info PDU.
    pub error_info: Option<u32>,
    /// The pair mstsc would show: (discReason, extended reason).
    pub mstsc: Option<(u32, u32)>,
}

impl Expected {
    /// The verdict against a server that sends Set Error Info `code` in `phase` and disconnects.
    pub fn error_info(phase: PhaseName, code: u32) -> Expected {
        Expected {
            phase: Some(phase),
            cause: Cause::ServerErrorInfo,
            error_info: Some(code),
            mstsc: Some((DISC_SOCKET_CLOSED, code)),
        }
    }

    /// One line: `licensing failed: server_error_info, error info 0x00000007 ERRINFO_..., mstsc 0x904 / 0x7`.
    pub fn describe(&self) -> String {
        let mut s = match self.phase {
            Some(phase) => format!("{phase} failed: {}", self.cause.as_str()),
            None => self.cause.as_str().to_owned(),
        };
        if let Some(code) = self.error_info {
            s.push_str(&format!(
                ", error info {}",
                codes::Display(Table::ErrorInfo, code)
            ));
        }
        if let Some((disc, ext)) = self.mstsc {
            s.push_str(&format!(", mstsc 0x{disc:x} / 0x{ext:x}"));
        }
        s
    }
}

/// One scenario of the built-in target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub name: &'static str,
    /// The real-world situation it stands for, one sentence.
    pub stands_for: &'static str,
    /// What the target does on the wire, one sentence.
    pub wire: &'static str,
    pub expected: Expected,
    /// The faults, interpreted in order; the first one that ends the connection ends it.
    pub behaviour: &'static [Fault],
    /// The security protocols the target accepts.
    pub protocols: Protocols,
    pub tls: TlsProfile,
}

/// Every scenario of the built-in target.
pub static CATALOGUE: &[Scenario] = &[
    Scenario {
        name: "healthy",
        stands_for: "A server that lets the test user in.",
        wire: "completes the whole connection sequence (TLS, CredSSP with NTLM, licensing with STATUS_VALID_CLIENT, capabilities, finalization), then keeps the session open, sending nothing, until the client leaves or the idle limit passes.",
        expected: Expected {
            phase: None,
            cause: Cause::Connected,
            error_info: None,
            mstsc: None,
        },
        behaviour: &[],
        protocols: Protocols::ENHANCED,
        tls: TlsProfile::DEFAULT,
    },
    Scenario {
        name: "denied-connection",
        stands_for: "A Windows server that refuses the user after logon (not in Remote Desktop Users, a policy, a licensing or session limit): mstsc shows error code 0x904, extended error code 0x7.",
        wire: "right after the Client Info PDU, where licensing would start, sends Set Error Info 0x00000007 (ERRINFO_SERVER_DENIED_CONNECTION), a Disconnect Provider Ultimatum (rn-provider-initiated), then closes (close_notify, FIN).",
        expected: Expected {
            phase: Some(PhaseName::Licensing),
            cause: Cause::ServerErrorInfo,
            error_info: Some(ERRINFO_SERVER_DENIED_CONNECTION),
            mstsc: Some((DISC_SOCKET_CLOSED, ERRINFO_SERVER_DENIED_CONNECTION)),
        },
        behaviour: &[Fault {
            at: ServerPoint::ClientInfo,
            action: Action::ErrorInfo(ERRINFO_SERVER_DENIED_CONNECTION),
        }],
        protocols: Protocols::ENHANCED,
        tls: TlsProfile::DEFAULT,
    },
    Scenario {
        name: "standard-security",
        stands_for: "A Windows server whose Security Layer is RDP (or an old one), or xrdp with security_layer=rdp: Standard RDP Security with RC4 instead of TLS; probe it with --security rdp.",
        wire: "selects PROTOCOL_RDP whatever the client requests, answers the MCS Connect Initial with RC4 at ENCRYPTION_LEVEL_CLIENT_COMPATIBLE (the client's strongest key, 128-bit for current clients), a server random and a proprietary certificate of its own 512-bit RSA key signed with the Terminal Services key; takes the Security Exchange, then encrypts and signs every PDU both ways (the salted MAC when the client uses it); licensing STATUS_VALID_CLIENT, capabilities, finalization, then keeps the session open as healthy does.",
        expected: Expected {
            phase: None,
            cause: Cause::Connected,
            error_info: None,
            mstsc: None,
        },
        behaviour: &[],
        protocols: Protocols::RDP,
        tls: TlsProfile::DEFAULT,
    },
];

/// The scenario of this name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOGUE.iter().find(|s| s.name == name)
}

/// The names of every scenario, comma separated (for error messages).
pub fn names() -> String {
    CATALOGUE
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The catalogue as `rdptrace scenarios` prints it: one block per scenario.
pub fn render_catalogue() -> String {
    let mut out = String::new();
    for (i, s) in CATALOGUE.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&render(s));
    }
    out
}

/// One scenario as a block of text.
pub fn render(s: &Scenario) -> String {
    format!(
        "{}\n  stands for: {}\n  wire:       {}\n  expected:   {}\n",
        s.name,
        s.stands_for,
        s.wire,
        s.expected.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_faults_possible() {
        for (i, s) in CATALOGUE.iter().enumerate() {
            assert!(
                CATALOGUE[..i].iter().all(|o| o.name != s.name),
                "{} twice",
                s.name
            );
            for fault in s.behaviour {
                assert_eq!(fault.check(), Ok(()), "{}", s.name);
            }
        }
    }

    #[test]
    fn every_phase_names_a_point_in_it() {
        let selected = PROTOCOL_HYBRID_EX;
        for phase in PhaseName::ALL {
            assert_eq!(ServerPoint::for_phase(phase).phase(selected), phase);
        }
    }

    #[test]
    fn error_info_needs_mcs() {
        let early = Fault {
            at: ServerPoint::ConnectionConfirm,
            action: Action::ErrorInfo(7),
        };
        assert!(early.check().is_err());
        let late = Fault {
            at: ServerPoint::ConnectInitial,
            action: Action::ErrorInfo(7),
        };
        assert_eq!(late.check(), Ok(()));
        let neg = Fault {
            at: ServerPoint::ClientInfo,
            action: Action::NegFailure(5),
        };
        assert!(neg.check().is_err());
    }
}
