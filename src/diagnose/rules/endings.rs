//! Rules on connections that ended without a report from the server: a PDU that does not decode, a
//! silence, a close; and on traces that end with the connection open.

use super::reports::CHECK_CREDENTIALS;
use super::syn_dropped_hint;
use crate::diagnose::Explained;
use crate::diagnose::findings::{Close, Findings};
use crate::pdu::{AuthToken, PduInfo};
use crate::trace::{CloseKind, PhaseName, Side};
use crate::verdict::Cause;

/// In a capture, a client that closes after waiting this long in silence for the server gave up on a
/// deadline of its own.
const CLIENT_GAVE_UP_AFTER_MS: f64 = 900.0;

/// A PDU from the server did not decode, or one from the client did and nobody closed (a client that
/// closes after its own bad PDU is the close rules' matter).
pub fn protocol_error(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let e = f
        .protocol_error
        .filter(|e| e.from == Side::Server || f.close.is_none())?;
    let (pdu, detail, from) = (e.pdu, e.detail, e.from.as_str());
    let offset = e
        .offset
        .map(|o| format!(" (offset {o})"))
        .unwrap_or_default();
    let at = e
        .offset
        .map(|o| format!(" at offset {o}"))
        .unwrap_or_default();
    Some(
        Explained::failed(
            Cause::ProtocolError,
            phase,
            format!("the {from} sent a {pdu} that does not decode: {detail}{at}"),
        )
        .evidence([format!(
            "{:.1} ms: {from} {pdu} does not decode: {detail}{offset}",
            e.at_ms
        )])
        .evidence(f.close_evidence()),
    )
}

/// A deadline of the probe expired while it waited for the server.
pub fn timed_out(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let t = f.timeout?;
    let within = t.within();
    let last = f.last_server_pdu.map(|last| {
        format!(
            "last PDU from the server: {} ({})",
            last.pdu.name, last.phase
        )
    });
    Some(
        Explained::failed(
            Cause::TimedOut,
            phase,
            format!(
                "the server stopped answering in the {phase} phase: {} did not come within {within}{}",
                t.waiting_for,
                f.incomplete_note()
            ),
        )
        .evidence([format!(
            "{:.1} ms: no answer within {within} while waiting for {}",
            t.at_ms, t.waiting_for
        )])
        .evidence(last)
        .hint(syn_dropped_hint(Cause::TimedOut, phase)),
    )
}

/// The close, by whom, with the last PDU of the other side: " after the client sent TSRequest".
fn after_the_other_side(f: &Findings, close: Close) -> String {
    let last = match close.by {
        Side::Server => f.last_client_pdu,
        Side::Client => f.last_server_pdu,
    };
    last.map(|last| {
        format!(
            " after the {} sent {}",
            close.by.other().as_str(),
            last.pdu.name
        )
    })
    .unwrap_or_default()
}

/// The server closed during CredSSP after the client's NTLM AUTHENTICATE or credentials, without a
/// TSRequest errorCode ([MS-CSSP] 3.1.5): it rejected them, as FreeRDP-based servers do on a wrong
/// password.
pub fn credssp_rejected(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::Credssp)?;
    let close = f.close.filter(|c| c.by == Side::Server)?;
    if !f.credssp_auth_sent {
        return None;
    }
    let after = match f.last_client_pdu.map(|last| &last.pdu.info) {
        Some(PduInfo::TsRequest {
            token: Some(AuthToken::NtlmAuthenticate { .. }),
            ..
        }) => " right after the client's NTLM AUTHENTICATE".to_owned(),
        Some(PduInfo::TsRequest {
            auth_info: true, ..
        }) => " right after the client's credentials (TSRequest authInfo)".to_owned(),
        _ => after_the_other_side(f, close),
    };
    Some(
        Explained::failed(
            Cause::CredsspRejected,
            phase,
            format!(
                "{} during network level authentication{after}, without a TSRequest errorCode: the server rejected the credentials (FreeRDP-based servers close this way on a wrong password)",
                f.close_words().unwrap_or_default()
            ),
        )
        .evidence(f.close_evidence())
        .hint([CHECK_CREDENTIALS.to_owned()]),
    )
}

