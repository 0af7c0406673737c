//! Rules on what the encrypted records show ([`crate::infer`]): PDUs named from the sizes, directions and
//! order of records nobody decrypted. The codes the server sent stay inside the encryption; each verdict
//! says so, and what would show them.

use super::reports::CHECK_CREDENTIALS;
use crate::diagnose::Explained;
use crate::diagnose::findings::Findings;
use crate::infer::{Outcome, ServerEnd};
use crate::trace::{CloseKind, PhaseName, Side};
use crate::verdict::Cause;

/// What would turn an inference into a reading of the PDUs themselves.
pub const SETTLE: &str = "the records are encrypted and no secrets were given: a key log would show the PDUs themselves (SSLKEYLOGFILE of a client or server that writes one: rdptrace probe --keylog, FreeRDP's /tls-secrets-file), or, for a session with RSA key exchange, the server's private key (--rsa-key)";

/// [MS-CSSP] 2.2.1 A server record the size of a TSRequest with only an errorCode, then the end.
pub fn inferred_credssp_error(f: &Findings) -> Option<Explained> {
    let i = f.inferred.as_ref()?;
    let e = i.credssp_error?;
    if !i.all_end(|end| end == ServerEnd::CredsspError) {
        return None;
    }
    let after = f
        .last_client_pdu
        .filter(|c| c.pdu.at_ms <= e.at_ms)
        .map(|c| format!(" the client's {}", c.pdu.name))
        .unwrap_or_else(|| " the client".to_owned());
    Some(
        Explained::failed(
            Cause::CredsspError,
            PhaseName::Credssp,
            format!(
                "network level authentication failed: the server answered{after} with a TSRequest of {}, the size of one that carries only an errorCode ([MS-CSSP] 2.2.1), and ended the connection; the code itself (STATUS_LOGON_FAILURE, STATUS_ACCOUNT_RESTRICTION, ...) is inside the encryption",
                e.plaintext
            ),
        )
        .evidence([format!(
            "{:.1} ms: server record of {}, the size of a TSRequest with an errorCode (inferred)",
            e.at_ms, e.plaintext
        )])
        .evidence(f.close_evidence())
        .hint([CHECK_CREDENTIALS.to_owned(), SETTLE.to_owned()]),
    )
}

/// [2.2.10.2] The Early User Authorization Result, then the server's close before the client went on.
pub fn inferred_early_auth_denied(f: &Findings) -> Option<Explained> {
    let i = f.inferred.as_ref()?;
    let e = i.early_auth?;
    if i.phases != [PhaseName::EarlyUserAuth] {
        return None;
    }
    let close = f.close.filter(|c| c.by == Side::Server)?;
    Some(
        Explained::failed(
            Cause::EarlyAuthDenied,
            PhaseName::EarlyUserAuth,
            format!(
                "the server sent its Early User Authorization Result ({}) and {} before the client went on to MCS: a server does that when the result is ACCESS_DENIED ([2.2.10.2]: the user authenticated but may not log on remotely); the value itself is inside the encryption",
                e.plaintext,
                match close.how {
                    CloseKind::Fin => "closed the connection",
                    CloseKind::Rst => "reset the connection",
                }
            ),
        )
        .evidence([format!(
            "{:.1} ms: server record of {}, the size of an Early User Authorization Result (inferred)",
            e.at_ms, e.plaintext
        )])
        .evidence(f.close_evidence())
        .hint([SETTLE.to_owned()]),
    )
}

/// [2.2.1.12.1.3] A record the size of a Licensing Error Message with an empty blob, then the server's close:
/// STATUS_VALID_CLIENT and an error that ends the connection (ERR_NO_LICENSE_SERVER, ERR_INVALID_CLIENT with
/// ST_TOTAL_ABORT) are as long, so the verdict names both.
pub fn inferred_license_then_close(f: &Findings) -> Option<Explained> {
    let i = f.inferred.as_ref()?;
    let l = i.license_final?;
    if !(i.phases.contains(&PhaseName::Licensing) && i.phases.contains(&PhaseName::Capabilities)) {
        return None;
    }
    let close = f.close.filter(|c| c.by == Side::Server)?;
    let cause = match close.how {
        CloseKind::Fin => Cause::ClosedByServer,
        CloseKind::Rst => Cause::ResetByServer,
    };
    Some(
        Explained::failed(
            cause,
            PhaseName::Licensing,
            format!(
                "the server sent a record the size of a Licensing Error Message ({}) and then {}: either a licensing error that ends the connection (ERR_NO_LICENSE_SERVER, or ERR_INVALID_CLIENT with ST_TOTAL_ABORT), or STATUS_VALID_CLIENT and a close before the Demand Active, in the capabilities phase; the message's code is inside the encryption",
                l.plaintext,
                f.close_words().unwrap_or_default().trim_start_matches("the server ")
            ),
        )
        .evidence([format!(
            "{:.1} ms: server record of {}, the size of a Licensing Error Message (inferred)",
            l.at_ms, l.plaintext
        )])
        .evidence(f.close_evidence())
        .hint([
            "a licensing error names the RD Licensing server or the client's license: check the server's licensing mode and its license server".to_owned(),
            SETTLE.to_owned(),
        ])
        .either([
            (Cause::LicenseError, PhaseName::Licensing),
            (cause, PhaseName::Capabilities),
        ]),
    )
}

