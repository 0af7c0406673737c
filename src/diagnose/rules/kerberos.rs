//! Rules on Kerberos: what the KDC or the server answered, a KDC nobody could reach, and Negotiate's
//! fallback to NTLM, whether the server then took NTLM or refused it.

use super::handshake;
use super::reports::CHECK_CREDENTIALS;
use crate::codes::kerberos::{KRB_AP_ERR_SKEW, rdp_hint};
use crate::codes::{self, Table};
use crate::diagnose::Explained;
use crate::diagnose::findings::{Findings, KrbFailure, KrbFrom};
use crate::kerberos::message::{error_name, offset_words};
use crate::trace::{PhaseName, Side};
use crate::verdict::Cause;

/// When NTLM is the fallback.
const NTLM_FALLBACK: &str = "Negotiate used NTLM instead: a domain that restricts NTLM (Protected Users, \"Restrict NTLM\" policies) refuses this logon, so fix Kerberos first";

/// The KRB-ERROR as a line of evidence.
pub(super) fn error_evidence(e: &KrbFailure) -> String {
    let who = match e.from {
        KrbFrom::Kdc => "KDC",
        KrbFrom::Server => "server",
    };
    format!(
        "{:.1} ms: {who} KRB-ERROR {} for {}",
        e.at_ms,
        error_name(e.error.code),
        e.error.server
    )
}

/// What the error says beyond its code: the NTSTATUS a Windows KDC adds, the clock offset of a skew.
fn error_details(e: &KrbFailure) -> String {
    let mut out = String::new();
    if let Some(status) = e.error.ntstatus {
        out.push_str(&format!(
            "; its extended error is {} ({})",
            codes::name(Table::NtStatus, status),
            codes::meaning(Table::NtStatus, status)
        ));
    }
    if e.error.code == KRB_AP_ERR_SKEW
        && let Some(offset) = e.error.clock_offset_s
    {
        out.push_str(&format!(
            "; the {} clock is {} of the client's",
            match e.from {
                KrbFrom::Kdc => "KDC's",
                KrbFrom::Server => "server's",
            },
            offset_words(offset)
        ));
    }
    out
}

/// The hint for a Kerberos error code, if rdptrace has one.
pub(super) fn code_hint(e: &KrbFailure) -> Option<String> {
    rdp_hint(e.error.code).map(str::to_owned)
}

/// Connected, with NTLM: Negotiate fell back after Kerberos failed. Never silent: the verdict says so.
pub fn connected_after_fallback(f: &Findings) -> Option<Explained> {
    if !f.kerberos.fell_back() {
        return None;
    }
    let connected = handshake::connected(f)?;
    let why = f.kerberos.failure_words()?;
    let hint = f.kerberos.error.and_then(|e| code_hint(&e));
    Some(
        Explained::new(
            Cause::Connected,
            None,
            format!(
                "{}; authenticated with NTLM after Kerberos failed ({why})",
                connected.detail
            ),
        )
        .evidence(connected.evidence)
        .evidence(f.kerberos.error.map(|e| error_evidence(&e)))
        .evidence(
            f.kerberos
                .fallback
                .map(|(at, reason)| format!("{at:.1} ms: Negotiate fell back to NTLM: {reason}")),
        )
        .hint(hint)
        .hint([NTLM_FALLBACK.to_owned()])
        .hint(connected.hints),
    )
}

/// Kerberos failed, the client went on with NTLM, and the server refused NTLM: the Kerberos failure is the
/// first thing to fix.
pub fn fallback_refused(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    if !matches!(phase, PhaseName::Credssp | PhaseName::EarlyUserAuth) || !f.kerberos.fell_back() {
        return None;
    }
    let why = f.kerberos.failure_words()?;
    let (cause, refusal, evidence) = ntlm_refusal(f)?;
    Some(
        Explained::failed(
            cause,
            phase,
            format!("Kerberos failed ({why}); the client then authenticated with NTLM, {refusal}"),
        )
        .evidence(f.kerberos.error.map(|e| error_evidence(&e)))
        .evidence(
            f.kerberos
                .fallback
                .map(|(at, reason)| format!("{at:.1} ms: Negotiate fell back to NTLM: {reason}")),
        )
        .evidence(evidence)
        .hint(f.kerberos.error.and_then(|e| code_hint(&e)))
        .hint([
            "a server that refuses NTLM accepts only Kerberos (a domain that blocks NTLM): make Kerberos work; --auth kerberos tests it alone".to_owned(),
            CHECK_CREDENTIALS.to_owned(),
        ]),
    )
}

/// How the server refused the client's NTLM: its TSRequest errorCode, or its close; the cause, the words
/// ("which the server refused ...") and the line of evidence.
pub(super) fn ntlm_refusal(f: &Findings) -> Option<(Cause, String, Option<String>)> {
    Some(match (f.credssp_error, f.close) {
        (Some(e), _) => (
            Cause::CredsspError,
            format!(
                "which the server refused with {} ({})",
                codes::name(Table::NtStatus, e.status),
                codes::meaning(Table::NtStatus, e.status)
            ),
            Some(format!(
                "{:.1} ms: server TSRequest errorCode {}",
                e.at_ms,
                codes::Display(Table::NtStatus, e.status)
            )),
        ),
        (None, Some(close)) if close.by == Side::Server => (
            Cause::CredsspRejected,
            "which the server refused by ending the connection".to_owned(),
            f.close_evidence(),
        ),
        _ => return None,
    })
}

