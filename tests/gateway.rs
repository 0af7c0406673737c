//! The probe through an RD Gateway: the built-in gateway (`serve --gateway`, the gateway scenarios) over
//! WebSocket and over the HTTP transport, with NTLM, Negotiate and Basic; the gateway phases in the trace;
//! the gateway password kept out of everything the probe writes; a .rdp file's gateway; and real peers
//! through the built-in gateway: the probe to the lab's xrdp, xfreerdp 2.11 to the built-in target and to
//! the lab's xrdp. All on loopback, every wait bounded.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rdptrace::gateway::{GatewayConfig, GatewayCredentials, Scheme, TransportChoice};
use rdptrace::pdu::PduInfo;
use rdptrace::probe::{Credentials, Password, ProbeConfig};
use rdptrace::serve::deployment::Deployment;
use rdptrace::serve::gateway::{self, Gateway, GatewayOutcome, GatewayProfile};
use rdptrace::serve::{TargetConfig, TestIdentity, scenario};
use rdptrace::trace::{Fact, PhaseName, PhaseStatus, Trace};
use support::gateway::{
    Stoppable, phase, replay_json, run_deployment, run_gateway, said, serve_with_gateway, xfreerdp,
    xfreerdp_available,
};
use support::{BOUND, ChildGuard, TempDir, block_on, free_port, rdptrace};
use tokio::sync::mpsc;

/// A password no test identity has: it is looked for in everything the probe writes.
const MARKER: &str = "Gw-Marker-7c1f9e";

/// A scenario's deployment, running until [`Running::stop`]; the gateway's outcomes are collected.
struct Running {
    server: Stoppable,
    outcomes: mpsc::UnboundedReceiver<(SocketAddr, GatewayOutcome)>,
    probe: ProbeConfig,
}

impl Running {
    async fn start(deployment: Deployment) -> Running {
        let probe = deployment.probe_config().expect("a probe configuration");
        let (sink, outcomes) = mpsc::unbounded_channel();
        Running {
            server: run_deployment(deployment, None, Some(sink)),
            outcomes,
            probe,
        }
    }

    async fn scenario(name: &str) -> Running {
        let s = scenario::find(name).expect("in the catalogue");
        let deployment = Deployment::bind(TargetConfig::new(s), None)
            .await
            .expect("the scenario binds");
        Running::start(deployment).await
    }

    /// Stops the servers once the gateway has reported the end of `tunnels` tunnels (or 10 s passed); the
    /// outcomes of the gateway's connections.
    async fn stop(mut self, tunnels: usize) -> Vec<GatewayOutcome> {
        let mut out = collect(&mut self.outcomes, tunnels).await;
        self.server.stop().await;
        while let Ok((_, o)) = self.outcomes.try_recv() {
            out.push(o);
        }
        out
    }
}

/// The gateway's outcomes until `tunnels` tunnels ended (or 10 s passed).
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(SocketAddr, GatewayOutcome)>,
    tunnels: usize,
) -> Vec<GatewayOutcome> {
    let mut out = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    // INVARIANT: bounded by `until`.
    while relayed(&out).len() < tunnels && Instant::now() < until {
        if let Ok(Some((_, o))) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            out.push(o);
        }
    }
    out
}

fn quick(cfg: &mut ProbeConfig) {
    cfg.watch = Duration::from_millis(300);
    cfg.phase_timeout = Duration::from_secs(10);
    cfg.timeout = Duration::from_secs(40);
}

fn fact(trace: &Trace, phase: PhaseName, key: Fact) -> Option<&str> {
    trace.phase(phase).facts.get(key).and_then(|v| v.as_str())
}

fn fact_text(trace: &Trace, phase: PhaseName, key: Fact) -> String {
    trace
        .phase(phase)
        .facts
        .get(key)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The transports of the tunnels the gateway relayed.
fn relayed(outcomes: &[GatewayOutcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            GatewayOutcome::Relayed { transport, .. } => Some(*transport),
            _ => None,
        })
        .collect()
}

