//! The probe against Debian's xrdp, started by the test from a private copy of its configuration.

mod support;

use std::time::Duration;

use rdptrace::probe::{ProbeConfig, Security};
use rdptrace::trace::Fact;
use rdptrace::trace::{PhaseName, PhaseStatus};
use rdptrace::verdict::Cause;
use support::xrdp::{start_xrdp, xrdp_available};
use support::*;

fn config(port: u16, security: Security) -> ProbeConfig {
    let mut cfg = ProbeConfig::new(&format!("127.0.0.1:{port}")).unwrap();
    cfg.security = security;
    cfg.timeout = Duration::from_secs(30);
    cfg.phase_timeout = Duration::from_secs(10);
    cfg.watch = Duration::from_millis(500);
    cfg
}

#[test]
fn xrdp_over_tls_reaches_the_active_state() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("xrdp-tls");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(dir.path(), port, &[("security_layer", "tls")]) else {
        panic!("xrdp did not start on port {port}");
    };
    let trace = block_on(rdptrace::probe::probe(&config(port, Security::Auto)));
    let verdict = rdptrace::diagnose::diagnose(&trace);
    assert!(
        verdict.ok,
        "{}",
        rdptrace::report::text::render(&trace, &verdict, Default::default())
    );
    assert_eq!(verdict.cause, Cause::Connected);
    for phase in [
        PhaseName::Tcp,
        PhaseName::X224,
        PhaseName::Tls,
        PhaseName::McsConnect,
        PhaseName::ChannelJoin,
        PhaseName::SecureSettings,
        PhaseName::Licensing,
        PhaseName::Capabilities,
        PhaseName::Finalization,
        PhaseName::Active,
    ] {
        assert_eq!(trace.phase(phase).status, PhaseStatus::Ok, "phase {phase}");
    }
    assert_eq!(trace.phase(PhaseName::Credssp).status, PhaseStatus::Skipped);
    let x224 = &trace.phase(PhaseName::X224).facts;
    assert_eq!(
        x224.get(Fact::SelectedProtocol).and_then(|v| v.as_str()),
        Some("PROTOCOL_SSL")
    );
    let tls = &trace.phase(PhaseName::Tls).facts;
    let version = tls
        .get(Fact::TlsVersion)
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    assert!(
        version == "TLS 1.3" || version == "TLS 1.2",
        "tls_version {version}"
    );
    assert!(
        tls.get(Fact::CertSubject)
            .and_then(|v| v.as_str())
            .is_some_and(|s| s.contains("CN="))
    );
    // xrdp does the full license exchange (LAB.md): License Request, New License Request, STATUS_VALID_CLIENT.
    let licensing = &trace.phase(PhaseName::Licensing).facts;
    assert_eq!(
        licensing
            .get(Fact::LicenseExchange)
            .and_then(|v| v.as_str()),
        Some("Server License Request, Client New License Request, Licensing Error Message")
    );
    let names: Vec<&str> = trace
        .phase(PhaseName::Finalization)
        .pdus
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert!(names.contains(&"Font Map"), "{names:?}");
}

#[test]
fn xrdp_with_rc4_standard_security_reaches_the_active_state() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("xrdp-rc4");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(
        dir.path(),
        port,
        &[("security_layer", "rdp"), ("crypt_level", "high")],
    ) else {
        panic!("xrdp did not start on port {port}");
    };
    let trace = block_on(rdptrace::probe::probe(&config(port, Security::Rdp)));
    let verdict = rdptrace::diagnose::diagnose(&trace);
    assert_eq!(
        verdict.cause,
        Cause::Connected,
        "{}",
        rdptrace::report::text::render(&trace, &verdict, Default::default())
    );
    let mcs = &trace.phase(PhaseName::McsConnect).facts;
    assert_eq!(
        mcs.get(Fact::EncryptionLevel).and_then(|v| v.as_str()),
        Some("ENCRYPTION_LEVEL_HIGH")
    );
    let secure = &trace.phase(PhaseName::SecureSettings).facts;
    assert_eq!(
        secure.get(Fact::Encryption).and_then(|v| v.as_str()),
        Some("RC4 128-bit")
    );
}

#[test]
fn xrdp_answers_a_credssp_only_request_with_another_protocol() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("xrdp-nla");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(dir.path(), port, &[("security_layer", "negotiate")]) else {
        panic!("xrdp did not start on port {port}");
    };
    let mut cfg = config(port, Security::Nla);
    cfg.credentials = Some(rdptrace::probe::Credentials {
        user: "nobody".to_owned(),
        domain: None,
        password: rdptrace::probe::Password::new("not-used".to_owned()),
    });
    let trace = block_on(rdptrace::probe::probe(&cfg));
    let verdict = rdptrace::diagnose::diagnose(&trace);
    assert_eq!(verdict.phase, Some(PhaseName::X224));
    assert_eq!(
        verdict.cause,
        Cause::NegotiationMismatch,
        "{}",
        verdict.detail
    );
    assert!(
        verdict.detail.contains("PROTOCOL_HYBRID"),
        "{}",
        verdict.detail
    );
}
