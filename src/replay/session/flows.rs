//! The flow table: every TCP connection of a capture, by its two addresses, from its first packet to its
//! end (both sides closed, a reset, an ICMP error, an idle timeout, making room, or the end of the capture).
//!
//! Each connection keeps the state of its TCP handshake and a reassembler per direction; what the streams
//! deliver goes to the connection's content ([`super::deliver`]), which classifies it and feeds the
//! dissector. An ended connection is settled ([`super::settle`]) and leaves a tombstone, so that its late
//! packets do not open a new one.
//!
//! The cost of a connection does not grow with the others ([`super::table`]): a SYN is a small entry until
//! anything else happens to it; the table keeps its entries in lists by kind, each in the order of last
//! activity, so that making room takes the least recently active of the least informative kind (an
//! unanswered SYN first, an RDP session with data last) and idle entries settle in capture time without
//! a scan. A connection that never carried data is settled as an [`Attempt`], without a dissector.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::super::gateway::Tunnels;
use super::super::link::{Frame, Segment};
use super::super::order::{END, Position};
use super::super::reassembly::{Delivery, Stream};
use super::super::redirect::Pending;
use super::super::tls_decrypt::Secrets;
use super::attempt::Attempt;
use super::settle::{close, settle};
use super::table::{Id, Table};
use super::{Content, Limits, RdpPorts, RdpServers, SAME_PACKET, Shared, deliver};
use crate::trace::{CloseKind, EventKind, Fact, Millis, Pairing, PerSide, PhaseName, Side, Trace};

/// One end of a connection: `A` sent the first packet seen, `B` the other (which one is the client is
/// learnt later, from the handshake or the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    A,
    B,
}

impl End {
    pub(super) fn other(self) -> End {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }
}

impl Pairing for End {
    const BOTH: [End; 2] = [End::A, End::B];

    fn is_first(self) -> bool {
        self == End::A
    }
}

/// A value for each end of a connection.
pub(super) type PerEnd<T> = PerSide<T, End>;

/// An unanswered SYN is settled after this long without a packet of its connection, in capture time: a
/// client gives up sooner (Windows after 21 s, Linux after 127 s, both counted from the first SYN).
pub const SYN_TIMEOUT: Duration = Duration::from_secs(130);
/// The tombstone of an ended connection goes after this long without a packet of it (twice TCP's
/// maximum segment lifetime of 2 minutes: a late packet after that is not one of the connection's).
pub const GONE_TIMEOUT: Duration = Duration::from_secs(240);

/// The table's lists, the least informative kind first: making room takes from the first non-empty one.
const SYN: usize = 0;
/// Connected (or waiting) without a byte of data yet.
const OPEN: usize = 1;
/// Carried data that does not yet say whether it is RDP.
const UNDECIDED: usize = 2;
/// An RDP session.
const RDP: usize = 3;
/// Tombstones, counted apart from the connections followed.
const GONE: usize = 4;
const LISTS: usize = 5;

/// The two ends of a connection, the lower address first, 19 bytes each (family, address, port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FlowKey([u8; 38]);

fn endpoint(a: SocketAddr, out: &mut [u8]) {
    let (family, ip) = match a.ip() {
        IpAddr::V4(v4) => (4u8, v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => (6u8, v6.octets()),
    };
    for (slot, byte) in out.iter_mut().zip(
        std::iter::once(family)
            .chain(ip)
            .chain(a.port().to_be_bytes()),
    ) {
        *slot = byte;
    }
}

/// The address an endpoint of a flow key holds.
fn address(b: &[u8]) -> Option<SocketAddr> {
    let ip: [u8; 16] = b.get(1..17)?.try_into().ok()?;
    let port = u16::from_be_bytes([*b.get(17)?, *b.get(18)?]);
    let v6 = std::net::Ipv6Addr::from(ip);
    let ip = match b.first()? {
        4 => IpAddr::V4(v6.to_ipv4_mapped()?),
        _ => IpAddr::V6(v6),
    };
    Some(SocketAddr::new(ip, port))
}

impl FlowKey {
    /// Its two addresses, the lower first.
    fn ends(&self) -> Option<(SocketAddr, SocketAddr)> {
        let (lo, hi) = self.0.split_at(19);
        Some((address(lo)?, address(hi)?))
    }
}

fn key(a: SocketAddr, b: SocketAddr) -> FlowKey {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut k = [0u8; 38];
    let (first, second) = k.split_at_mut(19);
    endpoint(lo, first);
    endpoint(hi, second);
    FlowKey(k)
}

/// The client's SYN, as the capture saw it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Syn {
    pub(super) seq: u32,
    pub(super) first: Duration,
    pub(super) last: Duration,
    /// Retransmissions (not duplicates of the same packet).
    pub(super) count: u32,
}

