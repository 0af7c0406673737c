//! The probe against the built-in target, in one process, over loopback: the whole trace as a snapshot,
//! the verdict, and the mstsc pair, for each scenario of the first slice.

mod support;

use std::time::Duration;

use rdptrace::probe::{Credentials, Password, ProbeConfig};
use rdptrace::serve::{Target, TargetConfig, scenario};
use rdptrace::trace::Fact;
use rdptrace::trace::{PhaseName, PhaseStatus, Trace};
use rdptrace::verdict::{Basis, Cause, Verdict};
use support::{block_on, normalize};

/// Runs `scenario` (with optional overrides) and probes it with the target's test identity.
fn probe_scenario(name: &str, at: Option<PhaseName>, errinfo: Option<u32>) -> (Trace, Verdict) {
    block_on(async move {
        let scenario = scenario::find(name).expect("scenario exists");
        let config = TargetConfig::new(scenario)
            .with_overrides(at, errinfo)
            .expect("valid overrides");
        let identity = config.identity.clone();
        let target = Target::bind(config).await.expect("bind the target");
        let addr = target.local_addr();
        let server = target.clone();
        let served = tokio::spawn(async move { server.serve_one().await });
        let mut cfg = ProbeConfig::new(&addr.to_string()).expect("target");
        cfg.credentials = Some(Credentials {
            user: identity.user.clone(),
            domain: None,
            password: Password::new(identity.password().to_owned()),
        });
        cfg.timeout = Duration::from_secs(30);
        cfg.phase_timeout = Duration::from_secs(10);
        cfg.watch = Duration::from_millis(300);
        let trace = rdptrace::probe::probe(&cfg).await;
        let _ = tokio::time::timeout(Duration::from_secs(20), served).await;
        let verdict = rdptrace::diagnose::diagnose(&trace);
        (trace, verdict)
    })
}

fn snapshot(trace: &Trace, verdict: &Verdict) -> serde_json::Value {
    let mut doc = rdptrace::report::json::document(trace, verdict);
    normalize(&mut doc);
    doc
}

#[test]
fn denied_connection_is_0x904_0x7_from_a_set_error_info_in_licensing() {
    let (trace, verdict) = probe_scenario("denied-connection", None, None);
    assert!(!verdict.ok);
    assert_eq!(verdict.phase, Some(PhaseName::Licensing));
    assert_eq!(verdict.cause, Cause::ServerErrorInfo);
    let info = verdict.error_info.as_ref().expect("error info");
    assert_eq!(
        (info.code, info.name.as_str()),
        (7, "ERRINFO_SERVER_DENIED_CONNECTION")
    );
    let mstsc = verdict.mstsc.as_ref().expect("mstsc pair");
    assert_eq!(
        (
            mstsc.disc_reason.code,
            mstsc.extended_code().unwrap_or(u32::MAX)
        ),
        (0x904, 0x7)
    );
    assert_eq!(mstsc.basis, Basis::Specified);
    assert_eq!(
        rdptrace::mstsc::mstsc_line(mstsc),
        "Error code 0x904 (socket closed), Extended error code 0x7 (server denied the connection)"
    );
    // The Set Error Info, the ultimatum and the close, in that order, in the licensing phase.
    let licensing = trace.phase(PhaseName::Licensing);
    let names: Vec<&str> = licensing.pdus.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["Set Error Info", "MCS Disconnect Provider Ultimatum"]
    );
    assert!(licensing.events.iter().any(|e| matches!(
        e.kind,
        rdptrace::trace::EventKind::Closed {
            by: rdptrace::trace::Side::Server,
            how: rdptrace::trace::CloseKind::Fin
        }
    )));
    for later in [
        PhaseName::Capabilities,
        PhaseName::Finalization,
        PhaseName::Active,
    ] {
        assert_eq!(trace.phase(later).status, PhaseStatus::NotReached);
    }
    insta::assert_json_snapshot!("denied_connection", snapshot(&trace, &verdict));
}

#[test]
fn healthy_reaches_the_active_state_over_nla() {
    let (trace, verdict) = probe_scenario("healthy", None, None);
    assert!(
        verdict.ok,
        "{}",
        rdptrace::report::text::render(&trace, &verdict, Default::default())
    );
    assert_eq!(verdict.cause, Cause::Connected);
    assert!(verdict.mstsc.is_none());
    for phase in PhaseName::ALL {
        assert_eq!(trace.phase(phase).status, PhaseStatus::Ok, "phase {phase}");
    }
    let x224 = &trace.phase(PhaseName::X224).facts;
    assert_eq!(
        x224.get(Fact::SelectedProtocol).and_then(|v| v.as_str()),
        Some("PROTOCOL_HYBRID_EX")
    );
    let credssp = &trace.phase(PhaseName::Credssp).facts;
    assert_eq!(
        credssp.get(Fact::AuthPackage).and_then(|v| v.as_str()),
        Some("NTLM")
    );
    insta::assert_json_snapshot!("healthy", snapshot(&trace, &verdict));
}

#[test]
fn error_info_can_be_moved_to_another_phase() {
    let (trace, verdict) =
        probe_scenario("denied-connection", Some(PhaseName::McsConnect), Some(0x1a));
    assert_eq!(verdict.phase, Some(PhaseName::McsConnect));
    assert_eq!(verdict.cause, Cause::ServerErrorInfo);
    assert_eq!(verdict.error_info.as_ref().map(|c| c.code), Some(0x1a));
    let mstsc = verdict.mstsc.as_ref().expect("mstsc pair");
    assert_eq!(
        (
            mstsc.disc_reason.code,
            mstsc.extended_code().unwrap_or(u32::MAX)
        ),
        (0x904, 0x1a)
    );
    assert!(
        trace
            .phase(PhaseName::McsConnect)
            .pdus
            .iter()
            .any(|p| p.name == "Set Error Info"),
        "{}",
        rdptrace::report::text::render(&trace, &verdict, Default::default())
    );
}

#[test]
fn the_timeline_of_the_demo() {
    let (trace, verdict) = probe_scenario("denied-connection", None, None);
    let text = rdptrace::report::text::render(&trace, &verdict, Default::default());
    let doc = support::normalize_timeline(&text);
    insta::assert_snapshot!("denied_connection_timeline", doc);
}
