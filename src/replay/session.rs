//! TCP connections in a capture, which of them are RDP, and one [`Dissector`] and [`Trace`] per RDP session.
//!
//! Packets come in file order. Each connection keeps the state of its TCP handshake and a reassembler per
//! direction; until its first bytes say whether it is RDP, those bytes wait in a bounded buffer. An RDP
//! session gets its trace (the tcp phase from the handshake, the rest from the dissector) and is finished
//! when both sides closed, one reset, or the capture ends.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::gateway::{GatewayConn, Tunnels, Verdict as GatewayVerdict};
use super::link::{Frame, Segment};
use super::reassembly::{Delivery, Stream};
use super::redirect::Pending;
use super::tls_decrypt::{Decryptor, Secrets, StatusHandle};
use crate::dissect::Dissector;
use crate::pdu::PduInfo;
use crate::trace::Fact;
use crate::trace::{CloseKind, ConnectError, EventKind, Millis, Origin, PhaseName, Side, Trace};

/// The port RDP listens on unless told otherwise.
pub const RDP_PORT: u16 = 3389;
/// Connections followed at once (RDP or not); over it the least recently active are dropped.
pub const MAX_CONNECTIONS: usize = 1 << 16;
/// Bytes a connection may hold before rdptrace knows whether it is RDP.
const MAX_UNDECIDED: usize = 1 << 16;
/// SYNs closer together than this are the same SYN captured twice, not a retransmission.
const SAME_PACKET: Duration = Duration::from_millis(200);

/// Limits of a replay; the defaults suit any capture, tests make them small.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_pending: super::reassembly::MAX_PENDING,
        }
    }
}

/// One RDP session read from the capture, finished.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Time of the session's first packet since the Unix epoch.
    pub first_ts: Duration,
    /// Creation order, to keep the order stable for sessions that start in the same microsecond.
    pub order: u64,
    pub trace: Trace,
}

/// One end of a connection: `A` sent the first packet seen, `B` the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    A,
    B,
}

impl End {
    const BOTH: [End; 2] = [End::A, End::B];

    fn other(self) -> End {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }
}

/// A value for each end of a connection, indexed by [`End`] (so never out of bounds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PerEnd<T>([T; 2]);

impl<T> PerEnd<T> {
    fn iter(&self) -> core::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<T> core::ops::Index<End> for PerEnd<T> {
    type Output = T;

    fn index(&self, end: End) -> &T {
        let [a, b] = &self.0;
        match end {
            End::A => a,
            End::B => b,
        }
    }
}

impl<T> core::ops::IndexMut<End> for PerEnd<T> {
    fn index_mut(&mut self, end: End) -> &mut T {
        let [a, b] = &mut self.0;
        match end {
            End::A => a,
            End::B => b,
        }
    }
}

/// The two ends of a connection, in the order of the first packet seen.
type FlowKey = (SocketAddr, SocketAddr);

fn key(a: SocketAddr, b: SocketAddr) -> FlowKey {
    if a <= b { (a, b) } else { (b, a) }
}

#[derive(Debug, Clone, Copy)]
struct Syn {
    seq: u32,
    first: Duration,
    last: Duration,
    /// Retransmissions (not duplicates of the same packet).
    count: u32,
}

/// What rdptrace knows of a connection's content.
enum Content {
    /// Bytes wait in order until they say whether this is RDP.
    Undecided {
        chunks: Vec<(End, Millis, Delivery)>,
        bytes: usize,
    },
    Rdp(Box<RdpSession>),
    /// TLS that is not RDP: perhaps an RD Gateway's HTTPS.
    Gateway(Box<Gateway>),
    NotRdp,
}

/// A connection to what may be an RD Gateway.
struct Gateway {
    conn: GatewayConn,
    /// The tunnel it joined.
    joined: Option<String>,
    /// It made the tunnel: it carries the gateway's packets (the WebSocket, or the RDG_OUT_DATA channel).
    primary: bool,
}

struct RdpSession {
    dissector: Dissector,
    decrypt: Option<StatusHandle>,
    /// Bytes still to drop at the start of each end's stream (a SOCKS5 handshake before the RDP bytes).
    skip: PerEnd<u64>,
}

struct Conn {
    order: u64,
    /// `ends[0]` sent the first packet seen.
    ends: PerEnd<SocketAddr>,
    /// Which end is the client, once known.
    client: Option<End>,
    first_ts: Duration,
    last_ts: Duration,
    /// The last packet carrying data (or a FIN), for the idle time before a close.
    last_data_ts: Duration,
    syn: Option<Syn>,
    syn_ack: Option<Duration>,
    handshake_ack: Option<Duration>,
    refused: Option<Duration>,
    unreachable: Option<(Duration, String)>,
    /// Per end: the stream it sends.
    streams: PerEnd<Stream>,
    /// Per end: how it closed.
    closed: PerEnd<Option<CloseKind>>,
    payload_seen: bool,
    content: Content,
}

impl Conn {
    fn end_of(&self, addr: SocketAddr) -> End {
        if self.ends[End::A] == addr {
            End::A
        } else {
            End::B
        }
    }

    fn side_of(&self, end: End) -> Side {
        if Some(end) == self.client {
            Side::Client
        } else {
            Side::Server
        }
    }