/// Where a packet is in the capture: its number (its position, see [`super::super::order`]), its time,
/// and the capture's clock (the latest time seen so far, which never goes back).
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub position: u64,
    pub ts: Duration,
    pub clock: Duration,
}

/// One TCP connection of the capture.
pub(super) struct Conn {
    pub(super) order: u64,
    /// `ends[End::A]` sent the first packet seen.
    pub(super) ends: PerEnd<SocketAddr>,
    /// Which end is the client, once known.
    pub(super) client: Option<End>,
    pub(super) first_ts: Duration,
    pub(super) last_ts: Duration,
    /// The capture's clock at its last packet, for idle timeouts.
    activity: Duration,
    /// The last packet carrying data (or a FIN), for the idle time before a close.
    pub(super) last_data_ts: Duration,
    pub(super) syn: Option<Syn>,
    pub(super) syn_ack: Option<Duration>,
    pub(super) handshake_ack: Option<Duration>,
    /// Opened by a SYN-ACK after unanswered SYNs were settled early to make room: its SYN may be one of
    /// them.
    pub(super) syn_settled_early: bool,
    pub(super) refused: Option<Duration>,
    pub(super) unreachable: Option<(Duration, String)>,
    /// Per end: the stream it sends.
    pub(super) streams: PerEnd<Stream>,
    /// Per end: how it closed.
    pub(super) closed: PerEnd<Option<CloseKind>>,
    pub(super) payload_seen: bool,
    pub(super) content: Content,
}

impl Conn {
    fn end_of(&self, addr: SocketAddr) -> End {
        if self.ends[End::A] == addr {
            End::A
        } else {
            End::B
        }
    }

    pub(super) fn side_of(&self, end: End) -> Side {
        if Some(end) == self.client {
            Side::Client
        } else {
            Side::Server
        }
    }

    pub(super) fn at(&self, ts: Duration) -> Millis {
        millis(ts.saturating_sub(self.first_ts))
    }

    /// The table's list for this connection.
    fn list(&self) -> usize {
        match self.content {
            Content::Rdp(_) => RDP,
            _ if self.payload_seen => UNDECIDED,
            _ if self.syn.is_some() && self.syn_ack.is_none() => SYN,
            _ => OPEN,
        }
    }
}

pub(super) fn millis(d: Duration) -> Millis {
    d.as_secs_f64() * 1000.0
}

/// Rounds to microseconds for facts.
pub(super) fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// A time since the Unix epoch in nanoseconds: half a `Duration`, for the entries a flood makes by the
/// hundred thousand.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn time(n: u64) -> Duration {
    Duration::from_nanos(n)
}

/// A connection that has sent nothing but its first SYN (and copies of it), kept small: most SYNs of a
/// scan or a flood are never answered. Its addresses are its key's. Anything else makes it a [`Conn`].
#[derive(Debug, Clone, Copy)]
struct SynOnly {
    order: u64,
    /// The client is the lower address of the key.
    client_is_lo: bool,
    seq: u32,
    /// Retransmissions (not duplicates of the same packet).
    count: u32,
    /// The first SYN, and the first packet.
    first: u64,
    /// The last copy of the SYN.
    last_syn: u64,
    last_ts: u64,
    activity: u64,
}

