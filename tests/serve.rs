//! The built-in target against a real client: ironrdp-connector driven by hand over loopback. What the
//! target sent is checked twice: in the bytes the client received, and in the target's own trace.

mod support;

use std::time::Duration;

use rdptrace::pdu::PduInfo;
use rdptrace::serve::scenario::{self, Action, Fault, ServerPoint};
use rdptrace::serve::{Outcome, Served, Target, TargetConfig, TestIdentity, faults};
use rdptrace::trace::{CloseKind, EventKind, PhaseName, PhaseStatus, Side, Trace};
use rdptrace::verdict::Cause;
use support::{BOUND, ClientRun, StopAt};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn identity() -> TestIdentity {
    TestIdentity::default()
}

/// Runs the target for one connection while `client` runs; both bounded.
async fn one<F, T>(config: TargetConfig, client: F) -> (Served, T)
where
    F: AsyncFnOnce(std::net::SocketAddr) -> T,
{
    let target = Target::bind(config).await.expect("the target binds");
    let addr = target.local_addr();
    let server = tokio::spawn(async move { target.serve_one().await });
    let seen = client(addr).await;
    let served = tokio::time::timeout(BOUND, server)
        .await
        .expect("the target ends the connection within the bound")
        .expect("the target task does not panic")
        .expect("the target accepts");
    (served, seen)
}

async fn client_run(addr: std::net::SocketAddr, stop: StopAt) -> ClientRun {
    let id = identity();
    support::run(addr, &id.user, id.password(), stop).await
}

/// The PDUs the server sent, with their phase, in order.
fn server_pdus(trace: &Trace) -> Vec<(PhaseName, PduInfo)> {
    let mut pdus: Vec<_> = trace
        .pdus()
        .filter(|(_, p)| p.from == Side::Server)
        .map(|(phase, p)| (phase, p.at_ms, p.info.clone()))
        .collect();
    pdus.sort_by(|a, b| a.1.total_cmp(&b.1));
    pdus.into_iter()
        .map(|(phase, _, info)| (phase, info))
        .collect()
}

fn closes(trace: &Trace) -> Vec<(Side, CloseKind)> {
    trace
        .events()
        .filter_map(|(_, e)| match e.kind {
            EventKind::Closed { by, how } => Some((by, how)),
            _ => None,
        })
        .collect()
}

/// The last two PDUs the server sent are Set Error Info `code` and the Disconnect Provider Ultimatum, both in
/// `phase`, and the server closed with a FIN after them.
fn assert_error_info_then_ultimatum(trace: &Trace, phase: PhaseName, code: u32) {
    let pdus = server_pdus(trace);
    let tail: Vec<_> = pdus.iter().rev().take(2).rev().cloned().collect();
    assert!(
        matches!(
            tail.as_slice(),
            [
                (p1, PduInfo::SetErrorInfo { code: c }),
                (p2, PduInfo::DisconnectProviderUltimatum { reason: 1 }),
            ] if *p1 == phase && *p2 == phase && *c == code
        ),
        "server PDUs: {pdus:?}"
    );
    assert_eq!(closes(trace), vec![(Side::Server, CloseKind::Fin)]);
    assert_eq!(trace.phase(phase).status, PhaseStatus::Failed);
}

fn assert_client_got_error_info_then_eof(seen: &ClientRun, code: u32) {
    assert!(seen.reached, "the client stopped early: {:?}", seen.error);
    let mut expected = faults::set_error_info(code).expect("encodes");
    expected.extend(
        faults::disconnect_provider_ultimatum(scenario::RN_PROVIDER_INITIATED).expect("encodes"),
    );
    assert_eq!(
        seen.after_stop, expected,
        "bytes after the client's last PDU"
    );
    assert!(seen.eof, "the server closed: {:?}", seen.error);
}

#[tokio::test]
async fn denied_connection_at_licensing() {
    let scenario = scenario::find("denied-connection").expect("in the catalogue");
    let config = TargetConfig::new(scenario);
    let (served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::ClientInfoSent).await
    })
    .await;

    assert_client_got_error_info_then_eof(&seen, 0x7);
    assert_eq!(
        served.outcome,
        Outcome::Fault(Fault {
            at: ServerPoint::ClientInfo,
            action: Action::ErrorInfo(0x7),
        })
    );
    assert_error_info_then_ultimatum(&served.trace, PhaseName::Licensing, 0x7);

    // The target's own view diagnoses to what the scenario promises a probe.
    let verdict = served.verdict();
    assert_eq!(verdict.phase, scenario.expected.phase);
    assert_eq!(verdict.cause, scenario.expected.cause);
    assert_eq!(
        verdict.error_info.map(|c| c.code),
        scenario.expected.error_info
    );
    assert_eq!(
        verdict
            .mstsc
            .map(|m| (m.disc_reason.code, m.extended_code().unwrap_or(u32::MAX))),
        scenario.expected.mstsc
    );
}

