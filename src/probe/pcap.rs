//! `--pcap`: the probe's own session as a pcapng file, with the real bytes in synthesized IP and TCP
//! headers (consistent sequence and acknowledgement numbers), and with `--embed-secrets` the TLS secrets as a
//! Decryption Secrets Block, so that Wireshark and `rdptrace replay` open it decrypted.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::blocks::section_header::SectionHeaderBlock;
use pcap_file::pcapng::blocks::unknown::UnknownBlock;
use pcap_file::pcapng::{Block, PcapNgWriter};

use crate::trace::{CloseKind, PerSide, Side};

/// The most TCP payload per synthesized segment.
const MSS: usize = 1460;
/// The most bytes of packets a recorder keeps; past this the capture is cut and says so.
pub const MAX_CAPTURE: usize = 64 << 20;
/// [pcapng] 4.7 Decryption Secrets Block type, and the TLS key log secrets type.
const DSB_TYPE: u32 = 0x0000_000a;
const SECRETS_TLS_KEY_LOG: u32 = 0x544c_534b;

/// Records a session as packets.
#[derive(Debug)]
pub struct Recorder {
    client: SocketAddr,
    server: SocketAddr,
    /// Wall-clock time of the probe's start; packet times are offsets from it.
    epoch: Duration,
    /// Next sequence number of each side.
    seq: PerSide<u32>,
    packets: Vec<(Duration, Vec<u8>)>,
    bytes: usize,
    /// The capture was cut at [`MAX_CAPTURE`].
    pub truncated: bool,
    closed: PerSide<bool>,
}

impl Recorder {
    /// A recorder for a connection from `client` to `server`; `started` is when the probe started.
    pub fn new(client: SocketAddr, server: SocketAddr, started: SystemTime) -> Self {
        Recorder {
            client,
            server,
            epoch: started.duration_since(UNIX_EPOCH).unwrap_or_default(),
            seq: PerSide::new(0x1000_0000, 0x5000_0000),
            packets: Vec::new(),
            bytes: 0,
            truncated: false,
            closed: PerSide::default(),
        }
    }

    fn ends(&self, from: Side) -> (SocketAddr, SocketAddr) {
        match from {
            Side::Client => (self.client, self.server),
            Side::Server => (self.server, self.client),
        }
    }

    /// One TCP segment from `from` with these flags and payload.
    fn segment(&mut self, from: Side, at_ms: f64, flags: Flags, payload: &[u8]) {
        if self.bytes + payload.len() + 64 > MAX_CAPTURE {
            self.truncated = true;
            return;
        }
        let (src, dst) = self.ends(from);
        let seq = self.seq[from];
        let ack = self.seq[from.other()];
        let Ok(packet) = tcp_packet(src, dst, seq, ack, flags, payload) else {
            return;
        };
        let advance = payload.len() as u32 + u32::from(flags.syn) + u32::from(flags.fin);
        self.seq[from] = seq.wrapping_add(advance);
        self.bytes += packet.len();
        let at = Duration::from_secs_f64((at_ms.max(0.0)) / 1000.0);
        self.packets.push((self.epoch + at, packet));
    }

    /// The three-way handshake, at the time the connect completed.
    pub fn handshake(&mut self, at_ms: f64) {
        self.segment(Side::Client, at_ms, Flags::SYN, &[]);
        self.segment(Side::Server, at_ms, Flags::SYN_ACK, &[]);
        self.segment(Side::Client, at_ms, Flags::ACK, &[]);
    }

    /// Bytes from `from`, cut into segments.
    pub fn data(&mut self, from: Side, at_ms: f64, bytes: &[u8]) {
        if self.closed[from] {
            return;
        }
        for chunk in bytes.chunks(MSS) {
            self.segment(from, at_ms, Flags::ACK, chunk);
        }
    }