impl SynOnly {
    fn syn(&self) -> Syn {
        Syn {
            seq: self.seq,
            first: time(self.first),
            last: time(self.last_syn),
            count: self.count,
        }
    }

    /// Client and server.
    fn ends(&self, k: &FlowKey) -> Option<(SocketAddr, SocketAddr)> {
        let (lo, hi) = k.ends()?;
        Some(if self.client_is_lo {
            (lo, hi)
        } else {
            (hi, lo)
        })
    }

    fn into_conn(self, k: &FlowKey, max_pending: usize) -> Option<Conn> {
        let (client, server) = self.ends(k)?;
        let mut streams = PerEnd::from_fn(|_| Stream::new(max_pending));
        streams[End::A].syn(self.seq);
        Some(Conn {
            order: self.order,
            ends: PerEnd::new(client, server),
            client: Some(End::A),
            first_ts: time(self.first),
            last_ts: time(self.last_ts),
            activity: time(self.activity),
            last_data_ts: time(self.first),
            syn: Some(self.syn()),
            syn_ack: None,
            handshake_ack: None,
            syn_settled_early: false,
            refused: None,
            unreachable: None,
            streams,
            closed: PerEnd::default(),
            payload_seen: false,
            content: Content::Undecided {
                chunks: Vec::new(),
                bytes: 0,
            },
        })
    }
}

/// Why a connection left the table before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// It ended (or was idle past its timeout, or was not RDP).
    Ended,
    /// A connection with data, or one that may carry some later, settled early to make room: its later
    /// packets are counted, not read.
    Settled,
    /// An unanswered SYN settled early to make room leaves no tombstone: under such a load a tombstone
    /// would not last until a copy of the SYN comes again.
    Forgotten,
}

/// A connection that left the table; later packets of it (duplicates, stray ACKs) are ignored.
#[derive(Debug, Clone, Copy)]
struct Tombstone {
    syn_seq: Option<u32>,
    activity: u64,
    gone: Gone,
}

enum Entry {
    Syn(SynOnly),
    Live(Box<Conn>),
    Gone(Tombstone),
}

/// What the table had to give up to stay within its bounds, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// Unanswered SYNs settled before their timeout (each reported with the SYNs seen until then).
    pub unanswered: u64,
    /// Connections that carried no data, settled early.
    pub no_data: u64,
    /// Connections whose first bytes had not yet said whether they are RDP (on another port than 3389),
    /// dropped unreported.
    pub undecided: u64,
    /// RDP sessions settled before their end (reported with what was read until then).
    pub sessions: u64,
    /// Later packets of the connections settled early (sessions, and connections without data yet), not
    /// read.
    pub late_packets: u64,
}

impl Drops {
    pub fn add(&mut self, other: &Drops) {
        self.unanswered += other.unanswered;
        self.no_data += other.no_data;
        self.undecided += other.undecided;
        self.sessions += other.sessions;
        self.late_packets += other.late_packets;
    }
}

/// What an ended connection gives.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An RDP session, settled through the dissector; `data` says whether it carried any.
    Session { trace: Box<Trace>, data: bool },
    /// A connection to the RDP port that carried no data.
    Attempt(Box<Attempt>),
}

/// One connection settled, with its place in the order sessions are reported: by the position where it
/// ended, then by its start.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The packet at which it ended ([`END`] for the end of the capture).
    pub position: u64,
    /// Time of its first packet since the Unix epoch.
    pub first_ts: Duration,
    /// The position of its first packet, to keep the order stable for those that start together.
    pub order: u64,
    pub outcome: Outcome,
}

impl Ended {
    /// The trace of a session (an attempt has none until it is reported).
    pub fn trace(&self) -> Option<&Trace> {
        match &self.outcome {
            Outcome::Session { trace, .. } => Some(trace),
            Outcome::Attempt(_) => None,
        }
    }

    pub fn trace_mut(&mut self) -> Option<&mut Trace> {
        match &mut self.outcome {
            Outcome::Session { trace, .. } => Some(trace),
            Outcome::Attempt(_) => None,
        }
    }

