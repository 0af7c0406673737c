//! The catalogue of scenarios: what the built-in target does to a client, as data.
//!
//! A [`Scenario`] names a real-world situation, says in one sentence what the target does on the wire, gives
//! the verdict a probe must reach against it (and what xfreerdp 2.11 says, where it says something specific),
//! and lists its [`Fault`]s: an [`Action`] taken at a [`ServerPoint`] of the server's connection sequence.
//! The driver in [`super::target`] interprets them.
//!
//! The entries are in `entries.rs`: hand-written ones, and families generated from the code tables (every
//! errorInfo value) and from the phases (a close, a reset, a stall in each phase). The same entries feed
//! `rdptrace serve`, `rdptrace demo`, the tests, and the renderings in `render.rs`: `rdptrace scenarios`
//! ([`render_catalogue`], [`to_json`]) and the table in README.md ([`markdown_table`]).

mod entries;
mod render;
mod routes;

use core::fmt;
use std::sync::LazyLock;

use crate::codes::disc_reason::{DISC_SOCKET_CLOSED, EXT_NO_INFO, EXT_SERVER_DENIED_CONNECTION};
use crate::codes::security_protocol::{PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX, PROTOCOL_SSL};
use crate::codes::{self, Table};
use crate::trace::{CertProblem, PhaseName};
use crate::verdict::Cause;

/// [T.125] 7 the reason of the Disconnect Provider Ultimatum a server sends when it ends the connection
/// ([3.1.5.1.1]), as the target's [`Action::ErrorInfo`] sends it.
pub use crate::codes::dpu_reason::RN_PROVIDER_INITIATED;
pub use entries::FAMILIES;
pub use render::{markdown_table, render_catalogue, to_json};
pub use routes::COLLECTION;

/// A point in the server's side of the connection sequence ([1.3.1.1]) where a fault can act.
///
/// The server has just received the client's PDU, or just sent its own, and the client waits for the next
/// one: [`ServerPoint::phase`] is the phase the client waits in, which is where a probe sees the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerPoint {
    /// The TCP connection is accepted; nothing has been read.
    Accepted,
    /// [2.2.1.1] The X.224 Connection Request is read; the Connection Confirm is not sent.
    ConnectionRequest,
    /// [2.2.1.2] The X.224 Connection Confirm is sent; the TLS handshake has not started.
    ConnectionConfirm,
    /// [5.4.5.1] The client's TLS ClientHello is read; nothing is answered.
    ClientHello,
    /// [5.4.5.1] The TLS handshake is complete; nothing has been read inside TLS.
    TlsEstablished,
    /// [MS-CSSP] 3.1.5 The client's last NTLM message (AUTHENTICATE, with pubKeyAuth) is read and not checked:
    /// the point where a server answers a failed logon with a TSRequest errorCode.
    NtlmAuthenticate,
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
    /// [2.2.1.12] Licensing is over (STATUS_VALID_CLIENT sent); the Demand Active is not sent.
    Licensed,
    /// [2.2.1.13.1] The Demand Active PDU is sent.
    DemandActive,
    /// [2.2.1.13.2] The Confirm Active PDU is read; finalization has not started.
    ConfirmActive,
    /// [2.2.1.22] The Font Map PDU is sent: the connection is active.
    Active,
}

