//! `rdptrace replay`: synthetic captures built here (pcap bytes with Ethernet, IPv4 and TCP frames composed
//! with etherparse), and the public captures in `../shared/captures/public` checked against their ground
//! truth.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use etherparse::PacketBuilder;
use rdptrace::pdu::{AuthToken, Negotiation, PduInfo};
use rdptrace::replay::{self, Options, Replay, Session};
use rdptrace::trace::Fact;
use rdptrace::trace::{CloseKind, ConnectError, EventKind, PhaseName, Side, Trace};
use rdptrace::verdict::Cause;
use support::rdptrace;

// ---- helpers ------------------------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `../shared/captures/public`, or `None` (the test then skips) when it is absent and CI is unset.
fn public() -> Option<PathBuf> {
    let dir = PathBuf::from("../shared/captures/public");
    if dir.join("ground_truth.json").is_file() {
        return Some(dir);
    }
    if in_ci() {
        panic!("../shared/captures/public is missing, and CI is set");
    }
    eprintln!("skipped: ../shared/captures/public is missing (set CI to make this a failure)");
    None
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("replay");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn read(path: &Path, opts: &Options) -> Replay {
    replay::replay(path, opts).unwrap_or_else(|e| panic!("{e}"))
}

fn session<'a>(r: &'a Replay, client: &str) -> &'a Session {
    r.sessions
        .iter()
        .find(|s| s.trace.client_addr.as_deref() == Some(client))
        .unwrap_or_else(|| {
            panic!(
                "no session from {client} in {}: {:?}",
                r.file,
                r.sessions
                    .iter()
                    .map(|s| s.trace.client_addr.clone())
                    .collect::<Vec<_>>()
            )
        })
}

fn pdus(t: &Trace) -> Vec<&PduInfo> {
    t.pdus().map(|(_, p)| &p.info).collect()
}

fn fact(t: &Trace, phase: PhaseName, key: &str) -> Option<serde_json::Value> {
    t.phase(phase).facts.get(Fact::from_name(key)?).cloned()
}

fn fact_str(t: &Trace, phase: PhaseName, key: &str) -> Option<String> {
    fact(t, phase, key).map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

fn first_close(t: &Trace) -> Option<(Side, CloseKind)> {
    t.events().find_map(|(_, e)| match e.kind {
        EventKind::Closed { by, how } => Some((by, how)),
        _ => None,
    })
}

fn gaps(t: &Trace) -> Vec<(Side, u64)> {
    t.events()
        .filter_map(|(_, e)| match e.kind {
            EventKind::Gap { from, bytes } => Some((from, bytes)),
            _ => None,
        })
        .collect()
}

// ---- synthetic captures --------------------------------------------------------------------------------

/// A classic pcap file (microseconds, little endian).
struct Pcap {
    buf: Vec<u8>,
}

impl Pcap {
    fn new(link: u32) -> Self {
        let mut buf = Vec::new();
        buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&0i32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&65535u32.to_le_bytes());
        buf.extend_from_slice(&link.to_le_bytes());
        Pcap { buf }
    }

    /// A packet captured whole.
    fn packet(&mut self, ts_us: u64, data: &[u8]) {
        self.packet_cut(ts_us, data, data.len());
    }

    /// A packet of which the capture kept only `keep` bytes.
    fn packet_cut(&mut self, ts_us: u64, data: &[u8], keep: usize) {
        let secs = 1_700_000_000 + ts_us / 1_000_000;
        self.buf.extend_from_slice(&(secs as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        self.buf.extend_from_slice(&(keep as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&data[..keep]);
    }

    fn write(&self, name: &str) -> PathBuf {
        let path = tmp(name);
        std::fs::write(&path, &self.buf).unwrap();
        path
    }
}

#[derive(Clone, Copy)]
struct Flags {
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
}

const S: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
const SA: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
const A: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};
const FA: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
};
const RA: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: true,
};

/// An Ethernet / IPv4 / TCP frame.
fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only");
    };
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 64240);
    if f.syn {
        b = b.syn();
    }
    if f.ack {
        b = b.ack(ack);
    }
    if f.fin {
        b = b.fin();
    }
    if f.rst {
        b = b.rst();
    }
    if !payload.is_empty() {
        b = b.psh();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// One TCP connection, written packet by packet with the sequence numbers kept.
struct Conv<'a> {
    pcap: &'a mut Pcap,
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence numbers.
    cseq: u32,
    sseq: u32,
    t: u64,
}

impl<'a> Conv<'a> {
    fn new(pcap: &'a mut Pcap, client: &str, server: &str, t: u64) -> Self {
        Conv {
            pcap,
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            cseq: 1000,
            sseq: 5000,
            t,
        }
    }

    fn tick(&mut self, us: u64) -> u64 {
        self.t += us;
        self.t
    }

    fn handshake(&mut self) {
        let t = self.tick(0);
        let f = tcp_frame(self.client, self.server, self.cseq, 0, S, &[]);
        self.pcap.packet(t, &f);
        let t = self.tick(1500);
        let f = tcp_frame(self.server, self.client, self.sseq, self.cseq + 1, SA, &[]);
        self.pcap.packet(t, &f);
        let t = self.tick(100);
        self.cseq += 1;
        self.sseq += 1;
        let f = tcp_frame(self.client, self.server, self.cseq, self.sseq, A, &[]);
        self.pcap.packet(t, &f);
    }

    fn client(&mut self, payload: &[u8]) {
        let t = self.tick(1000);
        let f = tcp_frame(self.client, self.server, self.cseq, self.sseq, A, payload);
        self.pcap.packet(t, &f);
        self.cseq += payload.len() as u32;
    }

    fn server(&mut self, payload: &[u8]) {
        let t = self.tick(1000);
        let f = tcp_frame(self.server, self.client, self.sseq, self.cseq, A, payload);
        self.pcap.packet(t, &f);
        self.sseq += payload.len() as u32;
    }

    fn client_fin(&mut self) {
        let t = self.tick(1000);
        let f = tcp_frame(self.client, self.server, self.cseq, self.sseq, FA, &[]);
        self.pcap.packet(t, &f);
        self.cseq += 1;
    }

    fn server_fin(&mut self) {
        let t = self.tick(1000);
        let f = tcp_frame(self.server, self.client, self.sseq, self.cseq, FA, &[]);
        self.pcap.packet(t, &f);
        self.sseq += 1;
    }
}

/// [2.2.1.1] X.224 Connection Request with a cookie and an RDP_NEG_REQ.
fn x224_cr(cookie: &str, requested: u32) -> Vec<u8> {
    let mut body = vec![0xe0, 0, 0, 0, 0, 0];
    body.extend_from_slice(format!("Cookie: mstshash={cookie}\r\n").as_bytes());
    body.extend_from_slice(&[0x01, 0x00, 0x08, 0x00]);
    body.extend_from_slice(&requested.to_le_bytes());
    tpkt(&body)
}

/// [2.2.1.2] X.224 Connection Confirm with an RDP_NEG_RSP or RDP_NEG_FAILURE.
fn x224_cc(failure: bool, value: u32) -> Vec<u8> {
    let mut body = vec![0xd0, 0, 0, 0x12, 0x34, 0];
    body.extend_from_slice(&[if failure { 0x03 } else { 0x02 }, 0x00, 0x08, 0x00]);
    body.extend_from_slice(&value.to_le_bytes());
    tpkt(&body)
}

/// [T.123] TPKT around an X.224 TPDU (`body` starts with the TPDU code; the length indicator is added).
fn tpkt(body: &[u8]) -> Vec<u8> {
    let len = 4 + 1 + body.len();
    let mut out = vec![0x03, 0x00, (len >> 8) as u8, len as u8, body.len() as u8];
    out.extend_from_slice(body);
    out
}

const CLIENT: &str = "10.0.0.1:50000";
const SERVER: &str = "10.0.0.2:3389";

/// A negotiation failure (SSL_NOT_ALLOWED_BY_SERVER), the client's FIN, the server's FIN.
fn neg_failure_capture(name: &str) -> PathBuf {
    let mut pcap = Pcap::new(1);
    let mut c = Conv::new(&mut pcap, CLIENT, SERVER, 0);
    c.handshake();
    c.client(&x224_cr("alice", 1));
    c.server(&x224_cc(true, 2));
    c.client_fin();
    c.server_fin();
    pcap.write(name)
}

// ---- synthetic tests ------------------------------------------------------------------------------------

