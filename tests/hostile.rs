//! Hostile servers: the `rdptrace probe` binary against a test-only adversary that lies, floods, trickles
//! or says nothing. Whatever the server does, the probe ends by itself within its deadline with a verdict
//! that names the phase, and its peak resident memory, measured by the kernel (`wait4`), stays under
//! [`PEAK_RSS_BOUND_KIB`] (the bound ARCHITECTURE.md states).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ironrdp_acceptor::{Acceptor, AcceptorState, DesktopSize};
use ironrdp_connector::Sequence as _;
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_pdu::rdp::capability_sets::{CapabilitySet, MultifragmentUpdate};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use support::{TempDir, rdptrace};

/// The most resident memory the probe may use against any of these servers (ARCHITECTURE.md).
const PEAK_RSS_BOUND_KIB: u64 = 32 * 1024;

/// The probe's deadlines here: each wait for the server, and the whole probe.
const PHASE_TIMEOUT: &str = "3";
const TOTAL_TIMEOUT: &str = "8";

/// Nothing here waits longer than this; a probe still running then is killed, and the test fails.
const SAFETY: Duration = Duration::from_secs(60);

/// The X.224 Connection Request the probe sends first: [T.123] TPKT, then [2.2.1.1].
fn read_tpkt(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header)?;
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut frame = header.to_vec();
    frame.resize(len.max(4), 0);
    s.read_exact(&mut frame[4..])?;
    Ok(frame)
}

/// [2.2.1.2] An X.224 Connection Confirm with an RDP_NEG_RSP selecting `protocol`.
fn connection_confirm(protocol: u32) -> Vec<u8> {
    let mut cc = vec![
        0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00, 0x02, 0x00, 0x08, 0x00,
    ];
    cc.extend_from_slice(&protocol.to_le_bytes());
    cc
}

/// Reads and drops what the client sends until it closes or `limit` passes.
fn drain(s: &mut impl Read, limit: Duration) {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

fn tls_config() -> Arc<ServerConfig> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["hostile.test".to_owned()]).expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![cert.cert.der().clone()];
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
    Arc::new(config)
}