impl ServerPoint {
    /// Every point, in the order the server reaches them.
    pub const ALL: [ServerPoint; 16] = [
        ServerPoint::Accepted,
        ServerPoint::ConnectionRequest,
        ServerPoint::ConnectionConfirm,
        ServerPoint::ClientHello,
        ServerPoint::TlsEstablished,
        ServerPoint::NtlmAuthenticate,
        ServerPoint::CredsspAuthenticated,
        ServerPoint::CredsspDone,
        ServerPoint::ConnectInitial,
        ServerPoint::ConnectResponse,
        ServerPoint::ChannelsJoined,
        ServerPoint::ClientInfo,
        ServerPoint::Licensed,
        ServerPoint::DemandActive,
        ServerPoint::ConfirmActive,
        ServerPoint::Active,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServerPoint::Accepted => "accepted",
            ServerPoint::ConnectionRequest => "connection_request",
            ServerPoint::ConnectionConfirm => "connection_confirm",
            ServerPoint::ClientHello => "client_hello",
            ServerPoint::TlsEstablished => "tls_established",
            ServerPoint::NtlmAuthenticate => "ntlm_authenticate",
            ServerPoint::CredsspAuthenticated => "credssp_authenticated",
            ServerPoint::CredsspDone => "credssp_done",
            ServerPoint::ConnectInitial => "connect_initial",
            ServerPoint::ConnectResponse => "connect_response",
            ServerPoint::ChannelsJoined => "channels_joined",
            ServerPoint::ClientInfo => "client_info",
            ServerPoint::Licensed => "licensed",
            ServerPoint::DemandActive => "demand_active",
            ServerPoint::ConfirmActive => "confirm_active",
            ServerPoint::Active => "active",
        }
    }

    /// Where the point is in [`ServerPoint::ALL`].
    pub fn index(self) -> usize {
        ServerPoint::ALL
            .iter()
            .position(|p| *p == self)
            .unwrap_or_default()
    }

    /// The phase a client waits in when the server acts at this point, given the protocol the server selected:
    /// where a probe sees what the server does there.
    pub fn phase(self, selected_protocol: u32) -> PhaseName {
        let tls = selected_protocol != 0;
        let nla = selected_protocol & (PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX) != 0;
        let early_auth = selected_protocol & PROTOCOL_HYBRID_EX != 0;
        match self {
            // The client sends its Connection Request as soon as it is connected.
            ServerPoint::Accepted | ServerPoint::ConnectionRequest => PhaseName::X224,
            ServerPoint::ConnectionConfirm | ServerPoint::ClientHello if tls => PhaseName::Tls,
            ServerPoint::TlsEstablished | ServerPoint::NtlmAuthenticate if nla => {
                PhaseName::Credssp
            }
            ServerPoint::CredsspAuthenticated if early_auth => PhaseName::EarlyUserAuth,
            // Without TLS, or after CredSSP, the client goes on with its MCS Connect Initial.
            ServerPoint::ConnectionConfirm
            | ServerPoint::ClientHello
            | ServerPoint::TlsEstablished
            | ServerPoint::NtlmAuthenticate
            | ServerPoint::CredsspAuthenticated
            | ServerPoint::CredsspDone
            | ServerPoint::ConnectInitial => PhaseName::McsConnect,
            ServerPoint::ConnectResponse => PhaseName::ChannelJoin,
            // After the last Channel Join Confirm the client sends its Client Info and waits for licensing.
            ServerPoint::ChannelsJoined | ServerPoint::ClientInfo => PhaseName::Licensing,
            ServerPoint::Licensed => PhaseName::Capabilities,
            // After the Demand Active the client sends its Confirm Active and its finalization PDUs.
            ServerPoint::DemandActive | ServerPoint::ConfirmActive => PhaseName::Finalization,
            ServerPoint::Active => PhaseName::Active,
        }
    }

    /// The point `--at PHASE` names: where the server acts while a client waits in that phase (after the
    /// client's PDU of that phase). `None` for `tcp` and `secure_settings`, where a client never waits for the
    /// server.
    pub fn for_phase(phase: PhaseName) -> Option<ServerPoint> {
        match phase {
            PhaseName::GatewayConnect
            | PhaseName::GatewayAuth
            | PhaseName::GatewayTunnel
            | PhaseName::Tcp
            | PhaseName::SecureSettings => None,
            PhaseName::X224 => Some(ServerPoint::ConnectionRequest),
            PhaseName::Tls => Some(ServerPoint::ClientHello),
            PhaseName::Credssp => Some(ServerPoint::TlsEstablished),
            PhaseName::EarlyUserAuth => Some(ServerPoint::CredsspAuthenticated),
            PhaseName::McsConnect => Some(ServerPoint::ConnectInitial),
            PhaseName::ChannelJoin => Some(ServerPoint::ConnectResponse),
            PhaseName::Licensing => Some(ServerPoint::ClientInfo),
            PhaseName::Capabilities => Some(ServerPoint::Licensed),
            PhaseName::Finalization => Some(ServerPoint::ConfirmActive),
            PhaseName::Active => Some(ServerPoint::Active),
        }
    }

    /// Whether the MCS domain exists here, so that PDUs on the I/O channel can be sent.
    pub fn has_mcs_domain(self) -> bool {
        self >= ServerPoint::ConnectInitial
    }

    /// Whether the X.224 Connection Confirm is still to be sent here.
    pub fn before_confirm(self) -> bool {
        matches!(self, ServerPoint::Accepted | ServerPoint::ConnectionRequest)
    }
}