    /// Its trace (an attempt's built now), numbered 0.
    pub fn into_trace(self, file: &str) -> Trace {
        match self.outcome {
            Outcome::Session { trace, .. } => *trace,
            Outcome::Attempt(a) => a.trace(file, 0),
        }
    }
}

/// Follows every TCP connection of a capture (or the share of them one worker gets).
pub struct Tracker {
    limits: Limits,
    shared: Shared,
    table: Table<FlowKey, Entry, LISTS>,
    ended: Vec<Ended>,
    pub drops: Drops,
    /// For [`Tracker::frame`]: the packets fed, and the capture's clock.
    fed: u64,
    clock: Duration,
}

impl Tracker {
    /// A tracker for a replay on one thread.
    pub fn new(file: impl Into<String>, limits: Limits, secrets: Option<Arc<Secrets>>) -> Self {
        let position = Position::single();
        let servers = RdpServers::new(Arc::clone(&position));
        Tracker::with(file, limits, secrets, position, servers)
    }

    /// A tracker for one worker of a threaded replay: `position` is the worker's, `servers` shared by all.
    pub fn with(
        file: impl Into<String>,
        limits: Limits,
        secrets: Option<Arc<Secrets>>,
        position: Arc<Position>,
        rdp_servers: RdpServers,
    ) -> Self {
        Tracker {
            limits,
            shared: Shared {
                file: file.into(),
                secrets,
                rdp_servers,
                position,
                redirections: Pending::default(),
                tunnels: Tunnels::default(),
                ports: RdpPorts::default(),
            },
            // The connections, the tombstones (as many), one over each bound at most.
            table: Table::new(2 * limits.max_connections + 2),
            ended: Vec::new(),
            drops: Drops::default(),
            fed: 0,
            clock: Duration::ZERO,
        }
    }

    /// The ports RDP listens on in this capture.
    pub fn with_ports(mut self, ports: RdpPorts) -> Self {
        self.shared.ports = ports;
        self
    }

    /// Connections ended so far, taken out of the tracker; redirected sessions held for longer than their
    /// wait are let go now, at the worker's position.
    pub fn take_finished(&mut self) -> Vec<Ended> {
        let now = self.clock;
        self.shared.redirections.expire(now);
        let position = self.shared.position.now();
        let mut out = std::mem::take(&mut self.ended);
        for mut e in self.shared.redirections.released.drain(..) {
            e.position = e.position.max(position);
            out.push(e);
        }
        out
    }

    /// TLS connections that were not RDP and could not be decrypted: how many, the first one's addresses.
    pub fn opaque_tls(&self) -> crate::replay::gateway::Opaque {
        self.shared.tunnels.opaque.clone()
    }

    /// Connections followed now.
    pub fn open_connections(&self) -> usize {
        self.table.len() - self.table.len_of(GONE)
    }

    /// One decoded frame captured at `ts`, numbered and timed by the tracker itself (a replay on one thread
    /// that does not keep the capture's packet numbers, the fuzzers).
    pub fn frame(&mut self, ts: Duration, frame: &Frame<'_>) {
        self.fed += 1;
        let clock = self.clock.max(ts);
        if clock.as_secs() > self.clock.as_secs() || self.fed == 1 {
            self.tick(self.fed, clock);
        }
        self.clock = clock;
        self.packet(
            At {
                position: self.fed,
                ts,
                clock,
            },
            frame,
        );
    }

    /// One decoded frame at `at`.
    pub fn packet(&mut self, at: At, frame: &Frame<'_>) {
        self.shared.position.set(at.position);
        match frame {
            Frame::Tcp(seg) => self.segment(at, seg),
            Frame::Unreachable {
                src,
                dst,
                reporter,
                what,
            } => self.unreachable(at, *src, *dst, &format!("{what} from {reporter}")),
            Frame::Other => {}
        }
    }

