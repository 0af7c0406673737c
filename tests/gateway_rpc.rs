//! RPC over HTTP, the third RD Gateway transport ([MS-TSGU] 3.1, 3.2 over [MS-RPCH]): xfreerdp 2.11
//! (`/gt:rpc`) and the probe (`--gateway-transport rpc`) through the built-in gateway to the built-in
//! target, healthy and with each gateway fault; the probe's capture of it replayed with its key log. All on
//! loopback, every wait bounded.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rdptrace::diagnose::diagnose;
use rdptrace::gateway::TransportChoice;
use rdptrace::pdu::PduInfo;
use rdptrace::serve::deployment::Deployment;
use rdptrace::serve::gateway::{self, Gateway, GatewayFault, GatewayOutcome, GatewayProfile};
use rdptrace::serve::target::Outcome;
use rdptrace::serve::{TargetConfig, TestIdentity, scenario};
use rdptrace::trace::{Fact, PhaseName, PhaseStatus, Trace};
use support::gateway::{
    phase, replay_json, run_deployment, run_gateway, said, serve_with_gateway, xfreerdp,
    xfreerdp_available,
};
use support::{TempDir, block_on, free_port, rdptrace};
use tokio::sync::mpsc;

/// The gateway's outcomes until one is not the joining of an IN channel (or 10 s passed).
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(SocketAddr, GatewayOutcome)>,
) -> Vec<GatewayOutcome> {
    let mut out = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    // INVARIANT: bounded by `until`.
    while Instant::now() < until {
        if let Ok(Some((_, o))) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            let done = matches!(
                o,
                GatewayOutcome::Relayed { .. } | GatewayOutcome::Refused(_)
            );
            out.push(o);
            if done {
                break;
            }
        }
    }
    out
}

/// What one run of xfreerdp through the gateway left.
struct Run {
    code: Option<i32>,
    output: String,
    /// The gateway's outcomes.
    outcomes: Vec<GatewayOutcome>,
    /// How the target's connections ended.
    served: Vec<Outcome>,
}

/// xfreerdp with `/gt:rpc` through a gateway of `profile` to the built-in healthy target (or, with
/// `target_down`, to a port nothing listens on); with `session`, a whole session the target ends at its
/// idle limit, else `+auth-only`.
fn xfreerdp_via_rpc(profile: GatewayProfile, target_down: bool, session: bool) -> Run {
    let id = TestIdentity::default();
    let dir = TempDir::new("xf-rpc");
    block_on(async {
        let s = scenario::find("healthy").expect("in the catalogue");
        let mut config = TargetConfig::new(s);
        config.idle_limit = Duration::from_secs(if session { 3 } else { 10 });
        let deployment = Deployment::bind(config, None).await.expect("binds");
        let target = if target_down {
            SocketAddr::from(([127, 0, 0, 1], free_port()))
        } else {
            deployment.address
        };
        let mut gc = gateway::GatewayConfig::new(profile);
        gc.read_timeout = Duration::from_secs(15);
        let gw = Gateway::bind(gc).await.expect("the gateway binds");
        let gw_addr = gw.local_addr();
        let (sink, mut rx) = mpsc::unbounded_channel();
        let gw_running = run_gateway(&gw, Some(sink));
        let (served_tx, mut served_rx) = mpsc::unbounded_channel();
        let target_running = run_deployment(deployment, Some(served_tx), None);
        let mut args = vec![
            format!("/v:{target}"),
            format!("/u:{}", id.user),
            format!("/p:{}", id.password()),
            "/cert:ignore".to_owned(),
            "/sec:nla".to_owned(),
            format!("/g:{gw_addr}"),
            format!("/gu:{}", id.user),
            // A test-only value for a test server; rdptrace itself never takes a password from argv.
            format!("/gp:{}", id.password()),
            "/gt:rpc".to_owned(),
        ];
        if !session {
            args.push("+auth-only".to_owned());
        }
        let home = dir.path().to_owned();
        let (code, output) = tokio::task::spawn_blocking(move || xfreerdp(&home, &args))
            .await
            .expect("xfreerdp ran");
        let outcomes = collect(&mut rx).await;
        gw_running.stop().await;
        target_running.stop().await;
        let mut served = Vec::new();
        while let Ok(s) = served_rx.try_recv() {
            served.push(s.outcome);
        }
        Run {
            code,
            output,
            outcomes,
            served,
        }
    })
}

fn tail(output: &str) -> Vec<&str> {
    output.lines().rev().take(12).collect()
}

