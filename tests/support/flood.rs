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
/// fixture a third of the way in and the denied one at two thirds; `backwards` makes every other SYN
/// an hour older than the one before it.
pub fn flood(path: &Path, syns: u32, backwards: bool) -> u64 {
    let mut pcap = Pcap::create(path);
    let mut t = Duration::from_secs(1_700_000_000);
    for n in 0..syns {
        if n == syns / 3 || n == 2 * syns / 3 {
            let name = if n == syns / 3 { HEALTHY } else { DENIED };
            for (at, data) in fixture(name) {
                pcap.packet(t + at, &data);
            }
            t += Duration::from_secs(1);
        }
        let ts = if backwards && n % 2 == 1 {
            t.saturating_sub(Duration::from_secs(3600))
        } else {
            t
        };
        pcap.packet(ts, &tcp(source(n), SERVER, n, 0, Flags::Syn, &[]));
        t += Duration::from_micros(10);
    }
    let packets = pcap.packets;
    pcap.finish();
    packets
}
