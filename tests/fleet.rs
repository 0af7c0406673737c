//! Fleet mode: targets files, .rdp files, sharding, JUnit, and runs over several real listeners.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use rdptrace::check::Expectation;
use rdptrace::fleet::{Shard, rdpfile, targets};
use rdptrace::probe::Security;
use rdptrace::trace::PhaseName;
use support::peers::*;
use support::*;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// The JSON documents of stdout, one per line.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn an_mstsc_rdp_file_in_utf16_becomes_the_request_mstsc_makes() {
    let bytes = std::fs::read(fixture("rdp/mstsc.rdp")).unwrap();
    assert_eq!(
        &bytes[..2],
        &[0xff, 0xfe],
        "the fixture is UTF-16LE with a BOM"
    );
    let spec = rdpfile::read(&fixture("rdp/mstsc.rdp")).unwrap();
    assert_eq!(spec.target, "rdp.example.com:3390");
    assert_eq!(spec.user.as_deref(), Some("alice"));
    assert_eq!(spec.domain.as_deref(), Some("CORP"));
    // enablecredsspsupport is absent (1) and the layer is negotiated: what --security auto does.
    assert_eq!(spec.security, None);
    // authentication level 2: warn, do not refuse.
    assert_eq!(spec.strict_cert, Some(false));
    // gatewayhostname is empty: no gateway.
    assert!(spec.notes.is_empty(), "{:?}", spec.notes);
}

#[test]
fn a_legacy_rdp_file_asks_for_standard_security_and_names_its_gateway() {
    let spec = rdpfile::read(&fixture("rdp/gateway.rdp")).unwrap();
    assert_eq!(spec.target, "legacy.example.com:3391");
    assert_eq!(spec.user.as_deref(), Some("bob@corp.example"));
    assert_eq!(spec.domain, None);
    assert_eq!(spec.security, Some(Security::Rdp));
    assert_eq!(spec.strict_cert, Some(true));
    // Its gateway is followed (gatewayusagemethod 1), with nothing to note.
    assert_eq!(spec.gateway.as_deref(), Some("gw.example.com"));
    assert!(spec.notes.is_empty(), "{:?}", spec.notes);
    let err = rdpfile::read(&fixture("rdp/bad-line.rdp")).unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string()
            .ends_with("line 2: not name:type:value: screen mode id"),
        "{err}"
    );
}

#[test]
fn the_example_targets_file_parses() {
    let file = std::fs::File::open(fixture("targets/example.txt")).unwrap();
    let specs = targets::read(std::io::BufReader::new(file), "example.txt").unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        names,
        [
            "rdp1.example.com",
            "rdp2.example.com:3390",
            "10.0.0.7",
            "[2001:db8::7]:3389"
        ]
    );
    assert_eq!(specs[1].security, Some(Security::Nla));
    assert_eq!(
        specs[2].expect,
        vec![
            Expectation::Phase(PhaseName::Licensing),
            Expectation::ErrInfo(7)
        ]
    );
    assert_eq!(specs[2].source, "example.txt:4");
    assert_eq!(specs[3].strict_cert, Some(true));
}

#[test]
fn shards_split_the_input_deterministically() {
    let n = 23;
    let mut seen = vec![0; n];
    for i in 1..=4 {
        let shard = Shard::parse(&format!("{i}/4")).unwrap();
        for (pos, count) in seen.iter_mut().enumerate() {
            if shard.keeps(pos) {
                *count += 1;
            }
        }
    }
    assert!(
        seen.iter().all(|c| *c == 1),
        "every target in exactly one shard: {seen:?}"
    );
}

/// Loopback ports where nothing listens (bound, then released).
fn dead_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

#[test]
fn sharding_the_command_line_keeps_every_nth_target_in_input_order() {
    let dir = TempDir::new("fleet-shard");
    let ports = dead_ports(7);
    let list: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    let file = dir.path().join("targets.txt");
    std::fs::write(&file, list).unwrap();
    let file = file.to_str().unwrap();
    let mut all = Vec::new();
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let runs: Vec<Vec<String>> = (0..2)
            .map(|_| {
                let out = output(rdptrace().args([
                    "probe",
                    "-T",
                    file,
                    "--shard",
                    &shard,
                    "--json",
                    "--timeout",
                    "5",
                ]));
                let mut targets: Vec<String> = json_lines(&out)
                    .iter()
                    .map(|d| d["target"].as_str().unwrap().to_owned())
                    .collect();
                targets.sort();
                targets
            })
            .collect();
        assert_eq!(runs[0], runs[1], "shard {shard} is the same on every run");
        let mut expected: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(pos, _)| pos % 3 == i - 1)
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect();
        expected.sort();
        assert_eq!(runs[0], expected, "shard {shard}");
        all.extend(runs[0].clone());
    }
    all.sort();
    let mut every: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    every.sort();
    assert_eq!(all, every);
}

