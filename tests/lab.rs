//! The probe against real RDP servers and network faults: the lab of `lab/lab` (lab/README.md).
//!
//! Every line of lab/targets is one test here, named after it, with the checks the line lists; the tests
//! add what a line cannot say (which PDUs, in which phase, from whom).
//!
//! Finding the lab: the `RDPTRACE_LAB_*` variables of `lab/lab env` in the environment, else the env
//! file in the lab's state directory (`RDPTRACE_LAB_STATE`, default /run/rdptrace-lab). When hosts are
//! missing and the tests run as root, they run `lab/lab up` once (idempotent; the lab stays up, `lab/lab
//! down` ends it). Without root they skip and say how to run them; with CI set, a lab that is not there or
//! does not come up is a failure.
//!
//! `RDPTRACE_LAB_TARGETS=FILE` runs the checks of FILE (same syntax) against your own servers in
//! `targets_file`, and skips the built-in lab.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::targets::{self, Line};
use common::*;
use rdptrace::pdu::{AuthToken, LicenseMessage, PduInfo};
use rdptrace::trace::{CloseKind, ConnectError, Deadline, EventKind, PhaseName, Side, Trace};
use rdptrace::verdict::Verdict;

/// How long `lab/lab up` may take here (it waits up to 20 s per host, all at once; the first run makes
/// certificates).
const LAB_UP_LIMIT: Duration = Duration::from_secs(180);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn builtin_targets() -> PathBuf {
    manifest_dir().join("lab/targets")
}

/// Skips a test with a message that says why and what to do; with CI set, fails it.
fn skip(why: &str) {
    if in_ci() {
        panic!("{why} (CI is set: the lab tests must run; see .ci/run)");
    }
    eprintln!("skipped: {why}");
}

fn how_to_run() -> &'static str {
    "run `sudo lab/lab up`, then `cargo test --test lab` (see lab/README.md)"
}

/// The lab as the suite found it.
struct Lab {
    /// `RDPTRACE_LAB_*` from the lab's env file.
    vars: HashMap<String, String>,
    lines: Vec<Line>,
}

impl Lab {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.vars.get(name).cloned())
    }

    fn line(&self, name: &str) -> &Line {
        self.lines
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("lab/targets has no line name={name}"))
    }
}

/// `KEY=VALUE` lines (values maybe in double quotes) of an env file.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

fn state_dir() -> PathBuf {
    std::env::var_os("RDPTRACE_LAB_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/rdptrace-lab"))
}

/// The lab's variables: its env file (the full one when readable, else the one without the password).
fn read_lab_env() -> HashMap<String, String> {
    let dir = state_dir();
    ["env", "env.public"]
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .map(|t| parse_env(&t))
        .unwrap_or_default()
}

/// The `RDPTRACE_LAB_<HOST>` variables the lab's lines use.
fn host_vars(lines: &[Line]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        let names = std::cell::RefCell::new(Vec::new());
        let _ = targets::expand(&l.target, &|n| {
            names.borrow_mut().push(n.to_owned());
            Some(String::new())
        });
        let names = names.into_inner();
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Runs `lab/lab up`, bounded in time; its output on failure.
fn lab_up() -> Result<(), String> {
    let log = TempDir::new("lab-up");
    let out_path = log.path().join("out");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    eprintln!("lab: bringing the lab up (lab/lab up); it stays up, `lab/lab down` ends it");
    let child = Command::new(manifest_dir().join("lab/lab"))
        .arg("up")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run lab/lab: {e}"))?;
    let mut guard = ChildGuard(child);
    let start = Instant::now();
    // INVARIANT: polls every 100 ms, ends at LAB_UP_LIMIT.
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < LAB_UP_LIMIT => {
                std::thread::sleep(Duration::from_millis(100))
            }
            _ => break None,
        }
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("lab/lab up failed ({s}):\n{text}")),
        None => Err(format!(
            "lab/lab up did not finish within {LAB_UP_LIMIT:?}:\n{text}"
        )),
    }
}

