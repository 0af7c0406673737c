//! What one probe says, as metrics in the Prometheus text exposition format (version 0.0.4), encoded by
//! Prometheus's Rust client (`prometheus-client`) from a registry made for that probe.
//!
//! The names and labels are fixed ([`PROBE_METRICS`], listed in README.md, "Monitoring"). Every label
//! value comes from a closed set: phase names, causes, the code tables' names, TLS version and suite names,
//! the module's own expectations; never free text from the server, never an address.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::check::Outcome;
use crate::codes::{self, Table};
use crate::pdu::{Negotiation, PduInfo};
use crate::trace::{CertProblem, EventKind, Fact, PhaseName, PhaseStatus, Side, Trace};
use crate::verdict::Verdict;

/// The `Content-Type` of what [`Measured::encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One metric of `/probe`: its name, its labels and what it means.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    pub name: &'static str,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

pub const SUCCESS: MetricDoc = MetricDoc {
    name: "rdptrace_probe_success",
    labels: &[],
    help: "1 when the connection reached the active state (with expectations: when they all hold), else 0",
};
pub const DURATION: MetricDoc = MetricDoc {
    name: "rdptrace_probe_duration_seconds",
    labels: &[],
    help: "Seconds the probe took, expectations included",
};
pub const PHASE_DURATION: MetricDoc = MetricDoc {
    name: "rdptrace_phase_duration_seconds",
    labels: &["phase"],
    help: "Seconds from the first to the last byte of each phase reached",
};
pub const PHASE_OK: MetricDoc = MetricDoc {
    name: "rdptrace_phase_ok",
    labels: &["phase"],
    help: "1 for each phase reached that completed, 0 for the phase that failed",
};
pub const FAILURE: MetricDoc = MetricDoc {
    name: "rdptrace_failure_info",
    labels: &["phase", "cause", "error_info", "mstsc"],
    help: "1 when the connection failed: the phase, the cause, the server's errorInfo and the pair mstsc shows",
};
pub const EXPECTATION: MetricDoc = MetricDoc {
    name: "rdptrace_expectation_met",
    labels: &["expectation"],
    help: "1 for each expectation of the module that holds, 0 for each that does not",
};
pub const TLS_VERSION: MetricDoc = MetricDoc {
    name: "rdptrace_tls_version_info",
    labels: &["version", "cipher_suite"],
    help: "1: the TLS version and cipher suite of the session",
};
pub const SECURITY_PROTOCOL: MetricDoc = MetricDoc {
    name: "rdptrace_security_protocol_info",
    labels: &["protocol"],
    help: "1: the security protocol the server selected in the X.224 negotiation",
};
pub const CERT_NOT_AFTER: MetricDoc = MetricDoc {
    name: "rdptrace_cert_not_after_seconds",
    labels: &[],
    help: "The end of the server certificate's validity, in seconds since the Unix epoch",
};
pub const CERT_PROBLEM: MetricDoc = MetricDoc {
    name: "rdptrace_cert_problem",
    labels: &["problem"],
    help: "For each kind of certificate problem, 1 when the server certificate has it, else 0",
};

/// Every metric `/probe` can answer with, in the order it writes them.
pub const PROBE_METRICS: [MetricDoc; 10] = [
    SUCCESS,
    DURATION,
    PHASE_DURATION,
    PHASE_OK,
    FAILURE,
    EXPECTATION,
    TLS_VERSION,
    SECURITY_PROTOCOL,
    CERT_NOT_AFTER,
    CERT_PROBLEM,
];

/// Every kind of certificate problem, as the `problem` label writes it.
pub const CERT_PROBLEMS: [(CertProblem, &str); 6] = [
    (CertProblem::Expired, "expired"),
    (CertProblem::NotYetValid, "not_yet_valid"),
    (CertProblem::SelfSigned, "self_signed"),
    (CertProblem::NameMismatch, "name_mismatch"),
    (CertProblem::WeakKey, "weak_key"),
    (CertProblem::Unparsable, "unparsable"),
];

/// The most characters of a label value taken from a name a peer chose (a cipher suite's name).
const MAX_NAME: usize = 64;

/// The labels of [`FAILURE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub phase: &'static str,
    pub cause: &'static str,
    /// The errorInfo's name in the table, `unknown` for a code it lacks, empty without one.
    pub error_info: String,
    /// `0x904/0x7`, empty when mstsc would show nothing.
    pub mstsc: String,
}

