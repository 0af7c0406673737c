//! What mstsc would have shown for a verdict: the disconnect reason (discReason) and the extended
//! disconnect reason, with how sure the translation is.
//!
//! The rules are data: one row per cause. The extended code is either the errorInfo the server sent
//! ([MS-RDPBCGR] 2.2.5.1.1; the ExtendedDisconnectReasonCode values are the errorInfo values) or a fixed
//! value.

use crate::codes::{self, Table};
use crate::trace::{PhaseName, Trace};
use crate::verdict::{Basis, Cause, Code, Mstsc};

/// discReason 0x904: the socket closed.
pub const DISC_SOCKET_CLOSED: u32 = 0x904;
/// ExtendedDisconnectReasonCode 0x7: exDiscReasonServerDeniedConnection.
pub const EXT_SERVER_DENIED_CONNECTION: u32 = 0x7;

/// Where the extended code comes from.
#[derive(Debug, Clone, Copy)]
enum Extended {
    /// The errorInfo of the server's Set Error Info PDU.
    ErrorInfo,
    Fixed(u32),
}

/// One translation rule.
#[derive(Debug, Clone, Copy)]
struct Rule {
    cause: Cause,
    /// Only before the active phase (the connection was still pending), or only in it.
    pending: Option<bool>,
    disc_reason: u32,
    extended: Extended,
    basis: Basis,
    why: &'static str,
}

static RULES: &[Rule] = &[
    Rule {
        cause: Cause::ServerErrorInfo,
        pending: None,
        disc_reason: DISC_SOCKET_CLOSED,
        extended: Extended::ErrorInfo,
        basis: Basis::Specified,
        why: "the server sent Set Error Info and closed; the client reports the errorInfo value as the extended code ([MS-RDPBCGR] 2.2.5.1.1) and the close as discReason 0x904",
    },
    Rule {
        cause: Cause::ClosedByServer,
        pending: Some(true),
        disc_reason: DISC_SOCKET_CLOSED,
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: "as reported of the Windows client: when the socket closes while the connection is still pending and no error info arrived, it fills in ERRINFO_SERVER_DENIED_CONNECTION itself",
    },
    Rule {
        cause: Cause::ResetByServer,
        pending: Some(true),
        disc_reason: DISC_SOCKET_CLOSED,
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: "as reported of the Windows client: when the socket closes while the connection is still pending and no error info arrived, it fills in ERRINFO_SERVER_DENIED_CONNECTION itself",
    },
    Rule {
        cause: Cause::CredsspRejected,
        pending: Some(true),
        disc_reason: DISC_SOCKET_CLOSED,
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: "as reported of the Windows client: a close during the connection with no error info becomes ERRINFO_SERVER_DENIED_CONNECTION",
    },
    Rule {
        cause: Cause::DisconnectedByServer,
        pending: Some(true),
        disc_reason: DISC_SOCKET_CLOSED,
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: "as reported of the Windows client: a disconnect during the connection with no error info becomes ERRINFO_SERVER_DENIED_CONNECTION",
    },
    Rule {
        cause: Cause::Deactivated,
        pending: Some(true),
        disc_reason: DISC_SOCKET_CLOSED,
        extended: Extended::Fixed(EXT_SERVER_DENIED_CONNECTION),
        basis: Basis::Reported,
        why: "as reported of the Windows client: a close during the connection with no error info becomes ERRINFO_SERVER_DENIED_CONNECTION",
    },
    Rule {
        cause: Cause::ClosedByServer,
        pending: Some(false),
        disc_reason: DISC_SOCKET_CLOSED,
        extended: Extended::Fixed(0),
        basis: Basis::Inferred,
        why: "the socket closed after the session was up, with no error info",
    },
    Rule {
        cause: Cause::ResetByServer,
        pending: Some(false),
        disc_reason: DISC_SOCKET_CLOSED,
        extended: Extended::Fixed(0),
        basis: Basis::Inferred,
        why: "the socket closed after the session was up, with no error info",
    },
];

/// The mstsc pair for a verdict, when there is a rule for it.
pub fn translate(
    trace: &Trace,
    cause: Cause,
    phase: Option<PhaseName>,
    error_info: Option<u32>,
) -> Option<Mstsc> {
    let _ = trace;
    let pending = phase.is_some_and(|p| p < PhaseName::Active);
    let rule = RULES
        .iter()
        .find(|r| r.cause == cause && r.pending.is_none_or(|p| p == pending))?;
    let extended = match rule.extended {
        Extended::ErrorInfo => error_info?,
        Extended::Fixed(code) => code,
    };
    Some(Mstsc {
        disc_reason: Code {
            code: rule.disc_reason,
            name: codes::meaning(Table::DiscReason, rule.disc_reason).to_owned(),
        },
        extended: Code {
            code: extended,
            name: codes::meaning(Table::ExtendedReason, extended).to_owned(),
        },
        basis: rule.basis,
        why: rule.why.to_owned(),
    })
}

/// "Error code 0x904 (socket closed), Extended error code 0x7 (server denied the connection)".
pub fn mstsc_line(m: &Mstsc) -> String {
    format!(
        "Error code 0x{:x} ({}), Extended error code 0x{:x} ({})",
        m.disc_reason.code, m.disc_reason.name, m.extended.code, m.extended.name
    )
}
