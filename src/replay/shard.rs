//! Which worker of a threaded replay ([`super::threads`]) a packet goes to: every packet of a connection
//! to the same one, and every connection of one client to the same one, so that what links connections
//! (a broker's redirection and the client's next connection, [`super::redirect`]; the two channels of an
//! RD Gateway's HTTP transport, [`super::gateway`]) is seen by one worker.
//!
//! A connection goes by its client's address. The client is the end that sent the SYN; servers are
//! learnt from the SYNs (and SYN-ACKs) seen. A connection whose SYN is not in the capture, between ends
//! none of which is a known server, goes by the end with the higher port (an ephemeral port above the
//! server's, as a rule), and that choice is kept for it, so that a server learnt later does not move it.
//! Both memories are bounded; past their bounds a connection may be decided again, by the same rules.
//!
//! A client seen for the first time goes to the worker that has had the fewest packets lately, and stays
//! with it: a hash of the addresses would leave the workers' shares as uneven as chance makes them (one
//! worker with 54% of a capture of 494 clients), and the replay as slow as its busiest worker. The
//! reader decides alone, in file order, so the same capture is always shared the same way. Past
//! [`MAX_CLIENTS`] a new client goes by its address's hash.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

type Fast = foldhash::fast::RandomState;

/// Servers remembered at most (a scan of more addresses than this has nothing to link).
const MAX_SERVERS: usize = 65_536;
/// Clients remembered with their worker at most.
const MAX_CLIENTS: usize = 16_384;
/// The workers' loads are halved every this many packets: what counts is the packets of the sessions open
/// now, which a new client's will add to.
const DECAY_EVERY: u64 = 16_384;
/// Connections decided by their ports remembered at most.
const MAX_GUESSED: usize = 65_536;
/// Recent decisions kept in front of the rules, by their ports (a power of two).
const RECENT: usize = 256;

/// The reader's memory of who is the server.
#[derive(Debug)]
pub struct Sharder {
    workers: usize,
    servers: HashSet<SocketAddr, Fast>,
    /// Clients and their worker.
    clients: HashMap<IpAddr, usize, Fast>,
    /// Packets handed to each worker lately: halved every [`DECAY_EVERY`] packets.
    loads: Vec<u64>,
    since_decay: u64,
    /// Connections decided without a known server: their two ends, the lower first, and their worker.
    guessed: HashMap<(SocketAddr, SocketAddr), usize, Fast>,
    /// Recent decisions (the two ends, the lower first), in a slot picked by their ports: the packets of a
    /// connection come in runs, and the rules cost two set lookups. Forgotten whenever a server is learnt,
    /// as that can change a decision.
    recent: Vec<Option<((SocketAddr, SocketAddr), usize)>>,
}

impl Sharder {
    pub fn new(workers: usize) -> Sharder {
        Sharder {
            workers: workers.max(1),
            servers: HashSet::default(),
            clients: HashMap::default(),
            loads: vec![0; workers.max(1)],
            since_decay: 0,
            guessed: HashMap::default(),
            recent: vec![None; RECENT],
        }
    }

    /// The worker of a TCP segment from `src` to `dst` with flags `syn` and `ack`.
    pub fn segment(&mut self, src: SocketAddr, dst: SocketAddr, syn: bool, ack: bool) -> usize {
        if syn
            && self.servers.len() < MAX_SERVERS
            && self.servers.insert(if ack { src } else { dst })
        {
            self.recent.fill(None);
        }
        self.of(src, dst)
    }

    /// The worker of a packet between `a` and `b` (either way).
    pub fn of(&mut self, a: SocketAddr, b: SocketAddr) -> usize {
        let ends = if a <= b { (a, b) } else { (b, a) };
        let slot = usize::from(a.port() ^ b.port()) & (RECENT - 1);
        let w = match self.recent.get(slot) {
            Some(Some((seen, w))) if *seen == ends => *w,
            _ => {
                let w = self.decide(a, b, ends);
                if let Some(recent) = self.recent.get_mut(slot) {
                    *recent = Some((ends, w));
                }
                w
            }
        };
        if let Some(load) = self.loads.get_mut(w) {
            *load += 1;
        }
        self.since_decay += 1;
        if self.since_decay >= DECAY_EVERY {
            self.since_decay = 0;
            for load in &mut self.loads {
                *load /= 2;
            }
        }
        w
    }

    /// [`Self::of`] by the rules.
    fn decide(&mut self, a: SocketAddr, b: SocketAddr, ends: (SocketAddr, SocketAddr)) -> usize {
        if !self.guessed.is_empty()
            && let Some(w) = self.guessed.get(&ends)
        {
            return *w;
        }
        if self.servers.contains(&b) {
            return self.client(a.ip());
        }
        if self.servers.contains(&a) {
            return self.client(b.ip());
        }
        let client = if a.port() >= b.port() { a } else { b };
        let w = self.client(client.ip());
        if self.guessed.len() < MAX_GUESSED {
            self.guessed.insert(ends, w);
        }
        w
    }

