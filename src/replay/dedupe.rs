//! Copies of one packet, dropped between the capture reader and the flow table.
//!
//! Some captures hold the same packet more than once: pktmon (Windows' built-in capture tool) logs a
//! packet once per stack component it passes (the network adapter, a filter driver, the virtual switch,
//! TCP/IP), and a Linux capture on several interfaces at once (`-i any` with a bridge) sees a packet on
//! each. A copy is not a retransmission, and must not be counted as one nor fed to the reassembly twice.
//!
//! A TCP segment is a copy of one seen before when everything that a retransmission could change is the
//! same (the two addresses and ports in the same direction, the sequence and acknowledgement numbers,
//! the flags, the IPv4 identification, the payload, the bytes the snapshot length cut) and it comes within
//! [`WINDOW`] of capture time of the last copy. A real retransmission comes later (after a timeout or
//! the receiver's duplicate acknowledgements, 10 ms at the very least) and, over IPv4, normally with a
//! new identification; it goes on to the flow table and the reassembly.
//!
//! Memory is bounded: at most [`MAX_RECENT`] segments are remembered, those older than [`WINDOW`] are
//! forgotten as capture time moves on.

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

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// A fast hash with a seed of its own per process: SipHash over every payload cost more than reading the
/// capture, and a random seed keeps a crafted capture from putting its segments in one bucket.
type Fast = foldhash::fast::RandomState;
use std::net::SocketAddr;
use std::time::Duration;

use super::link::{Frame, Segment};

/// Copies of a packet come within this much capture time of each other (pktmon's stamp the same
/// microsecond or a few apart; the Linux duplicates in the public captures, at most 30 µs).
pub const WINDOW: Duration = Duration::from_millis(5);
/// Segments remembered at most.
pub const MAX_RECENT: usize = 1 << 16;
/// Payload bytes hashed, at the start of a segment.
const HASHED: usize = 64;

/// What makes two segments the same packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    ip_id: Option<u16>,
    len: usize,
    missing: u32,
    /// The hash of the payload's first [`HASHED`] bytes (its length is above). Two different payloads
    /// alike there, at the same sequence number, of the same length, would have their first bytes kept
    /// anyway (overlapping segments keep the bytes seen first): hashing the whole of a bulk capture's
    /// payload cost a tenth of its replay, and said nothing more.
    payload: u64,
}

impl Key {
    fn of(seg: &Segment<'_>, payload: u64) -> Key {
        Key {
            src: seg.src,
            dst: seg.dst,
            seq: seg.seq,
            ack: seg.ack,
            flags: u8::from(seg.syn)
                | u8::from(seg.ack_flag) << 1
                | u8::from(seg.fin) << 2
                | u8::from(seg.rst) << 3,
            ip_id: seg.ip_id,
            len: seg.payload.len(),
            missing: seg.missing,
            payload,
        }
    }
}

/// The duplicate filter of one capture.
#[derive(Debug, Default)]
pub struct Dedupe {
    /// When each remembered segment was last seen, and the number of that sighting.
    last_seen: HashMap<Key, (Duration, u64), Fast>,
    /// Every sighting remembered, in the order they came (time, key, number), to forget the old ones.
    order: VecDeque<(Duration, Key, u64)>,
    sightings: u64,
    /// Copies dropped so far.
    pub dropped: u64,
    /// The payload hash.
    payloads: Fast,
}

impl Dedupe {
    pub fn new() -> Self {
        Dedupe::default()
    }

    /// Whether the frame captured at `ts` is a copy of one seen just before (then it is counted and
    /// should be dropped). Frames that are not TCP segments are never copies.
    pub fn is_copy(&mut self, ts: Duration, frame: &Frame<'_>) -> bool {
        let Frame::Tcp(seg) = frame else {
            return false;
        };
        self.forget_before(ts);
        let payload = self
            .payloads
            .hash_one(seg.payload.get(..HASHED).unwrap_or(seg.payload));
        let key = Key::of(seg, payload);
        let copy = self
            .last_seen
            .get(&key)
            .is_some_and(|&(seen, _)| within(seen, ts));
        if copy {
            self.dropped += 1;
        }
        // A chain of copies is measured from the last one.
        self.sightings += 1;
        self.last_seen.insert(key, (ts, self.sightings));
        self.order.push_back((ts, key, self.sightings));
        while self.order.len() > MAX_RECENT {
            self.pop_oldest();
        }
        copy
    }

    /// Forgets what was seen more than [`WINDOW`] before `ts` (in the order segments were seen: a
    /// capture whose time goes backwards keeps them until [`MAX_RECENT`] pushes them out).
    fn forget_before(&mut self, ts: Duration) {
        while let Some(&(seen, _, _)) = self.order.front() {
            if seen.saturating_add(WINDOW) >= ts {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((_, key, n)) = self.order.pop_front() else {
            return;
        };
        // A key seen again later has a newer sighting further on: keep it.
        if self.last_seen.get(&key).is_some_and(|&(_, last)| last == n) {
            self.last_seen.remove(&key);
        }
    }

    /// Segments remembered now.
    pub fn remembered(&self) -> usize {
        self.last_seen.len()
    }
}

/// Whether `ts` is within [`WINDOW`] of `seen`, either way (captures merged from several interfaces are
/// not always in time order).
fn within(seen: Duration, ts: Duration) -> bool {
    let apart = if ts >= seen {
        ts.saturating_sub(seen)
    } else {
        seen.saturating_sub(ts)
    };
    apart <= WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, ip_id: Option<u16>, payload: &'static [u8]) -> Frame<'static> {
        Frame::Tcp(Segment {
            src: "10.0.0.1:50000".parse().unwrap(),
            dst: "10.0.0.2:3389".parse().unwrap(),
            seq,
            ack: 7,
            syn: false,
            ack_flag: true,
            fin: false,
            rst: false,
            ip_id,
            payload,
            missing: 0,
        })
    }

    fn at(us: u64) -> Duration {
        Duration::from_micros(1_700_000_000_000_000 + us)
    }

    #[test]
    fn copies_within_the_window_are_dropped_retransmissions_are_not() {
        let mut d = Dedupe::new();
        assert!(!d.is_copy(at(0), &seg(1, Some(5), b"abc")));
        assert!(d.is_copy(at(0), &seg(1, Some(5), b"abc")));
        assert!(d.is_copy(at(3), &seg(1, Some(5), b"abc")));
        // Another packet at the same sequence number: other bytes, another identification.
        assert!(!d.is_copy(at(4), &seg(1, Some(5), b"abd")));
        assert!(!d.is_copy(at(5), &seg(1, Some(6), b"abc")));
        // The same bytes after a retransmission timeout.
        assert!(!d.is_copy(at(300_000), &seg(1, Some(5), b"abc")));
        // A chain of copies, each within the window of the one before.
        for i in 1..=4 {
            assert!(d.is_copy(at(300_000 + i * 4_000), &seg(1, Some(5), b"abc")));
        }
        assert_eq!(d.dropped, 6);
        // Not TCP.
        assert!(!d.is_copy(at(400_000), &Frame::Other));
        assert!(!d.is_copy(at(400_000), &Frame::Other));
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = Dedupe::new();
        for i in 0..(MAX_RECENT as u32 + 1000) {
            d.is_copy(at(0), &seg(i, None, b""));
        }
        assert!(d.remembered() <= MAX_RECENT);
        // Time moves on: everything is forgotten.
        d.is_copy(at(1_000_000), &seg(0, None, b""));
        assert_eq!(d.remembered(), 1);
    }
}
