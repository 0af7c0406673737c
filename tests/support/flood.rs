//! Captures written for the tests of the replay at scale: a pcap written as it goes, raw IPv4/TCP
//! packets, floods of unanswered SYNs with the fixtures' real sessions inside.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use etherparse::PacketBuilder;

/// LINKTYPE_RAW: packets start with their IP header, as in the fixtures.
const RAW: u32 = 101;
/// Where the flood goes.
pub const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 3389);

/// A pcap file written as it goes.
pub struct Pcap {
    out: BufWriter<File>,
    pub packets: u64,
}

impl Pcap {
    pub fn create(path: &Path) -> Pcap {
        let mut out = BufWriter::new(File::create(path).expect("create capture"));
        for word in [0xa1b2_c3d4u32.to_le_bytes().as_slice(), &2u16.to_le_bytes()] {
            out.write_all(word).expect("write");
        }
        out.write_all(&4u16.to_le_bytes()).expect("write");
        out.write_all(&0i32.to_le_bytes()).expect("write");
        out.write_all(&0u32.to_le_bytes()).expect("write");
        out.write_all(&65535u32.to_le_bytes()).expect("write");
        out.write_all(&RAW.to_le_bytes()).expect("write");
        Pcap { out, packets: 0 }
    }

    pub fn packet(&mut self, ts: Duration, data: &[u8]) {
        let secs = u32::try_from(ts.as_secs()).expect("time fits");
        let len = u32::try_from(data.len()).expect("length fits");
        for word in [secs, ts.subsec_micros(), len, len] {
            self.out.write_all(&word.to_le_bytes()).expect("write");
        }
        self.out.write_all(data).expect("write");
        self.packets += 1;
    }

    pub fn finish(mut self) {
        self.out.flush().expect("flush capture");
    }
}

/// TCP flags of [`tcp`].
#[derive(Clone, Copy)]
pub enum Flags {
    Syn,
    SynAck,
    Ack,
    Rst,
}

/// A raw IPv4 / TCP packet.
pub fn tcp(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64).tcp(
        src.port(),
        dst.port(),
        seq,
        64240,
    );
    b = match f {
        Flags::Syn => b.syn(),
        Flags::SynAck => b.syn().ack(ack),
        Flags::Ack => b.ack(ack),
        Flags::Rst => b.rst(),
    };
    if !payload.is_empty() {
        b = b.psh();
    }
    let mut out = Vec::with_capacity(40 + payload.len());
    b.write(&mut out, payload).expect("build packet");
    out
}

/// The `n`th source of a flood: 11.0.0.0 and on, each with a port of its own.
pub fn source(n: u32) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(0x0b00_0000u32 + n),
        1024 + (n % 60_000) as u16,
    )
}

/// The packets of a fixture (a real session recorded by the probe), with their time from its first.
pub fn fixture(name: &str) -> Vec<(Duration, Vec<u8>)> {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let mut r =
        PcapNgReader::new(File::open(&path).expect("open fixture")).expect("pcapng fixture");
    let mut out = Vec::new();
    while let Some(block) = r.next_block() {
        if let (Block::EnhancedPacket(p), _) = block.expect("fixture block") {
            out.push((p.timestamp, p.data.into_owned()));
        }
    }
    let first = out.first().map(|(t, _)| *t).expect("fixture packets");
    out.into_iter().map(|(t, d)| (t - first, d)).collect()
}

/// The client addresses of the two fixtures, as the reports show them.
const HEALTHY: &str = "healthy.pcapng";
const DENIED: &str = "denied-connection.pcapng";

/// Writes `syns` unanswered SYNs to [`SERVER`] from as many sources, 10 µs apart, with the healthy
/// fixture a third of the way in and the denied one at two thirds, `between` SYNs after each of their
/// packets; `backwards` makes every other SYN an hour older than the one before it; `answered` makes
/// each SYN a whole handshake (SYN, SYN-ACK, ACK) of a connection that then carries nothing.
pub fn flood(path: &Path, syns: u32, backwards: bool, between: u32, answered: bool) -> u64 {
    let mut f = Flood {
        pcap: Pcap::create(path),
        t: Duration::from_secs(1_700_000_000),
        written: 0,
        syns,
        backwards,
        answered,
    };
    for (name, at) in [(HEALTHY, syns / 3), (DENIED, 2 * syns / 3)] {
        while f.written < at {
            f.syn();
        }
        let base = f.t;
        for (offset, data) in fixture(name) {
            f.t = f.t.max(base + offset);
            f.pcap.packet(f.t, &data);
            for _ in 0..between {
                f.syn();
            }
        }
        f.t += Duration::from_secs(1);
    }
    while f.written < syns {
        f.syn();
    }
    let packets = f.pcap.packets;
    f.pcap.finish();
    packets
}

struct Flood {
    pcap: Pcap,
    t: Duration,
    written: u32,
    syns: u32,
    backwards: bool,
    answered: bool,
}

impl Flood {
    /// The next SYN of the flood, if any are left.
    fn syn(&mut self) {
        if self.written >= self.syns {
            return;
        }
        let n = self.written;
        let ts = if self.backwards && n % 2 == 1 {
            self.t.saturating_sub(Duration::from_secs(3600))
        } else {
            self.t
        };
        let client = source(n);
        self.pcap
            .packet(ts, &tcp(client, SERVER, n, 0, Flags::Syn, &[]));
        if self.answered {
            let answer = tcp(SERVER, client, 7, n.wrapping_add(1), Flags::SynAck, &[]);
            self.pcap.packet(ts, &answer);
            let ack = tcp(client, SERVER, n.wrapping_add(1), 8, Flags::Ack, &[]);
            self.pcap.packet(ts, &ack);
        }
        self.t += Duration::from_micros(10);
        self.written += 1;
    }
}
