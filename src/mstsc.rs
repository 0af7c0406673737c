//! What mstsc would have shown for a verdict: the disconnect reason (discReason) and the extended
//! disconnect reason, with how sure the translation is.
//!
//! The rules are data: one row per cause. The extended code is either the errorInfo the server sent
//! ([MS-RDPBCGR] 2.2.5.1.1; the ExtendedDisconnectReasonCode values are the errorInfo values) or a fixed
//! value. The disconnect reason is fixed, or read through a small table from the code the server sent
//! (the RDP_NEG_FAILURE failureCode, the TSRequest errorCode).
//!
//! Each rule's basis says where it comes from: `specified` when a Microsoft document states it,
//! `reported` when the Windows client was observed and reported to show it, `inferred` when it follows
//! from the documented meaning of the codes and nothing more.

use crate::codes::kerberos::{
    KDC_ERR_C_PRINCIPAL_UNKNOWN, KDC_ERR_KEY_EXPIRED, KDC_ERR_PREAUTH_FAILED,
    KDC_ERR_PREAUTH_REQUIRED,
};
use crate::codes::{self, Table};
use crate::pdu::{AuthToken, KrbErrorInfo, KrbMessage, Negotiation, PduInfo};
use crate::trace::{EventKind, KdcDirection, PhaseName, Side, Trace};
use crate::verdict::{Basis, Cause, Code, Mstsc};

pub use crate::codes::disc_reason::{
    DISC_BY_SERVER, DISC_DNS_LOOKUP_FAILED, DISC_LICENSING_FAILED, DISC_SOCKET_CLOSED,
    DISC_SOCKET_CONNECT_FAILED, EXT_SERVER_DENIED_CONNECTION,
};
use crate::codes::disc_reason::{
    DISC_HYBRID_REQUIRED_BY_SERVER, EXT_NO_INFO, SSL_ERR_ACCOUNT_DISABLED, SSL_ERR_ACCOUNT_EXPIRED,
    SSL_ERR_ACCOUNT_LOCKED_OUT, SSL_ERR_ACCOUNT_RESTRICTION, SSL_ERR_LOGON_FAILURE,
    SSL_ERR_NO_AUTHENTICATING_AUTHORITY, SSL_ERR_NO_SUCH_USER, SSL_ERR_PASSWORD_EXPIRED,
    SSL_ERR_PASSWORD_MUST_CHANGE, SSL_ERR_SMARTCARD_CARD_BLOCKED, SSL_ERR_SMARTCARD_WRONG_PIN,
};
use crate::codes::neg_failure::HYBRID_REQUIRED_BY_SERVER;
use crate::codes::ntstatus::{
    STATUS_ACCOUNT_DISABLED, STATUS_ACCOUNT_EXPIRED, STATUS_ACCOUNT_LOCKED_OUT,
    STATUS_ACCOUNT_RESTRICTION, STATUS_LOGON_FAILURE, STATUS_NO_SUCH_USER, STATUS_PASSWORD_EXPIRED,
    STATUS_PASSWORD_MUST_CHANGE, STATUS_SMARTCARD_CARD_BLOCKED, STATUS_SMARTCARD_WRONG_PIN,
};

/// Where the disconnect reason comes from.
#[derive(Debug, Clone, Copy)]
enum Disc {
    Fixed(u32),
    /// The server's RDP_NEG_FAILURE failureCode, through [`NEG_FAILURE_DISC`].
    NegFailure,
    /// The server's TSRequest errorCode, through [`CREDSSP_STATUS_DISC`].
    CredsspStatus,
    /// The Kerberos error that ended the logon, through [`kerberos_disc`].
    Kerberos,
}

/// Where the extended code comes from.
#[derive(Debug, Clone, Copy)]
enum Extended {
    /// The errorInfo of the server's Set Error Info PDU.
    ErrorInfo,
    Fixed(u32),
}

/// Which phases a rule applies to.
#[derive(Debug, Clone, Copy)]
enum When {
    Any,
    /// Before the active phase: the connection was still pending.
    Pending,
    /// In the active phase: the session was up.
    Established,
    In(PhaseName),
}

impl When {
    fn matches(self, phase: Option<PhaseName>) -> bool {
        match self {
            When::Any => true,
            When::Pending => phase.is_some_and(|p| p < PhaseName::Active),
            When::Established => phase.is_none_or(|p| p >= PhaseName::Active),
            When::In(name) => phase == Some(name),
        }
    }
}

