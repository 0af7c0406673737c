//! `rdptrace check`: assert what a host must do, each expectation judged on wire evidence.
//!
//! See [`expect`] for the expectation language and which connections each expectation needs, [`judge`]
//! for their judgement on a probe's trace, [`policy`] for the TOML policy file.

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

pub mod cli;
pub mod expect;
pub mod judge;
pub mod policy;

use core::fmt::Write as _;

pub use self::expect::{Expectation, Need};
pub use self::judge::Outcome;
use crate::dissect::x224::{PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX, PROTOCOL_SSL};
use crate::pdu::Negotiation;
use crate::probe::ProbeConfig;
use crate::trace::Trace;
use crate::verdict::Verdict;

/// [2.2.1.2.2] HYBRID_REQUIRED_BY_SERVER.
const HYBRID_REQUIRED_BY_SERVER: u32 = 0x5;

/// Judges `expectations` for the target of `cfg`.
///
/// `made` is the probe's trace and verdict when the caller already has them (fleet mode); otherwise the
/// probe runs here if an expectation needs it. Expectations that need connections of their own make them
/// with the scan's primitives, each bounded by `cfg.phase_timeout`.
pub async fn evaluate(
    cfg: &ProbeConfig,
    expectations: &[Expectation],
    made: Option<(&Trace, &Verdict)>,
) -> Vec<Outcome> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let needs_probe = expectations.iter().any(|e| e.need() == Need::Probe);
    let owned;
    let probe = match made {
        Some(m) => Some(m),
        None if needs_probe => {
            let trace = crate::probe::probe(cfg).await;
            let verdict = crate::diagnose::diagnose(&trace);
            owned = (trace, verdict);
            Some((&owned.0, &owned.1))
        }
        None => None,
    };
    let needs_scan = expectations.iter().any(|e| e.need() != Need::Probe);
    let endpoint = if needs_scan {
        Some(crate::scan::Endpoint::resolve(&cfg.host, cfg.port, cfg.phase_timeout, 4).await)
    } else {
        None
    };
    let mut out = Vec::with_capacity(expectations.len());
    for e in expectations {
        let outcome = match (e.need(), probe, &endpoint) {
            (Need::Probe, Some((trace, verdict)), _) => {
                judge::judge_probe(e, trace, verdict, &cfg.host, now)
                    .unwrap_or_else(|| Outcome::unjudged(e, "not judged".to_owned()))
            }
            (_, _, Some(Err(why))) => Outcome::unjudged(e, why.clone()),
            (Need::Negotiation(requested), _, Some(Ok(ep))) => {
                let result = crate::scan::protocol(ep, requested).await;
                judge_negotiation(e, requested, &result)
            }
            (Need::TlsVersions, _, Some(Ok(ep))) => judge_tls_min(e, ep).await,
            _ => Outcome::unjudged(e, "not judged".to_owned()),
        };
        out.push(outcome);
    }
    out
}

fn judge_negotiation(e: &Expectation, requested: u32, r: &crate::scan::ProtocolResult) -> Outcome {
    let evidence = vec![format!(
        "X.224 Connection Request with {} alone: {}",
        crate::codes::protocol_names(requested),
        r.answer
    )];
    let holds = match (e, r.raw.negotiation()) {
        (Expectation::NlaRequired, Some(Negotiation::Failure { code })) => {
            code == HYBRID_REQUIRED_BY_SERVER
        }
        // A server that answers a request for TLS alone by selecting CredSSP insists on NLA too, though
        // the specification has it refuse with HYBRID_REQUIRED_BY_SERVER.
        (
            Expectation::NlaRequired,
            Some(Negotiation::Response {
                selected_protocol, ..
            }),
        ) => {
            selected_protocol & (PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX) != 0
                && selected_protocol & PROTOCOL_SSL == 0
        }
        (Expectation::NoStandardSecurity, Some(_)) => !r.accepted,
        _ => false,
    };
    let seen = match r.raw.negotiation() {
        Some(_) => r.answer.clone(),
        None => format!("no answer: {}", r.answer),
    };
    let mut o = Outcome::unjudged(e, seen);
    o.holds = holds;
    o.evidence = evidence;
    o
}

async fn judge_tls_min(e: &Expectation, ep: &crate::scan::Endpoint) -> Outcome {
    let Expectation::TlsMin(min) = e else {
        return Outcome::unjudged(e, "not judged".to_owned());
    };
    let request = PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX;
    let mut results = Vec::new();
    for v in crate::scan::tls::VERSIONS {
        match crate::scan::tls::version(ep, request, v, false).await {
            Ok(r) => results.push(r),
            Err(crate::scan::tls::NoTls(why)) => {
                return Outcome::unjudged(e, format!("no TLS after the X.224 exchange: {why}"));
            }
        }
    }
    let below = results.iter().any(|r| r.value < *min && r.accepted);
    let above = results.iter().any(|r| r.value >= *min && r.accepted);
    let seen = results
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.version,
                if r.accepted { "accepted" } else { "refused" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut o = Outcome::unjudged(e, seen);
    o.holds = !below && above;
    o.evidence = results
        .iter()
        .map(|r| format!("{} ClientHello: {}", r.version, r.answer))
        .collect();
    o
}

/// Whether every outcome holds.
pub fn all_hold(outcomes: &[Outcome]) -> bool {
    outcomes.iter().all(|o| o.holds)
}

/// One line per outcome, with its evidence indented below.
pub fn render(target: &str, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let _ = writeln!(
            out,
            "{} {target} {}: expected {}; seen {}",
            if o.holds { "PASS" } else { "FAIL" },
            o.expectation,
            o.expected,
            o.seen
        );
        for ev in &o.evidence {
            let _ = writeln!(out, "     evidence: {ev}");
        }
    }
    out
}
