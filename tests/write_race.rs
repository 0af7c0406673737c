//! A server's last words against the client's next write.
//!
//! A server built on ironrdp-acceptor (TLS, no NLA) walks the connection sequence with the probe until a PDU
//! the client answers at once, without waiting: the Attach User Confirm (the client sends its Client Info),
//! a License Request (the New License Request), the Demand Active (the Confirm Active and the finalization
//! PDUs). It sends that PDU, a Set Error Info and a Disconnect Provider Ultimatum in one TLS record and
//! resets the connection (SO_LINGER 0) two system calls after the record's last byte, on a CPU of its own:
//! the client reads the PDU and writes its answer into the reset (ECONNRESET) while the server's last PDUs
//! wait unread in its TLS session and socket.
//!
//! The verdict must be the server's error info every time, as when the client reads before it writes; and
//! when the reset discarded the Set Error Info before it left the server (held by TCP_CORK), the verdict
//! must not claim one: mstsc's pair is then the one it fills in itself for a close without error info.
//!
//! The built-in target's own writes meet a client's reset the same way (the last test).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ironrdp_acceptor::{Acceptor, AcceptorState, DesktopSize};
use ironrdp_connector::Sequence as _;
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::SecurityProtocol;
use rdptrace::codes::{self, Table};
use rdptrace::mstsc::{DISC_SOCKET_CLOSED, EXT_SERVER_DENIED_CONNECTION};
use rdptrace::pdu::{LicenseMessage, PduInfo};
use rdptrace::probe::{ProbeConfig, Security};
use rdptrace::serve::{faults, scenario, target, tls};
use rdptrace::trace::{PhaseName, Side, Trace};
use rdptrace::verdict::{Basis, Cause, Verdict};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Probes per case: scheduling can still let the client write before the reset comes; twenty runs leave
/// the fix nowhere to hide.
const RUNS: usize = 20;

/// Nothing here waits longer than this.
const SAFETY: Duration = Duration::from_secs(120);

/// [2.2.2.3] rn-provider-initiated, the reason of the server's Disconnect Provider Ultimatum.
const RN_PROVIDER_INITIATED: u8 = 1;

fn denied_connection() -> u32 {
    codes::lookup_name(Table::ErrorInfo, "ERRINFO_SERVER_DENIED_CONNECTION")
        .expect("in the table")
        .code
}

/// The PDU after which the server speaks its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// [2.2.1.7] The Attach User Confirm: the client answers with its Client Info.
    AttachUserConfirm,
    /// [MS-RDPELE] 2.2.2.1 A License Request: the client answers with a New License Request.
    LicenseRequest,
    /// [2.2.1.13.1] The Demand Active: the client answers with the Confirm Active and the finalization PDUs.
    DemandActive,
}

impl Point {
    /// Whether the acceptor, in `state`, has just sent that PDU (or, for the License Request, would send its
    /// own licensing answer instead).
    fn reached(self, state: &AcceptorState) -> bool {
        match self {
            Point::AttachUserConfirm => {
                matches!(state, AcceptorState::SecureSettingsExchange { .. })
            }
            Point::LicenseRequest => matches!(state, AcceptorState::LicensingExchange { .. }),
            Point::DemandActive => matches!(state, AcceptorState::CapabilitiesWaitConfirm { .. }),
        }
    }

    /// Whether the client's answer to that PDU is missing from a trace: its write met the reset.
    fn answer_missing(self, trace: &Trace) -> bool {
        let sent = |wanted: fn(&PduInfo) -> bool| {
            trace
                .pdus()
                .any(|(_, p)| p.from == Side::Client && wanted(&p.info))
        };
        match self {
            Point::AttachUserConfirm => !sent(|i| matches!(i, PduInfo::ClientInfo { .. })),
            Point::LicenseRequest => !sent(|i| {
                matches!(
                    i,
                    PduInfo::License {
                        message: LicenseMessage::NewLicenseRequest
                    }
                )
            }),
            Point::DemandActive => !sent(|i| matches!(i, PduInfo::FontList)),
        }
    }

    /// The phases the verdict may name: the server's PDU's, or the next one when the client's answer left
    /// before the reset came (a server PDU after the Client Info is in licensing).
    fn phases(self) -> &'static [PhaseName] {
        match self {
            Point::AttachUserConfirm => &[PhaseName::ChannelJoin, PhaseName::Licensing],
            Point::LicenseRequest => &[PhaseName::Licensing],
            Point::DemandActive => &[PhaseName::Capabilities, PhaseName::Finalization],
        }
    }
}

/// What became of the server's Set Error Info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// On the wire before the reset.
    Sent,
    /// Held in the server's send queue (TCP_CORK) and discarded by the reset.
    Discarded,
}