/// Seen from a capture: the client closed after waiting in silence for the server before the session was
/// up, long enough that it gave up on a deadline of its own.
pub fn client_gave_up(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p < PhaseName::Active)?;
    let close = f.close.filter(|c| c.by == Side::Client)?;
    let last = f.last_non_tls_pdu?.pdu;
    let waited_ms = Some(close.at_ms - last.at_ms).filter(|w| *w >= CLIENT_GAVE_UP_AFTER_MS)?;
    Some(
        Explained::failed(
            Cause::TimedOut,
            phase,
            format!(
                "the server stopped answering in the {phase} phase: after the {}'s {}, the client waited {:.1} s with nothing from the server and gave up ({})",
                last.from.as_str(),
                last.name,
                waited_ms / 1000.0,
                f.close_words().unwrap_or_default()
            ),
        )
        .evidence(f.close_evidence())
        .hint(syn_dropped_hint(Cause::TimedOut, phase)),
    )
}

/// The client closed or reset the connection before the server said anything conclusive.
pub fn closed_by_client(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let close = f.close.filter(|c| c.by == Side::Client)?;
    Some(
        Explained::failed(
            Cause::ClosedByClient,
            phase,
            format!(
                "{} in the {phase} phase{}, before the server said anything conclusive{}",
                f.close_words().unwrap_or_default(),
                after_the_other_side(f, close),
                f.incomplete_note()
            ),
        )
        .evidence(f.close_evidence()),
    )
}

/// The server closed (FIN) or reset (RST) the connection with no error report.
pub fn closed_by_server(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let close = f.close.filter(|c| c.by == Side::Server)?;
    let cause = match close.how {
        CloseKind::Fin => Cause::ClosedByServer,
        CloseKind::Rst => Cause::ResetByServer,
    };
    let tls = if phase == PhaseName::Tls {
        " during the TLS handshake (endpoint security, or a server without a usable certificate)"
    } else {
        ""
    };
    let pending = f.error_info.is_none() && phase < PhaseName::Active;
    let hint = pending.then(|| "mstsc reports a close while the connection is pending as 0x904 with extended 0x7, the same pair as a deliberate denial; this one had no Set Error Info".to_owned());
    Some(
        Explained::failed(
            cause,
            phase,
            format!(
                "{} in the {phase} phase{}{tls}, with no error report{}",
                f.close_words().unwrap_or_default(),
                after_the_other_side(f, close),
                f.incomplete_note()
            ),
        )
        .evidence(f.close_evidence())
        .hint(hint),
    )
}

/// The capture ends before the connection does.
pub fn capture_ended(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    if !f.capture_ended {
        return None;
    }
    Some(Explained::failed(
        Cause::CaptureEnded,
        phase,
        format!(
            "the capture ends in the {phase} phase with the connection still open{}",
            f.incomplete_note()
        ),
    ))
}

/// The trace ends with the connection open, before the active state, and nothing failed.
pub fn trace_ends_open(f: &Findings) -> Option<Explained> {
    if f.failed.is_some() || f.reached_active {
        return None;
    }
    let phase = f.current;
    Some(Explained::new(
        Cause::CaptureEnded,
        Some(phase),
        format!("the trace ends in the {phase} phase with the connection still open"),
    ))
}

/// When no rule speaks: a phase failed and the trace holds nothing that says why.
pub fn unrecorded(f: &Findings) -> Explained {
    let phase = f.failed.unwrap_or(f.current);
    Explained::failed(
        Cause::ProtocolError,
        phase,
        format!("the connection stopped in the {phase} phase for a reason rdptrace did not record"),
    )
}