#[tokio::test]
async fn denied_connection_at_mcs_connect() {
    let scenario = scenario::find("denied-connection").expect("in the catalogue");
    let config = TargetConfig::new(scenario)
        .with_overrides(Some(PhaseName::McsConnect), None)
        .expect("error info is possible in mcs_connect");
    assert_eq!(config.expected.phase, Some(PhaseName::McsConnect));
    let (served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::ConnectInitialSent).await
    })
    .await;

    assert_client_got_error_info_then_eof(&seen, 0x7);
    assert_eq!(
        served.outcome,
        Outcome::Fault(Fault {
            at: ServerPoint::ConnectInitial,
            action: Action::ErrorInfo(0x7),
        })
    );
    assert_error_info_then_ultimatum(&served.trace, PhaseName::McsConnect, 0x7);
    // Nothing of the later phases was sent.
    assert!(
        !server_pdus(&served.trace)
            .iter()
            .any(|(_, info)| matches!(info, PduInfo::McsConnectResponse { .. })),
        "no Connect Response"
    );
    let verdict = served.verdict();
    assert_eq!(verdict.phase, Some(PhaseName::McsConnect));
    assert_eq!(verdict.cause, Cause::ServerErrorInfo);
}

#[tokio::test]
async fn error_info_codes_ironrdp_does_not_know() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let config = TargetConfig::new(scenario)
        .with_overrides(Some(PhaseName::Capabilities), Some(0x1a))
        .expect("error info is possible in capabilities");
    let (served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::ClientInfoSent).await
    })
    .await;
    assert!(seen.reached, "{:?}", seen.error);
    assert!(seen.eof);
    assert_error_info_then_ultimatum(&served.trace, PhaseName::Capabilities, 0x1a);
    // `--at capabilities` acts where the client waits for the Demand Active: after licensing, instead of it.
    let pdus = server_pdus(&served.trace);
    assert!(
        pdus.iter().any(|(_, info)| matches!(
            info,
            PduInfo::License {
                message: rdptrace::pdu::LicenseMessage::ErrorAlert { code: 7, .. }
            }
        )),
        "licensing went through before the error: {pdus:?}"
    );
    assert!(
        !pdus
            .iter()
            .any(|(_, info)| matches!(info, PduInfo::DemandActive { .. })),
        "the error came instead of the Demand Active: {pdus:?}"
    );
}

#[tokio::test]
async fn healthy_reaches_active_and_keeps_the_session() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let config = TargetConfig::new(scenario);
    let (served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::Connected).await
    })
    .await;
    assert!(seen.reached, "{:?}", seen.error);
    assert!(seen.after_stop.is_empty(), "the target sent nothing more");
    assert_eq!(
        served.outcome,
        Outcome::ClientClosed {
            phase: PhaseName::Active,
            how: CloseKind::Fin
        }
    );
    let trace = &served.trace;
    for phase in PhaseName::ALL {
        assert_ne!(
            trace.phase(phase).status,
            PhaseStatus::Failed,
            "{phase} failed"
        );
    }
    assert!(
        server_pdus(trace)
            .iter()
            .any(|(_, info)| matches!(info, PduInfo::FontMap)),
        "Font Map sent"
    );
    assert!(
        trace.pdus().any(|(_, p)| p.from == Side::Client
            && matches!(
                &p.info,
                PduInfo::TsRequest {
                    auth_info: true,
                    ..
                }
            )),
        "the client's credentials went through CredSSP"
    );
    assert_eq!(closes(trace), vec![(Side::Client, CloseKind::Fin)]);
    let verdict = served.verdict();
    assert_eq!(verdict.cause, Cause::Connected);
    assert_eq!(verdict.phase, None);
}

