//! Captures without their secrets: the replay of a capture with its key log is the reference, and the same
//! capture replayed without it must reach the same answer from the sizes of the encrypted records
//! (`src/infer`), or say which answers the records leave open. Never a different one.
//!
//! The captures: every scenario of the built-in target probed over loopback with the probe's capture and key
//! log, under each security the probe offers and with TLS 1.3 and 1.2; real servers (xrdp, FreeRDP's shadow
//! server); the public captures of Windows and FreeRDP peers with their published keys.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rdptrace::probe::{Credentials, Password, ProbeConfig, Security, TlsMax};
use rdptrace::replay::Options;
use rdptrace::serve::scenario::{self, Scenario};
use rdptrace::serve::{Target, TargetConfig};
use rdptrace::trace::PhaseName;
use support::agreement::compare;
use support::{BOUND, TempDir, block_on, require, shared_dir};

/// Probes at the same time.
const PARALLEL: usize = 12;

/// The probe's wait for each answer when the scenario does not ask for another: short, since the only
/// stalls here are the scenarios' own.
const PHASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes scenario `s` with `security` and `tls_max`, writing the capture and key log into `dir`.
async fn probe_captured(
    s: &'static Scenario,
    security: Security,
    tls_max: TlsMax,
    dir: &Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = TargetConfig::new(s);
    let identity = config.identity.clone();
    let target = Target::bind(config).await.expect("the target binds");
    let addr = target.local_addr();
    let server = tokio::spawn(async move { target.serve_one().await });
    let mut cfg = ProbeConfig::new(&addr.to_string()).expect("a target address");
    cfg.credentials = Some(Credentials {
        user: identity.user.clone(),
        domain: None,
        password: Password::new(identity.password().to_owned()),
    });
    cfg.timeout = Duration::from_secs(40);
    cfg.phase_timeout = PHASE_TIMEOUT;
    s.probe.apply(&mut cfg);
    // As `rdptrace demo --security`: the asked security wins over the scenario's own.
    if security != Security::Auto {
        cfg.security = security;
    }
    cfg.watch = Duration::from_millis(300);
    cfg.tls_max = tls_max;
    let name = format!("{}-{security:?}-{tls_max:?}", s.name);
    let pcap = dir.join(format!("{name}.pcapng"));
    let keys = dir.join(format!("{name}.keys"));
    cfg.pcap = Some(pcap.clone());
    cfg.keylog = Some(keys.clone());
    let _ = rdptrace::probe::probe(&cfg).await;
    let _ = tokio::time::timeout(BOUND, server).await;
    (pcap, keys)
}

/// Every scenario, under each security and TLS version: the replay without the key log agrees with the
/// replay with it, and the encrypted records are read (not just left unknown) in most of them.
#[test]
fn every_scenario_replayed_without_its_key_log_agrees_with_the_keyed_replay() {
    let dir = TempDir::new("encrypted-catalogue");
    let root = Arc::new(dir.path().to_path_buf());
    let mut runs = Vec::new();
    for s in scenario::catalogue() {
        for security in [Security::Auto, Security::Nla, Security::Tls] {
            for tls in [TlsMax::Tls13, TlsMax::Tls12] {
                runs.push((s, security, tls));
            }
        }
    }
    let total = runs.len();
    let captures = block_on(async move {
        let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for (s, security, tls) in runs {
            let limit = limit.clone();
            let root = Arc::clone(&root);
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("the semaphore is open");
                probe_captured(s, security, tls, &root).await
            });
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            out.push(done.expect("a probe does not panic"));
        }
        out
    });
    assert_eq!(captures.len(), total);
    let mut problems = Vec::new();
    let mut inferred = 0;
    let mut keyed_captures = 0;
    for (pcap, keys) in &captures {
        // A probe that wrote no secrets (Standard RDP Security, or no TLS at all) has nothing to compare.
        if std::fs::metadata(keys).map_or(true, |m| m.len() == 0) {
            continue;
        }
        keyed_captures += 1;
        let label = pcap.file_name().map(|n| n.to_string_lossy().into_owned());
        let opts = Options {
            keylog: Some(keys.clone()),
            ..Options::default()
        };
        let (n, p) = compare(label.as_deref().unwrap_or("?"), pcap, &opts);
        inferred += n;
        problems.extend(p);
    }
    problems.sort();
    assert!(
        problems.is_empty(),
        "{} disagreements in {keyed_captures} captures:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Most captures carry TLS; each of them is read from its record sizes.
    assert!(
        keyed_captures > total / 2,
        "{keyed_captures} of {total} captures have a key log"
    );
    assert!(
        inferred * 10 >= keyed_captures * 9,
        "{inferred} of {keyed_captures} sessions read from their record sizes"
    );
}

