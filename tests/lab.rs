//! The probe against real RDP servers and network faults: the lab of `lab/lab` (lab/README.md).
//!
//! Every line of lab/targets is one test here, named after it, with the expectations the line lists (read
//! and judged by the library: `rdptrace::fleet::targets`, `rdptrace::check`); the tests add what a line
//! cannot say (which PDUs, in which phase, from whom).
//!
//! Finding the lab (tests/support/lab.rs): the `RDPTRACE_LAB_*` variables of `lab/lab env`, bringing the
//! lab up when the tests run as root; without root the tests skip, and with CI set a missing lab fails.
//!
//! `RDPTRACE_LAB_TARGETS=FILE` runs the expectations of FILE (a targets file, as for `rdptrace probe
//! --targets`) against your own servers in `targets_file`, and skips the built-in lab.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use rdptrace::check::{Expectation, Outcome};
use rdptrace::fleet::targets::{self, Line, TargetSpec};
use rdptrace::pdu::{AuthToken, LicenseMessage, PduInfo};
use rdptrace::probe::cli::ProbeOptions;
use rdptrace::probe::{Auth, Password, ProbeConfig, Security};
use rdptrace::trace::Fact;
use rdptrace::trace::{CloseKind, ConnectError, Deadline, EventKind, PhaseName, Side, Trace};
use rdptrace::verdict::Verdict;
use support::lab::{builtin_lines, builtin_targets, lab, skip};
use support::*;

/// Settings of the suite when a line does not give them: long enough for a loaded machine, short enough
/// to bound every wait.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_PHASE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_WATCH: Duration = Duration::from_millis(500);

/// The probe options a line's settings apply to (as `rdptrace probe`'s command line does).
fn options() -> ProbeOptions {
    ProbeOptions {
        user: None,
        domain: None,
        password_file: None,
        security: Security::Auto,
        auth: Auth::Negotiate,
        kdc: None,
        tls_max: Default::default(),
        timeout: DEFAULT_TIMEOUT,
        phase_timeout: DEFAULT_PHASE_TIMEOUT,
        watch: DEFAULT_WATCH,
        strict_cert: false,
        keylog: None,
        pcap: None,
        embed_secrets: false,
    }
}