#[tokio::test]
async fn wrong_password_gets_logon_failure() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let config = TargetConfig::new(scenario);
    let (served, seen) = one(config, async |addr| {
        support::run(addr, "rdptrace", "not the password", StopAt::Connected).await
    })
    .await;
    assert!(!seen.reached);
    assert!(
        matches!(served.outcome, Outcome::Refused { .. }),
        "{:?}",
        served.outcome
    );
    // [MS-CSSP] 2.2.1 errorCode STATUS_LOGON_FAILURE, then the close.
    let pdus = server_pdus(&served.trace);
    assert!(
        matches!(
            pdus.last(),
            Some((
                PhaseName::Credssp,
                PduInfo::TsRequest {
                    error_code: Some(0xc000_006d),
                    ..
                }
            ))
        ),
        "{pdus:?}"
    );
    assert_eq!(closes(&served.trace), vec![(Side::Server, CloseKind::Fin)]);
    assert_eq!(served.verdict().cause, Cause::CredsspError);
}

#[tokio::test]
async fn garbage_instead_of_a_connection_request_is_closed() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let config = TargetConfig::new(scenario);
    let (served, read) = one(config, async |addr| {
        let mut tcp = TcpStream::connect(addr).await.expect("connects");
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        let mut buf = vec![0u8; 1024];
        tokio::time::timeout(BOUND, tcp.read(&mut buf))
            .await
            .expect("the target answers within the bound")
    })
    .await;
    assert_eq!(read.expect("a clean close, not a reset"), 0);
    assert!(
        matches!(
            served.outcome,
            Outcome::Refused {
                phase: PhaseName::Tcp | PhaseName::X224,
                ..
            }
        ),
        "{:?}",
        served.outcome
    );
    assert_eq!(closes(&served.trace), vec![(Side::Server, CloseKind::Fin)]);
    assert!(
        served.trace.events().any(|(_, e)| matches!(
            e.kind,
            EventKind::ProtocolError {
                from: Side::Client,
                ..
            }
        )),
        "the target's trace records the garbage"
    );
}

#[tokio::test]
async fn a_silent_client_is_dropped() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    config.read_timeout = Duration::from_secs(1);
    let (served, read) = one(config, async |addr| {
        let mut tcp = TcpStream::connect(addr).await.expect("connects");
        let mut buf = vec![0u8; 64];
        tokio::time::timeout(BOUND, tcp.read(&mut buf))
            .await
            .expect("the target drops the client within the bound")
    })
    .await;
    assert_eq!(read.expect("a close"), 0);
    assert!(
        matches!(served.outcome, Outcome::TimedOut { .. }),
        "{:?}",
        served.outcome
    );
}

#[tokio::test]
async fn negotiation_failure_then_close() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    // HYBRID_REQUIRED_BY_SERVER
    config.faults = vec![Fault {
        at: ServerPoint::ConnectionRequest,
        action: Action::NegFailure(5),
    }];
    let (served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::Connected).await
    })
    .await;
    assert!(!seen.reached);
    let pdus = server_pdus(&served.trace);
    assert!(
        matches!(
            pdus.as_slice(),
            [(
                PhaseName::X224,
                PduInfo::X224ConnectionConfirm {
                    negotiation: rdptrace::pdu::Negotiation::Failure { code: 5 }
                }
            )]
        ),
        "{pdus:?}"
    );
    assert_eq!(closes(&served.trace), vec![(Side::Server, CloseKind::Fin)]);
    assert_eq!(served.verdict().cause, Cause::NegotiationFailure);
}

#[tokio::test]
async fn reset_after_tls() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    config.faults = vec![Fault {
        at: ServerPoint::TlsEstablished,
        action: Action::Reset,
    }];
    let (served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::Connected).await
    })
    .await;
    assert!(!seen.reached);
    let error = seen.error.unwrap_or_default().to_lowercase();
    assert!(
        error.contains("reset") || error.contains("broken pipe"),
        "the client saw a reset: {error}"
    );
    assert_eq!(closes(&served.trace), vec![(Side::Server, CloseKind::Rst)]);
    assert_eq!(
        served.trace.phase(PhaseName::Credssp).status,
        PhaseStatus::Failed
    );
}

#[test]
fn the_catalogue_as_printed() {
    insta::assert_snapshot!(scenario::render_catalogue());
}