#[test]
fn many_targets_stream_json_lines_a_summary_junit_and_the_first_failures_exit_code() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("fleet-run");
    let tls_port = free_port();
    let Some(_tls) = start_xrdp(dir.path(), tls_port, &[("security_layer", "tls")]) else {
        panic!("xrdp did not start on port {tls_port}");
    };
    let neg_port = free_port();
    let Some(_neg) = start_xrdp(
        dir.path(),
        neg_port,
        &[("security_layer", "negotiate"), ("crypt_level", "high")],
    ) else {
        panic!("xrdp did not start on port {neg_port}");
    };
    let dead = dead_ports(2);
    // In input order: active; refused in x224 (exit 11); nothing listens (exit 10); expectations met;
    // expectations not met (exit 4); nothing listens.
    let list = format!(
        "# fleet test\n\
         127.0.0.1:{tls_port}\n\
         127.0.0.1:{tls_port} security=rdp\n\
         127.0.0.1:{d0}\n\
         127.0.0.1:{neg_port} security=rdp expect=active\n\
         127.0.0.1:{tls_port} expect=nla-required\n\
         127.0.0.1:{d1}   # also dead\n",
        d0 = dead[0],
        d1 = dead[1],
    );
    let file = dir.path().join("targets.txt");
    std::fs::write(&file, &list).unwrap();
    let junit = dir.path().join("junit.xml");
    let out = output(rdptrace().args([
        "probe",
        "--targets",
        file.to_str().unwrap(),
        "--json",
        "--junit",
        junit.to_str().unwrap(),
        "--concurrency",
        "3",
        "--watch",
        "0.3",
        "--timeout",
        "30",
        "--phase-timeout",
        "10",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 6, "one document per target: {stderr}");
    for d in &docs {
        assert_eq!(d["schema"], "rdptrace/1");
    }
    let by_target = |t: String, f: &dyn Fn(&serde_json::Value) -> bool| {
        docs.iter()
            .filter(|d| d["target"] == t.as_str() && f(d))
            .count()
    };
    let tls = format!("127.0.0.1:{tls_port}");
    assert_eq!(
        by_target(tls.clone(), &|d| d["verdict"]["ok"] == true),
        2,
        "{stderr}"
    );
    assert_eq!(
        by_target(tls.clone(), &|d| d["verdict"]["phase"] == "x224"
            && d["verdict"]["cause"] == "negotiation_failure"),
        1
    );
    let nla = docs
        .iter()
        .find(|d| d["expectations"][0]["expectation"] == "nla-required")
        .expect("the nla-required document");
    assert_eq!(nla["expectations"][0]["holds"], false);
    let mcs = docs
        .iter()
        .find(|d| d["target"] == format!("127.0.0.1:{neg_port}").as_str())
        .unwrap();
    // RC4 Standard RDP Security, negotiated and carried through to the active state.
    assert_eq!(mcs["verdict"]["ok"], true);
    assert_eq!(mcs["expectations"][0]["holds"], true);
    for p in &dead {
        assert_eq!(
            by_target(format!("127.0.0.1:{p}"), &|d| d["verdict"]["cause"]
                == "refused"),
            1
        );
    }

    // The summary goes to stderr with --json.
    assert!(
        stderr.contains("summary: 6 targets, 2 passed, 4 failed"),
        "{stderr}"
    );
    let line = |prefix: &str| {
        stderr
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_default()
            .to_owned()
    };
    let phases = line("by phase:");
    for count in ["active 3", "tcp 2", "x224 1"] {
        assert!(phases.contains(count), "{phases}");
    }
    let causes = line("by cause:");
    for count in ["refused 2", "connected 3", "negotiation_failure 1"] {
        assert!(causes.contains(count), "{causes}");
    }
    assert!(stderr.contains("1 with some not met"), "{stderr}");
    // The first failing target in input order is the x224 refusal.
    assert_eq!(out.status.code(), Some(11), "{stderr}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(report.tests, 6);
    assert_eq!(report.failures, 4);
    let suite = &report.test_suites[0];
    let names: Vec<String> = suite
        .test_cases
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    let expected: Vec<String> = list
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(names, expected, "cases in input order");
    for case in &suite.test_cases {
        assert_eq!(
            case.classname.as_ref().map(|c| c.as_str()),
            Some("rdptrace.probe")
        );
    }
    let refused = &suite.test_cases[2];
    match &refused.status {
        quick_junit::TestCaseStatus::NonSuccess { message, ty, .. } => {
            assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("refused"));
            assert!(
                message
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .contains("refused the TCP connection")
            );
        }
        other => panic!("not a failure: {other:?}"),
    }
    let out = refused.system_out.as_ref().unwrap().as_str();
    assert!(out.contains("verdict: failed in tcp"), "{out}");
    assert!(!dir.path().join("junit.xml.partial").exists());
}

#[test]
fn text_mode_prints_one_line_per_target_and_the_summary_on_stdout() {
    let dead = dead_ports(2);
    let a = format!("127.0.0.1:{}", dead[0]);
    let b = format!("127.0.0.1:{}", dead[1]);
    let out = output(rdptrace().args(["probe", &a, &b, "--timeout", "5"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for l in &lines {
        assert!(l.contains("  tcp  refused  "), "{l}");
        assert!(l.contains("(mstsc 0x204/0x0)"), "{l}");
    }
    assert!(
        stdout.contains("summary: 2 targets, 0 passed, 2 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("failing targets:"), "{stdout}");
    assert_eq!(out.status.code(), Some(10));
}

#[test]
fn stdin_and_rdp_files_feed_the_same_run() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("fleet-rdp");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(dir.path(), port, &[("security_layer", "tls")]) else {
        panic!("xrdp did not start on port {port}");
    };
    // An .rdp file as mstsc writes it, pointing at the real server, with a gateway it bypasses for local
    // addresses (gatewayusagemethod 4): the connection is direct.
    let text = format!(
        "full address:s:127.0.0.1:{port}\r\nenablecredsspsupport:i:0\r\ngatewayhostname:s:gw.example.com\r\ngatewayusagemethod:i:4\r\n"
    );
    let mut bytes = vec![0xff, 0xfe];
    for u in text.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    let rdp = dir.path().join("server.rdp");
    std::fs::write(&rdp, bytes).unwrap();
    let dead = dead_ports(1)[0];
    let mut child = rdptrace()
        .args([
            "probe",
            "-",
            "--rdp-file",
            rdp.to_str().unwrap(),
            "--json",
            "--watch",
            "0.3",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "127.0.0.1:{dead}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 2, "{}", String::from_utf8_lossy(&out.stderr));
    let via_rdp = docs
        .iter()
        .find(|d| d["target"] == format!("127.0.0.1:{port}").as_str())
        .unwrap();
    assert_eq!(via_rdp["verdict"]["ok"], true);
    assert_eq!(
        via_rdp["request"]["requested_protocols"], 1,
        "enablecredsspsupport:i:0: SSL alone"
    );
    // The gateway is bypassed: the connection is direct, the trace has no gateway phase.
    assert_eq!(via_rdp["phases"][0]["name"], "tcp");
    assert!(via_rdp["request"].get("gateway").is_none(), "{via_rdp}");
    // Stdin came first in input order, and it failed: its exit code decides.
    assert_eq!(out.status.code(), Some(10));

    // In text mode the target's line is that of a direct connection.
    let dead = format!("127.0.0.1:{dead}");
    let out = output(rdptrace().args([
        "probe",
        &dead,
        "--rdp-file",
        rdp.to_str().unwrap(),
        "--watch",
        "0.3",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port} ")))
        .unwrap_or_else(|| panic!("no line for the .rdp target:\n{text}"));
    assert!(line.starts_with("ok "), "{line}");
    assert!(!line.contains("gw.example.com"), "{line}");
}

#[test]
fn bad_input_is_a_usage_error_naming_the_line() {
    let dir = TempDir::new("fleet-bad");
    let file = dir.path().join("t.txt");
    std::fs::write(&file, "ok.example\nhost colour=blue\n").unwrap();
    let out = output(rdptrace().args(["probe", "-T", file.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("t.txt:2: unknown option colour"), "{err}");
    let out = output(rdptrace().args(["probe", "--shard", "3/2", "127.0.0.1:1"]));
    assert_eq!(out.status.code(), Some(2));
    let out = output(rdptrace().args([
        "probe",
        "--rdp-file",
        fixture("rdp/bad-line.rdp").to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}

/// The lab's syntax in `probe --targets`: variables, quotes, names, the password from the variable a line
/// names, per-line deadlines, wrong-password=yes, and the lab's expectations, against real connections.
#[test]
fn a_targets_file_in_the_labs_syntax() {
    let (_runtime, addrs, (user, password)) = built_in_targets(&["denied-connection", "healthy"]);
    let dir = TempDir::new("fleet-lab-syntax");
    let file = dir.path().join("targets.txt");
    std::fs::write(
        &file,
        format!(
            "${{DENIED}} name=denied user={user} password-env=FLEET_TEST_PW phase-timeout=10 watch=0.3 expect=\"phase=licensing,cause=server_error_info,errinfo=0x7,mstsc=0x904/0x7,closed=server-fin,closed-after~Disconnect Provider Ultimatum,pdu~Set Error Info,credssp=ok,x224.selected_protocol~PROTOCOL_HYBRID\"\n\
             $HEALTHY name=\"the healthy one\" user={user} password-env=FLEET_TEST_PW timeout=30 watch=0.3 expect=\"ok=yes,phase=none,active=ok,closed=client,tls.tls_version=TLS 1.3,!tls.no_such_fact\"\n\
             $HEALTHY name=wrong user={user} password-env=FLEET_TEST_PW wrong-password=yes expect=ok=no,phase=credssp,ntstatus=STATUS_LOGON_FAILURE\n"
        ),
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let out = rdptrace()
        .args(["probe", "--json", "--junit"])
        .arg(&junit)
        .arg("-T")
        .arg(&file)
        .env_remove("RDPTRACE_PASSWORD")
        .env("DENIED", addrs[0].to_string())
        .env("HEALTHY", addrs[1].to_string())
        .env("FLEET_TEST_PW", &password)
        .output()
        .expect("run rdptrace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 3, "{stderr}");
    for d in &docs {
        let unmet: Vec<&serde_json::Value> = d["expectations"]
            .as_array()
            .expect("expectations")
            .iter()
            .filter(|o| o["holds"] != true)
            .collect();
        assert!(unmet.is_empty(), "{}: {unmet:#?}", d["name"]);
    }
    let mut names: Vec<&str> = docs.iter().filter_map(|d| d["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["denied", "the healthy one", "wrong"]);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    for name in [
        "name=\"denied\"",
        "name=\"the healthy one\"",
        "name=\"wrong\"",
    ] {
        assert!(xml.contains(name), "{xml}");
    }
    // The password is in no output.
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&password));
    assert!(!xml.contains(&password));

    // An expectation that does not hold makes the run fail with exit 4, and says what was seen.
    std::fs::write(
        &file,
        format!(
            "{} expect=\"tls.tls_version=TLS 1.2,closed=server-rst\"\n",
            addrs[1]
        ),
    )
    .unwrap();
    let out = output(rdptrace().args(["probe", "-T", file.to_str().unwrap(), "--watch", "0.3"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("tls.tls_version=TLS 1.2: expected the fact tls.tls_version is \"TLS 1.2\"; seen tls.tls_version = TLS 1.3"),
        "{text}"
    );
    assert!(
        text.contains("closed=server-rst: expected the server reset the connection (RST); seen the server closed the connection (FIN)"),
        "{text}"
    );
}

#[test]
fn a_password_variable_that_is_not_set_is_a_usage_error() {
    let dir = TempDir::new("fleet-password-env");
    let file = dir.path().join("t.txt");
    std::fs::write(
        &file,
        "127.0.0.1:1 user=alice password-env=FLEET_TEST_UNSET_PW\n",
    )
    .unwrap();
    let out = output(rdptrace().args(["probe", "-T", file.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the password variable FLEET_TEST_UNSET_PW (password-env) is not set"),
        "{err}"
    );
    std::fs::write(&file, "127.0.0.1:1 user=alice password=hunter2\n").unwrap();
    let out = output(rdptrace().args(["probe", "-T", file.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("passwords do not go in targets files"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