#[test]
fn negotiation_failure_from_a_clean_capture() {
    let path = neg_failure_capture("neg-failure.pcap");
    let r = read(&path, &Options::default());
    assert!(r.error.is_none());
    assert_eq!(r.sessions.len(), 1);
    let s = &r.sessions[0];
    assert_eq!(s.index, 1);
    assert_eq!(s.trace.target, SERVER);
    assert_eq!(s.trace.server_addr.as_deref(), Some(SERVER));
    assert_eq!(s.trace.started_at.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert!(matches!(
        s.trace.origin,
        rdptrace::trace::Origin::Replay { session: 1, .. }
    ));
    assert_eq!(s.verdict.cause, Cause::NegotiationFailure);
    assert_eq!(s.verdict.phase, Some(PhaseName::X224));
    // The tcp phase from the handshake: SYN at 0, SYN-ACK at 1.5 ms, ACK at 1.6 ms.
    assert_eq!(fact(&s.trace, PhaseName::Tcp, "rtt_ms"), Some(1.6.into()));
    assert!(
        s.trace
            .phase(PhaseName::Tcp)
            .events
            .iter()
            .any(|e| matches!(
                &e.kind,
                EventKind::Connected { local, remote } if local == CLIENT && remote == SERVER
            ))
    );
    assert_eq!(
        fact_str(&s.trace, PhaseName::X224, "cookie").as_deref(),
        Some("alice")
    );
    assert_eq!(
        fact_str(&s.trace, PhaseName::X224, "closed_by").as_deref(),
        Some("client FIN")
    );
    assert_eq!(
        fact_str(&s.trace, PhaseName::X224, "then_closed_by").as_deref(),
        Some("server FIN")
    );
    assert_eq!(first_close(&s.trace), Some((Side::Client, CloseKind::Fin)));
}

#[test]
fn out_of_order_retransmitted_and_overlapping_segments() {
    let client: SocketAddr = CLIENT.parse().unwrap();
    let server: SocketAddr = SERVER.parse().unwrap();
    let cr = x224_cr("bob", 3);
    let cc = x224_cc(false, 2);
    let mut pcap = Pcap::new(1);
    let (cseq, sseq) = {
        let mut c = Conv::new(&mut pcap, CLIENT, SERVER, 0);
        c.handshake();
        (c.cseq, c.sseq)
    };
    let seg = |seq_off: usize, range: std::ops::Range<usize>| {
        tcp_frame(client, server, cseq + seq_off as u32, sseq, A, &cr[range])
    };
    // The request in three pieces: the last first, then the first, the first again (retransmission), then
    // a middle piece that overlaps both neighbours with different bytes (the bytes seen first win).
    pcap.packet(10_000, &seg(20, 20..cr.len()));
    pcap.packet(11_000, &seg(0, 0..10));
    pcap.packet(12_000, &seg(0, 0..10));
    let mut overlap = cr[5..25].to_vec();
    overlap[0] ^= 0xff;
    overlap[19] ^= 0xff;
    pcap.packet(
        13_000,
        &tcp_frame(client, server, cseq + 5, sseq, A, &overlap),
    );
    pcap.packet(
        14_000,
        &tcp_frame(server, client, sseq, cseq + cr.len() as u32, A, &cc),
    );
    let path = pcap.write("reorder.pcap");
    let r = read(&path, &Options::default());
    let s = &r.sessions[0];
    assert!(gaps(&s.trace).is_empty(), "{:?}", gaps(&s.trace));
    let infos = pdus(&s.trace);
    assert!(infos.iter().any(|p| matches!(
        p,
        PduInfo::X224ConnectionRequest { cookie: Some(c), requested_protocols: Some(3), .. } if c == "bob"
    )));
    assert!(infos.iter().any(|p| matches!(
        p,
        PduInfo::X224ConnectionConfirm {
            negotiation: Negotiation::Response {
                selected_protocol: 2,
                ..
            }
        }
    )));
    // The request became whole at 13 ms, when the hole closed.
    let (_, cr_pdu) = s.trace.pdus().next().unwrap();
    assert_eq!(cr_pdu.at_ms, 13.0);
    // The capture ends with the connection open.
    assert_eq!(s.verdict.cause, Cause::CaptureEnded);
}

#[test]
fn a_missing_segment_is_a_gap_of_its_size() {
    let mut pcap = Pcap::new(1);
    let mut c = Conv::new(&mut pcap, CLIENT, SERVER, 0);
    c.handshake();
    c.client(&x224_cr("carol", 1));
    c.server(&x224_cc(false, 1));
    // The client's ClientHello (here: 300 bytes of a TLS record) never made it into the capture; the next
    // segment did.
    let lost = c.cseq;
    c.cseq += 300;
    c.client(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]);
    c.server_fin();
    c.client_fin();
    let _ = lost;
    let path = pcap.write("gap.pcap");
    let r = read(&path, &Options::default());
    let s = &r.sessions[0];
    assert_eq!(gaps(&s.trace), vec![(Side::Client, 300)]);
    // After the gap nothing of the client's stream is guessed at.
    assert!(
        !pdus(&s.trace)
            .iter()
            .any(|p| matches!(p, PduInfo::TlsClientHello { .. }))
    );
    assert_eq!(first_close(&s.trace), Some((Side::Server, CloseKind::Fin)));
    assert_eq!(s.verdict.cause, Cause::ClosedByServer);
}

#[test]
fn a_cut_packet_is_a_gap() {
    let client: SocketAddr = CLIENT.parse().unwrap();
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut pcap = Pcap::new(1);
    let (cseq, sseq) = {
        let mut c = Conv::new(&mut pcap, CLIENT, SERVER, 0);
        c.handshake();
        (c.cseq, c.sseq)
    };
    let cr = x224_cr("dave", 0);
    let frame = tcp_frame(client, server, cseq, sseq, A, &cr);
    // The snapshot length kept all but the last 6 bytes.
    pcap.packet_cut(10_000, &frame, frame.len() - 6);
    let path = pcap.write("cut.pcap");
    let r = read(&path, &Options::default());
    let s = &r.sessions[0];
    assert_eq!(gaps(&s.trace), vec![(Side::Client, 6)]);
}

#[test]
fn refused_unanswered_and_unreachable_connections() {
    let mut pcap = Pcap::new(1);
    let c1: SocketAddr = "10.0.0.1:40001".parse().unwrap();
    let c2: SocketAddr = "10.0.0.1:40002".parse().unwrap();
    let c3: SocketAddr = "10.0.0.1:40003".parse().unwrap();
    let server: SocketAddr = SERVER.parse().unwrap();
    // RST to the SYN.
    pcap.packet(0, &tcp_frame(c1, server, 100, 0, S, &[]));
    pcap.packet(300, &tcp_frame(server, c1, 0, 101, RA, &[]));
    // A SYN sent three times, never answered (and once captured twice).
    pcap.packet(1_000, &tcp_frame(c2, server, 200, 0, S, &[]));
    pcap.packet(1_010, &tcp_frame(c2, server, 200, 0, S, &[]));
    pcap.packet(1_001_000, &tcp_frame(c2, server, 200, 0, S, &[]));
    pcap.packet(3_001_000, &tcp_frame(c2, server, 200, 0, S, &[]));
    // A SYN answered by an ICMP host unreachable from a router.
    pcap.packet(4_000_000, &tcp_frame(c3, server, 300, 0, S, &[]));
    let syn = tcp_frame(c3, server, 300, 0, S, &[]);
    let quoted = &syn[14..14 + 20 + 8];
    let icmp = {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1])
            .ipv4([10, 0, 0, 254], [10, 0, 0, 1], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Host,
            ));
        let mut out = Vec::new();
        b.write(&mut out, quoted).unwrap();
        out
    };
    pcap.packet(4_002_000, &icmp);
    let path = pcap.write("connect-failures.pcap");
    let r = read(&path, &Options::default());
    assert_eq!(r.sessions.len(), 3);

    let refused = session(&r, "10.0.0.1:40001");
    assert_eq!(refused.verdict.cause, Cause::Refused);
    assert_eq!(refused.verdict.phase, Some(PhaseName::Tcp));
    assert!(
        refused
            .trace
            .phase(PhaseName::Tcp)
            .events
            .iter()
            .any(|e| matches!(
                &e.kind,
                EventKind::ConnectFailed { error: ConnectError::Refused, addr } if addr == SERVER
            ))
    );

    let silent = session(&r, "10.0.0.1:40002");
    assert_eq!(silent.verdict.cause, Cause::TimedOut);
    assert_eq!(
        fact(&silent.trace, PhaseName::Tcp, "syn_sent"),
        Some(3.into())
    );
    assert_eq!(
        fact(&silent.trace, PhaseName::Tcp, "waited_ms"),
        Some(3000.0.into())
    );

    let unreachable = session(&r, "10.0.0.1:40003");
    assert_eq!(unreachable.verdict.cause, Cause::Unreachable);
    assert!(
        unreachable
            .trace
            .phase(PhaseName::Tcp)
            .events
            .iter()
            .any(|e| matches!(
                &e.kind,
                EventKind::ConnectFailed { error: ConnectError::Unreachable(w), .. }
                    if w == "ICMP host unreachable from 10.0.0.254"
            ))
    );
}

