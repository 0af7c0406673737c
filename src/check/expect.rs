//! Expectations: what a host must do, written `active`, `tls-min=1.2`, `phase=licensing`, and how each one
//! is judged on the evidence.
//!
//! Most expectations are judged on the trace of one ordinary probe (the request the user configured).
//! Three need connections of their own, made by the scan's primitives ([`crate::scan`]):
//!
//! | expectation            | what `check` runs                                                      |
//! | ---------------------- | ---------------------------------------------------------------------- |
//! | `active`               | the probe                                                              |
//! | `phase=NAME`           | the probe                                                              |
//! | `errinfo=CODE`         | the probe                                                              |
//! | `neg-failure=CODE`     | the probe                                                              |
//! | `ntstatus=CODE`        | the probe                                                              |
//! | `cert-days=N`          | the probe (the certificate of its TLS phase)                           |
//! | `cert-name`            | the probe (the certificate of its TLS phase)                           |
//! | `nla-required`         | one X.224 Connection Request with PROTOCOL_SSL alone ([2.2.1.1.1])     |
//! | `no-standard-security` | one X.224 Connection Request with PROTOCOL_RDP alone                   |
//! | `tls-min=V`            | one X.224 exchange and one hand-made ClientHello per TLS version       |

use core::fmt;

use crate::codes::{self, Table};
use crate::pdu::{Negotiation, PduInfo};
use crate::trace::{EventKind, PhaseName, Side, Trace};
use crate::verdict::Verdict;

/// One thing a host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// The connection reaches the active state.
    Active,
    /// A request for PROTOCOL_SSL alone is refused: the server insists on CredSSP.
    NlaRequired,
    /// A request for PROTOCOL_RDP alone is refused: Standard RDP Security ([5.3]) is off.
    NoStandardSecurity,
    /// No TLS version below this one (0x0301 TLS 1.0 ... 0x0304 TLS 1.3) is accepted, and one at or above
    /// it is.
    TlsMin(u16),
    /// The server certificate is valid for at least this many more days.
    CertDays(u32),
    /// The server certificate names the target.
    CertName,
    /// The connection fails in this phase.
    Phase(PhaseName),
    /// [2.2.5.1.1] The server sends Set Error Info with this errorInfo.
    ErrInfo(u32),
    /// [2.2.1.2.2] The server answers with RDP_NEG_FAILURE and this failureCode.
    NegFailure(u32),
    /// [MS-CSSP] 2.2.1 The server's TSRequest carries this errorCode (an NTSTATUS).
    NtStatus(u32),
}

/// Which connections an expectation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The ordinary probe's trace.
    Probe,
    /// One X.224 exchange with these requestedProtocols.
    Negotiation(u32),
    /// The TLS versions the server accepts.
    TlsVersions,
}

/// Every expectation key, for error messages.
pub const KEYS: &str = "active, nla-required, no-standard-security, tls-min=V, cert-days=N, cert-name, phase=NAME, errinfo=CODE, neg-failure=CODE, ntstatus=CODE";

/// The canonical spelling of an expectation key (`tls_min` and `TLS-MIN` are `tls-min`), if it is one.
pub fn normalize_key(key: &str) -> Option<&'static str> {
    let k = key.trim().to_ascii_lowercase().replace('_', "-");
    [
        "active",
        "nla-required",
        "no-standard-security",
        "tls-min",
        "cert-days",
        "cert-name",
        "phase",
        "errinfo",
        "neg-failure",
        "ntstatus",
    ]
    .into_iter()
    .find(|known| *known == k)
}

