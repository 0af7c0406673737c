//! Rules on what the server reported: a code or a PDU that ends the connection, from CredSSP on.

use crate::codes::dpu_reason::{RN_PROVIDER_INITIATED, RN_USER_REQUESTED};
use crate::codes::early_user_auth::AUTHZ_ACCESS_DENIED;
use crate::codes::error_info::{ERRINFO_LOGOFF_BY_USER, ERRINFO_RPC_INITIATED_DISCONNECT};
use crate::codes::licensing::ST_TOTAL_ABORT;
use crate::codes::{self, Table};
use crate::diagnose::Explained;
use crate::diagnose::findings::Findings;
use crate::verdict::Cause;

/// After a failed network level authentication.
pub const CHECK_CREDENTIALS: &str = "check the user name, domain and password; NTLM needs the account's domain or the server's name as domain";

/// [MS-CSSP] 2.2.1 The server answered with a TSRequest errorCode.
pub fn credssp_error(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let e = f.credssp_error?;
    Some(
        Explained::failed(
            Cause::CredsspError,
            phase,
            format!(
                "network level authentication failed: the server answered {} ({})",
                codes::name(Table::NtStatus, e.status),
                codes::meaning(Table::NtStatus, e.status)
            ),
        )
        .evidence([format!(
            "{:.1} ms: server TSRequest errorCode {}",
            e.at_ms,
            codes::Display(Table::NtStatus, e.status)
        )])
        .hint([CHECK_CREDENTIALS.to_owned()]),
    )
}

/// [2.2.10.2] The Early User Authorization Result denied access.
pub fn early_auth_denied(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let e = f.early_auth.filter(|e| e.result == AUTHZ_ACCESS_DENIED)?;
    let name = codes::name(Table::EarlyAuthResult, e.result);
    Some(
        Explained::failed(
            Cause::EarlyAuthDenied,
            phase,
            format!(
                "the server authenticated the user but denied access (Early User Authorization Result {name}): the account may not log on remotely"
            ),
        )
        .evidence([format!(
            "{:.1} ms: server Early User Authorization Result {name}",
            e.at_ms
        )]),
    )
}

/// [2.2.5.1.1] The server sent Set Error Info, then ended the connection.
pub fn server_error_info(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let e = f.error_info?;
    Some(
        Explained::failed(
            Cause::ServerErrorInfo,
            phase,
            format!(
                "the server reported {} ({}) and ended the connection",
                codes::name(Table::ErrorInfo, e.code),
                codes::meaning(Table::ErrorInfo, e.code)
            ),
        )
        .evidence([format!(
            "{:.1} ms: server Set Error Info {}",
            e.at_ms,
            codes::Display(Table::ErrorInfo, e.code)
        )])
        .evidence(f.ending_evidence()),
    )
}

/// [2.2.1.12.1.3] The server sent a Licensing Error Message other than STATUS_VALID_CLIENT.
pub fn license_error(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let e = f.license_error?;
    let abort = if e.transition == ST_TOTAL_ABORT {
        ", and aborted licensing"
    } else {
        ""
    };
    Some(
        Explained::failed(
            Cause::LicenseError,
            phase,
            format!(
                "licensing failed: the server sent {} ({}){abort}",
                codes::name(Table::LicenseError, e.code),
                codes::meaning(Table::LicenseError, e.code)
            ),
        )
        .evidence([format!(
            "{:.1} ms: server Licensing Error Message {}, {}",
            e.at_ms,
            codes::Display(Table::LicenseError, e.code),
            codes::name(Table::LicenseTransition, e.transition)
        )])
        .evidence(f.close_evidence()),
    )
}

/// [2.2.13.1] The server redirected the client elsewhere.
pub fn redirected(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let r = f.redirection.as_ref()?;
    Some(
        Explained::failed(
            Cause::Redirected,
            phase,
            format!(
                "the server redirected the client to {}; the connection there is not in this trace",
                r.to
            ),
        )
        .evidence([format!("{:.1} ms: server redirection to {}", r.at_ms, r.to)])
        .evidence(
            r.load_balance_info
                .as_ref()
                .map(|lb| format!("the next connection's routing token: {lb}")),
        )
        .hint(["a connection broker sends the client on to the session host: the probe follows the redirection unless --no-follow; a capture may hold the next connection as another session".to_owned()]),
    )
}

/// [1.3.1.3] The server sent Deactivate All ([2.2.3.1]) and no Demand Active followed.
pub fn deactivated(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let d = f.deactivation.filter(|d| !d.reactivated)?;
    let then = f
        .close_words()
        .map(|c| format!("; then {c}"))
        .unwrap_or_default();
    Some(
        Explained::failed(
            Cause::Deactivated,
            phase,
            format!(
                "the server deactivated the session (Deactivate All) and never reactivated it{then}"
            ),
        )
        .evidence([format!("{:.1} ms: server Deactivate All", d.at_ms)])
        .evidence(f.close_evidence()),
    )
}

/// What xfreerdp reports for a Disconnect Provider Ultimatum without error info, by [T.125] reason: it makes an
/// errorInfo of it that was never on the wire.
static ULTIMATUM_AS_XFREERDP_SHOWS: &[(u8, u32)] = &[
    (RN_PROVIDER_INITIATED, ERRINFO_RPC_INITIATED_DISCONNECT),
    (RN_USER_REQUESTED, ERRINFO_LOGOFF_BY_USER),
];

/// [2.2.2.3] The server ended the connection with a Disconnect Provider Ultimatum and no error info
/// ([1.3.1.4.2]). One in clear during the TLS handshake is [`super::handshake::cleartext_ultimatum`]'s, earlier
/// in the table: the hint on how xfreerdp shows it holds once TLS is up or past.
pub fn ultimatum(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let u = f.ultimatum?;
    let hint = ULTIMATUM_AS_XFREERDP_SHOWS
        .iter()
        .find(|(r, _)| *r == u.reason)
        .map(|(_, error_info)| format!(
            "no Set Error Info was sent: xfreerdp reports this Disconnect Provider Ultimatum as {}, which was not on the wire",
            codes::name(Table::ErrorInfo, *error_info)
        ));
    Some(
        Explained::failed(
            Cause::DisconnectedByServer,
            phase,
            format!(
                "the server disconnected in the {phase} phase (Disconnect Provider Ultimatum, {}) without sending error info",
                codes::name(Table::DpuReason, u32::from(u.reason))
            ),
        )
        .evidence(f.ending_evidence())
        .hint(hint),
    )
}