#[test]
fn xfreerdp_through_the_rpc_transport_to_the_target() {
    if !xfreerdp_available() {
        return;
    }
    // +auth-only: 0 once xfreerdp authenticated to the target (CredSSP) through the tunnel.
    let run = xfreerdp_via_rpc(GatewayProfile::HEALTHY, false, false);
    assert_eq!(
        run.code,
        Some(0),
        "{:?}\n{:?}",
        tail(&run.output),
        run.outcomes
    );
    assert!(
        run.outcomes.iter().any(|o| matches!(
            o,
            GatewayOutcome::Relayed {
                transport: "RPC",
                ..
            }
        )),
        "{:?}",
        run.outcomes
    );
    assert!(
        run.output.contains("TS Gateway Connection Success"),
        "{:?}",
        tail(&run.output)
    );
    // A whole session: the target sees the active state, stays silent until its idle limit and ends it
    // with TLS close_notify and FIN; the gateway sends that close_notify and the receive pipe's end in one
    // write ([MS-TSGU] 3.2.6.2.2), and xfreerdp 2 leaves with 0 (ERRCONNECT_CONNECT_CANCELLED, its reading
    // of the pipe's end). When the gateway reads the close_notify before the FIN has come, the two go in
    // two writes, and xfreerdp 2, reading the close_notify first, leaves with 131 (a transport error):
    // its race, which the gateway narrows. So up to three sessions, until one leaves with 0.
    let mut runs = Vec::new();
    // INVARIANT: at most three sessions, each bounded by `xfreerdp`.
    while runs.len() < 3 {
        let run = xfreerdp_via_rpc(GatewayProfile::HEALTHY, false, true);
        let cancelled = run.code == Some(0) && run.output.contains("ERRCONNECT_CONNECT_CANCELLED");
        let raced = run.code == Some(131)
            && run.output.lines().any(|l| {
                l.contains("[com.freerdp.core.transport]") && l.contains("BIO_read returned")
            });
        assert!(
            cancelled || raced,
            "{:?}: {:?}\n{:?}",
            run.code,
            tail(&run.output),
            run.outcomes
        );
        runs.push(run);
        if cancelled {
            break;
        }
    }
    let codes: Vec<Option<i32>> = runs.iter().map(|r| r.code).collect();
    assert_eq!(codes.last(), Some(&Some(0)), "{codes:?}");
    let run = runs.pop().expect("a run");
    assert_eq!(
        run.served,
        [Outcome::IdleLimit],
        "{:?}\n{:?}",
        tail(&run.output),
        run.outcomes
    );
    assert!(
        run.outcomes.iter().any(|o| matches!(
            o,
            GatewayOutcome::Relayed { transport: "RPC", end, .. } if end == "the target closed"
        )),
        "{:?}",
        run.outcomes
    );
}

/// What xfreerdp 2.11 does on each gateway fault over RPC (its exit code, what it prints), and what the
/// gateway reports. The E_PROXY codes come as fault PDUs: xfreerdp prints them and exits with 133
/// (ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED), where over the HTTP transport it exits with 131.
const FAULTS: &[(GatewayFault, i32, &[&str], &str)] = &[
    (
        GatewayFault::AuthRefused,
        132,
        &["Status Code: 401", "ERRCONNECT_AUTHENTICATION_FAILED"],
        "401",
    ),
    (
        GatewayFault::CapabilityMismatch,
        133,
        &["RPC Fault PDU: status=E_PROXY_CAPABILITYMISMATCH"],
        "E_PROXY_CAPABILITYMISMATCH",
    ),
    (
        GatewayFault::CapDenied,
        133,
        &["RPC Fault PDU: status=E_PROXY_NAP_ACCESSDENIED"],
        "E_PROXY_NAP_ACCESSDENIED",
    ),
    (
        GatewayFault::MaxConnections,
        133,
        &["RPC Fault PDU: status=E_PROXY_MAXCONNECTIONSREACHED"],
        "E_PROXY_MAXCONNECTIONSREACHED",
    ),
    (
        GatewayFault::RapDenied,
        133,
        &["RPC Fault PDU: status=E_PROXY_RAP_ACCESSDENIED"],
        "E_PROXY_RAP_ACCESSDENIED",
    ),
    (
        GatewayFault::TargetDown,
        133,
        &["RPC Fault PDU: status=E_PROXY_TS_CONNECTFAILED"],
        "E_PROXY_TS_CONNECTFAILED",
    ),
    (
        GatewayFault::DropMidHandshake,
        143,
        &["ERRCONNECT_TLS_CONNECT_FAILED"],
        "dropped by the gateway",
    ),
];

