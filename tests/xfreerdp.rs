//! The built-in target against a real client: FreeRDP's xfreerdp (2.x) under Xvfb.
//!
//! One test runs xfreerdp against every scenario whose catalogue entry says what xfreerdp 2.11 reports (its
//! exit code and the names it prints), the others look at single scenarios more closely. Skipped with a
//! message when xfreerdp or Xvfb is missing and CI is unset; a failure when CI is set.

mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rdptrace::pdu::PduInfo;
use rdptrace::serve::deployment::Deployment;
use rdptrace::serve::{Outcome, Served, Target, TargetConfig, TestIdentity, scenario};
use rdptrace::trace::Fact;
use rdptrace::trace::PhaseName;
use support::{rdptrace, wait_or_kill};

/// Every wait is bounded by this; none is asserted on.
const BOUND: Duration = Duration::from_secs(60);

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether the real client can run here; panics under CI when it cannot.
fn client_available() -> bool {
    let missing: Vec<&str> = ["xfreerdp", "Xvfb"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and {} is missing", missing.join(" and "));
    }
    eprintln!(
        "skipped: {} not found (install freerdp2-x11 and xvfb)",
        missing.join(" and ")
    );
    false
}

/// A directory of its own for one test (xfreerdp's HOME, where known_hosts2 goes).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rdptrace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Waits for a child up to the bound; on timeout kills its process group (it was started as the leader of
/// a group of its own) and fails.
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    wait_or_kill(child).unwrap_or_else(|| panic!("{what} did not end within {BOUND:?}"))
}

/// Runs xfreerdp against `port` with NLA (or the `/sec:` in `extra`); returns its exit status and its output
/// (stdout and stderr).
fn xfreerdp(port: u16, home: &Path, extra: &[&str]) -> (ExitStatus, String) {
    let id = TestIdentity::default();
    let out_path = home.join("xfreerdp.out");
    let out = std::fs::File::create(&out_path).expect("an output file");
    let err = out.try_clone().expect("the output file twice");
    let mut args = vec![
        format!("/v:127.0.0.1:{port}"),
        format!("/u:{}", id.user),
        // A test-only value for a test server; the target itself never takes it from argv.
        format!("/p:{}", id.password()),
        "/cert:ignore".to_owned(),
        "/log-level:INFO".to_owned(),
    ];
    if !extra.iter().any(|a| a.starts_with("/sec:")) {
        args.push("/sec:nla".to_owned());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let status = support::peers::on_xvfb(
        Command::new("xfreerdp")
            .args(&args)
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err),
    )
    .unwrap_or_else(|| panic!("xfreerdp did not end within {BOUND:?}"));
    let mut output = String::new();
    let _ = std::fs::File::open(&out_path).and_then(|mut f| f.read_to_string(&mut output));
    (status, output)
}

#[test]
fn xfreerdp_against_denied_connection() {
    if !client_available() {
        return;
    }
    let home = scratch("xfreerdp-denied");
    let traces = home.join("traces.jsonl");
    let password_file = home.join("password");
    std::fs::write(
        &password_file,
        format!("{}\n", TestIdentity::DEFAULT_PASSWORD),
    )
    .expect("the password file");

    // The command line, as a user runs it: one connection, the password from a file.
    let mut server = rdptrace()
        .args([
            "serve",
            "--scenario",
            "denied-connection",
            "--listen",
            "127.0.0.1:0",
            "--once",
            "--password-file",
        ])
        .arg(&password_file)
        .arg("--trace-json")
        .arg(&traces)
        .env_remove("RDPTRACE_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("rdptrace serve starts");
    let stdout = server.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("rdptrace serve says where it listens")
        .expect("a line of text");
    let port: u16 = first
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));

    let (status, output) = xfreerdp(port, &home, &[]);
    let served = wait_bounded(&mut server, "rdptrace serve --once");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();

    assert!(
        output.contains("ERRINFO_SERVER_DENIED_CONNECTION"),
        "xfreerdp output:\n{output}"
    );
    // The error info arrives before the connection completes: xfreerdp's connect fails and it exits with
    // XF_EXIT_CONN_FAILED (131), not with the errorInfo (see the test below for that).
    assert_eq!(status.code(), Some(131), "xfreerdp output:\n{output}");
    assert!(served.success(), "rdptrace serve exits 0");
    assert!(
        rest.iter().any(|l| l.contains("fault at client_info")),
        "rdptrace serve output: {rest:?}"
    );
    let json = std::fs::read_to_string(&traces).expect("the trace file");
    let doc: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("one trace")).expect("json");
    assert_eq!(doc["verdict"]["cause"], "server_error_info");
    assert_eq!(doc["verdict"]["phase"], "licensing");
    assert_eq!(doc["verdict"]["error_info"]["code"], 7);
    let _ = std::fs::remove_dir_all(&home);
}