/// One translation rule.
#[derive(Debug, Clone, Copy)]
struct Rule {
    cause: Cause,
    when: When,
    disc_reason: Disc,
    extended: Extended,
    basis: Basis,
    why: &'static str,
}

/// The pending-close path of 0x904 / 0x7: a FIN, a RST, a Disconnect Provider Ultimatum or a Deactivate All
/// with no reactivation, before the session is up and without error info.
const WHY_PENDING_CLOSE: &str = "as reported of the Windows client: when the socket closes while the connection is still pending and no error info arrived, it fills in ERRINFO_SERVER_DENIED_CONNECTION itself";

/// A client that reached no KDC.
const WHY_NO_KDC: &str = "the client could reach no KDC, and SSL_ERR_NO_AUTHENTICATING_AUTHORITY is documented as that failure (IMsTscAxEvents::OnDisconnected); Microsoft's article on RDP authentication errors (Troubleshoot authentication errors when you use RDP to connect to Azure VM) reports the dialog \"An authentication error has occurred. The Local Security Authority cannot be contacted\" when the domain controller cannot be reached";

/// A Kerberos error that names the same failure as an SSL_ERR disconnect reason.
const WHY_KERBEROS: &str = "the Kerberos error names the same failure as the documented SSL_ERR disconnect reason ([RFC 4120] 7.5.9, [MS-KILE] 2.2.1 for the NTSTATUS a Windows KDC adds; IMsTscAxEvents::OnDisconnected); that the client maps one to the other is not documented";

/// The Set Error Info path of 0x904 when the errorInfo is encrypted.
const WHY_ENCRYPTED_ERROR_INFO: &str = "the server sent a record the size of a Set Error Info PDU before it closed; mstsc shows its errorInfo as the extended code ([MS-RDPBCGR] 2.2.5.1.1) and the close as discReason 0x904, and the errorInfo is inside the encryption";

