//! TCP connections in a capture, which of them are RDP, and one [`Dissector`] and [`Trace`] per RDP session.
//!
//! Packets come in file order.
//! - [`flows`]: the flow table. Each connection keeps the state of its TCP handshake and a reassembler per
//!   direction, and ends when both sides closed, one reset, or the capture ends;
//! - this module: what a connection's streams deliver. Until its first bytes say whether it is RDP, they wait
//!   in a bounded buffer; then they go to the session's dissector;
//! - [`classify`]: what the first bytes say;
//! - [`settle`]: a session's trace, started when the connection is found to be RDP (the tcp phase from the
//!   handshake, the rest from the dissector), its closes, and the trace settled when the connection ends;
//! - [`attempt`]: a connection to the RDP port that carried no data, settled without a dissector;
//! - [`table`]: the map under the flow table, whose every operation is O(1).

mod attempt;
mod classify;
mod flows;
mod gateway;
mod settle;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use self::classify::{Decision, classify, speaks_rdp};
use self::flows::{Conn, End, PerEnd};
use self::settle::start;
use super::gateway::{GatewayConn, Tunnels};
use super::order::{Learned, Position};
use super::reassembly::Delivery;
use super::redirect::Pending;
use super::tls_decrypt::{Secrets, StatusHandle};
use crate::dissect::Dissector;
use crate::trace::{Millis, Side};

pub use self::attempt::{Attempt, AttemptKind, Shape};
pub use self::flows::{At, Drops, Ended, GONE_TIMEOUT, Outcome, SYN_TIMEOUT, Tracker};

/// RFC 3339 of a time since the epoch, as a trace's `started_at`.
pub fn started_at(ts: Duration) -> Option<String> {
    settle::rfc3339(ts)
}
pub(super) use self::settle::conclude;

/// The port RDP listens on unless told otherwise.
pub const RDP_PORT: u16 = 3389;

/// The ports RDP is known to listen on in a capture: [`RDP_PORT`] and those the user names (`--port`).
/// A connection to one of them is RDP even when it never carried a byte (a refused or unanswered
/// connection); elsewhere a connection is RDP only by its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdpPorts(Vec<u16>);

impl RdpPorts {
    /// [`RDP_PORT`] and `named`.
    pub fn new(named: &[u16]) -> Self {
        let mut ports = vec![RDP_PORT];
        ports.extend_from_slice(named);
        ports.sort_unstable();
        ports.dedup();
        RdpPorts(ports)
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.binary_search(&port).is_ok()
    }
}

impl Default for RdpPorts {
    fn default() -> Self {
        RdpPorts::new(&[])
    }
}
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

/// Servers (address and port) seen speaking RDP, so that a later connection to one of them that starts
/// with a TLS ClientHello is recognised; shared by the workers of a threaded replay, each reading it as of
/// the packet it handles.
#[derive(Debug, Clone)]
pub struct RdpServers {
    learned: Arc<Learned<SocketAddr, ()>>,
    at: Arc<Position>,
}

/// Servers remembered at most.
const MAX_RDP_SERVERS: usize = 1 << 16;

impl RdpServers {
    pub fn new(at: Arc<Position>) -> RdpServers {
        RdpServers {
            learned: Arc::new(Learned::new(MAX_RDP_SERVERS)),
            at,
        }
    }

    /// The same servers, read from another worker's position.
    pub fn at(&self, at: Arc<Position>) -> RdpServers {
        RdpServers {
            learned: Arc::clone(&self.learned),
            at,
        }
    }

    fn insert(&self, server: SocketAddr) {
        self.learned.learn(self.at.now(), server, ());
    }

    /// Whether `server` was seen speaking RDP before the packet handled now.
    pub(super) fn contains(&self, server: &SocketAddr) -> bool {
        self.learned.get(&self.at, server).is_some()
    }
}

/// What every session of one worker shares.
struct Shared {
    /// The capture's name, for the traces.
    file: String,
    secrets: Option<Arc<Secrets>>,
    rdp_servers: RdpServers,
    /// Where the worker is in the capture.
    position: Arc<Position>,
    /// Redirected sessions, until the client's next connection shows up.
    redirections: Pending,
    /// RD Gateway tunnels.
    tunnels: Tunnels,
    ports: RdpPorts,
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
    /// It carries the gateway's packets (the WebSocket, or the RDG_OUT_DATA or RPC_OUT_DATA channel).
    primary: bool,
}

/// An RDP connection: its dissector (and so its trace), and what it holds for it.
struct RdpSession {
    dissector: Dissector,
    decrypt: Option<StatusHandle>,
    /// Bytes still to drop at the start of each end's stream (a SOCKS5 handshake before the RDP bytes).
    skip: PerEnd<u64>,
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
fn deliver(
    conn: &mut Conn,
    end: End,
    ts: Duration,
    in_place: Option<&[u8]>,
    out: Vec<Delivery>,
    shared: &mut Shared,
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
                gateway::feed(conn, end, ts, d.into(), shared);
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
        data.as_ref().map(Vec::as_slice),
        &shared.rdp_servers,
        &shared.ports,
    );
    if decision == Decision::Wait && (over || gap) {
        decision = Decision::NotRdp;
    }
    match &decision {
        Decision::Wait => {}
        Decision::NotRdp => conn.content = Content::NotRdp,
        Decision::Tls => {
            conn.client = client;
            gateway::start(conn, shared);
        }
        Decision::Rdp { .. } => {
            conn.client = client;
            if let Some(c) = client {
                // Learned from the bytes, not the port: remember the server.
                if speaks_rdp(&data[c], &data[c.other()]) {
                    shared.rdp_servers.insert(conn.ends[c.other()]);
                }
            }
            start(conn, decision, shared);
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