/// Runs the target in-process for one xfreerdp connection.
fn against(config: TargetConfig, name: &str, extra: &[&str]) -> (ExitStatus, String, Served) {
    let home = scratch(name);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let target = runtime
        .block_on(Target::bind(config))
        .expect("the target binds");
    let port = target.local_addr().port();
    let server = runtime.spawn(async move { target.serve_one().await });
    let (status, output) = xfreerdp(port, &home, extra);
    let served = runtime
        .block_on(async { tokio::time::timeout(BOUND, server).await })
        .expect("the target ends the connection within the bound")
        .expect("the target task does not panic")
        .expect("the target accepts");
    let _ = std::fs::remove_dir_all(&home);
    (status, output, served)
}

#[test]
fn xfreerdp_exits_with_the_error_info_after_activation() {
    if !client_available() {
        return;
    }
    let scenario = scenario::find("denied-connection").expect("in the catalogue");
    let config = TargetConfig::new(scenario)
        .with_overrides(Some(PhaseName::Active), None)
        .expect("error info is possible in active");
    let (status, output, served) = against(config, "xfreerdp-denied-active", &[]);
    assert!(
        output.contains("ERRINFO_SERVER_DENIED_CONNECTION"),
        "xfreerdp output:\n{output}"
    );
    // Once connected, xfreerdp 2 exits with an errorInfo up to 0xC as its exit code.
    assert_eq!(status.code(), Some(7), "xfreerdp output:\n{output}");
    assert!(
        matches!(served.outcome, Outcome::Fault(_)),
        "{:?}",
        served.outcome
    );
}

#[test]
fn xfreerdp_against_healthy() {
    if !client_available() {
        return;
    }
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let (status, output, served) = against(
        TargetConfig::new(scenario),
        "xfreerdp-healthy",
        &["+auth-only"],
    );
    assert_eq!(status.code(), Some(0), "xfreerdp output:\n{output}");
    assert!(
        matches!(served.outcome, Outcome::ClientClosed { .. }),
        "{:?}",
        served.outcome
    );
    // With +auth-only xfreerdp leaves after NLA: the target saw its credentials.
    assert!(
        served.trace.pdus().any(|(_, p)| matches!(
            &p.info,
            PduInfo::TsRequest {
                auth_info: true,
                ..
            }
        )),
        "the client's credentials went through CredSSP"
    );
}