impl PartialOrd for ServerPoint {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ServerPoint {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.index().cmp(&other.index())
    }
}

impl fmt::Display for ServerPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server does at a [`ServerPoint`]. Most actions end the connection; [`Action::continues`] says
/// which do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// [2.2.5.1] a Set Error Info PDU with this errorInfo, then [2.2.2.3] a Disconnect Provider Ultimatum
    /// (rn-provider-initiated), then an orderly close: a server-initiated disconnection as [1.3.1.4.3]
    /// describes it. Needs the MCS domain ([`ServerPoint::has_mcs_domain`]).
    ErrorInfo(u32),
    /// [2.2.1.2.2] an RDP_NEG_FAILURE with this failureCode instead of the Connection Confirm, then an orderly
    /// close. Only where the Connection Confirm is still to be sent ([`ServerPoint::before_confirm`]).
    NegFailure(u32),
    /// [2.2.1.2.1] an RDP_NEG_RSP selecting this protocol whatever the client asked for; then the target waits
    /// for the client, which closes (it reads on until the client leaves or the idle limit passes).
    SelectProtocol(u32),
    /// [2.2.1.2] a Connection Confirm without negotiation data (Standard RDP Security only); then the target
    /// waits for the client as with [`Action::SelectProtocol`].
    ConfirmWithoutNegotiation,
    /// [RFC 5246] 7.2 a fatal TLS alert in a TLS 1.0 record instead of a ServerHello, then FIN.
    TlsAlert(u8),
    /// [RFC 2246] 7.4 a TLS 1.0 ServerHello (TLS_RSA_WITH_AES_128_CBC_SHA), the Certificate and the
    /// ServerHelloDone, as a server that speaks nothing newer answers; then the target waits for the client.
    Tls10ServerHello,
    /// [2.2.2.3] a Disconnect Provider Ultimatum with this [T.125] reason, without error info (in clear when
    /// TLS is not up, as xrdp writes it when its TLS setup fails), then FIN, or RST when `reset`.
    Ultimatum { reason: u8, reset: bool },
    /// [MS-CSSP] 2.2.1 a TSRequest with this NTSTATUS errorCode, then an orderly close.
    CredsspError(u32),
    /// [2.2.10.2] an Early User Authorization Result of ACCESS_DENIED, then an orderly close. A client that
    /// did not get PROTOCOL_HYBRID_EX gets only the close.
    EarlyAuthDenied,
    /// [2.2.1.12.1.3] a Licensing Error Message with this dwErrorCode and dwStateTransition, then an orderly
    /// close.
    LicenseError { code: u32, transition: u32 },
    /// [MS-RDPELE] 2.2.2.1 a Server License Request; the client's answer is read, then licensing goes on
    /// (STATUS_VALID_CLIENT), as xrdp does it.
    LicenseRequest,
    /// [2.2.3.1] a Deactivate All PDU, then silence: no Demand Active follows.
    DeactivateAll,
    /// [2.2.13.3.1] an Enhanced Security Server Redirection PDU to another address, then the target waits for
    /// the client to leave.
    Redirect,
    /// Every reply of the connection comes this many milliseconds late (continues).
    Slow(u32),
    /// An orderly close: TLS close_notify when TLS is up, then FIN.
    Close,
    /// A reset: SO_LINGER 0, then the socket is dropped (RST).
    Reset,
    /// No answer any more: the server reads and discards what the client sends, keeping the socket open
    /// until the client leaves or the idle limit passes.
    Stall,
}

/// The address the `redirected` scenario sends the client to: a loopback address, where a client that
/// follows (the probe without `--no-follow`) finds nothing listening.
pub const REDIRECT_TARGET: &str = "127.0.0.4";

impl Action {
    /// Whether the connection goes on after the action.
    pub fn continues(self) -> bool {
        matches!(self, Action::LicenseRequest | Action::Slow(_))
    }

