//! Standard RDP Security end to end: the probe against the built-in target's standard-security scenario (in
//! process, over loopback) and against Debian's xrdp at every crypt_level.

mod support;

use std::time::Duration;

use rdptrace::pdu::PduInfo;
use rdptrace::probe::{Credentials, Password, ProbeConfig, Security};
use rdptrace::rdp_security::{Level, Method};
use rdptrace::serve::standard_security::StandardSecurity;
use rdptrace::serve::{Served, Target, TargetConfig, scenario};
use rdptrace::trace::Fact;
use rdptrace::trace::{EventKind, PhaseName, PhaseStatus, Trace};
use rdptrace::verdict::{Cause, Verdict};
use support::xrdp::{start_xrdp, xrdp_available};
use support::*;

/// The phases a connection under Standard RDP Security goes through.
const PHASES: [PhaseName; 9] = [
    PhaseName::Tcp,
    PhaseName::X224,
    PhaseName::McsConnect,
    PhaseName::ChannelJoin,
    PhaseName::SecureSettings,
    PhaseName::Licensing,
    PhaseName::Capabilities,
    PhaseName::Finalization,
    PhaseName::Active,
];

fn probe_config(addr: &str) -> ProbeConfig {
    let mut cfg = ProbeConfig::new(addr).expect("target");
    cfg.security = Security::Rdp;
    cfg.timeout = Duration::from_secs(30);
    cfg.phase_timeout = Duration::from_secs(10);
    cfg.watch = Duration::from_millis(300);
    cfg
}

/// The standard-security scenario under `security`, probed once with the target's test identity.
fn probe_target(
    security: StandardSecurity,
    errinfo: Option<u32>,
) -> (Trace, Verdict, Option<Served>) {
    block_on(async move {
        let scenario = scenario::find("standard-security").expect("in the catalogue");
        let mut config = TargetConfig::new(scenario)
            .with_overrides(None, errinfo)
            .expect("valid overrides");
        config.standard_security = security;
        let identity = config.identity.clone();
        let target = Target::bind(config).await.expect("bind the target");
        let addr = target.local_addr();
        let server = target.clone();
        let served = tokio::spawn(async move { server.serve_one().await });
        let mut cfg = probe_config(&addr.to_string());
        cfg.credentials = Some(Credentials {
            user: identity.user.clone(),
            domain: None,
            password: Password::new(identity.password().to_owned()),
        });
        let trace = rdptrace::probe::probe(&cfg).await;
        let served = tokio::time::timeout(Duration::from_secs(20), served)
            .await
            .ok()
            .and_then(|r| r.ok())
            .and_then(|r| r.ok());
        let verdict = rdptrace::diagnose::diagnose(&trace);
        (trace, verdict, served)
    })
}

fn fact<'a>(trace: &'a Trace, phase: PhaseName, key: &str) -> Option<&'a str> {
    trace
        .phase(phase)
        .facts
        .get(Fact::from_name(key)?)
        .and_then(|v| v.as_str())
}

fn render(trace: &Trace, verdict: &Verdict) -> String {
    rdptrace::report::text::render(trace, verdict, Default::default())
}