/// An Xvfb server of its own for the catalogue run, killed (by its PID) when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts Xvfb on a display number it picks itself (`-displayfd`).
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "1024x768x24",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let number = line.trim().to_owned();
        assert!(
            !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
            "Xvfb printed no display number: {line:?}"
        );
        Xvfb {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one xfreerdp run against one scenario gave.
struct XfreerdpRun {
    exit: Option<i32>,
    output: String,
}

/// Runs the scenario in-process for `scenario` (its target, and its gateway or second target; serving every
/// connection xfreerdp makes: it retries some failures) and xfreerdp against it, with the scenario's
/// arguments (and `/g:`, `/gu:`, `/gp:` for its gateway), trusting the target's test CA.
fn xfreerdp_run(
    s: &'static scenario::Scenario,
    x: &scenario::Xfreerdp,
    display: &str,
    ca: &Path,
) -> XfreerdpRun {
    let home = scratch(&format!("xf-{}", s.name));
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut config = TargetConfig::new(s);
    // An address as the certificate's name: xfreerdp matches host names against the CN and DNS names only.
    config.host_name = "127.0.0.1".to_owned();
    config.idle_limit = Duration::from_secs(20);
    config.read_timeout = Duration::from_secs(20);
    if s.gateway.is_some_and(|g| g.kerberos.is_some()) {
        // A Kerberos gateway needs the key of HTTP/<its name>; xfreerdp 2.11 has no Kerberos, so any key
        // will do: it never sees a ticket.
        config.gateway_kerberos = gateway_keys(&home, &config.host_name);
    }
    let deployment = runtime
        .block_on(Deployment::bind(config, None))
        .expect("the scenario binds");
    let address = deployment.address;
    let gateway = deployment.gateway.as_ref().map(|g| g.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        deployment
            .run(
                async {
                    let _ = stopped.await;
                },
                None,
                None,
            )
            .await
    });
    let id = TestIdentity::default();
    let out_path = home.join("xfreerdp.out");
    let out = std::fs::File::create(&out_path).expect("an output file");
    let err = out.try_clone().expect("the output file twice");
    let mut command = Command::new("xfreerdp");
    command
        .arg(format!("/v:{address}"))
        .arg(format!("/u:{}", id.user))
        // A test-only value for a test server; the target itself never takes it from argv.
        .arg(format!("/p:{}", id.password()));
    if let Some(gw) = gateway {
        command
            .arg(format!("/g:{gw}"))
            .arg(format!("/gu:{}", id.user))
            .arg(format!("/gp:{}", id.password()));
    }
    let mut child = command
        .args(x.args)
        .arg("/log-level:INFO")
        .env("DISPLAY", display)
        .env("HOME", &home)
        .env("SSL_CERT_FILE", ca)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .expect("xfreerdp starts");
    let status = wait_or_kill(&mut child);
    let _ = stop.send(());
    let _ = runtime.block_on(async { tokio::time::timeout(BOUND, server).await });
    let mut output = String::new();
    let _ = std::fs::File::open(&out_path).and_then(|mut f| f.read_to_string(&mut output));
    let _ = std::fs::remove_dir_all(&home);
    XfreerdpRun {
        exit: status.and_then(|s| s.code()),
        output,
    }
}

/// A keytab with a random key of `HTTP/<host>@RDPTRACE.TEST` in `dir`, as the gateway's keys.
fn gateway_keys(dir: &Path, host: &str) -> Option<rdptrace::serve::gateway::GatewayKerberos> {
    use rdptrace::kerberos::keytab::{Entry, Key, write};
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key).expect("random bytes");
    let entry = Entry {
        components: vec!["HTTP".to_owned(), host.to_owned()],
        realm: "RDPTRACE.TEST".to_owned(),
        // [RFC 4120] 6.2 NT-SRV-INST; [RFC 3962] aes256-cts-hmac-sha1-96.
        name_type: 2,
        kvno: 1,
        etype: 18,
        key: Key::new(key),
    };
    let path = dir.join("gateway.keytab");
    std::fs::write(&path, write(&[entry])).expect("the keytab");
    rdptrace::serve::gateway::GatewayKerberos::from_keytab(&path, "RDPTRACE.TEST", host)
        .expect("the keytab reads")
}

/// xfreerdp runs at the same time.
const XFREERDP_PARALLEL: usize = 4;