/// [2.2.5.1.1] Records the size of a Set Error Info (and of an Ultimatum), then the end: the server reported
/// an error whose code is encrypted.
pub fn inferred_server_error_info(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let i = f.inferred.as_ref()?;
    let e = i.set_error_info?;
    if !i.all_end(|end| matches!(end, ServerEnd::SetErrorInfo { .. })) {
        return None;
    }
    let ultimatum = i.ultimatum.filter(|u| u.at_ms >= e.at_ms);
    let then = ultimatum
        .map(|u| {
            format!(
                ", then one the size of a Disconnect Provider Ultimatum ({})",
                u.plaintext
            )
        })
        .unwrap_or_default();
    let end = f
        .close_words()
        .map(|w| format!(", then {w}"))
        .unwrap_or_default();
    Some(
        Explained::failed(
            Cause::ServerErrorInfo,
            phase,
            format!(
                "the server reported an error and ended the connection: a record the size of a Set Error Info PDU ({}){then}{end}; the errorInfo code is inside the encryption",
                e.plaintext
            ),
        )
        .evidence([format!(
            "{:.1} ms: server record of {}, the size of a Set Error Info PDU (inferred)",
            e.at_ms, e.plaintext
        )])
        .evidence(ultimatum.map(|u| {
            format!(
                "{:.1} ms: server record of {}, the size of a Disconnect Provider Ultimatum (inferred)",
                u.at_ms, u.plaintext
            )
        }))
        .evidence(f.close_evidence())
        .hint([SETTLE.to_owned()]),
    )
}

/// A last server record the size of a Set Error Info in some readings and not in others: the verdict names
/// both rather than pick one.
pub fn inferred_report_unsure(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let i = f.inferred.as_ref()?;
    if !i.some_end(|end| matches!(end, ServerEnd::SetErrorInfo { .. })) {
        return None;
    }
    let close = f.close.filter(|c| c.by == Side::Server)?;
    let cause = match close.how {
        CloseKind::Fin => Cause::ClosedByServer,
        CloseKind::Rst => Cause::ResetByServer,
    };
    let size = i
        .set_error_info
        .map(|e| format!(" ({})", e.plaintext))
        .unwrap_or_default();
    Some(
        Explained::failed(
            cause,
            phase,
            format!(
                "{} in the {phase} phase, and the server's last record before it has the size of a Set Error Info PDU{size}: either the server reported an error (its code is inside the encryption) or it sent other data of that size and closed without a report",
                f.close_words().unwrap_or_default()
            ),
        )
        .evidence(f.close_evidence())
        .hint([SETTLE.to_owned()])
        .either([(Cause::ServerErrorInfo, phase), (cause, phase)]),
    )
}

/// [2.2.2.3] A record the size of a Disconnect Provider Ultimatum and none the size of a Set Error Info before
/// it, then the end.
pub fn inferred_ultimatum(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let i = f.inferred.as_ref()?;
    let u = i.ultimatum?;
    if !i.all_end(|end| end == ServerEnd::Ultimatum) {
        return None;
    }
    Some(
        Explained::failed(
            Cause::DisconnectedByServer,
            phase,
            format!(
                "the server disconnected in the {phase} phase: a record the size of a Disconnect Provider Ultimatum ({}) with none the size of a Set Error Info before it{}",
                u.plaintext,
                f.close_words()
                    .map(|w| format!(", then {w}"))
                    .unwrap_or_default()
            ),
        )
        .evidence([format!(
            "{:.1} ms: server record of {}, the size of a Disconnect Provider Ultimatum (inferred)",
            u.at_ms, u.plaintext
        )])
        .evidence(f.close_evidence())
        .hint([SETTLE.to_owned()]),
    )
}

/// Encrypted records that fit no connection sequence rdptrace knows: how far the connection got is not
/// known, and the verdict says only what the trace shows.
pub fn inferred_unexplained(f: &Findings) -> Option<Explained> {
    let i = f.inferred.as_ref()?;
    let Outcome::Unexplained {
        record,
        from,
        plaintext,
        at_ms,
    } = &i.inference.outcome
    else {
        return None;
    };
    let phase = f.failed.unwrap_or(f.current);
    let cause = f.close_cause(if f.capture_ended {
        Cause::CaptureEnded
    } else {
        Cause::TimedOut
    });
    let ended = f
        .close_words()
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    Some(
        Explained::failed(
            cause,
            phase,
            format!(
                "the connection got past the TLS handshake into encrypted records that fit no RDP connection sequence rdptrace knows (record {record}, from the {}, of {plaintext}), so how far it got is not known{ended}",
                from.as_str()
            ),
        )
        .evidence([format!(
            "{at_ms:.1} ms: {} record of {plaintext} that no reading of the connection sequence explains",
            from.as_str()
        )])
        .evidence(f.close_evidence())
        .hint([
            SETTLE.to_owned(),
            "a record that no reading explains can also be TLS 1.3 padding, a protocol other than RDP on the port, or a capture that starts after the connection did".to_owned(),
        ]),
    )
}
