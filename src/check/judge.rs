//! The judgement of an expectation on the trace and verdict of one probe: whether it holds, what was
//! seen, and the PDUs and events that say so.

use crate::codes::{self, Table};
use crate::pdu::{Negotiation, PduInfo};
use crate::trace::{Deadline, EventKind, PhaseName, Side, Trace};
use crate::verdict::Verdict;

use super::expect::{Closed, DeadlineKind, Expectation, Match, status_word};
use crate::trace::Fact;

/// At most this many lines of evidence from a phase or a search over the trace.
const MAX_EVIDENCE: usize = 8;

/// The judgement of one expectation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// The expectation as written: `tls-min=1.2`.
    pub expectation: String,
    pub holds: bool,
    pub expected: String,
    pub seen: String,
    /// The PDUs, events and answers the judgement rests on.
    pub evidence: Vec<String>,
}

impl Outcome {
    pub fn new(e: &Expectation, holds: bool, seen: String, evidence: Vec<String>) -> Self {
        Outcome {
            expectation: e.to_string(),
            holds,
            expected: e.expected(),
            seen,
            evidence,
        }
    }

    /// An expectation that could not be judged because the connection it needs failed.
    pub fn unjudged(e: &Expectation, why: String) -> Self {
        Outcome::new(e, false, why, Vec::new())
    }
}

/// What the probe's verdict says, in one phrase.
fn verdict_phrase(v: &Verdict) -> String {
    if v.ok {
        "reached the active state".to_owned()
    } else {
        format!(
            "failed in {} ({}): {}",
            v.phase.map_or("?", |p| p.as_str()),
            v.cause.as_str(),
            v.detail
        )
    }
}

/// `NAME: SUMMARY`, or the name alone.
pub fn pdu_text(p: &crate::trace::Pdu) -> String {
    if p.summary.is_empty() {
        p.name.clone()
    } else {
        format!("{}: {}", p.name, p.summary)
    }
}

fn pdu_line(p: &crate::trace::Pdu) -> String {
    format!("{:.1} ms: {} {}", p.at_ms, p.from.as_str(), pdu_text(p))
}

/// A fact's value as text: strings as they are, other values as JSON.
pub fn fact_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The PDUs of a phase, in order, bounded.
fn phase_lines(trace: &Trace, phase: PhaseName) -> Vec<String> {
    trace
        .phase(phase)
        .pdus
        .iter()
        .take(MAX_EVIDENCE)
        .map(pdu_line)
        .collect()
}

/// The first close the trace records: when, in which phase, who and how.
fn first_close(trace: &Trace) -> Option<(f64, PhaseName, Closed)> {
    trace.events().find_map(|(phase, e)| match e.kind {
        EventKind::Closed { by, how } => Some((e.at_ms, phase, Closed::By(by, how))),
        _ => None,
    })
}

/// Who closed: the first close, else the probe's own end, else nobody.
fn closed_of(trace: &Trace) -> (Closed, Vec<String>) {
    if let Some((at, phase, closed)) = first_close(trace) {
        return (
            closed,
            vec![format!("{at:.1} ms: {} (in {phase})", closed.words())],
        );
    }
    let client = trace.events().find_map(|(phase, e)| match &e.kind {
        EventKind::ClientClosed { reason } => Some(format!(
            "{:.1} ms: the probe closed (in {phase}): {reason}",
            e.at_ms
        )),
        _ => None,
    });
    match client {
        Some(line) => (Closed::Client, vec![line]),
        None => (Closed::None, Vec::new()),
    }
}

/// The deadline that expired: its kind, seconds, phase, what the probe waited for, and when.
fn deadline(trace: &Trace) -> Option<(DeadlineKind, f64, PhaseName, String, f64)> {
    trace.events().find_map(|(phase, e)| match &e.kind {
        EventKind::TimedOut {
            deadline,
            waiting_for,
        } => {
            let kind = match deadline {
                Deadline::Phase { .. } => DeadlineKind::Phase,
                Deadline::Total { .. } => DeadlineKind::Total,
            };
            Some((
                kind,
                deadline.seconds(),
                phase,
                waiting_for.clone(),
                e.at_ms,
            ))
        }
        _ => None,
    })
}