    /// One phrase for listings and logs.
    pub fn describe(self) -> String {
        match self {
            Action::ErrorInfo(code) => format!(
                "Set Error Info {}, a Disconnect Provider Ultimatum (rn-provider-initiated), then close_notify and FIN",
                codes::Display(Table::ErrorInfo, code)
            ),
            Action::NegFailure(code) => format!(
                "RDP_NEG_FAILURE {}, then FIN",
                codes::Display(Table::NegFailure, code)
            ),
            Action::SelectProtocol(protocol) => format!(
                "RDP_NEG_RSP selecting {} whatever the client asked for, then waits for the client",
                codes::protocol_names(protocol)
            ),
            Action::ConfirmWithoutNegotiation => {
                "a Connection Confirm without negotiation data, then waits for the client".to_owned()
            }
            Action::TlsAlert(alert) => format!(
                "a fatal TLS alert {} ({alert}) instead of a ServerHello, then FIN",
                codes::name(Table::TlsAlert, u32::from(alert))
            ),
            Action::Tls10ServerHello => "a TLS 1.0 ServerHello (TLS_RSA_WITH_AES_128_CBC_SHA), Certificate and ServerHelloDone, then waits for the client".to_owned(),
            Action::Ultimatum { reason, reset } => format!(
                "a Disconnect Provider Ultimatum ({}) without error info, then {}",
                codes::name(Table::DpuReason, u32::from(reason)),
                if reset { "RST" } else { "FIN" }
            ),
            Action::CredsspError(status) => format!(
                "a TSRequest with errorCode {}, then close_notify and FIN",
                codes::Display(Table::NtStatus, status)
            ),
            Action::EarlyAuthDenied => "an Early User Authorization Result ACCESS_DENIED, then close_notify and FIN".to_owned(),
            Action::LicenseError { code, transition } => format!(
                "a Licensing Error Message {} with {}, then close_notify and FIN",
                codes::Display(Table::LicenseError, code),
                codes::name(Table::LicenseTransition, transition)
            ),
            Action::LicenseRequest => "a Server License Request; after the client's answer, STATUS_VALID_CLIENT".to_owned(),
            Action::DeactivateAll => "a Deactivate All PDU, then silence (no Demand Active)".to_owned(),
            Action::Redirect => format!(
                "a Server Redirection PDU to {REDIRECT_TARGET}, then waits for the client to leave"
            ),
            Action::Slow(ms) => format!("every reply {ms} ms late"),
            Action::Close => "close_notify when TLS is up, then FIN".to_owned(),
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
        let at = self.at;
        let phase = at.phase(PROTOCOL_HYBRID_EX);
        let only = |points: &[ServerPoint], what: &str| {
            if points.contains(&at) {
                Ok(())
            } else {
                let names: Vec<&str> = points.iter().map(|p| p.as_str()).collect();
                Err(format!(
                    "{what} at {at} ({phase}) is not possible: only at {}",
                    names.join(" or ")
                ))
            }
        };
        match self.action {
            Action::ErrorInfo(_) if !at.has_mcs_domain() => Err(format!(
                "error info at {at} ({phase}) is not possible: a Set Error Info PDU needs the MCS domain, at mcs_connect or a later phase"
            )),
            Action::NegFailure(_)
            | Action::SelectProtocol(_)
            | Action::ConfirmWithoutNegotiation
                if !at.before_confirm() =>
            {
                Err(format!(
                    "a negotiation answer at {at} ({phase}) is not possible: it answers the Connection Request, at x224"
                ))
            }
            Action::TlsAlert(_) | Action::Tls10ServerHello => {
                only(&[ServerPoint::ClientHello], "a hand-written TLS answer")
            }
            Action::CredsspError(_) => only(
                &[ServerPoint::TlsEstablished, ServerPoint::NtlmAuthenticate],
                "a TSRequest errorCode",
            ),
            Action::EarlyAuthDenied => only(
                &[ServerPoint::CredsspAuthenticated],
                "an Early User Authorization Result",
            ),
            Action::LicenseError { .. } | Action::LicenseRequest => {
                only(&[ServerPoint::ClientInfo], "a licensing PDU")
            }
            Action::DeactivateAll => only(&[ServerPoint::Active], "a Deactivate All"),
            Action::Redirect => only(&[ServerPoint::Licensed], "a Server Redirection"),
            Action::Slow(_) => only(&[ServerPoint::Accepted], "slow replies"),
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
    /// RSA 2048, as Windows and xrdp make their certificates.
    Rsa2048,
    /// RSA 1024: a weak key. ring neither signs with it nor accepts it as a rustls server key; the target
    /// signs its TLS handshakes with the `rsa` crate.
    Rsa1024,
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

/// The names in the target's certificate (subject CN and subject alternative names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertName {
    /// The target's host name (`--host-name`, or `rdptrace-target`), and the loopback and listening
    /// addresses as IP names, so that a probe of 127.0.0.1 finds its name.
    Host,
    /// A fixed DNS name, for a name mismatch.
    Other(&'static str),
}

/// Who signed the target's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// The target's own test certification authority, made once per process (`rdptrace test CA`).
    TestCa,
    /// The certificate itself, as Windows makes its default Remote Desktop certificate.
    SelfSigned,
}

/// The target's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertProfile {
    pub key: KeyKind,
    pub validity: Validity,
    pub name: CertName,
    pub issuer: Issuer,
}

impl CertProfile {
    /// RSA 2048, currently valid, in the host's name, issued by the test CA: no problem a probe could find.
    pub const DEFAULT: CertProfile = CertProfile {
        key: KeyKind::Rsa2048,
        validity: Validity::Current,
        name: CertName::Host,
        issuer: Issuer::TestCa,
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

    /// The default profile with another certificate.
    pub const fn with_cert(cert: CertProfile) -> TlsProfile {
        TlsProfile {
            cert,
            versions: TlsVersions::Tls12And13,
        }
    }
}

/// The CredSSP side of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredsspProfile {
    /// [MS-CSSP] 2.2.1 the TSRequest version the target speaks (2 to 6). Below 5 it binds the TLS key the old
    /// way (the key echoed, plus one, [MS-CSSP] 3.1.5) and treats the client as a peer of its own version.
    pub version: u32,
}

impl CredsspProfile {
    pub const DEFAULT: CredsspProfile = CredsspProfile { version: 6 };
}

/// The Kerberos side of a scenario that authenticates with Kerberos: it needs `serve --keytab FILE --realm
/// REALM` (the service key of `TERMSRV/<--host-name>`) and a client with a KDC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KerberosProfile {
    /// Whether the target takes NTLM beside Kerberos (a domain that blocks NTLM does not).
    pub ntlm: bool,
    /// Whether the target decrypts tickets with the keytab's key or with a key that is not the KDC's.
    pub key: ServiceKey,
    /// How far the target's clock is from the real one, in seconds (its acceptor checks the authenticator's
    /// time against it).
    pub clock_offset_s: i64,
}

impl KerberosProfile {
    pub const HEALTHY: KerberosProfile = KerberosProfile {
        ntlm: true,
        key: ServiceKey::Keytab,
        clock_offset_s: 0,
    };
}

/// The key the target decrypts tickets with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKey {
    /// The keytab's key for the ticket's encryption type.
    Keytab,
    /// A key of the same type that is not the KDC's (as a stale keytab or a reset computer account).
    NotTheKdcs,
}