/// The TLS handshake as a server, on the socket of the X.224 exchange.
fn tls_accept(tcp: TcpStream) -> std::io::Result<StreamOwned<ServerConnection, TcpStream>> {
    let conn = ServerConnection::new(tls_config()).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    // INVARIANT: bounded by the socket's read timeout and the count.
    for _ in 0..64 {
        if !tls.conn.is_handshaking() {
            return Ok(tls);
        }
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Err(std::io::Error::other("the TLS handshake did not finish"))
}

/// What a hostile server does with the one connection it accepts.
type Behaviour = fn(TcpStream) -> std::io::Result<()>;

/// A listener on loopback that hands its first connection to `behaviour` on a thread.
fn adversary(behaviour: Behaviour) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(true).expect("nonblocking");
        let end = Instant::now() + SAFETY;
        // INVARIANT: bounded by SAFETY.
        while Instant::now() < end {
            match listener.accept() {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nonblocking(false);
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
                    let _ = tcp.set_write_timeout(Some(Duration::from_secs(20)));
                    let _ = behaviour(tcp);
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (addr, handle)
}

// ---- the behaviours ------------------------------------------------------------------------------------

/// An HTTP answer where the Connection Confirm belongs, and the socket left open.
fn garbage_instead_of_a_connection_confirm(mut tcp: TcpStream) -> std::io::Result<()> {
    read_tpkt(&mut tcp)?;
    tcp.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")?;
    drain(&mut tcp, SAFETY);
    Ok(())
}

/// A TPKT header announcing 65535 bytes, then the bytes one a second.
fn a_65535_byte_tpkt_one_byte_a_second(mut tcp: TcpStream) -> std::io::Result<()> {
    read_tpkt(&mut tcp)?;
    let end = Instant::now() + SAFETY;
    let mut bytes = [0x03u8, 0x00, 0xff, 0xff, 0x02, 0xf0, 0x80]
        .into_iter()
        .chain(std::iter::repeat(0x41));
    // INVARIANT: bounded by SAFETY; ends when the client goes.
    while Instant::now() < end {
        let Some(b) = bytes.next() else { break };
        tcp.write_all(&[b])?;
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

/// TLS, then TLS records without end: 16 KiB of RDP frames each, as fast as the client takes them.
fn endless_tls_records(mut tcp: TcpStream) -> std::io::Result<()> {
    read_tpkt(&mut tcp)?;
    tcp.write_all(&connection_confirm(0x1))?;
    let mut tls = tls_accept(tcp)?;
    // Well-formed X.224 Data TPDUs whose MCS payload is a Send Data Indication to nowhere.
    let frame = [
        0x03, 0x00, 0x00, 0x10, 0x02, 0xf0, 0x80, 0x68, 0x00, 0x01, 0x03, 0xeb, 0x70, 0x02, 0x41,
        0x41,
    ];
    let record: Vec<u8> = frame.iter().copied().cycle().take(16 * 1024).collect();
    let end = Instant::now() + SAFETY;
    // INVARIANT: bounded by SAFETY; ends when the client goes.
    while Instant::now() < end {
        tls.write_all(&record)?;
    }
    Ok(())
}

/// TLS handshake records without end instead of a ServerHello: one handshake message that claims 16 MiB,
/// in 16 KiB fragments, as fast as the client takes them.
fn endless_tls_handshake(mut tcp: TcpStream) -> std::io::Result<()> {
    read_tpkt(&mut tcp)?;
    tcp.write_all(&connection_confirm(0x1))?;
    let mut buf = [0u8; 4096];
    // The ClientHello.
    let _ = tcp.read(&mut buf)?;
    let mut first = vec![0x16, 0x03, 0x03, 0x40, 0x00, 0x02, 0xff, 0xff, 0xff];
    first.resize(5 + 0x4000, 0x41);
    let mut next = vec![0x16, 0x03, 0x03, 0x40, 0x00];
    next.resize(5 + 0x4000, 0x41);
    tcp.write_all(&first)?;
    let end = Instant::now() + SAFETY;
    // INVARIANT: bounded by SAFETY; ends when the client goes.
    while Instant::now() < end {
        tcp.write_all(&next)?;
    }
    Ok(())
}

/// [MS-CSSP] 2.2.1 A TSRequest whose own length is sane and whose nested lengths claim gigabytes.
fn absurd_tsrequest(nested: bool) -> Vec<u8> {
    if !nested {
        // The outer SEQUENCE claims 2 GiB.
        return vec![
            0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0xa0, 0x03, 0x02, 0x01, 0x06,
        ];
    }
    // negoTokens: SEQUENCE OF (2 GiB) { SEQUENCE (2 GiB) { [0] (2 GiB) OCTET STRING (2 GiB) } }.
    let tokens = [
        0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30, 0x84, 0x7f, 0xff, 0xff, 0xf0, 0xa0, 0x84, 0x7f,
        0xff, 0xff, 0xe0, 0x04, 0x84, 0x7f, 0xff, 0xff, 0xd0, b'N', b'T', b'L', b'M',
    ];
    let mut body = vec![0xa0, 0x03, 0x02, 0x01, 0x06, 0xa1, tokens.len() as u8];
    body.extend_from_slice(&tokens);
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

fn tsrequest_with_absurd_lengths(tcp: TcpStream, nested: bool) -> std::io::Result<()> {
    let mut tcp = tcp;
    read_tpkt(&mut tcp)?;
    // PROTOCOL_HYBRID: CredSSP after TLS.
    tcp.write_all(&connection_confirm(0x2))?;
    let mut tls = tls_accept(tcp)?;
    // The client's first TSRequest (NTLM NEGOTIATE).
    let mut buf = [0u8; 4096];
    let _ = tls.read(&mut buf)?;
    tls.write_all(&absurd_tsrequest(nested))?;
    tls.flush()?;
    drain(&mut tls, SAFETY);
    Ok(())
}

fn nested_tsrequest_lengths(tcp: TcpStream) -> std::io::Result<()> {
    tsrequest_with_absurd_lengths(tcp, true)
}

fn outer_tsrequest_length(tcp: TcpStream) -> std::io::Result<()> {
    tsrequest_with_absurd_lengths(tcp, false)
}

/// [2.2.1.13.1] A Demand Active whose capability set list never ends: numberCapabilities 65535 and
/// lengthCombinedCapabilities 65535, as many well-formed sets as fit, then one of length zero (a parser
/// that advances by lengthCapability stands still on it), and the PDU ends long before the count says.
fn endless_demand_active() -> Vec<u8> {
    let set = ironrdp_core::encode_vec(&CapabilitySet::MultiFragmentUpdate(MultifragmentUpdate {
        max_request_size: 8 * 1024 * 1024,
    }))
    .expect("encode a capability set");
    let mut sets = Vec::new();
    while sets.len() + set.len() < 15 * 1024 {
        sets.extend_from_slice(&set);
    }
    // capabilitySetType CAPSTYPE_GENERAL, lengthCapability 0.
    sets.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
    sets.extend(std::iter::repeat_n(0x00, 64));
    let mut pdu = Vec::new();
    // shareId, lengthSourceDescriptor 4, lengthCombinedCapabilities 65535, "RDP\0",
    // numberCapabilities 65535, pad2Octets.
    pdu.extend_from_slice(&0x0001_03eau32.to_le_bytes());
    pdu.extend_from_slice(&4u16.to_le_bytes());
    pdu.extend_from_slice(&0xffffu16.to_le_bytes());
    pdu.extend_from_slice(b"RDP\0");
    pdu.extend_from_slice(&0xffffu16.to_le_bytes());
    pdu.extend_from_slice(&[0, 0]);
    pdu.extend_from_slice(&sets);
    // [2.2.8.1.1.1.1] Share Control Header: totalLength, pduType DEMANDACTIVEPDU, pduSource.
    let mut share = Vec::new();
    share.extend_from_slice(&((pdu.len() + 6) as u16).to_le_bytes());
    share.extend_from_slice(&0x0011u16.to_le_bytes());
    share.extend_from_slice(&1002u16.to_le_bytes());
    share.extend_from_slice(&pdu);
    // [T.125] Send Data Indication from user 1002 (1001 + 1) on the I/O channel 1003, one segment.
    let mut mcs = vec![0x68, 0x00, 0x01, 0x03, 0xeb, 0x70];
    let len = share.len();
    assert!(len < 0x4000);
    mcs.extend_from_slice(&[0x80 | (len >> 8) as u8, len as u8]);
    mcs.extend_from_slice(&share);
    let total = 4 + 3 + mcs.len();
    let mut out = vec![
        0x03,
        0x00,
        (total >> 8) as u8,
        total as u8,
        0x02,
        0xf0,
        0x80,
    ];
    out.extend_from_slice(&mcs);
    out
}

/// Reads one frame of what the acceptor waits for (its hint).
fn read_hinted(
    s: &mut impl Read,
    buf: &mut Vec<u8>,
    hint: &dyn ironrdp_pdu::PduHint,
) -> std::io::Result<Vec<u8>> {
    let mut chunk = [0u8; 8192];
    // INVARIANT: each pass reads at least one byte or returns; the read timeout bounds it in time.
    loop {
        if let Ok(Some((_, n))) = hint.find_size(buf)
            && buf.len() >= n
        {
            return Ok(buf.drain(..n).collect());
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A real connection sequence (ironrdp-acceptor, TLS without NLA) up to the Demand Active, which is
/// replaced by [`endless_demand_active`].
fn a_capability_set_list_that_never_ends(mut tcp: TcpStream) -> std::io::Result<()> {
    let size = DesktopSize {
        width: 1024,
        height: 768,
    };
    let mut acceptor = Acceptor::new(SecurityProtocol::SSL, size, Vec::new(), None);
    let mut out = WriteBuf::new();
    let mut buf = Vec::new();
    let err = |e: ironrdp_connector::ConnectorError| std::io::Error::other(e.to_string());
    let hint = acceptor.next_pdu_hint().ok_or(std::io::ErrorKind::Other)?;
    let request = read_hinted(&mut tcp, &mut buf, hint)?;
    acceptor.step(&request, None, &mut out).map_err(err)?;
    acceptor.step(&[], None, &mut out).map_err(err)?;
    tcp.write_all(out.filled())?;
    out.clear();
    if acceptor.reached_security_upgrade().is_some() {
        acceptor.mark_security_upgrade_as_done();
    }
    let mut tls = tls_accept(tcp)?;
    // INVARIANT: the acceptor's sequence is finite up to the Demand Active; the count bounds it too.
    for _ in 0..64 {
        if matches!(
            acceptor.state().as_any().downcast_ref::<AcceptorState>(),
            Some(AcceptorState::CapabilitiesSendServer { .. })
        ) {
            tls.write_all(&endless_demand_active())?;
            tls.flush()?;
            drain(&mut tls, SAFETY);
            return Ok(());
        }
        let input = match acceptor.next_pdu_hint() {
            Some(hint) => read_hinted(&mut tls, &mut buf, hint)?,
            None => Vec::new(),
        };
        acceptor.step(&input, None, &mut out).map_err(err)?;
        if !out.filled().is_empty() {
            tls.write_all(out.filled())?;
            tls.flush()?;
        }
        out.clear();
    }
    Err(std::io::Error::other(
        "the acceptor never reached the Demand Active",
    ))
}

/// Accepts, reads, never writes.
fn accepts_and_never_speaks(mut tcp: TcpStream) -> std::io::Result<()> {
    drain(&mut tcp, SAFETY);
    Ok(())
}

// ---- the probe as a child ------------------------------------------------------------------------------

/// How a probe run ended.
#[derive(Debug)]
struct ProbeRun {
    /// The exit code, `None` when a signal ended it.
    code: Option<i32>,
    /// The probe did not end by itself within [`SAFETY`] and was killed.
    killed: bool,
    stdout: String,
    stderr: String,
    /// ru_maxrss of the child: its peak resident set, in KiB.
    peak_rss_kib: u64,
    /// From the start of the child to its end.
    elapsed: Duration,
}

/// Runs `rdptrace probe ARGS --json` against `addr` and measures it.
// The child is reaped by `wait4`, which std's `Child::wait` cannot do with the resource usage.
#[allow(clippy::zombie_processes)]
fn probe(addr: SocketAddr, args: &[&str], password: Option<&str>, dir: &Path) -> ProbeRun {
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let mut cmd = rdptrace();
    cmd.env_remove("RDPTRACE_PASSWORD")
        .env("RUST_LOG", "debug")
        .args([
            "probe",
            "--json",
            "--timeout",
            TOTAL_TIMEOUT,
            "--phase-timeout",
            PHASE_TIMEOUT,
        ])
        .args(args)
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    if let Some(pw) = password {
        cmd.env("RDPTRACE_PASSWORD", pw);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start rdptrace probe");
    let pid = i32::try_from(child.id()).expect("pid");
    let end = Instant::now() + SAFETY;
    let mut killed = false;
    // INVARIANT: bounded by SAFETY, then the child is killed and reaped.
    let (status, usage) = loop {
        if let Some(done) = support::wait4(pid, false) {
            break done;
        }
        if Instant::now() > end {
            // Not reaped yet, so the PID is still this child's.
            let _ = child.kill();
            killed = true;
            break support::wait4(pid, true).expect("reap the killed probe");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    ProbeRun {
        code,
        killed,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(u64::MAX),
        elapsed: started.elapsed(),
    }
}

/// One scenario: the adversary, the probe's arguments, and the phase and cause the verdict must name.
/// Returns the run and its verdict.
fn scenario(
    name: &str,
    behaviour: Behaviour,
    args: &[&str],
    password: Option<&str>,
    phase: &str,
    causes: &[&str],
) -> (ProbeRun, serde_json::Value) {
    let dir = TempDir::new(&format!("hostile-{name}"));
    let (addr, server) = adversary(behaviour);
    let run = probe(addr, args, password, dir.path());
    let _ = server.join();
    eprintln!(
        "{name}: exit {:?}, peak RSS {} KiB\n{}",
        run.code, run.peak_rss_kib, run.stdout
    );
    assert!(!run.killed, "{name}: the probe did not end by itself");
    assert!(
        !run.stderr.contains("panicked"),
        "{name}: the probe panicked:\n{}",
        run.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("{name}: not one JSON document ({e}):\n{}", run.stdout));
    let verdict = &doc["verdict"];
    assert_eq!(verdict["ok"], false, "{name}");
    assert_eq!(verdict["phase"], phase, "{name}: {verdict}");
    let cause = verdict["cause"].as_str().unwrap_or_default();
    assert!(causes.contains(&cause), "{name}: cause {cause}: {verdict}");
    assert!(
        verdict["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{name}: a verdict says why"
    );
    // The exit code is the failed phase's (README: exit codes).
    assert!(
        run.code.is_some_and(|c| (10..=21).contains(&c)),
        "{name}: exit {:?}",
        run.code
    );
    assert!(
        run.peak_rss_kib < PEAK_RSS_BOUND_KIB,
        "{name}: peak RSS {} KiB over the bound of {} KiB",
        run.peak_rss_kib,
        PEAK_RSS_BOUND_KIB
    );
    let verdict = verdict.clone();
    (run, verdict)
}

/// [2.2.1.2] Only a TPKT answers the Connection Request: an HTTP answer there ends the probe at once, not at
/// the deadline ('H' would otherwise frame as a fast-path PDU of 0x54 bytes and be waited for).
#[test]
fn garbage_instead_of_an_x224_connection_confirm() {
    let (run, verdict) = scenario(
        "garbage",
        garbage_instead_of_a_connection_confirm,
        &[],
        None,
        "x224",
        &["protocol_error"],
    );
    assert!(
        run.elapsed < Duration::from_secs(1),
        "the probe waited {:?} for more of what is not RDP",
        run.elapsed
    );
    let detail = verdict["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("not a TPKT header"),
        "the verdict says what arrived: {detail}"
    );
    assert!(
        !run.stdout.contains("timed_out"),
        "no deadline passed: {}",
        run.stdout
    );
}

#[test]
fn a_65535_byte_tpkt_trickled_one_byte_a_second() {
    scenario(
        "trickle",
        a_65535_byte_tpkt_one_byte_a_second,
        &[],
        None,
        "x224",
        &["timed_out"],
    );
}

#[test]
fn endless_tls_records_after_the_handshake() {
    scenario(
        "endless-tls",
        endless_tls_records,
        &["--security", "tls"],
        None,
        "mcs_connect",
        &["protocol_error", "timed_out"],
    );
}

#[test]
fn endless_tls_records_instead_of_a_server_hello() {
    scenario(
        "endless-handshake",
        endless_tls_handshake,
        &["--security", "tls"],
        None,
        "tls",
        &["tls_failed"],
    );
}

#[test]
fn a_tsrequest_with_absurd_nested_lengths() {
    scenario(
        "tsrequest-nested",
        nested_tsrequest_lengths,
        &["-u", "alice"],
        Some("Hostile-Test-Pa55"),
        "credssp",
        &["protocol_error", "credssp_rejected"],
    );
}

#[test]
fn a_tsrequest_that_claims_two_gigabytes() {
    scenario(
        "tsrequest-outer",
        outer_tsrequest_length,
        &["-u", "alice"],
        Some("Hostile-Test-Pa55"),
        "credssp",
        &["protocol_error", "credssp_rejected"],
    );
}

#[test]
fn a_capability_set_list_that_never_ends_in_the_demand_active() {
    scenario(
        "capabilities",
        a_capability_set_list_that_never_ends,
        &["--security", "tls"],
        None,
        "capabilities",
        &["protocol_error"],
    );
}

#[test]
fn a_server_that_accepts_and_never_speaks() {
    scenario(
        "silent",
        accepts_and_never_speaks,
        &[],
        None,
        "x224",
        &["timed_out"],
    );
}
