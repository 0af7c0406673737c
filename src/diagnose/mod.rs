//! Diagnosis: a pure function from a [`Trace`] to a [`Verdict`].
//!
//! Three steps, each in its own file:
//! - [`findings`]: the observations of the trace, gathered once into named findings (a Set Error Info and
//!   when it came, the close and who made it, the deadline that expired, ...);
//! - [`rules`]: an ordered table of named rules, each a small function from the findings to an
//!   [`Explained`] verdict or nothing; the first rule that speaks gives the verdict, so the order of the
//!   table is the priority, from the most specific evidence (a code the server sent) to the least (the
//!   connection just closed);
//! - here: what every verdict gets whichever rule gave it (the server's Set Error Info as evidence, the
//!   bytes a capture misses, the pair mstsc would show).

pub mod findings;
pub mod rules;

use crate::codes::{self, Table};
use crate::mstsc;
use crate::trace::{PhaseName, Trace};
use crate::verdict::{Cause, Code, Verdict};

use findings::Findings;

/// The verdict on a trace.
pub fn diagnose(trace: &Trace) -> Verdict {
    let findings = Findings::gather(trace);
    let (rule, explained) = rules::explain_by(&findings);
    let Explained {
        cause,
        phase,
        mut detail,
        mut evidence,
        mut hints,
        either,
    } = explained;
    let inferred = inferred(
        &findings,
        rule,
        phase,
        &mut detail,
        &mut evidence,
        &mut hints,
    );

    if !findings.hops.is_empty() {
        // [MS-RDPBCGR] 3.2.5.13.1 the verdict is on the whole: the connections that led here come first.
        let hops: Vec<String> = findings
            .hops
            .iter()
            .enumerate()
            .map(|(i, h)| {
                format!(
                    "hop {}: {} redirected the client to {}{}",
                    i + 1,
                    h.server,
                    h.to.as_deref().unwrap_or("the same server"),
                    h.token
                        .as_deref()
                        .map(|t| format!(" (routing token {t})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        evidence.splice(0..0, hops);
        if cause == Cause::Connected {
            let from: Vec<&str> = findings.hops.iter().map(|h| h.server.as_str()).collect();
            detail.push_str(&format!(
                ", after {} redirected the client here",
                from.join(" and then ")
            ));
        }
    }
    let error_info = findings.error_info.map(|e| Code {
        code: e.code,
        name: codes::name(Table::ErrorInfo, e.code),
    });
    if let Some(e) = findings.error_info {
        let line = format!(
            "{:.1} ms: server Set Error Info {}",
            e.at_ms,
            codes::Display(Table::ErrorInfo, e.code)
        );
        if !evidence.contains(&line) {
            evidence.push(line);
        }
    }
    if let Some(gaps) = findings.gaps {
        // A capture that misses bytes: the dissector stops reading a direction at its first gap, so what
        // comes after is not known. Say so rather than let the verdict look complete.
        let first = gaps.first_phase;
        evidence.push(format!(
            "{:.1} ms: the capture misses {} bytes from the client and {} from the server, the first in the {first} phase; rdptrace does not read a direction past its first gap",
            gaps.first_at_ms, gaps.client_bytes, gaps.server_bytes
        ));
        if phase.is_some_and(|p| p >= first) {
            detail.push_str(&format!(
                "; the capture misses bytes from the {first} phase on (packets cut short by a snap length, or dropped), so the connection may have got further than this phase"
            ));
        }
        hints.push("capture again with whole packets and no drops (tcpdump -s 0, and a capture on the client or the server rather than a span port); every byte of the connection sequence is needed to follow it".to_owned());
    }
    let mut mstsc = mstsc::translate(trace, cause, phase, findings.error_info.map(|e| e.code));
    // The evidence fits more than one cause: each has its pair, and none is given as the one.
    let mstsc_either: Vec<_> = either
        .iter()
        .filter_map(|(cause, phase)| mstsc::translate(trace, *cause, Some(*phase), None))
        .collect();
    if !either.is_empty() {
        mstsc = None;
    }
    Verdict {
        ok: cause == Cause::Connected,
        phase,
        cause,
        detail,
        error_info,
        mstsc,
        evidence,
        hints,
        inferred,
        mstsc_either,
    }
}

/// What a verdict that rests on the sizes of encrypted records gets ([`crate::infer`]): the basis, the other
/// places the records fit, what would settle it.
fn inferred(
    findings: &Findings<'_>,
    rule: &str,
    phase: Option<PhaseName>,
    detail: &mut String,
    evidence: &mut Vec<String>,
    hints: &mut Vec<String>,
) -> Option<crate::verdict::Inferred> {
    let i = findings.inferred.as_ref()?;
    let basis = &i.inference.basis;
    let explained = matches!(i.inference.outcome, crate::infer::Outcome::Explained { .. });
    if explained {
        if !rule.starts_with("inferred_") {
            detail.push_str(" (inferred from the sizes of the encrypted records)");
        }
        let others: Vec<String> = i
            .phases
            .iter()
            .filter(|p| Some(**p) != phase && !(phase.is_none() && **p == PhaseName::Active))
            .map(|p| p.to_string())
            .collect();
        if !others.is_empty() && !rule.starts_with("inferred_") {
            detail.push_str(&format!(
                "; the encrypted records fit more than one place: it may as well have ended in the {} phase",
                others.join(" or the ")
            ));
        }
        evidence.push(if basis.standard_security {
            format!(
                "{} PDUs encrypted with Standard RDP Security, read for their sizes (exact lengths)",
                basis.records
            )
        } else {
            format!(
                "{} encrypted records after the TLS handshake, read for their sizes ({})",
                basis.records,
                if basis.exact {
                    "exact plaintext lengths"
                } else {
                    "plaintext lengths to within a cipher block"
                }
            )
        });
        let settle = rules::SETTLE.to_owned();
        if !hints.contains(&settle) {
            hints.push(settle);
        }
    }
    Some(crate::verdict::Inferred {
        records: basis.records,
        exact: basis.exact,
        explained,
        phases: i.phases.clone(),
    })
}

/// A verdict as a rule gives it, before what every verdict gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub cause: Cause,
    /// The phase the verdict names: the one that failed, the one a trace still open ends in; `None` for a
    /// connection that reached the active state.
    pub phase: Option<PhaseName>,
    /// What happened, in words a user understands.
    pub detail: String,
    /// The PDUs and events the verdict rests on, one line each.
    pub evidence: Vec<String>,
    /// What to look at next.
    pub hints: Vec<String>,
    /// The causes the evidence fits equally, each in its phase: the pair mstsc would show is then one of
    /// theirs, and the verdict gives each rather than one.
    pub either: Vec<(Cause, PhaseName)>,
}

impl Explained {
    pub fn new(cause: Cause, phase: Option<PhaseName>, detail: impl Into<String>) -> Self {
        Explained {
            cause,
            phase,
            detail: detail.into(),
            evidence: Vec::new(),
            hints: Vec::new(),
            either: Vec::new(),
        }
    }

    /// The connection failed in `phase`.
    pub fn failed(cause: Cause, phase: PhaseName, detail: impl Into<String>) -> Self {
        Explained::new(cause, Some(phase), detail)
    }

    /// With more lines of evidence (an `Option` adds one or none).
    pub fn evidence(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(lines);
        self
    }

    /// The evidence fits these causes as well as this one.
    pub fn either(mut self, causes: impl IntoIterator<Item = (Cause, PhaseName)>) -> Self {
        self.either.extend(causes);
        self
    }

    /// With a hint, or none.
    pub fn hint(mut self, hint: impl IntoIterator<Item = String>) -> Self {
        self.hints.extend(hint);
        self
    }
}