impl Expectation {
    /// Parses one `key` or `key=value`.
    pub fn parse(s: &str) -> Result<Expectation, String> {
        let s = s.trim();
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (s, None),
        };
        let key = key.to_ascii_lowercase().replace('_', "-");
        let need_value = |what: &str| -> Result<&str, String> {
            match value {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("{key} needs a value: {key}={what}")),
            }
        };
        let flag = |e: Expectation| -> Result<Expectation, String> {
            match value.map(str::to_ascii_lowercase).as_deref() {
                None | Some("true") | Some("yes") => Ok(e),
                Some(v) => Err(format!("{key} takes no value (got {key}={v})")),
            }
        };
        match key.as_str() {
            "active" => flag(Expectation::Active),
            "nla-required" => flag(Expectation::NlaRequired),
            "no-standard-security" => flag(Expectation::NoStandardSecurity),
            "cert-name" => flag(Expectation::CertName),
            "tls-min" => parse_tls_version(need_value("1.2")?).map(Expectation::TlsMin),
            "cert-days" => {
                let v = need_value("30")?;
                v.parse()
                    .map(Expectation::CertDays)
                    .map_err(|_| format!("cert-days must be a number of days: {v}"))
            }
            "phase" => {
                let v = need_value("licensing")?;
                PhaseName::parse(v).map(Expectation::Phase).ok_or_else(|| {
                    let names: Vec<&str> = PhaseName::ALL.iter().map(|p| p.as_str()).collect();
                    format!("unknown phase {v} (phases: {})", names.join(", "))
                })
            }
            "errinfo" => parse_code(Table::ErrorInfo, need_value("0x7")?).map(Expectation::ErrInfo),
            "neg-failure" => {
                parse_code(Table::NegFailure, need_value("HYBRID_REQUIRED_BY_SERVER")?)
                    .map(Expectation::NegFailure)
            }
            "ntstatus" => {
                parse_code(Table::NtStatus, need_value("0xc000006d")?).map(Expectation::NtStatus)
            }
            "" => Err("empty expectation".to_owned()),
            other => Err(format!("unknown expectation {other} (known: {KEYS})")),
        }
    }

    /// Parses a comma-separated list: `phase=licensing,errinfo=0x7`.
    pub fn parse_list(s: &str) -> Result<Vec<Expectation>, String> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Expectation::parse)
            .collect()
    }

    /// The key as written: `tls-min`.
    pub fn key(&self) -> &'static str {
        match self {
            Expectation::Active => "active",
            Expectation::NlaRequired => "nla-required",
            Expectation::NoStandardSecurity => "no-standard-security",
            Expectation::TlsMin(_) => "tls-min",
            Expectation::CertDays(_) => "cert-days",
            Expectation::CertName => "cert-name",
            Expectation::Phase(_) => "phase",
            Expectation::ErrInfo(_) => "errinfo",
            Expectation::NegFailure(_) => "neg-failure",
            Expectation::NtStatus(_) => "ntstatus",
        }
    }

    /// What the expectation needs to be judged.
    pub fn need(&self) -> Need {
        match self {
            Expectation::NlaRequired => Need::Negotiation(crate::dissect::x224::PROTOCOL_SSL),
            Expectation::NoStandardSecurity => {
                Need::Negotiation(crate::dissect::x224::PROTOCOL_RDP)
            }
            Expectation::TlsMin(_) => Need::TlsVersions,
            _ => Need::Probe,
        }
    }

    /// What it asks for, in words.
    pub fn expected(&self) -> String {
        match self {
            Expectation::Active => "the connection reaches the active state".to_owned(),
            Expectation::NlaRequired => {
                "a request for PROTOCOL_SSL alone is refused with HYBRID_REQUIRED_BY_SERVER"
                    .to_owned()
            }
            Expectation::NoStandardSecurity => {
                "a request for PROTOCOL_RDP alone (Standard RDP Security) is refused".to_owned()
            }
            Expectation::TlsMin(v) => format!(
                "every TLS version below {} refused, and one at or above it accepted",
                crate::dissect::tls::version_name(*v)
            ),
            Expectation::CertDays(n) => {
                format!("the certificate is valid for at least {n} more days")
            }
            Expectation::CertName => "the certificate names the target".to_owned(),
            Expectation::Phase(p) => format!("the connection fails in the {p} phase"),
            Expectation::ErrInfo(c) => {
                format!("Set Error Info {}", codes::Display(Table::ErrorInfo, *c))
            }
            Expectation::NegFailure(c) => {
                format!("RDP_NEG_FAILURE {}", codes::Display(Table::NegFailure, *c))
            }
            Expectation::NtStatus(c) => {
                format!(
                    "TSRequest errorCode {}",
                    codes::Display(Table::NtStatus, *c)
                )
            }
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::TlsMin(v) => write!(f, "tls-min={}", tls_short(*v)),
            Expectation::CertDays(n) => write!(f, "cert-days={n}"),
            Expectation::Phase(p) => write!(f, "phase={p}"),
            Expectation::ErrInfo(c) => write!(f, "errinfo=0x{c:x}"),
            Expectation::NegFailure(c) => {
                write!(f, "neg-failure={}", codes::name(Table::NegFailure, *c))
            }
            Expectation::NtStatus(c) => write!(f, "ntstatus=0x{c:08x}"),
            other => f.write_str(other.key()),
        }
    }
}

/// `1.2` for 0x0303.
pub fn tls_short(v: u16) -> String {
    match v {
        0x0300 => "ssl3".to_owned(),
        0x0301..=0x0304 => format!("1.{}", v - 0x0301),
        other => format!("0x{other:04x}"),
    }
}