#[test]
fn overrides_that_cannot_work_are_refused() {
    let healthy = scenario::find("healthy").expect("in the catalogue");
    assert!(
        TargetConfig::new(healthy)
            .with_overrides(Some(PhaseName::Tls), Some(7))
            .is_err(),
        "no Set Error Info before the MCS domain exists"
    );
    assert!(
        TargetConfig::new(healthy)
            .with_overrides(Some(PhaseName::Licensing), None)
            .is_err(),
        "healthy has no fault to move"
    );
    let errinfo = TargetConfig::new(healthy)
        .with_overrides(None, Some(0x19))
        .expect("licensing by default");
    assert_eq!(errinfo.expected.phase, Some(PhaseName::Licensing));
    assert_eq!(errinfo.expected.error_info, Some(0x19));
    for nowhere in [PhaseName::Tcp, PhaseName::SecureSettings] {
        assert!(
            TargetConfig::new(healthy)
                .with_overrides(Some(nowhere), Some(7))
                .is_err(),
            "a client never waits for the server in {nowhere}"
        );
    }
    // A close moved into the active session is no longer the pending-close pair 0x904 / 0x7.
    let pending = scenario::find("pending-close").expect("in the catalogue");
    let moved = TargetConfig::new(pending)
        .with_overrides(Some(PhaseName::Active), None)
        .expect("a close is possible anywhere");
    assert_eq!(moved.expected.phase, Some(PhaseName::Active));
    assert_eq!(moved.expected.mstsc, Some((0x904, 0x0)));
    let alert = scenario::find("tls-protocol-version").expect("in the catalogue");
    assert!(
        TargetConfig::new(alert)
            .with_overrides(Some(PhaseName::Licensing), None)
            .is_err(),
        "a TLS alert answers the ClientHello only"
    );
}

#[tokio::test]
async fn stall_keeps_the_socket_until_the_idle_limit() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    config.idle_limit = Duration::from_secs(1);
    config.faults = vec![Fault {
        at: ServerPoint::ClientInfo,
        action: Action::Stall,
    }];
    let (served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::ClientInfoSent).await
    })
    .await;
    assert!(seen.reached, "{:?}", seen.error);
    assert!(seen.after_stop.is_empty(), "nothing after the Client Info");
    assert!(seen.eof, "the target closes at the idle limit");
    assert_eq!(
        served.outcome,
        Outcome::Fault(Fault {
            at: ServerPoint::ClientInfo,
            action: Action::Stall,
        })
    );
    assert_eq!(closes(&served.trace), vec![(Side::Server, CloseKind::Fin)]);
    assert_eq!(
        served.trace.phase(PhaseName::Licensing).status,
        PhaseStatus::Failed
    );
}

#[tokio::test]
async fn close_after_the_connect_response() {
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    config.faults = vec![Fault {
        at: ServerPoint::ConnectResponse,
        action: Action::Close,
    }];
    let (served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::Connected).await
    })
    .await;
    assert!(!seen.reached);
    let pdus = server_pdus(&served.trace);
    assert!(
        matches!(pdus.last(), Some((_, PduInfo::McsConnectResponse { .. }))),
        "the Connect Response is the last PDU: {pdus:?}"
    );
    assert_eq!(closes(&served.trace), vec![(Side::Server, CloseKind::Fin)]);
    assert_eq!(
        served.trace.phase(PhaseName::ChannelJoin).status,
        PhaseStatus::Failed
    );
}

#[tokio::test]
async fn key_log_holds_the_tls_secrets() {
    let dir = std::env::temp_dir().join(format!("rdptrace-keylog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join("keys.log");
    let _ = std::fs::remove_file(&path);
    let scenario = scenario::find("denied-connection").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    config.key_log = Some(path.clone());
    let (_served, seen) = one(config, async |addr| {
        client_run(addr, StopAt::ClientInfoSent).await
    })
    .await;
    assert!(seen.reached, "{:?}", seen.error);
    let log = std::fs::read_to_string(&path).expect("the key log");
    assert!(
        log.lines()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ") || l.starts_with("CLIENT_RANDOM ")),
        "{log}"
    );
    assert!(!log.contains(identity().password()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn run_serves_several_clients_at_once() {
    let scenario = scenario::find("denied-connection").expect("in the catalogue");
    let target = Target::bind(TargetConfig::new(scenario))
        .await
        .expect("the target binds");
    let addr = target.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (sink, mut served) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        target
            .run(
                async {
                    let _ = stopped.await;
                },
                Some(sink),
            )
            .await
    });
    let clients: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { client_run(addr, StopAt::ClientInfoSent).await }))
        .collect();
    for client in clients {
        let seen = client.await.expect("the client task does not panic");
        assert_client_got_error_info_then_eof(&seen, 0x7);
    }
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let done = tokio::time::timeout(BOUND, served.recv())
            .await
            .expect("each connection is reported within the bound")
            .expect("a report");
        outcomes.push(done.outcome);
    }
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Fault(_))),
        "{outcomes:?}"
    );
    let _ = stop.send(());
    tokio::time::timeout(BOUND, server)
        .await
        .expect("run ends at shutdown within the bound")
        .expect("the run task does not panic")
        .expect("run ends cleanly");
}

