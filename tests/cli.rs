//! The command line as a user runs it: exit codes, the JSON schema, and no password anywhere.

mod support;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use support::{ChildGuard, TempDir, free_port, output, rdptrace, serve_port};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn demo_shows_the_0x904_0x7_disconnect_and_exits_with_the_licensing_code() {
    let out = output(rdptrace().arg("demo"));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(18), "{text}");
    assert!(text.contains("licensing        FAILED"), "{text}");
    assert!(
        text.contains("<- Set Error Info: 0x00000007 ERRINFO_SERVER_DENIED_CONNECTION"),
        "{text}"
    );
    assert!(
        text.contains("server closed the connection (FIN)"),
        "{text}"
    );
    assert!(
        text.contains(
            "mstsc would show: Error code 0x904 (socket closed), Extended error code 0x7 (server denied the connection)"
        ),
        "{text}"
    );
}

#[test]
fn demo_healthy_exits_0() {
    let out = output(rdptrace().args(["demo", "healthy", "--watch", "0.2"]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn a_refused_port_exits_10() {
    let port = free_port();
    let out = output(rdptrace().args(["probe", &format!("127.0.0.1:{port}"), "--timeout", "5"]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(10), "{text}");
    assert!(text.contains("cause: refused"), "{text}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["probe"],
        vec!["probe", "--no-such-flag", "host"],
        vec!["probe", "--password", "secret", "host"],
        vec!["probe", "--timeout", "-1", "host"],
        vec!["probe", "--phase-timeout", "abc", "host"],
        vec!["probe", "host:notaport"],
        vec!["probe", "--security", "nla", "host"],
        vec!["demo", "no-such-scenario"],
        vec!["no-such-command"],
    ] {
        let out = output(rdptrace().args(&args));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_user_without_a_password_source_is_a_usage_error_not_a_hang() {
    let out = output(rdptrace().args(["probe", "-u", "alice", "127.0.0.1:9"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RDPTRACE_PASSWORD"), "{err}");
}

/// The documented schema: every field README.md lists is there, with its type.
#[test]
fn json_follows_the_rdptrace_1_schema() {
    let out = output(rdptrace().args(["demo", "--json"]));
    assert_eq!(out.status.code(), Some(18));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one document per line: {text}");
    let doc: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
    assert_eq!(doc["schema"], "rdptrace/1");
    assert!(
        doc["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("127.0.0.1:"))
    );
    let phases = doc["phases"].as_array().expect("phases");
    let names: Vec<&str> = phases.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "tcp",
            "x224",
            "tls",
            "credssp",
            "early_user_auth",
            "mcs_connect",
            "channel_join",
            "secure_settings",
            "licensing",
            "capabilities",
            "finalization",
            "active"
        ]
    );
    for p in phases {
        let status = p["status"].as_str().expect("status");
        assert!(
            ["ok", "failed", "skipped", "not_reached"].contains(&status),
            "{status}"
        );
        for key in ["start_ms", "duration_ms"] {
            assert!(p[key].is_number() || p[key].is_null(), "{key} in {p}");
        }
        for key in ["bytes_in", "bytes_out"] {
            assert!(p[key].is_u64(), "{key} in {p}");
        }
        assert!(p["facts"].is_object());
        assert!(p["pdus"].is_array());
        for pdu in p["pdus"].as_array().into_iter().flatten() {
            assert!(pdu["at_ms"].is_number() && pdu["len"].is_u64() && pdu["name"].is_string());
            assert!(["client", "server"].contains(&pdu["from"].as_str().unwrap_or_default()));
            assert!(pdu["info"]["type"].is_string());
        }
    }
    let licensing = &phases[8];
    assert_eq!(licensing["status"], "failed");
    let v = &doc["verdict"];
    assert_eq!(v["ok"], false);
    assert_eq!(v["phase"], "licensing");
    assert_eq!(v["cause"], "server_error_info");
    assert!(v["detail"].is_string());
    assert_eq!(v["error_info"]["code"], 7);
    assert_eq!(v["error_info"]["name"], "ERRINFO_SERVER_DENIED_CONNECTION");
    assert_eq!(v["mstsc"]["disc_reason"]["code"], 0x904);
    assert_eq!(v["mstsc"]["extended"]["code"], 7);
    assert_eq!(v["mstsc"]["basis"], "specified");
}

fn everything(outputs: &[&Output], files: &[&Path]) -> String {
    let mut all = String::new();
    for o in outputs {
        all.push_str(&String::from_utf8_lossy(&o.stdout));
        all.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    for f in files {
        if let Ok(bytes) = std::fs::read(f) {
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    all
}

/// A marker password, given through every documented channel, never shows up in any output stream or
/// file, at the most verbose log level, on success and on the error paths.
#[test]
fn the_password_never_appears_anywhere() {
    const MARKER: &str = "Marker-Pa55-7e1f2c";
    let dir = TempDir::new("password");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{MARKER}\n")).expect("write password file");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "Wrong-Marker-9b3d\n").expect("write password file");

    for (scenario, probe_pw, via_env) in [
        ("healthy", &pw, false),
        ("denied-connection", &pw, true),
        ("healthy", &wrong, false),
    ] {
        let tag = format!(
            "{scenario}-{}",
            probe_pw
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("pw")
        );
        let server_keylog = dir.path().join(format!("server-{tag}.keylog"));
        let server_traces = dir.path().join(format!("server-{tag}.jsonl"));
        let server_stderr = dir.path().join(format!("server-{tag}.stderr"));
        let client_keylog = dir.path().join(format!("client-{tag}.keylog"));
        let capture = dir.path().join(format!("client-{tag}.pcapng"));
        let server = rdptrace()
            .env("RUST_LOG", "trace")
            .args([
                "-vvv",
                "serve",
                "--scenario",
                scenario,
                "--once",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--password-file")
            .arg(&pw)
            .arg("--keylog")
            .arg(&server_keylog)
            .arg("--trace-json")
            .arg(&server_traces)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&server_stderr).expect("stderr file"))
            .spawn()
            .expect("start serve");
        let mut server = ChildGuard(server);
        let (port, first, lines) = serve_port(server.0.stdout.take().expect("stdout"));
        let mut probe = rdptrace();
        probe
            .env("RUST_LOG", "trace")
            .args([
                "-vvv", "probe", "--json", "--watch", "0.3", "-u", "rdptrace",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--keylog")
            .arg(&client_keylog)
            .arg("--pcap")
            .arg(&capture)
            .arg("--embed-secrets");
        if via_env {
            let secret = std::fs::read_to_string(probe_pw).expect("read");
            probe.env("RDPTRACE_PASSWORD", secret.trim());
        } else {
            probe.arg("--password-file").arg(probe_pw);
        }
        let probe_out = output(&mut probe);
        // The target handles one connection and exits; bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = server.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(server);
        let mut server_stdout: String = lines.map_while(Result::ok).collect::<Vec<_>>().join("\n");
        server_stdout.push_str(&first);
        // The capture, decrypted by replay with its embedded secrets, at the most verbose level.
        let replay_out = output(
            rdptrace()
                .env("RUST_LOG", "trace")
                .args(["-vvv", "replay", "--json"])
                .arg(&capture),
        );
        let replay_text = output(rdptrace().args(["-vv", "replay"]).arg(&capture));
        assert!(
            String::from_utf8_lossy(&replay_out.stdout).contains("rdptrace/1"),
            "the capture replays ({scenario})"
        );
        let mut all = everything(
            &[&probe_out, &replay_out, &replay_text],
            &[
                &server_keylog,
                &server_traces,
                &client_keylog,
                &server_stderr,
                &capture,
            ],
        );
        all.push_str(&server_stdout);
        assert!(all.len() > 1000, "the runs produced output ({scenario})");
        assert!(
            std::fs::metadata(&client_keylog)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "the key log was written ({scenario}): {}",
            String::from_utf8_lossy(&probe_out.stdout)
        );
        assert!(!all.contains(MARKER), "the password leaked ({scenario})");
        assert!(
            !all.contains("Wrong-Marker-9b3d"),
            "the wrong password leaked ({scenario})"
        );
        // UTF-16LE, as it travels in the Client Info PDU and in NTLM.
        let utf16: String = MARKER.chars().flat_map(|c| [c, '\0']).collect();
        assert!(
            !all.contains(&utf16),
            "the password leaked as UTF-16 ({scenario})"
        );
        // A library's debug print of the UTF-16LE bytes: `[77, 0, 97, 0, ...]`.
        let decimal = MARKER
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            !all.contains(&decimal),
            "the password leaked as printed bytes ({scenario})"
        );
    }
}