#[test]
fn xfreerdp_reports_each_gateway_fault_over_rpc() {
    if !xfreerdp_available() {
        return;
    }
    for &(fault, exit, says, gateway_says) in FAULTS {
        let run = xfreerdp_via_rpc(
            GatewayProfile::with_fault(fault),
            fault == GatewayFault::TargetDown,
            true,
        );
        let context = format!("{fault:?}: {:?}\n{:?}", tail(&run.output), run.outcomes);
        assert_eq!(run.code, Some(exit), "{context}");
        for s in says {
            assert!(run.output.contains(s), "{s}: {context}");
        }
        assert!(
            run.outcomes.iter().any(|o| match o {
                GatewayOutcome::Refused(why) => why.contains(gateway_says),
                GatewayOutcome::Relayed {
                    transport: "RPC",
                    end,
                    ..
                } => end.contains(gateway_says),
                _ => false,
            }),
            "{context}"
        );
    }
}

// ---- the probe over RPC --------------------------------------------------------------------------------

/// The probe through the gateway scenario `name` over `transport`: its trace and the gateway's outcomes.
fn probe_via(name: &str, transport: TransportChoice) -> (Trace, Vec<GatewayOutcome>) {
    block_on(async {
        let s = scenario::find(name).expect("in the catalogue");
        let deployment = Deployment::bind(TargetConfig::new(s), None)
            .await
            .expect("the scenario binds");
        let mut cfg = deployment.probe_config().expect("a probe configuration");
        cfg.watch = Duration::from_millis(300);
        cfg.phase_timeout = Duration::from_secs(10);
        cfg.timeout = Duration::from_secs(40);
        if let Some(g) = cfg.gateway.as_mut() {
            g.transport = transport;
        }
        let (sink, mut rx) = mpsc::unbounded_channel();
        let running = run_deployment(deployment, None, Some(sink));
        let trace = rdptrace::probe::probe(&cfg).await;
        let outcomes = collect(&mut rx).await;
        running.stop().await;
        (trace, outcomes)
    })
}

#[test]
fn the_probe_through_the_rpc_transport() {
    let (trace, outcomes) = probe_via("gateway-healthy", TransportChoice::Rpc);
    let v = diagnose(&trace);
    assert!(v.ok, "{}", said(&trace));
    for name in PhaseName::GATEWAY {
        let p = trace.phase(name);
        assert_eq!(p.status, PhaseStatus::Ok, "{name}");
        assert!(p.bytes_out > 0 && p.bytes_in > 0, "{name}: {p:?}");
    }
    for phase in [
        PhaseName::X224,
        PhaseName::Tls,
        PhaseName::Credssp,
        PhaseName::Active,
    ] {
        assert_eq!(trace.phase(phase).status, PhaseStatus::Ok, "{phase}");
    }
    let auth = trace.phase(PhaseName::GatewayAuth);
    assert_eq!(
        auth.facts
            .get(Fact::GatewayTransport)
            .and_then(|v| v.as_str()),
        Some("RPC over HTTP (RPC_IN_DATA and RPC_OUT_DATA)")
    );
    assert_eq!(
        auth.facts
            .get(Fact::GatewayAuthScheme)
            .and_then(|v| v.as_str()),
        Some("NTLM")
    );
    // The requests of both channels, on the RPC proxy's URI.
    let methods: Vec<&str> = auth
        .pdus
        .iter()
        .filter_map(|p| match &p.info {
            PduInfo::HttpRequest { method, .. } => Some(method.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        methods.contains(&"RPC_IN_DATA") && methods.contains(&"RPC_OUT_DATA"),
        "{methods:?}"
    );
    // The virtual connection, the bind and the TsProxy calls, in wire order, in gateway_tunnel.
    let names: Vec<&str> = trace
        .phase(PhaseName::GatewayTunnel)
        .pdus
        .iter()
        .filter(|p| matches!(p.info, PduInfo::RpcPdu { .. }))
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "CONN/A3",
            "CONN/C2",
            "bind",
            "bind_ack",
            "rpc_auth_3",
            "TsProxyCreateTunnel request",
            "TsProxyCreateTunnel response",
            "TsProxyAuthorizeTunnel request",
            "TsProxyAuthorizeTunnel response",
            "TsProxyCreateChannel request",
            "TsProxyCreateChannel response",
            "TsProxySetupReceivePipe request",
        ],
    );
    assert!(
        outcomes.iter().any(|o| matches!(
            o,
            GatewayOutcome::Relayed {
                transport: "RPC",
                ..
            }
        )),
        "{outcomes:?}"
    );
    // The gateway's verifiers check ([MS-RPCE] 3.3.1.5.2.2), and the gateway checked the probe's.
    let json = serde_json::to_string(&trace).expect("json");
    assert!(!json.contains("verifier does not check"), "{json}");
    // The same verdict as through the WebSocket transport.
    let (ws, _) = probe_via("gateway-healthy", TransportChoice::Websocket);
    assert_eq!(diagnose(&ws).cause, v.cause, "{}", said(&ws));
}