    fn at(&self, ts: Duration) -> Millis {
        millis(ts.saturating_sub(self.first_ts))
    }
}

fn millis(d: Duration) -> Millis {
    d.as_secs_f64() * 1000.0
}

/// Rounds to microseconds for facts.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// A connection that ended; later packets of it (duplicates, stray ACKs) are ignored.
#[derive(Debug, Clone, Copy)]
struct Tombstone {
    last_ts: Duration,
    syn_seq: Option<u32>,
}

enum Entry {
    Live(Box<Conn>),
    Gone(Tombstone),
}

impl Entry {
    fn last_ts(&self) -> Duration {
        match self {
            Entry::Live(c) => c.last_ts,
            Entry::Gone(t) => t.last_ts,
        }
    }
}

/// What the connections of a capture share.
#[derive(Default)]
struct Shared {
    /// Servers (address and port) seen speaking RDP, so that a later connection that starts with a TLS
    /// ClientHello is recognised.
    rdp_servers: HashSet<SocketAddr>,
    /// Redirected sessions, until the client's next connection shows up.
    redirections: Pending,
    /// RD Gateway tunnels.
    tunnels: Tunnels,
}

/// Follows every TCP connection of a capture.
pub struct Tracker {
    file: String,
    limits: Limits,
    secrets: Option<Arc<Secrets>>,
    conns: HashMap<FlowKey, Entry>,
    shared: Shared,
    next_order: u64,
    now: Duration,
    finished: Vec<Finished>,
    /// Connections dropped to stay within the bound.
    pub evicted: u64,
}

impl Tracker {
    pub fn new(file: impl Into<String>, limits: Limits, secrets: Option<Arc<Secrets>>) -> Self {
        Tracker {
            file: file.into(),
            limits,
            secrets,
            conns: HashMap::new(),
            shared: Shared::default(),
            next_order: 0,
            now: Duration::ZERO,
            finished: Vec::new(),
            evicted: 0,
        }
    }

    /// Sessions finished so far, taken out of the tracker.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        self.shared.redirections.expire(self.now);
        let mut out = std::mem::take(&mut self.finished);
        out.append(&mut self.shared.redirections.released);
        out
    }

    /// Connections followed now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// One decoded frame captured at `ts`.
    pub fn frame(&mut self, ts: Duration, frame: &Frame<'_>) {
        self.now = self.now.max(ts);
        match frame {
            Frame::Tcp(seg) => self.segment(ts, seg),
            Frame::Unreachable {
                src,
                dst,
                reporter,
                what,
            } => self.unreachable(ts, *src, *dst, &format!("{what} from {reporter}")),
            Frame::Other => {}
        }
    }

    fn unreachable(&mut self, ts: Duration, src: SocketAddr, dst: SocketAddr, what: &str) {
        let k = key(src, dst);
        let Some(Entry::Live(conn)) = self.conns.get_mut(&k) else {
            return;
        };
        // Only a connection still waiting for its SYN-ACK fails this way.
        if conn.syn.is_none() || conn.syn_ack.is_some() || conn.payload_seen {
            return;
        }
        conn.unreachable = Some((ts, what.to_owned()));
        conn.last_ts = ts;
        self.end(k);
    }

    /// The connection `seg` belongs to: looked up once for a connection already followed (nearly every
    /// packet), opened here otherwise.
    fn segment(&mut self, ts: Duration, seg: &Segment<'_>) {
        let k = key(seg.src, seg.dst);
        let has_data = !seg.payload.is_empty() || seg.missing > 0;
        let conn = match self.conns.get_mut(&k) {
            Some(Entry::Live(conn)) => conn,
            _ => {
                if !self.open(ts, k, seg, has_data) {
                    return;
                }
                let Some(Entry::Live(conn)) = self.conns.get_mut(&k) else {
                    return;
                };
                conn
            }
        };
        conn.last_ts = ts;
        let end = conn.end_of(seg.src);
        let mut ended = false;

        // The handshake.
        if seg.syn && !seg.ack_flag {
            match conn.syn.as_mut() {
                None => {
                    conn.syn = Some(Syn {
                        seq: seg.seq,
                        first: ts,
                        last: ts,
                        count: 0,
                    });
                    conn.streams[end].syn(seg.seq);
                }
                Some(syn) if syn.seq == seg.seq => {
                    if ts.saturating_sub(syn.last) >= SAME_PACKET {
                        syn.count += 1;
                    }
                    syn.last = ts;
                }
                Some(_) => {}
            }
        } else if seg.syn && seg.ack_flag {
            if conn.syn_ack.is_none() {
                conn.syn_ack = Some(ts);
            }
            conn.streams[end].syn(seg.seq);
        } else if seg.ack_flag
            && conn.syn_ack.is_some()
            && conn.handshake_ack.is_none()
            && Some(end) == conn.client
        {
            conn.handshake_ack = Some(ts);
        }

        if seg.rst {
            if conn.syn.is_some() && conn.syn_ack.is_none() && !conn.payload_seen {
                if Some(end) != conn.client {
                    conn.refused = Some(ts);
                    ended = true;
                }
            } else if conn.closed[end] != Some(CloseKind::Rst) {
                // Whatever is still held will not come in order any more.
                let mut out = PerEnd([Vec::new(), Vec::new()]);
                for e in End::BOTH {
                    conn.streams[e].flush(&mut out[e]);
                }
                for e in End::BOTH {
                    deliver(
                        conn,
                        e,
                        ts,
                        None,
                        std::mem::take(&mut out[e]),
                        &mut self.shared,
                        &self.secrets,
                        &self.file,
                    );
                }
                close(conn, end, CloseKind::Rst, ts, &mut self.shared);
                ended = true;
            }
        } else if has_data || seg.fin {
            if has_data {
                conn.payload_seen = true;
                conn.last_data_ts = ts;
            }
            let mut out = Vec::new();
            let in_place =
                conn.streams[end].segment(seg.seq, seg.payload, seg.missing, seg.fin, &mut out);
            deliver(
                conn,
                end,
                ts,
                in_place,
                out,
                &mut self.shared,
                &self.secrets,
                &self.file,
            );
            if conn.streams[end].fin_reached() && conn.closed[end].is_none() {
                close(conn, end, CloseKind::Fin, ts, &mut self.shared);
                if conn.closed[end.other()].is_some() {
                    ended = true;
                }
            }
        }
        if ended {
            self.end(k);
        }
    }