/// What the metrics of one probe say, taken from its trace, verdict and expectations.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub success: bool,
    pub duration_seconds: f64,
    /// Each phase reached: its name, seconds, whether it completed.
    pub phases: Vec<(PhaseName, f64, bool)>,
    pub failure: Option<Failure>,
    /// Each expectation as written, and whether it holds.
    pub expectations: Vec<(String, bool)>,
    /// The TLS version and cipher suite.
    pub tls: Option<(String, String)>,
    pub protocol: Option<&'static str>,
    pub cert_not_after: Option<i64>,
    /// The problems of the certificate, when there was a certificate.
    pub cert_problems: Option<Vec<CertProblem>>,
}

/// A name for a label: letters, digits, `_`, `.`, `-` and blanks, at most [`MAX_NAME`] characters;
/// `other` for anything else.
fn bounded_name(s: &str) -> String {
    let clean = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ' '));
    if clean {
        s.to_owned()
    } else {
        "other".to_owned()
    }
}

/// `0x904/0x7` when both codes are in a table, the unknown part as `unknown`.
fn mstsc_label(verdict: &Verdict) -> String {
    let Some(m) = &verdict.mstsc else {
        return String::new();
    };
    let known = |table: Table, code: u32| codes::lookup(table, code).is_some();
    let disc = if known(Table::DiscReason, m.disc_reason.code) {
        format!("0x{:x}", m.disc_reason.code)
    } else {
        "unknown".to_owned()
    };
    // An encrypted Set Error Info: the extended code exists but is hidden.
    let ext = match m.extended_code() {
        Some(ext)
            if known(Table::ExtendedReason, ext) || known(Table::ErrorInfo, ext) || ext == 0 =>
        {
            format!("0x{ext:x}")
        }
        _ => "unknown".to_owned(),
    };
    format!("{disc}/{ext}")
}

impl Measured {
    /// The measurements of a probe: `passed` is its success (the active state, or its expectations).
    pub fn new(
        trace: &Trace,
        verdict: &Verdict,
        outcomes: &[Outcome],
        passed: bool,
        duration_seconds: f64,
    ) -> Measured {
        let phases = trace
            .phases
            .iter()
            .filter(|p| matches!(p.status, PhaseStatus::Ok | PhaseStatus::Failed))
            .map(|p| {
                (
                    p.name,
                    p.duration_ms.unwrap_or(0.0).max(0.0) / 1000.0,
                    p.status == PhaseStatus::Ok,
                )
            })
            .collect();
        let failure = (!verdict.ok).then(|| Failure {
            phase: verdict.phase.map_or("", PhaseName::as_str),
            cause: verdict.cause.as_str(),
            error_info: match &verdict.error_info {
                None => String::new(),
                Some(c) => codes::lookup(Table::ErrorInfo, c.code)
                    .map_or_else(|| "unknown".to_owned(), |row| row.name.to_owned()),
            },
            mstsc: mstsc_label(verdict),
        });
        let tls = trace.events().find_map(|(_, e)| match &e.kind {
            EventKind::TlsEstablished {
                version,
                cipher_suite,
            } => Some((bounded_name(version), bounded_name(cipher_suite))),
            _ => None,
        });
        let protocol = trace.pdus().find_map(|(_, p)| match &p.info {
            PduInfo::X224ConnectionConfirm { negotiation } if p.from == Side::Server => {
                match negotiation {
                    Negotiation::Response {
                        selected_protocol, ..
                    } => Some(
                        codes::lookup(Table::SecurityProtocol, *selected_protocol)
                            .map_or("other", |row| row.name),
                    ),
                    // No negotiation data: Standard RDP Security ([2.2.1.2]).
                    Negotiation::None => codes::lookup(
                        Table::SecurityProtocol,
                        codes::security_protocol::PROTOCOL_RDP,
                    )
                    .map(|row| row.name),
                    Negotiation::Failure { .. } => None,
                }
            }
            _ => None,
        });
        let leaf = trace.pdus().find_map(|(_, p)| match &p.info {
            PduInfo::TlsCertificate { chain } if p.from == Side::Server => chain.first(),
            _ => None,
        });
        let cert_not_after = leaf
            .map(|c| c.not_after.as_str())
            .or_else(|| {
                trace
                    .phase(PhaseName::Tls)
                    .facts
                    .get(Fact::CertNotAfter)
                    .and_then(|v| v.as_str())
            })
            .and_then(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| t.unix_timestamp());
        let problems: Vec<CertProblem> = trace
            .events()
            .filter_map(|(_, e)| match &e.kind {
                EventKind::CertificateProblem { problem, .. } => Some(problem.clone()),
                _ => None,
            })
            .collect();
        let cert_seen = leaf.is_some() || cert_not_after.is_some() || !problems.is_empty();
        Measured {
            success: passed,
            duration_seconds,
            phases,
            failure,
            expectations: outcomes
                .iter()
                .map(|o| (o.expectation.clone(), o.holds))
                .collect(),
            tls,
            protocol,
            cert_not_after,
            cert_problems: cert_seen.then_some(problems),
        }
    }