#[test]
fn through_the_gateway_over_websocket() {
    block_on(async {
        let running = Running::scenario("gateway-healthy").await;
        let mut cfg = running.probe.clone();
        quick(&mut cfg);
        let trace = rdptrace::probe::probe(&cfg).await;
        let outcomes = running.stop(1).await;
        let v = rdptrace::diagnose::diagnose(&trace);
        assert!(v.ok, "{}", said(&trace));

        // The gateway's phases come first, each with its time, its bytes and its evidence.
        let names: Vec<&str> = trace.shown_phases().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names.get(..4),
            Some(&["gateway_connect", "gateway_auth", "gateway_tunnel", "tcp"][..]),
            "{names:?}"
        );
        let mut end = 0.0;
        for name in PhaseName::GATEWAY {
            let p = trace.phase(name);
            assert_eq!(p.status, PhaseStatus::Ok, "{name}");
            let start = p.start_ms.expect("a start");
            assert!(start >= end, "{name} starts at {start} before {end}");
            end = start + p.duration_ms.expect("a duration");
            assert!(p.bytes_out > 0 && p.bytes_in > 0, "{name}: {p:?}");
        }
        assert!(
            trace
                .phase(PhaseName::GatewayConnect)
                .pdus
                .iter()
                .any(|p| p.name == "TLS Certificate"),
            "the gateway's certificate is evidence"
        );
        assert_eq!(
            fact(&trace, PhaseName::GatewayAuth, Fact::GatewayTransport),
            Some("WebSocket")
        );
        assert_eq!(
            fact(&trace, PhaseName::GatewayAuth, Fact::GatewayAuthScheme),
            Some("NTLM")
        );
        assert!(
            !fact_text(&trace, PhaseName::GatewayTunnel, Fact::GatewayChannelId).is_empty(),
            "the channel's id"
        );
        // The RDP sequence inside the tunnel, as without a gateway.
        for phase in [
            PhaseName::X224,
            PhaseName::Tls,
            PhaseName::Credssp,
            PhaseName::Active,
        ] {
            assert_eq!(trace.phase(phase).status, PhaseStatus::Ok, "{phase}");
        }
        assert_eq!(relayed(&outcomes), ["WebSocket"], "{outcomes:?}");

        // In JSON: the gateway phases, the gateway in the request.
        let doc = serde_json::to_value(&trace).expect("json");
        assert_eq!(doc["phases"][0]["name"], "gateway_connect");
        assert!(doc["request"]["gateway"].as_str().is_some(), "{doc}");
    });
}

#[test]
fn the_http_transport_when_the_gateway_has_no_websocket() {
    block_on(async {
        let running = Running::scenario("gateway-http-transport").await;
        let mut cfg = running.probe.clone();
        quick(&mut cfg);
        let trace = rdptrace::probe::probe(&cfg).await;
        let outcomes = running.stop(1).await;
        assert!(rdptrace::diagnose::diagnose(&trace).ok, "{}", said(&trace));
        let transport = fact(&trace, PhaseName::GatewayAuth, Fact::GatewayTransport)
            .unwrap_or_default()
            .to_owned();
        assert!(
            transport.starts_with("HTTP (RDG_OUT_DATA and RDG_IN_DATA): the gateway answered the WebSocket upgrade with 200")
                && transport.contains("10-byte seed"),
            "{transport}"
        );
        assert_eq!(relayed(&outcomes), ["HTTP"], "{outcomes:?}");
    });
}

#[test]
fn the_http_transport_when_asked_for() {
    block_on(async {
        let running = Running::scenario("gateway-healthy").await;
        let mut cfg = running.probe.clone();
        quick(&mut cfg);
        if let Some(g) = cfg.gateway.as_mut() {
            g.transport = TransportChoice::Http;
        }
        let trace = rdptrace::probe::probe(&cfg).await;
        let outcomes = running.stop(1).await;
        assert!(rdptrace::diagnose::diagnose(&trace).ok, "{}", said(&trace));
        // No upgrade asked for: RDG_OUT_DATA and RDG_IN_DATA from the start.
        let upgrades = trace
            .pdus()
            .filter(|(_, p)| matches!(p.info, PduInfo::HttpRequest { upgrade: true, .. }))
            .count();
        assert_eq!(upgrades, 0);
        let methods: Vec<String> = trace
            .pdus()
            .filter_map(|(_, p)| match &p.info {
                PduInfo::HttpRequest { method, .. } => Some(method.clone()),
                _ => None,
            })
            .collect();
        assert!(methods.iter().any(|m| m == "RDG_IN_DATA"), "{methods:?}");
        assert_eq!(relayed(&outcomes), ["HTTP"], "{outcomes:?}");
    });
}