/// What the probe needs for the expected verdict to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeProfile {
    /// The probe's `--phase-timeout` in milliseconds, when the scenario needs a short one (a stall, slow
    /// replies).
    pub phase_timeout_ms: Option<u64>,
    /// The probe's `--security`, when the scenario stands for a client that requires something (NLA).
    pub security: Option<crate::probe::Security>,
    /// The probe's `--auth`, when the scenario is about one package.
    pub auth: Option<crate::probe::Auth>,
    /// `false` for `--no-follow`: the scenario stands for a client that stops at a redirection.
    pub follow: bool,
}

impl ProbeProfile {
    pub const DEFAULT: ProbeProfile = ProbeProfile {
        phase_timeout_ms: None,
        security: None,
        auth: None,
        follow: true,
    };
    /// One second for each answer: what the stalls and the slow replies are judged with.
    pub const IMPATIENT: ProbeProfile = ProbeProfile {
        phase_timeout_ms: Some(1000),
        ..ProbeProfile::DEFAULT
    };
    /// A client that requires NLA (`--security nla`), as mstsc does when NLA is required of the client.
    pub const REQUIRES_NLA: ProbeProfile = ProbeProfile {
        security: Some(crate::probe::Security::Nla),
        ..ProbeProfile::DEFAULT
    };
    /// Kerberos alone (`--auth kerberos`): no fallback to NTLM.
    pub const KERBEROS: ProbeProfile = ProbeProfile {
        auth: Some(crate::probe::Auth::Kerberos),
        ..ProbeProfile::DEFAULT
    };
    /// NTLM alone (`--auth ntlm`).
    pub const NTLM: ProbeProfile = ProbeProfile {
        auth: Some(crate::probe::Auth::Ntlm),
        ..ProbeProfile::DEFAULT
    };
    /// A client that stops at a Server Redirection PDU (`--no-follow`).
    pub const NO_FOLLOW: ProbeProfile = ProbeProfile {
        follow: false,
        ..ProbeProfile::DEFAULT
    };