    /// The text exposition of these measurements.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        type Labels = Vec<(&'static str, String)>;
        type FloatGauge = Gauge<f64, AtomicU64>;
        let mut registry = Registry::default();
        let gauge = |registry: &mut Registry, doc: MetricDoc, value: f64| {
            let g = FloatGauge::default();
            g.set(value);
            registry.register(doc.name, doc.help, g);
        };
        let family = |registry: &mut Registry, doc: MetricDoc, series: Vec<(Labels, f64)>| {
            if series.is_empty() {
                return;
            }
            let f = Family::<Labels, FloatGauge>::default();
            for (labels, value) in series {
                f.get_or_create(&labels).set(value);
            }
            registry.register(doc.name, doc.help, f);
        };
        let one = |b: bool| if b { 1.0 } else { 0.0 };
        gauge(&mut registry, SUCCESS, one(self.success));
        gauge(&mut registry, DURATION, self.duration_seconds);
        family(
            &mut registry,
            PHASE_DURATION,
            self.phases
                .iter()
                .map(|(p, s, _)| (vec![("phase", p.as_str().to_owned())], *s))
                .collect(),
        );
        family(
            &mut registry,
            PHASE_OK,
            self.phases
                .iter()
                .map(|(p, _, ok)| (vec![("phase", p.as_str().to_owned())], one(*ok)))
                .collect(),
        );
        if let Some(f) = &self.failure {
            family(
                &mut registry,
                FAILURE,
                vec![(
                    vec![
                        ("phase", f.phase.to_owned()),
                        ("cause", f.cause.to_owned()),
                        ("error_info", f.error_info.clone()),
                        ("mstsc", f.mstsc.clone()),
                    ],
                    1.0,
                )],
            );
        }
        family(
            &mut registry,
            EXPECTATION,
            self.expectations
                .iter()
                .map(|(e, holds)| (vec![("expectation", e.clone())], one(*holds)))
                .collect(),
        );
        if let Some((version, suite)) = &self.tls {
            family(
                &mut registry,
                TLS_VERSION,
                vec![(
                    vec![
                        ("version", version.clone()),
                        ("cipher_suite", suite.clone()),
                    ],
                    1.0,
                )],
            );
        }
        if let Some(p) = self.protocol {
            family(
                &mut registry,
                SECURITY_PROTOCOL,
                vec![(vec![("protocol", p.to_owned())], 1.0)],
            );
        }
        if let Some(t) = self.cert_not_after {
            gauge(&mut registry, CERT_NOT_AFTER, t as f64);
        }
        if let Some(problems) = &self.cert_problems {
            family(
                &mut registry,
                CERT_PROBLEM,
                CERT_PROBLEMS
                    .iter()
                    .map(|(kind, label)| {
                        (
                            vec![("problem", (*label).to_owned())],
                            one(problems.contains(kind)),
                        )
                    })
                    .collect(),
            );
        }
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_from_peers_are_bounded() {
        assert_eq!(
            bounded_name("TLS13_AES_256_GCM_SHA384"),
            "TLS13_AES_256_GCM_SHA384"
        );
        assert_eq!(bounded_name("TLS 1.3"), "TLS 1.3");
        assert_eq!(bounded_name("a\"b"), "other");
        assert_eq!(bounded_name(&"x".repeat(65)), "other");
        assert_eq!(bounded_name(""), "other");
    }

    #[test]
    fn the_exposition_has_the_documented_names_only() {
        let m = Measured {
            success: false,
            duration_seconds: 0.25,
            phases: vec![
                (PhaseName::Tcp, 0.001, true),
                (PhaseName::X224, 0.002, false),
            ],
            failure: Some(Failure {
                phase: "x224",
                cause: "negotiation_failure",
                error_info: String::new(),
                mstsc: "0xb09/0x0".to_owned(),
            }),
            expectations: vec![("active".to_owned(), false)],
            tls: None,
            protocol: None,
            cert_not_after: None,
            cert_problems: None,
        };
        let text = m.encode().unwrap();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                PROBE_METRICS.iter().any(|d| d.name == name),
                "{name} undocumented:\n{text}"
            );
        }
        assert!(text.contains("rdptrace_probe_success 0"), "{text}");
        assert!(
            text.contains(r#"rdptrace_phase_ok{phase="x224"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rdptrace_failure_info{phase="x224",cause="negotiation_failure",error_info="",mstsc="0xb09/0x0"} 1"#),
            "{text}"
        );
    }
}