/// Every phase ok (TLS and CredSSP skipped), the method and level named, the PDUs after the Security Exchange
/// dissected from their decrypted bytes, and no MAC that failed.
fn assert_secured_and_active(trace: &Trace, verdict: &Verdict, method: &str, level: &str) {
    let text = render(trace, verdict);
    assert_eq!(verdict.cause, Cause::Connected, "{text}");
    for phase in PHASES {
        assert_eq!(
            trace.phase(phase).status,
            PhaseStatus::Ok,
            "{phase}\n{text}"
        );
    }
    for phase in [PhaseName::Tls, PhaseName::Credssp, PhaseName::EarlyUserAuth] {
        assert_eq!(trace.phase(phase).status, PhaseStatus::Skipped, "{phase}");
    }
    assert_eq!(
        fact(trace, PhaseName::X224, "selected_protocol"),
        Some("PROTOCOL_RDP")
    );
    assert_eq!(
        fact(trace, PhaseName::McsConnect, "encryption_level"),
        Some(level),
        "{text}"
    );
    assert_eq!(
        fact(trace, PhaseName::SecureSettings, "encryption"),
        Some(method),
        "{text}"
    );
    assert_eq!(
        trace
            .phase(PhaseName::SecureSettings)
            .facts
            .get(Fact::SecurityExchange),
        Some(&serde_json::Value::Bool(true))
    );
    let info = trace
        .phase(PhaseName::SecureSettings)
        .pdus
        .iter()
        .find(|p| p.name == "Client Info")
        .expect("a Client Info");
    assert!(info.summary.ends_with("(decrypted)"), "{}", info.summary);
    assert!(
        matches!(
            info.info,
            PduInfo::ClientInfo {
                encrypted: true,
                ..
            }
        ),
        "{:?}",
        info.info
    );
    assert!(
        trace
            .phase(PhaseName::Finalization)
            .pdus
            .iter()
            .any(|p| p.name == "Font List" && p.summary.contains("decrypted")),
        "{text}"
    );
    assert!(
        !trace.events().any(|(_, e)| matches!(
            &e.kind,
            EventKind::Anomaly { detail } if detail.contains("MAC")
        )),
        "{text}"
    );
}

#[test]
fn the_probe_reaches_the_active_state_against_the_standard_security_target() {
    let (trace, verdict, served) = probe_target(StandardSecurity::DEFAULT, None);
    assert_secured_and_active(
        &trace,
        &verdict,
        "RC4 128-bit",
        "ENCRYPTION_LEVEL_CLIENT_COMPATIBLE",
    );
    assert_eq!(
        fact(&trace, PhaseName::McsConnect, "server_certificate"),
        Some("proprietary")
    );
    assert_eq!(
        fact(&trace, PhaseName::McsConnect, "server_key"),
        Some("RSA 512-bit")
    );
    assert_eq!(
        fact(
            &trace,
            PhaseName::McsConnect,
            "server_certificate_signature"
        ),
        Some("valid (Terminal Services signing key)")
    );
    assert_eq!(
        fact(&trace, PhaseName::SecureSettings, "client_mac"),
        Some("plain")
    );
    // The target's own trace decrypts the same connection with its key.
    let served = served.expect("the target served the connection");
    assert_secured_and_active(
        &served.trace,
        &served.verdict(),
        "RC4 128-bit",
        "ENCRYPTION_LEVEL_CLIENT_COMPATIBLE",
    );
    assert!(
        served.trace.pdus().any(|(_, p)| matches!(
            &p.info,
            PduInfo::ClientInfo { user: Some(u), .. } if u == "rdptrace"
        )),
        "the target read the user from the decrypted Client Info"
    );
}

#[test]
fn the_probe_reaches_the_active_state_at_other_levels_and_with_fips() {
    for (security, method, level) in [
        (
            StandardSecurity::FIPS,
            "FIPS (3DES, HMAC-SHA1)",
            "ENCRYPTION_LEVEL_FIPS",
        ),
        (
            StandardSecurity {
                level: Level::High,
                methods: Method::BITS_128,
            },
            "RC4 128-bit",
            "ENCRYPTION_LEVEL_HIGH",
        ),
        (
            StandardSecurity {
                level: Level::Low,
                methods: Method::ALL,
            },
            "RC4 128-bit",
            "ENCRYPTION_LEVEL_LOW",
        ),
    ] {
        let (trace, verdict, _) = probe_target(security, None);
        assert_secured_and_active(&trace, &verdict, method, level);
    }
}

#[test]
fn a_set_error_info_under_rc4_is_read_and_diagnosed() {
    let (trace, verdict, _) = probe_target(StandardSecurity::DEFAULT, Some(0x7));
    assert_eq!(
        verdict.phase,
        Some(PhaseName::Licensing),
        "{}",
        render(&trace, &verdict)
    );
    assert_eq!(verdict.cause, Cause::ServerErrorInfo);
    assert_eq!(verdict.error_info.as_ref().map(|c| c.code), Some(0x7));
    let set = trace
        .phase(PhaseName::Licensing)
        .pdus
        .iter()
        .find(|p| p.name == "Set Error Info")
        .expect("the Set Error Info");
    assert!(set.summary.ends_with("(decrypted)"), "{}", set.summary);
}