static RULES: &[Rule] = &[
    Rule {
        cause: Cause::ServerErrorInfo,
        when: When::Any,
        disc_reason: Disc::Fixed(DISC_SOCKET_CLOSED),
        extended: Extended::ErrorInfo,
        basis: Basis::Specified,
        why: "the server sent Set Error Info and closed; the client reports the errorInfo value as the extended code ([MS-RDPBCGR] 2.2.5.1.1) and the close as discReason 0x904",
    },
    Rule {
        cause: Cause::ClosedByServer,
        when: When::Pending,
        disc_reason: Disc::Fixed(DISC_SOCKET_CLOSED),
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: WHY_PENDING_CLOSE,
    },
    Rule {
        cause: Cause::ResetByServer,
        when: When::Pending,
        disc_reason: Disc::Fixed(DISC_SOCKET_CLOSED),
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: WHY_PENDING_CLOSE,
    },
    Rule {
        cause: Cause::CredsspRejected,
        when: When::Pending,
        disc_reason: Disc::Fixed(DISC_SOCKET_CLOSED),
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: WHY_PENDING_CLOSE,
    },
    Rule {
        cause: Cause::DisconnectedByServer,
        when: When::Pending,
        disc_reason: Disc::Fixed(DISC_SOCKET_CLOSED),
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: WHY_PENDING_CLOSE,
    },
    Rule {
        cause: Cause::Deactivated,
        when: When::Pending,
        disc_reason: Disc::Fixed(DISC_SOCKET_CLOSED),
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: WHY_PENDING_CLOSE,
    },
    Rule {
        cause: Cause::ClosedByServer,
        when: When::Established,
        disc_reason: Disc::Fixed(DISC_SOCKET_CLOSED),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: "the socket closed after the session was up, with no error info",
    },
    Rule {
        cause: Cause::ResetByServer,
        when: When::Established,
        disc_reason: Disc::Fixed(DISC_SOCKET_CLOSED),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: "the socket closed after the session was up, with no error info",
    },
    Rule {
        cause: Cause::DisconnectedByServer,
        when: When::Established,
        disc_reason: Disc::Fixed(DISC_BY_SERVER),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: "the server ended a running session with a Disconnect Provider Ultimatum and no error info; disconnectReasonByServer is documented as a remote disconnection by the server",
    },
    Rule {
        cause: Cause::ResolveFailed,
        when: When::Any,
        disc_reason: Disc::Fixed(DISC_DNS_LOOKUP_FAILED),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Reported,
        why: "as reported of the Windows client (tailscale/tailscale issue 15149): a host name that does not resolve shows \"Remote Desktop can't find the computer\" with 0x104 and extended 0x0",
    },
    Rule {
        cause: Cause::Refused,
        when: When::Any,
        disc_reason: Disc::Fixed(DISC_SOCKET_CONNECT_FAILED),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Reported,
        why: "as reported of the Windows client (neutrinolabs/xrdp issue 2645, port 3389 closed): a TCP connect that fails shows 0x204 with extended 0x0",
    },
    Rule {
        cause: Cause::Unreachable,
        when: When::Any,
        disc_reason: Disc::Fixed(DISC_SOCKET_CONNECT_FAILED),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: "an unreachable host makes the socket connect fail, and disconnectReasonSocketConnectFailed is documented as that failure",
    },
    Rule {
        cause: Cause::TimedOut,
        when: When::In(PhaseName::Tcp),
        disc_reason: Disc::Fixed(DISC_SOCKET_CONNECT_FAILED),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: "a SYN that is never answered makes the socket connect fail, and disconnectReasonSocketConnectFailed is documented as that failure (0x108, connection timed out, is also documented; which one a given client version shows is not)",
    },
    Rule {
        cause: Cause::NegotiationFailure,
        when: When::Any,
        disc_reason: Disc::NegFailure,
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Reported,
        why: "as reported of the Remote Desktop ActiveX client (mRemoteNG/mRemoteNG issue 875): a server that requires network level authentication from a client that did not offer it gives disconnect reason 2825 (0xB09); the extended code was not reported",
    },
    Rule {
        cause: Cause::CredsspError,
        when: When::Any,
        disc_reason: Disc::CredsspStatus,
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: "the server's TSRequest errorCode matches the documented SSL_ERR disconnect reason of the same failure by name ([MS-CSSP] 2.2.1; IMsTscAxEvents::OnDisconnected); that the client maps one to the other is not documented",
    },
    Rule {
        cause: Cause::KdcUnreachable,
        when: When::Any,
        disc_reason: Disc::Fixed(SSL_ERR_NO_AUTHENTICATING_AUTHORITY),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: WHY_NO_KDC,
    },
    Rule {
        cause: Cause::KerberosError,
        when: When::Any,
        disc_reason: Disc::Kerberos,
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: WHY_KERBEROS,
    },
    Rule {
        cause: Cause::LicenseError,
        when: When::Any,
        disc_reason: Disc::Fixed(DISC_LICENSING_FAILED),
        extended: Extended::Fixed(EXT_NO_INFO),
        basis: Basis::Inferred,
        why: "the server ended licensing with an error and no error info; disconnectReasonLicensingFailed is documented as a failed license negotiation",
    },
];

/// [2.2.1.2.2] failureCode to the discReason the client shows for it, where one was found.
static NEG_FAILURE_DISC: &[(u32, u32)] = &[
    // 2825, reported (mRemoteNG issue 875).
    (HYBRID_REQUIRED_BY_SERVER, DISC_HYBRID_REQUIRED_BY_SERVER),
];

/// [MS-ERREF] 2.3.1 NTSTATUS in TSRequest.errorCode to the SSL_ERR discReason documented for the same
/// failure (IMsTscAxEvents::OnDisconnected).
static CREDSSP_STATUS_DISC: &[(u32, u32)] = &[
    (STATUS_LOGON_FAILURE, SSL_ERR_LOGON_FAILURE),
    (STATUS_NO_SUCH_USER, SSL_ERR_NO_SUCH_USER),
    (STATUS_ACCOUNT_DISABLED, SSL_ERR_ACCOUNT_DISABLED),
    (STATUS_ACCOUNT_RESTRICTION, SSL_ERR_ACCOUNT_RESTRICTION),
    (STATUS_ACCOUNT_LOCKED_OUT, SSL_ERR_ACCOUNT_LOCKED_OUT),
    (STATUS_ACCOUNT_EXPIRED, SSL_ERR_ACCOUNT_EXPIRED),
    (STATUS_PASSWORD_EXPIRED, SSL_ERR_PASSWORD_EXPIRED),
    (STATUS_PASSWORD_MUST_CHANGE, SSL_ERR_PASSWORD_MUST_CHANGE),
    (STATUS_SMARTCARD_WRONG_PIN, SSL_ERR_SMARTCARD_WRONG_PIN),
    (
        STATUS_SMARTCARD_CARD_BLOCKED,
        SSL_ERR_SMARTCARD_CARD_BLOCKED,
    ),
];