    /// The capture's clock reached `clock` at `position`: unanswered SYNs and tombstones idle longer than
    /// their timeout go.
    pub fn tick(&mut self, position: u64, clock: Duration) {
        self.shared.position.set(position);
        while let Some(id) = self.table.oldest(SYN) {
            let idle = match self.table.get(id) {
                Some(Entry::Syn(s)) => time(s.activity),
                Some(Entry::Live(c)) => c.activity,
                _ => Duration::ZERO,
            };
            if clock.saturating_sub(idle) < SYN_TIMEOUT {
                break;
            }
            self.end(id, position, Gone::Ended);
        }
        while let Some(id) = self.table.oldest(GONE) {
            let idle = match self.table.get(id) {
                Some(Entry::Gone(t)) => time(t.activity),
                _ => Duration::ZERO,
            };
            if clock.saturating_sub(idle) < GONE_TIMEOUT {
                break;
            }
            self.table.remove(id);
        }
    }

    fn unreachable(&mut self, at: At, src: SocketAddr, dst: SocketAddr, what: &str) {
        let k = key(src, dst);
        let Some(id) = self.table.find(&k) else {
            return;
        };
        match self.table.get_mut(id) {
            Some(Entry::Syn(s)) => {
                let s = *s;
                let Some(mut conn) = self.promote_syn(s, &k) else {
                    return;
                };
                conn.unreachable = Some((at.ts, what.to_owned()));
                conn.last_ts = at.ts;
                self.replace(id, conn);
                self.end(id, at.position, Gone::Ended);
            }
            Some(Entry::Live(conn)) => {
                // Only a connection still waiting for its SYN-ACK fails this way.
                if conn.syn.is_none() || conn.syn_ack.is_some() || conn.payload_seen {
                    return;
                }
                conn.unreachable = Some((at.ts, what.to_owned()));
                conn.last_ts = at.ts;
                self.end(id, at.position, Gone::Ended);
            }
            _ => {}
        }
    }

    /// A small SYN entry as a whole connection.
    fn promote_syn(&self, s: SynOnly, k: &FlowKey) -> Option<Box<Conn>> {
        s.into_conn(k, self.limits.max_pending).map(Box::new)
    }

    fn replace(&mut self, id: Id, conn: Box<Conn>) {
        if let Some(e) = self.table.get_mut(id) {
            *e = Entry::Live(conn);
        }
    }

    /// The connection `seg` belongs to: looked up once for a connection already followed (nearly every
    /// packet), opened here otherwise.
    fn segment(&mut self, at: At, seg: &Segment<'_>) {
        let k = key(seg.src, seg.dst);
        let has_data = !seg.payload.is_empty() || seg.missing > 0;
        let id = match self.table.find(&k) {
            Some(id) => id,
            None => match self.open(at, k.clone(), seg, has_data) {
                Some(id) => id,
                None => return,
            },
        };
        match self.table.get_mut(id) {
            Some(Entry::Live(_)) => {}
            Some(Entry::Syn(s)) => {
                let pure_syn = seg.syn && !seg.ack_flag && !seg.rst && !seg.fin && !has_data;
                let from_client = (seg.src <= seg.dst) == s.client_is_lo;
                if pure_syn && from_client {
                    s.last_ts = nanos(at.ts);
                    s.activity = nanos(at.clock);
                    if s.seq == seg.seq {
                        if at.ts.saturating_sub(time(s.last_syn)) >= SAME_PACKET {
                            s.count += 1;
                        }
                        s.last_syn = nanos(at.ts);
                    }
                    self.table.touch(id, SYN);
                    return;
                }
                let s = *s;
                let Some(conn) = self.promote_syn(s, &k) else {
                    return;
                };
                self.replace(id, conn);
            }
            Some(Entry::Gone(t)) => {
                // A new SYN on the same addresses is a new connection (port reuse); anything else belongs
                // to the one that ended.
                let new_syn = seg.syn && !seg.ack_flag && t.syn_seq != Some(seg.seq);
                if !new_syn {
                    t.activity = nanos(at.clock);
                    if t.gone == Gone::Settled {
                        self.drops.late_packets += 1;
                    }
                    self.table.touch(id, GONE);
                    return;
                }
                self.table.remove(id);
                match self.open(at, k, seg, has_data) {
                    Some(id) if matches!(self.table.get(id), Some(Entry::Syn(_))) => return,
                    Some(id) => self.live(id, at, seg, has_data),
                    None => {}
                }
                return;
            }
            None => return,
        }
        self.live(id, at, seg, has_data);
    }