/// Finds the lab, bringing it up when that is needed and possible; `None` when the lab tests skip.
fn find_lab() -> Option<Lab> {
    if let Some(file) = std::env::var_os("RDPTRACE_LAB_TARGETS") {
        let file = PathBuf::from(file);
        let same =
            std::fs::canonicalize(&file).ok() == std::fs::canonicalize(builtin_targets()).ok();
        if !same {
            eprintln!(
                "skipped: RDPTRACE_LAB_TARGETS={} names your own targets; the built-in lab tests do not run (targets_file runs yours)",
                file.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(builtin_targets()).expect("read lab/targets");
    let lines = targets::parse(&text).unwrap_or_else(|e| panic!("lab/targets: {e}"));
    let wanted = host_vars(&lines);
    let mut vars = read_lab_env();
    let missing = |vars: &HashMap<String, String>| -> Vec<String> {
        wanted
            .iter()
            .filter(|n| std::env::var_os(n).is_none() && !vars.contains_key(*n))
            .cloned()
            .collect()
    };
    let absent = missing(&vars);
    if !absent.is_empty() {
        if !is_root() {
            skip(&format!(
                "the lab is not up ({} of its hosts are unknown) and bringing it up needs root: {}",
                absent.len(),
                how_to_run()
            ));
            return None;
        }
        if let Err(e) = lab_up() {
            // Some hosts may be up all the same; each test says whether its own is.
            skip(&format!("the lab did not come up: {e}"));
        }
        vars = read_lab_env();
        if missing(&vars).len() == wanted.len() {
            skip(&format!("no lab host is up; {}", how_to_run()));
            return None;
        }
    }
    Some(Lab { vars, lines })
}

fn lab() -> Option<&'static Lab> {
    static LAB: OnceLock<Option<Lab>> = OnceLock::new();
    LAB.get_or_init(find_lab).as_ref()
}

/// Probes the host of one lab/targets line and checks what the line expects; `None` when the test skips.
fn run(name: &str) -> Option<(Trace, Verdict)> {
    let lab = lab()?;
    let line = lab.line(name);
    let cfg = match targets::config(line, &|n| lab.var(n)) {
        Ok(cfg) => cfg,
        Err(e) => {
            skip(&format!(
                "{name}: {e}; `lab/lab status` says which hosts are up, `eval \"$(sudo lab/lab env)\"` sets the account's password"
            ));
            return None;
        }
    };
    let trace = block_on(rdptrace::probe::probe(&cfg));
    let verdict = rdptrace::diagnose::diagnose(&trace);
    let failures = targets::failures(line, &trace, &verdict);
    assert!(
        failures.is_empty(),
        "{name} (lab/targets line {}):\n  {}\n\n{}",
        line.number,
        failures.join("\n  "),
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

#[test]
fn lab_targets_parse_and_every_line_has_a_test() {
    let text = std::fs::read_to_string(builtin_targets()).expect("read lab/targets");
    let lines = targets::parse(&text).unwrap_or_else(|e| panic!("lab/targets: {e}"));
    let in_file: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(in_file, TESTED, "lab/targets and TESTED differ");
    // Every line reads its target from a lab variable, and none holds a password.
    for l in &lines {
        assert!(l.target.starts_with("${RDPTRACE_LAB_"), "{}", l.name);
        assert!(
            !l.settings.iter().any(|(k, _)| k == "password"),
            "{}",
            l.name
        );
    }
}

#[test]
fn targets_syntax() {
    let lines = targets::parse(
        "# a comment\n\n  10.0.0.5:3390 security=nla user=alice \"expect=phase=credssp,cause=credssp_rejected\" # why\n\
         host name=\"two words\" expect=ok=yes,\"tls.tls_version=TLS 1.3\",!tls.cert_sans,detail~a=b,closed=server-fin,mstsc=0x904/0x7\n",
    )
    .expect("parse");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].number, 3);
    assert_eq!(lines[0].target, "10.0.0.5:3390");
    assert_eq!(
        lines[0].settings,
        vec![
            ("security".to_owned(), "nla".to_owned()),
            ("user".to_owned(), "alice".to_owned())
        ]
    );
    assert_eq!(lines[0].name, "10.0.0.5:3390 security=nla user=alice");
    assert_eq!(
        lines[0].checks,
        vec![
            targets::Check::Phase(Some(PhaseName::Credssp)),
            targets::Check::Cause("credssp_rejected".to_owned())
        ]
    );
    assert_eq!(lines[1].name, "two words");
    assert_eq!(
        lines[1].checks[1],
        targets::Check::Fact(
            PhaseName::Tls,
            "tls_version".to_owned(),
            targets::Match::Equals("TLS 1.3".to_owned())
        )
    );
    assert_eq!(
        lines[1].checks[2],
        targets::Check::Fact(
            PhaseName::Tls,
            "cert_sans".to_owned(),
            targets::Match::Absent
        )
    );
    assert_eq!(
        lines[1].checks[3],
        targets::Check::Detail(targets::Match::Contains("a=b".to_owned()))
    );
    assert_eq!(
        lines[1].checks[5],
        targets::Check::Mstsc(Some((0x904, 0x7)))
    );
    for bad in [
        "host expect=cause=no_such_cause",
        "host expect=phase=nowhere",
        "host colour=blue expect=ok=yes",
        "host expect=ok=maybe",
        "host",
        "host expect=\"ok=yes",
        "host name=a expect=ok=yes\nhost name=a expect=ok=yes",
        "security=tls expect=ok=yes",
    ] {
        assert!(targets::parse(bad).is_err(), "{bad:?} parsed");
    }
    let env = |n: &str| (n == "A").then(|| "1.2.3.4:5".to_owned());
    assert_eq!(
        targets::expand("${A} $A x", &env).as_deref(),
        Ok("1.2.3.4:5 1.2.3.4:5 x")
    );
    assert!(targets::expand("$B", &env).is_err());
    assert!(targets::expand("${A", &env).is_err());
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
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let lines = targets::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let builtin =
        std::fs::canonicalize(&file).ok() == std::fs::canonicalize(builtin_targets()).ok();
    let lab = if builtin { lab() } else { None };
    let lookup = |n: &str| match lab {
        Some(lab) => lab.var(n),
        None => std::env::var(n).ok(),
    };
    let mut failed = Vec::new();
    for line in &lines {
        let cfg = match targets::config(line, &lookup) {
            Ok(cfg) => cfg,
            Err(e) => {
                failed.push(format!("{} (line {}): {e}", line.name, line.number));
                continue;
            }
        };
        let trace = block_on(rdptrace::probe::probe(&cfg));
        let verdict = rdptrace::diagnose::diagnose(&trace);
        let f = targets::failures(line, &trace, &verdict);
        if f.is_empty() {
            eprintln!("ok: {}", line.name);
        } else {
            failed.push(format!(
                "{} (line {}):\n  {}\n{}",
                line.name,
                line.number,
                f.join("\n  "),
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
            .get("license_exchange")
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
    assert!(!targets::has_pdu(
        &trace,
        PhaseName::SecureSettings,
        Side::Client,
        |i| { matches!(i, PduInfo::SecurityExchange { .. }) }
    ));
    assert!(targets::has_pdu(
        &trace,
        PhaseName::SecureSettings,
        Side::Client,
        |i| { matches!(i, PduInfo::ClientInfo { .. }) }
    ));
    assert!(targets::has_pdu(
        &trace,
        PhaseName::Licensing,
        Side::Server,
        |i| {
            matches!(
                i,
                PduInfo::License {
                    message: LicenseMessage::LicenseRequest
                }
            )
        }
    ));
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
    assert!(targets::has_pdu(
        &trace,
        PhaseName::McsConnect,
        Side::Server,
        |i| { matches!(i, PduInfo::McsConnectResponse { .. }) }
    ));
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
    assert!(!targets::has_pdu(
        &trace,
        PhaseName::Tls,
        Side::Server,
        |i| { matches!(i, PduInfo::TlsServerHello { .. }) }
    ));
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
    assert!(!targets::has_pdu(
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
            .get("client_capability_sets")
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
    assert!(targets::has_pdu(
        &trace,
        PhaseName::Tls,
        Side::Server,
        |i| { matches!(i, PduInfo::TlsCertificate { .. }) }
    ));
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