/// The probe configuration of a line, its variables and password from `env` (`RDPTRACE_PASSWORD` for a
/// line with a user and no password-env, as for `rdptrace probe`).
fn configure(
    line: &Line,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(TargetSpec, ProbeConfig), String> {
    let spec = line.resolve(env).map_err(|e| e.to_string())?;
    let password = env("RDPTRACE_PASSWORD").map(Password::new);
    let cfg = options()
        .for_target(&spec, password.as_ref(), env)
        .map_err(|e| e.to_string())?;
    Ok((spec, cfg))
}

/// Probes and judges a line's expectations (without any: that it reaches the active state, as `rdptrace
/// probe` judges a target).
fn probe_and_judge(spec: &TargetSpec, cfg: &ProbeConfig) -> (Trace, Verdict, Vec<Outcome>) {
    let trace = block_on(rdptrace::probe::probe(cfg));
    let verdict = rdptrace::diagnose::diagnose(&trace);
    let expect = if spec.expect.is_empty() {
        vec![Expectation::Active]
    } else {
        spec.expect.clone()
    };
    let outcomes = block_on(rdptrace::check::evaluate(
        cfg,
        &expect,
        Some((&trace, &verdict)),
    ));
    (trace, verdict, outcomes)
}

/// The outcomes that do not hold, as `rdptrace check` prints them.
fn unmet(label: &str, outcomes: &[Outcome]) -> String {
    let failed: Vec<Outcome> = outcomes.iter().filter(|o| !o.holds).cloned().collect();
    rdptrace::check::render(label, &failed)
}

/// Probes the host of one lab/targets line and checks what the line expects; `None` when the test skips.
fn run(name: &str) -> Option<(Trace, Verdict)> {
    let lab = lab()?;
    let line = lab.line(name);
    let (spec, cfg) = match configure(line, &|n| lab.var(n)) {
        Ok(c) => c,
        Err(e) => {
            skip(&format!(
                "{name}: {e}; `lab/lab status` says which hosts are up, `eval \"$(sudo lab/lab env)\"` sets the account's password"
            ));
            return None;
        }
    };
    let (trace, verdict, outcomes) = probe_and_judge(&spec, &cfg);
    assert!(
        outcomes.iter().all(|o| o.holds),
        "{name} ({}):\n{}\n{}",
        line.source,
        unmet(name, &outcomes),
        report(&trace, &verdict)
    );
    Some((trace, verdict))
}

fn report(trace: &Trace, verdict: &Verdict) -> String {
    rdptrace::report::text::render(
        trace,
        verdict,
        rdptrace::report::text::Options { verbose: true },
    )
}

/// The PDUs of a phase sent by one side, by name.
fn names(trace: &Trace, phase: PhaseName, from: Side) -> Vec<String> {
    trace
        .phase(phase)
        .pdus
        .iter()
        .filter(|p| p.from == from)
        .map(|p| p.name.clone())
        .collect()
}

/// The first close, as (phase, by, how).
fn close(trace: &Trace) -> Option<(PhaseName, Side, CloseKind)> {
    trace.events().find_map(|(p, e)| match e.kind {
        EventKind::Closed { by, how } => Some((p, by, how)),
        _ => None,
    })
}

fn client_closed(trace: &Trace) -> bool {
    trace
        .events()
        .any(|(_, e)| matches!(e.kind, EventKind::ClientClosed { .. }))
}

fn timed_out(trace: &Trace) -> Option<(PhaseName, Deadline, String)> {
    trace.events().find_map(|(p, e)| match &e.kind {
        EventKind::TimedOut {
            deadline,
            waiting_for,
        } => Some((p, *deadline, waiting_for.clone())),
        _ => None,
    })
}

fn connect_error(trace: &Trace) -> Option<ConnectError> {
    trace.events().find_map(|(_, e)| match &e.kind {
        EventKind::ConnectFailed { error, .. } => Some(error.clone()),
        _ => None,
    })
}

fn dpus_from_server(trace: &Trace, phase: PhaseName) -> Vec<u8> {
    trace
        .phase(phase)
        .pdus
        .iter()
        .filter(|p| p.from == Side::Server)
        .filter_map(|p| match p.info {
            PduInfo::DisconnectProviderUltimatum { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

/// Whether any PDU of `phase` sent by `from` satisfies `f`.
fn has_pdu(trace: &Trace, phase: PhaseName, from: Side, f: impl Fn(&PduInfo) -> bool) -> bool {
    trace
        .phase(phase)
        .pdus
        .iter()
        .any(|p| p.from == from && f(&p.info))
}

/// [2.2.2.3] / T.125: the reason every xrdp DPU in the lab carries.
const RN_USER_REQUESTED: u8 = 3;

// --- the data: lab/targets ----------------------------------------------------------------------

/// Every name of lab/targets has its test below.
const TESTED: &[&str] = &[
    "xrdp-tls",
    "xrdp-tls/rdp",
    "xrdp-tls/nla",
    "xrdp-rdp-none",
    "xrdp-rdp-none/auto",
    "xrdp-rdp-high",
    "xrdp-negotiate",
    "xrdp-negotiate/rdp",
    "xrdp-negotiate/nla",
    "xrdp-tls13",
    "xrdp-nocert",
    "xrdp-badkey",
    "shadow-nla",
    "shadow-nla/wrong-password",
    "shadow-nla/tls",
    "shadow-tls",
    "shadow-tls/rdp",
    "shadow-rdp",
    "shadow-rdp/rdp",
    "weston-tls",
    "weston-rdp",
    "weston-rdp/rdp",
    "net-ok",
    "net-shadow-rdp",
    "net-syn-drop",
    "net-syn-reset",
    "net-icmp-unreachable",
    "net-host-unreachable",
    "net-no-listener",
    "net-cr-drop",
    "net-hello-reset",
    "net-hello-drop",
    "net-data-reset",
    "net-blackhole",
];

/// The real servers of the lab (xrdp, FreeRDP's shadow server, weston) and the network faults that end a
/// session in the middle, each probed with the probe's capture and key log: the replay without the key log
/// agrees with the replay with it (tests/support/agreement.rs), as for the built-in target in
/// tests/encrypted.rs.
#[test]
fn replayed_without_their_key_logs_the_real_servers_agree() {
    let Some(lab) = lab() else { return };
    let dir = TempDir::new("lab-encrypted");
    let mut problems = Vec::new();
    let mut compared = 0;
    for name in TESTED.iter().filter(|n| {
        ["xrdp", "shadow", "weston", "net-ok", "net-data-reset"]
            .iter()
            .any(|p| n.starts_with(p))
    }) {
        let Ok((_, mut cfg)) = configure(lab.line(name), &|n| lab.var(n)) else {
            skip(&format!(
                "{name}: not configured; `lab/lab status` says which hosts are up"
            ));
            continue;
        };
        let file = name.replace('/', "-");
        let pcap = dir.path().join(format!("{file}.pcapng"));
        let keys = dir.path().join(format!("{file}.keys"));
        cfg.pcap = Some(pcap.clone());
        cfg.keylog = Some(keys.clone());
        let _ = block_on(rdptrace::probe::probe(&cfg));
        if std::fs::metadata(&keys).map_or(true, |m| m.len() == 0) {
            // Standard RDP Security or no TLS at all: nothing encrypted with a key log to compare.
            continue;
        }
        compared += 1;
        let opts = rdptrace::replay::Options {
            keylog: Some(keys),
            ..Default::default()
        };
        problems.extend(support::agreement::compare(name, &pcap, &opts).1);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 8, "{compared} lab sessions compared");
}

#[test]
fn lab_targets_parse_and_every_line_has_a_test() {
    let lines = builtin_lines();
    let in_file: Vec<&str> = lines.iter().filter_map(|l| l.name()).collect();
    assert_eq!(in_file, TESTED, "lab/targets and TESTED differ");
    // Every line reads its target from a lab variable, names its password's variable rather than a
    // password, and says what rdptrace must report.
    for l in &lines {
        assert!(l.target.starts_with("${RDPTRACE_LAB_"), "{}", l.source);
        assert!(!l.expect.is_empty(), "{}", l.source);
        let spec = l
            .resolve(&|_| Some("127.0.0.1:1".to_owned()))
            .unwrap_or_else(|e| panic!("{}: {e}", l.source));
        assert_eq!(
            spec.user.is_some(),
            spec.password_env.as_deref() == Some("RDPTRACE_LAB_PASSWORD"),
            "{}",
            l.source
        );
    }
}

/// Your own servers: `RDPTRACE_LAB_TARGETS=FILE cargo test --test lab targets_file`.
#[test]
fn targets_file() {
    let Some(file) = std::env::var_os("RDPTRACE_LAB_TARGETS") else {
        eprintln!(
            "skipped: set RDPTRACE_LAB_TARGETS=FILE to check your own servers (syntax: lab/targets)"
        );
        return;
    };
    let file = PathBuf::from(file);
    let name = file.display().to_string();
    let reader = std::fs::File::open(&file)
        .map(std::io::BufReader::new)
        .unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
    let lines = targets::lines(reader, &name).unwrap_or_else(|e| panic!("{e}"));
    let builtin =
        std::fs::canonicalize(&file).ok() == std::fs::canonicalize(builtin_targets()).ok();
    let lab = if builtin { lab() } else { None };
    let lookup = |n: &str| match lab {
        Some(lab) => lab.var(n),
        None => std::env::var(n).ok(),
    };
    let mut failed = Vec::new();
    for line in &lines {
        let label = line.name().unwrap_or(&line.target).to_owned();
        let (spec, cfg) = match configure(line, &lookup) {
            Ok(c) => c,
            Err(e) => {
                failed.push(format!("{label} ({}): {e}", line.source));
                continue;
            }
        };
        let label = spec.label().to_owned();
        let (trace, verdict, outcomes) = probe_and_judge(&spec, &cfg);
        if outcomes.iter().all(|o| o.holds) {
            eprintln!("ok: {label}");
        } else {
            failed.push(format!(
                "{label} ({}):\n{}\n{}",
                line.source,
                unmet(&label, &outcomes),
                report(&trace, &verdict)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} targets of {} differ from their expect=:\n\n{}",
        failed.len(),
        lines.len(),
        file.display(),
        failed.join("\n\n")
    );
}

// --- xrdp ----------------------------------------------------------------------------------------

#[test]
fn xrdp_tls() {
    let Some((trace, _)) = run("xrdp-tls") else {
        return;
    };
    // xrdp does the whole license exchange; FreeRDP-based servers send only the Error Alert.
    assert_eq!(
        trace
            .phase(PhaseName::Licensing)
            .facts
            .get(Fact::LicenseExchange)
            .and_then(|v| v.as_str()),
        Some("Server License Request, Client New License Request, Licensing Error Message")
    );
    assert_eq!(
        names(&trace, PhaseName::Finalization, Side::Server),
        ["Synchronize", "Control", "Control", "Font Map"]
    );
    assert!(
        names(&trace, PhaseName::Capabilities, Side::Server)
            .contains(&"Server Demand Active".to_owned())
    );
    // The server never closed: the probe left with a DPU at the end of its watch.
    assert_eq!(close(&trace), None);
    assert!(client_closed(&trace));
    assert!(
        names(&trace, PhaseName::Active, Side::Client)
            .contains(&"MCS Disconnect Provider Ultimatum".to_owned())
    );
}

#[test]
fn xrdp_tls_rdp() {
    let Some((trace, _)) = run("xrdp-tls/rdp") else {
        return;
    };
    // The refusal, then a DPU and FIN at once, all in the x224 phase.
    assert_eq!(
        dpus_from_server(&trace, PhaseName::X224),
        [RN_USER_REQUESTED]
    );
    assert_eq!(
        close(&trace),
        Some((PhaseName::X224, Side::Server, CloseKind::Fin))
    );
    assert!(!client_closed(&trace));
}

#[test]
fn xrdp_tls_nla() {
    let Some((_, verdict)) = run("xrdp-tls/nla") else {
        return;
    };
    assert!(
        verdict.hints.iter().any(|h| h.contains("--security tls")),
        "{:?}",
        verdict.hints
    );
}

#[test]
fn xrdp_rdp_none() {
    let Some((trace, _)) = run("xrdp-rdp-none") else {
        return;
    };
    // No encryption: no Security Exchange, the Client Info in the clear.
    assert!(!has_pdu(
        &trace,
        PhaseName::SecureSettings,
        Side::Client,
        |i| { matches!(i, PduInfo::SecurityExchange { .. }) }
    ));
    assert!(has_pdu(
        &trace,
        PhaseName::SecureSettings,
        Side::Client,
        |i| { matches!(i, PduInfo::ClientInfo { .. }) }
    ));
    assert!(has_pdu(&trace, PhaseName::Licensing, Side::Server, |i| {
        matches!(
            i,
            PduInfo::License {
                message: LicenseMessage::LicenseRequest
            }
        )
    }));
}

#[test]
fn xrdp_rdp_none_auto() {
    let Some((trace, _)) = run("xrdp-rdp-none/auto") else {
        return;
    };
    // xrdp answers SSL|HYBRID with PROTOCOL_RDP; the probe follows it there, as mstsc and xfreerdp do,
    // and goes on in the clear (encryption level NONE: no Security Exchange).
    assert!(trace.phase(PhaseName::McsConnect).pdus.len() >= 2);
    assert!(
        !trace
            .phase(PhaseName::SecureSettings)
            .pdus
            .iter()
            .any(|p| p.name == "Client Security Exchange")
    );
}

#[test]
fn xrdp_rdp_high() {
    let Some((trace, _)) = run("xrdp-rdp-high") else {
        return;
    };
    assert!(has_pdu(&trace, PhaseName::McsConnect, Side::Server, |i| {
        matches!(i, PduInfo::McsConnectResponse { .. })
    }));
    assert!(client_closed(&trace));
}

#[test]
fn xrdp_negotiate() {
    run("xrdp-negotiate");
}

#[test]
fn xrdp_negotiate_rdp() {
    run("xrdp-negotiate/rdp");
}

#[test]
fn xrdp_negotiate_nla() {
    let Some((_, verdict)) = run("xrdp-negotiate/nla") else {
        return;
    };
    assert!(
        verdict.detail.contains("PROTOCOL_HYBRID"),
        "{}",
        verdict.detail
    );
}

#[test]
fn xrdp_tls13() {
    run("xrdp-tls13");
}

#[test]
fn xrdp_nocert() {
    let Some((trace, verdict)) = run("xrdp-nocert") else {
        return;
    };
    assert_eq!(
        dpus_from_server(&trace, PhaseName::X224),
        [RN_USER_REQUESTED]
    );
    assert_eq!(
        close(&trace),
        Some((PhaseName::X224, Side::Server, CloseKind::Fin))
    );
    assert!(
        verdict.hints.iter().any(|h| h.contains("certificate")),
        "{:?}",
        verdict.hints
    );
}

#[test]
fn xrdp_badkey() {
    let Some((trace, verdict)) = run("xrdp-badkey") else {
        return;
    };
    // The 9 cleartext bytes of a DPU where the ServerHello should be, then a reset.
    assert_eq!(
        dpus_from_server(&trace, PhaseName::Tls),
        [RN_USER_REQUESTED]
    );
    assert!(!has_pdu(&trace, PhaseName::Tls, Side::Server, |i| {
        matches!(i, PduInfo::TlsServerHello { .. })
    }));
    assert_eq!(
        close(&trace),
        Some((PhaseName::Tls, Side::Server, CloseKind::Rst))
    );
    assert!(
        verdict
            .evidence
            .iter()
            .any(|e| e.contains("Disconnect Provider Ultimatum")),
        "{:?}",
        verdict.evidence
    );
}

// --- FreeRDP shadow server -----------------------------------------------------------------------

fn tokens(trace: &Trace, from: Side) -> Vec<String> {
    trace
        .phase(PhaseName::Credssp)
        .pdus
        .iter()
        .filter(|p| p.from == from)
        .filter_map(|p| match &p.info {
            PduInfo::TsRequest {
                token: Some(token), ..
            } => Some(
                match token {
                    AuthToken::NtlmNegotiate => "NEGOTIATE",
                    AuthToken::NtlmChallenge(_) => "CHALLENGE",
                    AuthToken::NtlmAuthenticate { .. } => "AUTHENTICATE",
                    _ => "other",
                }
                .to_owned(),
            ),
            _ => None,
        })
        .collect()
}

fn credssp_error_code(trace: &Trace) -> Option<u32> {
    trace.pdus().find_map(|(_, p)| match p.info {
        PduInfo::TsRequest { error_code, .. } if p.from == Side::Server => error_code,
        _ => None,
    })
}

#[test]
fn shadow_nla() {
    let Some((trace, _)) = run("shadow-nla") else {
        return;
    };
    assert_eq!(tokens(&trace, Side::Client), ["NEGOTIATE", "AUTHENTICATE"]);
    assert_eq!(tokens(&trace, Side::Server), ["CHALLENGE"]);
    assert_eq!(credssp_error_code(&trace), None);
    // FreeRDP-based servers skip the License Request.
    assert_eq!(
        names(&trace, PhaseName::Licensing, Side::Server),
        ["Licensing Error Message"]
    );
}

#[test]
fn shadow_nla_wrong_password() {
    let Some((trace, _)) = run("shadow-nla/wrong-password") else {
        return;
    };
    // NEGOTIATE, CHALLENGE, AUTHENTICATE, then close_notify and FIN: no TSRequest with an errorCode.
    assert_eq!(tokens(&trace, Side::Client), ["NEGOTIATE", "AUTHENTICATE"]);
    assert_eq!(credssp_error_code(&trace), None);
    assert_eq!(
        close(&trace),
        Some((PhaseName::Credssp, Side::Server, CloseKind::Fin))
    );
    assert!(
        trace.request.credentials,
        "the probe must have tried a password"
    );
}

#[test]
fn shadow_nla_tls() {
    let Some((trace, verdict)) = run("shadow-nla/tls") else {
        return;
    };
    // FreeRDP's server keeps going after RDP_NEG_FAILURE: the probe closes.
    assert_eq!(close(&trace), None);
    assert!(client_closed(&trace));
    assert!(
        verdict.hints.iter().any(|h| h.contains("NLA")),
        "{:?}",
        verdict.hints
    );
}

#[test]
fn shadow_tls() {
    run("shadow-tls");
}

#[test]
fn shadow_tls_rdp() {
    run("shadow-tls/rdp");
}

#[test]
fn shadow_rdp() {
    let Some((trace, _)) = run("shadow-rdp") else {
        return;
    };
    assert_eq!(close(&trace), None);
    assert!(client_closed(&trace));
}

#[test]
fn shadow_rdp_rdp() {
    let Some((trace, _)) = run("shadow-rdp/rdp") else {
        return;
    };
    assert!(!has_pdu(
        &trace,
        PhaseName::SecureSettings,
        Side::Client,
        |i| { matches!(i, PduInfo::SecurityExchange { .. }) }
    ));
}

// --- weston --------------------------------------------------------------------------------------

#[test]
fn weston_tls() {
    let Some((trace, _)) = run("weston-tls") else {
        return;
    };
    // weston ends the connection after the Font Map unless the client supports Surface Commands.
    assert!(
        trace
            .phase(PhaseName::Capabilities)
            .facts
            .get(Fact::ClientCapabilitySets)
            .and_then(|v| v.as_str())
            .is_some_and(|s| s.contains("SurfaceCommands")),
        "{}",
        report(&trace, &rdptrace::diagnose::diagnose(&trace))
    );
    assert_eq!(close(&trace), None);
}

#[test]
fn weston_rdp() {
    let Some((trace, _)) = run("weston-rdp") else {
        return;
    };
    assert_eq!(
        close(&trace),
        Some((PhaseName::X224, Side::Server, CloseKind::Fin))
    );
    assert!(dpus_from_server(&trace, PhaseName::X224).is_empty());
}

#[test]
fn weston_rdp_rdp() {
    run("weston-rdp/rdp");
}

// --- the lab namespace ---------------------------------------------------------------------------

#[test]
fn net_ok() {
    let Some((trace, _)) = run("net-ok") else {
        return;
    };
    // TLS 1.2 shows the certificate on the wire: the dissector read it, not only the TLS stack.
    assert!(has_pdu(&trace, PhaseName::Tls, Side::Server, |i| {
        matches!(i, PduInfo::TlsCertificate { .. })
    }));
}

#[test]
fn net_shadow_rdp() {
    run("net-shadow-rdp");
}

/// A silent drop ends on the probe's own phase deadline, of the configured length.
fn assert_phase_deadline(trace: &Trace, phase: PhaseName, seconds: f64) {
    let Some((p, deadline, _)) = timed_out(trace) else {
        panic!(
            "no deadline expired:\n{}",
            report(trace, &rdptrace::diagnose::diagnose(trace))
        );
    };
    assert_eq!(p, phase);
    assert!(
        matches!(deadline, Deadline::Phase { seconds: s } if s == seconds),
        "{deadline:?}"
    );
}

#[test]
fn net_syn_drop() {
    let Some((trace, _)) = run("net-syn-drop") else {
        return;
    };
    assert_phase_deadline(&trace, PhaseName::Tcp, 2.0);
    assert_eq!(connect_error(&trace), Some(ConnectError::TimedOut));
}

#[test]
fn net_syn_reset() {
    let Some((trace, _)) = run("net-syn-reset") else {
        return;
    };
    assert_eq!(connect_error(&trace), Some(ConnectError::Refused));
}

#[test]
fn net_icmp_unreachable() {
    let Some((trace, _)) = run("net-icmp-unreachable") else {
        return;
    };
    // Linux hands an ICMP port unreachable to connect() as ECONNREFUSED.
    assert_eq!(connect_error(&trace), Some(ConnectError::Refused));
}

#[test]
fn net_host_unreachable() {
    let Some((trace, _)) = run("net-host-unreachable") else {
        return;
    };
    assert!(
        matches!(connect_error(&trace), Some(ConnectError::Unreachable(_))),
        "{:?}",
        connect_error(&trace)
    );
}

#[test]
fn net_no_listener() {
    let Some((trace, _)) = run("net-no-listener") else {
        return;
    };
    assert_eq!(connect_error(&trace), Some(ConnectError::Refused));
}

#[test]
fn net_cr_drop() {
    let Some((trace, _)) = run("net-cr-drop") else {
        return;
    };
    assert_phase_deadline(&trace, PhaseName::X224, 2.0);
    assert_eq!(
        names(&trace, PhaseName::X224, Side::Server),
        Vec::<String>::new()
    );
}

#[test]
fn net_hello_reset() {
    let Some((trace, _)) = run("net-hello-reset") else {
        return;
    };
    assert_eq!(
        names(&trace, PhaseName::Tls, Side::Client),
        ["TLS ClientHello"]
    );
    assert_eq!(
        names(&trace, PhaseName::Tls, Side::Server),
        Vec::<String>::new()
    );
}

#[test]
fn net_hello_drop() {
    let Some((trace, _)) = run("net-hello-drop") else {
        return;
    };
    assert_phase_deadline(&trace, PhaseName::Tls, 2.0);
    assert_eq!(
        names(&trace, PhaseName::Tls, Side::Server),
        Vec::<String>::new()
    );
}

#[test]
fn net_data_reset() {
    let Some((trace, _)) = run("net-data-reset") else {
        return;
    };
    assert_eq!(
        names(&trace, PhaseName::McsConnect, Side::Client),
        ["MCS Connect Initial"]
    );
    assert_eq!(
        names(&trace, PhaseName::McsConnect, Side::Server),
        Vec::<String>::new()
    );
}

#[test]
fn net_blackhole() {
    let Some((trace, _)) = run("net-blackhole") else {
        return;
    };
    assert_phase_deadline(&trace, PhaseName::McsConnect, 2.0);
    // The handshake came through; the last the server sent was its Finished (opaque under TLS 1.2).
    assert_eq!(
        trace.phase(PhaseName::Tls).status,
        rdptrace::trace::PhaseStatus::Ok
    );
    assert_eq!(
        names(&trace, PhaseName::McsConnect, Side::Server),
        Vec::<String>::new()
    );
}
