//! RD Gateway sessions in a capture ([MS-TSGU]): a connection whose client starts with a TLS ClientHello and
//! is not RDP is opened with the secrets given; when its first request is RDG_OUT_DATA or RDG_IN_DATA it is
//! a gateway connection ([`conn`]), and the connections that share an RDG-Connection-Id (the two channels of
//! the HTTP transport, or the one WebSocket) make one tunnel ([`tunnel`]): one session whose trace has the
//! gateway's phases, then the RDP connection inside. TLS that cannot be opened is counted, so that a replay
//! that finds no RDP session can say that an RD Gateway's would need its secrets.

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

pub mod conn;
pub mod shape;
pub mod tunnel;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use conn::{GatewayConn, Item, Verdict};
pub use tunnel::Tunnel;

use super::order::{END, Position};
use super::tls_decrypt::{Decryptor, Secrets};
use crate::trace::{CloseKind, Side, Trace};

/// Tunnels followed at once; over it new gateway connections are not followed.
const MAX_TUNNELS: usize = 4096;

/// Where a connection was settled: the position of the packet that settled it ([`END`] for those settled
/// at the end of the capture), then the position of its first packet. The least is the first, on one
/// thread or several.
pub type Settled = (u64, u64);

/// TLS connections that are not RDP and could not be decrypted: how many, and the first one (where it was
/// settled, its addresses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Opaque(pub u64, pub Option<(Settled, String)>);

impl Opaque {
    /// Another reading's (a worker's), added to this one: the first is the least settled.
    pub fn merge(&mut self, other: Opaque) {
        self.0 += other.0;
        if let Some((theirs, _)) = &other.1
            && self.1.as_ref().is_none_or(|(kept, _)| theirs < kept)
        {
            self.1 = other.1;
        }
    }

    /// The first one's addresses ("" when there is none).
    pub fn first(&self) -> &str {
        self.1.as_ref().map_or("", |(_, addrs)| addrs.as_str())
    }
}

/// The tunnels of a capture, by RDG-Connection-Id, and the TLS connections nobody could open.
#[derive(Default)]
pub struct Tunnels {
    open: HashMap<String, Tunnel>,
    pub opaque: Opaque,
}

impl Tunnels {
    /// Whether tunnel `id` is followed.
    pub fn has(&self, id: &str) -> bool {
        self.open.contains_key(id)
    }

    /// A new tunnel `id`, whose first connection is `conn`: `trace` holds its `gateway_connect` phase (the
    /// TCP handshake). `false` when the bound is reached.
    pub fn create(
        &mut self,
        id: &str,
        trace: Trace,
        conn: &mut GatewayConn,
        first_ts: Duration,
        order: u64,
        secrets: Option<(&Arc<Secrets>, &Arc<Position>)>,
    ) -> bool {
        if self.open.len() >= MAX_TUNNELS {
            return false;
        }
        let inner = secrets.map(|(s, position)| {
            let d = Decryptor::at(Arc::clone(s), Arc::clone(position));
            let status = d.status();
            (
                Box::new(d) as Box<dyn crate::dissect::TlsRecordSink>,
                status,
            )
        });
        let t = Tunnel::new(trace, conn, first_ts, order, inner);
        self.open.insert(id.to_owned(), t);
        true
    }

    /// Another connection of tunnel `id` (the other channel of the HTTP transport).
    pub fn join(&mut self, id: &str) -> bool {
        match self.open.get_mut(id) {
            Some(t) => {
                t.join();
                true
            }
            None => false,
        }
    }

    /// Items a connection of tunnel `id` read.
    pub fn apply(&mut self, id: &str, items: Vec<Item>) {
        if let Some(t) = self.open.get_mut(id) {
            t.apply(items);
        }
    }

    /// A connection of tunnel `id` closed.
    pub fn closed(&mut self, id: &str, by: Side, how: CloseKind, ts: Duration, primary: bool) {
        if let Some(t) = self.open.get_mut(id) {
            t.closed(by, how, ts, primary);
        }
    }

    /// A connection of tunnel `id` ended: the tunnel, settled, when it was the last (its first packet's
    /// time, its order, its trace).
    pub fn ended(
        &mut self,
        id: &str,
        ts: Duration,
        position: u64,
    ) -> Option<(Duration, u64, Trace)> {
        let last = self.open.get_mut(id)?.conn_ended(ts);
        if !last {
            return None;
        }
        let t = self.open.remove(id)?;
        let (first_ts, order) = (t.first_ts, t.order);
        match t.settle() {
            Ok(trace) => Some((first_ts, order, trace)),
            Err(addrs) => {
                self.opaque((position, order), addrs);
                None
            }
        }
    }

    /// The capture is over: every tunnel still open, settled.
    pub fn finish(&mut self) -> Vec<(Duration, u64, Trace)> {
        let open: Vec<Tunnel> = self.open.drain().map(|(_, t)| t).collect();
        let mut settled = Vec::new();
        for t in open {
            let (first_ts, order) = (t.first_ts, t.order);
            match t.settle() {
                Ok(trace) => settled.push((first_ts, order, trace)),
                Err(addrs) => self.opaque((END, order), addrs),
            }
        }
        settled
    }

    /// A TLS connection that could not be opened, settled `at`.
    pub fn opaque(&mut self, at: Settled, addrs: String) {
        self.opaque.merge(Opaque(1, Some((at, addrs))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections settled at the end of the capture come out of a hash map in any order: the first is
    /// the one whose first packet came first.
    #[test]
    fn the_first_opaque_connection_is_the_least_settled() {
        let mut t = Tunnels::default();
        t.opaque((END, 9), "b".to_owned());
        t.opaque((END, 3), "a".to_owned());
        t.opaque((END, 7), "c".to_owned());
        assert_eq!(t.opaque.0, 3);
        assert_eq!(t.opaque.1, Some(((END, 3), "a".to_owned())));
        t.opaque((100, 50), "d".to_owned());
        assert_eq!(t.opaque.1, Some(((100, 50), "d".to_owned())));
    }
}