#[test]
fn the_probe_names_each_gateway_fault_over_rpc_as_over_http() {
    for name in [
        "gateway-auth-refused",
        "gateway-cap-denied",
        "gateway-rap-denied",
        "gateway-ts-connect-failed",
        "gateway-capability-mismatch",
        "gateway-max-connections",
        "gateway-drop",
    ] {
        let (http, _) = probe_via(name, TransportChoice::Http);
        let (rpc, outcomes) = probe_via(name, TransportChoice::Rpc);
        let (h, r) = (diagnose(&http), diagnose(&rpc));
        assert!(!r.ok, "{name}: {}", said(&rpc));
        assert_eq!(
            r.cause,
            h.cause,
            "{name}: rpc {} / http {}",
            said(&rpc),
            said(&http)
        );
        assert_eq!(
            r.phase,
            h.phase,
            "{name}: rpc {} / http {}",
            said(&rpc),
            said(&http)
        );
        // The same code, named from the table (a word of its own: a port number may hold "401" too).
        for named in h
            .detail
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_'))
            .filter(|w| w.starts_with("E_PROXY_") || *w == "401")
        {
            assert!(
                r.detail.contains(named),
                "{name}: {named} in {}",
                said(&rpc)
            );
        }
        assert!(
            outcomes.iter().any(|o| match o {
                GatewayOutcome::Relayed { transport, .. } => *transport == "RPC",
                GatewayOutcome::Refused(_) => true,
                _ => false,
            }),
            "{name}: {outcomes:?}"
        );
    }
}

// ---- a capture of the probe over RPC, replayed -----------------------------------------------------------

/// The password of the target and its gateway in the captures below.
const PASSWORD: &str = "Rpc-Replay-3e5d";