#[test]
fn xfreerdp_agrees_with_the_catalogue() {
    if !client_available() {
        return;
    }
    let xvfb = Xvfb::start();
    let dir = scratch("xf-catalogue");
    let ca = dir.join("test-ca.pem");
    std::fs::write(
        &ca,
        rdptrace::serve::tls::test_ca_pem().expect("the test CA"),
    )
    .expect("the CA file");
    let runs: Vec<&'static scenario::Scenario> = scenario::catalogue()
        .iter()
        .filter(|s| s.xfreerdp.is_some())
        .collect();
    let queue = std::sync::Mutex::new(runs.into_iter());
    let mismatches = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..XFREERDP_PARALLEL {
            scope.spawn(|| {
                // INVARIANT: each pass takes one scenario off a finite queue.
                loop {
                    let next = queue.lock().map(|mut q| q.next()).ok().flatten();
                    let Some(s) = next else { break };
                    let Some(x) = s.xfreerdp else { continue };
                    let run = xfreerdp_run(s, &x, &xvfb.display, &ca);
                    let mut wrong = Vec::new();
                    if run.exit != Some(x.exit) {
                        wrong.push(format!("exit {:?} (expected {})", run.exit, x.exit));
                    }
                    for word in x.says {
                        if !run.output.contains(word) {
                            wrong.push(format!("does not say {word:?}"));
                        }
                    }
                    if !wrong.is_empty() {
                        let tail: Vec<&str> = run.output.lines().rev().take(6).collect();
                        if let Ok(mut m) = mismatches.lock() {
                            m.push(format!(
                                "{}: {}\n    {}",
                                s.name,
                                wrong.join("; "),
                                tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
                            ));
                        }
                    }
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let mut mismatches = mismatches.into_inner().unwrap_or_default();
    mismatches.sort();
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn xfreerdp_answers_the_license_request_with_a_new_license_request() {
    if !client_available() {
        return;
    }
    let scenario = scenario::find("license-exchange").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    // xfreerdp stays in the session; the target ends it.
    config.idle_limit = Duration::from_secs(2);
    let (_status, output, served) = against(config, "xfreerdp-license", &[]);
    let from_client: Vec<&PduInfo> = served
        .trace
        .pdus()
        .filter(|(phase, p)| {
            *phase == PhaseName::Licensing && p.from == rdptrace::trace::Side::Client
        })
        .map(|(_, p)| &p.info)
        .collect();
    assert!(
        from_client.iter().any(|info| matches!(
            info,
            PduInfo::License {
                message: rdptrace::pdu::LicenseMessage::NewLicenseRequest
            }
        )),
        "xfreerdp answered the License Request with a New License Request: {from_client:?}\n{output}"
    );
    assert!(
        matches!(served.outcome, Outcome::IdleLimit),
        "xfreerdp went on to the active session: {:?}",
        served.outcome
    );
}

#[test]
fn xfreerdp_against_standard_security() {
    if !client_available() {
        return;
    }
    let scenario = scenario::find("standard-security").expect("in the catalogue");
    let (status, output, served) = against(
        TargetConfig::new(scenario),
        "xfreerdp-standard-security",
        &["/sec:rdp", "+auth-only"],
    );
    // Under Standard RDP Security +auth-only ends after the connection sequence: xfreerdp reached the active
    // state, with FreeRDP's own RC4, MAC and key derivation against the target's.
    assert_eq!(status.code(), Some(0), "xfreerdp output:\n{output}");
    assert!(
        matches!(
            served.outcome,
            Outcome::ClientClosed {
                phase: PhaseName::Active,
                ..
            }
        ),
        "{:?}",
        served.outcome
    );
    let trace = &served.trace;
    let facts = |phase: PhaseName, key: Fact| {
        trace
            .phase(phase)
            .facts
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        facts(PhaseName::SecureSettings, Fact::Encryption).as_deref(),
        Some("RC4 128-bit")
    );
    // FreeRDP signs with the salted MAC; the target answers in kind and xfreerdp accepts it.
    assert_eq!(
        facts(PhaseName::SecureSettings, Fact::ClientMac).as_deref(),
        Some("salted (SEC_SECURE_CHECKSUM)")
    );
    assert!(
        trace.pdus().any(|(_, p)| matches!(
            &p.info,
            PduInfo::ClientInfo { encrypted: true, user: Some(u), .. } if u == "rdptrace"
        )),
        "the target decrypted xfreerdp's Client Info"
    );
    assert!(
        trace
            .pdus()
            .any(|(_, p)| p.name == "Font List" && p.summary.contains("decrypted")),
        "xfreerdp went through finalization"
    );
}

#[test]
fn xfreerdp_against_standard_security_with_fips() {
    if !client_available() {
        return;
    }
    let scenario = scenario::find("standard-security").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    config.standard_security = rdptrace::serve::standard_security::StandardSecurity::FIPS;
    let (status, output, served) = against(
        config,
        "xfreerdp-standard-security-fips",
        &["/sec:rdp", "+auth-only"],
    );
    assert_eq!(status.code(), Some(0), "xfreerdp output:\n{output}");
    assert!(
        matches!(
            served.outcome,
            Outcome::ClientClosed {
                phase: PhaseName::Active,
                ..
            }
        ),
        "{:?}",
        served.outcome
    );
    assert_eq!(
        served
            .trace
            .phase(PhaseName::SecureSettings)
            .facts
            .get(Fact::Encryption)
            .and_then(|v| v.as_str()),
        Some("FIPS (3DES, HMAC-SHA1)")
    );
}