/// The built-in target's certificate, made once.
fn tls_config() -> Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let profile = scenario::find("healthy").expect("in the catalogue").tls;
            let identity =
                tls::certificate(&profile.cert, "write-race.test", None).expect("a certificate");
            tls::server_config(&identity, &profile, None).expect("a TLS configuration")
        })
        .clone()
}

/// A License Request, with the built-in target's proprietary certificate.
fn license_request() -> Vec<u8> {
    static KEY: OnceLock<faults::LicenseKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let profile = scenario::find("healthy").expect("in the catalogue").tls;
        tls::certificate(&profile.cert, "write-race.test", None)
            .expect("a certificate")
            .license_key
    });
    faults::license_request(key).expect("encodes")
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Reads one frame of what the acceptor waits for (its hint); what follows it stays in `buf`.
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

fn set_option<T: Copy>(tcp: &TcpStream, level: libc::c_int, name: libc::c_int, value: &T) {
    // SAFETY: setsockopt reads `size_of_val(value)` bytes from a live local of the option's C type.
    let set = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            libc::socklen_t::try_from(std::mem::size_of_val(value)).expect("small"),
        )
    };
    assert_eq!(set, 0, "setsockopt {level}/{name}");
}

/// Waits until the socket has sent everything written to it (SIOCOUTQNSD of linux/sockios.h: the bytes not
/// yet sent), at most a second.
fn wait_sent(tcp: &TcpStream) {
    const SIOCOUTQNSD: libc::c_ulong = 0x894b;
    let end = Instant::now() + Duration::from_secs(1);
    // INVARIANT: bounded by `end`.
    while Instant::now() < end {
        let mut unsent: libc::c_int = 0;
        // SAFETY: the ioctl writes one int through the pointer, which points to a live local int.
        let got = unsafe { libc::ioctl(tcp.as_raw_fd(), SIOCOUTQNSD, &mut unsent) };
        if got != 0 || unsent == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Pins the calling thread to CPU `cpu` when the machine has more than one, so that the server and the
/// probe run side by side: a thread the server's write wakes on the server's own CPU could run before the
/// server's next system call, and the race would go the client's way.
fn pin_to_cpu(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        return;
    }
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET writes within it; sched_setaffinity(0) reads
    // it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % cpus, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The server's last words: `pdu`, a Set Error Info and a Disconnect Provider Ultimatum, then a reset.
///
/// The TLS records are sealed beforehand and go out with one system call right before the reset, all but
/// their last byte a moment earlier (the client wakes for them, finds no whole record and waits again): the
/// reset follows the last byte by two system calls, fewer than the client needs to read, answer and write.
fn last_words(
    mut tls: StreamOwned<ServerConnection, TcpStream>,
    pdu: Vec<u8>,
    ending: Ending,
) -> std::io::Result<()> {
    let mut last = faults::set_error_info(denied_connection()).map_err(io_error)?;
    last.extend(faults::disconnect_provider_ultimatum(RN_PROVIDER_INITIATED).map_err(io_error)?);
    let seal = |tls: &mut StreamOwned<ServerConnection, TcpStream>, plaintext: &[u8]| {
        tls.conn.writer().write_all(plaintext)?;
        let mut records = Vec::new();
        while tls.conn.wants_write() {
            tls.conn.write_tls(&mut records)?;
        }
        Ok::<_, std::io::Error>(records)
    };
    match ending {
        Ending::Sent => {
            let mut all = pdu;
            all.extend(last);
            let records = seal(&mut tls, &all)?;
            let (most, end) = records.split_at(records.len().saturating_sub(1));
            tls.sock.write_all(most)?;
            std::thread::sleep(Duration::from_millis(2));
            tls.sock.write_all(end)?;
        }
        Ending::Discarded => {
            let records = seal(&mut tls, &pdu)?;
            tls.sock.write_all(&records)?;
            wait_sent(&tls.sock);
            set_option(
                &tls.sock,
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                &1 as &libc::c_int,
            );
            let records = seal(&mut tls, &last)?;
            tls.sock.write_all(&records)?;
        }
    }
    let abort = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_option(&tls.sock, libc::SOL_SOCKET, libc::SO_LINGER, &abort);
    drop(tls);
    Ok(())
}

/// One connection: the sequence up to `point`, then the last words.
fn serve(mut tcp: TcpStream, point: Point, ending: Ending) -> std::io::Result<()> {
    let size = DesktopSize {
        width: 1024,
        height: 768,
    };
    let mut acceptor = Acceptor::new(
        SecurityProtocol::SSL,
        size,
        target::capabilities(size),
        None,
    );
    let mut out = WriteBuf::new();
    let mut buf = Vec::new();
    let hint = acceptor.next_pdu_hint().ok_or(std::io::ErrorKind::Other)?;
    let request = read_hinted(&mut tcp, &mut buf, hint)?;
    acceptor.step(&request, None, &mut out).map_err(io_error)?;
    acceptor.step(&[], None, &mut out).map_err(io_error)?;
    tcp.write_all(out.filled())?;
    out.clear();
    if acceptor.reached_security_upgrade().is_some() {
        acceptor.mark_security_upgrade_as_done();
    }
    let connection = ServerConnection::new(tls_config()).map_err(io_error)?;
    let mut tls = StreamOwned::new(connection, tcp);
    // INVARIANT: bounded by the socket's read timeout and the count.
    for _ in 0..64 {
        if !tls.conn.is_handshaking() {
            break;
        }
        tls.conn.complete_io(&mut tls.sock)?;
    }
    // What the acceptor wrote since the client last spoke.
    let mut pending = Vec::new();
    // INVARIANT: the acceptor's sequence is finite up to the point; the count bounds it too.
    for _ in 0..64 {
        let state = acceptor.state().as_any().downcast_ref::<AcceptorState>();
        if state.is_some_and(|s| point.reached(s)) {
            if point == Point::LicenseRequest {
                pending.extend(license_request());
            }
            return last_words(tls, pending, ending);
        }
        match acceptor.next_pdu_hint() {
            Some(hint) => {
                tls.write_all(&pending)?;
                tls.flush()?;
                pending.clear();
                let input = read_hinted(&mut tls, &mut buf, hint)?;
                acceptor.step(&input, None, &mut out).map_err(io_error)?;
            }
            None => {
                acceptor.step(&[], None, &mut out).map_err(io_error)?;
            }
        }
        pending.extend_from_slice(out.filled());
        out.clear();
    }
    Err(io_error(format!("the acceptor never reached {point:?}")))
}

/// A listener that serves `runs` connections, one after the other.
fn server(point: Point, ending: Ending, runs: usize) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let handle = std::thread::spawn(move || {
        pin_to_cpu(0);
        listener.set_nonblocking(true).expect("nonblocking");
        let end = Instant::now() + SAFETY;
        let mut served = 0;
        // INVARIANT: bounded by SAFETY and the count.
        while served < runs && Instant::now() < end {
            match listener.accept() {
                Ok((tcp, _)) => {
                    served += 1;
                    let _ = tcp.set_nonblocking(false);
                    let _ = tcp.set_nodelay(true);
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
                    if let Err(e) = serve(tcp, point, ending) {
                        eprintln!("{point:?}: the server stopped: {e}");
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (addr, handle)
}

/// One probe of the race.
struct Run {
    verdict: Verdict,
    /// The trace holds the server's Set Error Info.
    error_info_seen: bool,
    /// The client's answer met the reset.
    answer_missing: bool,
}

/// Probes the server `RUNS` times.
fn race(point: Point, ending: Ending) -> Vec<Run> {
    let (addr, server) = server(point, ending, RUNS);
    // The probe on a runtime of this thread alone, beside the server's CPU.
    pin_to_cpu(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let verdicts = runtime.block_on(async {
        let mut verdicts = Vec::new();
        for _ in 0..RUNS {
            let mut cfg = ProbeConfig::new(&addr.to_string()).expect("target");
            cfg.security = Security::Tls;
            cfg.timeout = Duration::from_secs(10);
            cfg.phase_timeout = Duration::from_secs(3);
            cfg.watch = Duration::from_millis(100);
            let trace = rdptrace::probe::probe(&cfg).await;
            verdicts.push(Run {
                verdict: rdptrace::diagnose::diagnose(&trace),
                error_info_seen: trace
                    .pdus()
                    .any(|(_, p)| matches!(p.info, PduInfo::SetErrorInfo { .. })),
                answer_missing: point.answer_missing(&trace),
            });
        }
        verdicts
    });
    let _ = server.join();
    verdicts
}

fn line(v: &Verdict) -> String {
    format!("{:?} {:?}: {}", v.phase, v.cause, v.detail)
}

/// Set Error Info then the reset: the server's error info, every time.
fn the_error_info_is_read_before_the_reset_is_recorded(point: Point) {
    let runs = race(point, Ending::Sent);
    assert!(
        runs.iter().any(|r| r.answer_missing),
        "{point:?}: the client's answer never met the reset: the race was not run"
    );
    let wrong: Vec<String> = runs
        .iter()
        .map(|r| &r.verdict)
        .filter(|v| {
            v.cause != Cause::ServerErrorInfo
                || v.error_info.as_ref().map(|c| c.code) != Some(denied_connection())
                || !v.phase.is_some_and(|p| point.phases().contains(&p))
                || v.mstsc.as_ref().is_none_or(|m| {
                    (
                        m.disc_reason.code,
                        m.extended_code().unwrap_or(u32::MAX),
                        m.basis,
                    ) != (DISC_SOCKET_CLOSED, denied_connection(), Basis::Specified)
                })
        })
        .map(line)
        .collect();
    assert!(
        wrong.is_empty(),
        "{point:?}: {} of {RUNS} runs lost the server's Set Error Info:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The reset discarded the Set Error Info: no error info is claimed, and mstsc's pair is the one it fills
/// in itself.
fn a_discarded_error_info_is_not_claimed(point: Point) {
    let runs = race(point, Ending::Discarded);
    let wrong: Vec<String> = runs
        .iter()
        .filter(|r| {
            let v = &r.verdict;
            r.error_info_seen
                || v.cause != Cause::ResetByServer
                || v.error_info.is_some()
                || v.mstsc.as_ref().is_none_or(|m| {
                    (
                        m.disc_reason.code,
                        m.extended_code().unwrap_or(u32::MAX),
                        m.basis,
                    ) != (
                        DISC_SOCKET_CLOSED,
                        EXT_SERVER_DENIED_CONNECTION,
                        Basis::Reported,
                    )
                })
        })
        .map(|r| line(&r.verdict))
        .collect();
    assert!(
        wrong.is_empty(),
        "{point:?}: {} of {RUNS} runs claimed what never arrived:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_client_info_into_a_reset_after_the_attach_user_confirm() {
    the_error_info_is_read_before_the_reset_is_recorded(Point::AttachUserConfirm);
}

#[test]
fn the_new_license_request_into_a_reset_after_the_license_request() {
    the_error_info_is_read_before_the_reset_is_recorded(Point::LicenseRequest);
}

#[test]
fn the_confirm_active_and_finalization_into_a_reset_after_the_demand_active() {
    the_error_info_is_read_before_the_reset_is_recorded(Point::DemandActive);
}

#[test]
fn a_set_error_info_the_reset_discarded_is_not_claimed() {
    for point in [
        Point::AttachUserConfirm,
        Point::LicenseRequest,
        Point::DemandActive,
    ] {
        a_discarded_error_info_is_not_claimed(point);
    }
}

/// The built-in target's own writes: a client that sends its Connection Request, then a Disconnect Provider
/// Ultimatum, and resets, while the target ("slow": everything the client sends reaches it 1.5 s late) holds
/// the request. The target's Connection Confirm meets the reset; its trace still holds the client's
/// Ultimatum, then the reset.
#[test]
fn the_targets_trace_holds_what_the_client_sent_before_resetting_under_its_write() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let served = runtime.block_on(async {
        let slow = scenario::find("slow").expect("in the catalogue");
        let target = rdptrace::serve::Target::bind(rdptrace::serve::TargetConfig::new(slow))
            .await
            .expect("bind the target");
        let addr = target.local_addr();
        let client = tokio::task::spawn_blocking(move || {
            let mut tcp = TcpStream::connect(addr).expect("connect");
            // [2.2.1.1] X.224 Connection Request with RDP_NEG_REQ (PROTOCOL_SSL | PROTOCOL_HYBRID).
            tcp.write_all(&[
                0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x08,
                0x00, 0x03, 0x00, 0x00, 0x00,
            ])
            .expect("connection request");
            std::thread::sleep(Duration::from_millis(300));
            // [2.2.2.3] MCS Disconnect Provider Ultimatum, rn-user-requested.
            tcp.write_all(&[0x03, 0x00, 0x00, 0x09, 0x02, 0xf0, 0x80, 0x21, 0x80])
                .expect("ultimatum");
            let abort = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            set_option(&tcp, libc::SOL_SOCKET, libc::SO_LINGER, &abort);
        });
        let served = tokio::time::timeout(SAFETY, target.serve_one())
            .await
            .expect("the target ends the connection")
            .expect("a connection");
        client.await.expect("the client");
        served
    });
    let trace = &served.trace;
    assert_eq!(
        served.outcome,
        rdptrace::serve::Outcome::ClientClosed {
            phase: trace.current(),
            how: rdptrace::trace::CloseKind::Rst
        },
        "{}",
        served.outcome
    );
    let ultimatum = trace.pdus().find(|(_, p)| {
        p.from == rdptrace::trace::Side::Client
            && matches!(p.info, PduInfo::DisconnectProviderUltimatum { .. })
    });
    let closed = trace.events().find(|(_, e)| {
        matches!(
            e.kind,
            rdptrace::trace::EventKind::Closed {
                by: rdptrace::trace::Side::Client,
                how: rdptrace::trace::CloseKind::Rst
            }
        )
    });
    let (Some((_, ultimatum)), Some((_, closed))) = (ultimatum, closed) else {
        panic!(
            "the client's Ultimatum and its reset are both in the target's trace: {:#?}",
            trace.phases
        );
    };
    assert!(
        ultimatum.at_ms <= closed.at_ms,
        "the Ultimatum, then the reset"
    );
}
