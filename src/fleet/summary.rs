//! The summary of a run over many targets: counters, the failing targets, the exit code.
//!
//! Memory: counters per phase and cause (a few dozen keys), and one short entry per failing target.

use core::fmt::Write as _;
use std::collections::BTreeMap;

/// What the summary keeps of one finished target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the input (0-based).
    pub position: usize,
    pub target: String,
    pub source: String,
    /// The target passed: it reached the active state, or met its expectations.
    pub passed: bool,
    /// `active` when the connection completed, otherwise the failing phase (`-` when none).
    pub phase: String,
    pub cause: String,
    /// The target's exit code (0 when it passed).
    pub code: u8,
    /// For a target with expectations: how many did not hold.
    pub unmet: Option<usize>,
}

/// Counters over a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub by_phase: BTreeMap<String, usize>,
    pub by_cause: BTreeMap<String, usize>,
    pub with_expectations: usize,
    pub unmet_targets: usize,
    failing: Vec<Entry>,
}

impl Summary {
    pub fn add(&mut self, e: Entry) {
        self.total += 1;
        *self.by_phase.entry(e.phase.clone()).or_default() += 1;
        *self.by_cause.entry(e.cause.clone()).or_default() += 1;
        if let Some(unmet) = e.unmet {
            self.with_expectations += 1;
            if unmet > 0 {
                self.unmet_targets += 1;
            }
        }
        if e.passed {
            self.passed += 1;
        } else {
            self.failing.push(e);
        }
    }

    /// The failing targets, in input order.
    pub fn failing(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.failing.iter().collect();
        v.sort_by_key(|e| e.position);
        v
    }

    /// 0 when every target passed, otherwise the exit code of the first failing target in input order.
    pub fn exit_code(&self) -> u8 {
        self.failing
            .iter()
            .min_by_key(|e| e.position)
            .map_or(0, |e| e.code)
    }

    /// The table printed at the end.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "summary: {} targets, {} passed, {} failed",
            self.total,
            self.passed,
            self.total - self.passed
        );
        let counts = |map: &BTreeMap<String, usize>| {
            let mut v: Vec<(&String, &usize)> = map.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            v.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "  by phase: {}", counts(&self.by_phase));
        let _ = writeln!(out, "  by cause: {}", counts(&self.by_cause));
        if self.with_expectations > 0 {
            let _ = writeln!(
                out,
                "  expectations: {} targets with expectations, {} with some not met",
                self.with_expectations, self.unmet_targets
            );
        }
        let failing = self.failing();
        if !failing.is_empty() {
            let width = failing.iter().map(|e| e.target.len()).max().unwrap_or(0);
            let _ = writeln!(out, "failing targets:");
            for e in failing {
                let what = match e.unmet {
                    Some(n) if n > 0 => {
                        format!("{n} expectations not met ({} {})", e.phase, e.cause)
                    }
                    _ => format!("{} {}", e.phase, e.cause),
                };
                let _ = writeln!(
                    out,
                    "  {:<width$}  {what}  exit {}  ({})",
                    e.target, e.code, e.source
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: usize, passed: bool, phase: &str, cause: &str, code: u8) -> Entry {
        Entry {
            position,
            target: format!("h{position}:3389"),
            source: "argv".to_owned(),
            passed,
            phase: phase.to_owned(),
            cause: cause.to_owned(),
            code,
            unmet: None,
        }
    }

    #[test]
    fn the_first_failure_in_input_order_decides() {
        let mut s = Summary::default();
        s.add(entry(3, false, "x224", "negotiation_failure", 11));
        s.add(entry(0, true, "active", "connected", 0));
        s.add(entry(1, false, "tcp", "refused", 10));
        assert_eq!(s.exit_code(), 10);
        assert_eq!(s.by_cause.get("refused"), Some(&1));
        let text = s.render();
        assert!(
            text.starts_with("summary: 3 targets, 1 passed, 2 failed"),
            "{text}"
        );
        let h1 = text.find("h1:3389").unwrap();
        let h3 = text.find("h3:3389").unwrap();
        assert!(h1 < h3, "{text}");
        let mut ok = Summary::default();
        ok.add(entry(0, true, "active", "connected", 0));
        assert_eq!(ok.exit_code(), 0);
    }
}