/// The public captures with published server keys (Windows Server 2019 and 2008 R2 with mstsc, FreeRDP):
/// replayed without the keys, each session agrees with its keyed replay.
#[test]
fn public_captures_agree_with_and_without_their_keys() {
    let Some(shared) = shared_dir() else {
        require(false, "../shared/captures/public");
        return;
    };
    let dir = shared.join("captures/public");
    let mut problems = Vec::new();
    let mut inferred = 0;
    for (file, key) in support::PUBLIC_KEYS {
        let opts = Options {
            rsa_keys: vec![dir.join("keys").join(key)],
            ..Options::default()
        };
        let (n, p) = compare(file, &dir.join(file), &opts);
        inferred += n;
        problems.extend(p);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(inferred >= 3, "{inferred} sessions read from their sizes");
}

/// [Zeek's rdp-to-ssl.pcap] session 2: mstsc on Windows 7 to Windows Server 2008 R2, complete (finalization,
/// hundreds of records both ways, the client's Disconnect Provider Ultimatum at the end). Without secrets it
/// was "credssp failed, timed_out"; it reached the active state and the client left.
#[test]
fn a_complete_windows_session_without_secrets_is_not_a_stall() {
    let Some(shared) = shared_dir() else {
        require(false, "../shared/captures/public");
        return;
    };
    let capture = shared.join("captures/public/zeek/rdp-to-ssl.pcap");
    let replay =
        rdptrace::replay::replay(&capture, &Options::default()).expect("the replay starts");
    let session = replay
        .sessions
        .iter()
        .max_by_key(|s| s.trace.pdus().count())
        .expect("a session");
    let v = &session.verdict;
    assert!(v.ok, "{} in {:?}: {}", v.cause.as_str(), v.phase, v.detail);
    let inferred = v.inferred.as_ref().expect("read from the record sizes");
    assert!(inferred.explained && inferred.records > 400, "{inferred:?}");
    let finalization = session.trace.phase(PhaseName::Finalization);
    assert!(
        !finalization.pdus.is_empty(),
        "the finalization PDUs are named: {finalization:?}"
    );
}

/// FreeRDP 3's shadow server (bookworm-backports), a real server nobody here wrote, over TLS with TLS 1.3
/// and 1.2: its captures without the key log agree with the keyed replay.
#[test]
fn freerdp3_shadow_server_without_the_key_log_agrees() {
    if !require(
        support::has_program("freerdp-shadow-cli3") && support::has_program("Xvfb"),
        "freerdp-shadow-cli3 and Xvfb (freerdp3-shadow-x11 from bookworm-backports, xvfb)",
    ) {
        return;
    }
    let dir = TempDir::new("encrypted-shadow3");
    let (port, _servers) = support::peers::start_shadow(
        dir.path(),
        "freerdp-shadow-cli3",
        &["/sec:tls", "-auth"],
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    for tls in [TlsMax::Tls13, TlsMax::Tls12] {
        let mut cfg = ProbeConfig::new(&format!("127.0.0.1:{port}")).expect("an address");
        cfg.security = Security::Tls;
        cfg.tls_max = tls;
        cfg.timeout = Duration::from_secs(30);
        cfg.phase_timeout = PHASE_TIMEOUT;
        cfg.watch = Duration::from_millis(300);
        let pcap = dir.path().join(format!("shadow3-{tls:?}.pcapng"));
        let keys = dir.path().join(format!("shadow3-{tls:?}.keys"));
        cfg.pcap = Some(pcap.clone());
        cfg.keylog = Some(keys.clone());
        let trace = block_on(rdptrace::probe::probe(&cfg));
        let phase = rdptrace::diagnose::diagnose(&trace).phase;
        assert!(
            std::fs::metadata(&keys).is_ok_and(|m| m.len() > 0),
            "no key log; the probe ended in {phase:?}"
        );
        let opts = Options {
            keylog: Some(keys),
            ..Options::default()
        };
        problems.extend(compare(&format!("shadow3 {tls:?}"), &pcap, &opts).1);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