    /// The settings as probe arguments say them: ` (probe with --phase-timeout 1)`.
    pub fn describe(&self) -> String {
        let mut args = Vec::new();
        if let Some(security) = self.security {
            let name = clap::ValueEnum::to_possible_value(&security)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            args.push(format!("--security {name}"));
        }
        if let Some(auth) = self.auth {
            let name = clap::ValueEnum::to_possible_value(&auth)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            args.push(format!("--auth {name}"));
        }
        if let Some(ms) = self.phase_timeout_ms {
            args.push(format!("--phase-timeout {}", seconds(ms)));
        }
        if !self.follow {
            args.push("--no-follow".to_owned());
        }
        if args.is_empty() {
            String::new()
        } else {
            format!(" (probe with {})", args.join(" "))
        }
    }

    /// Applies the settings to a probe configuration.
    pub fn apply(&self, config: &mut crate::probe::ProbeConfig) {
        if let Some(ms) = self.phase_timeout_ms {
            config.phase_timeout = std::time::Duration::from_millis(ms);
        }
        if let Some(security) = self.security {
            config.security = security;
        }
        if let Some(auth) = self.auth {
            config.auth = auth;
        }
        config.follow_redirects = self.follow;
    }
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{}", ms as f64 / 1000.0)
    }
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
    /// The certificate problems the probe records (not fatal without `--strict-cert`; with it, the tls phase
    /// fails with certificate_rejected: [`Expected::strict`]).
    pub cert_problems: &'static [CertProblem],
    /// Words the verdict's detail or hints must contain: what it says beyond the cause.
    pub mentions: &'static [&'static str],
}

impl Expected {
    /// The connection reaches the active state.
    pub const CONNECTED: Expected = Expected {
        phase: None,
        cause: Cause::Connected,
        error_info: None,
        mstsc: None,
        cert_problems: &[],
        mentions: &[],
    };

    /// The connection fails in `phase` for `cause`, with no mstsc pair.
    pub const fn failed(phase: PhaseName, cause: Cause) -> Expected {
        Expected {
            phase: Some(phase),
            cause,
            ..Expected::CONNECTED
        }
    }

    /// The verdict against a server that sends Set Error Info `code` in `phase` and disconnects.
    pub const fn error_info(phase: PhaseName, code: u32) -> Expected {
        Expected {
            phase: Some(phase),
            cause: Cause::ServerErrorInfo,
            error_info: Some(code),
            mstsc: Some((DISC_SOCKET_CLOSED, code)),
            ..Expected::CONNECTED
        }
    }

    /// With the pair mstsc would show.
    pub const fn mstsc(self, disc_reason: u32, extended: u32) -> Expected {
        Expected {
            mstsc: Some((disc_reason, extended)),
            ..self
        }
    }

    /// A connection that ends without error info: 0x904 / 0x7 while it is pending (the client fills the
    /// extended code in itself), 0x904 / 0x0 once it is up.
    pub const fn closed(phase: PhaseName, cause: Cause) -> Expected {
        let extended = match phase {
            PhaseName::Active => EXT_NO_INFO,
            _ => EXT_SERVER_DENIED_CONNECTION,
        };
        Expected::failed(phase, cause).mstsc(DISC_SOCKET_CLOSED, extended)
    }

    /// With certificate problems.
    pub const fn cert(self, problems: &'static [CertProblem]) -> Expected {
        Expected {
            cert_problems: problems,
            ..self
        }
    }