/// [RFC 4120] 7.5.9 a Kerberos error to the SSL_ERR discReason documented for the same failure; the NTSTATUS of
/// a Windows KDC's extended error ([MS-KILE] 2.2.1), when there is one, through [`CREDSSP_STATUS_DISC`].
static KERBEROS_DISC: &[(u32, u32)] = &[
    (KDC_ERR_PREAUTH_FAILED, SSL_ERR_LOGON_FAILURE),
    (KDC_ERR_C_PRINCIPAL_UNKNOWN, SSL_ERR_NO_SUCH_USER),
    (KDC_ERR_KEY_EXPIRED, SSL_ERR_PASSWORD_EXPIRED),
];

/// The discReason for a Kerberos failure, where one names the same failure.
fn kerberos_disc(code: u32, ntstatus: Option<u32>) -> Option<u32> {
    ntstatus
        .and_then(|status| mapped(CREDSSP_STATUS_DISC, status))
        .or_else(|| mapped(KERBEROS_DISC, code))
}

/// The pair for a Kerberos failure of this code (and the NTSTATUS of the KDC's extended error), when one is
/// documented; for `rdptrace explain --krb`.
pub fn kerberos(code: u32, ntstatus: Option<u32>) -> Option<Mstsc> {
    let disc = kerberos_disc(code, ntstatus)?;
    Some(pair(disc, Some(EXT_NO_INFO), Basis::Inferred, WHY_KERBEROS))
}

/// The Kerberos error that ended the logon: the last KRB-ERROR from a KDC or in the server's TSRequests,
/// with the NTSTATUS of its extended error.
pub fn kerberos_failure(trace: &Trace) -> Option<(u32, Option<u32>)> {
    let mut last: Option<(f64, u32, Option<u32>)> = None;
    let mut keep = |at: f64, e: &KrbErrorInfo| {
        if last.is_none_or(|(t, _, _)| at >= t) {
            last = Some((at, e.code, e.ntstatus));
        }
    };
    for (_, event) in trace.events() {
        if let EventKind::Kdc {
            direction: KdcDirection::FromKdc,
            message: KrbMessage::Error(e),
            ..
        } = &event.kind
            && e.code != KDC_ERR_PREAUTH_REQUIRED
        {
            keep(event.at_ms, e);
        }
    }
    for (_, pdu) in trace.pdus().filter(|(_, p)| p.from == Side::Server) {
        if let PduInfo::TsRequest {
            token:
                Some(AuthToken::Kerberos {
                    krb: Some(KrbMessage::Error(e)),
                    ..
                }),
            ..
        } = &pdu.info
        {
            keep(pdu.at_ms, e);
        }
    }
    last.map(|(_, code, status)| (code, status))
}

fn pair(disc: u32, extended: Option<u32>, basis: Basis, why: &str) -> Mstsc {
    Mstsc {
        disc_reason: Code {
            code: disc,
            name: codes::meaning(Table::DiscReason, disc).to_owned(),
        },
        extended: extended.map(|code| Code {
            code,
            name: extended_meaning(code).to_owned(),
        }),
        basis,
        why: why.to_owned(),
    }
}

fn mapped(table: &[(u32, u32)], code: u32) -> Option<u32> {
    table
        .iter()
        .find(|(from, _)| *from == code)
        .map(|(_, to)| *to)
}

/// The failureCode of the server's RDP_NEG_FAILURE, if the trace holds one.
fn neg_failure(trace: &Trace) -> Option<u32> {
    trace.pdus().find_map(|(_, pdu)| match &pdu.info {
        PduInfo::X224ConnectionConfirm {
            negotiation: Negotiation::Failure { code },
        } => Some(*code),
        _ => None,
    })
}

/// The errorCode of the server's last TSRequest that carried one.
fn credssp_status(trace: &Trace) -> Option<u32> {
    trace
        .pdus()
        .filter(|(_, pdu)| pdu.from == Side::Server)
        .filter_map(|(_, pdu)| match &pdu.info {
            PduInfo::TsRequest { error_code, .. } => *error_code,
            _ => None,
        })
        .last()
}