    /// A packet of a followed connection.
    fn live(&mut self, id: Id, at: At, seg: &Segment<'_>, has_data: bool) {
        let Some(Entry::Live(conn)) = self.table.get_mut(id) else {
            return;
        };
        let ts = at.ts;
        conn.last_ts = ts;
        conn.activity = at.clock;
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
                let mut out: PerEnd<Vec<Delivery>> = PerEnd::default();
                for e in <End as Pairing>::BOTH {
                    conn.streams[e].flush(&mut out[e]);
                }
                for e in <End as Pairing>::BOTH {
                    deliver(
                        conn,
                        e,
                        ts,
                        None,
                        std::mem::take(&mut out[e]),
                        &mut self.shared,
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
            deliver(conn, end, ts, in_place, out, &mut self.shared);
            if conn.streams[end].fin_reached() && conn.closed[end].is_none() {
                close(conn, end, CloseKind::Fin, ts, &mut self.shared);
                if conn.closed[end.other()].is_some() {
                    ended = true;
                }
            }
        }
        let not_rdp = matches!(conn.content, Content::NotRdp);
        let list = conn.list();
        if ended {
            self.end(id, at.position, Gone::Ended);
        } else if not_rdp {
            // Nothing more to learn from it: a tombstone keeps its later packets out.
            let syn_seq = conn.syn.map(|s| s.seq);
            if let Some(e) = self.table.get_mut(id) {
                *e = Entry::Gone(Tombstone {
                    syn_seq,
                    activity: nanos(at.clock),
                    gone: Gone::Ended,
                });
            }
            self.table.touch(id, GONE);
            self.bound_tombstones();
        } else {
            self.table.touch(id, list);
        }
    }

    /// A packet of a connection not followed now: a new connection, or nothing worth following. The new
    /// entry, if one was made.
    fn open(&mut self, at: At, k: FlowKey, seg: &Segment<'_>, has_data: bool) -> Option<Id> {
        // Pure ACKs and resets of connections that started before the capture say nothing.
        if !(seg.syn || has_data || seg.fin) || seg.rst {
            return None;
        }
        let order = at.position;
        if seg.syn && !seg.ack_flag && !seg.fin && !has_data {
            self.make_room_for_syn(at.position);
            let entry = Entry::Syn(SynOnly {
                order,
                client_is_lo: seg.src <= seg.dst,
                seq: seg.seq,
                count: 0,
                first: nanos(at.ts),
                last_syn: nanos(at.ts),
                last_ts: nanos(at.ts),
                activity: nanos(at.clock),
            });
            return Some(self.table.insert(k, entry, SYN));
        }
        self.make_room(at.position);
        let mut ends = PerEnd::new(seg.src, seg.dst);
        let mut client = None;
        let mut syn_settled_early = false;
        if seg.syn && !seg.ack_flag {
            client = Some(End::A);
        } else if seg.syn {
            // A SYN-ACK first: the capture missed the SYN, or it was settled early to make room.
            ends = PerEnd::new(seg.dst, seg.src);
            client = Some(End::A);
            syn_settled_early = self.drops.unanswered > 0;
        }
        let conn = Conn {
            order,
            ends,
            client,
            first_ts: at.ts,
            last_ts: at.ts,
            activity: at.clock,
            last_data_ts: at.ts,
            syn: None,
            syn_ack: None,
            handshake_ack: None,
            syn_settled_early,
            refused: None,
            unreachable: None,
            streams: PerEnd::from_fn(|_| Stream::new(self.limits.max_pending)),
            closed: PerEnd::default(),
            payload_seen: false,
            content: Content::Undecided {
                chunks: Vec::new(),
                bytes: 0,
            },
        };
        Some(self.table.insert(k, Entry::Live(Box::new(conn)), OPEN))
    }

    /// Keeps the connections followed within the bound: settles the least recently active of the least
    /// informative kind (INVARIANT: one list is non-empty while the bound is reached, so the loop ends).
    fn make_room(&mut self, position: u64) {
        let max = self.limits.max_connections.max(1);
        while self.open_connections() >= max {
            let Some((list, id)) = [SYN, OPEN, UNDECIDED, RDP]
                .into_iter()
                .find_map(|l| self.table.oldest(l).map(|id| (l, id)))
            else {
                return;
            };
            match list {
                SYN => self.drops.unanswered += 1,
                OPEN => self.drops.no_data += 1,
                UNDECIDED => self.drops.undecided += 1,
                _ => {
                    self.drops.sessions += 1;
                    if let Some(Entry::Live(conn)) = self.table.get_mut(id) {
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
                }
            }
            let gone = match list {
                SYN => Gone::Forgotten,
                _ => Gone::Settled,
            };
            self.end(id, position, gone);
        }
    }

    /// Makes room for one more unanswered SYN: they are kept up to half the bound (the oldest settled
    /// first), then as any connection. A SYN waits for its SYN-ACK among the SYNs that come after it: in a
    /// flood, a quarter of the bound was too short a wait for a real client's SYN-ACK (its session was
    /// then reported as an unanswered attempt and a session without its SYN), and the whole bound would
    /// keep more memory than the rest of the replay.
    fn make_room_for_syn(&mut self, position: u64) {
        let max = (self.limits.max_connections / 2).max(1);
        while self.table.len_of(SYN) >= max {
            let Some(id) = self.table.oldest(SYN) else {
                break;
            };
            self.drops.unanswered += 1;
            self.end(id, position, Gone::Forgotten);
        }
        self.make_room(position);
    }

    /// Keeps the tombstones within the connections' bound, the oldest going first: as many as there can be
    /// connections settled early while their peers are still open, so that the later packets of one do not
    /// open a connection in the middle of its stream.
    fn bound_tombstones(&mut self) {
        let max = self.limits.max_connections.max(1);
        while self.table.len_of(GONE) > max {
            let Some(id) = self.table.oldest(GONE) else {
                return;
            };
            self.table.remove(id);
        }
    }

    /// The capture is over: every connection still open ends here, in the order they started.
    pub fn finish(&mut self) {
        self.shared.position.set(END);
        let mut open: Vec<(u64, Id)> = self
            .table
            .ids()
            .into_iter()
            .filter_map(|id| match self.table.get(id)? {
                Entry::Syn(s) => Some((s.order, id)),
                Entry::Live(c) => Some((c.order, id)),
                Entry::Gone(_) => None,
            })
            .collect();
        open.sort_unstable();
        for (_, id) in open {
            self.end(id, END, Gone::Ended);
        }
        self.table = Table::new(0);
        // Gateway tunnels whose connections never ended in the capture.
        for (first_ts, order, trace) in self.shared.tunnels.finish() {
            self.redirect_or_end(Ended {
                position: END,
                first_ts,
                order,
                outcome: Outcome::Session {
                    trace: Box::new(trace),
                    data: true,
                },
            });
        }
        self.shared.redirections.release_all();
    }

    /// Ends a connection at `position`: flushes what it holds, settles it, leaves a tombstone.
    fn end(&mut self, id: Id, position: u64, gone: Gone) {
        let Some(entry) = self.table.get_mut(id) else {
            return;
        };
        let (syn_seq, activity) = match entry {
            Entry::Syn(s) => (Some(s.seq), s.activity),
            Entry::Live(c) => (c.syn.map(|s| s.seq), nanos(c.activity)),
            Entry::Gone(_) => return,
        };
        let tomb = Entry::Gone(Tombstone {
            syn_seq,
            activity,
            gone,
        });
        let ended = match std::mem::replace(entry, tomb) {
            Entry::Syn(s) => self
                .table
                .key(id)
                .and_then(|k| s.ends(k))
                .filter(|(_, server)| self.shared.ports.contains(server.port()))
                .map(|(client, server)| Ended {
                    position,
                    first_ts: time(s.first),
                    order: s.order,
                    outcome: Outcome::Attempt(Box::new({
                        let a = Attempt::from_syn(
                            client,
                            server,
                            time(s.first),
                            time(s.last_ts),
                            s.syn(),
                        );
                        if gone == Gone::Forgotten {
                            a.settled_early()
                        } else {
                            a
                        }
                    })),
                }),
            Entry::Live(conn) => self.settle(*conn, position),
            Entry::Gone(_) => None,
        };
        if gone == Gone::Forgotten {
            self.table.remove(id);
        } else {
            self.table.touch(id, GONE);
            self.bound_tombstones();
        }
        if let Some(e) = ended {
            self.redirect_or_end(e);
        }
    }

    /// A connection settled: held while it waits for the connection its redirection sent the client to,
    /// else reported. When that connection is still open, it learns where it came from.
    fn redirect_or_end(&mut self, e: Ended) {
        let Some((client, server, words)) = self.shared.redirections.finished(e, self.clock) else {
            return;
        };
        if let Some(id) = self.table.find(&key(client, server))
            && let Some(Entry::Live(next)) = self.table.get_mut(id)
            && let Content::Rdp(s) = &mut next.content
        {
            s.dissector
                .trace_mut()
                .fact_in(PhaseName::X224, Fact::RedirectedFrom, words);
        }
    }

    /// Flushes what a connection holds and settles it.
    fn settle(&mut self, mut conn: Conn, position: u64) -> Option<Ended> {
        let ts = conn.last_ts;
        if conn.refused.is_none() && conn.unreachable.is_none() {
            for end in <End as Pairing>::BOTH {
                let mut out = Vec::new();
                conn.streams[end].flush(&mut out);
                deliver(&mut conn, end, ts, None, out, &mut self.shared);
                if conn.streams[end].fin_reached() && conn.closed[end].is_none() {
                    close(&mut conn, end, CloseKind::Fin, ts, &mut self.shared);
                }
            }
        }
        super::gateway::ending(&mut conn, &mut self.shared);
        if let Content::Gateway(g) = &conn.content
            && let Some(id) = &g.joined
            && let Some((first_ts, order, trace)) = self.shared.tunnels.ended(id, ts, position)
        {
            self.redirect_or_end(Ended {
                position,
                first_ts,
                order,
                outcome: Outcome::Session {
                    trace: Box::new(trace),
                    data: true,
                },
            });
        }
        let (order, first_ts) = (conn.order, conn.first_ts);
        let outcome = match &conn.content {
            // A connection that never carried data is RDP only by its port.
            Content::Undecided { .. } => {
                let server_port = conn.client.map(|c| conn.ends[c.other()].port());
                if !server_port.is_some_and(|p| self.shared.ports.contains(p)) {
                    return None;
                }
                Outcome::Attempt(Box::new(Attempt::from_conn(&conn)))
            }
            Content::NotRdp | Content::Gateway(_) => return None,
            Content::Rdp(_) => {
                let data = conn.payload_seen;
                Outcome::Session {
                    trace: Box::new(settle(conn)?),
                    data,
                }
            }
        };
        Some(Ended {
            position,
            first_ts,
            order,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_depend_on_the_direction() {
        let a: SocketAddr = "10.0.0.1:50000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:3389".parse().unwrap();
        let v6: SocketAddr = "[::ffff:10.0.0.1]:50000".parse().unwrap();
        assert_eq!(key(a, b), key(b, a));
        assert_ne!(
            key(a, b),
            key(v6, b),
            "an IPv4-mapped IPv6 address is not the IPv4 one"
        );
    }
}
