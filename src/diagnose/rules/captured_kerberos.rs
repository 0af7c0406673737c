//! Rules on the client's Kerberos exchange as a capture shows it (port 88 beside the RDP connection, linked
//! by the client's address and time): what the client asked the KDC for, what the KDC answered, and what
//! the client did next in CredSSP, as far as the capture lets it be read.

use super::kerberos::{code_hint, error_evidence, ntlm_refusal};
use super::reports::CHECK_CREDENTIALS;
use crate::codes::{self, Table};
use crate::diagnose::Explained;
use crate::diagnose::findings::{Findings, KdcFailure, KrbFailure, KrbFrom};
use crate::kerberos::message::error_name;
use crate::trace::{KdcError, PhaseName};
use crate::verdict::Cause;

/// The KDC's error in a capture, when it counts for this session: a KRB-ERROR the KDC sent the session's
/// client, other than the usual request for pre-authentication.
fn captured_error<'t>(f: &Findings<'t>) -> Option<KrbFailure<'t>> {
    if !f.kerberos.from_capture {
        return None;
    }
    f.kerberos.error.filter(|e| e.from == KrbFrom::Kdc)
}

/// What the client asked for, in words: its TGT (an AS-REQ) or a service ticket (a TGS-REQ).
fn asked(f: &Findings, e: &KrbFailure) -> String {
    let server = e.error.server.as_str();
    let is_tgt = server
        .split('/')
        .next()
        .is_some_and(|c| c.eq_ignore_ascii_case("krbtgt"));
    if is_tgt {
        match e.error.client.as_deref().or(f.kerberos.as_client) {
            Some(client) => format!("its ticket-granting ticket as {client}"),
            None => "its ticket-granting ticket".to_owned(),
        }
    } else {
        format!("a ticket for {server}")
    }
}

/// "got 7 KDC_ERR_S_PRINCIPAL_UNKNOWN (the meaning)".
fn got(e: &KrbFailure) -> String {
    format!(
        "got {} ({})",
        error_name(e.error.code),
        codes::meaning(Table::KerberosError, e.error.code)
    )
}

/// What to do when Kerberos failed and the server refused the NTLM that followed.
const FIX_KERBEROS_FIRST: [&str; 2] = [
    "Kerberos failing is the first thing to fix: a server (or domain) that refuses NTLM accepts only Kerberos",
    CHECK_CREDENTIALS,
];

/// The evidence after the KDC's: the client's NTLM in CredSSP, then the server's refusal.
fn ntlm_then(f: &Findings, refusal: Option<String>) -> impl Iterator<Item = String> {
    let ntlm = f
        .kerberos
        .ntlm_at
        .map(|at| format!("{at:.1} ms: client NTLM in CredSSP"));
    [ntlm, refusal].into_iter().flatten()
}

/// When the sizes of the encrypted records show the server answering with a TSRequest that carries only an
/// errorCode (a replay without secrets).
fn inferred_error_at(f: &Findings) -> Option<crate::trace::Millis> {
    f.inferred
        .as_ref()
        .and_then(|i| i.credssp_error)
        .map(|p| p.at_ms)
}

fn inferred_error_evidence(at: crate::trace::Millis) -> String {
    format!("{at:.1} ms: server TSRequest with only an errorCode (inferred from its size)")
}

/// [MS-SPNG] 3.1.5.1 The capture shows the KDC refusing the client, then NTLM in CredSSP (decrypted), then
/// the server refusing NTLM.
pub fn captured_kerberos_then_ntlm_refused(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    if !matches!(phase, PhaseName::Credssp | PhaseName::EarlyUserAuth) || !f.kerberos.fell_back() {
        return None;
    }
    let e = captured_error(f)?;
    let (cause, refusal, refusal_evidence) = ntlm_refusal(f)?;
    Some(
        Explained::failed(
            cause,
            phase,
            format!(
                "the client asked the KDC for {} and {}, then authenticated with NTLM, {refusal}",
                asked(f, &e),
                got(&e)
            ),
        )
        .evidence([error_evidence(&e)])
        .evidence(ntlm_then(f, refusal_evidence))
        .hint(code_hint(&e))
        .hint(FIX_KERBEROS_FIRST.map(str::to_owned)),
    )
}

/// [RFC 4120] 7.5.9 The capture shows the KDC refusing the client, and the CredSSP exchange that followed is
/// encrypted: the Kerberos error is what can be read, and the capture cannot show whether the client then
/// tried NTLM.
pub fn captured_kerberos_error(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    if !matches!(phase, PhaseName::Credssp | PhaseName::EarlyUserAuth)
        || f.inferred.is_none()
        || f.kerberos.ntlm_at.is_some()
        || f.kerberos.kerberos_at.is_some()
    {
        return None;
    }
    let e = captured_error(f)?;
    let inferred = inferred_error_at(f);
    let answer = match inferred {
        Some(_) => {
            "; the server then answered with a TSRequest the size of one that carries only an errorCode (read from the sizes of the encrypted records)"
        }
        None => "",
    };
    Some(
        Explained::failed(
            Cause::KerberosError,
            phase,
            format!(
                "the client asked the KDC for {} and {}, so it could not use Kerberos with this server{answer}; the CredSSP exchange is encrypted in this capture, so whether the client then tried NTLM cannot be seen",
                asked(f, &e),
                got(&e)
            ),
        )
        .evidence([error_evidence(&e)])
        .evidence(inferred.map(inferred_error_evidence))
        .evidence(f.ending_evidence())
        .hint(code_hint(&e))
        .hint(["the TLS secrets (--keylog, or --rsa-key for a session with RSA key exchange) show what the client sent after the KDC's error and how the server answered".to_owned()]),
    )
}