#[test]
fn the_timeline_against_the_standard_security_target() {
    let (trace, verdict, _) = probe_target(StandardSecurity::DEFAULT, None);
    let doc = support::normalize_timeline(&render(&trace, &verdict));
    insta::assert_snapshot!("standard_security_timeline", doc);
}

/// xrdp at `crypt_level`, probed once with `salted_mac`.
fn probe_xrdp(crypt_level: &str, salted_mac: bool) -> Option<(Trace, Verdict)> {
    if !xrdp_available() {
        return None;
    }
    let dir = TempDir::new(&format!("xrdp-{crypt_level}"));
    let port = free_port();
    let Some(_xrdp) = start_xrdp(
        dir.path(),
        port,
        &[("security_layer", "rdp"), ("crypt_level", crypt_level)],
    ) else {
        panic!("xrdp did not start on port {port}");
    };
    let mut cfg = probe_config(&format!("127.0.0.1:{port}"));
    cfg.salted_mac = salted_mac;
    let trace = block_on(rdptrace::probe::probe(&cfg));
    let verdict = rdptrace::diagnose::diagnose(&trace);
    Some((trace, verdict))
}

#[test]
fn the_probe_reaches_the_active_state_against_xrdp_at_every_crypt_level() {
    // xrdp's crypt_level values: low is 40-bit client to server only, medium 40-bit both ways, high 128-bit.
    for (crypt_level, method, level) in [
        ("low", "RC4 40-bit", "ENCRYPTION_LEVEL_LOW"),
        ("medium", "RC4 40-bit", "ENCRYPTION_LEVEL_CLIENT_COMPATIBLE"),
        ("high", "RC4 128-bit", "ENCRYPTION_LEVEL_HIGH"),
        ("fips", "FIPS (3DES, HMAC-SHA1)", "ENCRYPTION_LEVEL_FIPS"),
    ] {
        let Some((trace, verdict)) = probe_xrdp(crypt_level, false) else {
            return;
        };
        assert_secured_and_active(&trace, &verdict, method, level);
        assert_eq!(
            fact(
                &trace,
                PhaseName::McsConnect,
                "server_certificate_signature"
            ),
            Some("valid (Terminal Services signing key)")
        );
    }
}

#[test]
fn xrdp_at_crypt_level_none_needs_no_security_exchange() {
    let Some((trace, verdict)) = probe_xrdp("none", false) else {
        return;
    };
    assert_eq!(
        verdict.cause,
        Cause::Connected,
        "{}",
        render(&trace, &verdict)
    );
    assert_eq!(
        fact(&trace, PhaseName::McsConnect, "encryption_method"),
        Some("ENCRYPTION_METHOD_NONE")
    );
    assert!(
        !trace
            .pdus()
            .any(|(_, p)| matches!(p.info, PduInfo::SecurityExchange { .. }))
    );
}

/// Debian's xrdp (0.9.21 with its 2026 security update) checks the plain MAC only: FreeRDP's salted MAC, here
/// sent by the probe on request, gets a Disconnect Provider Ultimatum and a FIN right after the Client Info.
#[test]
fn xrdp_drops_a_client_that_signs_with_the_salted_mac() {
    let Some((trace, verdict)) = probe_xrdp("high", true) else {
        return;
    };
    let text = render(&trace, &verdict);
    assert!(!verdict.ok, "{text}");
    assert_eq!(
        fact(&trace, PhaseName::SecureSettings, "client_mac"),
        Some("salted (SEC_SECURE_CHECKSUM)"),
        "{text}"
    );
    let after_info: Vec<&str> = trace
        .pdus()
        .skip_while(|(_, p)| p.name != "Client Info")
        .filter(|(_, p)| p.from == rdptrace::trace::Side::Server)
        .map(|(_, p)| p.name.as_str())
        .collect();
    assert_eq!(after_info, ["MCS Disconnect Provider Ultimatum"], "{text}");
}