    /// A packet of a connection not followed now: a new connection, a late packet of one that ended, or
    /// nothing worth following. Whether the connection is followed now.
    fn open(&mut self, ts: Duration, k: FlowKey, seg: &Segment<'_>, has_data: bool) -> bool {
        match self.conns.get(&k) {
            Some(Entry::Gone(t)) => {
                // A new SYN on the same addresses is a new connection (port reuse); anything else belongs
                // to the one that ended.
                let new_syn = seg.syn && !seg.ack_flag && t.syn_seq != Some(seg.seq);
                if !new_syn {
                    if let Some(Entry::Gone(t)) = self.conns.get_mut(&k) {
                        t.last_ts = ts;
                    }
                    return false;
                }
                self.conns.remove(&k);
            }
            Some(Entry::Live(_)) => {}
            None => {}
        }
        if !self.conns.contains_key(&k) {
            // Pure ACKs and resets of connections that started before the capture say nothing.
            if !(seg.syn || has_data || seg.fin) || seg.rst {
                return false;
            }
            self.make_room();
            let mut ends = PerEnd([seg.src, seg.dst]);
            let mut client = None;
            if seg.syn && !seg.ack_flag {
                client = Some(End::A);
            } else if seg.syn {
                // A SYN-ACK first: the capture missed the SYN.
                ends = PerEnd([seg.dst, seg.src]);
                client = Some(End::A);
            }
            let order = self.next_order;
            self.next_order += 1;
            let conn = Conn {
                order,
                ends,
                client,
                first_ts: ts,
                last_ts: ts,
                last_data_ts: ts,
                syn: None,
                syn_ack: None,
                handshake_ack: None,
                refused: None,
                unreachable: None,
                streams: PerEnd([
                    Stream::new(self.limits.max_pending),
                    Stream::new(self.limits.max_pending),
                ]),
                closed: PerEnd([None, None]),
                payload_seen: false,
                content: Content::Undecided {
                    chunks: Vec::new(),
                    bytes: 0,
                },
            };
            self.conns.insert(k, Entry::Live(Box::new(conn)));
        }
        true
    }

    /// Keeps the number of followed connections within the bound: drops the least recently active
    /// eighth, ended ones first.
    fn make_room(&mut self) {
        if self.conns.len() < self.limits.max_connections.max(1) {
            return;
        }
        let mut order: Vec<(bool, Duration, FlowKey)> = self
            .conns
            .iter()
            .map(|(k, e)| (matches!(e, Entry::Live(_)), e.last_ts(), *k))
            .collect();
        order.sort();
        let drop = (self.conns.len() / 8).max(1);
        for (live, _, k) in order.into_iter().take(drop) {
            if live {
                self.evicted += 1;
                if let Some(Entry::Live(conn)) = self.conns.get_mut(&k) {
                    let at = conn.at(conn.last_ts);
                    if let Content::Rdp(s) = &mut conn.content {
                        s.dissector.trace_mut().record_event(
                            at,
                            EventKind::Anomaly {
                                detail: format!(
                                    "rdptrace stopped following this connection: more than {} connections were open at once",
                                    self.limits.max_connections
                                ),
                            },
                        );
                    }
                }
                self.end(k);
            }
            self.conns.remove(&k);
        }
    }

