//! `rdptrace check` against real servers: expectations that hold and that fail (exit 4), and the exit codes.

mod support;

use std::process::Output;

use support::peers::*;
use support::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line judging `expectation`, which must start with PASS or FAIL.
fn verdict_line(text: &str, expectation: &str) -> String {
    text.lines()
        .find(|l| {
            (l.starts_with("PASS ") || l.starts_with("FAIL "))
                && l.contains(&format!(" {expectation}: "))
        })
        .unwrap_or_else(|| panic!("no line for {expectation} in:\n{text}"))
        .to_owned()
}

#[test]
fn expectations_on_a_tls_xrdp() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("check-tls");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(
        dir.path(),
        port,
        &[
            ("security_layer", "tls"),
            ("ssl_protocols", "TLSv1.2, TLSv1.3"),
        ],
    ) else {
        panic!("xrdp did not start on port {port}");
    };
    let target = format!("127.0.0.1:{port}");
    let out = output(rdptrace().args([
        "check",
        &target,
        "-e",
        "active",
        "-e",
        "tls-min=1.2,cert-days=30",
        "-e",
        "no-standard-security",
        "--watch",
        "0.3",
    ]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(verdict_line(&text, "active").starts_with("PASS"));
    let tls = verdict_line(&text, "tls-min=1.2");
    assert!(tls.starts_with("PASS"), "{tls}");
    assert!(
        tls.contains("TLS 1.0 refused, TLS 1.1 refused, TLS 1.2 accepted"),
        "{tls}"
    );
    // LAB.md: xrdp refuses TLS 1.0 and 1.1 ClientHellos with alert protocol_version.
    assert!(
        text.contains("TLS 1.0 ClientHello: fatal alert protocol_version"),
        "{text}"
    );
    assert!(verdict_line(&text, "cert-days=30").starts_with("PASS"));
    let rdp = verdict_line(&text, "no-standard-security");
    assert!(rdp.contains("SSL_REQUIRED_BY_SERVER"), "{rdp}");

    // xrdp never selects NLA: it answers a request for TLS alone by selecting TLS.
    let out = output(rdptrace().args(["check", &target, "-e", "nla-required"]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    let nla = verdict_line(&text, "nla-required");
    assert!(nla.starts_with("FAIL"), "{nla}");
    assert!(
        nla.contains("seen RDP_NEG_RSP selecting PROTOCOL_SSL"),
        "{nla}"
    );

    // TLS 1.2 is accepted, so a minimum of 1.3 fails.
    let out = output(rdptrace().args(["check", &target, "-e", "tls-min=1.3"]));
    assert_eq!(out.status.code(), Some(4));
    assert!(verdict_line(&stdout(&out), "tls-min=1.3").starts_with("FAIL"));

    // A Standard RDP Security request is refused in x224, with SSL_REQUIRED_BY_SERVER.
    let out = output(rdptrace().args([
        "check",
        &target,
        "--security",
        "rdp",
        "-e",
        "phase=x224,neg-failure=SSL_REQUIRED_BY_SERVER",
    ]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(verdict_line(&text, "phase=x224").starts_with("PASS"));
    assert!(verdict_line(&text, "neg-failure=SSL_REQUIRED_BY_SERVER").starts_with("PASS"));
    // ... and it sends no Set Error Info.
    let out = output(rdptrace().args(["check", &target, "--security", "rdp", "-e", "errinfo=0x7"]));
    assert_eq!(out.status.code(), Some(4));
    let line = verdict_line(&stdout(&out), "errinfo=0x7");
    assert!(line.contains("no Set Error Info"), "{line}");
}

#[test]
fn tls_min_follows_ssl_protocols() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("check-tls13");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(
        dir.path(),
        port,
        &[("security_layer", "tls"), ("ssl_protocols", "TLSv1.3")],
    ) else {
        panic!("xrdp did not start on port {port}");
    };
    let target = format!("127.0.0.1:{port}");
    let out = output(rdptrace().args(["check", &target, "-e", "tls-min=1.3", "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let doc: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(doc["schema"], "rdptrace-check/1");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["outcomes"][0]["holds"], true);
    assert_eq!(
        doc["outcomes"][0]["seen"],
        "TLS 1.0 refused, TLS 1.1 refused, TLS 1.2 refused, TLS 1.3 accepted"
    );
}

#[test]
fn a_policy_with_sections_and_a_junit_report() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("check-policy");
    let tls = free_port();
    let Some(_a) = start_xrdp(dir.path(), tls, &[("security_layer", "tls")]) else {
        panic!("xrdp did not start on port {tls}");
    };
    let neg = free_port();
    let Some(_b) = start_xrdp(
        dir.path(),
        neg,
        &[("security_layer", "negotiate"), ("crypt_level", "high")],
    ) else {
        panic!("xrdp did not start on port {neg}");
    };
    let policy = format!(
        "active = true\n\
         no-standard-security = true\n\
         \n\
         [targets.\"127.0.0.1:{tls}\"]\n\
         \n\
         [targets.\"127.0.0.1:{neg}\"]\n\
         cert-days = 30\n"
    );
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy).unwrap();
    let junit = dir.path().join("check.xml");
    // No targets on the command line: the policy's sections name them.
    let out = output(rdptrace().args([
        "check",
        "--policy",
        path.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--watch",
        "0.3",
    ]));
    let text = stdout(&out);
    // xrdp with security_layer=negotiate accepts Standard RDP Security.
    assert_eq!(out.status.code(), Some(4), "{text}");
    let failing: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(failing.len(), 1, "{text}");
    assert!(
        failing[0].contains(&format!("127.0.0.1:{neg} no-standard-security")),
        "{text}"
    );
    assert!(
        failing[0].contains("RDP_NEG_RSP selecting PROTOCOL_RDP"),
        "{text}"
    );
    let report =
        quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap())
            .unwrap();
    assert_eq!(report.tests, 5);
    assert_eq!(report.failures, 1);
    let names: Vec<String> = report.test_suites[0]
        .test_cases
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(
        names,
        [
            format!("127.0.0.1:{tls} active"),
            format!("127.0.0.1:{tls} no-standard-security"),
            format!("127.0.0.1:{neg} active"),
            format!("127.0.0.1:{neg} no-standard-security"),
            format!("127.0.0.1:{neg} cert-days=30"),
        ]
    );
}

#[test]
fn nla_required_holds_on_a_freerdp_server_with_nla() {
    if !shadow_available() {
        return;
    }
    let dir = TempDir::new("check-shadow");
    let (port, _servers) = start_shadow_nla(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let target = format!("127.0.0.1:{port}");
    let out = output(rdptrace().args([
        "check",
        &target,
        "-e",
        "nla-required",
        "-e",
        "no-standard-security",
    ]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let nla = verdict_line(&text, "nla-required");
    assert!(nla.contains("HYBRID_REQUIRED_BY_SERVER"), "{nla}");
}

#[test]
fn usage_errors() {
    let out = output(rdptrace().args(["check", "127.0.0.1:1", "-e", "fast"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown expectation fast"));
    let out = output(rdptrace().args(["check", "127.0.0.1:1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no expectations"));
}

/// The lab's expectations (verdict, phase status, facts, who closed, PDUs) in `--expect` and in a policy,
/// judged on the built-in target.
#[test]
fn the_whole_expectation_language_on_the_built_in_target() {
    let (_runtime, addrs, (user, password)) = built_in_targets(&["denied-connection"]);
    let target = addrs[0].to_string();
    let run = |args: &[&str]| {
        rdptrace()
            .arg("check")
            .arg(&target)
            .args(["-u", &user, "--watch", "0.3"])
            .args(args)
            .env("RDPTRACE_PASSWORD", &password)
            .output()
            .expect("run rdptrace")
    };
    let out = run(&[
        "-e",
        "ok=no,phase=licensing,cause=server_error_info,mstsc=0x904/0x7,errinfo=0x7",
        "-e",
        "credssp=ok,capabilities=not_reached,x224.selected_protocol~PROTOCOL_HYBRID,!licensing.no_such_fact",
        "-e",
        "closed=server-fin,closed-after=MCS Disconnect Provider Ultimatum,pdu~Set Error Info,detail~ERRINFO_SERVER_DENIED_CONNECTION",
        "-e",
        "tls.tls_version=TLS 1.2",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    let failing: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(
        failing,
        [format!(
            "FAIL {target} tls.tls_version=TLS 1.2: expected the fact tls.tls_version is \"TLS 1.2\"; seen tls.tls_version = TLS 1.3"
        )],
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("PASS ")).count(), 13);
    let closed = verdict_line(&text, "closed-after=MCS Disconnect Provider Ultimatum");
    assert!(
        closed.contains("seen the last PDU before the close is MCS Disconnect Provider Ultimatum"),
        "{closed}"
    );

    // The same in a policy: facts as a phase's table, the ~ and ! forms in an expect list; the section
    // replaces the fact of the same key.
    let dir = TempDir::new("check-policy-language");
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        format!(
            "ok = \"no\"\n\
             tls.tls_version = \"TLS 1.2\"\n\
             expect = [\"x224.selected_protocol~PROTOCOL_HYBRID\", \"!licensing.no_such_fact\", \"closed=server-fin\"]\n\
             \n\
             [targets.\"{target}\"]\n\
             tls.tls_version = \"TLS 1.3\"\n"
        ),
    )
    .unwrap();
    let out = run(&["--policy", path.to_str().unwrap(), "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let judged: Vec<&str> = doc["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["expectation"].as_str().unwrap())
        .collect();
    assert_eq!(
        judged,
        [
            "ok=no",
            "x224.selected_protocol~PROTOCOL_HYBRID",
            "!licensing.no_such_fact",
            "closed=server-fin",
            "tls.tls_version=TLS 1.3"
        ]
    );
}
