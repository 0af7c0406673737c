//! The diagnosis rules: an ordered table, the first rule that speaks gives the verdict.
//!
//! A rule is a small function from the [`Findings`] to an [`Explained`] verdict, or `None` when the findings
//! are not its matter. It carries its detail, its evidence and its hint; its entry in [`RULES`] carries its
//! name, its [`Basis`] and the specification section it reads. Each has a unit test (in `tests/`, a file
//! per file of rules): a minimal trace that it explains, which no rule before it in the table takes.
//!
//! Files by what the rules read: `handshake.rs` (the name, TCP, X.224, TLS, and the connected verdict),
//! `kerberos.rs` (the KDC's and the server's Kerberos answers, Negotiate's fallback to NTLM),
//! `captured_kerberos.rs` (the client's KDC exchange as a capture shows it beside the connection), `reports.rs`
//! (a code or PDU of the server that ends the connection), `endings.rs` (no report: a PDU that does not
//! decode, a silence, a close, a trace that ends open), `gateway.rs` (the RD Gateway out of reach, refusing
//! or ending the tunnel), `redirect.rs` (a broker without load-balance info, a redirection loop, a
//! redirection to a target out of reach).
//!
//! Adding a rule: write its function beside those that read the same things, put it in [`RULES`] where
//! its evidence ranks (more specific evidence first), give it a test, and add to [`Findings`] what it
//! needs that is not there yet.

mod captured_kerberos;
mod endings;
mod gateway;
mod handshake;
mod inferred;
mod kerberos;
mod redirect;
mod reports;

pub use inferred::SETTLE;

use super::Explained;
use super::findings::Findings;
use crate::trace::PhaseName;
use crate::verdict::{Basis, Cause};

/// One diagnosis rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Its name, as tests and documentation call it.
    pub name: &'static str,
    /// What a verdict of this rule rests on: `specified` when the server sent a PDU or code whose meaning a
    /// specification defines, `inferred` when the verdict follows from what the trace shows (a failed
    /// connect, a silence, a close) and the order of the protocol, `reported` when it rests on how
    /// implementations were observed to behave.
    pub basis: Basis,
    /// The specification section the rule reads, or an empty string when none defines what it looks at.
    pub spec: &'static str,
    pub explain: fn(&Findings<'_>) -> Option<Explained>,
}

