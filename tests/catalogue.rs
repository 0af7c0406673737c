//! The whole catalogue: the probe against the built-in target, every scenario, in one process over loopback,
//! each verdict compared with the scenario's `expected` (and, for certificate problems, with `--strict-cert`
//! too); every mismatch is reported at once. Then a few scenarios through the real binaries, the target in one
//! process and the probe in another. And README.md holds the catalogue's table.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rdptrace::serve::deployment::Deployment;
use rdptrace::serve::scenario::{self, Expected, Scenario};
use rdptrace::serve::{TargetConfig, TestIdentity};
use rdptrace::trace::{CertProblem, EventKind, Trace};
use rdptrace::verdict::Verdict;
use support::{BOUND, ChildGuard, block_on, rdptrace, serve_port};

/// Scenarios probed at the same time.
const PARALLEL: usize = 12;

/// The probe's timeout for each answer when the scenario does not ask for another.
const PHASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one scenario (its target, and its gateway or second target) and probes it with the target's test
/// identity, as `rdptrace demo` does.
async fn probe(s: &'static Scenario, strict_cert: bool) -> (Trace, Verdict) {
    let deployment = Deployment::bind(TargetConfig::new(s), None)
        .await
        .expect("the scenario binds");
    let mut cfg = deployment.probe_config().expect("a probe configuration");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        deployment
            .run_for(BOUND, async {
                let _ = stopped.await;
            })
            .await
    });
    cfg.timeout = Duration::from_secs(40);
    cfg.phase_timeout = PHASE_TIMEOUT;
    s.probe.apply(&mut cfg);
    cfg.watch = Duration::from_millis(500);
    cfg.strict_cert = strict_cert;
    let trace = rdptrace::probe::probe(&cfg).await;
    // The servers' outcomes are not what is tested here.
    let _ = stop.send(());
    let _ = tokio::time::timeout(BOUND, server).await;
    let verdict = rdptrace::diagnose::diagnose(&trace);
    (trace, verdict)
}

/// The certificate problems a trace records.
fn cert_problems(trace: &Trace) -> BTreeSet<&'static str> {
    trace
        .events()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::CertificateProblem { problem, .. } => Some(problem.as_str()),
            _ => None,
        })
        .collect()
}

/// What differs between a verdict and the expected one, in words; empty when they agree.
fn differences(expected: &Expected, trace: &Trace, verdict: &Verdict) -> Vec<String> {
    let mut out = Vec::new();
    if verdict.ok != expected.phase.is_none() {
        out.push(format!(
            "ok {} (expected {})",
            verdict.ok,
            expected.phase.is_none()
        ));
    }
    if verdict.phase != expected.phase {
        out.push(format!(
            "phase {:?} (expected {:?})",
            verdict.phase, expected.phase
        ));
    }
    if verdict.cause != expected.cause {
        out.push(format!(
            "cause {} (expected {})",
            verdict.cause.as_str(),
            expected.cause.as_str()
        ));
    }
    let error_info = verdict.error_info.as_ref().map(|c| c.code);
    if error_info != expected.error_info {
        out.push(format!(
            "error info {error_info:x?} (expected {:x?})",
            expected.error_info
        ));
    }
    let mstsc = verdict
        .mstsc
        .as_ref()
        .map(|m| (m.disc_reason.code, m.extended_code().unwrap_or(u32::MAX)));
    if mstsc != expected.mstsc {
        out.push(format!("mstsc {mstsc:x?} (expected {:x?})", expected.mstsc));
    }
    let problems = cert_problems(trace);
    let want: BTreeSet<&'static str> = expected
        .cert_problems
        .iter()
        .map(CertProblem::as_str)
        .collect();
    if problems != want {
        out.push(format!(
            "certificate problems {problems:?} (expected {want:?})"
        ));
    }
    let words = format!("{} {}", verdict.detail, verdict.hints.join(" "));
    for mention in expected.mentions {
        if !words.contains(mention) {
            out.push(format!("no mention of {mention:?} in: {words}"));
        }
    }
    out
}

