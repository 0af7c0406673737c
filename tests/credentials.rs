//! No password anywhere, beyond the single probe of `tests/cli.rs`: fleet mode (several targets, JSON
//! and JUnit), `check` with JUnit, and a server that cuts NLA short at every point of it, with the key
//! log, the capture and its decrypted replay, at the most verbose log level.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{ChildGuard, TempDir, free_port, rdptrace, serve_port};

const MARKER: &str = "Marker-Cred-4d2a91";

/// The binary under test, logging at the trace level.
fn traced() -> Command {
    let mut cmd = rdptrace();
    cmd.env("RUST_LOG", "trace");
    cmd
}

/// `rdptrace serve` for `scenario`, accepting `rdptrace` with the marker password, its trace-level log
/// in `dir`. Returns the guard and the port.
fn serve(dir: &Path, scenario: &str) -> (ChildGuard, u16, Vec<std::path::PathBuf>) {
    let stderr = dir.join(format!("serve-{scenario}.stderr"));
    let traces = dir.join(format!("serve-{scenario}.jsonl"));
    let keylog = dir.join(format!("serve-{scenario}.keylog"));
    let child = traced()
        .args([
            "-vvv",
            "serve",
            "--scenario",
            scenario,
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RDPTRACE_PASSWORD", MARKER)
        .arg("--trace-json")
        .arg(&traces)
        .arg("--keylog")
        .arg(&keylog)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start serve");
    let mut guard = ChildGuard(child);
    let (port, _, _) = serve_port(guard.0.stdout.take().expect("stdout"));
    (guard, port, vec![stderr, traces, keylog])
}

/// Everything the runs wrote, as text.
fn everything(outputs: &[&Output], files: &[std::path::PathBuf]) -> String {
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

fn assert_no_password(all: &str, what: &str) {
    assert!(all.len() > 1000, "{what}: the runs produced output");
    assert!(!all.contains(MARKER), "{what}: the password leaked");
    // UTF-16LE, as it travels in the Client Info PDU and in NTLM.
    let utf16: String = MARKER.chars().flat_map(|c| [c, '\0']).collect();
    assert!(
        !all.contains(&utf16),
        "{what}: the password leaked as UTF-16"
    );
    // A library's debug print of the UTF-16LE bytes (`[77, 0, 97, 0, ...]`), as sspi logs its TSCredentials.
    let decimal = MARKER
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        !all.contains(&decimal),
        "{what}: the password leaked as printed bytes"
    );
}

/// Kerberos NLA against a real KDC and FreeRDP 3 with the marker password, at the most verbose log level,
/// with JSON, a capture with its TLS secrets and a key log: the password is nowhere, and no credential
/// cache is written.
#[test]
fn kerberos_never_shows_the_password_nor_writes_a_credential_cache() {
    use support::kerberos::{
        HOST, Kdc, REALM, SPN, USER, kdc_available, shadow3_available, start_shadow3,
    };
    if !kdc_available() || !shadow3_available() {
        return;
    }
    let dir = TempDir::new("credentials-kerberos");
    let kdc = Kdc::start(dir.path()).expect("the KDC starts");
    kdc.kadmin(&format!("cpw -pw {MARKER} {USER}"))
        .expect("the marker password");
    let keytab = dir.path().join("termsrv.keytab");
    kdc.ktadd(SPN, &keytab).expect("the service key");
    let (port, _shadow) = start_shadow3(dir.path(), &kdc, &keytab).expect("the shadow server");
    let capture = dir.path().join("kerberos.pcapng");
    let keylog = dir.path().join("kerberos.keylog");
    let ccache = dir.path().join("ccache");
    let mut runs = Vec::new();
    for (auth, password) in [("kerberos", MARKER), ("negotiate", "Wrong-Marker-77aa")] {
        let out = traced()
            .args(["-vvv", "probe", "--json", "--watch", "0.3", "--auth", auth])
            .args(["--kdc", &format!("tcp://127.0.0.1:{}", kdc.port)])
            .args(["-u", USER, "-d", REALM])
            .arg("--pcap")
            .arg(&capture)
            .arg("--embed-secrets")
            .arg("--keylog")
            .arg(&keylog)
            .arg(format!("{HOST}:{port}"))
            .env("RDPTRACE_PASSWORD", password)
            .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
            .output()
            .expect("the probe runs");
        runs.push(out);
    }
    assert_eq!(
        runs[0].status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&runs[0].stderr)
    );
    let all = everything(&runs.iter().collect::<Vec<_>>(), &[capture, keylog]);
    assert_no_password(&all, "kerberos");
    assert!(
        !all.contains("Wrong-Marker-77aa"),
        "the wrong password leaked"
    );
    assert!(
        all.contains("AS-REQ") || all.contains("as_req"),
        "the KDC exchange is in the output"
    );
    assert!(!ccache.exists(), "a credential cache was written");
}

#[test]
fn fleet_mode_and_check_never_show_the_password() {
    let dir = TempDir::new("credentials-fleet");
    let (_healthy, healthy, mut files) = serve(dir.path(), "healthy");
    let (_denied, denied, denied_files) = serve(dir.path(), "denied-connection");
    files.extend(denied_files);
    let refused = free_port();
    let targets = dir.path().join("targets.txt");
    std::fs::write(
        &targets,
        format!(
            "127.0.0.1:{healthy} expect=active\n127.0.0.1:{denied} user=rdptrace expect=active\n\
             127.0.0.1:{refused}\n127.0.0.1:{healthy} security=nla\n"
        ),
    )
    .expect("targets file");
    let junit = dir.path().join("fleet.xml");
    let fleet = traced()
        .args([
            "-vvv", "probe", "--json", "--watch", "0.3", "-u", "rdptrace",
        ])
        .arg("--targets")
        .arg(&targets)
        .arg("--junit")
        .arg(&junit)
        .env("RDPTRACE_PASSWORD", MARKER)
        .output()
        .expect("run the fleet");
    let docs = String::from_utf8_lossy(&fleet.stdout)
        .lines()
        .filter(|l| l.contains("\"rdptrace/1\""))
        .count();
    assert_eq!(docs, 4, "one document per target");
    assert!(
        std::fs::read_to_string(&junit).is_ok_and(|x| x.contains("<testsuite")),
        "the JUnit report was written"
    );

    let check_junit = dir.path().join("check.xml");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "active = true\ntls-min = \"1.2\"\n").expect("policy");
    let check = traced()
        .args(["-vvv", "check", "--watch", "0.3", "-u", "rdptrace"])
        .arg(format!("127.0.0.1:{healthy}"))
        .arg(format!("127.0.0.1:{denied}"))
        .arg("--policy")
        .arg(&policy)
        .arg("--junit")
        .arg(&check_junit)
        .env("RDPTRACE_PASSWORD", MARKER)
        .output()
        .expect("run check");
    assert!(
        std::fs::read_to_string(&check_junit).is_ok_and(|x| x.contains("<testcase")),
        "the check JUnit report was written"
    );
    let check_json = traced()
        .args([
            "-vvv", "check", "--json", "--watch", "0.3", "-u", "rdptrace",
        ])
        .args(["-e", "active,nla-required"])
        .arg(format!("127.0.0.1:{healthy}"))
        .env("RDPTRACE_PASSWORD", MARKER)
        .output()
        .expect("run check --json");
    assert!(String::from_utf8_lossy(&check_json.stdout).contains("rdptrace-check/1"));

    files.extend([junit, check_junit]);
    assert_no_password(
        &everything(&[&fleet, &check, &check_json], &files),
        "fleet and check",
    );
}

