//! A connection to the RDP port that carried no data: a SYN never answered, refused or unreachable, or a
//! connection made and left without a byte. Scans and floods are made of them. Each is kept as the handful
//! of values the capture shows of it, and its trace is built only when it is shown; [`Attempt::shape`] is
//! what its report depends on besides its client, its start and its number, so that a report can be made
//! once for many attempts alike.

use std::net::SocketAddr;
use std::time::Duration;

use super::flows::{Conn, Syn, millis};
use super::settle::{Handshake, rfc3339};
use crate::dissect::Dissector;
use crate::trace::{EventKind, PhaseName, Trace};

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttemptKind {
    /// SYNs that nothing answered.
    Unanswered,
    /// The server answered the SYN with a reset.
    Refused,
    /// An ICMP error answered the SYN.
    Unreachable,
    /// The connection was made and carried no data.
    NoData,
}

/// A connection to the RDP port that carried no data.
#[derive(Debug, Clone)]
pub struct Attempt {
    handshake: Handshake,
    /// Either side closed it (FIN or RST).
    closed: bool,
    /// Settled before its timeout to make room in the flow table: an answer may have come later.
    settled_early: bool,
}

/// Everything an attempt's report depends on but its client address, its start and its number: times
/// are relative to its start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    kind: AttemptKind,
    server: SocketAddr,
    closed: bool,
    /// Nanoseconds after the start: the last packet, the last data, the SYN's first and last copy, the
    /// SYN-ACK, the handshake's ACK, the reset or ICMP error.
    times: [Option<u64>; 7],
    /// SYN retransmissions.
    syn: Option<u32>,
    unreachable: Option<String>,
    settled_early: bool,
}

impl Attempt {
    /// A connection that sent only SYNs.
    pub(super) fn from_syn(
        client: SocketAddr,
        server: SocketAddr,
        first_ts: Duration,
        last_ts: Duration,
        syn: Syn,
    ) -> Attempt {
        Attempt {
            handshake: Handshake {
                client,
                server,
                first_ts,
                last_ts,
                last_data_ts: first_ts,
                syn: Some(syn),
                syn_ack: None,
                handshake_ack: None,
                syn_settled_early: false,
                refused: None,
                unreachable: None,
            },
            closed: false,
            settled_early: false,
        }
    }

    /// The same attempt, settled before its timeout to make room in the flow table.
    pub(super) fn settled_early(mut self) -> Attempt {
        self.settled_early = true;
        self
    }

    /// A connection whose bytes never started.
    pub(super) fn from_conn(conn: &Conn) -> Attempt {
        Attempt {
            handshake: Handshake::of(conn),
            closed: conn.closed.iter().any(Option::is_some),
            settled_early: false,
        }
    }

    pub fn client(&self) -> SocketAddr {
        self.handshake.client
    }

    pub fn server(&self) -> SocketAddr {
        self.handshake.server
    }

    /// Time of its first packet since the Unix epoch.
    pub fn first_ts(&self) -> Duration {
        self.handshake.first_ts
    }

    /// Its start, RFC 3339, as its trace has it.
    pub fn started_at(&self) -> Option<String> {
        rfc3339(self.handshake.first_ts)
    }

    pub fn kind(&self) -> AttemptKind {
        let h = &self.handshake;
        if h.refused.is_some() {
            AttemptKind::Refused
        } else if h.unreachable.is_some() {
            AttemptKind::Unreachable
        } else if h.never_connected(false) {
            AttemptKind::Unanswered
        } else {
            AttemptKind::NoData
        }
    }

    pub fn shape(&self) -> Shape {
        let h = &self.handshake;
        let rel = |t: Duration| u64::try_from(t.saturating_sub(h.first_ts).as_nanos()).ok();
        Shape {
            kind: self.kind(),
            server: h.server,
            closed: self.closed,
            times: [
                rel(h.last_ts),
                rel(h.last_data_ts),
                h.syn.and_then(|s| rel(s.first)),
                h.syn.and_then(|s| rel(s.last)),
                h.syn_ack.and_then(rel),
                h.handshake_ack.and_then(rel),
                h.refused
                    .or(h.unreachable.as_ref().map(|u| u.0))
                    .and_then(rel),
            ],
            syn: h.syn.map(|s| s.count),
            unreachable: h.unreachable.as_ref().map(|u| u.1.clone()),
            settled_early: self.settled_early,
        }
    }

    /// Its trace, as a session of `file` numbered `session`: the one the dissector would have given a
    /// connection that never carried a byte.
    pub fn trace(&self, file: &str, session: usize) -> Trace {
        let h = &self.handshake;
        let mut trace = h.trace(file, PhaseName::Tcp);
        if let crate::trace::Origin::Replay { session: n, .. } = &mut trace.origin {
            *n = session;
        }
        if !self.closed && !h.never_connected(false) {
            let mut d = Dissector::new(trace);
            d.on_capture_end(millis(h.last_ts.saturating_sub(h.first_ts)));
            trace = d.into_trace();
        }
        if self.settled_early {
            let at = millis(h.last_ts.saturating_sub(h.first_ts));
            trace.record_event_in(
                PhaseName::Tcp,
                at,
                EventKind::Anomaly {
                    detail: "rdptrace settled this attempt before its timeout, to make room for newer connections in the flow table (a flood): an answer after this is not in the report".to_owned(),
                },
            );
        }
        if h.settle_never_connected(&mut trace, false) {
            return trace;
        }
        if !self.closed {
            h.idle_at_end(&mut trace);
        }
        // It never reached the active state: the phase it is in failed.
        trace.finish(true);
        trace
    }
}