    /// The capture is over: every connection still open ends here.
    pub fn finish(&mut self) {
        let keys: Vec<FlowKey> = self
            .conns
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Live(_)))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.end(k);
        }
        self.conns.clear();
        for (first_ts, order, trace) in self.shared.tunnels.finish() {
            let finished = Finished {
                first_ts,
                order,
                trace,
            };
            let _ = self.shared.redirections.finished(finished, self.now);
        }
        self.shared.redirections.release_all();
    }

    /// TLS connections that were not RDP and could not be decrypted: how many, the first one's addresses.
    pub fn opaque_tls(&self) -> (u64, Option<String>) {
        self.shared.tunnels.opaque.clone()
    }

    /// Ends a connection: flushes what it holds, settles its trace, leaves a tombstone.
    fn end(&mut self, k: FlowKey) {
        let Some(Entry::Live(mut conn)) = self.conns.remove(&k) else {
            return;
        };
        self.conns.insert(
            k,
            Entry::Gone(Tombstone {
                last_ts: conn.last_ts,
                syn_seq: conn.syn.map(|s| s.seq),
            }),
        );
        let ts = conn.last_ts;
        if conn.refused.is_none() && conn.unreachable.is_none() {
            for end in End::BOTH {
                let mut out = Vec::new();
                conn.streams[end].flush(&mut out);
                deliver(
                    &mut conn,
                    end,
                    ts,
                    None,
                    out,
                    &mut self.shared,
                    &self.secrets,
                    &self.file,
                );
                if conn.streams[end].fin_reached() && conn.closed[end].is_none() {
                    close(&mut conn, end, CloseKind::Fin, ts, &mut self.shared);
                }
            }
        }
        // A connection that never carried data is RDP only by its port.
        if matches!(conn.content, Content::Undecided { .. }) {
            let server_port = conn.client.map(|c| conn.ends[c.other()].port());
            if server_port == Some(RDP_PORT) {
                decide(
                    &mut conn,
                    Decision::Rdp {
                        skip: PerEnd::default(),
                        via: None,
                    },
                    &self.secrets,
                    &self.file,
                    &mut self.shared,
                );
            }
        }
        if let Content::Gateway(g) = &conn.content
            && let Some(id) = &g.joined
            && let Some((first_ts, order, trace)) = self.shared.tunnels.ended(id, ts)
        {
            let finished = Finished {
                first_ts,
                order,
                trace,
            };
            let _ = self.shared.redirections.finished(finished, ts);
        }
        let order = conn.order;
        let first_ts = conn.first_ts;
        if let Some(trace) = settle(*conn) {
            let finished = Finished {
                first_ts,
                order,
                trace,
            };
            // A redirected session whose follower is still open: the follower learns where it came from.
            if let Some((client, server, words)) = self.shared.redirections.finished(finished, ts)
                && let Some(Entry::Live(next)) = self.conns.get_mut(&key(client, server))
                && let Content::Rdp(s) = &mut next.content
            {
                s.dissector
                    .trace_mut()
                    .fact_in(PhaseName::X224, Fact::RedirectedFrom, words);
            }
        }
    }
}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// RDP, after `skip[end]` bytes of a tunnel handshake in each end's stream, to `via` through it.
    Rdp {
        skip: PerEnd<u64>,
        via: Option<String>,
    },
    /// TLS to a server that is not known to speak RDP: an RD Gateway's, when its secrets say so.
    Tls,
    NotRdp,
    Wait,
}

/// [T.123] TPKT with an [X.224] TPDU of the given kind (high nibble of the code: 0xE0 CR, 0xD0 CC).
fn tpkt_tpdu(buf: &[u8], code: u8) -> Option<bool> {
    match buf {
        [] => None,
        [0x03] | [0x03, 0x00] | [0x03, 0x00, _] | [0x03, 0x00, _, _] | [0x03, 0x00, _, _, _] => {
            None
        }
        [0x03, 0x00, _, _, _, c, ..] => Some(c & 0xf0 == code),
        _ => Some(false),
    }
}

/// [RFC 5246] 6.2.1 a TLS handshake record carrying a ClientHello.
fn client_hello(buf: &[u8]) -> Option<bool> {
    match buf {
        [] => None,
        [0x16] | [0x16, 0x03] | [0x16, 0x03, _] | [0x16, 0x03, _, _] | [0x16, 0x03, _, _, _] => {
            None
        }
        [0x16, 0x03, _, _, _, 0x01, ..] => Some(true),
        _ => Some(false),
    }
}

/// [RFC 1928] the length of a SOCKS5 client greeting plus CONNECT request, and of the server's method
/// choice plus reply, when `client` and `server` start with them, and the address the client asked for.
fn socks5(client: &[u8], server: &[u8]) -> Option<(usize, usize, String)> {
    fn request_len(buf: &[u8], at: usize) -> Option<usize> {
        // VER CMD RSV ATYP DST.ADDR DST.PORT
        let atyp = *buf.get(at + 3)?;
        let addr = match atyp {
            1 => 4,
            4 => 16,
            3 => 1 + usize::from(*buf.get(at + 4)?),
            _ => return None,
        };
        Some(4 + addr + 2)
    }
    if client.first() != Some(&5) {
        return None;
    }
    let greeting = 2 + usize::from(*client.get(1)?);
    if client.get(greeting) != Some(&5) || client.get(greeting + 1) != Some(&1) {
        return None;
    }
    let c = greeting + request_len(client, greeting)?;
    let addr = client.get(greeting + 4..c - 2)?;
    let port = u16::from_be_bytes([*client.get(c - 2)?, *client.get(c - 1)?]);
    let target = match (client.get(greeting + 3)?, addr.len()) {
        (1, 4) => {
            let ip: [u8; 4] = addr.try_into().ok()?;
            SocketAddr::from((ip, port)).to_string()
        }
        (4, 16) => {
            let ip: [u8; 16] = addr.try_into().ok()?;
            SocketAddr::from((ip, port)).to_string()
        }
        _ => format!("{}:{port}", String::from_utf8_lossy(addr.get(1..)?)),
    };
    // Method choice (VER METHOD), then the reply: VER REP RSV ATYP BND.ADDR BND.PORT, REP 0 = succeeded.
    if server.first() != Some(&5) || server.get(2) != Some(&5) || server.get(3) != Some(&0) {
        return None;
    }
    let s = 2 + request_len(server, 2)?;
    Some((c, s, target))
}