/// The mstsc pair for a verdict, when there is a rule for it.
pub fn translate(
    trace: &Trace,
    cause: Cause,
    phase: Option<PhaseName>,
    error_info: Option<u32>,
) -> Option<Mstsc> {
    let rule = RULES
        .iter()
        .find(|r| r.cause == cause && r.when.matches(phase))?;
    let disc_reason = match rule.disc_reason {
        Disc::Fixed(code) => code,
        Disc::NegFailure => mapped(NEG_FAILURE_DISC, neg_failure(trace)?)?,
        Disc::CredsspStatus => mapped(CREDSSP_STATUS_DISC, credssp_status(trace)?)?,
        Disc::Kerberos => {
            let (code, status) = kerberos_failure(trace)?;
            kerberos_disc(code, status)?
        }
    };
    let (extended, basis, why) = match (rule.extended, error_info) {
        (Extended::ErrorInfo, Some(code)) => (Some(code), rule.basis, rule.why),
        // A Set Error Info known only by its size: mstsc shows its code, which the encryption hides.
        (Extended::ErrorInfo, None) if cause == Cause::ServerErrorInfo => {
            (None, Basis::Inferred, WHY_ENCRYPTED_ERROR_INFO)
        }
        (Extended::ErrorInfo, None) => return None,
        (Extended::Fixed(code), _) => (Some(code), rule.basis, rule.why),
    };
    Some(pair(disc_reason, extended, basis, why))
}

/// The meaning of an extended code: its ExtendedDisconnectReasonCode row, else the errorInfo of the same
/// number (the protocol range 0x1000-0x7FFF carries the server's errorInfo).
pub fn extended_meaning(code: u32) -> &'static str {
    codes::lookup(Table::ExtendedReason, code)
        .or_else(|| codes::lookup(Table::ErrorInfo, code))
        .map_or("unknown code", |row| row.meaning)
}

/// One way a pair comes about, as the rules give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The verdict causes that produce the pair this way.
    pub causes: Vec<Cause>,
    /// Whether the extended code is the server's errorInfo (rather than a fixed value).
    pub from_error_info: bool,
    /// Only while the connection was pending (`Some(true)`), only once it was up (`Some(false)`).
    pub pending: Option<bool>,
    pub basis: Basis,
    pub why: &'static str,
}

/// The ways the rules produce `disc` / `ext`: one entry per distinct explanation (`why`), with every
/// cause that shares it. Rules whose discReason depends on a server code are matched through their tables.
pub fn paths(disc: u32, ext: u32) -> Vec<Path> {
    let mut out: Vec<Path> = Vec::new();
    for rule in RULES {
        let disc_matches = match rule.disc_reason {
            Disc::Fixed(code) => code == disc,
            Disc::NegFailure => NEG_FAILURE_DISC.iter().any(|(_, d)| *d == disc),
            Disc::CredsspStatus => CREDSSP_STATUS_DISC.iter().any(|(_, d)| *d == disc),
            Disc::Kerberos => {
                KERBEROS_DISC.iter().any(|(_, d)| *d == disc)
                    || CREDSSP_STATUS_DISC.iter().any(|(_, d)| *d == disc)
            }
        };
        let (ext_matches, from_error_info) = match rule.extended {
            Extended::ErrorInfo => (
                ext != 0 && codes::lookup(Table::ErrorInfo, ext).is_some(),
                true,
            ),
            Extended::Fixed(code) => (code == ext, false),
        };
        if !(disc_matches && ext_matches) {
            continue;
        }
        let pending = match rule.when {
            When::Pending => Some(true),
            When::Established => Some(false),
            When::Any | When::In(_) => None,
        };
        // Rules with the same explanation are one path.
        let same = out.iter_mut().find(|p| {
            p.why == rule.why && p.pending == pending && p.from_error_info == from_error_info
        });
        match same {
            Some(p) => {
                if !p.causes.contains(&rule.cause) {
                    p.causes.push(rule.cause);
                }
            }
            None => out.push(Path {
                causes: vec![rule.cause],
                from_error_info,
                pending,
                basis: rule.basis,
                why: rule.why,
            }),
        }
    }
    out
}