/// The rules, in priority order: the first that speaks gives the verdict.
///
/// The order, and why:
/// 1. A connection that reached the active state and stayed there: nothing failed (after a fallback from
///    Kerberos to NTLM, which the verdict says).
/// 2. Failures before the server is reached: the RD Gateway's (out of reach, its TLS, an HTTP error, an
///    HRESULT that refuses the tunnel or the channel, an end without an answer), a redirection to a target
///    that cannot be reached, the name, the TCP connect: nothing else can have happened.
/// 3. What the server said, from the earliest phase on: RDP_NEG_FAILURE, the client's own limits, TLS
///    alerts and failures, Kerberos (a capture's KDC error, with what the capture shows after it, first: it
///    names what the client asked for; then a failure that NTLM after it did not repair, a KRB-ERROR, no KDC, a
///    SPNEGO reject: the Kerberos error is more specific than the errorCode or the close that may follow
///    it), the TSRequest errorCode, the Early User Authorization Result, Set Error Info,
///    licensing errors, redirection, Deactivate All, the Disconnect Provider Ultimatum. A code beats a
///    close: a server that reports and then closes is explained by its report. Set Error Info comes before
///    the ultimatum that follows it ([1.3.1.4.3]); a broker's code to a client without load-balance info
///    before Set Error Info in general; redirections without end before a redirection; then a tunnel the
///    gateway ended while the connection ran in it.
///    What the sizes of encrypted records show comes right after the code it stands for (a record the size
///    of a Set Error Info after the Set Error Info read in the clear), with the code left unknown.
/// 4. What the client could not read (a PDU that does not decode), then what a client that requires its
///    protocols refuses in the negotiation; encrypted records that fit no connection sequence, which leave
///    how far the connection got unknown.
/// 5. Silences and closes without a report, the most specific first (a close during CredSSP right after
///    the credentials; a client that gave up waiting; the client's close; the server's).
/// 6. Traces that end before the connection does.
///
/// When no rule speaks, `endings::unrecorded` says so.
pub static RULES: &[Rule] = &[
    Rule {
        name: "connected_after_fallback",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 2.2.1.22, [MS-SPNG] 3.1.5.1",
        explain: kerberos::connected_after_fallback,
    },
    Rule {
        name: "connected",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 2.2.1.22",
        explain: handshake::connected,
    },
    Rule {
        name: "gateway_unreachable",
        basis: Basis::Inferred,
        spec: "[MS-TSGU] 3.3.5.1",
        explain: gateway::gateway_unreachable,
    },
    Rule {
        name: "gateway_tls",
        basis: Basis::Inferred,
        spec: "[MS-TSGU] 3.3.5.1",
        explain: gateway::gateway_tls,
    },
    Rule {
        name: "gateway_http_error",
        basis: Basis::Specified,
        spec: "[MS-TSGU] 3.3.5.1",
        explain: gateway::gateway_http_error,
    },
    Rule {
        name: "gateway_refused",
        basis: Basis::Specified,
        spec: "[MS-TSGU] 2.2.6, 2.2.10",
        explain: gateway::gateway_refused,
    },
    Rule {
        name: "gateway_not_decrypted",
        basis: Basis::Inferred,
        spec: "[MS-TSGU] 2.2.10.6, 2.2.10.10, 2.2.10.11",
        explain: gateway::gateway_not_decrypted,
    },
    Rule {
        name: "gateway_ended",
        basis: Basis::Inferred,
        spec: "",
        explain: gateway::gateway_ended,
    },
    Rule {
        name: "redirect_target_unreachable",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 3.2.5.13.1",
        explain: redirect::redirect_target_unreachable,
    },
    Rule {
        name: "resolve_failed",
        basis: Basis::Inferred,
        spec: "",
        explain: handshake::resolve_failed,
    },
    Rule {
        name: "connect_failed",
        basis: Basis::Inferred,
        spec: "",
        explain: handshake::connect_failed,
    },
    Rule {
        name: "negotiation_failure",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 2.2.1.2.2, 3.3.5.3.2",
        explain: handshake::negotiation_failure,
    },
    Rule {
        name: "client_limit",
        basis: Basis::Inferred,
        spec: "",
        explain: handshake::client_limit,
    },
    Rule {
        name: "old_tls_version",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 5.4.5.1",
        explain: handshake::old_tls_version,
    },
    Rule {
        name: "server_tls_alert",
        basis: Basis::Specified,
        spec: "[RFC 8446] 6",
        explain: handshake::server_tls_alert,
    },
    Rule {
        name: "cleartext_ultimatum",
        basis: Basis::Reported,
        spec: "[MS-RDPBCGR] 2.2.2.3, 5.4.5.1",
        explain: handshake::cleartext_ultimatum,
    },
    Rule {
        name: "certificate_rejected",
        basis: Basis::Inferred,
        spec: "",
        explain: handshake::certificate_rejected,
    },
    Rule {
        name: "tls_failed",
        basis: Basis::Inferred,
        spec: "",
        explain: handshake::tls_failed,
    },
    Rule {
        name: "captured_kerberos_then_ntlm_refused",
        basis: Basis::Inferred,
        spec: "[RFC 4120] 7.5.9, [MS-SPNG] 3.1.5.1, [MS-CSSP] 2.2.1",
        explain: captured_kerberos::captured_kerberos_then_ntlm_refused,
    },
    Rule {
        name: "captured_kerberos_error",
        basis: Basis::Specified,
        spec: "[RFC 4120] 5.9.1, 7.5.9",
        explain: captured_kerberos::captured_kerberos_error,
    },
    Rule {
        name: "captured_kdc_silent_then_ntlm_refused",
        basis: Basis::Inferred,
        spec: "[RFC 4120] 7.2.1, [MS-SPNG] 3.1.5.1, [MS-CSSP] 2.2.1",
        explain: captured_kerberos::captured_kdc_silent_then_ntlm_refused,
    },
    Rule {
        name: "captured_kdc_silent",
        basis: Basis::Inferred,
        spec: "[RFC 4120] 7.2.1",
        explain: captured_kerberos::captured_kdc_silent,
    },
    Rule {
        name: "kerberos_fallback_refused",
        basis: Basis::Inferred,
        spec: "[MS-SPNG] 3.1.5.1, [MS-CSSP] 2.2.1",
        explain: kerberos::fallback_refused,
    },
    Rule {
        name: "kerberos_error",
        basis: Basis::Specified,
        spec: "[RFC 4120] 5.9.1, 7.5.9",
        explain: kerberos::kerberos_error,
    },
    Rule {
        name: "kdc_unreachable",
        basis: Basis::Inferred,
        spec: "[RFC 4120] 7.2",
        explain: kerberos::kdc_unreachable,
    },
    Rule {
        name: "ticket_not_accepted",
        basis: Basis::Reported,
        spec: "[RFC 4120] 3.2.3",
        explain: kerberos::ticket_not_accepted,
    },
    Rule {
        name: "kerberos_rejected",
        basis: Basis::Specified,
        spec: "[RFC 4178] 4.2.2",
        explain: kerberos::kerberos_rejected,
    },
    Rule {
        name: "credssp_error",
        basis: Basis::Specified,
        spec: "[MS-CSSP] 2.2.1",
        explain: reports::credssp_error,
    },
    Rule {
        name: "inferred_credssp_error",
        basis: Basis::Inferred,
        spec: "[MS-CSSP] 2.2.1",
        explain: inferred::inferred_credssp_error,
    },
    Rule {
        name: "early_auth_denied",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 2.2.10.2",
        explain: reports::early_auth_denied,
    },
    Rule {
        name: "broker_without_load_balance_info",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 2.2.5.1.1, 3.2.5.3.1",
        explain: redirect::broker_without_load_balance_info,
    },
    Rule {
        name: "inferred_early_auth_denied",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 2.2.10.2",
        explain: inferred::inferred_early_auth_denied,
    },
    Rule {
        name: "server_error_info",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 2.2.5.1.1",
        explain: reports::server_error_info,
    },
    Rule {
        name: "inferred_server_error_info",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 2.2.5.1.1",
        explain: inferred::inferred_server_error_info,
    },
    Rule {
        name: "inferred_report_unsure",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 2.2.5.1.1",
        explain: inferred::inferred_report_unsure,
    },
    Rule {
        name: "license_error",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 2.2.1.12.1.3",
        explain: reports::license_error,
    },
    Rule {
        name: "redirect_loop",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 3.2.5.13.1",
        explain: redirect::redirect_loop,
    },
    Rule {
        name: "inferred_license_then_close",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 2.2.1.12.1.3",
        explain: inferred::inferred_license_then_close,
    },
    Rule {
        name: "redirected",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 2.2.13.1",
        explain: reports::redirected,
    },
    Rule {
        name: "deactivated",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 1.3.1.3, 2.2.3.1",
        explain: reports::deactivated,
    },
    Rule {
        name: "ultimatum",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 2.2.2.3, 1.3.1.4.2",
        explain: reports::ultimatum,
    },
    Rule {
        name: "tunnel_ended",
        basis: Basis::Inferred,
        spec: "[MS-TSGU] 3.3.5.3",
        explain: gateway::tunnel_ended,
    },
    Rule {
        name: "inferred_ultimatum",
        basis: Basis::Inferred,
        spec: "[MS-RDPBCGR] 2.2.2.3",
        explain: inferred::inferred_ultimatum,
    },
    Rule {
        name: "protocol_error",
        basis: Basis::Inferred,
        spec: "",
        explain: endings::protocol_error,
    },
    Rule {
        name: "negotiation_mismatch",
        basis: Basis::Specified,
        spec: "[MS-RDPBCGR] 3.3.5.3.2",
        explain: handshake::negotiation_mismatch,
    },
    Rule {
        name: "inferred_unexplained",
        basis: Basis::Inferred,
        spec: "",
        explain: inferred::inferred_unexplained,
    },
    Rule {
        name: "timed_out",
        basis: Basis::Inferred,
        spec: "",
        explain: endings::timed_out,
    },
    Rule {
        name: "credssp_rejected",
        basis: Basis::Reported,
        spec: "[MS-CSSP] 3.1.5",
        explain: endings::credssp_rejected,
    },
    Rule {
        name: "client_gave_up",
        basis: Basis::Inferred,
        spec: "",
        explain: endings::client_gave_up,
    },
    Rule {
        name: "closed_by_client",
        basis: Basis::Inferred,
        spec: "",
        explain: endings::closed_by_client,
    },
    Rule {
        name: "closed_by_server",
        basis: Basis::Inferred,
        spec: "",
        explain: endings::closed_by_server,
    },
    Rule {
        name: "capture_ended",
        basis: Basis::Inferred,
        spec: "",
        explain: endings::capture_ended,
    },
    Rule {
        name: "trace_ends_open",
        basis: Basis::Inferred,
        spec: "",
        explain: endings::trace_ends_open,
    },
];

/// The first rule that speaks, and what it says.
pub fn first(f: &Findings) -> Option<(&'static Rule, Explained)> {
    RULES
        .iter()
        .find_map(|rule| (rule.explain)(f).map(|e| (rule, e)))
}

/// The verdict of the first rule that speaks, or `endings::unrecorded`.
pub fn explain(f: &Findings) -> Explained {
    explain_by(f).1
}

/// The verdict and the name of the rule that gave it (`unrecorded` when none spoke).
pub fn explain_by(f: &Findings) -> (&'static str, Explained) {
    first(f).map_or_else(
        || ("unrecorded", endings::unrecorded(f)),
        |(rule, e)| (rule.name, e),
    )
}

/// After a SYN that was never answered.
fn syn_dropped_hint(cause: Cause, phase: PhaseName) -> Option<String> {
    (cause == Cause::TimedOut && phase == PhaseName::Tcp).then(|| {
        "a firewall that drops SYNs looks like this; check the path to the port".to_owned()
    })
}

#[cfg(test)]
mod tests;