    /// `from` closed (FIN) or reset (RST) the connection.
    pub fn close(&mut self, from: Side, how: CloseKind, at_ms: f64) {
        if self.closed[from] {
            return;
        }
        self.closed[from] = true;
        match how {
            CloseKind::Fin => self.segment(from, at_ms, Flags::FIN_ACK, &[]),
            CloseKind::Rst => {
                self.segment(from, at_ms, Flags::RST_ACK, &[]);
                self.closed[from.other()] = true;
            }
        }
    }

    /// Takes in the packets of another connection (a gateway's second channel), in time order.
    pub fn merge(&mut self, other: &Recorder) {
        self.truncated |= other.truncated;
        self.bytes += other.bytes;
        self.packets.extend(other.packets.iter().cloned());
        self.packets.sort_by_key(|(ts, _)| *ts);
    }

    /// Writes the capture; `secrets` (NSS key log lines) go into a Decryption Secrets Block first.
    pub fn write(&self, path: &Path, secrets: Option<&str>) -> Result<(), String> {
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let section = SectionHeaderBlock {
            endianness: pcap_file::Endianness::Little,
            ..SectionHeaderBlock::default()
        };
        let mut writer = PcapNgWriter::with_section_header(std::io::BufWriter::new(file), section)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let err = |e: pcap_file::pcapng::PcapNgWriteError| {
            format!("cannot write {}: {e}", path.display())
        };
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::RAW,
            snaplen: 0,
            options: vec![],
        };
        writer.write_pcapng_block(idb).map_err(err)?;
        if let Some(secrets) = secrets.filter(|s| !s.is_empty()) {
            let mut value = Vec::with_capacity(secrets.len() + 12);
            value.extend_from_slice(&SECRETS_TLS_KEY_LOG.to_le_bytes());
            value.extend_from_slice(&(secrets.len() as u32).to_le_bytes());
            value.extend_from_slice(secrets.as_bytes());
            while value.len() % 4 != 0 {
                value.push(0);
            }
            let block = Block::Unknown(UnknownBlock {
                type_: DSB_TYPE,
                length: (value.len() + 12) as u32,
                value: Cow::Owned(value),
            });
            writer.write_block(&block).map_err(err)?;
        }
        for (ts, data) in &self.packets {
            let epb = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: *ts,
                original_len: data.len() as u32,
                data: Cow::Borrowed(data),
                options: vec![],
            };
            writer.write_pcapng_block(epb).map_err(err)?;
        }
        Ok(())
    }
}

/// The TCP flags of a segment rdptrace writes into a capture.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// An IP packet holding one TCP segment from `src` to `dst` (PSH when it carries a payload).
pub(crate) fn tcp_packet(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: Flags,
    payload: &[u8],
) -> Result<Vec<u8>, etherparse::err::packet::BuildWriteError> {
    let builder = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        // A mixed pair cannot happen on one socket; keep the capture consistent anyway.
        _ => PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64),
    };
    let mut tcp = builder.tcp(src.port(), dst.port(), seq, 65535);
    if flags.syn {
        tcp = tcp.syn();
    }
    if flags.ack {
        tcp = tcp.ack(ack);
    }
    if flags.fin {
        tcp = tcp.fin();
    }
    if flags.rst {
        tcp = tcp.rst();
    }
    if !payload.is_empty() {
        tcp = tcp.psh();
    }
    let mut packet = Vec::with_capacity(tcp.size(payload.len()));
    tcp.write(&mut packet, payload)?;
    Ok(packet)
}

impl Flags {
    const SYN: Flags = Flags {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
    };
    const SYN_ACK: Flags = Flags {
        syn: true,
        ack: true,
        fin: false,
        rst: false,
    };
    const ACK: Flags = Flags {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
    };
    const FIN_ACK: Flags = Flags {
        syn: false,
        ack: true,
        fin: true,
        rst: false,
    };
    const RST_ACK: Flags = Flags {
        syn: false,
        ack: true,
        fin: false,
        rst: true,
    };
}