/// A relay to the built-in target that forwards both ways and cuts the connection (both ends) right
/// after forwarding the client's `cut_after`-th TLS application data record: somewhere in NLA, whatever
/// the TLS version (TLS 1.3 sends the client's Finished as one too). Nothing the server sends after that
/// record reaches the client, however late the relay's thread runs: the cut is decided before the record
/// goes to the server.
fn cutting_relay(target: u16, cut_after: usize) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let handle = std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
            return;
        };
        for s in [&client, &server] {
            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        }
        let (mut from_server, mut to_client) = (
            server.try_clone().expect("clone"),
            client.try_clone().expect("clone"),
        );
        let cut = Arc::new(AtomicBool::new(false));
        let back = std::thread::spawn({
            let cut = Arc::clone(&cut);
            move || {
                let mut buf = [0u8; 16384];
                // INVARIANT: bounded by the read timeout and the end of either stream.
                while let Ok(n) = from_server.read(&mut buf) {
                    // Read after the cut was decided: possibly the server's answer to the last record.
                    if n == 0
                        || cut.load(Ordering::SeqCst)
                        || to_client.write_all(&buf[..n]).is_err()
                    {
                        break;
                    }
                }
            }
        });
        let (mut from_client, mut to_server) = (client, server);
        let mut pending: Vec<u8> = Vec::new();
        let mut app_records = 0;
        let mut buf = [0u8; 16384];
        let end = Instant::now() + Duration::from_secs(60);
        // INVARIANT: bounded by the read timeout and by `end`.
        'relay: while Instant::now() < end {
            let Ok(n) = from_client.read(&mut buf) else {
                break;
            };
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            // Forward whole frames (the TPKT of the Connection Request, then TLS records), counting
            // the application data records.
            while let Some(len) = match pending.as_slice() {
                [0x03, 0x00, hi, lo, ..] => Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
                [0x14..=0x18, 0x03, _, hi, lo, ..] => {
                    Some(5 + usize::from(u16::from_be_bytes([*hi, *lo])))
                }
                _ => None,
            } {
                if pending.len() < len {
                    break;
                }
                let frame: Vec<u8> = pending.drain(..len).collect();
                let last = frame[0] == 0x17 && {
                    app_records += 1;
                    app_records == cut_after
                };
                if last {
                    cut.store(true, Ordering::SeqCst);
                }
                if to_server.write_all(&frame).is_err() || last {
                    break 'relay;
                }
            }
        }
        let _ = to_server.shutdown(Shutdown::Both);
        let _ = from_client.shutdown(Shutdown::Both);
        let _ = back.join();
    });
    (addr, handle)
}

