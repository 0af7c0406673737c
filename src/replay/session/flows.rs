//! The flow table: every TCP connection of a capture, by its two addresses, from its first packet to its
//! end (both sides closed, a reset, an ICMP error, eviction, or the end of the capture).
//!
//! Each connection keeps the state of its TCP handshake and a reassembler per direction; what the streams
//! deliver goes to the connection's content ([`super::deliver`]), which classifies it and feeds the
//! dissector. An ended connection is settled ([`super::settle`]) and leaves a tombstone, so that its late
//! packets do not open a new one.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::super::gateway::Tunnels;
use super::super::link::{Frame, Segment};
use super::super::reassembly::{Delivery, Stream};
use super::super::redirect::Pending;
use super::super::tls_decrypt::Secrets;
use super::classify::Decision;
use super::settle::{close, settle, start};
use super::{Content, Finished, Limits, RdpPorts, SAME_PACKET, Shared, deliver};
use crate::trace::{CloseKind, EventKind, Fact, Millis, Pairing, PerSide, PhaseName, Side};

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

/// The two ends of a connection, in the order of the first packet seen.
type FlowKey = (SocketAddr, SocketAddr);

fn key(a: SocketAddr, b: SocketAddr) -> FlowKey {
    if a <= b { (a, b) } else { (b, a) }
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

/// One TCP connection of the capture.
pub(super) struct Conn {
    pub(super) order: u64,
    /// `ends[End::A]` sent the first packet seen.
    pub(super) ends: PerEnd<SocketAddr>,
    /// Which end is the client, once known.
    pub(super) client: Option<End>,
    pub(super) first_ts: Duration,
    pub(super) last_ts: Duration,
    /// The last packet carrying data (or a FIN), for the idle time before a close.
    pub(super) last_data_ts: Duration,
    pub(super) syn: Option<Syn>,
    pub(super) syn_ack: Option<Duration>,
    pub(super) handshake_ack: Option<Duration>,
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
}

pub(super) fn millis(d: Duration) -> Millis {
    d.as_secs_f64() * 1000.0
}

/// Rounds to microseconds for facts.
pub(super) fn round_ms(ms: f64) -> f64 {
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

/// Follows every TCP connection of a capture.
pub struct Tracker {
    limits: Limits,
    shared: Shared,
    conns: HashMap<FlowKey, Entry>,
    next_order: u64,
    finished: Vec<Finished>,
    /// The time of the latest packet.
    now: Duration,
    /// Connections dropped to stay within the bound.
    pub evicted: u64,
}

impl Tracker {
    pub fn new(file: impl Into<String>, limits: Limits, secrets: Option<Arc<Secrets>>) -> Self {
        Tracker {
            limits,
            shared: Shared {
                file: file.into(),
                secrets,
                rdp_servers: HashSet::new(),
                redirections: Pending::default(),
                tunnels: Tunnels::default(),
                ports: RdpPorts::default(),
            },
            now: Duration::ZERO,
            conns: HashMap::new(),
            next_order: 0,
            finished: Vec::new(),
            evicted: 0,
        }
    }

    /// The ports RDP listens on in this capture.
    pub fn with_ports(mut self, ports: RdpPorts) -> Self {
        self.shared.ports = ports;
        self
    }

    /// Sessions finished so far, taken out of the tracker.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        self.shared.redirections.expire(self.now);
        let mut out = std::mem::take(&mut self.finished);
        out.append(&mut self.shared.redirections.released);
        out
    }

    /// TLS connections that were not RDP and could not be decrypted: how many, the first one's addresses.
    pub fn opaque_tls(&self) -> (u64, Option<String>) {
        self.shared.tunnels.opaque.clone()
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
            let mut ends = PerEnd::new(seg.src, seg.dst);
            let mut client = None;
            if seg.syn && !seg.ack_flag {
                client = Some(End::A);
            } else if seg.syn {
                // A SYN-ACK first: the capture missed the SYN.
                ends = PerEnd::new(seg.dst, seg.src);
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
                streams: PerEnd::from_fn(|_| Stream::new(self.limits.max_pending)),
                closed: PerEnd::default(),
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
        // In the order the connections started: a broker's session ends before the session it sent the
        // client to, which is then still open to learn where it came from.
        let mut keys: Vec<(u64, FlowKey)> = self
            .conns
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::Live(c) => Some((c.order, *k)),
                Entry::Gone(_) => None,
            })
            .collect();
        keys.sort_unstable();
        for (_, k) in keys {
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
            for end in <End as Pairing>::BOTH {
                let mut out = Vec::new();
                conn.streams[end].flush(&mut out);
                deliver(&mut conn, end, ts, None, out, &mut self.shared);
                if conn.streams[end].fin_reached() && conn.closed[end].is_none() {
                    close(&mut conn, end, CloseKind::Fin, ts, &mut self.shared);
                }
            }
        }
        // A connection that never carried data is RDP only by its port.
        if matches!(conn.content, Content::Undecided { .. }) {
            let server_port = conn.client.map(|c| conn.ends[c.other()].port());
            if server_port.is_some_and(|p| self.shared.ports.contains(p)) {
                start(
                    &mut conn,
                    Decision::Rdp {
                        skip: PerEnd::default(),
                        via: None,
                    },
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
