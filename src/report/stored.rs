//! Stored results read back: the part of an `rdptrace/1` document (README.md, "JSON output") that
//! `rdptrace report` needs, from `probe --json`, fleet shards, `replay --json` and the exporter's
//! `/results`. Members it does not need are skipped as they are parsed, never kept.

// Bytes from files: no panics (see ARCHITECTURE.md, Hostile input).
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

use serde::Deserialize;

use crate::command::{EXIT_FAILURE, EXIT_UNMET};
use crate::fleet::summary::Entry;
use crate::trace::PhaseName;
use crate::verdict::{EXIT_INCOMPLETE, phase_exit_code};

/// PDUs of a phase kept for the waterfall's hover text.
pub const MAX_PDUS_SHOWN: usize = 8;

/// Why a line is not a stored result.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("not JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("schema {0}, not rdptrace/1")]
    Schema(String),
    #[error("no schema member: not an rdptrace/1 document")]
    NoSchema,
    #[error("no verdict and no error")]
    NoVerdict,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Code {
    pub code: u32,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Mstsc {
    pub disc_reason: Code,
    pub extended: Code,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Verdict {
    pub ok: bool,
    pub phase: Option<String>,
    pub cause: String,
    #[serde(default)]
    pub detail: String,
    pub error_info: Option<Code>,
    pub mstsc: Option<Mstsc>,
    #[serde(default)]
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Pdu {
    #[serde(default)]
    pub at_ms: f64,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub summary: String,
}

/// Keeps the first [`MAX_PDUS_SHOWN`] PDUs of a phase and skips the rest as they are parsed.
fn first_pdus<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Pdu>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<Pdu>;
        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a list of PDUs")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Pdu>, A::Error> {
            let mut out = Vec::new();
            while out.len() < MAX_PDUS_SHOWN {
                match seq.next_element::<Pdu>()? {
                    Some(p) => out.push(p),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }
    d.deserialize_seq(Visitor)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Phase {
    pub name: String,
    pub status: String,
    pub start_ms: Option<f64>,
    pub duration_ms: Option<f64>,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
    #[serde(default, deserialize_with = "first_pdus")]
    pub pdus: Vec<Pdu>,
}

impl Phase {
    /// The phase's name when it is one of the twelve.
    pub fn phase(&self) -> Option<PhaseName> {
        PhaseName::parse(&self.name)
    }

    /// Whether the connection got into this phase (it completed or failed there).
    pub fn reached(&self) -> bool {
        matches!(self.status.as_str(), "ok" | "failed")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Outcome {
    pub expectation: String,
    pub holds: bool,
    #[serde(default)]
    pub seen: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Origin {
    pub kind: String,
    pub file: Option<String>,
    pub session: Option<u64>,
}

/// One stored result.
#[derive(Debug, Clone, Deserialize)]
pub struct Stored {
    schema: Option<String>,
    #[serde(default)]
    pub target: String,
    /// A targets file's `name=`.
    pub name: Option<String>,
    /// The exporter's module.
    pub module: Option<String>,
    pub origin: Option<Origin>,
    pub started_at: Option<String>,
    #[serde(default)]
    pub phases: Vec<Phase>,
    pub verdict: Option<Verdict>,
    #[serde(default)]
    pub expectations: Vec<Outcome>,
    /// A fleet run's internal error for this target, in place of a verdict.
    pub error: Option<String>,
}

impl Stored {
    /// Parses one line.
    pub fn parse(line: &[u8]) -> Result<Stored, StoredError> {
        let s: Stored = serde_json::from_slice(line).map_err(StoredError::Json)?;
        match s.schema.as_deref() {
            Some(crate::report::SCHEMA) => {}
            Some(other) => return Err(StoredError::Schema(other.to_owned())),
            None => return Err(StoredError::NoSchema),
        }
        if s.verdict.is_none() && s.error.is_none() {
            return Err(StoredError::NoVerdict);
        }
        Ok(s)
    }

    /// What the result is called: `name=`, else the target; a replayed session says which.
    pub fn label(&self) -> String {
        let base = self.name.clone().unwrap_or_else(|| self.target.clone());
        match (&self.origin, &self.module) {
            (Some(o), _) if o.kind == "replay" => format!(
                "{base} ({} session {})",
                o.file.as_deref().unwrap_or("capture"),
                o.session.unwrap_or(0)
            ),
            (_, Some(m)) => format!("{base} (module {m})"),
            _ => base,
        }
    }

    /// It passed: it reached the active state or, with expectations, they all hold.
    pub fn passed(&self) -> bool {
        match &self.verdict {
            None => false,
            Some(_) if !self.expectations.is_empty() => self.expectations.iter().all(|o| o.holds),
            Some(v) => v.ok,
        }
    }

    /// `active` when it connected, the failed phase, or `-`.
    pub fn phase_word(&self) -> String {
        match &self.verdict {
            Some(v) if v.ok => "active".to_owned(),
            Some(v) => v
                .phase
                .as_deref()
                .and_then(PhaseName::parse)
                .map_or("-", PhaseName::as_str)
                .to_owned(),
            None => "-".to_owned(),
        }
    }

    pub fn cause(&self) -> String {
        match &self.verdict {
            Some(v) => crate::verdict::Cause::parse(&v.cause)
                .map_or("unknown", |c| c.as_str())
                .to_owned(),
            None => "internal_error".to_owned(),
        }
    }

    /// The exit code a probe of it had: 0, [`EXIT_UNMET`], the failed phase's, [`EXIT_INCOMPLETE`], or
    /// [`EXIT_FAILURE`] for an internal error.
    pub fn code(&self) -> u8 {
        let Some(v) = &self.verdict else {
            return EXIT_FAILURE;
        };
        if self.passed() {
            0
        } else if !self.expectations.is_empty() {
            EXIT_UNMET
        } else {
            v.phase
                .as_deref()
                .and_then(PhaseName::parse)
                .map_or(EXIT_INCOMPLETE, phase_exit_code)
        }
    }

    /// What the summary keeps of it.
    pub fn entry(&self, position: usize, source: String) -> Entry {
        Entry {
            position,
            target: self.label(),
            source,
            passed: self.passed(),
            phase: self.phase_word(),
            cause: self.cause(),
            code: self.code(),
            unmet: (!self.expectations.is_empty())
                .then(|| self.expectations.iter().filter(|o| !o.holds).count()),
        }
    }

    /// The failure of a JUnit case: (message, type), `None` when it passed.
    pub fn failure(&self) -> Option<(String, String)> {
        if self.passed() {
            return None;
        }
        let unmet: Vec<String> = self
            .expectations
            .iter()
            .filter(|o| !o.holds)
            .map(|o| format!("{}: seen {}", o.expectation, o.seen))
            .collect();
        Some(match (&self.verdict, &self.error) {
            _ if !unmet.is_empty() => (unmet.join("; "), "expectation".to_owned()),
            (Some(v), _) => (v.detail.clone(), self.cause()),
            (None, e) => (e.clone().unwrap_or_default(), "internal_error".to_owned()),
        })
    }

    /// The verdict and its evidence, as text (a JUnit case's system-out).
    pub fn text(&self) -> String {
        let mut out = format!("{} {}\n", self.phase_word(), self.cause());
        if let Some(v) = &self.verdict {
            out.push_str(&v.detail);
            out.push('\n');
            if let Some(m) = &v.mstsc {
                out.push_str(&format!(
                    "mstsc: 0x{:x} / 0x{:x}\n",
                    m.disc_reason.code, m.extended.code
                ));
            }
            for e in &v.evidence {
                out.push_str(&format!("evidence: {e}\n"));
            }
        }
        for o in &self.expectations {
            out.push_str(&format!(
                "{} {}: seen {}\n",
                if o.holds { "PASS" } else { "FAIL" },
                o.expectation,
                o.seen
            ));
        }
        if let Some(e) = &self.error {
            out.push_str(e);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_and_others_are_named() {
        let line = br#"{"schema":"rdptrace/1","target":"h:3389","phases":[{"name":"tcp","status":"ok","start_ms":0.0,"duration_ms":1.0,"pdus":[]}],"verdict":{"ok":false,"phase":"tcp","cause":"refused","detail":"refused","error_info":null,"mstsc":null,"evidence":[]},"extra":{"ignored":[1,2]}}"#;
        let s = Stored::parse(line).unwrap();
        assert!(!s.passed());
        assert_eq!(s.code(), 10);
        assert_eq!(s.phase_word(), "tcp");
        let e = Stored::parse(br#"{"schema":"rdptrace-scan/1"}"#).unwrap_err();
        assert!(e.to_string().contains("rdptrace-scan/1"), "{e}");
        assert!(Stored::parse(b"{\"target\":1").is_err());
        assert!(Stored::parse(br#"{"target":"x"}"#).is_err());
        let err = Stored::parse(
            br#"{"schema":"rdptrace/1","target":"h","error":"internal error: boom"}"#,
        )
        .unwrap();
        assert_eq!(err.code(), EXIT_FAILURE);
        assert_eq!(err.cause(), "internal_error");
    }

    #[test]
    fn pdus_beyond_the_first_are_skipped() {
        let pdus: Vec<String> = (0..50)
            .map(|i| {
                format!(r#"{{"at_ms":{i},"from":"server","name":"P{i}","summary":"","info":{{}}}}"#)
            })
            .collect();
        let line = format!(
            r#"{{"schema":"rdptrace/1","target":"h","phases":[{{"name":"active","status":"ok","start_ms":0,"duration_ms":1,"pdus":[{}]}}],"verdict":{{"ok":true,"phase":null,"cause":"connected"}}}}"#,
            pdus.join(",")
        );
        let s = Stored::parse(line.as_bytes()).unwrap();
        assert_eq!(s.phases[0].pdus.len(), MAX_PDUS_SHOWN);
        assert!(s.passed());
    }
}