    /// With words the detail or hints must contain.
    pub const fn mentioning(self, words: &'static [&'static str]) -> Expected {
        Expected {
            mentions: words,
            ..self
        }
    }

    /// The verdict with `--strict-cert`: a certificate problem fails the tls phase.
    pub fn strict(&self) -> Expected {
        if self.cert_problems.is_empty() {
            return *self;
        }
        Expected {
            phase: Some(PhaseName::Tls),
            cause: Cause::CertificateRejected,
            error_info: None,
            mstsc: None,
            cert_problems: self.cert_problems,
            mentions: &[],
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
        if !self.cert_problems.is_empty() {
            let problems: Vec<&str> = self.cert_problems.iter().map(|p| p.as_str()).collect();
            s.push_str(&format!(
                ", certificate {} (with --strict-cert: tls failed: certificate_rejected)",
                problems.join(", ")
            ));
        }
        s
    }
}

/// What xfreerdp 2.11 does against a scenario: its exit code and what its output contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xfreerdp {
    /// The arguments after `/v:`, `/u:`, `/p:` and `/log-level:INFO`.
    pub args: &'static [&'static str],
    /// Its exit code (its XF_EXIT table).
    pub exit: i32,
    /// What its output contains (an ERRCONNECT or ERRINFO name, a log line).
    pub says: &'static [&'static str],
}

impl Xfreerdp {
    /// NLA, any certificate, leaving once authenticated.
    pub const AUTH_ONLY: &'static [&'static str] = &["/cert:ignore", "/sec:nla", "+auth-only"];
    /// NLA, any certificate, the whole connection.
    pub const FULL: &'static [&'static str] = &["/cert:ignore", "/sec:nla"];
    /// NLA, leaving once authenticated, refusing a certificate OpenSSL does not verify (the harness has it
    /// trust the target's test CA, and connects to an address the certificate names).
    pub const VERIFY: &'static [&'static str] = &["/cert:deny", "/sec:nla", "+auth-only"];
    /// Through the scenario's gateway (the harness adds `/g:`, `/gu:` and `/gp:`): the HTTP transport, which
    /// tries the WebSocket upgrade first in FreeRDP 2.11, NLA, any certificate, leaving once authenticated.
    pub const GATEWAY: &'static [&'static str] =
        &["/cert:ignore", "/sec:nla", "/gt:http", "+auth-only"];

    /// The arguments as one line.
    pub fn describe(&self) -> String {
        let says: Vec<String> = self.says.iter().map(|s| format!("\"{s}\"")).collect();
        if says.is_empty() {
            format!("exit {} ({})", self.exit, self.args.join(" "))
        } else {
            format!(
                "exit {}, says {} ({})",
                self.exit,
                says.join(", "),
                self.args.join(" ")
            )
        }
    }
}

/// The groups of the catalogue, in the order it lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Baseline,
    Negotiation,
    Tls,
    Nla,
    ErrorInfo,
    Licensing,
    Transport,
    Gateway,
    Broker,
}

impl Group {
    pub const ALL: [Group; 9] = [
        Group::Baseline,
        Group::Negotiation,
        Group::Tls,
        Group::Nla,
        Group::ErrorInfo,
        Group::Licensing,
        Group::Transport,
        Group::Gateway,
        Group::Broker,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Baseline => "Baseline: success and the two paths to 0x904 / 0x7",
            Group::Negotiation => "Negotiation (X.224)",
            Group::Tls => "TLS and the certificate",
            Group::Nla => "NLA (CredSSP) and Early User Authorization",
            Group::ErrorInfo => "Server error info",
            Group::Licensing => "Licensing",
            Group::Transport => "Transport and session",
            Group::Gateway => "RD Gateway (through `rdptrace serve --gateway`)",
            Group::Broker => "Connection broker and redirection",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Baseline => "baseline",
            Group::Negotiation => "negotiation",
            Group::Tls => "tls",
            Group::Nla => "nla",
            Group::ErrorInfo => "error_info",
            Group::Licensing => "licensing",
            Group::Transport => "transport",
            Group::Gateway => "gateway",
            Group::Broker => "broker",
        }
    }
}

/// A family of generated scenarios: one entry per code or per phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The pattern of the names: `errinfo-0xNNNN`.
    pub pattern: &'static str,
    pub group: Group,
    /// What the family is, one sentence.
    pub summary: &'static str,
}