#[test]
fn a_server_that_cuts_nla_short_or_refuses_the_password_never_shows_it() {
    let dir = TempDir::new("credentials-nla");
    let (_serve, port, mut files) = serve(dir.path(), "healthy");
    let mut outputs = Vec::new();
    let mut verdicts = Vec::new();
    for cut_after in 1..=4 {
        let (addr, relay) = cutting_relay(port, cut_after);
        let keylog = dir.path().join(format!("cut-{cut_after}.keylog"));
        let capture = dir.path().join(format!("cut-{cut_after}.pcapng"));
        let probe = traced()
            .args([
                "-vvv",
                "probe",
                "--json",
                "--watch",
                "0.3",
                "--timeout",
                "10",
            ])
            .args(["-u", "rdptrace"])
            .arg(addr.to_string())
            .arg("--keylog")
            .arg(&keylog)
            .arg("--pcap")
            .arg(&capture)
            .arg("--embed-secrets")
            .env("RDPTRACE_PASSWORD", MARKER)
            .output()
            .expect("run the probe");
        let _ = relay.join();
        let doc: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&probe.stdout).trim())
                .unwrap_or_else(|e| panic!("cut after {cut_after}: not JSON ({e})"));
        verdicts.push((
            doc["verdict"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            doc["verdict"]["cause"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
        let replay = traced()
            .args(["-vvv", "replay", "--json"])
            .arg(&capture)
            .output()
            .expect("replay the capture");
        outputs.push(probe);
        outputs.push(replay);
        files.extend([keylog, capture]);
    }
    eprintln!("{verdicts:?}");
    // Every cut ends the probe in NLA (or in the TLS handshake it finishes) with the server's close; the
    // client's fourth record may already be the MCS Connect Initial that follows the Early User
    // Authorization Result.
    assert!(
        verdicts.iter().all(
            |(phase, cause)| ["tls", "credssp", "early_user_auth", "mcs_connect"]
                .contains(&phase.as_str())
                && ["closed_by_server", "credssp_rejected", "reset_by_server"]
                    .contains(&cause.as_str())
        ),
        "{verdicts:?}"
    );
    assert!(
        verdicts
            .iter()
            .any(|(_, cause)| cause == "credssp_rejected"),
        "one cut comes after the credentials were sent: {verdicts:?}"
    );

    // A wrong password: the server refuses it.
    let wrong = traced()
        .args([
            "-vvv", "probe", "--json", "--watch", "0.3", "-u", "rdptrace",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("RDPTRACE_PASSWORD", format!("{MARKER}-wrong"))
        .output()
        .expect("run the probe");
    let text = String::from_utf8_lossy(&wrong.stdout).into_owned();
    assert!(text.contains("\"ok\":false"), "{text}");
    outputs.push(wrong);

    let refs: Vec<&Output> = outputs.iter().collect();
    let all = everything(&refs, &files);
    assert_no_password(&all, "NLA cut short");
    assert!(!all.contains("-wrong"), "the wrong password leaked");
}