    /// The worker of client `ip`: the one it was given, or, for a new client, the one with the fewest
    /// packets lately (the first of them on a tie).
    fn client(&mut self, ip: IpAddr) -> usize {
        if let Some(w) = self.clients.get(&ip) {
            return *w;
        }
        if self.clients.len() >= MAX_CLIENTS {
            return self.hash(ip);
        }
        let w = self
            .loads
            .iter()
            .enumerate()
            .min_by_key(|(w, load)| (**load, *w))
            .map_or(0, |(w, _)| w);
        self.clients.insert(ip, w);
        w
    }

    /// FNV-1a of an address (IPv4 as IPv4-mapped IPv6), its bits mixed (MurmurHash3's finalizer): the same
    /// from run to run. FNV-1a alone keeps the low bits of the bytes in the low bits of the hash, so that
    /// modulo 2 or 4 it would put every client whose last two octets are even on one worker.
    fn hash(&self, ip: IpAddr) -> usize {
        let bytes = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in bytes {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        // INVARIANT: `workers` is at least 1, and the result below it fits a usize.
        (h % self.workers as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Clients whose addresses differ only in bits a plain FNV-1a drops modulo 2 and 4 (even last two
    /// octets) spread over the workers.
    #[test]
    fn clients_spread_over_the_workers() {
        for n in [2usize, 4] {
            let s = Sharder::new(n);
            let mut counts = vec![0u32; n];
            for i in 0..1024u32 {
                let (a, b) = ((i / 32) as u8, (i % 32) as u8);
                let ip = std::net::Ipv4Addr::new(10, 0, a * 2, b * 2);
                let w = s.hash(IpAddr::V4(ip));
                if let Some(c) = counts.get_mut(w) {
                    *c += 1;
                }
            }
            let fair = 1024 / n as u32;
            assert!(
                counts.iter().all(|&c| c > fair * 3 / 4 && c < fair * 5 / 4),
                "{n} workers: {counts:?}"
            );
        }
    }

    #[test]
    fn a_clients_connections_go_to_one_worker() {
        for n in 1..6 {
            let mut s = Sharder::new(n);
            let client = addr("127.0.0.1:42332");
            let broker = addr("127.0.0.1:45489");
            let host = addr("127.0.0.2:40000");
            let w = s.segment(client, broker, true, false);
            assert!(w < n);
            assert_eq!(s.segment(broker, client, true, true), w);
            assert_eq!(s.segment(client, broker, false, true), w);
            // The session host listens on a port below the client's next one, and above it.
            assert_eq!(s.segment(addr("127.0.0.1:42400"), host, true, false), w);
            assert_eq!(
                s.segment(
                    addr("127.0.0.1:39000"),
                    addr("127.0.0.3:41000"),
                    true,
                    false
                ),
                w
            );
        }
    }

    #[test]
    fn a_remembered_decision_follows_a_server_learnt_later() {
        let (client, server) = (addr("10.0.0.5:40000"), addr("10.0.0.9:3389"));
        let other = addr("10.0.0.77:50000");
        let learn = |s: &mut Sharder| {
            let _ = s.segment(client, server, true, false);
        };
        let mut s = Sharder::new(7);
        learn(&mut s);
        let _ = s.of(server, client);
        // The client's address turns out to be a server too (something connected to it).
        let _ = s.segment(other, client, true, false);
        // What the rules say now, without what was remembered.
        let ends = (client.min(server), client.max(server));
        let rules = s.decide(server, client, ends);
        assert_eq!(s.of(server, client), rules);
        assert_eq!(rules, s.client(server.ip()));
        assert_ne!(s.client(server.ip()), s.client(client.ip()));
    }

    #[test]
    fn a_connection_seen_before_its_server_keeps_its_worker() {
        let mut s = Sharder::new(7);
        // The capture starts in the middle: the server's port is the higher one, so the guess is wrong.
        let (client, server) = (addr("10.0.0.5:1500"), addr("10.0.0.9:50000"));
        let first = s.segment(server, client, false, true);
        // A SYN of another client then shows the server for what it is.
        let _ = s.segment(addr("10.0.0.6:40000"), server, true, false);
        assert_eq!(s.segment(client, server, false, true), first);
        assert_eq!(s.segment(server, client, false, true), first);
    }

    /// Clients whose addresses a hash puts mostly on one worker, one after the other, each with the same
    /// number of packets: the workers get shares that differ by at most one client's.
    #[test]
    fn new_clients_go_to_the_least_loaded_worker() {
        const PACKETS: u64 = 100;
        let server = addr("10.0.0.1:3389");
        for n in [2usize, 3] {
            let mut s = Sharder::new(n);
            let mut shares = vec![0u64; n];
            // The clients a hash gives worker 0.
            let clients: Vec<SocketAddr> = (2..=255u8)
                .map(|i| SocketAddr::from(([10, 0, 1, i], 50_000)))
                .filter(|c| s.hash(c.ip()) == 0)
                .take(12)
                .collect();
            for client in &clients {
                let w = s.segment(*client, server, true, false);
                for _ in 1..PACKETS {
                    assert_eq!(s.segment(server, *client, false, true), w);
                }
                if let Some(share) = shares.get_mut(w) {
                    *share += PACKETS;
                }
            }
            let (most, least) = (shares.iter().max(), shares.iter().min());
            assert!(
                most.zip(least).is_some_and(|(m, l)| m - l <= PACKETS),
                "{n} workers: {shares:?}"
            );
        }
    }
}
