//! Round trip: for every scenario of the built-in target, the probe writes its session as a pcapng with
//! the TLS secrets embedded, and `replay` of that capture gives the same phases and verdict as the probe.

mod support;

use std::time::Duration;

use rdptrace::probe::{Credentials, Password, ProbeConfig};
use rdptrace::serve::{Target, TargetConfig, scenario};
use rdptrace::trace::Fact;
use rdptrace::trace::{PhaseName, PhaseStatus, Trace};
use rdptrace::verdict::Verdict;
use support::{TempDir, block_on};

fn statuses(trace: &Trace) -> Vec<(PhaseName, PhaseStatus)> {
    trace.phases.iter().map(|p| (p.name, p.status)).collect()
}

/// What must agree between the live view and the replay.
fn essence(v: &Verdict) -> String {
    format!(
        "ok={} phase={:?} cause={} error_info={:?} mstsc={:?}",
        v.ok,
        v.phase,
        v.cause.as_str(),
        v.error_info.as_ref().map(|c| c.code),
        v.mstsc
            .as_ref()
            .map(|m| (m.disc_reason.code, m.extended_code().unwrap_or(u32::MAX)))
    )
}

async fn probe_with_capture(
    s: &'static scenario::Scenario,
    dir: &std::path::Path,
) -> Option<(Trace, Verdict, std::path::PathBuf)> {
    let config = TargetConfig::new(s);
    let identity = config.identity.clone();
    let target = Target::bind(config).await.ok()?;
    let addr = target.local_addr();
    let server = target.clone();
    let served = tokio::spawn(async move { server.serve_one().await });
    let path = dir.join(format!("{}.pcapng", s.name));
    let mut cfg = ProbeConfig::new(&addr.to_string()).ok()?;
    cfg.credentials = Some(Credentials {
        user: identity.user.clone(),
        domain: None,
        password: Password::new(identity.password().to_owned()),
    });
    cfg.timeout = Duration::from_secs(20);
    cfg.phase_timeout = Duration::from_secs(3);
    s.probe.apply(&mut cfg);
    cfg.watch = Duration::from_millis(300);
    cfg.pcap = Some(path.clone());
    cfg.embed_secrets = true;
    let trace = rdptrace::probe::probe(&cfg).await;
    served.abort();
    let verdict = rdptrace::diagnose::diagnose(&trace);
    Some((trace, verdict, path))
}

#[test]
fn replay_of_the_probe_capture_agrees_with_the_probe_for_every_scenario() {
    let dir = TempDir::new("roundtrip");
    let mut mismatches = Vec::new();
    let mut checked = 0;
    block_on(async {
        // Bounded concurrency: the scenarios that stall wait for the probe's deadlines.
        // The Kerberos scenarios need a KDC (tests/kerberos_serve.rs).
        let scenarios: Vec<&'static scenario::Scenario> = scenario::catalogue()
            .iter()
            .filter(|s| !s.uses_kerberos())
            .collect();
        for chunk in scenarios.chunks(8) {
            let runs: Vec<_> = chunk
                .iter()
                .map(|&s| {
                    let dir = dir.path().to_path_buf();
                    tokio::spawn(async move { (s.name, probe_with_capture(s, &dir).await) })
                })
                .collect();
            for run in runs {
                let Ok((name, Some((trace, verdict, path)))) = run.await else {
                    mismatches.push("a scenario did not run".to_owned());
                    continue;
                };
                checked += 1;
                let replay =
                    match rdptrace::replay::replay(&path, &rdptrace::replay::Options::default()) {
                        Ok(r) => r,
                        Err(e) => {
                            mismatches.push(format!("{name}: the capture does not replay: {e}"));
                            continue;
                        }
                    };
                if replay.sessions.len() != 1 {
                    mismatches.push(format!(
                        "{name}: {} sessions in the capture",
                        replay.sessions.len()
                    ));
                    continue;
                }
                let session = &replay.sessions[0];
                if essence(&session.verdict) != essence(&verdict) {
                    mismatches.push(format!(
                        "{name}: verdict differs\n  probe:  {}\n  replay: {}",
                        essence(&verdict),
                        essence(&session.verdict)
                    ));
                }
                if statuses(&session.trace) != statuses(&trace) {
                    mismatches.push(format!(
                        "{name}: phases differ\n  probe:  {:?}\n  replay: {:?}",
                        statuses(&trace),
                        statuses(&session.trace)
                    ));
                }
                let decrypted = session
                    .trace
                    .phase(PhaseName::Tls)
                    .facts
                    .get(Fact::Decrypted)
                    .is_some_and(|v| {
                        v.as_str().is_some_and(|s| !s.is_empty()) || v.as_bool() == Some(true)
                    });
                if trace.phase(PhaseName::Tls).status == PhaseStatus::Ok && !decrypted {
                    mismatches.push(format!(
                        "{name}: the replay did not decrypt the TLS session"
                    ));
                }
            }
        }
    });
    assert!(checked >= 2, "the catalogue ran");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
