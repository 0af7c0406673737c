//! What the exporter keeps between requests: its own metrics (`/metrics`) and the last probes (`/` and
//! `/results`), bounded by `--keep`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Why a request got no probe: the `reason` label of `rdptrace_exporter_requests_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `--max-probes` probes were running.
    Busy,
    /// The request named no target, an unknown module, a target the module may not probe...
    BadRequest,
    /// The probe's task ended without a result (a panic).
    Internal,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Busy => "busy",
            Refused::BadRequest => "bad_request",
            Refused::Internal => "internal",
        }
    }
}

/// The exporter's own metrics.
pub struct Own {
    registry: Registry,
    probes: Family<Vec<(&'static str, String)>, Counter>,
    refused: Family<Vec<(&'static str, &'static str)>, Counter>,
    in_flight: Gauge,
    durations: Family<Vec<(&'static str, String)>, Histogram>,
}

/// The buckets of `rdptrace_exporter_probe_duration_seconds`.
const BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Own {
    pub fn new(modules: usize, max_probes: usize) -> Own {
        let mut registry = Registry::default();
        let probes = Family::default();
        registry.register(
            "rdptrace_exporter_probes",
            "Probes run, by module and result (success or failure)",
            probes.clone(),
        );
        let refused = Family::default();
        registry.register(
            "rdptrace_exporter_requests_refused",
            "Probe requests answered with an error, by reason (busy, bad_request, internal)",
            refused.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "rdptrace_exporter_probes_in_flight",
            "Probes running now",
            in_flight.clone(),
        );
        let durations =
            Family::<Vec<(&'static str, String)>, Histogram>::new_with_constructor(|| {
                Histogram::new(BUCKETS)
            });
        registry.register(
            "rdptrace_exporter_probe_duration_seconds",
            "Seconds each probe took, by module",
            durations.clone(),
        );
        let limit: Gauge<i64> = Gauge::default();
        limit.set(i64::try_from(max_probes).unwrap_or(i64::MAX));
        registry.register(
            "rdptrace_exporter_max_probes",
            "Probes that may run at once (--max-probes)",
            limit,
        );
        let module_count: Gauge<i64> = Gauge::default();
        module_count.set(i64::try_from(modules).unwrap_or(i64::MAX));
        registry.register(
            "rdptrace_exporter_modules",
            "Modules in the configuration",
            module_count,
        );
        let build = Family::<Vec<(&'static str, &'static str)>, Gauge<f64, AtomicU64>>::default();
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))])
            .set(1.0);
        registry.register(
            "rdptrace_exporter_build_info",
            "1, with the version of rdptrace",
            build,
        );
        Own {
            registry,
            probes,
            refused,
            in_flight,
            durations,
        }
    }

    pub fn probed(&self, module: &str, success: bool, seconds: f64) {
        let result = if success { "success" } else { "failure" };
        self.probes
            .get_or_create(&vec![
                ("module", module.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
        self.durations
            .get_or_create(&vec![("module", module.to_owned())])
            .observe(seconds);
    }

    pub fn refused(&self, why: Refused) {
        self.refused
            .get_or_create(&vec![("reason", why.as_str())])
            .inc();
    }

    /// A probe starts; the guard counts it running until it drops.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// The text exposition of the exporter's own metrics.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// A running probe, counted in `rdptrace_exporter_probes_in_flight`.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One finished probe, for the status page and `/results`.
#[derive(Debug, Clone)]
pub struct Recent {
    /// RFC 3339.
    pub at: String,
    pub target: String,
    pub module: String,
    pub success: bool,
    /// `active`, or the failed phase.
    pub phase: String,
    pub cause: String,
    pub detail: String,
    pub seconds: f64,
    /// The `rdptrace/1` document, one line with its newline; `None` when larger than [`MAX_DOCUMENT`].
    pub document: Option<String>,
}

/// The largest document kept for `/results`: a trace at its bounds can be megabytes.
pub const MAX_DOCUMENT: usize = 256 * 1024;

/// The last probes, newest last, at most `keep`.
pub struct Recents {
    keep: usize,
    items: Mutex<VecDeque<Recent>>,
}

impl Recents {
    pub fn new(keep: usize) -> Recents {
        Recents {
            keep,
            items: Mutex::new(VecDeque::with_capacity(keep.min(1024))),
        }
    }

    pub fn push(&self, r: Recent) {
        if self.keep == 0 {
            return;
        }
        // A poisoned lock only means a panic elsewhere while it was held: the list is still a list.
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        while items.len() >= self.keep {
            items.pop_front();
        }
        items.push_back(r);
    }

    /// A copy of the list, oldest first.
    pub fn snapshot(&self) -> Vec<Recent> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent(target: &str) -> Recent {
        Recent {
            at: String::new(),
            target: target.to_owned(),
            module: "m".to_owned(),
            success: true,
            phase: "active".to_owned(),
            cause: "connected".to_owned(),
            detail: String::new(),
            seconds: 0.0,
            document: None,
        }
    }

    #[test]
    fn the_list_keeps_the_last_ones() {
        let r = Recents::new(2);
        for t in ["a", "b", "c"] {
            r.push(recent(t));
        }
        let names: Vec<String> = r.snapshot().into_iter().map(|r| r.target).collect();
        assert_eq!(names, ["b", "c"]);
        let none = Recents::new(0);
        none.push(recent("a"));
        assert!(none.snapshot().is_empty());
    }

    #[test]
    fn own_metrics_encode() {
        let own = Own::new(2, 8);
        own.probed("tls", true, 0.02);
        own.refused(Refused::Busy);
        {
            let _running = own.start();
            assert!(
                own.encode()
                    .unwrap()
                    .contains("rdptrace_exporter_probes_in_flight 1")
            );
        }
        let text = own.encode().unwrap();
        assert!(
            text.contains("rdptrace_exporter_probes_in_flight 0"),
            "{text}"
        );
        assert!(
            text.contains(r#"rdptrace_exporter_probes_total{module="tls",result="success"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rdptrace_exporter_requests_refused_total{reason="busy"} 1"#),
            "{text}"
        );
        assert!(text.contains("rdptrace_exporter_max_probes 8"), "{text}");
    }
}