#[test]
fn basic_and_negotiate() {
    block_on(async {
        let running = Running::scenario("gateway-basic").await;
        let mut cfg = running.probe.clone();
        quick(&mut cfg);
        let trace = rdptrace::probe::probe(&cfg).await;
        running.stop(1).await;
        assert!(rdptrace::diagnose::diagnose(&trace).ok, "{}", said(&trace));
        assert_eq!(
            fact(&trace, PhaseName::GatewayAuth, Fact::GatewayAuthScheme),
            Some("Basic")
        );

        // A gateway that offers Negotiate only (NTLM inside SPNEGO).
        let mut config = TargetConfig::new(scenario::find("healthy").expect("in the catalogue"));
        config.idle_limit = Duration::from_secs(10);
        let deployment = Deployment::bind(config, Some("127.0.0.1:0".parse().expect("addr")))
            .await
            .expect("binds");
        let mut gc = gateway::GatewayConfig::new(GatewayProfile {
            schemes: &[Scheme::Negotiate],
            ..GatewayProfile::HEALTHY
        });
        gc.read_timeout = Duration::from_secs(10);
        let gw = Gateway::bind(gc).await.expect("the gateway binds");
        let url = gw.url();
        let gw_running = run_gateway(&gw, None);
        let running = Running::start(deployment).await;
        let mut cfg = running.probe.clone();
        quick(&mut cfg);
        let mut gcfg = GatewayConfig::new(&url).expect("a gateway address");
        gcfg.credentials = cfg.gateway.as_ref().and_then(|g| g.credentials.clone());
        cfg.gateway = Some(gcfg);
        let trace = rdptrace::probe::probe(&cfg).await;
        gw_running.stop().await;
        running.stop(0).await;
        assert!(rdptrace::diagnose::diagnose(&trace).ok, "{}", said(&trace));
        assert_eq!(
            fact(&trace, PhaseName::GatewayAuth, Fact::GatewayAuthScheme),
            Some("Negotiate")
        );
    });
}