/// One scenario of the built-in target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub name: &'static str,
    pub group: Group,
    /// The family it was generated in, if any (its pattern).
    pub family: Option<&'static str>,
    /// The real-world situation it stands for, one sentence.
    pub stands_for: &'static str,
    /// What the target does on the wire, one sentence.
    pub wire: &'static str,
    pub expected: Expected,
    /// The faults, interpreted in order of the points they act at.
    pub behaviour: &'static [Fault],
    /// The security protocols the target accepts.
    pub protocols: Protocols,
    pub tls: TlsProfile,
    pub credssp: CredsspProfile,
    /// The probe settings the expected verdict holds for.
    pub probe: ProbeProfile,
    /// What xfreerdp 2.11 does, where it reports something specific.
    pub xfreerdp: Option<Xfreerdp>,
    /// Kerberos NLA: needs `--keytab` and `--realm`, and a client with a KDC; `None` for NTLM alone.
    pub kerberos: Option<KerberosProfile>,
    /// The RD Gateway in front of the target ([`crate::serve::gateway`]): the client goes through it.
    pub gateway: Option<super::gateway::GatewayProfile>,
    /// The target is a connection broker ([`crate::serve::broker`]).
    pub broker: Option<super::broker::BrokerProfile>,
}

impl Scenario {
    /// Whether the target or its gateway authenticates with Kerberos: the scenario needs a KDC and a keytab
    /// (`serve --keytab --realm`), which `demo` and the catalogue's tests without a KDC do not have.
    pub fn uses_kerberos(&self) -> bool {
        self.kerberos.is_some() || self.gateway.is_some_and(|g| g.kerberos.is_some())
    }
}

impl Scenario {
    /// A scenario with the defaults (all enhanced protocols, the default certificate, CredSSP version 6, the
    /// default probe), to be completed with struct update syntax.
    pub const BASE: Scenario = Scenario {
        name: "",
        group: Group::Baseline,
        family: None,
        stands_for: "",
        wire: "",
        expected: Expected::CONNECTED,
        behaviour: &[],
        protocols: Protocols::ENHANCED,
        tls: TlsProfile::DEFAULT,
        credssp: CredsspProfile::DEFAULT,
        probe: ProbeProfile::DEFAULT,
        xfreerdp: None,
        kerberos: None,
        gateway: None,
        broker: None,
    };
}

static CATALOGUE: LazyLock<Vec<Scenario>> = LazyLock::new(entries::build);

/// Every scenario of the built-in target, in the order of [`Group::ALL`].
pub fn catalogue() -> &'static [Scenario] {
    &CATALOGUE
}

/// The scenario of this name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    catalogue().iter().find(|s| s.name == name)
}

/// The names of the scenarios, for error messages: the hand-written ones and each family's pattern.
pub fn names() -> String {
    let mut names: Vec<&str> = catalogue()
        .iter()
        .filter(|s| s.family.is_none())
        .map(|s| s.name)
        .collect();
    names.extend(FAMILIES.iter().map(|f| f.pattern));
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_faults_possible() {
        let all = catalogue();
        for (i, s) in all.iter().enumerate() {
            assert!(!s.name.is_empty() && !s.stands_for.is_empty() && !s.wire.is_empty());
            assert!(
                all[..i].iter().all(|o| o.name != s.name),
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
            match ServerPoint::for_phase(phase) {
                Some(point) => assert_eq!(point.phase(selected), phase),
                None => assert!(matches!(phase, PhaseName::Tcp | PhaseName::SecureSettings)),
            }
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
        let alert = Fault {
            at: ServerPoint::ConnectionConfirm,
            action: Action::TlsAlert(70),
        };
        assert!(alert.check().is_err());
    }

    #[test]
    fn points_are_ordered() {
        for pair in ServerPoint::ALL.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
    }

    #[test]
    fn every_family_has_members_and_every_member_a_family() {
        for family in FAMILIES {
            assert!(
                catalogue()
                    .iter()
                    .any(|s| s.family == Some(family.pattern) && s.group == family.group),
                "{}",
                family.pattern
            );
        }
        for s in catalogue() {
            if let Some(pattern) = s.family {
                assert!(FAMILIES.iter().any(|f| f.pattern == pattern), "{}", s.name);
            }
        }
    }

    #[test]
    fn strict_cert_fails_tls_only_with_a_problem() {
        let strict = Expected::CONNECTED.cert(&[CertProblem::Expired]).strict();
        assert_eq!(strict.phase, Some(PhaseName::Tls));
        assert_eq!(strict.cause, Cause::CertificateRejected);
        assert_eq!(Expected::CONNECTED.strict(), Expected::CONNECTED);
    }
}
