//! The entries of the catalogue: hand-written scenarios, and the families generated from the code tables and
//! the phases.
//!
//! The generated names and texts are made once, when the catalogue is first used, and live as long as the
//! process (they are leaked on purpose): that keeps [`Scenario`] `Copy` with `&'static` fields, as the
//! hand-written entries are.

use super::{
    Action, CertName, CertProfile, CredsspProfile, Expected, Family, Fault, Group, Issuer,
    KerberosProfile, KeyKind, ProbeProfile, Protocols, Scenario, ServerPoint, ServiceKey,
    TlsProfile, Validity, Xfreerdp,
};
use crate::codes::Table;
use crate::codes::disc_reason::{
    DISC_HYBRID_REQUIRED_BY_SERVER, DISC_LICENSING_FAILED, EXT_NO_INFO, SSL_ERR_ACCOUNT_DISABLED,
    SSL_ERR_ACCOUNT_LOCKED_OUT, SSL_ERR_ACCOUNT_RESTRICTION, SSL_ERR_LOGON_FAILURE,
    SSL_ERR_PASSWORD_EXPIRED, SSL_ERR_PASSWORD_MUST_CHANGE,
};
use crate::codes::dpu_reason::RN_USER_REQUESTED;
use crate::codes::error_info::{
    ERRINFO_DISCONNECTED_BY_OTHERCONNECTION, ERRINFO_LICENSE_INTERNAL, ERRINFO_LOGOFF_BY_USER,
    ERRINFO_RPC_INITIATED_DISCONNECT_BYUSER, ERRINFO_SERVER_DENIED_CONNECTION,
    ERRINFO_SERVER_REBOOT, ERRINFO_SERVER_SHUTDOWN, LICENSING_CODES,
};
use crate::codes::licensing::{ERR_INVALID_CLIENT, ERR_NO_LICENSE_SERVER, ST_TOTAL_ABORT};
use crate::codes::neg_failure::{
    HYBRID_REQUIRED_BY_SERVER, INCONSISTENT_FLAGS, SSL_CERT_NOT_ON_SERVER,
    SSL_NOT_ALLOWED_BY_SERVER, SSL_REQUIRED_BY_SERVER, SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER,
};
use crate::codes::ntstatus::{
    STATUS_ACCOUNT_DISABLED, STATUS_ACCOUNT_LOCKED_OUT, STATUS_ACCOUNT_RESTRICTION,
    STATUS_LOGON_FAILURE, STATUS_LOGON_TYPE_NOT_GRANTED, STATUS_PASSWORD_EXPIRED,
    STATUS_PASSWORD_MUST_CHANGE,
};
use crate::codes::security_protocol::PROTOCOL_RDP;
use crate::codes::tls_alert::{HANDSHAKE_FAILURE, PROTOCOL_VERSION};
use crate::trace::{CertProblem, PhaseName};
use crate::verdict::Cause;

/// How late each reply of the slow scenario comes.
const SLOW_MS: u32 = 1500;

/// The families; their members are generated in [`build`].
pub static FAMILIES: &[Family] = &[
    Family {
        pattern: "errinfo-0xNNNN",
        group: Group::ErrorInfo,
        summary: "Set Error Info with one errorInfo, a Disconnect Provider Ultimatum (rn-provider-initiated) and a close, as [MS-RDPBCGR] 1.3.1.4.3 has a server end a connection: every protocol-independent code (0x1-0x1A) in the active session, every licensing code (0x100-0x10A) in licensing. Any other code or phase: `rdptrace serve --errinfo CODE --at PHASE`.",
    },
    Family {
        pattern: "close-in-PHASE",
        group: Group::Transport,
        summary: "An orderly close (close_notify when TLS is up, FIN) with no error report, in each phase where a client waits for the server: a crashed service, a proxy or firewall that ends the session.",
    },
    Family {
        pattern: "reset-in-PHASE",
        group: Group::Transport,
        summary: "A reset (RST) with no error report, in each phase where a client waits for the server: a middlebox or endpoint security that kills the connection, a server process that dies.",
    },
    Family {
        pattern: "stall-in-PHASE",
        group: Group::Transport,
        summary: "Silence in each phase where a client waits for the server: the target reads what the client sends and never answers (a hung service, a path that drops the replies).",
    },
];

/// The phases where a client waits for the server (every phase but tcp and secure_settings).
const WAITING_PHASES: [PhaseName; 10] = [
    PhaseName::X224,
    PhaseName::Tls,
    PhaseName::Credssp,
    PhaseName::EarlyUserAuth,
    PhaseName::McsConnect,
    PhaseName::ChannelJoin,
    PhaseName::Licensing,
    PhaseName::Capabilities,
    PhaseName::Finalization,
    PhaseName::Active,
];

const fn fault(at: ServerPoint, action: Action) -> Fault {
    Fault { at, action }
}

const fn cert(key: KeyKind, validity: Validity, name: CertName, issuer: Issuer) -> TlsProfile {
    TlsProfile::with_cert(CertProfile {
        key,
        validity,
        name,
        issuer,
    })
}