#[test]
fn a_probe_without_a_gateway_has_no_gateway_phases() {
    let out = rdptrace()
        .args(["demo", "healthy", "--json"])
        .output()
        .expect("rdptrace demo runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    let rdp: Vec<&str> = PhaseName::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(names, rdp);
    assert!(doc.get("hops").is_none(), "{doc}");
    assert!(doc["request"].get("gateway").is_none(), "{doc}");
    assert!(doc["request"].get("load_balance_info").is_none(), "{doc}");
}

/// Whether `needle` is in `hay`, as UTF-8 or as UTF-16LE.
fn contains_secret(hay: &[u8], needle: &str) -> bool {
    let utf16: Vec<u8> = needle.encode_utf16().flat_map(u16::to_le_bytes).collect();
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
        || hay.windows(utf16.len()).any(|w| w == utf16.as_slice())
}

#[test]
fn the_gateway_password_stays_out_of_what_the_probe_writes() {
    let dir = TempDir::new("gw-secret");
    let (port, url, _server) = serve_with_gateway("gateway-healthy", dir.path(), MARKER);
    let pcap = dir.path().join("gw.pcapng");
    let out = rdptrace()
        .args(["probe", "--json", "-u", TestIdentity::DEFAULT_USER])
        .args([
            "--gateway",
            &url,
            "--gateway-user",
            TestIdentity::DEFAULT_USER,
        ])
        .arg("--pcap")
        .arg(&pcap)
        .arg(format!("127.0.0.1:{port}"))
        .env("RDPTRACE_PASSWORD", MARKER)
        .env("RDPTRACE_GATEWAY_PASSWORD", MARKER)
        .output()
        .expect("rdptrace probe runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(doc["verdict"]["cause"], "connected", "{doc}");
    assert_eq!(doc["phases"][1]["facts"]["gateway_auth_scheme"], "NTLM");
    let written = std::fs::read(&pcap).expect("the capture");
    for (what, bytes) in [
        ("stdout", &out.stdout),
        ("stderr", &out.stderr),
        ("the capture", &written),
    ] {
        assert!(!contains_secret(bytes, MARKER), "the password is in {what}");
    }
}

#[test]
fn basic_is_not_used_when_the_secrets_are_written() {
    let dir = TempDir::new("gw-basic-keylog");
    let (port, url, _server) = serve_with_gateway("gateway-basic", dir.path(), MARKER);
    let keylog = dir.path().join("keys.log");
    let out = rdptrace()
        .args(["probe", "--json", "-u", TestIdentity::DEFAULT_USER])
        .args(["--gateway", &url])
        .arg("--keylog")
        .arg(&keylog)
        .arg(format!("127.0.0.1:{port}"))
        .env("RDPTRACE_PASSWORD", MARKER)
        .output()
        .expect("rdptrace probe runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["verdict"]["phase"], "gateway_auth", "{doc}");
    assert_eq!(doc["verdict"]["cause"], "client_limit", "{doc}");
    let text = doc["verdict"]["detail"].as_str().unwrap_or_default();
    assert!(text.contains("only Basic"), "{text}");
    // No Authorization: Basic went out.
    let phases = doc["phases"].as_array().expect("phases");
    let sent_basic = phases
        .iter()
        .flat_map(|p| p["pdus"].as_array().into_iter().flatten())
        .any(|p| p["info"]["auth_scheme"] == "Basic");
    assert!(!sent_basic, "{doc}");
}

#[test]
fn a_rdp_file_gateway_is_followed() {
    let dir = TempDir::new("gw-rdpfile");
    let (port, url, _server) =
        serve_with_gateway("healthy", dir.path(), TestIdentity::DEFAULT_PASSWORD);
    let host_port = url.trim_start_matches("https://");
    for (usage, through) in [(1, true), (0, false)] {
        let file = dir.path().join(format!("farm-{usage}.rdp"));
        std::fs::write(
            &file,
            format!(
                "full address:s:127.0.0.1:{port}\r\nusername:s:{}\r\ngatewayhostname:s:{host_port}\r\ngatewayusagemethod:i:{usage}\r\ngatewaycredentialssource:i:0\r\n",
                TestIdentity::DEFAULT_USER
            ),
        )
        .expect("the .rdp file");
        let out = rdptrace()
            .args(["probe", "--json", "--rdp-file"])
            .arg(&file)
            .env("RDPTRACE_PASSWORD", TestIdentity::DEFAULT_PASSWORD)
            .output()
            .expect("rdptrace probe runs");
        let doc: serde_json::Value =
            serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap_or_default())
                .unwrap_or_else(|e| {
                    panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
                });
        assert_eq!(doc["verdict"]["cause"], "connected", "{doc}");
        assert_eq!(
            doc["phases"][0]["name"] == "gateway_connect",
            through,
            "gatewayusagemethod:i:{usage}: {doc}"
        );
        if through {
            assert_eq!(doc["phases"][1]["facts"]["gateway_auth_scheme"], "NTLM");
        }
    }
}

#[test]
fn rpc_over_http_is_a_transport_the_probe_takes() {
    // `--gateway-transport rpc` goes through the gateway phases (tests/gateway_rpc.rs); here the gateway is
    // out of reach, and the verdict says so as for the other transports.
    let port = free_port();
    let out = rdptrace()
        .args(["probe", "--json", "--timeout", "10"])
        .args(["--gateway-transport", "rpc", "--gateway"])
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("127.0.0.1:3389")
        .output()
        .expect("rdptrace probe runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["verdict"]["phase"], "gateway_connect", "{doc}");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
}

#[test]
fn an_unreachable_gateway() {
    let port = free_port();
    let out = rdptrace()
        .args(["probe", "--json", "--timeout", "10"])
        .arg("--gateway")
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("127.0.0.1:3389")
        .output()
        .expect("rdptrace probe runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["verdict"]["phase"], "gateway_connect", "{doc}");
    assert_eq!(doc["verdict"]["cause"], "refused", "{doc}");
    assert!(
        doc["verdict"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("RD Gateway")),
        "{doc}"
    );
    assert_eq!(out.status.code(), Some(7));
}

/// The lab's xrdp with TLS, its user and password; `None` (skipped) when the lab is not up.
fn lab_xrdp() -> Option<(String, String, String)> {
    let lab = support::lab::lab()?;
    let (Some(addr), Some(user), Some(password)) = (
        lab.var("RDPTRACE_LAB_XRDP_TLS"),
        lab.var("RDPTRACE_LAB_USER"),
        lab.var("RDPTRACE_LAB_PASSWORD"),
    ) else {
        support::lab::skip("the lab's xrdp-tls, its user or its password is not known");
        return None;
    };
    Some((addr, user, password))
}

/// The built-in gateway alone (healthy), until the returned sender is used or dropped.
async fn lone_gateway() -> (
    Gateway,
    tokio::sync::oneshot::Sender<()>,
    mpsc::UnboundedReceiver<(SocketAddr, GatewayOutcome)>,
) {
    let mut gc = gateway::GatewayConfig::new(GatewayProfile::HEALTHY);
    gc.read_timeout = Duration::from_secs(15);
    gc.idle_limit = Duration::from_secs(15);
    let gw = Gateway::bind(gc).await.expect("the gateway binds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (sink, outcomes) = mpsc::unbounded_channel();
    let g = gw.clone();
    tokio::spawn(async move {
        let limited = async {
            tokio::select! {
                _ = stopped => {}
                () = tokio::time::sleep(BOUND) => {}
            }
        };
        let _ = g.run(limited, Some(sink)).await;
    });
    (gw, stop, outcomes)
}

#[test]
fn through_the_gateway_to_the_lab_xrdp() {
    let Some((addr, user, password)) = lab_xrdp() else {
        return;
    };
    block_on(async {
        let (gw, stop, _outcomes) = lone_gateway().await;
        let id = TestIdentity::default();
        let mut cfg = ProbeConfig::new(&addr).expect("the lab's address");
        quick(&mut cfg);
        cfg.credentials = Some(Credentials {
            user,
            domain: None,
            password: Password::new(password),
        });
        let mut g = GatewayConfig::new(&gw.url()).expect("the gateway's URL");
        g.credentials = Some(GatewayCredentials {
            user: id.user.clone(),
            domain: None,
            password: Password::new(id.password().to_owned()),
        });
        cfg.gateway = Some(g);
        let trace = rdptrace::probe::probe(&cfg).await;
        let _ = stop.send(());
        assert!(rdptrace::diagnose::diagnose(&trace).ok, "{}", said(&trace));
        assert_eq!(
            trace.phase(PhaseName::GatewayTunnel).status,
            PhaseStatus::Ok
        );
        assert_eq!(trace.phase(PhaseName::Active).status, PhaseStatus::Ok);
        assert!(
            fact_text(&trace, PhaseName::Tls, Fact::CertSubject).contains("xrdp-tls"),
            "the lab's certificate, through the tunnel"
        );
    });
}

// ---- xfreerdp 2.11 through the built-in gateway --------------------------------------------------------

/// The gateway arguments of xfreerdp for `gw` and the test identity.
fn gateway_args(gw: SocketAddr, transport: &str) -> Vec<String> {
    let id = TestIdentity::default();
    vec![
        format!("/g:{gw}"),
        format!("/gu:{}", id.user),
        // A test-only value for a test server; rdptrace itself never takes a password from argv.
        format!("/gp:{}", id.password()),
        format!("/gt:{transport}"),
    ]
}

#[test]
fn xfreerdp_through_the_gateway_to_the_target() {
    if !xfreerdp_available() {
        return;
    }
    let id = TestIdentity::default();
    for (transport, websocket, expect) in [
        ("http", true, "WebSocket"),
        ("http,no-websockets", true, "HTTP"),
        ("auto", true, "WebSocket"),
        ("http", false, "HTTP"),
    ] {
        let dir = TempDir::new("xf-gw");
        let (code, output, outcomes) = block_on(async {
            let s = scenario::find("healthy").expect("in the catalogue");
            let mut config = TargetConfig::new(s);
            config.idle_limit = Duration::from_secs(10);
            let deployment = Deployment::bind(config, None).await.expect("binds");
            let target = deployment.address;
            let mut gc = gateway::GatewayConfig::new(GatewayProfile {
                websocket,
                ..GatewayProfile::HEALTHY
            });
            gc.read_timeout = Duration::from_secs(15);
            let gw = Gateway::bind(gc).await.expect("the gateway binds");
            let gw_addr = gw.local_addr();
            let (sink, mut rx) = mpsc::unbounded_channel();
            let gw_running = run_gateway(&gw, Some(sink));
            let running = Running::start(deployment).await;
            let mut args = vec![
                format!("/v:{target}"),
                format!("/u:{}", id.user),
                format!("/p:{}", id.password()),
                "/cert:ignore".to_owned(),
                "/sec:nla".to_owned(),
                "+auth-only".to_owned(),
            ];
            args.extend(gateway_args(gw_addr, transport));
            let home = dir.path().to_owned();
            let (code, output) = tokio::task::spawn_blocking(move || xfreerdp(&home, &args))
                .await
                .expect("xfreerdp ran");
            let outcomes = collect(&mut rx, 1).await;
            gw_running.stop().await;
            running.stop(0).await;
            (code, output, outcomes)
        });
        let tail: Vec<&str> = output.lines().rev().take(8).collect();
        assert_eq!(code, Some(0), "/gt:{transport}: {tail:?}");
        assert_eq!(
            relayed(&outcomes),
            [expect],
            "/gt:{transport} (websocket {websocket}): {outcomes:?}"
        );
    }
}

#[test]
fn xfreerdp_through_the_gateway_to_the_lab_xrdp() {
    if !xfreerdp_available() {
        return;
    }
    let Some((addr, user, password)) = lab_xrdp() else {
        return;
    };
    let dir = TempDir::new("xf-gw-lab");
    let (code, output, outcomes) = block_on(async {
        let (gw, stop, mut rx) = lone_gateway().await;
        let mut args = vec![
            format!("/v:{addr}"),
            format!("/u:{user}"),
            // The lab's own test account.
            format!("/p:{password}"),
            "/cert:ignore".to_owned(),
            "/sec:tls".to_owned(),
            "+auth-only".to_owned(),
        ];
        args.extend(gateway_args(gw.local_addr(), "http"));
        let home = dir.path().to_owned();
        let (code, output) = tokio::task::spawn_blocking(move || xfreerdp(&home, &args))
            .await
            .expect("xfreerdp ran");
        // The tunnel's end arrives once xfreerdp has left.
        let outcomes = collect(&mut rx, 1).await;
        let _ = stop.send(());
        (code, output, outcomes)
    });
    let tail: Vec<&str> = output.lines().rev().take(8).collect();
    // +auth-only under TLS: 0 once xfreerdp reached the active state.
    assert_eq!(code, Some(0), "{tail:?}");
    assert!(
        outcomes.iter().any(|o| matches!(
            o,
            GatewayOutcome::Relayed { target, transport: "WebSocket", .. } if target.contains(&addr)
        )),
        "{outcomes:?}"
    );
}

// ---- captures of gateway sessions ----------------------------------------------------------------------

/// `rdptrace demo SCENARIO --pcap FILE` with `extra`; the capture's path.
fn capture_of(scenario: &str, dir: &Path, extra: &[&str]) -> std::path::PathBuf {
    let pcap = dir.join(format!("{scenario}.pcapng"));
    let out = rdptrace()
        .args(["demo", scenario, "--pcap"])
        .arg(&pcap)
        .args(extra)
        .output()
        .expect("rdptrace demo runs");
    assert!(pcap.is_file(), "no capture: {out:?}");
    pcap
}

#[test]
fn the_replay_reads_a_gateway_session_with_its_secrets() {
    let dir = TempDir::new("gw-replay");
    for (scenario, transport) in [
        ("gateway-healthy", "WebSocket"),
        (
            "gateway-http-transport",
            "HTTP (RDG_OUT_DATA and RDG_IN_DATA)",
        ),
    ] {
        let pcap = capture_of(scenario, dir.path(), &["--embed-secrets"]);
        let (docs, err) = replay_json(&pcap, &[]);
        assert_eq!(docs.len(), 1, "{scenario}: {err}");
        let doc = &docs[0];
        assert_eq!(doc["verdict"]["cause"], "connected", "{scenario}: {doc}");
        let names: Vec<&str> = doc["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names.first(), Some(&"gateway_connect"), "{names:?}");
        assert_eq!(
            phase(doc, "gateway_connect")["facts"]["cert_subject"],
            "CN=rdptrace-gateway"
        );
        let auth = phase(doc, "gateway_auth");
        assert_eq!(auth["facts"]["gateway_auth_scheme"], "NTLM");
        assert!(
            auth["facts"]["gateway_transport"]
                .as_str()
                .is_some_and(|t| t.starts_with(transport)),
            "{scenario}: {auth}"
        );
        let packets: Vec<&str> = phase(doc, "gateway_tunnel")["pdus"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            packets.contains(&"HTTP_CHANNEL_RESPONSE"),
            "{scenario}: {packets:?}"
        );
        // The RDP connection inside, its own TLS opened too.
        assert_eq!(
            phase(doc, "tls")["facts"]["cert_subject"],
            "CN=rdptrace-target"
        );
        assert_eq!(phase(doc, "active")["status"], "ok");
    }
}

#[test]
fn the_replay_reads_a_gateway_refusal() {
    let dir = TempDir::new("gw-replay-refused");
    let pcap = capture_of("gateway-cap-denied", dir.path(), &["--embed-secrets"]);
    let (docs, err) = replay_json(&pcap, &[]);
    assert_eq!(docs.len(), 1, "{err}");
    let v = &docs[0]["verdict"];
    assert_eq!(v["cause"], "gateway_refused", "{v}");
    assert_eq!(v["phase"], "gateway_tunnel", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("E_PROXY_NAP_ACCESSDENIED")),
        "{v}"
    );
}

#[test]
fn the_replay_names_what_it_cannot_read_without_the_secrets() {
    let dir = TempDir::new("gw-replay-opaque");
    let keylog = dir.path().join("keys.log");
    let keylog_arg = keylog.to_str().expect("a UTF-8 path");
    let pcap = capture_of("gateway-healthy", dir.path(), &["--keylog", keylog_arg]);
    // Without the secrets: the gateway exchange named from the sizes of its records.
    let (docs, err) = replay_json(&pcap, &[]);
    assert_eq!(docs.len(), 1, "{err}");
    let v = &docs[0]["verdict"];
    assert_eq!(v["cause"], "closed_by_client", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("handshake over WebSocket")
                && d.contains("X.224 Connection Confirm")
                && d.contains("not known")),
        "{v}"
    );
    let packets: Vec<&str> = phase(&docs[0], "gateway_tunnel")["pdus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        packets,
        [
            "HTTP_HANDSHAKE_REQUEST_PACKET",
            "HTTP_HANDSHAKE_RESPONSE_PACKET"
        ],
        "{}",
        docs[0]
    );
    // With the key log the probe wrote, the same capture reads.
    let (docs, err) = replay_json(&pcap, &["--keylog", keylog_arg]);
    assert_eq!(docs.len(), 1, "{err}");
    assert_eq!(docs[0]["verdict"]["cause"], "connected");
    // The HTTP transport's two connections are not tied together without the secrets: the replay says
    // that TLS it could not open may be a gateway's, and names no session.
    let pcap = capture_of(
        "gateway-http-transport",
        dir.path(),
        &["--keylog", keylog_arg],
    );
    let (docs, err) = replay_json(&pcap, &[]);
    assert!(docs.is_empty(), "{docs:?}");
    assert!(
        err.contains("RD Gateway") && err.contains("--keylog"),
        "{err}"
    );
}

// ---- Kerberos to the gateway (a real MIT KDC) -------------------------------------------------------------

/// `rdptrace serve --once --scenario NAME` with the keytab, the target's user the realm's: the target's port,
/// the gateway's port, the server.
fn serve_kerberos(name: &str, keytab: &Path) -> (u16, u16, ChildGuard) {
    let mut server = support::kerberos::serve_command(name, keytab)
        .spawn()
        .expect("rdptrace serve starts");
    let stdout = server.stdout.take().expect("piped stdout");
    let guard = ChildGuard(server);
    let (port, _, mut lines) = support::serve_port(stdout);
    let gateway = lines
        .by_ref()
        .take(3)
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("gateway on https://127.0.0.1:")
                .and_then(|rest| rest.split(':').next())
                .and_then(|p| p.parse::<u16>().ok())
        })
        .expect("rdptrace serve says where the gateway is");
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (port, gateway, guard)
}

/// The probe of the target at `port` through the gateway at `localhost:gateway` as the realm's user, with
/// `args`; no krb5.conf and no DNS, so that the KDC is `--kdc` or none.
fn probe_kerberos(port: u16, gateway: u16, args: &[&str]) -> serde_json::Value {
    use support::kerberos::{HOST, PASSWORD, REALM, USER};
    let out = rdptrace()
        .args(["probe", "--json", "--watch", "0.3", "--phase-timeout", "5"])
        .args(["--timeout", "20", "-u", USER, "-d", REALM])
        .args(["--gateway", &format!("https://{HOST}:{gateway}")])
        .args(args)
        .arg(format!("127.0.0.1:{port}"))
        .env("RDPTRACE_PASSWORD", PASSWORD)
        .env("KRB5_CONFIG", "/nonexistent")
        .env("RDPTRACE_DNS_SERVER", "127.0.0.1:9")
        .output()
        .expect("rdptrace probe runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn kerberos_to_the_gateway_against_a_real_kdc() {
    use support::kerberos::{Kdc, REALM, kdc_available};
    if !kdc_available() {
        return;
    }
    let dir = TempDir::new("gw-kerberos");
    let kdc = Kdc::start(dir.path()).expect("the KDC starts");
    kdc.kadmin("addprinc -randkey HTTP/localhost")
        .expect("the gateway's principal");
    let keytab = dir.path().join("gateway.keytab");
    kdc.ktadd("HTTP/localhost", &keytab)
        .expect("the gateway's key");
    let tcp = format!("tcp://127.0.0.1:{}", kdc.port);
    let spn = format!("HTTP/localhost@{REALM}");
    let words = |doc: &serde_json::Value| {
        format!("{} {}", doc["verdict"]["detail"], doc["verdict"]["hints"])
    };

    // Kerberos to the gateway, NTLM to the target it relays to (named by its address).
    let (port, gw, _server) = serve_kerberos("gateway-kerberos", &keytab);
    let doc = probe_kerberos(port, gw, &["--kdc", &tcp]);
    assert_eq!(doc["verdict"]["cause"], "connected", "{doc}");
    let auth = phase(&doc, "gateway_auth");
    assert_eq!(auth["facts"]["gateway_auth_scheme"], "Negotiate", "{auth}");
    assert_eq!(auth["facts"]["spn"], spn.as_str(), "{auth}");
    let text = auth.to_string();
    assert!(
        text.contains("TGS-REQ") || text.contains("tgs_req"),
        "no TGS exchange in gateway_auth: {auth}"
    );
    let ap_req = format!("Negotiate Kerberos AP-REQ for {spn}");
    assert!(
        auth["pdus"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["summary"].as_str().is_some_and(|s| s.contains(&ap_req))),
        "no AP-REQ to the gateway: {auth}"
    );
    assert!(auth["facts"].get("auth_fallback").is_none(), "{auth}");
    // The gateway proved it holds the key: its AP-REP in the 101, checked by the client.
    assert!(
        auth["pdus"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("101") && s.contains("Kerberos AP-REP"))),
        "no AP-REP from the gateway: {auth}"
    );

    // The HTTP transport: both channels authenticate with Kerberos.
    let (port, gw, _server) = serve_kerberos("gateway-kerberos", &keytab);
    let doc = probe_kerberos(port, gw, &["--kdc", &tcp, "--gateway-transport", "http"]);
    assert_eq!(doc["verdict"]["cause"], "connected", "{doc}");
    let granted = phase(&doc, "gateway_auth")["pdus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("200") && s.contains("Kerberos AP-REP"))
        })
        .count();
    assert_eq!(granted, 2, "{doc}");

    // --auth kerberos without a KDC: no fallback, the KDC named.
    let (port, gw, _server) = serve_kerberos("gateway-kerberos", &keytab);
    let dead = format!("tcp://127.0.0.1:{}", free_port());
    let doc = probe_kerberos(port, gw, &["--auth", "kerberos", "--kdc", &dead]);
    assert_eq!(doc["verdict"]["cause"], "kdc_unreachable", "{doc}");
    assert_eq!(doc["verdict"]["phase"], "gateway_auth", "{doc}");
    assert!(
        phase(&doc, "gateway_auth")["facts"]
            .get("auth_fallback")
            .is_none()
    );

    // The gateway's key is not the KDC's: KRB_AP_ERR_MODIFIED in its 401.
    let (port, gw, _server) = serve_kerberos("gateway-kerberos-key-mismatch", &keytab);
    let doc = probe_kerberos(port, gw, &["--auth", "kerberos", "--kdc", &tcp]);
    assert_eq!(doc["verdict"]["cause"], "gateway_http_error", "{doc}");
    assert_eq!(doc["verdict"]["phase"], "gateway_auth", "{doc}");
    assert!(words(&doc).contains("KRB_AP_ERR_MODIFIED"), "{doc}");

    // A gateway that takes Kerberos only refuses NTLM.
    let (port, gw, _server) = serve_kerberos("gateway-kerberos-only", &keytab);
    let doc = probe_kerberos(port, gw, &["--auth", "ntlm", "--kdc", &tcp]);
    assert_eq!(doc["verdict"]["cause"], "gateway_http_error", "{doc}");
    assert!(words(&doc).contains("only Kerberos"), "{doc}");

    // Negotiate without a KDC falls back to NTLM, says so, and the Kerberos-only gateway refuses it.
    let (port, gw, _server) = serve_kerberos("gateway-kerberos-only", &keytab);
    let doc = probe_kerberos(port, gw, &[]);
    assert_eq!(doc["verdict"]["cause"], "gateway_http_error", "{doc}");
    let fallback = &phase(&doc, "gateway_auth")["facts"]["auth_fallback"];
    assert!(
        fallback
            .as_str()
            .is_some_and(|f| f.contains("no KDC was found")),
        "{doc}"
    );
    assert!(words(&doc).contains("after Kerberos failed"), "{doc}");
}

#[test]
fn kerberos_alone_needs_a_gateway_that_offers_negotiate() {
    let dir = TempDir::new("gw-kerberos-ntlm-only");
    let (port, url, _server) = serve_with_gateway("gateway-healthy", dir.path(), MARKER);
    let out = rdptrace()
        .args(["probe", "--json", "--timeout", "10", "--auth", "kerberos"])
        .args(["-u", TestIdentity::DEFAULT_USER, "-d", "RDPTRACE.TEST"])
        .args(["--kdc", &format!("tcp://127.0.0.1:{}", free_port())])
        .args(["--gateway", &url])
        .arg(format!("127.0.0.1:{port}"))
        .env("RDPTRACE_PASSWORD", MARKER)
        .output()
        .expect("rdptrace probe runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let v = &doc["verdict"];
    assert_eq!(v["phase"], "gateway_auth", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("--auth kerberos") && d.contains("not Negotiate")),
        "{v}"
    );
    // No NTLM went to the gateway.
    let auth = phase(&doc, "gateway_auth");
    assert!(auth["facts"].get("gateway_auth_scheme").is_none(), "{auth}");
}