/// "0x904/0x7", or "0x904/(encrypted errorInfo)" when the extended code is inside the encryption.
pub fn pair_text(m: &Mstsc) -> String {
    match &m.extended {
        Some(e) => format!("0x{:x}/0x{:x}", m.disc_reason.code, e.code),
        None => format!("0x{:x}/(encrypted errorInfo)", m.disc_reason.code),
    }
}

/// "Error code 0x904 (socket closed), Extended error code 0x7 (server denied the connection)".
pub fn mstsc_line(m: &Mstsc) -> String {
    match &m.extended {
        Some(e) => format!(
            "Error code 0x{:x} ({}), Extended error code 0x{:x} ({})",
            m.disc_reason.code, m.disc_reason.name, e.code, e.name
        ),
        None => format!(
            "Error code 0x{:x} ({}), Extended error code: the errorInfo of the server's Set Error Info (encrypted here)",
            m.disc_reason.code, m.disc_reason.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::AuthToken;
    use crate::trace::{Origin, Pdu};

    fn empty() -> Trace {
        Trace::new("192.0.2.1:3389", Origin::Probe)
    }

    fn pdu(trace: &mut Trace, phase: PhaseName, from: Side, name: &str, info: PduInfo) {
        trace.enter(phase, 1.0);
        trace.record_pdu(Pdu {
            at_ms: 1.0,
            from,
            len: 19,
            name: name.to_owned(),
            summary: String::new(),
            info,
        });
    }

    fn pair(m: &Mstsc) -> (u32, u32, Basis) {
        (
            m.disc_reason.code,
            m.extended_code().unwrap_or(u32::MAX),
            m.basis,
        )
    }

    fn tr(cause: Cause, phase: PhaseName, error_info: Option<u32>) -> Option<(u32, u32, Basis)> {
        translate(&empty(), cause, Some(phase), error_info).map(|m| pair(&m))
    }

    #[test]
    fn server_error_info_gives_its_value_as_the_extended_code() {
        let m = translate(
            &empty(),
            Cause::ServerErrorInfo,
            Some(PhaseName::Licensing),
            Some(7),
        );
        let m = m.expect("a rule for Set Error Info");
        assert_eq!(pair(&m), (0x904, 0x7, Basis::Specified));
        assert_eq!(
            mstsc_line(&m),
            "Error code 0x904 (socket closed), Extended error code 0x7 (server denied the connection)"
        );
        // A protocol-range errorInfo has no ExtendedDisconnectReasonCode row; its errorInfo meaning is used.
        let m = translate(
            &empty(),
            Cause::ServerErrorInfo,
            Some(PhaseName::Active),
            Some(0x10C9),
        )
        .expect("a rule for Set Error Info");
        let e = m.extended.as_ref().expect("an extended code");
        assert_eq!(e.code, 0x10C9);
        assert_eq!(e.name, "unknown pduType2 in a share data header");
        // Without the value (a Set Error Info known only by its size): 0x904 and the errorInfo, encrypted.
        let m = translate(
            &empty(),
            Cause::ServerErrorInfo,
            Some(PhaseName::Licensing),
            None,
        )
        .expect("a pair without the value");
        assert_eq!((m.disc_reason.code, m.extended_code()), (0x904, None));
        assert_eq!(m.basis, Basis::Inferred);
        assert!(
            mstsc_line(&m).contains("encrypted here"),
            "{}",
            mstsc_line(&m)
        );
    }

    #[test]
    fn a_close_while_pending_is_0x904_0x7_and_after_it_0x904_0x0() {
        for cause in [
            Cause::ClosedByServer,
            Cause::ResetByServer,
            Cause::CredsspRejected,
            Cause::DisconnectedByServer,
            Cause::Deactivated,
        ] {
            assert_eq!(
                tr(cause, PhaseName::Credssp, None),
                Some((0x904, 0x7, Basis::Reported)),
                "{cause:?}"
            );
        }
        for cause in [Cause::ClosedByServer, Cause::ResetByServer] {
            assert_eq!(
                tr(cause, PhaseName::Active, None),
                Some((0x904, 0x0, Basis::Inferred)),
                "{cause:?}"
            );
        }
        assert_eq!(
            tr(Cause::DisconnectedByServer, PhaseName::Active, None),
            Some((0x3, 0x0, Basis::Inferred))
        );
        assert_eq!(tr(Cause::Deactivated, PhaseName::Active, None), None);
    }

    #[test]
    fn network_failures() {
        assert_eq!(
            tr(Cause::ResolveFailed, PhaseName::Tcp, None),
            Some((0x104, 0x0, Basis::Reported))
        );
        assert_eq!(
            tr(Cause::Refused, PhaseName::Tcp, None),
            Some((0x204, 0x0, Basis::Reported))
        );
        assert_eq!(
            tr(Cause::Unreachable, PhaseName::Tcp, None),
            Some((0x204, 0x0, Basis::Inferred))
        );
        assert_eq!(
            tr(Cause::TimedOut, PhaseName::Tcp, None),
            Some((0x204, 0x0, Basis::Inferred))
        );
        // A server that stops answering later is not a connect failure; no rule says what mstsc shows.
        assert_eq!(tr(Cause::TimedOut, PhaseName::Licensing, None), None);
    }

    fn negotiation_failure(code: u32) -> Trace {
        let mut t = empty();
        pdu(
            &mut t,
            PhaseName::X224,
            Side::Server,
            "X.224 Connection Confirm",
            PduInfo::X224ConnectionConfirm {
                negotiation: Negotiation::Failure { code },
            },
        );
        t
    }

    #[test]
    fn hybrid_required_by_server_is_2825() {
        let t = negotiation_failure(5);
        let m = translate(&t, Cause::NegotiationFailure, Some(PhaseName::X224), None)
            .expect("a rule for HYBRID_REQUIRED_BY_SERVER");
        assert_eq!(pair(&m), (0xB09, 0x0, Basis::Reported));
        assert_eq!(
            m.disc_reason.name,
            "the remote computer requires network level authentication"
        );
        // No source says what the client shows for the other failure codes.
        let t = negotiation_failure(1);
        assert!(translate(&t, Cause::NegotiationFailure, Some(PhaseName::X224), None).is_none());
        assert!(
            translate(
                &empty(),
                Cause::NegotiationFailure,
                Some(PhaseName::X224),
                None
            )
            .is_none()
        );
    }

    fn credssp_error(status: u32) -> Trace {
        let mut t = empty();
        pdu(
            &mut t,
            PhaseName::Credssp,
            Side::Client,
            "TSRequest",
            PduInfo::TsRequest {
                version: 6,
                token: Some(AuthToken::NtlmNegotiate),
                auth_info: false,
                pub_key_auth: false,
                client_nonce: false,
                error_code: None,
            },
        );
        pdu(
            &mut t,
            PhaseName::Credssp,
            Side::Server,
            "TSRequest",
            PduInfo::TsRequest {
                version: 6,
                token: None,
                auth_info: false,
                pub_key_auth: false,
                client_nonce: false,
                error_code: Some(status),
            },
        );
        t
    }

    #[test]
    fn credssp_error_codes_map_to_their_ssl_err_reasons() {
        for (status, disc) in CREDSSP_STATUS_DISC {
            let t = credssp_error(*status);
            let m = translate(&t, Cause::CredsspError, Some(PhaseName::Credssp), None)
                .expect("a rule for the errorCode");
            assert_eq!(pair(&m), (*disc, 0x0, Basis::Inferred));
            // Both ends of each mapping are documented codes.
            assert!(codes::lookup(Table::NtStatus, *status).is_some());
            let row = codes::lookup(Table::DiscReason, *disc).expect("a documented reason");
            assert!(row.name.starts_with("SSL_ERR_"), "{}", row.name);
        }
        let t = credssp_error(0xC000_006D);
        let m = translate(&t, Cause::CredsspError, Some(PhaseName::Credssp), None)
            .expect("STATUS_LOGON_FAILURE");
        assert_eq!(m.disc_reason.name, "logon failed");
        // An errorCode without a documented counterpart gives no pair.
        let t = credssp_error(0xC000_0022);
        assert!(translate(&t, Cause::CredsspError, Some(PhaseName::Credssp), None).is_none());
    }

    #[test]
    fn licensing_errors() {
        assert_eq!(
            tr(Cause::LicenseError, PhaseName::Licensing, None),
            Some((0x808, 0x0, Basis::Inferred))
        );
    }

    #[test]
    fn causes_without_a_source_give_no_pair() {
        for cause in [
            Cause::Connected,
            Cause::TlsAlert,
            Cause::TlsFailed,
            Cause::CertificateRejected,
            Cause::EarlyAuthDenied,
            Cause::NegotiationMismatch,
            Cause::Redirected,
            Cause::ProtocolError,
            Cause::ClientLimit,
            Cause::CaptureEnded,
        ] {
            assert_eq!(tr(cause, PhaseName::Tls, None), None, "{cause:?}");
        }
    }

    #[test]
    fn every_fixed_code_of_a_rule_is_in_the_tables() {
        for rule in RULES {
            if let Disc::Fixed(code) = rule.disc_reason {
                assert!(
                    codes::lookup(Table::DiscReason, code).is_some(),
                    "0x{code:x}"
                );
            }
            if let Extended::Fixed(code) = rule.extended {
                assert!(
                    codes::lookup(Table::ExtendedReason, code).is_some(),
                    "0x{code:x}"
                );
            }
            let says = match rule.basis {
                Basis::Reported => "reported",
                Basis::Specified => "[MS-RDPBCGR]",
                Basis::Inferred => "",
            };
            assert!(rule.why.contains(says), "{:?}: {}", rule.cause, rule.why);
        }
        for (_, disc) in NEG_FAILURE_DISC.iter().chain(CREDSSP_STATUS_DISC) {
            assert!(
                codes::lookup(Table::DiscReason, *disc).is_some(),
                "0x{disc:x}"
            );
        }
    }

    /// [2.2.1.1] X.224 Connection Request with an RDP_NEG_REQ for `protocols`.
    fn connection_request(protocols: u8) -> Vec<u8> {
        vec![
            0x03, 0, 0, 0x13, 0x0e, 0xe0, 0, 0, 0, 0, 0, 0x01, 0, 0x08, 0, protocols, 0, 0, 0,
        ]
    }

    /// The verdict's pair for a server that answers the Connection Request with `confirm` and closes.
    fn wire_pair(protocols: u8, confirm: &[u8]) -> Option<(u32, u32, Basis)> {
        let mut d = crate::dissect::Dissector::new(empty());
        d.on_tcp_data(Side::Client, 1.0, &connection_request(protocols));
        d.on_tcp_data(Side::Server, 2.0, confirm);
        d.on_close(Side::Server, crate::trace::CloseKind::Fin, 3.0);
        let mut trace = d.into_trace();
        trace.finish(true);
        crate::diagnose::diagnose(&trace).mstsc.map(|m| pair(&m))
    }

    #[test]
    fn on_the_wire_hybrid_required_and_a_close_after_the_confirm() {
        // [2.2.1.2.2] RDP_NEG_FAILURE HYBRID_REQUIRED_BY_SERVER to a client that offered TLS only.
        let failure = [
            0x03, 0, 0, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x03, 0, 0x08, 0, 0x05, 0, 0, 0,
        ];
        assert_eq!(
            wire_pair(0x01, &failure),
            Some((0xB09, 0x0, Basis::Reported))
        );
        // [2.2.1.2.1] RDP_NEG_RSP selecting PROTOCOL_RDP, then a FIN: a close while pending.
        let response = [
            0x03, 0, 0, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x02, 0, 0x08, 0, 0x00, 0, 0, 0,
        ];
        assert_eq!(
            wire_pair(0x00, &response),
            Some((0x904, 0x7, Basis::Reported))
        );
    }

    #[test]
    fn the_two_paths_of_0x904_0x7() {
        let p = paths(0x904, 0x7);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].from_error_info);
        assert_eq!(p[0].basis, Basis::Specified);
        assert_eq!(p[0].causes, vec![Cause::ServerErrorInfo]);
        assert!(!p[1].from_error_info);
        assert_eq!(p[1].basis, Basis::Reported);
        assert_eq!(p[1].pending, Some(true));
        assert!(p[1].causes.contains(&Cause::ClosedByServer));
        assert!(p[1].causes.contains(&Cause::ResetByServer));
        // Another errorInfo after a close has one path; 0x904 0x0 is a close once the session was up.
        assert_eq!(paths(0x904, 0x9).len(), 1);
        let up = paths(0x904, 0x0);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].pending, Some(false));
        assert!(paths(0x904, 0xDEAD).is_empty());
        assert_eq!(paths(0x807, 0x0)[0].causes, vec![Cause::CredsspError]);
    }
}