/// `1.2`, `TLS1.2`, `tlsv1.2`, `TLSv1.2` to 0x0303.
pub fn parse_tls_version(s: &str) -> Result<u16, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_start_matches("tls").trim_start_matches('v').trim();
    match t {
        "1.0" | "1" | "10" => Ok(0x0301),
        "1.1" | "11" => Ok(0x0302),
        "1.2" | "12" => Ok(0x0303),
        "1.3" | "13" => Ok(0x0304),
        _ => Err(format!("unknown TLS version {s} (1.0, 1.1, 1.2 or 1.3)")),
    }
}

/// A code by number (`0x7`, `7`) or by its constant name in `table`.
pub fn parse_code(table: Table, s: &str) -> Result<u32, String> {
    let s = s.trim();
    let number = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    };
    if let Some(n) = number {
        return Ok(n);
    }
    codes::lookup_name(table, s)
        .map(|row| row.code)
        .ok_or_else(|| format!("{s} is neither a number nor a {} name", table.label()))
}

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
    fn new(e: &Expectation, holds: bool, seen: String, evidence: Vec<String>) -> Self {
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

/// Judges an expectation of kind [`Need::Probe`] on the probe's trace and verdict. `now` is Unix seconds.
/// `None` for expectations of another kind.
pub fn judge_probe(
    e: &Expectation,
    trace: &Trace,
    verdict: &Verdict,
    host: &str,
    now: i64,
) -> Option<Outcome> {
    let out = match e {
        Expectation::Active => Outcome::new(
            e,
            verdict.ok,
            verdict_phrase(verdict),
            verdict.evidence.clone(),
        ),
        Expectation::Phase(p) => Outcome::new(
            e,
            !verdict.ok && verdict.phase == Some(*p),
            verdict_phrase(verdict),
            verdict.evidence.clone(),
        ),
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
                .map(|(_, p)| format!("{:.1} ms: server {}: {}", p.at_ms, p.name, p.summary))
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

    #[test]
    fn parses_every_key() {
        assert_eq!(Expectation::parse("active").unwrap(), Expectation::Active);
        assert_eq!(
            Expectation::parse("tls-min=1.2").unwrap(),
            Expectation::TlsMin(0x0303)
        );
        assert_eq!(
            Expectation::parse("tls-min=TLSv1.3").unwrap(),
            Expectation::TlsMin(0x0304)
        );
        assert_eq!(
            Expectation::parse("cert-days=30").unwrap(),
            Expectation::CertDays(30)
        );
        assert_eq!(
            Expectation::parse("phase=licensing").unwrap(),
            Expectation::Phase(PhaseName::Licensing)
        );
        assert_eq!(
            Expectation::parse("errinfo=0x7").unwrap(),
            Expectation::ErrInfo(7)
        );
        assert_eq!(
            Expectation::parse("errinfo=ERRINFO_SERVER_DENIED_CONNECTION").unwrap(),
            Expectation::ErrInfo(7)
        );
        assert_eq!(
            Expectation::parse("neg-failure=hybrid_required_by_server").unwrap(),
            Expectation::NegFailure(5)
        );
        assert_eq!(
            Expectation::parse("neg-failure=5").unwrap(),
            Expectation::NegFailure(5)
        );
        assert_eq!(
            Expectation::parse("ntstatus=STATUS_LOGON_FAILURE").unwrap(),
            Expectation::NtStatus(0xc000_006d)
        );
        assert_eq!(
            Expectation::parse_list("phase=licensing,errinfo=0x7").unwrap(),
            vec![
                Expectation::Phase(PhaseName::Licensing),
                Expectation::ErrInfo(7)
            ]
        );
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        assert!(
            Expectation::parse("fast")
                .unwrap_err()
                .contains("unknown expectation")
        );
        assert!(
            Expectation::parse("phase=nowhere")
                .unwrap_err()
                .contains("unknown phase")
        );
        assert!(
            Expectation::parse("tls-min")
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            Expectation::parse("active=maybe")
                .unwrap_err()
                .contains("takes no value")
        );
        assert!(Expectation::parse("errinfo=NOT_A_CODE").is_err());
    }

    #[test]
    fn labels_round_trip() {
        for s in [
            "active",
            "tls-min=1.2",
            "cert-days=30",
            "phase=licensing",
            "errinfo=0x7",
        ] {
            let e = Expectation::parse(s).unwrap();
            assert_eq!(e.to_string(), s);
            assert_eq!(Expectation::parse(&e.to_string()).unwrap(), e);
        }
    }

    #[test]
    fn days_are_counted_from_now() {
        let now = time::macros::datetime!(2030-01-01 00:00 UTC).unix_timestamp();
        assert_eq!(days_left("2030-01-31T00:00:00Z", now), Some(30));
        assert_eq!(days_left("2029-12-31T00:00:00Z", now), Some(-1));
        assert_eq!(days_left("yesterday", now), None);
    }
}