/// The hand-written scenarios.
static HAND: &[Scenario] = &[
    // ---- baseline ----------------------------------------------------------------------------------------
    Scenario {
        name: "healthy",
        stands_for: "A server that lets the test user in: NLA with Early User Authorization, a certificate from the organisation's certification authority.",
        wire: "completes the whole connection sequence (TLS with a certificate the test CA issued for the host's name and addresses, CredSSP with NTLM, the Early User Authorization Result, licensing with STATUS_VALID_CLIENT, capabilities, finalization), then keeps the session open, sending nothing, until the client leaves or the idle limit passes.",
        expected: Expected::CONNECTED,
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::VERIFY,
            exit: 0,
            says: &[],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "denied-connection",
        stands_for: "A Windows server that refuses the user after logon (not in Remote Desktop Users, a policy, a licensing or session limit): mstsc shows error code 0x904, extended error code 0x7.",
        wire: "right after the Client Info PDU, where licensing would start, sends Set Error Info 0x00000007 (ERRINFO_SERVER_DENIED_CONNECTION), a Disconnect Provider Ultimatum (rn-provider-initiated), then closes (close_notify, FIN).",
        expected: Expected::error_info(PhaseName::Licensing, ERRINFO_SERVER_DENIED_CONNECTION),
        behaviour: &[fault(
            ServerPoint::ClientInfo,
            Action::ErrorInfo(ERRINFO_SERVER_DENIED_CONNECTION),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 131,
            says: &["ERRINFO_SERVER_DENIED_CONNECTION"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "pending-close",
        stands_for: "A server that drops a pending connection without a word (a crashed or restarted service, a session host that gives up): mstsc still shows 0x904 / 0x7, because the Windows client fills ERRINFO_SERVER_DENIED_CONNECTION in itself.",
        wire: "right after the Client Info PDU, where licensing would start, closes (close_notify, FIN) with no Set Error Info and no Disconnect Provider Ultimatum.",
        expected: Expected::closed(PhaseName::Licensing, Cause::ClosedByServer),
        behaviour: &[fault(ServerPoint::ClientInfo, Action::Close)],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 147,
            says: &["ERRCONNECT_CONNECT_TRANSPORT_FAILED"],
        }),
        ..Scenario::BASE
    },
    // ---- negotiation -------------------------------------------------------------------------------------
    Scenario {
        name: "neg-ssl-required",
        group: Group::Negotiation,
        stands_for: "A server that requires TLS (xrdp with security_layer=tls, Windows with the security layer set to SSL) answering a client that offered only Standard RDP Security.",
        wire: "answers the Connection Request with RDP_NEG_FAILURE SSL_REQUIRED_BY_SERVER (1), then FIN.",
        expected: Expected::failed(PhaseName::X224, Cause::NegotiationFailure),
        behaviour: &[fault(
            ServerPoint::ConnectionRequest,
            Action::NegFailure(SSL_REQUIRED_BY_SERVER),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 133,
            says: &[
                "ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED",
                "Error: SSL_REQUIRED_BY_SERVER",
            ],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "neg-ssl-not-allowed",
        group: Group::Negotiation,
        stands_for: "A server that speaks only Standard RDP Security (FreeRDP's shadow server or weston with RDP security only, Windows with the security layer set to RDP) answering a client that asked for TLS or NLA.",
        wire: "answers the Connection Request with RDP_NEG_FAILURE SSL_NOT_ALLOWED_BY_SERVER (2), then FIN.",
        expected: Expected::failed(PhaseName::X224, Cause::NegotiationFailure),
        behaviour: &[fault(
            ServerPoint::ConnectionRequest,
            Action::NegFailure(SSL_NOT_ALLOWED_BY_SERVER),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 133,
            says: &[
                "ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED",
                "Error: SSL_NOT_ALLOWED_BY_SERVER",
            ],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "neg-ssl-cert-not-on-server",
        group: Group::Negotiation,
        stands_for: "A server set up for TLS without a usable certificate (xrdp whose certificate or key file is missing or unreadable).",
        wire: "answers the Connection Request with RDP_NEG_FAILURE SSL_CERT_NOT_ON_SERVER (3), then FIN.",
        expected: Expected::failed(PhaseName::X224, Cause::NegotiationFailure),
        behaviour: &[fault(
            ServerPoint::ConnectionRequest,
            Action::NegFailure(SSL_CERT_NOT_ON_SERVER),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 133,
            says: &[
                "ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED",
                "Error: SSL_CERT_NOT_ON_SERVER",
            ],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "neg-inconsistent-flags",
        group: Group::Negotiation,
        stands_for: "A server that finds the requested protocols inconsistent with the security already in effect (a client that asks for enhanced security on a connection that is already secured, or a flag set it cannot make sense of).",
        wire: "answers the Connection Request with RDP_NEG_FAILURE INCONSISTENT_FLAGS (4), then FIN.",
        expected: Expected::failed(PhaseName::X224, Cause::NegotiationFailure),
        behaviour: &[fault(
            ServerPoint::ConnectionRequest,
            Action::NegFailure(INCONSISTENT_FLAGS),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 133,
            says: &[
                "ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED",
                "Error: INCONSISTENT_FLAGS",
            ],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "neg-hybrid-required",
        group: Group::Negotiation,
        stands_for: "A server that requires NLA (Windows with \"allow connections only from computers running Remote Desktop with Network Level Authentication\", FreeRDP's shadow server with /sec:nla) answering a client that did not offer CredSSP.",
        wire: "answers the Connection Request with RDP_NEG_FAILURE HYBRID_REQUIRED_BY_SERVER (5), then FIN.",
        expected: Expected::failed(PhaseName::X224, Cause::NegotiationFailure)
            .mstsc(DISC_HYBRID_REQUIRED_BY_SERVER, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::ConnectionRequest,
            Action::NegFailure(HYBRID_REQUIRED_BY_SERVER),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 133,
            says: &[
                "ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED",
                "Error: HYBRID_REQUIRED_BY_SERVER",
            ],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "neg-ssl-with-user-auth-required",
        group: Group::Negotiation,
        stands_for: "A server that requires TLS with client certificate authentication.",
        wire: "answers the Connection Request with RDP_NEG_FAILURE SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER (6), then FIN.",
        expected: Expected::failed(PhaseName::X224, Cause::NegotiationFailure),
        behaviour: &[fault(
            ServerPoint::ConnectionRequest,
            Action::NegFailure(SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 133,
            says: &["ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "rdp-security-selected",
        group: Group::Negotiation,
        stands_for: "A server that falls back to Standard RDP Security although the client asked for NLA (xrdp with security_layer=rdp answers every request with PROTOCOL_RDP): allowed of a server, refused by a client that requires enhanced security.",
        wire: "answers the Connection Request with an RDP_NEG_RSP selecting PROTOCOL_RDP, then waits for an MCS Connect Initial that a client requiring TLS or NLA never sends, until the client leaves.",
        expected: Expected::failed(PhaseName::X224, Cause::NegotiationMismatch),
        behaviour: &[fault(
            ServerPoint::ConnectionRequest,
            Action::SelectProtocol(PROTOCOL_RDP),
        )],
        probe: ProbeProfile::REQUIRES_NLA,
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 133,
            says: &["ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "standard-security",
        group: Group::Negotiation,
        stands_for: "A Windows server whose Security Layer is RDP (or an old one), or xrdp with security_layer=rdp: Standard RDP Security with RC4 instead of TLS, which mstsc and xfreerdp follow by default.",
        wire: "selects PROTOCOL_RDP whatever the client requests, answers the MCS Connect Initial with RC4 at ENCRYPTION_LEVEL_CLIENT_COMPATIBLE (the client's strongest key, 128-bit for current clients), a server random and a proprietary certificate of its own 512-bit RSA key signed with the Terminal Services key; takes the Security Exchange, then encrypts and signs every PDU both ways (the salted MAC when the client uses it); licensing STATUS_VALID_CLIENT, capabilities, finalization, then keeps the session open as healthy does.",
        expected: Expected::CONNECTED,
        protocols: Protocols::RDP,
        xfreerdp: Some(Xfreerdp {
            args: &["/cert:ignore", "/sec:rdp", "+auth-only"],
            exit: 0,
            says: &[],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "no-negotiation-response",
        group: Group::Negotiation,
        stands_for: "A server too old to negotiate (Windows 2000, XP, Server 2003 before SP1) or a minimal implementation: a bare Connection Confirm means Standard RDP Security only.",
        wire: "answers the Connection Request with a Connection Confirm without RDP_NEG_RSP, then waits for an MCS Connect Initial until the client leaves.",
        expected: Expected::failed(PhaseName::X224, Cause::NegotiationMismatch),
        behaviour: &[fault(
            ServerPoint::ConnectionRequest,
            Action::ConfirmWithoutNegotiation,
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 133,
            says: &["ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED"],
        }),
        ..Scenario::BASE
    },
    // ---- TLS ---------------------------------------------------------------------------------------------
    Scenario {
        name: "cert-expired",
        group: Group::Tls,
        stands_for: "A server whose certificate has expired (a certificate nobody renewed).",
        wire: "completes the connection with a certificate that expired a year ago (issued by the test CA, in the host's name).",
        expected: Expected::CONNECTED
            .cert(&[CertProblem::Expired])
            .mentioning(&["certificate has problems", "expired"]),
        tls: cert(
            KeyKind::Rsa2048,
            Validity::Expired,
            CertName::Host,
            Issuer::TestCa,
        ),
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::VERIFY,
            exit: 143,
            says: &["certificate has expired"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "cert-not-yet-valid",
        group: Group::Tls,
        stands_for: "A server whose certificate is not valid yet (a client or server clock that is wrong, a certificate issued with a future start).",
        wire: "completes the connection with a certificate valid from a year from now (issued by the test CA, in the host's name).",
        expected: Expected::CONNECTED
            .cert(&[CertProblem::NotYetValid])
            .mentioning(&["certificate has problems", "not yet valid"]),
        tls: cert(
            KeyKind::Rsa2048,
            Validity::NotYetValid,
            CertName::Host,
            Issuer::TestCa,
        ),
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::VERIFY,
            exit: 143,
            says: &["certificate is not yet valid"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "cert-self-signed",
        group: Group::Tls,
        stands_for: "A Windows host with its default self-signed Remote Desktop certificate.",
        wire: "completes the connection with a self-signed certificate in the host's name.",
        expected: Expected::CONNECTED
            .cert(&[CertProblem::SelfSigned])
            .mentioning(&["certificate has problems", "self-signed"]),
        tls: cert(
            KeyKind::Rsa2048,
            Validity::Current,
            CertName::Host,
            Issuer::SelfSigned,
        ),
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::VERIFY,
            exit: 143,
            says: &["self-signed certificate"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "cert-wrong-name",
        group: Group::Tls,
        stands_for: "A certificate issued for another name (a renamed host, a load balancer in front, a connection by an address the certificate does not list).",
        wire: "completes the connection with a certificate the test CA issued for rdp.example.com only.",
        expected: Expected::CONNECTED
            .cert(&[CertProblem::NameMismatch])
            .mentioning(&["certificate has problems", "name mismatch"]),
        tls: cert(
            KeyKind::Rsa2048,
            Validity::Current,
            CertName::Other("rdp.example.com"),
            Issuer::TestCa,
        ),
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::VERIFY,
            exit: 143,
            says: &["CERTIFICATE NAME MISMATCH"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "cert-weak-key",
        group: Group::Tls,
        stands_for: "An old host whose certificate has an RSA 1024 key (Windows Server 2003 or 2008 era, an appliance never re-keyed).",
        wire: "completes the connection with a certificate for an RSA 1024 key (issued by the test CA, in the host's name), signing its TLS handshake with that key.",
        expected: Expected::CONNECTED
            .cert(&[CertProblem::WeakKey])
            .mentioning(&["certificate has problems", "weak key"]),
        tls: cert(
            KeyKind::Rsa1024,
            Validity::Current,
            CertName::Host,
            Issuer::TestCa,
        ),
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::VERIFY,
            exit: 0,
            says: &[],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "tls10-only",
        group: Group::Tls,
        stands_for: "A server that speaks nothing newer than TLS 1.0 (Windows Server 2008 or 2008 R2 without the TLS 1.1/1.2 update, an old appliance): within the specification, refused by current clients.",
        wire: "answers the ClientHello with a TLS 1.0 ServerHello (TLS_RSA_WITH_AES_128_CBC_SHA), its Certificate and ServerHelloDone, written by hand, then waits for the client.",
        expected: Expected::failed(PhaseName::Tls, Cause::ClientLimit).mentioning(&["TLS 1.0"]),
        behaviour: &[fault(ServerPoint::ClientHello, Action::Tls10ServerHello)],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 143,
            says: &["ERRCONNECT_TLS_CONNECT_FAILED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "tls-protocol-version",
        group: Group::Tls,
        stands_for: "A server that accepts none of the TLS versions the client offers (an old server limited to TLS 1.0 or 1.1, answering as xrdp and OpenSSL do).",
        wire: "answers the ClientHello with a fatal alert protocol_version (70) in a TLS 1.0 record, then FIN.",
        expected: Expected::failed(PhaseName::Tls, Cause::TlsAlert)
            .mentioning(&["protocol_version"]),
        behaviour: &[fault(
            ServerPoint::ClientHello,
            Action::TlsAlert(PROTOCOL_VERSION),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 143,
            says: &["ERRCONNECT_TLS_CONNECT_FAILED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "tls-handshake-failure",
        group: Group::Tls,
        stands_for: "A server with no cipher suite or signature algorithm in common with the client (one restricted to legacy suites such as 3DES or static RSA).",
        wire: "answers the ClientHello with a fatal alert handshake_failure (40) in a TLS 1.0 record, then FIN.",
        expected: Expected::failed(PhaseName::Tls, Cause::TlsAlert)
            .mentioning(&["handshake_failure"]),
        behaviour: &[fault(
            ServerPoint::ClientHello,
            Action::TlsAlert(HANDSHAKE_FAILURE),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 143,
            says: &["ERRCONNECT_TLS_CONNECT_FAILED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "tls-reset-after-hello",
        group: Group::Tls,
        stands_for: "Endpoint security or an intrusion prevention system that kills the connection when it sees the TLS ClientHello.",
        wire: "reads the ClientHello and resets the connection (RST).",
        expected: Expected::closed(PhaseName::Tls, Cause::ResetByServer)
            .mentioning(&["endpoint security"]),
        behaviour: &[fault(ServerPoint::ClientHello, Action::Reset)],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 143,
            says: &["ERRCONNECT_TLS_CONNECT_FAILED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "tls-cleartext-ultimatum",
        group: Group::Tls,
        stands_for: "xrdp whose TLS setup fails (a key that does not match its certificate): it negotiated TLS, then cannot do it.",
        wire: "reads the ClientHello and writes, instead of a ServerHello, a cleartext Disconnect Provider Ultimatum (rn-user-requested, the 9 bytes xrdp writes), then resets (RST).",
        expected: Expected::closed(PhaseName::Tls, Cause::DisconnectedByServer)
            .mentioning(&["instead of TLS"]),
        behaviour: &[fault(
            ServerPoint::ClientHello,
            Action::Ultimatum {
                reason: RN_USER_REQUESTED,
                reset: true,
            },
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 143,
            says: &["ERRCONNECT_TLS_CONNECT_FAILED"],
        }),
        ..Scenario::BASE
    },
    // ---- NLA ---------------------------------------------------------------------------------------------
    Scenario {
        name: "nla-logon-failure",
        group: Group::Nla,
        stands_for: "A Windows server refusing a wrong user name or password.",
        wire: "answers the client's NTLM AUTHENTICATE with a TSRequest errorCode STATUS_LOGON_FAILURE (0xC000006D), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::CredsspError)
            .mstsc(SSL_ERR_LOGON_FAILURE, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::NtlmAuthenticate,
            Action::CredsspError(STATUS_LOGON_FAILURE),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 134,
            says: &["ERRCONNECT_LOGON_FAILURE"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "nla-account-locked-out",
        group: Group::Nla,
        stands_for: "A Windows server refusing an account locked out after too many wrong passwords.",
        wire: "answers the client's NTLM AUTHENTICATE with a TSRequest errorCode STATUS_ACCOUNT_LOCKED_OUT (0xC0000234), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::CredsspError)
            .mstsc(SSL_ERR_ACCOUNT_LOCKED_OUT, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::NtlmAuthenticate,
            Action::CredsspError(STATUS_ACCOUNT_LOCKED_OUT),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 135,
            says: &["ERRCONNECT_ACCOUNT_LOCKED_OUT"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "nla-account-disabled",
        group: Group::Nla,
        stands_for: "A Windows server refusing a disabled account.",
        wire: "answers the client's NTLM AUTHENTICATE with a TSRequest errorCode STATUS_ACCOUNT_DISABLED (0xC0000072), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::CredsspError)
            .mstsc(SSL_ERR_ACCOUNT_DISABLED, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::NtlmAuthenticate,
            Action::CredsspError(STATUS_ACCOUNT_DISABLED),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 151,
            says: &["ERRCONNECT_ACCOUNT_DISABLED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "nla-password-expired",
        group: Group::Nla,
        stands_for: "A Windows server refusing an account whose password has expired.",
        wire: "answers the client's NTLM AUTHENTICATE with a TSRequest errorCode STATUS_PASSWORD_EXPIRED (0xC0000071), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::CredsspError)
            .mstsc(SSL_ERR_PASSWORD_EXPIRED, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::NtlmAuthenticate,
            Action::CredsspError(STATUS_PASSWORD_EXPIRED),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 148,
            says: &["ERRCONNECT_PASSWORD_EXPIRED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "nla-password-must-change",
        group: Group::Nla,
        stands_for: "A Windows server refusing an account that must change its password at next logon (which NLA cannot do).",
        wire: "answers the client's NTLM AUTHENTICATE with a TSRequest errorCode STATUS_PASSWORD_MUST_CHANGE (0xC0000224), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::CredsspError)
            .mstsc(SSL_ERR_PASSWORD_MUST_CHANGE, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::NtlmAuthenticate,
            Action::CredsspError(STATUS_PASSWORD_MUST_CHANGE),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 149,
            says: &["ERRCONNECT_PASSWORD_MUST_CHANGE"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "nla-logon-type-not-granted",
        group: Group::Nla,
        stands_for: "A Windows server whose policy does not grant the account the network logon NLA needs (\"deny access to this computer from the network\").",
        wire: "answers the client's NTLM AUTHENTICATE with a TSRequest errorCode STATUS_LOGON_TYPE_NOT_GRANTED (0xC000015B), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::CredsspError),
        behaviour: &[fault(
            ServerPoint::NtlmAuthenticate,
            Action::CredsspError(STATUS_LOGON_TYPE_NOT_GRANTED),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 158,
            says: &["ERRCONNECT_LOGON_TYPE_NOT_GRANTED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "nla-account-restriction",
        group: Group::Nla,
        stands_for: "A Windows server refusing an account under a restriction (logon hours, allowed workstations, a blank password).",
        wire: "answers the client's NTLM AUTHENTICATE with a TSRequest errorCode STATUS_ACCOUNT_RESTRICTION (0xC000006E), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::CredsspError)
            .mstsc(SSL_ERR_ACCOUNT_RESTRICTION, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::NtlmAuthenticate,
            Action::CredsspError(STATUS_ACCOUNT_RESTRICTION),
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 156,
            says: &["ERRCONNECT_ACCOUNT_RESTRICTION"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "nla-closed-after-authenticate",
        group: Group::Nla,
        stands_for: "A FreeRDP-based server (freerdp-shadow, weston, gnome-remote-desktop) refusing a wrong password: it sends no errorCode.",
        wire: "reads the client's NTLM AUTHENTICATE and closes (close_notify, FIN) without a TSRequest errorCode.",
        expected: Expected::closed(PhaseName::Credssp, Cause::CredsspRejected),
        behaviour: &[fault(ServerPoint::NtlmAuthenticate, Action::Close)],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 147,
            says: &["ERRCONNECT_CONNECT_TRANSPORT_FAILED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "early-auth-denied",
        group: Group::Nla,
        stands_for: "A Windows server with Early User Authorization (PROTOCOL_HYBRID_EX) where the account authenticates but may not log on remotely (not in Remote Desktop Users).",
        wire: "completes CredSSP, then sends the Early User Authorization Result ACCESS_DENIED and closes (a client that did not ask for PROTOCOL_HYBRID_EX only sees the close).",
        expected: Expected::failed(PhaseName::EarlyUserAuth, Cause::EarlyAuthDenied),
        behaviour: &[fault(
            ServerPoint::CredsspAuthenticated,
            Action::EarlyAuthDenied,
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 147,
            says: &["ERRCONNECT_CONNECT_TRANSPORT_FAILED"],
        }),
        ..Scenario::BASE
    },
    // ---- NLA with Kerberos (serve --keytab FILE --realm REALM, a client with a KDC) -----------------------
    Scenario {
        name: "kerberos",
        group: Group::Nla,
        stands_for: "A domain member server: NLA with Kerberos, the ticket for TERMSRV/<host name> from the domain's KDC.",
        wire: "takes the client's SPNEGO AP-REQ with the keytab's key of TERMSRV/<--host-name>, answers the AP-REP (sspi's Kerberos acceptor), and goes on to the active state.",
        expected: Expected::CONNECTED,
        probe: ProbeProfile::KERBEROS,
        kerberos: Some(KerberosProfile::HEALTHY),
        ..Scenario::BASE
    },
    Scenario {
        name: "kerberos-ntlm-refused",
        group: Group::Nla,
        stands_for: "A server in a domain that blocks NTLM (\"Restrict NTLM: incoming NTLM traffic\"): a client that cannot use Kerberos (connecting by IP address, no KDC) is refused.",
        wire: "takes Kerberos as the kerberos scenario does; answers a client's first NTLM (or SPNEGO NTLM-first) token with a TSRequest errorCode STATUS_NTLM_BLOCKED (0xC0000418), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::CredsspError)
            .mentioning(&["STATUS_NTLM_BLOCKED"]),
        probe: ProbeProfile::NTLM,
        kerberos: Some(KerberosProfile {
            ntlm: false,
            ..KerberosProfile::HEALTHY
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "kerberos-key-mismatch",
        group: Group::Nla,
        stands_for: "A server whose service key is not the one the KDC encrypts its tickets with (a stale keytab, a computer account reset, a duplicate SPN on another account).",
        wire: "decrypts the client's ticket with a key of the right type that is not the keytab's, fails, and answers a SPNEGO reject carrying KRB-ERROR KRB_AP_ERR_MODIFIED (41), then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::KerberosError)
            .mentioning(&["KRB_AP_ERR_MODIFIED"]),
        probe: ProbeProfile::KERBEROS,
        kerberos: Some(KerberosProfile {
            key: ServiceKey::NotTheKdcs,
            ..KerberosProfile::HEALTHY
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "kerberos-clock-skew",
        group: Group::Nla,
        stands_for: "A server whose clock is an hour off the domain's (a broken time sync), beyond Kerberos's five minutes.",
        wire: "reads the client's authenticator with the service key and compares its time with a clock one hour ahead; answers a SPNEGO reject carrying KRB-ERROR KRB_AP_ERR_SKEW (37) with that clock's stime, then closes.",
        expected: Expected::failed(PhaseName::Credssp, Cause::KerberosError)
            .mentioning(&["KRB_AP_ERR_SKEW"]),
        probe: ProbeProfile::KERBEROS,
        kerberos: Some(KerberosProfile {
            clock_offset_s: 3600,
            ..KerberosProfile::HEALTHY
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "kerberos-early-auth-denied",
        group: Group::Nla,
        stands_for: "A domain server with Early User Authorization where the domain user's Kerberos logon succeeds but the account may not log on remotely.",
        wire: "completes CredSSP with Kerberos, then sends the Early User Authorization Result ACCESS_DENIED and closes.",
        expected: Expected::failed(PhaseName::EarlyUserAuth, Cause::EarlyAuthDenied),
        behaviour: &[fault(
            ServerPoint::CredsspAuthenticated,
            Action::EarlyAuthDenied,
        )],
        probe: ProbeProfile::KERBEROS,
        kerberos: Some(KerberosProfile::HEALTHY),
        ..Scenario::BASE
    },
    Scenario {
        name: "credssp-version-2",
        group: Group::Nla,
        stands_for: "A server that speaks only CredSSP version 2 (Windows Vista or Server 2008, or any server without the CVE-2018-0886 update): Windows clients with the update refuse it by default.",
        wire: "answers every TSRequest with version 2 and binds the TLS key the version 2 way (the key echoed, plus one), then completes the connection.",
        expected: Expected::CONNECTED.mentioning(&["CredSSP version 2"]),
        credssp: CredsspProfile { version: 2 },
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::AUTH_ONLY,
            exit: 0,
            says: &[],
        }),
        ..Scenario::BASE
    },
    // ---- licensing ---------------------------------------------------------------------------------------
    Scenario {
        name: "license-no-license-server",
        group: Group::Licensing,
        stands_for: "A Windows session host whose licensing grace period has ended and that cannot reach a license server.",
        wire: "right after the Client Info PDU sends a Licensing Error Message ERR_NO_LICENSE_SERVER (6) with ST_TOTAL_ABORT, then closes (close_notify, FIN).",
        expected: Expected::failed(PhaseName::Licensing, Cause::LicenseError)
            .mstsc(DISC_LICENSING_FAILED, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::ClientInfo,
            Action::LicenseError {
                code: ERR_NO_LICENSE_SERVER,
                transition: ST_TOTAL_ABORT,
            },
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 147,
            says: &["license connection sequence aborted"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "license-invalid-client",
        group: Group::Licensing,
        stands_for: "A license server that rejects the client (a client access license it considers invalid).",
        wire: "right after the Client Info PDU sends a Licensing Error Message ERR_INVALID_CLIENT (8) with ST_TOTAL_ABORT, then closes (close_notify, FIN).",
        expected: Expected::failed(PhaseName::Licensing, Cause::LicenseError)
            .mstsc(DISC_LICENSING_FAILED, EXT_NO_INFO),
        behaviour: &[fault(
            ServerPoint::ClientInfo,
            Action::LicenseError {
                code: ERR_INVALID_CLIENT,
                transition: ST_TOTAL_ABORT,
            },
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 147,
            says: &["license connection sequence aborted"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "license-exchange",
        group: Group::Licensing,
        stands_for: "xrdp's licensing: a License Request first, then STATUS_VALID_CLIENT whatever the client answers.",
        wire: "sends a Server License Request (a proprietary certificate signed with the Terminal Services key), reads the client's New License Request, answers STATUS_VALID_CLIENT and completes the connection.",
        expected: Expected::CONNECTED,
        behaviour: &[fault(ServerPoint::ClientInfo, Action::LicenseRequest)],
        ..Scenario::BASE
    },
    // ---- transport and session ---------------------------------------------------------------------------
    Scenario {
        name: "slow",
        group: Group::Transport,
        stands_for: "A server or path so slow (an overloaded host, a saturated VPN) that clients give up waiting for it.",
        wire: "answers everything 1.5 s late.",
        expected: Expected::failed(PhaseName::X224, Cause::TimedOut)
            .mentioning(&["the X.224 Connection Confirm did not come within 1 s"]),
        behaviour: &[fault(ServerPoint::Accepted, Action::Slow(SLOW_MS))],
        probe: ProbeProfile::IMPATIENT,
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 131,
            says: &["ERRCONNECT_CONNECT_CANCELLED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "deactivated",
        group: Group::Transport,
        stands_for: "A server that starts a deactivation-reactivation sequence (a resize, a reconnection to another session) and never reactivates: the session freezes.",
        wire: "completes the connection, then sends a Deactivate All PDU and nothing after it (no Demand Active), until the client leaves.",
        expected: Expected::failed(PhaseName::Active, Cause::Deactivated),
        behaviour: &[fault(ServerPoint::Active, Action::DeactivateAll)],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 131,
            says: &["ERRCONNECT_CONNECT_CANCELLED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "redirected",
        group: Group::Transport,
        stands_for: "An RD Connection Broker sending the client to the session host that holds its session, seen by a client that stops there (--no-follow; the broker scenarios follow).",
        wire: "after licensing, instead of the Demand Active, sends a Server Redirection PDU (session 7, target 127.0.0.4), then waits for the client to leave.",
        expected: Expected::failed(PhaseName::Capabilities, Cause::Redirected)
            .mentioning(&["127.0.0.4"]),
        behaviour: &[fault(ServerPoint::Licensed, Action::Redirect)],
        probe: ProbeProfile::NO_FOLLOW,
        ..Scenario::BASE
    },
    Scenario {
        name: "ultimatum",
        group: Group::Transport,
        stands_for: "xrdp refusing a client after its Client Info (Debian's xrdp rejecting FreeRDP's salted MAC under Standard RDP Security): a Disconnect Provider Ultimatum and a close, no error info.",
        wire: "right after the Client Info PDU sends a Disconnect Provider Ultimatum (rn-user-requested), then closes (close_notify, FIN).",
        expected: Expected::closed(PhaseName::Licensing, Cause::DisconnectedByServer)
            .mentioning(&["ERRINFO_LOGOFF_BY_USER"]),
        behaviour: &[fault(
            ServerPoint::ClientInfo,
            Action::Ultimatum {
                reason: RN_USER_REQUESTED,
                reset: false,
            },
        )],
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 131,
            says: &["ERRINFO_LOGOFF_BY_USER"],
        }),
        ..Scenario::BASE
    },
];

fn leak(s: String) -> &'static str {
    s.leak()
}

fn leak_faults(faults: Vec<Fault>) -> &'static [Fault] {
    Vec::leak(faults)
}

/// Every scenario: the hand-written ones and the families, group by group.
pub(super) fn build() -> Vec<Scenario> {
    let mut generated = errinfo_family();
    generated.extend(transport_families());
    let mut all = Vec::with_capacity(HAND.len() + generated.len() + super::routes::ROUTES.len());
    for group in Group::ALL {
        all.extend(HAND.iter().filter(|s| s.group == group).copied());
        all.extend(
            super::routes::ROUTES
                .iter()
                .filter(|s| s.group == group)
                .copied(),
        );
        all.extend(generated.iter().filter(|s| s.group == group).copied());
    }
    all
}

/// `errinfo-0xNNNN`: every protocol-independent errorInfo in the active session, every licensing errorInfo
/// in licensing.
fn errinfo_family() -> Vec<Scenario> {
    let pattern = FAMILIES[0].pattern;
    Table::ErrorInfo
        .rows()
        .iter()
        .filter(|row| row.code != 0 && row.code <= *LICENSING_CODES.end())
        .filter_map(|row| {
            let licensing = LICENSING_CODES.contains(&row.code);
            let phase = if licensing {
                PhaseName::Licensing
            } else {
                PhaseName::Active
            };
            let point = ServerPoint::for_phase(phase)?;
            let action = Action::ErrorInfo(row.code);
            let stands_for = if licensing {
                format!(
                    "A Windows session host whose licensing fails: {} ({}).",
                    row.name, row.meaning
                )
            } else {
                format!(
                    "A server that ends a running session: {} ({}).",
                    row.name, row.meaning
                )
            };
            let wire = if licensing {
                format!(
                    "right after the Client Info PDU, where licensing would start, sends {}.",
                    action.describe()
                )
            } else {
                format!(
                    "completes the connection, then sends {}.",
                    action.describe()
                )
            };
            Some(Scenario {
                name: leak(format!("errinfo-0x{:04x}", row.code)),
                group: Group::ErrorInfo,
                family: Some(pattern),
                stands_for: leak(stands_for),
                wire: leak(wire),
                expected: Expected::error_info(phase, row.code),
                behaviour: leak_faults(vec![Fault { at: point, action }]),
                xfreerdp: Some(errinfo_xfreerdp(row.code, row.name)),
                ..Scenario::BASE
            })
        })
        .collect()
}

/// The errorInfo values xfreerdp 2.11 spells otherwise than [2.2.5.1.1], or has no name for (ERRINFO_UNKNOWN).
const XFREERDP_SPELLING: &[(u32, &str)] = &[
    (
        ERRINFO_DISCONNECTED_BY_OTHERCONNECTION,
        "ERRINFO_DISCONNECTED_BY_OTHER_CONNECTION",
    ),
    (
        ERRINFO_RPC_INITIATED_DISCONNECT_BYUSER,
        "ERRINFO_RPC_INITIATED_DISCONNECT_BY_USER",
    ),
    (ERRINFO_SERVER_SHUTDOWN, "ERRINFO_UNKNOWN"),
    (ERRINFO_SERVER_REBOOT, "ERRINFO_UNKNOWN"),
];

/// What xfreerdp 2.11 does with a Set Error Info: it prints the name, and exits with the code itself when it
/// came in the active session and is at most 0xC (its XF_EXIT table), 255 for the other codes; before
/// activation its connect fails (131).
fn errinfo_xfreerdp(code: u32, name: &'static str) -> Xfreerdp {
    let name = XFREERDP_SPELLING
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(name, |(_, spelled)| spelled);
    let says: &'static [&'static str] = Vec::leak(vec![name]);
    let exit = match code {
        ERRINFO_LICENSE_INTERNAL.. => 131,
        ..=ERRINFO_LOGOFF_BY_USER => i32::try_from(code).unwrap_or(255),
        _ => 255,
    };
    Xfreerdp {
        args: Xfreerdp::FULL,
        exit,
        says,
    }
}

/// What xfreerdp 2.11 does against a close, a reset or a stall: the transport fails (143 during TLS, 147 before
/// activation, 131 after it); a stall ends in its 10 s activation timeout (131), except before TLS, where it
/// waits on and says nothing.
fn transport_xfreerdp(action: Action, phase: PhaseName) -> Option<Xfreerdp> {
    let (exit, says): (i32, &'static [&'static str]) = match (action, phase) {
        (Action::Stall, PhaseName::X224 | PhaseName::Tls) => return None,
        (Action::Stall, _) => (131, &["ERRCONNECT_CONNECT_CANCELLED"]),
        (_, PhaseName::Tls) => (143, &["ERRCONNECT_TLS_CONNECT_FAILED"]),
        (_, PhaseName::Active) => (131, &["ERRCONNECT_CONNECT_TRANSPORT_FAILED"]),
        _ => (147, &["ERRCONNECT_CONNECT_TRANSPORT_FAILED"]),
    };
    Some(Xfreerdp {
        args: Xfreerdp::FULL,
        exit,
        says,
    })
}

/// `close-in-PHASE`, `reset-in-PHASE`, `stall-in-PHASE`.
fn transport_families() -> Vec<Scenario> {
    let mut out = Vec::new();
    for (family, action) in [
        (&FAMILIES[1], Action::Close),
        (&FAMILIES[2], Action::Reset),
        (&FAMILIES[3], Action::Stall),
    ] {
        for phase in WAITING_PHASES {
            // A silent server in the active state is a healthy one.
            if action == Action::Stall && phase == PhaseName::Active {
                continue;
            }
            let Some(point) = ServerPoint::for_phase(phase) else {
                continue;
            };
            let verb = match action {
                Action::Close => "close",
                Action::Reset => "reset",
                _ => "stall",
            };
            let expected = match action {
                Action::Close => Expected::closed(phase, Cause::ClosedByServer),
                Action::Reset => Expected::closed(phase, Cause::ResetByServer),
                _ => Expected::failed(phase, Cause::TimedOut),
            };
            let waits = waiting_for(phase);
            let (stands_for, wire) = match action {
                Action::Close => (
                    format!(
                        "A server that closes the connection while the client waits for {waits}, with no error report."
                    ),
                    format!(
                        "{}, closes (close_notify when TLS is up, FIN).",
                        after(phase)
                    ),
                ),
                Action::Reset => (
                    format!(
                        "A server or middlebox that resets the connection while the client waits for {waits}."
                    ),
                    format!("{}, resets the connection (RST).", after(phase)),
                ),
                _ => (
                    format!(
                        "A server that stops answering while the client waits for {waits}, keeping the connection open."
                    ),
                    format!(
                        "{}, sends nothing more and keeps the socket open until the client leaves.",
                        after(phase)
                    ),
                ),
            };
            out.push(Scenario {
                name: leak(format!("{verb}-in-{}", phase.as_str().replace('_', "-"))),
                group: Group::Transport,
                family: Some(family.pattern),
                stands_for: leak(stands_for),
                wire: leak(wire),
                expected,
                behaviour: leak_faults(vec![Fault { at: point, action }]),
                probe: if action == Action::Stall {
                    ProbeProfile::IMPATIENT
                } else {
                    ProbeProfile::DEFAULT
                },
                xfreerdp: transport_xfreerdp(action, phase),
                ..Scenario::BASE
            });
        }
    }
    out
}

/// What a client waits for in a phase, in words.
fn waiting_for(phase: PhaseName) -> &'static str {
    match phase {
        PhaseName::X224 => "the X.224 Connection Confirm",
        PhaseName::Tls => "the TLS ServerHello",
        PhaseName::Credssp => "the NTLM CHALLENGE in CredSSP",
        PhaseName::EarlyUserAuth => "the Early User Authorization Result",
        PhaseName::McsConnect => "the MCS Connect Response",
        PhaseName::ChannelJoin => "the MCS Attach User Confirm",
        PhaseName::Licensing => "licensing to start",
        PhaseName::Capabilities => "the Demand Active",
        PhaseName::Finalization => "the server's finalization PDUs",
        PhaseName::Active => "the session's next update",
        PhaseName::GatewayConnect | PhaseName::GatewayAuth | PhaseName::GatewayTunnel => {
            "the RD Gateway"
        }
        PhaseName::Tcp | PhaseName::SecureSettings => "the server",
    }
}

/// Where the fault of a phase acts, in words: "right after the Connection Request".
fn after(phase: PhaseName) -> String {
    let what = match phase {
        PhaseName::X224 => "right after the Connection Request",
        PhaseName::Tls => "right after the TLS ClientHello",
        PhaseName::Credssp => "once TLS is up, right after the client's first TSRequest",
        PhaseName::EarlyUserAuth => {
            "right after the client's credentials (TSRequest authInfo), before the Early User Authorization Result"
        }
        PhaseName::McsConnect => "right after the MCS Connect Initial",
        PhaseName::ChannelJoin => "right after the MCS Connect Response",
        PhaseName::Licensing => "right after the Client Info PDU",
        PhaseName::Capabilities => "after licensing, before the Demand Active",
        PhaseName::Finalization => "right after the client's Confirm Active",
        PhaseName::Active => "once the connection is active (Font Map sent)",
        PhaseName::GatewayConnect
        | PhaseName::GatewayAuth
        | PhaseName::GatewayTunnel
        | PhaseName::Tcp
        | PhaseName::SecureSettings => "at once",
    };
    what.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use crate::codes::disc_reason::DISC_SOCKET_CLOSED;

    #[test]
    fn the_errinfo_family_covers_both_ranges() {
        let family = errinfo_family();
        let codes: Vec<u32> = family
            .iter()
            .filter_map(|s| s.expected.error_info)
            .collect();
        for code in (0x1..=0x7).chain(0x9..=0xC).chain(0x100..=0x10A) {
            assert!(codes.contains(&code), "0x{code:x}");
        }
        assert!(family.iter().all(|s| {
            codes::lookup(Table::ErrorInfo, s.expected.error_info.unwrap_or(0)).is_some()
        }));
        let logoff = family
            .iter()
            .find(|s| s.name == "errinfo-0x000c")
            .expect("ERRINFO_LOGOFF_BY_USER");
        assert_eq!(logoff.expected.phase, Some(PhaseName::Active));
        assert_eq!(logoff.xfreerdp.map(|x| x.exit), Some(12));
    }

    #[test]
    fn the_transport_families_cover_every_waiting_phase() {
        let all = transport_families();
        assert_eq!(all.len(), 3 * WAITING_PHASES.len() - 1);
        let close = all
            .iter()
            .find(|s| s.name == "close-in-early-user-auth")
            .expect("a close before the Early User Authorization Result");
        assert_eq!(close.expected.mstsc, Some((DISC_SOCKET_CLOSED, 7)));
    }
}
