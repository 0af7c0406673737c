//! Past a connection broker: the probe follows a Server Redirection PDU as mstsc does (a new connection to
//! the target, the routing token in its X.224 Connection Request, the session in its Client Cluster Data,
//! the password cookie in its Client Info), records every hop, stops on `--no-follow`, and sends
//! `--load-balance-info` (or a .rdp file's loadbalanceinfo). xfreerdp 2.11 and 3 end on the session host as
//! the probe does. All on loopback (127.0.0.1 and 127.0.0.2), every wait bounded.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdptrace::serve::broker::{self, Broker, SessionHost};
use rdptrace::serve::deployment::Deployment;
use rdptrace::serve::scenario::{self, COLLECTION};
use rdptrace::serve::{Outcome, Served, Target, TargetConfig, TestIdentity};
use rdptrace::trace::{Fact, PhaseName, PhaseStatus, Trace};
use support::{BOUND, ChildGuard, TempDir, block_on, has_program, rdptrace, require};
use tokio::sync::mpsc;

/// A password cookie as a broker makes one: opaque bytes, not text.
const COOKIE: [u8; 16] = [
    0x01, 0x00, 0xfe, 0x7a, 0x00, 0x00, 0x9c, 0x11, 0x42, 0x00, 0xff, 0x13, 0x00, 0x80, 0x05, 0x00,
];

fn quick(cfg: &mut rdptrace::probe::ProbeConfig) {
    cfg.watch = Duration::from_millis(300);
    cfg.phase_timeout = Duration::from_secs(10);
    cfg.timeout = Duration::from_secs(40);
}

fn said(trace: &Trace) -> String {
    let v = rdptrace::diagnose::diagnose(trace);
    format!("{} in {:?}: {}", v.cause.as_str(), v.phase, v.detail)
}

/// Runs `deployment` until `stop` is used (or the bound passes); the targets' connections go to the
/// returned receiver.
fn start(
    deployment: Deployment,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<Served>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (sink, served) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let limited = async {
            tokio::select! {
                _ = stopped => {}
                () = tokio::time::sleep(BOUND) => {}
            }
        };
        let _ = deployment.run(limited, Some(sink), None).await;
    });
    (stop, task, served)
}

/// The connections the targets served until one served by `host` reached its end (or 20 s passed).
async fn served_until(served: &mut mpsc::UnboundedReceiver<Served>, host: IpAddr) -> Vec<Served> {
    let mut out: Vec<Served> = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    // INVARIANT: bounded by `until`.
    while !out.iter().any(|s| on(s, host)) && Instant::now() < until {
        if let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(100), served.recv()).await {
            out.push(s);
        }
    }
    out
}

/// Whether the target at `host` served this connection.
fn on(s: &Served, host: IpAddr) -> bool {
    s.trace
        .target
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip() == host)
}

const BROKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn the_probe_follows_the_broker() {
    block_on(async {
        let s = scenario::find("broker").expect("in the catalogue");
        let deployment = Deployment::bind(TargetConfig::new(s), None)
            .await
            .expect("binds");
        let mut cfg = deployment.probe_config().expect("a probe configuration");
        quick(&mut cfg);
        let (stop, task, mut served) = start(deployment);
        let trace = rdptrace::probe::probe(&cfg).await;
        let host = served_until(&mut served, HOST_IP).await;
        let _ = stop.send(());
        let _ = tokio::time::timeout(BOUND, task).await;

        let v = rdptrace::diagnose::diagnose(&trace);
        assert!(v.ok, "{}", said(&trace));
        assert!(
            v.detail.contains("redirected the client here"),
            "{}",
            v.detail
        );
        // The session host saw its token and its session (it refuses a client without them).
        let at_host: Vec<&Served> = host.iter().filter(|s| on(s, HOST_IP)).collect();
        assert_eq!(at_host.len(), 1, "{host:?}");
        assert_eq!(
            at_host[0].trace.phase(PhaseName::Active).status,
            PhaseStatus::Ok,
            "{:?}",
            at_host[0].outcome
        );

        // The hop: the broker's connection, with the redirection decoded.
        assert_eq!(trace.hops.len(), 1);
        let doc = serde_json::to_value(&trace).expect("json");
        let redirection = doc["hops"][0]["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["pdus"].as_array().into_iter().flatten())
            .find(|p| p["info"]["type"] == "server_redirection")
            .cloned()
            .expect("the Server Redirection PDU in the hop");
        assert_eq!(redirection["info"]["target"], "127.0.0.2");
        assert_eq!(redirection["info"]["session_id"], broker::SESSION_ID);
        let token = redirection["info"]["load_balance_info"]
            .as_str()
            .expect("a routing token");
        assert!(token.starts_with("Cookie: msts="), "{token}");
        // The next connection: to the target, the token instead of the cookie, the session asked for.
        assert!(trace.target.starts_with("127.0.0.2:"), "{}", trace.target);
        let x224 = doc["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["pdus"].as_array().into_iter().flatten())
            .find(|p| p["info"]["type"] == "x224_connection_request")
            .cloned()
            .expect("a Connection Request");
        assert!(x224["info"]["cookie"].is_null(), "{x224}");
        assert!(
            token.ends_with(x224["info"]["routing_token"].as_str().unwrap_or("none")),
            "{x224}"
        );
        assert_eq!(
            trace
                .phase(PhaseName::McsConnect)
                .facts
                .get(Fact::RedirectedSessionId)
                .and_then(|v| v.as_u64()),
            Some(u64::from(broker::SESSION_ID))
        );
    });
}

#[test]
fn no_follow_stops_at_the_broker() {
    block_on(async {
        let s = scenario::find("broker").expect("in the catalogue");
        let deployment = Deployment::bind(TargetConfig::new(s), None)
            .await
            .expect("binds");
        let mut cfg = deployment.probe_config().expect("a probe configuration");
        quick(&mut cfg);
        cfg.follow_redirects = false;
        let (stop, task, _served) = start(deployment);
        let trace = rdptrace::probe::probe(&cfg).await;
        let _ = stop.send(());
        let _ = tokio::time::timeout(BOUND, task).await;
        let v = rdptrace::diagnose::diagnose(&trace);
        assert_eq!(v.cause.as_str(), "redirected", "{}", said(&trace));
        assert!(trace.hops.is_empty());
        assert!(trace.target.starts_with("127.0.0.1:"), "{}", trace.target);
    });
}

/// A broker at 127.0.0.1 that passes `COOKIE` on, and a session host at 127.0.0.2 (the same port) that
/// requires it.
async fn cookie_pair() -> (Target, Target) {
    let healthy = scenario::find("healthy").expect("in the catalogue");
    // INVARIANT: a few attempts at a port free on both addresses.
    for _ in 0..20 {
        let mut host = TargetConfig::new(healthy);
        host.listen = SocketAddr::new(HOST_IP, 0);
        let probe_host = Target::bind(host.clone()).await.expect("binds");
        let port = probe_host.local_addr().port();
        let second = SocketAddr::new(HOST_IP, port);
        let token = broker::msts_token(second);
        drop(probe_host);
        host.listen = second;
        host.session_host = Some(SessionHost {
            token: token.clone(),
            session_id: broker::SESSION_ID,
            cookie: Some(COOKIE.to_vec()),
        });
        let mut first = TargetConfig::new(healthy);
        first.listen = SocketAddr::new(BROKER_IP, port);
        first.broker = Some(Broker {
            redirect_to: HOST_IP,
            token,
            password: Some(COOKIE.to_vec()),
            forward_to: None,
            requires: None,
        });
        if let (Ok(b), Ok(h)) = (Target::bind(first).await, Target::bind(host).await) {
            return (b, h);
        }
    }
    panic!("no port free on 127.0.0.1 and 127.0.0.2");
}

#[test]
fn the_password_cookie_goes_to_the_session_host_unless_secrets_are_written() {
    let dir = TempDir::new("broker-cookie");
    block_on(async {
        for keylog in [false, true] {
            let (b, h) = cookie_pair().await;
            let addr = b.local_addr();
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let (sink, mut served) = mpsc::unbounded_channel();
            for t in [b, h] {
                let mut rx = stopped.clone();
                let sink = sink.clone();
                tokio::spawn(async move {
                    let until = async move {
                        let _ = tokio::time::timeout(BOUND, rx.wait_for(|v| *v)).await;
                    };
                    let _ = t.run(until, Some(sink)).await;
                });
            }
            let id = TestIdentity::default();
            let mut cfg = rdptrace::probe::ProbeConfig::new(&addr.to_string()).expect("addr");
            quick(&mut cfg);
            cfg.credentials = Some(rdptrace::probe::Credentials {
                user: id.user.clone(),
                domain: None,
                password: rdptrace::probe::Password::new(id.password().to_owned()),
            });
            if keylog {
                cfg.keylog = Some(dir.path().join("keys.log"));
            }
            let trace = rdptrace::probe::probe(&cfg).await;
            let host = served_until(&mut served, HOST_IP).await;
            let _ = stop.send(true);
            let at_host = host
                .iter()
                .find(|s| on(s, HOST_IP))
                .expect("the host served");
            let v = rdptrace::diagnose::diagnose(&trace);
            if keylog {
                // Withheld: the session host, which requires it, refuses.
                assert!(!v.ok, "{}", said(&trace));
                assert!(
                    matches!(at_host.outcome, Outcome::Fault(_)),
                    "{:?}",
                    at_host.outcome
                );
                let words = trace
                    .phase(PhaseName::SecureSettings)
                    .facts
                    .get(Fact::ClientInfoPassword)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                assert!(words.contains("password cookie"), "{words}");
            } else {
                assert!(v.ok, "{}", said(&trace));
                assert_eq!(
                    at_host.trace.phase(PhaseName::Active).status,
                    PhaseStatus::Ok
                );
            }
        }
    });
}

/// `rdptrace serve --scenario NAME` (until dropped): its port.
fn serve(name: &str) -> (u16, ChildGuard) {
    let mut server = rdptrace()
        .args(["serve", "--scenario", name, "--listen", "127.0.0.1:0"])
        .env("RDPTRACE_PASSWORD", TestIdentity::DEFAULT_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rdptrace serve starts");
    let stdout = server.stdout.take().expect("piped stdout");
    let guard = ChildGuard(server);
    let (port, _, lines) = support::serve_port(stdout);
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (port, guard)
}

fn probe_json(args: &[&str]) -> serde_json::Value {
    let out = rdptrace()
        .args(["probe", "--json", "--phase-timeout", "10"])
        .args(args)
        .env("RDPTRACE_PASSWORD", TestIdentity::DEFAULT_PASSWORD)
        .output()
        .expect("rdptrace probe runs");
    let first = out.stdout.split(|b| *b == b'\n').next().unwrap_or_default();
    serde_json::from_slice(first)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn a_broker_that_needs_the_load_balance_info() {
    let dir = TempDir::new("broker-lb");
    let (port, _server) = serve("broker-needs-lb-info");
    let target = format!("127.0.0.1:{port}");
    let user = TestIdentity::DEFAULT_USER;

    let without = probe_json(&["-u", user, &target]);
    assert_eq!(
        without["verdict"]["cause"], "server_error_info",
        "{without}"
    );
    assert!(
        without["verdict"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no load-balance info")),
        "{without}"
    );

    let with = probe_json(&["-u", user, "--load-balance-info", COLLECTION, &target]);
    assert_eq!(with["verdict"]["cause"], "connected", "{with}");
    // Each connection's request has the routing token it sent: the collection, then the broker's token.
    assert_eq!(with["hops"][0]["request"]["load_balance_info"], COLLECTION);
    assert!(
        with["request"]["load_balance_info"]
            .as_str()
            .is_some_and(|t| t.starts_with("Cookie: msts=")),
        "{with}"
    );
    let first_request = with["hops"][0]["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["pdus"].as_array().into_iter().flatten())
        .find(|p| p["info"]["type"] == "x224_connection_request")
        .cloned()
        .expect("the broker's Connection Request");
    assert_eq!(
        first_request["info"]["routing_token"], COLLECTION,
        "the broker's connection carries the collection: {with}"
    );

    let file = dir.path().join("collection.rdp");
    std::fs::write(
        &file,
        format!(
            "full address:s:{target}\r\nusername:s:{user}\r\nloadbalanceinfo:s:{COLLECTION}\r\n"
        ),
    )
    .expect("the .rdp file");
    let from_file = probe_json(&["--rdp-file", file.to_str().expect("a UTF-8 path")]);
    assert_eq!(from_file["verdict"]["cause"], "connected", "{from_file}");
}

// ---- xfreerdp 2.11 and 3 past the broker -----------------------------------------------------------------

/// An OpenSSL configuration with the legacy provider on, for FreeRDP 3's NTLM (MD4).
fn openssl_legacy(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("openssl-legacy.cnf");
    std::fs::write(
        &path,
        "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n[provider_sect]\ndefault = default_sect\nlegacy = legacy_sect\n[default_sect]\nactivate = 1\n[legacy_sect]\nactivate = 1\n",
    )
    .expect("the OpenSSL configuration");
    path
}

/// Runs `program` on a display of its own against `addr` with the test identity and NLA, the whole
/// connection, bounded; its exit code (`None` when it had to be killed).
fn client(program: &str, addr: SocketAddr, home: &Path) -> Option<i32> {
    let id = TestIdentity::default();
    let out = std::fs::File::create(home.join("client.out")).expect("an output file");
    let err = out.try_clone().expect("the output file twice");
    support::peers::on_xvfb(
        Command::new(program)
            .arg(format!("/v:{addr}"))
            .arg(format!("/u:{}", id.user))
            // A test-only value for a test server; rdptrace itself never takes a password from argv.
            .arg(format!("/p:{}", id.password()))
            .args(["/cert:ignore", "/sec:nla", "/log-level:INFO"])
            .env("HOME", home)
            .env("OPENSSL_CONF", openssl_legacy(home))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err),
    )
    .and_then(|s| s.code())
}

#[test]
fn xfreerdp_2_and_3_end_on_the_session_host() {
    if !require(has_program("Xvfb"), "Xvfb (xvfb)") {
        return;
    }
    for program in ["xfreerdp", "xfreerdp3"] {
        if !require(has_program(program), program) {
            continue;
        }
        let dir = TempDir::new(&format!("broker-{program}"));
        let at_host = block_on(async {
            let s = scenario::find("broker").expect("in the catalogue");
            let mut config = TargetConfig::new(s);
            // The session host ends the session soon after it became active.
            config.idle_limit = Duration::from_secs(3);
            let deployment = Deployment::bind(config, None).await.expect("binds");
            let addr = deployment.address;
            let (stop, task, mut served) = start(deployment);
            let home = dir.path().to_owned();
            let program = program.to_owned();
            let _code = tokio::task::spawn_blocking(move || client(&program, addr, &home))
                .await
                .expect("the client ran");
            let all = served_until(&mut served, HOST_IP).await;
            let _ = stop.send(());
            let _ = tokio::time::timeout(BOUND, task).await;
            all.into_iter().find(|s| on(s, HOST_IP))
        });
        let output = std::fs::read_to_string(dir.path().join("client.out")).unwrap_or_default();
        let tail: Vec<&str> = output.lines().rev().take(8).collect();
        let at_host =
            at_host.unwrap_or_else(|| panic!("{program} never reached the session host: {tail:?}"));
        // The session host checked the routing token and the session, and the client reached the active
        // state there.
        assert_eq!(
            at_host.trace.phase(PhaseName::Active).status,
            PhaseStatus::Ok,
            "{program}: {:?} {tail:?}",
            at_host.outcome
        );
        assert!(
            !matches!(at_host.outcome, Outcome::Fault(_)),
            "{program}: {:?}",
            at_host.outcome
        );
    }
}

#[test]
fn the_replay_links_the_broker_session_to_the_session_host() {
    let dir = TempDir::new("broker-replay");
    let pcap = dir.path().join("broker.pcapng");
    let out = rdptrace()
        .args(["demo", "broker", "--embed-secrets", "--pcap"])
        .arg(&pcap)
        .output()
        .expect("rdptrace demo runs");
    assert!(pcap.is_file(), "{out:?}");
    let out = rdptrace()
        .args(["replay", "--json"])
        .arg(&pcap)
        .output()
        .expect("rdptrace replay runs");
    let docs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(docs.len(), 2, "{}", String::from_utf8_lossy(&out.stderr));
    let facts = |doc: &serde_json::Value, key: &str| -> Option<String> {
        doc["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|p| p["facts"][key].as_str().map(str::to_owned))
    };
    let (broker, host) = (&docs[0], &docs[1]);
    assert!(
        broker["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("127.0.0.1:"))
    );
    assert!(
        host["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("127.0.0.2:"))
    );
    // The Server Redirection PDU, decoded: its target and routing token.
    let redirection = broker["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["pdus"].as_array().into_iter().flatten())
        .find(|p| p["info"]["type"] == "server_redirection")
        .cloned()
        .expect("the Server Redirection PDU");
    assert_eq!(redirection["info"]["target"], "127.0.0.2");
    assert!(
        redirection["info"]["load_balance_info"]
            .as_str()
            .is_some_and(|t| t.starts_with("Cookie: msts=")),
        "{redirection}"
    );
    // Each names the other.
    let host_addrs = format!(
        "{} -> {}",
        host["client_addr"].as_str().unwrap_or_default(),
        host["target"].as_str().unwrap_or_default()
    );
    let broker_addrs = format!(
        "{} -> {}",
        broker["client_addr"].as_str().unwrap_or_default(),
        broker["target"].as_str().unwrap_or_default()
    );
    assert!(
        facts(broker, "followed_by").is_some_and(|f| f.starts_with(&host_addrs)),
        "{broker}"
    );
    assert!(
        facts(host, "redirected_from").is_some_and(|f| f.starts_with(&broker_addrs)),
        "{host}"
    );
    assert_eq!(host["verdict"]["cause"], "connected");
}