fn classify(
    conn: &Conn,
    data: PerEnd<&[u8]>,
    rdp_servers: &HashSet<SocketAddr>,
) -> (Decision, Option<End>) {
    // Which end is the client: the SYN's sender, else whoever sends an X.224 CR, else the end that did
    // not send an X.224 CC, else the end not on port 3389.
    let mut client = conn
        .client
        .or_else(|| {
            End::BOTH
                .into_iter()
                .find(|e| tpkt_tpdu(data[*e], 0xe0) == Some(true))
        })
        .or_else(|| {
            End::BOTH
                .into_iter()
                .find(|e| tpkt_tpdu(data[*e], 0xd0) == Some(true))
                .map(End::other)
        });
    if client.is_none() {
        if conn.ends[End::B].port() == RDP_PORT {
            client = Some(End::A);
        } else if conn.ends[End::A].port() == RDP_PORT {
            client = Some(End::B);
        }
    }
    let Some(c) = client else {
        let waiting = data.iter().all(|d| d.len() < 8);
        return (
            if waiting {
                Decision::Wait
            } else {
                Decision::NotRdp
            },
            None,
        );
    };
    let s = c.other();
    let (cd, sd) = (data[c], data[s]);
    let server = conn.ends[s];
    if tpkt_tpdu(cd, 0xe0) == Some(true) || tpkt_tpdu(sd, 0xd0) == Some(true) {
        return (
            Decision::Rdp {
                skip: PerEnd::default(),
                via: None,
            },
            Some(c),
        );
    }
    if server.port() == RDP_PORT {
        return (
            Decision::Rdp {
                skip: PerEnd::default(),
                via: None,
            },
            Some(c),
        );
    }
    if rdp_servers.contains(&server) && client_hello(cd) == Some(true) {
        return (
            Decision::Rdp {
                skip: PerEnd::default(),
                via: None,
            },
            Some(c),
        );
    }
    if let Some((cl, sl, target)) = socks5(cd, sd) {
        match tpkt_tpdu(cd.get(cl..).unwrap_or_default(), 0xe0) {
            Some(true) => {
                let mut skip = PerEnd::default();
                skip[c] = cl as u64;
                skip[s] = sl as u64;
                let via = Some(format!("SOCKS5 CONNECT to {target}"));
                return (Decision::Rdp { skip, via }, Some(c));
            }
            Some(false) => return (Decision::NotRdp, Some(c)),
            None => return (Decision::Wait, Some(c)),
        }
    }
    if client_hello(cd) == Some(true) {
        return (Decision::Tls, Some(c));
    }
    if cd.first() == Some(&5) && cd.len() < 64 {
        // Perhaps a SOCKS5 handshake still under way.
        return (Decision::Wait, Some(c));
    }
    let undecided = tpkt_tpdu(cd, 0xe0).is_none() && tpkt_tpdu(sd, 0xd0).is_none();
    if undecided && cd.len() < 8 && sd.len() < 8 {
        return (Decision::Wait, Some(c));
    }
    (Decision::NotRdp, Some(c))
}

/// A piece of one end's stream, in order: bytes where they lie, or a gap.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    Data(&'a [u8]),
    Gap(u64),
}

impl<'a> From<&'a Delivery> for Piece<'a> {
    fn from(d: &'a Delivery) -> Piece<'a> {
        match d {
            Delivery::Data(v) => Piece::Data(v),
            Delivery::Gap(n) => Piece::Gap(*n),
        }
    }
}

/// Feeds what one end's stream delivered: the bytes of a segment that came in order with nothing held
/// (`in_place`, still in the packet), or what the stream held and could deliver now (`out`).
#[allow(clippy::too_many_arguments)]
fn deliver(
    conn: &mut Conn,
    end: End,
    ts: Duration,
    in_place: Option<&[u8]>,
    out: Vec<Delivery>,
    shared: &mut Shared,
    secrets: &Option<Arc<Secrets>>,
    file: &str,
) {
    if out.is_empty() && in_place.is_none() {
        return;
    }
    let at = conn.at(ts);
    let side = conn.side_of(end);
    let (data, gap, over) = match &mut conn.content {
        Content::NotRdp => return,
        Content::Gateway(_) => {
            let in_place = in_place.map(|d| Delivery::Data(d.to_vec()));
            for d in out.iter().chain(in_place.as_ref()) {
                feed_gateway(conn, end, ts, d.into(), shared, secrets, file);
            }
            return;
        }
        Content::Rdp(s) => {
            for d in &out {
                feed(s, end, side, at, d.into());
            }
            if let Some(d) = in_place {
                feed(s, end, side, at, Piece::Data(d));
            }
            return;
        }
        Content::Undecided { chunks, bytes } => {
            let mut gap = false;
            let in_place = in_place.map(|d| Delivery::Data(d.to_vec()));
            for d in out.into_iter().chain(in_place) {
                match &d {
                    Delivery::Data(v) => *bytes += v.len(),
                    Delivery::Gap(_) => gap = true,
                }
                chunks.push((end, at, d));
            }
            // The bytes before the first gap of each end decide.
            let mut data: PerEnd<Vec<u8>> = PerEnd::default();
            let mut stopped: PerEnd<bool> = PerEnd::default();
            for (e, _, d) in chunks.iter() {
                let e = *e;
                match d {
                    Delivery::Data(v) if !stopped[e] => data[e].extend_from_slice(v),
                    _ => stopped[e] = true,
                }
            }
            (data, gap, *bytes > MAX_UNDECIDED)
        }
    };
    let (mut decision, client) = classify(
        conn,
        PerEnd([data[End::A].as_slice(), data[End::B].as_slice()]),
        &shared.rdp_servers,
    );
    if decision == Decision::Wait && (over || gap) {
        decision = Decision::NotRdp;
    }
    match &decision {
        Decision::Wait => {}
        Decision::NotRdp => conn.content = Content::NotRdp,
        Decision::Tls => {
            conn.client = client;
            let server = conn.ends[client.unwrap_or(End::A).other()];
            let held = match std::mem::replace(&mut conn.content, Content::NotRdp) {
                Content::Undecided { chunks, .. } => chunks,
                _ => Vec::new(),
            };
            conn.content = Content::Gateway(Box::new(Gateway {
                conn: GatewayConn::new(server.to_string(), file, secrets.as_ref(), conn.first_ts),
                joined: None,
                primary: false,
            }));
            for (end, at, d) in &held {
                let ts = conn.first_ts + Duration::from_secs_f64(at.max(0.0) / 1000.0);
                feed_gateway(conn, *end, ts, d.into(), shared, secrets, file);
            }
        }
        Decision::Rdp { .. } => {
            conn.client = client;
            if let Some(c) = client {
                // Learned from the bytes, not the port: remember the server.
                if tpkt_tpdu(&data[c], 0xe0) == Some(true)
                    || tpkt_tpdu(&data[c.other()], 0xd0) == Some(true)
                {
                    shared.rdp_servers.insert(conn.ends[c.other()]);
                }
            }
            decide(conn, decision, secrets, file, shared);
        }
    }
}