/// `rdptrace probe --gateway-transport rpc --pcap --keylog` through the gateway of scenario `name`: the
/// probe's JSON, the capture and the key log.
fn probe_capture(name: &str, dir: &Path) -> (serde_json::Value, std::path::PathBuf, String) {
    let (port, url, _server) = serve_with_gateway(name, dir, PASSWORD);
    let pcap = dir.join(format!("{name}.pcapng"));
    let keylog = dir.join(format!("{name}.keys"));
    let user = TestIdentity::DEFAULT_USER;
    let out = rdptrace()
        .args([
            "probe",
            "--json",
            "-u",
            user,
            "--gateway",
            &url,
            "--gateway-user",
            user,
        ])
        .args(["--gateway-transport", "rpc", "--pcap"])
        .arg(&pcap)
        .arg("--keylog")
        .arg(&keylog)
        .arg(format!("127.0.0.1:{port}"))
        .env("RDPTRACE_PASSWORD", PASSWORD)
        .env("RDPTRACE_GATEWAY_PASSWORD", PASSWORD)
        .output()
        .expect("rdptrace probe runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{name}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(pcap.is_file(), "{name}: no capture: {out:?}");
    let keylog = keylog.to_str().expect("a UTF-8 path").to_owned();
    (doc, pcap, keylog)
}

/// The names of the PDUs in phase `name`, and how many are of RPC over HTTP.
fn pdu_names(doc: &serde_json::Value, name: &str) -> (Vec<String>, usize) {
    let pdus: Vec<&serde_json::Value> = phase(doc, name)["pdus"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let rpc = pdus
        .iter()
        .filter(|p| p["info"]["type"] == "rpc_pdu")
        .count();
    let names = pdus
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    (names, rpc)
}

#[test]
fn the_replay_reads_an_rpc_gateway_session_with_its_key_log() {
    let dir = TempDir::new("rpc-replay");
    let (probe, pcap, keylog) = probe_capture("gateway-healthy", dir.path());
    assert_eq!(probe["verdict"]["cause"], "connected", "{probe}");
    let (docs, err) = replay_json(&pcap, &["--keylog", &keylog]);
    // The two channels, joined by their virtual connection cookie: one session.
    assert_eq!(docs.len(), 1, "{err}");
    let doc = &docs[0];
    assert_eq!(doc["verdict"]["cause"], "connected", "{doc}");
    assert_eq!(
        phase(doc, "gateway_connect")["facts"]["cert_subject"],
        "CN=rdptrace-gateway"
    );
    let auth = phase(doc, "gateway_auth");
    assert_eq!(auth["facts"]["gateway_auth_scheme"], "NTLM", "{auth}");
    assert_eq!(
        auth["facts"]["gateway_transport"],
        "RPC over HTTP (RPC_IN_DATA and RPC_OUT_DATA)"
    );
    // The channels' opening, then the virtual connection, the bind and the TsProxy calls, as the probe
    // recorded them.
    for name in ["gateway_auth", "gateway_tunnel"] {
        let (replayed, rpc) = pdu_names(doc, name);
        assert!(rpc >= 2, "{name}: {doc}");
        assert_eq!(replayed, pdu_names(&probe, name).0, "{name}");
    }
    for key in ["gateway_tunnel_id", "gateway_channel_id", "gateway_target"] {
        assert_eq!(
            phase(doc, "gateway_tunnel")["facts"][key],
            phase(&probe, "gateway_tunnel")["facts"][key],
            "{key}"
        );
    }
    // The RDP connection inside, from TsProxySendToServer and the receive pipe, its own TLS opened too.
    assert_eq!(
        phase(doc, "tls")["facts"]["cert_subject"],
        "CN=rdptrace-target"
    );
    for name in [
        "x224",
        "tls",
        "credssp",
        "mcs_connect",
        "capabilities",
        "active",
    ] {
        assert_eq!(phase(doc, name)["status"], "ok", "{name}: {doc}");
    }
}

#[test]
fn the_replay_names_each_rpc_gateway_fault_as_the_probe_does() {
    let dir = TempDir::new("rpc-replay-faults");
    for (name, code) in [
        ("gateway-rap-denied", Some("E_PROXY_RAP_ACCESSDENIED")),
        ("gateway-cap-denied", Some("E_PROXY_NAP_ACCESSDENIED")),
        ("gateway-auth-refused", None),
        ("gateway-drop", None),
    ] {
        let (probe, pcap, keylog) = probe_capture(name, dir.path());
        let (docs, err) = replay_json(&pcap, &["--keylog", &keylog]);
        assert_eq!(docs.len(), 1, "{name}: {err}");
        let (p, r) = (&probe["verdict"], &docs[0]["verdict"]);
        assert_eq!(r["ok"], false, "{name}: {r}");
        for key in ["cause", "phase", "detail"] {
            assert_eq!(r[key], p[key], "{name}: {key}: replay {r} / probe {p}");
        }
        if let Some(code) = code {
            assert!(
                r["detail"].as_str().is_some_and(|d| d.contains(code)),
                "{name}: {r}"
            );
        }
    }
}

#[test]
fn without_the_key_log_the_replay_claims_no_rpc_gateway_session() {
    let dir = TempDir::new("rpc-replay-opaque");
    let (_, pcap, _) = probe_capture("gateway-healthy", dir.path());
    // The two channels cannot be told a gateway's, nor tied together: the replay says that TLS it could not
    // open may be an RD Gateway's, and names no session.
    let (docs, err) = replay_json(&pcap, &[]);
    assert!(docs.is_empty(), "{docs:?}");
    assert!(
        err.contains("2 TLS connection(s)")
            && err.contains("RD Gateway")
            && err.contains("--keylog"),
        "{err}"
    );
}

#[test]
fn a_channel_refused_before_its_virtual_connection_is_named_is_read_alone() {
    // A gateway that offers only Basic: the probe, writing the secrets, sends no credentials, and neither
    // channel reaches its CONN/B1 or CONN/A1 as the body of an authenticated request. Each channel is read
    // on its own, with the gateway's 401.
    let dir = TempDir::new("rpc-replay-refused");
    let (probe, pcap, keylog) = probe_capture("gateway-basic", dir.path());
    assert_eq!(probe["verdict"]["phase"], "gateway_auth", "{probe}");
    let (docs, err) = replay_json(&pcap, &["--keylog", &keylog]);
    assert!(!docs.is_empty(), "{err}");
    for doc in &docs {
        let v = &doc["verdict"];
        assert_eq!(v["cause"], "gateway_http_error", "{v}");
        assert_eq!(v["phase"], "gateway_auth", "{v}");
        let auth = phase(doc, "gateway_auth");
        assert_eq!(auth["facts"]["gateway_auth_offered"], "Basic", "{auth}");
        assert!(
            auth["pdus"][0]["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("RPC_")),
            "{auth}"
        );
    }
}