#[test]
fn every_scenario_gets_its_verdict() {
    // The Kerberos scenarios need a KDC: tests/kerberos_serve.rs runs them against one.
    let runs: Vec<(&'static Scenario, bool)> = scenario::catalogue()
        .iter()
        .filter(|s| !s.uses_kerberos())
        .flat_map(|s| {
            let strict = !s.expected.cert_problems.is_empty() || s.name == "healthy";
            std::iter::once((s, false)).chain(strict.then_some((s, true)))
        })
        .collect();
    let mismatches = block_on(async move {
        let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for (s, strict) in runs {
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("the semaphore is open");
                let (trace, verdict) = probe(s, strict).await;
                let expected = if strict {
                    s.expected.strict()
                } else {
                    s.expected
                };
                let diff = differences(&expected, &trace, &verdict);
                (s.name, strict, diff, verdict)
            });
        }
        let mut mismatches = Vec::new();
        let mut count = 0;
        while let Some(done) = tasks.join_next().await {
            let (name, strict, diff, verdict) = done.expect("a scenario run does not panic");
            count += 1;
            if !diff.is_empty() {
                mismatches.push(format!(
                    "{name}{}: {}\n    verdict: {} in {:?}: {}",
                    if strict { " (--strict-cert)" } else { "" },
                    diff.join("; "),
                    verdict.cause.as_str(),
                    verdict.phase,
                    verdict.detail
                ));
            }
        }
        let with_kdc = scenario::catalogue()
            .iter()
            .filter(|s| s.uses_kerberos())
            .count();
        assert!(count >= scenario::catalogue().len() - with_kdc);
        mismatches.sort();
        mismatches
    });
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// `rdptrace serve --once` in one process, `rdptrace probe --json` in another.
fn through_the_binaries(name: &str, probe_args: &[&str]) -> serde_json::Value {
    let mut server = rdptrace()
        .args([
            "serve",
            "--scenario",
            name,
            "--listen",
            "127.0.0.1:0",
            "--once",
        ])
        .env_remove("RDPTRACE_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rdptrace serve starts");
    let stdout = server.stdout.take().expect("piped stdout");
    let mut server = ChildGuard(server);
    let (port, _, lines) = serve_port(stdout);
    // The rest of what the target says, read to its end so that it can say it.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let output = rdptrace()
        .args(["probe", "--json", "-u", TestIdentity::DEFAULT_USER])
        .args(probe_args)
        .arg(format!("127.0.0.1:{port}"))
        .env("RDPTRACE_PASSWORD", TestIdentity::DEFAULT_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("rdptrace probe runs");
    let _ = server.0.wait();
    let _ = rest.join();
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"))
}

/// A verdict as (phase, cause, error info, mstsc pair).
type Summary = (Option<String>, String, Option<u64>, Option<(u64, u64)>);

/// The verdict of a JSON document.
fn verdict_of(doc: &serde_json::Value) -> Summary {
    let v = &doc["verdict"];
    (
        v["phase"].as_str().map(str::to_owned),
        v["cause"].as_str().unwrap_or_default().to_owned(),
        v["error_info"]["code"].as_u64(),
        v["mstsc"]["disc_reason"]["code"]
            .as_u64()
            .zip(v["mstsc"]["extended"]["code"].as_u64()),
    )
}

fn expected_of(e: &Expected) -> Summary {
    (
        e.phase.map(|p| p.as_str().to_owned()),
        e.cause.as_str().to_owned(),
        e.error_info.map(u64::from),
        e.mstsc.map(|(d, x)| (u64::from(d), u64::from(x))),
    )
}

#[test]
fn spot_checks_through_the_binaries() {
    for (name, args, strict) in [
        ("nla-account-locked-out", &[][..], false),
        ("tls-protocol-version", &[][..], false),
        ("cert-expired", &["--strict-cert"][..], true),
        ("stall-in-licensing", &["--phase-timeout", "1"][..], false),
        ("errinfo-0x0009", &[][..], false),
        ("license-no-license-server", &[][..], false),
    ] {
        let s = scenario::find(name).expect("in the catalogue");
        let expected = if strict {
            s.expected.strict()
        } else {
            s.expected
        };
        let doc = through_the_binaries(name, args);
        assert_eq!(verdict_of(&doc), expected_of(&expected), "{name}: {doc}");
    }
}

#[test]
fn spot_checks_through_demo() {
    for (name, args, strict) in [
        // The scenario's own phase timeout: without it the probe would wait 5 s, and still time out.
        ("stall-in-mcs-connect", &[][..], false),
        ("cert-weak-key", &["--strict-cert"][..], true),
        ("tls-cleartext-ultimatum", &[][..], false),
    ] {
        let s = scenario::find(name).expect("in the catalogue");
        let expected = if strict {
            s.expected.strict()
        } else {
            s.expected
        };
        let output = rdptrace()
            .args(["demo", name, "--json"])
            .args(args)
            .env_remove("RDPTRACE_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .expect("rdptrace demo runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let doc: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
        assert_eq!(verdict_of(&doc), expected_of(&expected), "{name}: {doc}");
        if let Some(ms) = s.probe.phase_timeout_ms {
            let waited = doc["phases"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| p["events"].as_array().into_iter().flatten())
                .find_map(|e| e["deadline"]["seconds"].as_f64());
            assert_eq!(waited, Some(ms as f64 / 1000.0), "{name}: {doc}");
        }
    }
}

#[test]
fn the_readme_holds_the_catalogue_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = "<!-- catalogue -->\n";
    let end = "<!-- /catalogue -->";
    let from = readme.find(start).expect("the opening marker") + start.len();
    let to = readme.find(end).expect("the closing marker");
    let table = scenario::markdown_table();
    assert!(
        readme.get(from..to) == Some(table.as_str()),
        "README.md between the markers is not scenario::markdown_table(); regenerate it with\n  cargo test --test catalogue -- --ignored write_the_readme_table"
    );
}

/// Writes the catalogue table into README.md between the markers (run by hand after changing the catalogue).
#[test]
#[ignore = "writes README.md"]
fn write_the_readme_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let start = "<!-- catalogue -->\n";
    let end = "<!-- /catalogue -->";
    let from = readme.find(start).expect("the opening marker") + start.len();
    let to = readme.find(end).expect("the closing marker");
    let (Some(before), Some(after)) = (readme.get(..from), readme.get(to..)) else {
        panic!("the markers are out of order in README.md");
    };
    let out = format!("{before}{}{after}", scenario::markdown_table());
    std::fs::write(path, out).expect("README.md is written");
}