/// Feeds one delivery to a connection that may be an RD Gateway's; hands what it read to its tunnel.
fn feed_gateway(
    conn: &mut Conn,
    end: End,
    ts: Duration,
    d: Piece<'_>,
    shared: &mut Shared,
    secrets: &Option<Arc<Secrets>>,
    file: &str,
) {
    let side = conn.side_of(end);
    let at = conn.at(ts);
    let client_end = conn.client.unwrap_or(End::A);
    let (client, server) = (conn.ends[client_end], conn.ends[client_end.other()]);
    let handshake = Handshake::of(conn);
    let (first_ts, order) = (conn.first_ts, conn.order);
    let Content::Gateway(g) = &mut conn.content else {
        return;
    };
    match d {
        Piece::Data(v) => g.conn.on_tcp_data(side, at, v),
        Piece::Gap(_) => g.conn.gap(ts),
    }
    match g.conn.verdict {
        GatewayVerdict::Waiting => {}
        GatewayVerdict::Other => conn.content = Content::NotRdp,
        GatewayVerdict::Opaque => {
            shared.tunnels.opaque(format!("{client} -> {server}"));
            conn.content = Content::NotRdp;
        }
        GatewayVerdict::Gateway => {
            if g.joined.is_none() {
                let id = g.conn.id.clone().unwrap_or_else(|| format!("#{order}"));
                let fresh = !shared.tunnels.has(&id);
                let joined = if fresh {
                    let mut trace = Trace::new(
                        server.to_string(),
                        Origin::Replay {
                            file: file.to_owned(),
                            session: 0,
                        },
                    );
                    trace.started_at = rfc3339(first_ts);
                    trace.set_addrs(Some(client), Some(server));
                    handshake.record(&mut trace, client, server, PhaseName::GatewayConnect);
                    shared.tunnels.create(
                        &id,
                        trace,
                        &mut g.conn,
                        first_ts,
                        order,
                        secrets.as_ref(),
                    )
                } else {
                    shared.tunnels.join(&id)
                };
                if !joined {
                    conn.content = Content::NotRdp;
                    return;
                }
                g.primary = fresh;
                g.joined = Some(id);
            }
            if let Some(id) = &g.joined {
                let items = g.conn.take_items();
                shared.tunnels.apply(id, items);
            }
        }
    }
}

/// Feeds one delivery to the dissector, dropping tunnel bytes first.
fn feed(s: &mut RdpSession, end: End, side: Side, at: Millis, d: Piece<'_>) {
    match d {
        Piece::Data(mut v) => {
            let skip = &mut s.skip[end];
            if *skip > 0 {
                let n = usize::try_from(*skip).unwrap_or(usize::MAX).min(v.len());
                v = v.get(n..).unwrap_or_default();
                *skip -= n as u64;
            }
            if !v.is_empty() {
                s.dissector.on_tcp_data(side, at, v);
            }
        }
        Piece::Gap(n) => {
            let skip = &mut s.skip[end];
            let n = if *skip > 0 {
                let used = (*skip).min(n);
                *skip -= used;
                n - used
            } else {
                n
            };
            if n > 0 {
                s.dissector.on_gap(side, at, n);
            }
        }
    }
}