/// Judges an expectation of kind [`super::Need::Probe`] on the probe's trace and verdict. `host` is the
/// target's host (for `cert-name`), `now` Unix seconds (for `cert-days`). `None` for expectations of
/// another kind.
pub fn judge_probe(
    e: &Expectation,
    trace: &Trace,
    verdict: &Verdict,
    host: &str,
    now: i64,
) -> Option<Outcome> {
    let on_verdict =
        |holds: bool| Outcome::new(e, holds, verdict_phrase(verdict), verdict.evidence.clone());
    let out = match e {
        Expectation::Active => on_verdict(verdict.ok),
        Expectation::Ok(want) => on_verdict(verdict.ok == *want),
        Expectation::Phase(p) => on_verdict(!verdict.ok && verdict.phase == Some(*p)),
        Expectation::NoFailedPhase => on_verdict(verdict.phase.is_none()),
        Expectation::Cause(c) => on_verdict(verdict.cause == *c),
        Expectation::Detail(m) => Outcome::new(
            e,
            m.test(Some(&verdict.detail)),
            verdict.detail.clone(),
            verdict.evidence.clone(),
        ),
        Expectation::Mstsc(want) => {
            let got = verdict
                .mstsc
                .as_ref()
                .and_then(|m| Some((m.disc_reason.code, m.extended_code()?)));
            let seen = match &verdict.mstsc {
                Some(m) => format!(
                    "mstsc would show {} ({} / {})",
                    crate::mstsc::pair_text(m),
                    m.disc_reason.name,
                    m.extended
                        .as_ref()
                        .map_or("the errorInfo inside the encryption", |e| e.name.as_str())
                ),
                None => format!("no mstsc pair; the probe {}", verdict_phrase(verdict)),
            };
            let evidence = verdict.mstsc.iter().map(|m| m.why.clone()).collect();
            Outcome::new(e, got == *want, seen, evidence)
        }
        Expectation::Status(p, want) => {
            let got = trace.phase(*p).status;
            Outcome::new(
                e,
                got == *want,
                format!("the {p} phase is {}", status_word(got)),
                phase_lines(trace, *p),
            )
        }
        Expectation::Fact(p, key, m) => {
            let got = Fact::from_name(key)
                .and_then(|k| trace.phase(*p).facts.get(k))
                .map(fact_text);
            let seen = match &got {
                Some(v) => format!("{p}.{key} = {v}"),
                None => format!("no fact {p}.{key}"),
            };
            Outcome::new(e, m.test(got.as_deref()), seen, phase_lines(trace, *p))
        }
        Expectation::Closed(want) => {
            let (got, evidence) = closed_of(trace);
            Outcome::new(e, got == *want, got.words().to_owned(), evidence)
        }
        Expectation::ClosedAfter(m) => match first_close(trace) {
            None => Outcome::new(
                e,
                false,
                format!("no close; the probe {}", verdict_phrase(verdict)),
                closed_of(trace).1,
            ),
            Some((at, _, _)) => {
                let last = trace
                    .pdus()
                    .filter(|(_, p)| p.at_ms <= at)
                    .max_by(|a, b| a.1.at_ms.total_cmp(&b.1.at_ms))
                    .map(|(_, p)| p);
                let holds = match (m, last) {
                    (Match::Equals(want), Some(p)) => &p.name == want,
                    (Match::Contains(want), Some(p)) => pdu_text(p).contains(want.as_str()),
                    _ => false,
                };
                let mut evidence: Vec<String> = last.map(pdu_line).into_iter().collect();
                evidence.extend(closed_of(trace).1);
                let seen = match last {
                    Some(p) => format!("the last PDU before the close is {}", pdu_text(p)),
                    None => "no PDU before the close".to_owned(),
                };
                Outcome::new(e, holds, seen, evidence)
            }
        },
        Expectation::TimedOut(want) => match deadline(trace) {
            Some((kind, seconds, phase, waiting_for, at)) => Outcome::new(
                e,
                kind == *want,
                format!(
                    "the {} deadline ({seconds} s) expired in {phase}",
                    kind.as_str()
                ),
                vec![format!(
                    "{at:.1} ms: no {waiting_for} within {seconds} s (in {phase})"
                )],
            ),
            None => Outcome::new(
                e,
                false,
                format!("no deadline expired; the probe {}", verdict_phrase(verdict)),
                Vec::new(),
            ),
        },
        Expectation::WaitingFor(m) => match deadline(trace) {
            Some((_, seconds, phase, waiting_for, at)) => Outcome::new(
                e,
                m.test(Some(&waiting_for)),
                format!("the probe waited for {waiting_for}"),
                vec![format!(
                    "{at:.1} ms: no {waiting_for} within {seconds} s (in {phase})"
                )],
            ),
            None => Outcome::new(
                e,
                false,
                format!("no deadline expired; the probe {}", verdict_phrase(verdict)),
                Vec::new(),
            ),
        },
        Expectation::Pdu(m) => {
            let found: Vec<&crate::trace::Pdu> = trace
                .pdus()
                .map(|(_, p)| p)
                .filter(|p| match m {
                    Match::Equals(want) => &p.name == want,
                    Match::Contains(want) => pdu_text(p).contains(want.as_str()),
                    Match::Absent => false,
                })
                .collect();
            let seen = match found.first() {
                Some(p) => pdu_text(p),
                None => format!("none of the {} PDUs matches", trace.pdus().count()),
            };
            Outcome::new(
                e,
                !found.is_empty(),
                seen,
                found
                    .iter()
                    .take(MAX_EVIDENCE)
                    .map(|p| pdu_line(p))
                    .collect(),
            )
        }
        Expectation::ErrInfo(code) => {
            let seen = server_codes(trace, |info| match info {
                PduInfo::SetErrorInfo { code } if *code != 0 => Some(*code),
                _ => None,
            });
            let holds = seen.iter().any(|(_, c)| c == code);
            let text = if seen.is_empty() {
                format!("no Set Error Info; the probe {}", verdict_phrase(verdict))
            } else {
                seen.iter()
                    .map(|(_, c)| {
                        format!("Set Error Info {}", codes::Display(Table::ErrorInfo, *c))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Outcome::new(
                e,
                holds,
                text,
                evidence_lines(&seen, "Set Error Info", Table::ErrorInfo),
            )
        }
        Expectation::NegFailure(code) => {
            let answer = crate::dissect::negotiation_of(trace);
            let holds = matches!(answer, Some(Negotiation::Failure { code: c }) if c == *code);
            let seen = match answer {
                Some(n) => negotiation_text(n),
                None => format!(
                    "no Connection Confirm; the probe {}",
                    verdict_phrase(verdict)
                ),
            };
            let evidence = trace
                .pdus()
                .filter(|(_, p)| matches!(p.info, PduInfo::X224ConnectionConfirm { .. }))
                .map(|(_, p)| pdu_line(p))
                .collect();
            Outcome::new(e, holds, seen, evidence)
        }
        Expectation::NtStatus(code) => {
            let seen = server_codes(trace, |info| match info {
                PduInfo::TsRequest {
                    error_code: Some(c),
                    ..
                } => Some(*c),
                _ => None,
            });
            let holds = seen.iter().any(|(_, c)| c == code);
            let text = if seen.is_empty() {
                format!(
                    "no TSRequest errorCode; the probe {}",
                    verdict_phrase(verdict)
                )
            } else {
                seen.iter()
                    .map(|(_, c)| {
                        format!(
                            "TSRequest errorCode {}",
                            codes::Display(Table::NtStatus, *c)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Outcome::new(
                e,
                holds,
                text,
                evidence_lines(&seen, "TSRequest errorCode", Table::NtStatus),
            )
        }
        Expectation::CertDays(days) => match leaf_certificate(trace) {
            None => Outcome::new(
                e,
                false,
                format!("no certificate; the probe {}", verdict_phrase(verdict)),
                Vec::new(),
            ),
            Some(cert) => match days_left(&cert.not_after, now) {
                Some(left) => Outcome::new(
                    e,
                    left >= i64::from(*days),
                    format!("{left} days left (not after {})", cert.not_after),
                    vec![format!(
                        "certificate {} issued by {}",
                        cert.subject, cert.issuer
                    )],
                ),
                None => Outcome::new(
                    e,
                    false,
                    format!(
                        "the certificate's notAfter does not read as a date: {}",
                        cert.not_after
                    ),
                    Vec::new(),
                ),
            },
        },
        Expectation::CertName => match leaf_certificate(trace) {
            None => Outcome::new(
                e,
                false,
                format!("no certificate; the probe {}", verdict_phrase(verdict)),
                Vec::new(),
            ),
            Some(cert) => {
                let mismatch = trace.events().find_map(|(_, ev)| match &ev.kind {
                    EventKind::CertificateProblem {
                        problem: crate::trace::CertProblem::NameMismatch,
                        detail,
                    } => Some(detail.clone()),
                    _ => None,
                });
                let names = if cert.sans.is_empty() {
                    cert.subject.clone()
                } else {
                    cert.sans.join(", ")
                };
                match mismatch {
                    Some(detail) => {
                        Outcome::new(e, false, detail, vec![format!("certificate names {names}")])
                    }
                    None => Outcome::new(
                        e,
                        true,
                        format!("the certificate names {host}"),
                        vec![format!("certificate names {names}")],
                    ),
                }
            }
        },
        Expectation::NlaRequired | Expectation::NoStandardSecurity | Expectation::TlsMin(_) => {
            return None;
        }
    };
    Some(out)
}

fn server_codes(trace: &Trace, pick: impl Fn(&PduInfo) -> Option<u32>) -> Vec<(f64, u32)> {
    trace
        .pdus()
        .filter(|(_, p)| p.from == Side::Server)
        .filter_map(|(_, p)| pick(&p.info).map(|c| (p.at_ms, c)))
        .collect()
}

fn evidence_lines(seen: &[(f64, u32)], what: &str, table: Table) -> Vec<String> {
    seen.iter()
        .map(|(at, c)| format!("{at:.1} ms: server {what} {}", codes::Display(table, *c)))
        .collect()
}

/// The server's answer in an X.224 Connection Confirm, in words.
pub fn negotiation_text(n: Negotiation) -> String {
    match n {
        Negotiation::Response {
            selected_protocol, ..
        } => format!(
            "RDP_NEG_RSP selecting {}",
            codes::protocol_names(selected_protocol)
        ),
        Negotiation::Failure { code } => {
            format!(
                "RDP_NEG_FAILURE {}",
                codes::Display(Table::NegFailure, code)
            )
        }
        Negotiation::None => "a Connection Confirm without negotiation data".to_owned(),
    }
}

fn leaf_certificate(trace: &Trace) -> Option<crate::pdu::CertInfo> {
    trace.pdus().find_map(|(_, p)| match &p.info {
        PduInfo::TlsCertificate { chain } if p.from == Side::Server => chain.first().cloned(),
        _ => None,
    })
}

/// Whole days from `now` (Unix seconds) to an RFC 3339 date; negative once it has passed.
pub fn days_left(not_after: &str, now: i64) -> Option<i64> {
    let t = time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some((t.unix_timestamp() - now).div_euclid(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::PduInfo;
    use crate::trace::{CloseKind, Origin, Pdu, PhaseStatus};

    #[test]
    fn days_are_counted_from_now() {
        let now = time::macros::datetime!(2030-01-01 00:00 UTC).unix_timestamp();
        assert_eq!(days_left("2030-01-31T00:00:00Z", now), Some(30));
        assert_eq!(days_left("2029-12-31T00:00:00Z", now), Some(-1));
        assert_eq!(days_left("yesterday", now), None);
    }

    fn pdu(at_ms: f64, from: Side, name: &str, summary: &str, info: PduInfo) -> Pdu {
        Pdu {
            at_ms,
            from,
            len: 0,
            name: name.to_owned(),
            summary: summary.to_owned(),
            info,
        }
    }

    /// A probe that ends the way xrdp ends a client that asks for Standard RDP Security when it wants
    /// TLS: RDP_NEG_FAILURE, a Disconnect Provider Ultimatum, FIN.
    fn refused() -> Trace {
        let mut t = Trace::new("host:3389", Origin::Probe);
        t.request.requested_protocols = Some(0);
        t.enter(PhaseName::Tcp, 0.0);
        t.record_event(
            0.5,
            EventKind::Connected {
                local: "127.0.0.1:5000".to_owned(),
                remote: "127.0.0.1:3389".to_owned(),
            },
        );
        t.enter(PhaseName::X224, 0.6);
        t.record_pdu(pdu(
            0.7,
            Side::Client,
            "X.224 Connection Request",
            "requested PROTOCOL_RDP",
            PduInfo::X224ConnectionRequest {
                cookie: None,
                routing_token: None,
                requested_protocols: Some(0),
                flags: 0,
            },
        ));
        t.record_pdu(pdu(
            1.0,
            Side::Server,
            "X.224 Connection Confirm",
            "RDP_NEG_FAILURE SSL_REQUIRED_BY_SERVER",
            PduInfo::X224ConnectionConfirm {
                negotiation: Negotiation::Failure { code: 1 },
            },
        ));
        t.fact(Fact::NegFailure, "SSL_REQUIRED_BY_SERVER (0x1)");
        t.record_pdu(pdu(
            1.1,
            Side::Server,
            "MCS Disconnect Provider Ultimatum",
            "reason rn-user-requested",
            PduInfo::DisconnectProviderUltimatum { reason: 3 },
        ));
        t.record_event(
            1.2,
            EventKind::Closed {
                by: Side::Server,
                how: CloseKind::Fin,
            },
        );
        t.finish(true);
        t
    }

    /// A probe whose phase deadline expired while it waited for the Connection Confirm.
    fn timed_out() -> Trace {
        let mut t = Trace::new("host:3389", Origin::Probe);
        t.enter(PhaseName::Tcp, 0.0);
        t.enter(PhaseName::X224, 0.6);
        t.record_event(
            2000.6,
            EventKind::TimedOut {
                deadline: Deadline::Phase { seconds: 2.0 },
                waiting_for: "X.224 Connection Confirm".to_owned(),
            },
        );
        t.finish(true);
        t
    }

    /// A server that answers CredSSP with an errorCode, then (as some do) Set Error Info.
    fn rejected() -> Trace {
        let mut t = Trace::new("host:3389", Origin::Probe);
        t.enter(PhaseName::Tcp, 0.0);
        t.enter(PhaseName::Credssp, 5.0);
        t.record_pdu(pdu(
            6.0,
            Side::Server,
            "TSRequest",
            "errorCode STATUS_LOGON_FAILURE",
            PduInfo::TsRequest {
                version: 6,
                token: None,
                auth_info: false,
                pub_key_auth: false,
                client_nonce: false,
                error_code: Some(0xc000_006d),
            },
        ));
        t.record_pdu(pdu(
            6.5,
            Side::Server,
            "Set Error Info",
            "ERRINFO_SERVER_DENIED_CONNECTION",
            PduInfo::SetErrorInfo { code: 7 },
        ));
        t.finish(true);
        t
    }

    #[test]
    fn codes_the_server_sent() {
        let t = rejected();
        assert!(judge("ntstatus=STATUS_LOGON_FAILURE", &t).holds);
        assert!(!judge("ntstatus=0xc0000022", &t).holds);
        let o = judge("errinfo=0x7", &t);
        assert!(o.holds, "{o:#?}");
        assert_eq!(
            o.evidence,
            ["6.5 ms: server Set Error Info 0x00000007 ERRINFO_SERVER_DENIED_CONNECTION"]
        );
        assert!(!judge("errinfo=0x9", &t).holds);
    }

    fn judge(s: &str, trace: &Trace) -> Outcome {
        let e = Expectation::parse(s).unwrap();
        let verdict = crate::diagnose::diagnose(trace);
        judge_probe(&e, trace, &verdict, "host", 0).expect("a probe expectation")
    }

    /// Every expectation judged on the probe, once where it holds and once where it does not.
    #[test]
    fn each_kind_holds_and_fails() {
        let refused = refused();
        let timed_out = timed_out();
        let cases: &[(&str, &Trace, bool)] = &[
            ("ok=no", &refused, true),
            ("ok=yes", &refused, false),
            ("active", &refused, false),
            ("phase=x224", &refused, true),
            ("phase=tls", &refused, false),
            ("phase=none", &refused, false),
            ("cause=negotiation_failure", &refused, true),
            ("cause=timed_out", &refused, false),
            ("detail~SSL_REQUIRED_BY_SERVER", &refused, true),
            ("detail=something else", &refused, false),
            ("x224=failed", &refused, true),
            ("x224=ok", &refused, false),
            ("tls=not_reached", &refused, true),
            ("tls=skipped", &refused, false),
            ("x224.neg_failure~SSL_REQUIRED", &refused, true),
            ("x224.neg_failure=SSL_REQUIRED_BY_SERVER", &refused, false),
            ("!x224.selected_protocol", &refused, true),
            ("!x224.neg_failure", &refused, false),
            ("closed=server-fin", &refused, true),
            ("closed=server-rst", &refused, false),
            ("closed=none", &timed_out, true),
            ("closed=client", &timed_out, false),
            (
                "closed-after=MCS Disconnect Provider Ultimatum",
                &refused,
                true,
            ),
            ("closed-after~rn-user-requested", &refused, true),
            ("closed-after=X.224 Connection Confirm", &refused, false),
            ("closed-after~anything", &timed_out, false),
            ("timed-out=phase", &timed_out, true),
            ("timed-out=total", &timed_out, false),
            ("timed-out=phase", &refused, false),
            ("waiting-for=X.224 Connection Confirm", &timed_out, true),
            ("waiting-for~TLS", &timed_out, false),
            ("mstsc=none", &timed_out, true),
            ("mstsc=0x904/0x7", &timed_out, false),
            ("pdu=MCS Disconnect Provider Ultimatum", &refused, true),
            ("pdu~RDP_NEG_FAILURE", &refused, true),
            ("pdu=TLS ClientHello", &refused, false),
            ("neg-failure=SSL_REQUIRED_BY_SERVER", &refused, true),
            ("neg-failure=HYBRID_REQUIRED_BY_SERVER", &refused, false),
            ("errinfo=0x7", &refused, false),
            ("ntstatus=0xc000006d", &refused, false),
            ("cert-days=1", &refused, false),
            ("cert-name", &refused, false),
        ];
        for (s, trace, holds) in cases {
            let o = judge(s, trace);
            assert_eq!(o.holds, *holds, "{s}: {o:#?}");
            assert_eq!(o.expectation, *s);
            assert!(!o.seen.is_empty(), "{s}");
        }
    }

    #[test]
    fn evidence_names_the_wire() {
        let refused = refused();
        let o = judge("closed-after=MCS Disconnect Provider Ultimatum", &refused);
        assert_eq!(
            o.evidence,
            [
                "1.1 ms: server MCS Disconnect Provider Ultimatum: reason rn-user-requested",
                "1.2 ms: the server closed the connection (FIN) (in x224)"
            ]
        );
        let o = judge("x224.neg_failure~SSL", &refused);
        assert_eq!(o.seen, "x224.neg_failure = SSL_REQUIRED_BY_SERVER (0x1)");
        assert!(
            o.evidence[1].contains("RDP_NEG_FAILURE"),
            "{:?}",
            o.evidence
        );
        let o = judge("timed-out=phase", &timed_out());
        assert_eq!(
            o.evidence,
            ["2000.6 ms: no X.224 Connection Confirm within 2 s (in x224)"]
        );
        let o = judge("credssp=ok", &refused);
        assert_eq!(o.seen, "the credssp phase is not_reached");
        assert_eq!(
            refused.phase(PhaseName::Credssp).status,
            PhaseStatus::NotReached
        );
    }
}