#[test]
fn truncated_file_reports_the_packet_and_keeps_the_sessions() {
    let path = neg_failure_capture("whole.pcap");
    let mut bytes = std::fs::read(&path).unwrap();
    // Cut the file in the middle of the last packet record (the server's FIN, packet 7).
    bytes.truncate(bytes.len() - 20);
    let cut = tmp("truncated.pcap");
    std::fs::write(&cut, &bytes).unwrap();
    let r = read(&cut, &Options::default());
    let err = r.error.expect("an error");
    assert_eq!(err.packet, Some(7));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: packet 7: the file ends in the middle of this packet (truncated capture)",
            cut.display()
        )
    );
    assert_eq!(r.sessions.len(), 1);
    assert_eq!(r.sessions[0].verdict.cause, Cause::NegotiationFailure);
}

#[test]
fn not_a_capture_and_unknown_link_type() {
    let path = tmp("notes.txt");
    std::fs::write(&path, "these are not packets\n").unwrap();
    let err = replay::replay(&path, &Options::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: not a pcap or pcapng capture", path.display())
    );

    // LINKTYPE_USB_LINUX (189).
    let mut pcap = Pcap::new(189);
    pcap.packet(0, &[0u8; 64]);
    let path = pcap.write("usb.pcap");
    let r = read(&path, &Options::default());
    let err = r.error.expect("an error");
    assert_eq!(err.packet, Some(1));
    assert!(err.detail.starts_with("link type 189"), "{}", err.detail);
}

#[test]
fn gzip_is_told_by_its_magic() {
    use std::io::Write as _;
    let path = neg_failure_capture("plain.pcap");
    let bytes = std::fs::read(&path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    // A name that says nothing of the content.
    let packed = tmp("capture.bin");
    std::fs::write(&packed, gz.finish().unwrap()).unwrap();
    let r = read(&packed, &Options::default());
    assert!(r.error.is_none());
    assert_eq!(r.sessions[0].verdict.cause, Cause::NegotiationFailure);
}

#[test]
fn rdp_on_another_port_and_non_rdp_traffic() {
    let mut pcap = Pcap::new(1);
    // HTTP on port 8080: not RDP.
    let mut http = Conv::new(&mut pcap, "10.0.0.1:41000", "10.0.0.3:8080", 0);
    http.handshake();
    http.client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    http.server(b"HTTP/1.1 200 OK\r\n\r\n");
    // RDP on port 443.
    let mut rdp = Conv::new(&mut pcap, "10.0.0.1:41001", "10.0.0.4:443", 100_000);
    rdp.handshake();
    rdp.client(&x224_cr("erin", 0));
    rdp.server(&x224_cc(false, 0));
    let path = pcap.write("ports.pcap");
    let r = read(&path, &Options::default());
    assert_eq!(r.sessions.len(), 1);
    assert_eq!(r.sessions[0].trace.target, "10.0.0.4:443");
}

#[test]
fn bounded_connections_evict_the_oldest_idle() {
    let mut pcap = Pcap::new(1);
    for i in 0..6u16 {
        let client = format!("10.0.1.{}:4{i:04}", i + 1);
        let mut c = Conv::new(&mut pcap, &client, SERVER, u64::from(i) * 1_000_000);
        c.handshake();
        c.client(&x224_cr("f", 0));
    }
    let path = pcap.write("many.pcap");
    let opts = Options {
        limits: replay::session::Limits {
            max_connections: 4,
            max_pending: 1 << 20,
        },
        // The bound is shared among the workers: one worker keeps it as given.
        threads: 1,
        ..Options::default()
    };
    let r = read(&path, &opts);
    assert_eq!(r.sessions.len(), 6);
    let evicted: Vec<_> = r
        .sessions
        .iter()
        .filter(|s| {
            s.trace.events().any(|(_, e)| {
                matches!(&e.kind, EventKind::Anomaly { detail } if detail.contains("stopped following"))
            })
        })
        .map(|s| s.index)
        .collect();
    assert_eq!(evicted, vec![1, 2]);
    assert_eq!(r.drops.sessions, 2, "{:?}", r.drops);
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("2 RDP session(s) were settled before their end")),
        "{:?}",
        r.notes
    );
}