/// Starts the trace of a connection found to be RDP, and feeds it what was held.
fn decide(
    conn: &mut Conn,
    decision: Decision,
    secrets: &Option<Arc<Secrets>>,
    file: &str,
    shared: &mut Shared,
) {
    let Decision::Rdp { skip, via } = decision else {
        return;
    };
    let client_end = conn.client.unwrap_or(End::A);
    conn.client = Some(client_end);
    let client = conn.ends[client_end];
    let server = conn.ends[client_end.other()];
    let mut trace = Trace::new(
        server.to_string(),
        Origin::Replay {
            file: file.to_owned(),
            session: 0,
        },
    );
    trace.started_at = rfc3339(conn.first_ts);
    trace.set_addrs(Some(client), Some(server));
    Handshake::of(conn).record(&mut trace, client, server, PhaseName::Tcp);
    if let Some(via) = via {
        trace.fact_in(PhaseName::Tcp, Fact::Tunnel, via);
        trace.fact_in(
            PhaseName::Tcp,
            Fact::TunnelBytes,
            format!(
                "{} from the client and {} from the proxy before the RDP bytes",
                skip[client_end],
                skip[client_end.other()]
            ),
        );
    }
    let mut dissector = Dissector::new(trace);
    let decrypt = secrets.as_ref().map(|secrets| {
        let d = Decryptor::new(Arc::clone(secrets));
        let status = d.status();
        dissector.set_tls_sink(Box::new(d));
        let randoms = secrets.rdp_client_randoms();
        if !randoms.is_empty() {
            dissector.set_security_sink(Box::new(
                crate::rdp_security::sink::SessionSink::with_client_random_candidates(randoms),
            ));
        }
        status
    });
    let mut session = RdpSession {
        dissector,
        decrypt,
        skip,
    };
    let held = match std::mem::replace(&mut conn.content, Content::NotRdp) {
        Content::Undecided { chunks, .. } => chunks,
        _ => Vec::new(),
    };
    for (end, at, d) in &held {
        let side = conn.side_of(*end);
        feed(&mut session, *end, side, *at, d.into());
    }
    // The Connection Request is in: is this where a redirection of the capture sent the client?
    shared
        .redirections
        .started(session.dissector.trace_mut(), client, server);
    conn.content = Content::Rdp(Box::new(session));
}

/// What the capture holds of a connection's TCP handshake.
#[derive(Debug, Clone, Copy)]
struct Handshake {
    first_ts: Duration,
    syn: Option<Syn>,
    syn_ack: Option<Duration>,
    ack: Option<Duration>,
}

impl Handshake {
    fn of(conn: &Conn) -> Handshake {
        Handshake {
            first_ts: conn.first_ts,
            syn: conn.syn,
            syn_ack: conn.syn_ack,
            ack: conn.handshake_ack,
        }
    }

    fn at(&self, ts: Duration) -> Millis {
        millis(ts.saturating_sub(self.first_ts))
    }

    /// Enters `phase` (`tcp`, or `gateway_connect` for a gateway's connection) with what the capture holds
    /// of the handshake.
    fn record(&self, trace: &mut Trace, client: SocketAddr, server: SocketAddr, phase: PhaseName) {
        trace.enter(phase, 0.0);
        let connected = |trace: &mut Trace, at| {
            trace.record_event(
                at,
                EventKind::Connected {
                    local: client.to_string(),
                    remote: server.to_string(),
                },
            );
        };
        match self.syn {
            Some(syn) => {
                if syn.count > 0 {
                    trace.fact(Fact::SynRetransmissions, syn.count);
                }
                if let Some(syn_ack) = self.syn_ack {
                    // SYN to SYN-ACK is the round trip seen from the client; from anywhere else on the path
                    // the round trip ends with the client's ACK.
                    let syn_ts = syn.last.min(syn_ack);
                    let rtt = self.ack.unwrap_or(syn_ack).saturating_sub(syn_ts);
                    trace.fact(Fact::RttMs, round_ms(millis(rtt)));
                    connected(trace, self.at(self.ack.unwrap_or(syn_ack)));
                }
            }
            None if self.syn_ack.is_some() => {
                trace.fact(Fact::Handshake, "the capture starts after the client's SYN");
                connected(
                    trace,
                    self.at(self.ack.or(self.syn_ack).unwrap_or(self.first_ts)),
                );
            }
            None => {
                trace.fact(
                    Fact::Handshake,
                    "not in the capture (it starts in the middle of the connection)",
                );
            }
        }
    }
}

/// Records a close by `end` with the facts around it.
fn close(conn: &mut Conn, end: End, how: CloseKind, ts: Duration, shared: &mut Shared) {
    let first = conn.closed.iter().all(Option::is_none);
    conn.closed[end] = Some(how);
    let side = conn.side_of(end);
    let at = conn.at(ts);
    let idle = round_ms(millis(ts.saturating_sub(conn.last_data_ts)));
    if let Content::Gateway(g) = &conn.content
        && let Some(id) = &g.joined
    {
        shared.tunnels.closed(id, side, how, ts, g.primary);
        return;
    }
    let Content::Rdp(s) = &mut conn.content else {
        return;
    };
    let how_word = match how {
        CloseKind::Fin => "FIN",
        CloseKind::Rst => "RST",
    };
    let trace = s.dissector.trace_mut();
    if first {
        trace.fact(Fact::ClosedBy, format!("{} {how_word}", side.as_str()));
        if let Some((_, pdu)) = trace.last_pdu() {
            let words = format!("{} from the {}", pdu.name, pdu.from.as_str());
            trace.fact(Fact::CloseAfter, words);
        }
        trace.fact(Fact::IdleBeforeCloseMs, idle);
    } else {
        trace.fact(Fact::ThenClosedBy, format!("{} {how_word}", side.as_str()));
    }
    s.dissector.on_close(side, how, at);
}