/// [RFC 4120] 5.9.1 A KRB-ERROR from the KDC or the server ended the logon.
pub fn kerberos_error(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let e = f.kerberos.error?;
    if f.kerberos.fell_back() {
        return None;
    }
    let meaning = codes::meaning(Table::KerberosError, e.error.code);
    let detail = match e.from {
        KrbFrom::Kdc => format!(
            "Kerberos failed at the KDC: it answered {} ({meaning}) for {}{}",
            error_name(e.error.code),
            e.error.server,
            error_details(&e)
        ),
        KrbFrom::Server => format!(
            "the server refused the client's Kerberos ticket for {}: it answered {} ({meaning}){}",
            e.error.server,
            error_name(e.error.code),
            error_details(&e)
        ),
    };
    Some(
        Explained::failed(Cause::KerberosError, phase, detail)
            .evidence([error_evidence(&e)])
            .evidence(
                f.kerberos
                    .kdc_failure
                    .map(|k| format!("{:.1} ms: KDC {}: {}", k.at_ms, k.kdc, k.error)),
            )
            .evidence(f.ending_evidence())
            .hint(code_hint(&e)),
    )
}

/// No KDC could be found or reached, and nothing took Kerberos's place.
pub fn kdc_unreachable(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    if f.kerberos.fell_back() || f.kerberos.error.is_some() {
        return None;
    }
    let hint = "name the KDC with --kdc tcp://dc:88 (or an MS-KKDCP KDC proxy, https://host/KdcProxy, where port 88 is not reachable), add the realm's kdc to krb5.conf, or check the DNS SRV records _kerberos._tcp.REALM".to_owned();
    if let Some(k) = f.kerberos.kdc_failure {
        return Some(
            Explained::failed(
                Cause::KdcUnreachable,
                phase,
                format!(
                    "Kerberos failed: the KDC {} could not be used ({}); without it there is no ticket for the server, and NTLM was not allowed",
                    k.kdc, k.error
                ),
            )
            .evidence([format!("{:.1} ms: KDC {}: {}", k.at_ms, k.kdc, k.error)])
            .hint([hint]),
        );
    }
    let n = f.kerberos.kdc_not_found?;
    Some(
        Explained::failed(
            Cause::KdcUnreachable,
            phase,
            format!(
                "Kerberos failed: no KDC was found for {} (looked at {}), and NTLM was not allowed",
                n.realm,
                n.tried.join(", ")
            ),
        )
        .evidence([format!("{:.1} ms: no KDC found for {}", n.at_ms, n.realm)])
        .hint([hint]),
    )
}

/// [RFC 4178] 4.2.2 The server rejected the Kerberos offer in SPNEGO, without a KRB-ERROR.
pub fn kerberos_rejected(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let (at, _) = f.kerberos.spnego_reject?;
    f.kerberos.kerberos_at?;
    Some(
        Explained::failed(
            Cause::CredsspRejected,
            phase,
            "the server rejected Kerberos in SPNEGO (negState reject) without a Kerberos error: it accepts no Kerberos for this logon (no service key for the name the client asked for, or Kerberos turned off)",
        )
        .evidence([format!("{at:.1} ms: server SPNEGO negTokenResp reject")])
        .evidence(f.ending_evidence())
        .hint(["check that the server holds the key of TERMSRV/<the name the client connects to> (its keytab, or its computer account); --auth ntlm tests NTLM alone".to_owned()]),
    )
}

/// The client sent its AP-REQ and the server answered neither an AP-REP nor a KRB-ERROR: it did not accept
/// the ticket, and said so in no way a client can read (FreeRDP's server, whose keytab has no key of the
/// ticket's version, answers with a token that is not one and closes).
pub fn ticket_not_accepted(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    if phase != PhaseName::Credssp || f.kerberos.ap_rep || f.kerberos.error.is_some() {
        return None;
    }
    let (sent, ticket) = f.kerberos.ap_req?;
    let kvno = ticket
        .kvno
        .map(|k| format!(" under key version {k}"))
        .unwrap_or_default();
    let answer = match f.kerberos.odd_answer {
        Some((_, len)) => {
            format!("answered with a {len}-byte token that is neither SPNEGO nor Kerberos")
        }
        None if f.close.is_some_and(|c| c.by == Side::Server) => "ended the connection".to_owned(),
        None => return None,
    };
    Some(
        Explained::failed(
            Cause::CredsspRejected,
            phase,
            format!(
                "the server did not accept the Kerberos ticket for {}{kvno}: it {answer}, with no Kerberos error",
                ticket.server
            ),
        )
        .evidence([format!(
            "{sent:.1} ms: client AP-REQ with a ticket for {}{kvno}",
            ticket.server
        )])
        .evidence(
            f.kerberos
                .odd_answer
                .map(|(at, len)| format!("{at:.1} ms: server TSRequest with a {len}-byte token")),
        )
        .evidence(f.ending_evidence())
        .hint([format!(
            "a server whose service key is not the KDC's key for {} (a stale keytab, a reset computer account, a duplicate SPN) cannot decrypt the ticket: compare the key version the KDC used{} with the server's (klist -k on its keytab); Windows servers answer this with KRB_AP_ERR_MODIFIED",
            ticket.server,
            ticket.kvno.map(|k| format!(" ({k})")).unwrap_or_default()
        )]),
    )
}