#[test]
fn the_command_line() {
    let path = neg_failure_capture("cli.pcap");
    let out = rdptrace()
        .args(["replay", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(11),
        "the exit code of a failure in x224: {stdout}"
    );
    let first = stdout.lines().next().unwrap();
    assert_eq!(
        first,
        "#1   10.0.0.1:50000 -> 10.0.0.2:3389  2023-11-14T22:13:20Z  x224             negotiation_failure"
    );
    assert!(stdout.contains("verdict: failed in x224"));

    let out = rdptrace()
        .args(["replay", "--json", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["schema"], "rdptrace/1");
    assert_eq!(docs[0]["origin"]["kind"], "replay");
    assert_eq!(docs[0]["origin"]["session"], 1);
    assert_eq!(docs[0]["verdict"]["cause"], "negotiation_failure");

    let out = rdptrace()
        .args(["replay", "--session", "2", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("session 2 is not in"));

    // Two sessions: every summary line, one timeline; the exit code of the one selected.
    let mut pcap = Pcap::new(1);
    let mut ok = Conv::new(&mut pcap, CLIENT, SERVER, 0);
    ok.handshake();
    ok.client(&x224_cr("a", 0));
    ok.server(&x224_cc(false, 0));
    ok.client(&x224_data(&[0x21, 0x80]));
    ok.client_fin();
    ok.server_fin();
    let (c, s, t): (SocketAddr, SocketAddr, u64) = (
        "10.0.0.1:50001".parse().unwrap(),
        SERVER.parse().unwrap(),
        2_000_000,
    );
    pcap.packet(t, &tcp_frame(c, s, 7, 0, S, &[]));
    pcap.packet(t + 10, &tcp_frame(s, c, 0, 8, RA, &[]));
    let two = pcap.write("two.pcap");
    let out = rdptrace()
        .args(["replay", "--session", "2", two.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with('#')).count(),
        2,
        "{stdout}"
    );
    assert_eq!(stdout.matches("verdict:").count(), 1, "{stdout}");
    assert!(stdout.contains("cause: refused"), "{stdout}");
    assert_eq!(
        out.status.code(),
        Some(10),
        "the exit code of a failure in tcp"
    );

    let out = rdptrace()
        .args(["replay", "/nonexistent/capture.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("rdptrace: /nonexistent/capture.pcap: cannot open")
    );
}

// ---- public captures ----------------------------------------------------------------------------------

/// The RSA keys published with each capture (keys/, see MANIFEST.md).
fn keys_for(file: &str) -> Vec<&'static str> {
    support::PUBLIC_KEYS
        .iter()
        .filter(|(f, _)| *f == file)
        .map(|(_, key)| *key)
        .collect()
}

fn replay_public(dir: &Path, file: &str, with_keys: bool) -> Replay {
    let opts = Options {
        rsa_keys: if with_keys {
            keys_for(file)
                .into_iter()
                .map(|k| dir.join("keys").join(k))
                .collect()
        } else {
            Vec::new()
        },
        ..Options::default()
    };
    read(&dir.join(file), &opts)
}

/// `0xb (PROTOCOL_SSL|...)` or `PROTOCOL_HYBRID_EX (0x8)`: the number.
fn gt_number(v: &serde_json::Value) -> Option<u32> {
    let s = v.as_str()?;
    let hex = |t: &str| u32::from_str_radix(t.trim_start_matches("0x"), 16).ok();
    if let Some(rest) = s.strip_prefix("0x") {
        return hex(rest.split_whitespace().next()?);
    }
    let open = s.rfind('(')?;
    let inner = s[open + 1..].trim_end_matches(')');
    if inner.starts_with("0x") {
        hex(inner)
    } else {
        inner.parse().ok()
    }
}

/// Whether the session's TLS records were decrypted (the fact names the secret's source).
fn decrypted(t: &Trace) -> bool {
    matches!(
        fact(t, PhaseName::Tls, "decrypted"),
        Some(serde_json::Value::String(_))
    )
}

/// Whether what the ground truth knows of the inner protocol is visible to rdptrace in this trace.
fn inner_visible(t: &Trace) -> bool {
    t.phase(PhaseName::Tls).start_ms.is_none() || decrypted(t)
}

/// Checks one TCP stream of the ground truth against rdptrace's session.
fn check_ground_truth(gt: &serde_json::Value, s: &Session) {
    let t = &s.trace;
    let infos = pdus(t);
    let what = format!("{} stream {}", gt["file"], gt["stream"]);

    let cr = infos.iter().find_map(|p| match p {
        PduInfo::X224ConnectionRequest {
            cookie,
            requested_protocols,
            ..
        } => Some((cookie.clone(), *requested_protocols)),
        _ => None,
    });
    let cc = infos.iter().find_map(|p| match p {
        PduInfo::X224ConnectionConfirm { negotiation } => Some(*negotiation),
        _ => None,
    });
    match gt["requested_protocols"].as_str() {
        Some(s) if s.starts_with("no RDP_NEG_REQ") => {
            assert_eq!(cr.as_ref().map(|c| c.1), Some(None), "{what}: requested")
        }
        Some(_) => assert_eq!(
            cr.as_ref().and_then(|c| c.1),
            gt_number(&gt["requested_protocols"]),
            "{what}: requested"
        ),
        None => {}
    }
    match gt["selected_protocol"].as_str() {
        Some(s) if s.starts_with("no RDP_NEG_RSP") => {
            assert_eq!(cc, Some(Negotiation::None), "{what}: selected")
        }
        Some(s) if s.starts_with("PROTOCOL_") => match cc {
            Some(Negotiation::Response {
                selected_protocol, ..
            }) => assert_eq!(
                Some(selected_protocol),
                gt_number(&gt["selected_protocol"]),
                "{what}: selected"
            ),
            other => panic!("{what}: selected: {other:?}"),
        },
        _ => {}
    }
    if let Some(code) = gt_number(&gt["neg_failure"]) {
        assert_eq!(cc, Some(Negotiation::Failure { code }), "{what}: failure");
        assert_eq!(s.verdict.cause, Cause::NegotiationFailure, "{what}");
        assert_eq!(s.verdict.phase, Some(PhaseName::X224), "{what}");
    }
    match gt["cookie"].as_str() {
        Some(c) => {
            let want = c.trim_start_matches("Cookie: mstshash=").trim_end();
            let got = cr.as_ref().and_then(|c| c.0.clone());
            assert_eq!(
                got.as_deref().map(str::trim_end),
                Some(want),
                "{what}: cookie"
            );
        }
        None if gt["extra"]["x224_cr_seen"] == true => {
            assert_eq!(
                cr.as_ref().map(|c| c.0.clone()),
                Some(None),
                "{what}: cookie"
            )
        }
        None => {}
    }
    if let Some(v) = gt_number(&gt["tls_version"]) {
        let hello = infos.iter().find_map(|p| match p {
            PduInfo::TlsServerHello {
                version,
                cipher_suite,
            } => Some((*version, *cipher_suite)),
            _ => None,
        });
        assert_eq!(
            hello.map(|h| u32::from(h.0)),
            Some(v),
            "{what}: tls version"
        );
        assert_eq!(
            hello.map(|h| u32::from(h.1)),
            gt_number(&gt["tls_cipher"]),
            "{what}: cipher"
        );
    }
    if let Some(subject) = gt["cert_subject"].as_str() {
        assert_eq!(
            fact_str(t, PhaseName::Tls, "cert_subject").as_deref(),
            Some(subject),
            "{what}: cert subject"
        );
    }
    if gt["enc_method"].is_string() && inner_visible(t) {
        let resp = infos.iter().find_map(|p| match p {
            PduInfo::McsConnectResponse {
                encryption_method,
                encryption_level,
                ..
            } => Some((*encryption_method, *encryption_level)),
            _ => None,
        });
        assert_eq!(
            resp.and_then(|r| r.0),
            gt_number(&gt["enc_method"]),
            "{what}: encryption method"
        );
        assert_eq!(
            resp.and_then(|r| r.1),
            gt_number(&gt["enc_level"]),
            "{what}: encryption level"
        );
    }
    if let Some(name) = gt["client_name"].as_str()
        && inner_visible(t)
    {
        let core = infos.iter().find_map(|p| match p {
            PduInfo::McsConnectInitial {
                client_name,
                client_build,
                ..
            } => Some((client_name.clone(), *client_build)),
            _ => None,
        });
        assert_eq!(
            core.as_ref().and_then(|c| c.0.as_deref()),
            Some(name),
            "{what}: client name"
        );
        assert_eq!(
            core.and_then(|c| c.1).map(u64::from),
            gt["client_build"].as_u64(),
            "{what}: client build"
        );
    }
    if let Some(layout) = gt["extra"]["keyboard_layout"].as_str()
        && inner_visible(t)
    {
        assert_eq!(
            fact_str(t, PhaseName::McsConnect, "keyboard_layout").as_deref(),
            Some(layout),
            "{what}: keyboard layout"
        );
    }
    if let Some(seen) = gt["licensing_seen"].as_bool()
        && inner_visible(t)
    {
        assert_eq!(
            !t.phase(PhaseName::Licensing).pdus.is_empty(),
            seen,
            "{what}: licensing"
        );
    }
    if let Some(seen) = gt["credssp_seen"].as_bool()
        && inner_visible(t)
    {
        assert_eq!(
            infos.iter().any(|p| matches!(p, PduInfo::TsRequest { .. })),
            seen,
            "{what}: credssp"
        );
    }
    if let Some(list) = gt["error_info"].as_array()
        && inner_visible(t)
    {
        let got: Vec<u32> = infos
            .iter()
            .filter_map(|p| match p {
                PduInfo::SetErrorInfo { code } => Some(*code),
                _ => None,
            })
            .collect();
        let want: Vec<u32> = list
            .iter()
            .filter_map(|e| gt_number(&e["errorInfo"]))
            .collect();
        assert_eq!(got, want, "{what}: error info");
    }
    let end_first = gt["extra"]["end_first"].as_str().unwrap_or_default();
    let want_close = match end_first {
        "client FIN" => Some((Side::Client, CloseKind::Fin)),
        "client RST" => Some((Side::Client, CloseKind::Rst)),
        "server FIN" => Some((Side::Server, CloseKind::Fin)),
        "server RST" => Some((Side::Server, CloseKind::Rst)),
        _ => None,
    };
    assert_eq!(first_close(t), want_close, "{what}: end ({end_first})");
    if want_close.is_none() {
        assert!(
            t.events()
                .any(|(_, e)| matches!(e.kind, EventKind::CaptureEnded)),
            "{what}: capture end"
        );
    }
}

/// Every TCP stream of the ground truth, in every file (the NetMon .cap files included).
#[test]
fn public_captures_agree_with_the_ground_truth() {
    let Some(dir) = public() else { return };
    let text = std::fs::read_to_string(dir.join("ground_truth.json")).unwrap();
    let truth: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    let mut files: Vec<&str> = truth
        .iter()
        .filter(|g| g["extra"]["transport"] == "tcp")
        .filter_map(|g| g["file"].as_str())
        .collect();
    files.dedup();
    for file in files {
        let r = replay_public(&dir, file, true);
        assert!(r.error.is_none(), "{file}: {:?}", r.error);
        for gt in truth
            .iter()
            .filter(|g| g["file"] == file && g["extra"]["transport"] == "tcp")
        {
            let client = gt["client"].as_str().unwrap();
            let s = session(&r, client);
            assert_eq!(
                s.trace.server_addr.as_deref(),
                gt["server"].as_str(),
                "{file}"
            );
            if gt["extra"]["tls_decrypted_with_published_key"].is_string()
                && !keys_for(file).is_empty()
            {
                assert!(decrypted(&s.trace), "{file} {client}: not decrypted");
            }
            check_ground_truth(gt, s);
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} streams checked");
}

#[test]
fn proprietary_encryption_negotiation_failure_then_standard_security() {
    let Some(dir) = public() else { return };
    let r = replay_public(&dir, "zeek/rdp-proprietary-encryption.pcap", false);
    assert_eq!(r.sessions.len(), 2);
    let first = &r.sessions[0];
    assert_eq!(first.verdict.cause, Cause::NegotiationFailure);
    assert_eq!(first.verdict.phase, Some(PhaseName::X224));
    assert!(pdus(&first.trace).iter().any(|p| matches!(
        p,
        PduInfo::X224ConnectionConfirm {
            negotiation: Negotiation::Failure { code: 2 }
        }
    )));
    // The retry with Standard RDP Security: the client core data in clear.
    let second = &r.sessions[1];
    let t = &second.trace;
    assert_eq!(
        fact_str(t, PhaseName::McsConnect, "client_name").as_deref(),
        Some("FROG-POND")
    );
    assert_eq!(
        fact(t, PhaseName::McsConnect, "client_build"),
        Some(6000.into())
    );
    assert_eq!(
        fact_str(t, PhaseName::McsConnect, "keyboard_layout").as_deref(),
        Some("0x00000409")
    );
    assert_eq!(
        fact_str(t, PhaseName::McsConnect, "desktop").as_deref(),
        Some("1152x864")
    );
    assert_eq!(
        fact_str(t, PhaseName::McsConnect, "server_selected_protocol").as_deref(),
        Some("PROTOCOL_RDP")
    );
    // Encrypted from the Security Exchange on; the server's fast-path output shows the session went
    // active, and the client ended it.
    assert!(second.verdict.ok, "{:?}", second.verdict);
    assert!(
        pdus(t)
            .iter()
            .any(|p| matches!(p, PduInfo::DisconnectProviderUltimatum { .. }))
            || t.phase(PhaseName::Active)
                .tallies
                .iter()
                .any(|x| x.name.contains("Disconnect"))
    );
}

#[test]
fn odd_framing_and_odd_streams() {
    let Some(dir) = public() else { return };
    // BSD loopback.
    let r = replay_public(&dir, "ndpi/rdp.pcap", false);
    assert_eq!(r.sessions.len(), 1);
    assert_eq!(
        fact_str(&r.sessions[0].trace, PhaseName::Tls, "cert_subject").as_deref(),
        Some("CN=OFFICE-WIN10-VM")
    );
    // 802.1Q.
    let r = replay_public(&dir, "ndpi/rdp_over_tls.pcap", false);
    assert_eq!(r.sessions.len(), 1);
    // Every packet twice: no gap, no duplicate PDU.
    let r = replay_public(&dir, "zeek/rdp-no-cookie-mstshash.pcap", false);
    let t = &r.sessions[0].trace;
    assert!(gaps(t).is_empty());
    assert_eq!(
        pdus(t)
            .iter()
            .filter(|p| matches!(p, PduInfo::X224ConnectionRequest { .. }))
            .count(),
        1
    );
    // The fuzzed one: anomalies and protocol errors, no panic.
    let r = replay_public(&dir, "zeek/rdp-invalid-length.pcap", false);
    let s = &r.sessions[0];
    assert!(s.trace.events().any(|(_, e)| matches!(
        &e.kind,
        EventKind::Anomaly { detail } if detail.contains("negotiation length")
    )));
    assert_eq!(s.verdict.cause, Cause::ProtocolError);
    // RDP sent to a Modbus device on port 502, among Modbus connections.
    let r = replay_public(&dir, "zeek/modbus-and-non-modbus-p502.pcap", false);
    assert_eq!(r.sessions.len(), 1);
    let t = &r.sessions[0].trace;
    assert_eq!(t.target, "192.168.10.111:502");
    assert_eq!(
        fact_str(t, PhaseName::X224, "cookie").as_deref(),
        Some("admin")
    );
    let idle = fact(t, PhaseName::X224, "idle_before_close_ms")
        .and_then(|v| v.as_f64())
        .unwrap();
    assert!(idle > 30_000.0, "{idle}");
    // SOCKS5: the X.224 exchange inside the tunnel.
    let r = replay_public(&dir, "arkime/socks5-rdp.pcap", false);
    assert_eq!(r.sessions.len(), 1);
    let t = &r.sessions[0].trace;
    assert_eq!(
        fact_str(t, PhaseName::Tcp, "tunnel").as_deref(),
        Some("SOCKS5 CONNECT to 10.0.0.1:3389")
    );
    assert!(pdus(t).iter().any(|p| matches!(
        p,
        PduInfo::X224ConnectionConfirm {
            negotiation: Negotiation::Response {
                selected_protocol: 0,
                ..
            }
        }
    )));
    // UDP only: no RDP session over TCP.
    let r = replay_public(&dir, "zeek/rdpeudp-handshake-fail.pcap", false);
    assert!(r.sessions.is_empty());
    // NetMon is read, its metadata frames skipped with a note.
    let r = replay_public(&dir, "wireshark-wiki/win2k19-joined.cap", false);
    assert_eq!(r.sessions.len(), 2);
    assert!(
        r.notes.iter().any(|n| n.contains("Network Monitor")),
        "{:?}",
        r.notes
    );
    let _ = AuthToken::NtlmNegotiate;
}

// ---- decryption with the published RSA keys -----------------------------------------------------------

fn ts_requests(t: &Trace) -> Vec<(Side, Option<AuthToken>, Option<u32>)> {
    t.pdus()
        .filter_map(|(_, p)| match &p.info {
            PduInfo::TsRequest {
                token, error_code, ..
            } => Some((p.from, token.clone(), *error_code)),
            _ => None,
        })
        .collect()
}

#[test]
fn rsa_key_exchange_decrypted_to_the_credssp_error() {
    let Some(dir) = public() else { return };
    for file in [
        "wireshark-wiki/win2k19-joined.eth.pcapng",
        "wireshark-wiki/TSRemoteGuardCreds.eth.pcapng",
    ] {
        let r = replay_public(&dir, file, true);
        assert_eq!(r.sessions.len(), 2, "{file}");
        let s = &r.sessions[0];
        let t = &s.trace;
        assert_eq!(
            fact_str(t, PhaseName::Tls, "decrypted").as_deref(),
            Some("RSA key wireshark-wiki-ws-credssp.key"),
            "{file}"
        );
        let reqs = ts_requests(t);
        assert!(
            matches!(
                reqs[0],
                (Side::Client, Some(AuthToken::NtlmNegotiate), None)
            ),
            "{file}: {reqs:?}"
        );
        assert!(
            matches!(
                &reqs[1],
                (Side::Server, Some(AuthToken::NtlmChallenge(info)), None)
                    if info.dns_computer.as_deref() == Some("adc.ACME.COM")
            ),
            "{file}: {reqs:?}"
        );
        assert!(
            matches!(
                &reqs[2],
                (Side::Client, Some(AuthToken::NtlmAuthenticate { user: Some(u), .. }), None) if u == "admin"
            ),
            "{file}: {reqs:?}"
        );
        // [MS-ERREF] 2.3.1 STATUS_ACCOUNT_RESTRICTION.
        assert_eq!(reqs[3].0, Side::Server);
        assert_eq!(reqs[3].2, Some(0xc000_006e), "{file}");
        assert_eq!(s.verdict.cause, Cause::CredsspError, "{file}");
        assert_eq!(s.verdict.phase, Some(PhaseName::Credssp), "{file}");
        assert_eq!(
            first_close(t),
            Some((Side::Client, CloseKind::Rst)),
            "{file}"
        );
        // The retry with Kerberos reaches the active state.
        let second = &r.sessions[1];
        assert!(second.verdict.ok, "{file}: {:?}", second.verdict);
        assert!(ts_requests(&second.trace).iter().any(|(_, t, _)| matches!(
            t,
            Some(AuthToken::Kerberos { .. }) | Some(AuthToken::Spnego { .. })
        )));
        assert_eq!(
            fact_str(&second.trace, PhaseName::McsConnect, "client_name").as_deref(),
            Some("AWS")
        );
    }
}

#[test]
fn rsa_decryption_tls10_cbc_from_the_client_hello() {
    let Some(dir) = public() else { return };
    // Starts at the ClientHello: no handshake, no X.224 in the capture.
    let r = replay_public(&dir, "wireshark-wiki/rdp-ssl.pcap.gz", true);
    assert_eq!(r.sessions.len(), 1);
    let s = &r.sessions[0];
    let t = &s.trace;
    assert_eq!(
        fact_str(t, PhaseName::Tls, "decrypted").as_deref(),
        Some("RSA key wireshark-wiki-rdp-ssl.key")
    );
    assert!(fact_str(t, PhaseName::Tcp, "handshake").is_some());
    assert!(t.phase(PhaseName::X224).pdus.is_empty());
    let infos = pdus(t);
    assert!(infos.iter().any(|p| matches!(
        p,
        PduInfo::TsRequest {
            auth_info: true,
            ..
        }
    )));
    assert!(infos.iter().any(|p| matches!(
        p,
        PduInfo::License {
            message: rdptrace::pdu::LicenseMessage::PlatformChallenge
        }
    )));
    assert!(
        infos
            .iter()
            .any(|p| matches!(p, PduInfo::DemandActive { .. }))
    );
    // Client Info: user and domain, whether a password was there, never the password.
    let info = infos.iter().find_map(|p| match p {
        PduInfo::ClientInfo {
            password_present, ..
        } => Some(*password_present),
        _ => None,
    });
    assert!(info.is_some());
    let json = rdptrace::report::json::line(t, &s.verdict);
    assert!(!json.to_ascii_lowercase().contains("\"password\""));
    assert!(s.verdict.ok, "{:?}", s.verdict);
    assert!(
        t.events()
            .any(|(_, e)| matches!(e.kind, EventKind::CaptureEnded))
    );
}

#[test]
fn rsa_decryption_without_a_tcp_handshake_on_port_1337() {
    let Some(dir) = public() else { return };
    let r = replay_public(&dir, "freerdp-old/rdp_tls_ntlmssp_access_denied.pcap", true);
    let s = &r.sessions[0];
    let t = &s.trace;
    assert_eq!(t.target, "192.168.1.110:1337");
    assert_eq!(
        fact_str(t, PhaseName::Tls, "decrypted").as_deref(),
        Some("RSA key freerdp-old-server.key")
    );
    let reqs = ts_requests(t);
    assert_eq!(reqs.len(), 3);
    assert!(
        matches!(
            &reqs[2],
            (Side::Client, Some(AuthToken::NtlmAuthenticate { user: Some(u), domain: Some(d), .. }), None)
                if u == "username" && d == "FREERDP"
        ),
        "{reqs:?}"
    );
    // The capture ends after the client's AUTHENTICATE: the answer is not in the file.
    assert_eq!(s.verdict.cause, Cause::CaptureEnded);
    assert_eq!(s.verdict.phase, Some(PhaseName::Credssp));
}

#[test]
fn rsa_decryption_tls12_cbc_with_kerberos_and_close_notify() {
    let Some(dir) = public() else { return };
    // Linux cooked v2, every packet twice.
    let r = replay_public(&dir, "wireshark-wiki/freerdp-client-krb5.pcapng", true);
    assert_eq!(r.sessions.len(), 1);
    let s = &r.sessions[0];
    let t = &s.trace;
    assert!(gaps(t).is_empty());
    assert!(
        ts_requests(t)
            .iter()
            .all(|(_, tok, _)| !matches!(tok, Some(AuthToken::NtlmNegotiate)))
    );
    assert!(pdus(t).iter().any(|p| matches!(
        p,
        PduInfo::TlsAlert {
            level: Some(1),
            description: Some(0),
            ..
        }
    )));
    assert!(s.verdict.ok, "{:?}", s.verdict);
    assert_eq!(first_close(t), Some((Side::Client, CloseKind::Fin)));
}

#[test]
fn undecrypted_sessions_say_why() {
    let Some(dir) = public() else { return };
    // TLS 1.0 with RSA key exchange, the server key not published (MANIFEST.md).
    let r = replay_public(&dir, "zeek/rdp-to-ssl.pcap", false);
    assert_eq!(r.sessions.len(), 2);
    for s in &r.sessions {
        let t = &s.trace;
        assert_eq!(fact(t, PhaseName::Tls, "decrypted"), Some(false.into()));
        let why = fact_str(t, PhaseName::Tls, "not_decrypted").unwrap();
        assert!(why.contains("--rsa-key"), "{why}");
        // The handshake completed: what follows is NLA, encrypted.
        assert_eq!(
            t.phase(PhaseName::Tls).status,
            rdptrace::trace::PhaseStatus::Ok
        );
        assert_eq!(first_close(t), Some((Side::Client, CloseKind::Fin)));
        // What follows the handshake is read from the sizes of the records, and said to be.
        assert!(s.verdict.inferred.is_some(), "{:?}", s.verdict);
    }
    // ECDHE: a server key cannot help.
    let r = replay_public(&dir, "ndpi/rdp_over_tls.pcap", false);
    let why = fact_str(&r.sessions[0].trace, PhaseName::Tls, "not_decrypted").unwrap();
    assert!(why.contains("ephemeral"), "{why}");
    // The wrong key.
    let opts = Options {
        rsa_keys: vec![dir.join("keys/freerdp-old-server.key")],
        ..Options::default()
    };
    let r = read(&dir.join("wireshark-wiki/win2k19-joined.eth.pcapng"), &opts);
    let why = fact_str(&r.sessions[0].trace, PhaseName::Tls, "not_decrypted").unwrap();
    assert!(why.contains("none of the RSA keys"), "{why}");
}

// ---- decryption with a key log: TLS sessions made here with rustls -------------------------------------

/// Collects the secrets rustls logs, in the NSS key log format.
#[derive(Debug, Default)]
struct KeyLogLines(std::sync::Mutex<String>);

impl rustls::KeyLog for KeyLogLines {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if let Ok(mut s) = self.0.lock() {
            s.push_str(&format!(
                "{label} {} {}\n",
                hex::encode(client_random),
                hex::encode(secret)
            ));
        }
    }
}

/// [T.123] TPKT and [X.224] Data TPDU around an MCS PDU.
fn x224_data(mcs: &[u8]) -> Vec<u8> {
    let len = 7 + mcs.len();
    let mut out = vec![0x03, 0x00, (len >> 8) as u8, len as u8, 0x02, 0xf0, 0x80];
    out.extend_from_slice(mcs);
    out
}

/// What each side put on the wire, in order (`true` for the client).
type Wire = Vec<(bool, Vec<u8>)>;

/// Moves TLS bytes between the two in-memory endpoints until neither has anything to send.
fn pump(
    client: &mut rustls::ClientConnection,
    server: &mut rustls::ServerConnection,
    wire: &mut Wire,
) {
    for _ in 0..64 {
        let mut moved = false;
        while client.wants_write() {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            if buf.is_empty() {
                break;
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets().unwrap();
            }
            wire.push((true, buf));
            moved = true;
        }
        while server.wants_write() {
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            if buf.is_empty() {
                break;
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets().unwrap();
            }
            wire.push((false, buf));
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the TLS endpoints did not settle");
}

/// An RDP session over TLS made with rustls: X.224 selecting PROTOCOL_SSL, the TLS handshake, MCS Erect
/// Domain and Attach User, (TLS 1.3: a client KeyUpdate,) a Channel Join, then the server's Disconnect
/// Provider Ultimatum and close_notify. Returns the bytes on the wire and the key log.
fn rustls_session(
    suite: rustls::SupportedCipherSuite,
    version: &'static rustls::SupportedProtocolVersion,
) -> (Wire, String) {
    use std::io::Write as _;
    let certified = rcgen::generate_simple_self_signed(vec!["rdp.test".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::from(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = || {
        let mut p = rustls::crypto::ring::default_provider();
        p.cipher_suites = vec![suite];
        std::sync::Arc::new(p)
    };
    let server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let log = std::sync::Arc::new(KeyLogLines::default());
    client_config.key_log = log.clone();
    let mut client = rustls::ClientConnection::new(
        std::sync::Arc::new(client_config),
        "rdp.test".try_into().unwrap(),
    )
    .unwrap();
    let mut server = rustls::ServerConnection::new(std::sync::Arc::new(server_config)).unwrap();

    let mut wire: Wire = vec![(true, x224_cr("tls", 1)), (false, x224_cc(false, 1))];
    pump(&mut client, &mut server, &mut wire);
    assert!(!client.is_handshaking() && !server.is_handshaking());
    // Erect Domain Request, Attach User Request; Attach User Confirm (user 1007).
    let mut out = x224_data(&[0x04, 0x01, 0x00, 0x01, 0x00]);
    out.extend_from_slice(&x224_data(&[0x28]));
    client.writer().write_all(&out).unwrap();
    pump(&mut client, &mut server, &mut wire);
    server
        .writer()
        .write_all(&x224_data(&[0x2e, 0x00, 0x00, 0x06]))
        .unwrap();
    pump(&mut client, &mut server, &mut wire);
    if version == &rustls::version::TLS13 {
        client.refresh_traffic_keys().unwrap();
    }
    // Channel Join Request for the I/O channel, in two TLS writes.
    let join = x224_data(&[0x38, 0x00, 0x06, 0x03, 0xeb]);
    client.writer().write_all(&join[..4]).unwrap();
    pump(&mut client, &mut server, &mut wire);
    client.writer().write_all(&join[4..]).unwrap();
    pump(&mut client, &mut server, &mut wire);
    // Disconnect Provider Ultimatum, rn-user-requested; close_notify.
    server
        .writer()
        .write_all(&x224_data(&[0x21, 0x80]))
        .unwrap();
    server.send_close_notify();
    pump(&mut client, &mut server, &mut wire);
    let text = log.0.lock().unwrap().clone();
    (wire, text)
}

/// The bytes of `wire` as a TCP connection in a pcap: handshake, segments of at most 1400 bytes, the
/// server's FIN, the client's FIN.
fn wire_pcap(wire: &Wire, name: &str) -> PathBuf {
    let mut pcap = Pcap::new(1);
    let mut c = Conv::new(&mut pcap, CLIENT, SERVER, 0);
    c.handshake();
    for (from_client, bytes) in wire {
        for chunk in bytes.chunks(1400) {
            if *from_client {
                c.client(chunk);
            } else {
                c.server(chunk);
            }
        }
    }
    c.server_fin();
    c.client_fin();
    pcap.write(name)
}

fn assert_decrypted_session(s: &Session, source: &str, what: &str) {
    let t = &s.trace;
    assert_eq!(
        fact_str(t, PhaseName::Tls, "decrypted").as_deref(),
        Some(source),
        "{what}: {:?}",
        fact_str(t, PhaseName::Tls, "not_decrypted")
    );
    assert_eq!(fact(t, PhaseName::Tls, "decrypt_failures"), None, "{what}");
    let infos = pdus(t);
    assert!(
        infos
            .iter()
            .any(|p| matches!(p, PduInfo::ErectDomainRequest)),
        "{what}"
    );
    assert!(
        infos
            .iter()
            .any(|p| matches!(p, PduInfo::AttachUserRequest)),
        "{what}"
    );
    assert!(
        infos.iter().any(|p| matches!(
            p,
            PduInfo::AttachUserConfirm {
                result: 0,
                user_id: Some(1007)
            }
        )),
        "{what}"
    );
    assert!(
        infos.iter().any(|p| matches!(
            p,
            PduInfo::ChannelJoinRequest {
                user_id: 1007,
                channel_id: 1003
            }
        )),
        "{what}"
    );
    assert!(
        infos
            .iter()
            .any(|p| matches!(p, PduInfo::DisconnectProviderUltimatum { reason: 3 })),
        "{what}"
    );
    assert!(
        infos.iter().any(|p| matches!(
            p,
            PduInfo::TlsAlert {
                level: Some(1),
                description: Some(0),
                ..
            }
        )),
        "{what}: close_notify"
    );
    assert_eq!(s.verdict.cause, Cause::DisconnectedByServer, "{what}");
    assert_eq!(s.verdict.phase, Some(PhaseName::ChannelJoin), "{what}");
}

#[test]
fn key_log_decrypts_tls13_with_every_suite_and_a_key_update() {
    use rustls::crypto::ring::cipher_suite as cs;
    for suite in [
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ] {
        let what = format!("{:?}", suite.suite());
        let (wire, keylog) = rustls_session(suite, &rustls::version::TLS13);
        assert!(keylog.contains("SERVER_HANDSHAKE_TRAFFIC_SECRET"));
        let path = wire_pcap(&wire, "tls13.pcap");
        let log_path = tmp("tls13.keys");
        std::fs::write(&log_path, &keylog).unwrap();
        let with = read(
            &path,
            &Options {
                keylog: Some(log_path),
                ..Options::default()
            },
        );
        assert_eq!(with.sessions.len(), 1);
        let s = &with.sessions[0];
        assert_decrypted_session(s, "key log", &what);
        // TLS 1.3: the certificate comes out of the decrypted handshake.
        assert_eq!(
            fact_str(&s.trace, PhaseName::Tls, "tls_version").as_deref(),
            Some("TLS 1.3")
        );
        assert!(
            pdus(&s.trace)
                .iter()
                .any(|p| matches!(p, PduInfo::TlsCertificate { chain } if chain.len() == 1))
        );

        let without = read(&path, &Options::default());
        let t = &without.sessions[0].trace;
        assert_eq!(fact(t, PhaseName::Tls, "decrypted"), Some(false.into()));
        assert!(
            fact_str(t, PhaseName::Tls, "not_decrypted")
                .unwrap()
                .contains("key log")
        );
    }
}

#[test]
fn key_log_decrypts_tls12_ecdhe() {
    use rustls::crypto::ring::cipher_suite as cs;
    for suite in [
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        let what = format!("{:?}", suite.suite());
        let (wire, keylog) = rustls_session(suite, &rustls::version::TLS12);
        assert!(keylog.starts_with("CLIENT_RANDOM "));
        let path = wire_pcap(&wire, "tls12.pcap");
        let log_path = tmp("tls12.keys");
        std::fs::write(&log_path, &keylog).unwrap();
        let r = read(
            &path,
            &Options {
                keylog: Some(log_path),
                ..Options::default()
            },
        );
        assert_decrypted_session(&r.sessions[0], "key log", &what);
        // Secrets of another session authenticate nothing.
        let (_, other) = rustls_session(suite, &rustls::version::TLS12);
        let other_random = other.split_whitespace().nth(1).unwrap().to_owned();
        let mine_random = keylog.split_whitespace().nth(1).unwrap();
        let wrong = other.replace(&other_random, mine_random);
        let log_path = tmp("tls12-wrong.keys");
        std::fs::write(&log_path, wrong).unwrap();
        let r = read(
            &path,
            &Options {
                keylog: Some(log_path),
                ..Options::default()
            },
        );
        let t = &r.sessions[0].trace;
        assert_eq!(
            fact(t, PhaseName::Tls, "decrypted"),
            Some(false.into()),
            "{what}"
        );
        assert!(
            fact_str(t, PhaseName::Tls, "not_decrypted")
                .unwrap()
                .contains("did not authenticate")
        );
    }
}

#[test]
fn a_key_log_that_holds_nothing_is_an_error() {
    let path = neg_failure_capture("any.pcap");
    let log_path = tmp("empty.keys");
    std::fs::write(&log_path, "# nothing\n").unwrap();
    let err = replay::replay(
        &path,
        &Options {
            keylog: Some(log_path.clone()),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with(&log_path.display().to_string()),
        "{err}"
    );
    let key_path = tmp("not-a-key.pem");
    std::fs::write(&key_path, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let err = replay::replay(
        &path,
        &Options {
            rsa_keys: vec![key_path],
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no unencrypted PEM private key"),
        "{err}"
    );
}

// ---- pcapng: several interfaces, timestamp resolutions, decryption secrets ----------------------------

/// A pcapng file, little endian, written block by block ([pcapng] 4).
struct PcapNg {
    buf: Vec<u8>,
}

impl PcapNg {
    fn new() -> Self {
        let mut ng = PcapNg { buf: Vec::new() };
        let mut body = Vec::new();
        body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        ng.block(0x0a0d_0d0a, &body);
        ng
    }

    fn block(&mut self, kind: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        self.buf.extend_from_slice(&kind.to_le_bytes());
        self.buf.extend_from_slice(&total.to_le_bytes());
        self.buf.extend_from_slice(body);
        self.buf.resize(self.buf.len() + padded - body.len(), 0);
        self.buf.extend_from_slice(&total.to_le_bytes());
    }

    /// [pcapng] 4.2 with if_tsresol (9) when `tsresol` is given.
    fn interface(&mut self, link: u16, tsresol: Option<u8>) {
        let mut body = Vec::new();
        body.extend_from_slice(&link.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        if let Some(r) = tsresol {
            body.extend_from_slice(&9u16.to_le_bytes());
            body.extend_from_slice(&1u16.to_le_bytes());
            body.extend_from_slice(&[r, 0, 0, 0]);
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(1, &body);
    }

    /// [pcapng] 4.7 Decryption Secrets Block with a TLS key log.
    fn secrets(&mut self, text: &str) {
        let mut body = Vec::new();
        body.extend_from_slice(&0x544c_534bu32.to_le_bytes());
        body.extend_from_slice(&(text.len() as u32).to_le_bytes());
        body.extend_from_slice(text.as_bytes());
        body.resize(body.len().div_ceil(4) * 4, 0);
        self.block(0x0a, &body);
    }

    /// [pcapng] 4.3 Enhanced Packet Block; `ts` in the interface's units.
    fn packet(&mut self, iface: u32, ts: u64, data: &[u8]) {
        let mut body = Vec::new();
        body.extend_from_slice(&iface.to_le_bytes());
        body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        body.resize(body.len().div_ceil(4) * 4, 0);
        self.block(6, &body);
    }
}

#[test]
fn pcapng_interfaces_resolutions_and_decryption_secrets() {
    use rustls::crypto::ring::cipher_suite as cs;
    let (wire, keylog) = rustls_session(cs::TLS13_AES_256_GCM_SHA384, &rustls::version::TLS13);
    let plain = wire_pcap(&wire, "for-pcapng.pcap");
    // Client packets on an Ethernet interface in microseconds, server packets on a raw IPv4 interface
    // in nanoseconds; the key log inside the file.
    let mut ng = PcapNg::new();
    ng.interface(1, None);
    ng.interface(101, Some(9));
    ng.secrets(&keylog);
    let mut capture = rdptrace::replay::capture::Capture::open(&plain, None).unwrap();
    let mut count = 0;
    while let Some(item) = capture.next_item() {
        let rdptrace::replay::capture::Item::Packet(p) = item.unwrap() else {
            continue;
        };
        let from_client = p.data[26..30] == [10, 0, 0, 1];
        if from_client {
            ng.packet(0, p.ts.as_micros() as u64, &p.data);
        } else {
            ng.packet(1, p.ts.as_nanos() as u64, &p.data[14..]);
        }
        count += 1;
    }
    assert!(count > 10);
    let path = tmp("secrets.pcapng");
    std::fs::write(&path, &ng.buf).unwrap();

    let r = read(&path, &Options::default());
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.sessions.len(), 1);
    let s = &r.sessions[0];
    assert_decrypted_session(s, "pcapng decryption secrets", "pcapng");
    // The same times as the pcap: the two resolutions agree.
    let from_pcap = read(&plain, &Options::default());
    let times = |t: &Trace| t.events().map(|(_, e)| e.at_ms).collect::<Vec<_>>();
    assert_eq!(times(&s.trace), times(&from_pcap.sessions[0].trace));
    assert_eq!(s.trace.started_at, from_pcap.sessions[0].trace.started_at);
    assert!(r.notes.iter().any(|n| n.contains("key log block")));
}

// ---- snapshots of the timeline --------------------------------------------------------------------------

fn timeline(s: &Session) -> String {
    rdptrace::report::text::render(
        &s.trace,
        &s.verdict,
        rdptrace::report::text::Options { verbose: true },
    )
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({
        filters => vec![
            (r"rdptrace \d+\.\d+\.\d+(-[0-9A-Za-z.]+)?", "rdptrace [version]"),
            (r"replay of \S*/replay/", "replay of [tmp]/"),
        ],
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn snapshot_synthetic_refused_connection() {
    let mut pcap = Pcap::new(1);
    let client: SocketAddr = "10.0.0.1:40001".parse().unwrap();
    let server: SocketAddr = SERVER.parse().unwrap();
    pcap.packet(0, &tcp_frame(client, server, 100, 0, S, &[]));
    pcap.packet(300, &tcp_frame(server, client, 0, 101, RA, &[]));
    let path = pcap.write("snapshot-refused.pcap");
    let r = read(&path, &Options::default());
    snapshot("replay_refused", &timeline(&r.sessions[0]));
}

#[test]
fn snapshot_public_sessions() {
    let Some(dir) = public() else { return };
    let r = replay_public(&dir, "zeek/rdp-proprietary-encryption.pcap", false);
    snapshot("replay_negotiation_failure", &timeline(&r.sessions[0]));
    let r = replay_public(&dir, "ndpi/rdp3.pcap", false);
    snapshot(
        "replay_standard_security_capture_ends",
        &timeline(&r.sessions[0]),
    );
    let r = replay_public(&dir, "wireshark-wiki/win2k19-joined.eth.pcapng", true);
    snapshot("replay_decrypted_credssp_error", &timeline(&r.sessions[0]));
}

// ---- robustness ------------------------------------------------------------------------------------------

/// Damaged captures (bytes flipped anywhere, files cut short) give sessions, anomalies or an error; never
/// a panic. Deterministic: a fixed xorshift sequence chooses the damage.
#[test]
fn damaged_captures_never_panic() {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut inputs: Vec<(Vec<u8>, Options)> = Vec::new();
    let (wire, keylog) = rustls_session(cs::TLS13_AES_128_GCM_SHA256, &rustls::version::TLS13);
    let log_path = tmp("damage.keys");
    std::fs::write(&log_path, &keylog).unwrap();
    inputs.push((
        std::fs::read(wire_pcap(&wire, "damage-tls13.pcap")).unwrap(),
        Options {
            keylog: Some(log_path),
            ..Options::default()
        },
    ));
    inputs.push((
        std::fs::read(neg_failure_capture("damage-neg.pcap")).unwrap(),
        Options::default(),
    ));
    if let Some(dir) = public() {
        for (file, key) in [
            ("zeek/rdp-no-cookie-mstshash.pcap", None),
            ("zeek/rdp-x509.pcap", None),
            ("ndpi/rdp.pcap", None),
            ("arkime/socks5-rdp.pcap", None),
            (
                "freerdp-old/rdp_tls_ntlmssp_access_denied.pcap",
                Some("freerdp-old-server.key"),
            ),
        ] {
            inputs.push((
                std::fs::read(dir.join(file)).unwrap(),
                Options {
                    rsa_keys: key.map(|k| dir.join("keys").join(k)).into_iter().collect(),
                    ..Options::default()
                },
            ));
        }
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let path = tmp("damaged.pcap");
    let mut runs = 0;
    for (bytes, opts) in &inputs {
        for round in 0..40 {
            let mut b = bytes.clone();
            // Leave the file header alone half of the time, so that most runs reach the packets.
            let from = if round % 2 == 0 { 24 } else { 0 };
            for _ in 0..(1 + next() % 8) {
                let at = from + (next() as usize) % (b.len() - from);
                b[at] ^= (next() % 255 + 1) as u8;
            }
            if round % 5 == 4 {
                let keep = from + (next() as usize) % (b.len() - from);
                b.truncate(keep);
            }
            std::fs::write(&path, &b).unwrap();
            let _ = replay::replay(&path, opts);
            runs += 1;
        }
    }
    assert!(runs >= 80);
}

/// More connections open at once than the flow table holds (connections that carry nothing, opened all
/// through two real sessions): those give way, never a session that carried data, and the notes say how
/// many went and of which kind.
#[test]
fn over_the_limit_the_connections_without_data_go_first_and_are_counted() {
    let path = tmp("limit.pcap");
    support::flood::flood(&path, 30_000, false, 500, true);
    for threads in [1, 2] {
        let r = replay::replay(
            &path,
            &Options {
                limits: rdptrace::replay::session::Limits {
                    max_connections: 1_000,
                    ..rdptrace::replay::session::Limits::default()
                },
                threads,
                ..Options::default()
            },
        )
        .expect("replay");
        let with_data: Vec<_> = r
            .sessions
            .iter()
            .filter(|s| s.trace.phases.iter().any(|p| p.bytes_in > 0))
            .collect();
        assert_eq!(with_data.len(), 2, "threads {threads}");
        assert!(
            with_data.iter().any(|s| s.verdict.ok),
            "the healthy session is whole (threads {threads})"
        );
        assert!(r.drops.no_data > 0, "{:?}", r.drops);
        assert_eq!(r.drops.sessions, 0, "{:?}", r.drops);
        let notes = r.notes.join("\n");
        assert!(
            notes.contains("connection(s) that carried no data were settled early"),
            "{notes}"
        );
        assert!(
            !notes.contains("RDP session"),
            "no session was cut: {notes}"
        );
    }
}

/// A real client's SYN among a flood, answered after more SYNs than the flow table keeps waiting: its
/// attempt says it was settled early (not "never answered"), and its session says its SYN may be that one.
#[test]
fn a_syn_settled_early_to_make_room_is_said_to_be() {
    let path = tmp("settled-early.pcap");
    support::flood::flood(&path, 3_000, false, 100, false);
    let r = replay::replay(
        &path,
        &Options {
            limits: rdptrace::replay::session::Limits {
                max_connections: 100,
                ..rdptrace::replay::session::Limits::default()
            },
            threads: 1,
            // The port the healthy fixture's server listens on: an attempt there is reported.
            ports: vec![34707],
            ..Options::default()
        },
    )
    .expect("replay");
    let healthy = r
        .sessions
        .iter()
        .find(|s| s.verdict.ok)
        .expect("the healthy session");
    let handshake = healthy
        .trace
        .phase(PhaseName::Tcp)
        .facts
        .get(Fact::Handshake)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        handshake.contains("settled early as an unanswered connection attempt"),
        "{handshake}"
    );
    let early = r
        .sessions
        .iter()
        .filter(|s| s.trace.client_addr == healthy.trace.client_addr)
        .flat_map(|s| s.trace.phase(PhaseName::Tcp).events.iter())
        .any(|e| {
            matches!(&e.kind, EventKind::Anomaly { detail } if detail.contains("settled this attempt before its timeout"))
        });
    assert!(early, "the client's attempt says it was settled early");
}