/// Settles a connection's trace; `None` for connections that are not RDP.
fn settle(conn: Conn) -> Option<Trace> {
    let client_end = conn.client;
    let Content::Rdp(session) = conn.content else {
        return None;
    };
    let RdpSession {
        mut dissector,
        decrypt,
        ..
    } = *session;
    let closed_any = conn.closed.iter().any(Option::is_some);
    let never_connected = conn.refused.is_some()
        || conn.unreachable.is_some()
        || (conn.syn.is_some() && conn.syn_ack.is_none() && !conn.payload_seen);
    if !closed_any && !never_connected {
        dissector.on_capture_end(millis(conn.last_ts.saturating_sub(conn.first_ts)));
    }
    let mut trace = dissector.into_trace();
    let client = client_end.map(|c| conn.ends[c]);
    let server = client_end.map(|c| conn.ends[c.other()]);
    let addr = server.map(|s| s.to_string()).unwrap_or_default();

    if let Some(at) = conn.refused {
        trace.record_event_in(
            PhaseName::Tcp,
            millis(at.saturating_sub(conn.first_ts)),
            EventKind::ConnectFailed {
                addr,
                error: ConnectError::Refused,
            },
        );
        trace.finish(true);
        return Some(trace);
    }
    if let Some((at, what)) = &conn.unreachable {
        trace.record_event_in(
            PhaseName::Tcp,
            millis(at.saturating_sub(conn.first_ts)),
            EventKind::ConnectFailed {
                addr,
                error: ConnectError::Unreachable(what.clone()),
            },
        );
        trace.finish(true);
        return Some(trace);
    }
    if let Some(syn) = conn.syn
        && conn.syn_ack.is_none()
        && !conn.payload_seen
    {
        let waited = round_ms(millis(syn.last.saturating_sub(syn.first)));
        trace.fact_in(PhaseName::Tcp, Fact::SynSent, syn.count + 1);
        trace.fact_in(PhaseName::Tcp, Fact::WaitedMs, waited);
        trace.record_event_in(
            PhaseName::Tcp,
            millis(syn.last.saturating_sub(conn.first_ts)),
            EventKind::ConnectFailed {
                addr,
                error: ConnectError::TimedOut,
            },
        );
        trace.finish(true);
        return Some(trace);
    }
    let _ = client;

    let at_end = millis(conn.last_ts.saturating_sub(conn.first_ts));
    if !closed_any {
        let idle = round_ms(millis(conn.last_ts.saturating_sub(conn.last_data_ts)));
        if idle > 0.0 {
            trace.fact(Fact::IdleAtCaptureEndMs, idle);
        }
    }
    Some(conclude(trace, decrypt, at_end))
}

/// The end of an RDP session's trace (a direct connection's, or a gateway tunnel's): the decryption's facts,
/// the client's orderly close after the active state, the trace settled.
pub(super) fn conclude(mut trace: Trace, decrypt: Option<StatusHandle>, at_end: Millis) -> Trace {
    if let Some(status) = decrypt
        && trace.phase(PhaseName::Tls).start_ms.is_some()
    {
        for (k, v) in super::tls_decrypt::facts(&status) {
            trace.fact_in(PhaseName::Tls, k, v);
        }
    }
    let reached_active = trace.phase(PhaseName::Active).start_ms.is_some();
    let first_close = trace.events().find_map(|(_, e)| match e.kind {
        EventKind::Closed { by, how } => Some((by, how)),
        _ => None,
    });
    let client_disconnected = trace.pdus().any(|(_, p)| {
        p.from == Side::Client && matches!(p.info, PduInfo::DisconnectProviderUltimatum { .. })
    });
    let orderly = match first_close {
        None => true,
        Some((Side::Client, CloseKind::Fin)) => true,
        Some(_) => client_disconnected,
    };
    if reached_active && orderly && first_close.is_some() {
        trace.record_event(
            at_end,
            EventKind::ClientClosed {
                reason: if client_disconnected {
                    "the client disconnected (Disconnect Provider Ultimatum)".to_owned()
                } else {
                    "the client closed the connection".to_owned()
                },
            },
        );
    }
    trace.finish(!(reached_active && orderly) || trace.deactivated_for_good());
    trace
}

/// RFC 3339 of a time since the epoch.
pub fn rfc3339(ts: Duration) -> Option<String> {
    let nanos = i128::try_from(ts.as_nanos()).ok()?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpdu_detection() {
        assert_eq!(
            tpkt_tpdu(&[0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0], 0xe0),
            Some(true)
        );
        assert_eq!(
            tpkt_tpdu(&[0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0], 0xe0),
            Some(false)
        );
        assert_eq!(tpkt_tpdu(&[0x03, 0x00], 0xe0), None);
        assert_eq!(tpkt_tpdu(b"GET / HTTP/1.1", 0xe0), Some(false));
        assert_eq!(
            client_hello(&[0x16, 0x03, 0x01, 0x00, 0x10, 0x01]),
            Some(true)
        );
    }

    #[test]
    fn socks5_lengths() {
        let client = [
            5, 1, 0, // greeting: one method, no authentication
            5, 1, 0, 1, 10, 0, 0, 1, 0x0d, 0x3d, // CONNECT 10.0.0.1:3389
            3, 0, 0, 0x13, 0x0e, 0xe0,
        ];
        let server = [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            socks5(&client, &server),
            Some((13, 12, "10.0.0.1:3389".to_owned()))
        );
        assert_eq!(socks5(&client, &server[..5]), None);
    }

    #[test]
    fn rfc3339_of_epoch_time() {
        assert_eq!(
            rfc3339(Duration::from_micros(1_193_369_794_940_913)).as_deref(),
            Some("2007-10-26T03:36:34.940913Z")
        );
    }
}