#[tokio::test]
async fn the_acceptors_own_refusal_is_sent_before_the_close() {
    use ironrdp_pdu::nego::{ConnectionRequest, RequestFlags, SecurityProtocol};
    use ironrdp_pdu::x224::X224;
    let scenario = scenario::find("healthy").expect("in the catalogue");
    let mut config = TargetConfig::new(scenario);
    config.scenario.protocols = scenario::Protocols(
        rdptrace::dissect::x224::PROTOCOL_HYBRID | rdptrace::dissect::x224::PROTOCOL_HYBRID_EX,
    );
    let request = ironrdp_core::encode_vec(&X224(ConnectionRequest {
        nego_data: None,
        flags: RequestFlags::empty(),
        protocol: SecurityProtocol::SSL,
        correlation_info: None,
    }))
    .expect("encodes");
    let (served, received) = one(config, async |addr| {
        let mut tcp = TcpStream::connect(addr).await.expect("connects");
        tcp.write_all(&request).await.expect("writes");
        let mut received = Vec::new();
        tokio::time::timeout(BOUND, tcp.read_to_end(&mut received))
            .await
            .expect("the target closes within the bound")
            .expect("a clean close");
        received
    })
    .await;
    // The acceptor wrote RDP_NEG_FAILURE HYBRID_REQUIRED_BY_SERVER, then failed: the target sent it, then FIN.
    assert_eq!(received, faults::negotiation_failure(5).expect("encodes"));
    assert!(
        matches!(served.outcome, Outcome::Refused { .. }),
        "{:?}",
        served.outcome
    );
    assert_eq!(served.verdict().cause, Cause::NegotiationFailure);
}

#[tokio::test]
async fn slow_replies_come_late_but_come() {
    use ironrdp_pdu::nego::{ConnectionRequest, RequestFlags, SecurityProtocol};
    use ironrdp_pdu::x224::X224;
    let scenario = scenario::find("slow").expect("in the catalogue");
    let request = ironrdp_core::encode_vec(&X224(ConnectionRequest {
        nego_data: None,
        flags: RequestFlags::empty(),
        protocol: SecurityProtocol::SSL,
        correlation_info: None,
    }))
    .expect("encodes");
    let (served, confirm) = one(TargetConfig::new(scenario), async |addr| {
        let mut tcp = TcpStream::connect(addr).await.expect("connects");
        tcp.write_all(&request).await.expect("writes");
        // The Connection Confirm: a TPKT of 19 bytes (RDP_NEG_RSP).
        let mut confirm = vec![0u8; 19];
        tokio::time::timeout(BOUND, tcp.read_exact(&mut confirm))
            .await
            .expect("the slow target answers within the bound")
            .expect("a Connection Confirm");
        confirm
    })
    .await;
    assert_eq!(&confirm[..2], &[0x03, 0x00], "a TPKT");
    assert!(
        server_pdus(&served.trace).iter().any(|(_, info)| matches!(
            info,
            PduInfo::X224ConnectionConfirm {
                negotiation: rdptrace::pdu::Negotiation::Response { .. }
            }
        )),
        "the target's trace has its Connection Confirm"
    );
}

#[test]
fn the_scenarios_json_has_every_entry() {
    let lines: Vec<serde_json::Value> = scenario::catalogue()
        .iter()
        .map(scenario::to_json)
        .collect();
    assert_eq!(lines.len(), scenario::catalogue().len());
    let locked = lines
        .iter()
        .find(|l| l["name"] == "nla-account-locked-out")
        .expect("an NLA scenario");
    assert_eq!(locked["expected"]["phase"], "credssp");
    assert_eq!(locked["expected"]["cause"], "credssp_error");
    assert_eq!(locked["expected"]["mstsc"]["disc_reason"], 0xD07);
    assert_eq!(locked["xfreerdp"]["exit"], 135);
    let expired = lines
        .iter()
        .find(|l| l["name"] == "cert-expired")
        .expect("a certificate scenario");
    assert_eq!(expired["expected"]["ok"], true);
    assert_eq!(expired["expected"]["cert_problems"][0], "expired");
    assert_eq!(
        expired["expected_strict_cert"]["cause"],
        "certificate_rejected"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["family"] == "errinfo-0xNNNN")
            .count()
            >= 30
    );
}