/// What to check when a capture shows the client's KDC silent.
const REACH_THE_KDC: &str = "check that the client reaches its KDC on port 88, UDP and TCP: a firewall between them, or a KDC address (in DNS or krb5.conf) at which no KDC answers; a capture taken on the client itself shows whether answers come back";

/// The KDC a capture shows silent for this session ([`KdcError::Unanswered`]): the failure, the number of
/// requests and how long the capture shows after the last, in milliseconds.
fn silent_kdc<'t>(f: &Findings<'t>) -> Option<(KdcFailure<'t>, u32, u64)> {
    if !f.kerberos.from_capture {
        return None;
    }
    let k = f.kerberos.kdc_failure?;
    match k.error {
        KdcError::Unanswered {
            requests,
            waited_ms,
        } => Some((k, *requests, *waited_ms)),
        _ => None,
    }
}

/// "the client's 3 requests to the KDC at udp://10.0.0.5:88 got no answer in the capture (none in the 5.0 s
/// after the last)".
fn unanswered(k: &KdcFailure, requests: u32, waited_ms: u64) -> String {
    let requests = match requests {
        1 => "request".to_owned(),
        n => format!("{n} requests"),
    };
    format!(
        "the client's {requests} to the KDC at {} got no answer in the capture (none in the {:.1} s after the last)",
        k.kdc,
        waited_ms as f64 / 1000.0
    )
}

/// "12.5 ms: KDC udp://10.0.0.5:88: no answer to 3 request(s) ...".
fn silent_evidence(k: &KdcFailure) -> String {
    format!("{:.1} ms: KDC {}: {}", k.at_ms, k.kdc, k.error)
}

/// [RFC 4120] 7.2.1 The capture shows the client's requests to the KDC unanswered, then NTLM in CredSSP
/// (decrypted), then the server refusing NTLM.
pub fn captured_kdc_silent_then_ntlm_refused(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    if !matches!(phase, PhaseName::Credssp | PhaseName::EarlyUserAuth) || !f.kerberos.fell_back() {
        return None;
    }
    let (k, requests, waited_ms) = silent_kdc(f)?;
    let (cause, refusal, refusal_evidence) = ntlm_refusal(f)?;
    Some(
        Explained::failed(
            cause,
            phase,
            format!(
                "{}, then it authenticated with NTLM, {refusal}",
                unanswered(&k, requests, waited_ms)
            ),
        )
        .evidence([silent_evidence(&k)])
        .evidence(ntlm_then(f, refusal_evidence))
        .hint([REACH_THE_KDC.to_owned()])
        .hint(FIX_KERBEROS_FIRST.map(str::to_owned)),
    )
}

/// [RFC 4120] 7.2.1 The capture shows the client's requests to the KDC unanswered, and no NTLM or Kerberos
/// token of the client in CredSSP after them (or a CredSSP exchange the capture cannot open): the client got
/// no ticket from that KDC.
pub fn captured_kdc_silent(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    if !matches!(phase, PhaseName::Credssp | PhaseName::EarlyUserAuth)
        || f.kerberos.ntlm_at.is_some()
        || f.kerberos.kerberos_at.is_some()
    {
        return None;
    }
    let (k, requests, waited_ms) = silent_kdc(f)?;
    let inferred = inferred_error_at(f);
    let then = match (f.inferred.is_some(), inferred) {
        (true, Some(_)) => {
            "; the CredSSP exchange is encrypted in this capture, so whether the client then tried NTLM cannot be seen; the server answered with a TSRequest the size of one that carries only an errorCode"
        }
        (true, None) => {
            "; the CredSSP exchange is encrypted in this capture, so whether the client then tried NTLM cannot be seen"
        }
        (false, _) => "; the client sent no NTLM or Kerberos token in CredSSP",
    };
    Some(
        Explained::failed(
            Cause::KdcUnreachable,
            phase,
            format!(
                "{}: without an answer the client gets no ticket from that KDC{then}",
                unanswered(&k, requests, waited_ms)
            ),
        )
        .evidence([silent_evidence(&k)])
        .evidence(inferred.map(inferred_error_evidence))
        .evidence(f.ending_evidence())
        .hint([REACH_THE_KDC.to_owned()])
        .hint(f.inferred.is_some().then(|| {
            "the TLS secrets (--keylog) show what the client sent in CredSSP after the KDC's silence".to_owned()
        })),
    )
}
