//! Synthetic captures for the benchmarks: many RDP sessions built from real exchanges.
//!
//! The templates are sessions the probe recorded against the built-in target (`fixtures/synth/*.pcapng`,
//! written by `bench/record-templates.sh` with `--pcap --embed-secrets`): one that reaches the active
//! state, one that is ended by the server once active, and one that fails in each phase before. [`generate`]
//! plays them again as many sessions, interleaved, each with addresses, ports and initial sequence numbers
//! of its own and a client random of its own (whose key log lines carry the template's secrets, so every
//! session is decrypted on its own key log entry). Sessions that reach the active state carry bulk data:
//! server graphics ([2.2.9.1.2] fast-path output, bitmap updates) and some client input ([2.2.8.1.2]),
//! each in a TLS 1.3 application data record sealed with the session's traffic secret, so that a replay with
//! the key log opens every record; the template's own records after the bulk are sealed again with their
//! new sequence numbers. Everything random comes from the seed: the same options write the same file.

// Bytes from files: no panics (see ARCHITECTURE.md, Rules).
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

use std::borrow::Cow;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::blocks::section_header::SectionHeaderBlock;
use pcap_file::pcapng::blocks::unknown::UnknownBlock;
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};

use crate::probe::pcap::{Flags, tcp_packet};
use crate::replay::link::{self, Frame};
use crate::replay::tls_decrypt::record::RecordCipher;
use crate::replay::tls_decrypt::suites;
use crate::trace::Side;

/// The most TCP payload per segment.
const MSS: usize = 1460;
/// Bytes of a bulk fast-path output PDU; with its headers it fits one TLS record (2^14).
const BITMAP_BYTES: usize = 64 * 62 * 4;
/// One client input record per this many server records.
const INPUT_EVERY: u64 = 32;
/// [pcapng] 4.7 Decryption Secrets Block, TLS key log.
const DSB_TYPE: u32 = 0x0000_000a;
const SECRETS_TLS_KEY_LOG: u32 = 0x544c_534b;
/// The capture's clock starts here (2024-01-01T00:00:00Z) and advances this much per packet.
const EPOCH: Duration = Duration::from_secs(1_704_067_200);
const TICK: Duration = Duration::from_micros(10);

/// A recorded session the generator plays again, and how often (relative weight).
struct Source {
    name: &'static str,
    pcapng: &'static [u8],
    weight: u32,
}

/// The templates: one reaching the active state, one ended by the server once active, one failing in
/// each phase before that.
const SOURCES: &[Source] = &[
    Source {
        name: "healthy",
        pcapng: include_bytes!("../fixtures/synth/healthy.pcapng"),
        weight: 40,
    },
    Source {
        name: "errinfo-0x0003",
        pcapng: include_bytes!("../fixtures/synth/errinfo-0x0003.pcapng"),
        weight: 10,
    },
    Source {
        name: "neg-hybrid-required",
        pcapng: include_bytes!("../fixtures/synth/neg-hybrid-required.pcapng"),
        weight: 6,
    },
    Source {
        name: "tls-handshake-failure",
        pcapng: include_bytes!("../fixtures/synth/tls-handshake-failure.pcapng"),
        weight: 6,
    },
    Source {
        name: "nla-logon-failure",
        pcapng: include_bytes!("../fixtures/synth/nla-logon-failure.pcapng"),
        weight: 6,
    },
    Source {
        name: "early-auth-denied",
        pcapng: include_bytes!("../fixtures/synth/early-auth-denied.pcapng"),
        weight: 6,
    },
    Source {
        name: "close-in-mcs-connect",
        pcapng: include_bytes!("../fixtures/synth/close-in-mcs-connect.pcapng"),
        weight: 4,
    },
    Source {
        name: "reset-in-channel-join",
        pcapng: include_bytes!("../fixtures/synth/reset-in-channel-join.pcapng"),
        weight: 4,
    },
    Source {
        name: "denied-connection",
        pcapng: include_bytes!("../fixtures/synth/denied-connection.pcapng"),
        weight: 6,
    },
    Source {
        name: "close-in-capabilities",
        pcapng: include_bytes!("../fixtures/synth/close-in-capabilities.pcapng"),
        weight: 4,
    },
    Source {
        name: "close-in-finalization",
        pcapng: include_bytes!("../fixtures/synth/close-in-finalization.pcapng"),
        weight: 4,
    },
];

/// The name of the template made by hand: a connection refused (SYN, then RST from the server).
pub const REFUSED: &str = "refused";
const REFUSED_WEIGHT: u32 = 4;

/// Where the TLS secrets of the generated sessions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secrets {
    /// Nowhere: the capture can be read but not decrypted.
    None,
    /// An NSS key log file beside the capture (for `replay --keylog` and tshark's `tls.keylog_file`).
    KeyLog(PathBuf),
    /// Decryption Secrets Blocks in the capture, one before each session.
    Embedded,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop starting sessions once this many bytes of TCP payload are planned.
    pub size: u64,
    pub seed: u64,
    pub secrets: Secrets,
    /// Sessions in progress at once (their packets interleave).
    pub concurrent: usize,
    /// Bulk bytes of a session that reaches the active state: drawn between these two; `(0, 0)` for none.
    pub bulk: (u64, u64),
    /// Only these templates (by name), each with its usual weight; all when empty.
    pub templates: Vec<String>,
    /// Stop after this many sessions (whatever their size), instead of at `size`.
    pub sessions: Option<u64>,
    /// SYNs to [`FLOOD_SERVER`] from as many sources, never answered (a scan or a flood), spread among the
    /// sessions.
    pub flood: u64,
    /// Every session to one server (192.168.0.1:3389), as a brute force would be; otherwise each has its
    /// own.
    pub one_server: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            size: 1 << 30,
            seed: 1,
            secrets: Secrets::None,
            concurrent: 64,
            bulk: (1 << 20, 4 << 20),
            templates: Vec::new(),
            sessions: None,
            flood: 0,
            one_server: false,
        }
    }
}

/// Where the SYNs of a flood go.
pub const FLOOD_SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 3389);

/// The source of the `n`th SYN of a flood: 11.0.0.0 and on, a port of its own.
fn flood_source(n: u64) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(0x0b00_0000u32.wrapping_add(n as u32)),
        1024 + (n % 60_000) as u16,
    )
}

/// What was generated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Manifest {
    /// Sessions per template, in the order of [`templates`].
    pub sessions: Vec<(String, u64)>,
    pub packets: u64,
    /// TCP payload bytes.
    pub payload_bytes: u64,
    /// Bulk application data bytes (plaintext) among them.
    pub bulk_bytes: u64,
    /// Fast-path output PDUs in the bulk data (one per record).
    pub bulk_updates: u64,
    /// TLS records sealed by the generator (bulk, and the template's records moved after it).
    pub records_sealed: u64,
    /// Unanswered SYNs of the flood.
    pub flood_syns: u64,
    pub file_bytes: u64,
}

impl Manifest {
    pub fn total_sessions(&self) -> u64 {
        self.sessions.iter().map(|(_, n)| n).sum()
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("template {name}: {detail}")]
    Template { name: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One packet of a template: its payload is `len` bytes of its side's stream from `start`.
#[derive(Debug, Clone)]
struct Packet {
    from: Side,
    flags: Flags,
    start: usize,
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct Both<T> {
    client: T,
    server: T,
}

impl<T> Both<T> {
    fn get(&self, side: Side) -> &T {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    fn get_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }
}

const SIDES: [Side; 2] = [Side::Client, Side::Server];

/// A template's TLS 1.3 application data record after the point where bulk data goes in.
#[derive(Debug, Clone)]
struct Later {
    offset: usize,
    seq: u64,
    content_type: u8,
    plain: Vec<u8>,
}

/// Where and how bulk data goes into a template.
#[derive(Debug, Clone)]
struct BulkPlan {
    /// Bulk goes before this packet.
    at: usize,
    bulk: suites::Bulk,
    hash: suites::Hash,
    secret: Both<Vec<u8>>,
    /// Application data records each side sent before `at`.
    seq: Both<u64>,
    later: Both<Vec<Later>>,
}

/// A session as recorded.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    weight: u32,
    packets: Vec<Packet>,
    streams: Both<Vec<u8>>,
    /// Key log lines: label and secret (hex); the client random is the session's.
    keylog: Vec<(String, String)>,
    /// The client random and where it is in the client's stream.
    client_random: Option<usize>,
    bulk: Option<BulkPlan>,
}

impl Template {
    /// Whether sessions of this template carry bulk application data.
    pub fn carries_bulk(&self) -> bool {
        self.bulk.is_some()
    }

    fn payload_len(&self) -> u64 {
        (self.streams.client.len() + self.streams.server.len()) as u64
    }
}

/// The templates, parsed: the recorded ones, then [`REFUSED`].
pub fn templates() -> Result<Vec<Template>, SynthError> {
    let mut out = Vec::new();
    for s in SOURCES {
        out.push(
            parse(s.name, s.pcapng, s.weight).map_err(|detail| SynthError::Template {
                name: s.name.to_owned(),
                detail,
            })?,
        );
    }
    out.push(Template {
        name: REFUSED.to_owned(),
        weight: REFUSED_WEIGHT,
        packets: vec![
            Packet {
                from: Side::Client,
                flags: Flags {
                    syn: true,
                    ..Flags::default()
                },
                start: 0,
                len: 0,
            },
            Packet {
                from: Side::Server,
                flags: Flags {
                    ack: true,
                    rst: true,
                    ..Flags::default()
                },
                start: 0,
                len: 0,
            },
        ],
        streams: Both::default(),
        keylog: Vec::new(),
        client_random: None,
        bulk: None,
    });
    Ok(out)
}

/// The recorded template files, by name, for tests that replay them one by one.
pub fn template_files() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    SOURCES.iter().map(|s| (s.name, s.pcapng))
}

fn parse(name: &str, bytes: &[u8], weight: u32) -> Result<Template, String> {
    let mut reader = PcapNgReader::new(bytes).map_err(|e| e.to_string())?;
    let mut keylog_text = String::new();
    let mut packets = Vec::new();
    let mut times = Vec::new();
    let mut streams: Both<Vec<u8>> = Both::default();
    let mut client = None;
    while let Some(block) = reader.next_block() {
        match block.map_err(|e| e.to_string())?.0 {
            Block::Unknown(u) if u.type_ == DSB_TYPE => {
                let text = u.value.get(8..).unwrap_or_default();
                keylog_text.push_str(&String::from_utf8_lossy(text));
            }
            Block::EnhancedPacket(epb) => {
                let Frame::Tcp(seg) = link::decode(link::linktype::RAW, &epb.data, 0) else {
                    continue;
                };
                if client.is_none() && seg.syn && !seg.ack_flag {
                    client = Some(seg.src);
                }
                let Some(c) = client else { continue };
                let from = if seg.src == c {
                    Side::Client
                } else {
                    Side::Server
                };
                let stream = streams.get_mut(from);
                packets.push(Packet {
                    from,
                    flags: Flags {
                        syn: seg.syn,
                        ack: seg.ack_flag,
                        fin: seg.fin,
                        rst: seg.rst,
                    },
                    start: stream.len(),
                    len: seg.payload.len(),
                });
                stream.extend_from_slice(seg.payload);
                times.push(epb.timestamp);
            }
            _ => {}
        }
    }
    if packets.is_empty() {
        return Err("no TCP connection in the capture".to_owned());
    }
    let mut keylog = Vec::new();
    let mut random: Option<[u8; 32]> = None;
    for line in keylog_text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(label), Some(cr), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(cr) = hex::decode(cr) else { continue };
        let Ok(cr) = <[u8; 32]>::try_from(cr.as_slice()) else {
            continue;
        };
        if random.is_some_and(|r| r != cr) {
            return Err("secrets of more than one TLS session".to_owned());
        }
        random = Some(cr);
        keylog.push((label.to_owned(), secret.to_owned()));
    }
    let client_random = match random {
        Some(r) => Some(
            find(&streams.client, &r).ok_or("the client random is not in the client's bytes")?,
        ),
        None => None,
    };
    let mut t = Template {
        name: name.to_owned(),
        weight,
        packets,
        streams,
        keylog,
        client_random,
        bulk: None,
    };
    t.bulk = bulk_plan(&t, &times);
    Ok(t)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ])))
}

/// The TLS records of a stream that starts with one TPKT (the X.224 Connection Request or Confirm):
/// (offset, length with header).
fn records(stream: &[u8]) -> Vec<(usize, usize)> {
    use crate::wire::frame;
    let frame::Framed::Complete(at) = frame::tpkt(stream) else {
        return Vec::new();
    };
    frame::split(stream.get(at..).unwrap_or_default(), frame::tls_record)
        .map(|(offset, record)| (at + offset, record.len()))
        .collect()
}

/// The cipher suite the ServerHello chose.
fn server_suite(server: &[u8]) -> Option<u16> {
    let &(at, _) = records(server).first()?;
    // Record header (5), handshake header (4), version (2), random (32), session ID.
    if server.get(at + 5) != Some(&2) {
        return None;
    }
    let sid = at + 5 + 4 + 2 + 32;
    let sid_len = usize::from(*server.get(sid)?);
    be16(server, sid + 1 + sid_len).and_then(|s| u16::try_from(s).ok())
}

/// Bulk data goes in where the session is active and quiet: before the first packet that comes a second or
/// more after the one before it (the probe watching the session), or else before the first FIN or RST, at a
/// record boundary on both sides, after the server's first application data. TLS 1.3 sessions only.
fn bulk_plan(t: &Template, times: &[Duration]) -> Option<BulkPlan> {
    let secret = |label: &str| {
        t.keylog
            .iter()
            .find(|(l, _)| l == label)
            .and_then(|(_, s)| hex::decode(s).ok())
    };
    let secret = Both {
        client: secret("CLIENT_TRAFFIC_SECRET_0")?,
        server: secret("SERVER_TRAFFIC_SECRET_0")?,
    };
    let suite = suites::lookup(server_suite(&t.streams.server)?)?;
    let (bulk, hash) = (suite.bulk, suite.prf);
    // Every application data record of each side, opened in order: (offset, length, seq, opened).
    let mut app: Both<Vec<(usize, usize, Later)>> = Both::default();
    let mut boundaries: Both<Vec<usize>> = Both::default();
    for side in SIDES {
        let stream = t.streams.get(side);
        let mut cipher = RecordCipher::tls13(bulk, hash, secret.get(side))?;
        for (at, len) in records(stream) {
            boundaries.get_mut(side).push(at + len);
            if stream.get(at) != Some(&23) {
                continue;
            }
            let header: [u8; 5] = stream.get(at..at + 5)?.try_into().ok()?;
            let seq = cipher.seq();
            if let Ok(opened) = cipher.open(header, stream.get(at + 5..at + len)?) {
                app.get_mut(side).push((
                    at,
                    len,
                    Later {
                        offset: at,
                        seq,
                        content_type: opened.content_type,
                        plain: opened.data,
                    },
                ));
            }
        }
    }
    let first_server_app = app.server.first().map(|(at, len, _)| at + len)?;
    let mut sent: Both<usize> = Both::default();
    let mut candidates = Vec::new();
    for (i, p) in t.packets.iter().enumerate() {
        let quiet = i > 0
            && times
                .get(i)
                .zip(times.get(i.wrapping_sub(1)))
                .is_some_and(|(now, before)| now.saturating_sub(*before) >= Duration::from_secs(1));
        let closing = p.flags.fin || p.flags.rst;
        let aligned = SIDES.iter().all(|s| {
            let n = *sent.get(*s);
            n == 0 || boundaries.get(*s).contains(&n)
        });
        if (quiet || closing) && aligned && sent.server >= first_server_app {
            candidates.push((quiet, i, sent.clone()));
        }
        *sent.get_mut(p.from) += p.len;
    }
    let (_, at, sent) = candidates
        .iter()
        .find(|c| c.0)
        .or_else(|| candidates.first())?
        .clone();
    let mut seq = Both::default();
    let mut later: Both<Vec<Later>> = Both::default();
    for side in SIDES {
        let before = *sent.get(side);
        for (offset, _, l) in app.get(side) {
            if *offset < before {
                *seq.get_mut(side) = l.seq + 1;
            } else {
                later.get_mut(side).push(l.clone());
            }
        }
    }
    Some(BulkPlan {
        at,
        bulk,
        hash,
        secret,
        seq,
        later,
    })
}

/// [2.2.9.1.2] A fast-path output PDU with one bitmap update ([2.2.9.1.2.1.2], [2.2.9.1.1.3.1.2]) of
/// 64x62 pixels at 32 bpp, uncompressed; `fill` varies the pixels.
fn bitmap_update(fill: &[u8]) -> Vec<u8> {
    let rect: [u16; 9] = [0, 0, 63, 61, 64, 62, 32, 0, BITMAP_BYTES as u16];
    let data_len = 4 + 18 + BITMAP_BYTES;
    let total = 3 + 3 + data_len;
    let mut out = Vec::with_capacity(total);
    out.push(0x00); // FASTPATH_OUTPUT_ACTION_FASTPATH, no flags
    out.extend_from_slice(&(0x8000 | total as u16).to_be_bytes());
    out.push(0x01); // FASTPATH_UPDATETYPE_BITMAP, FASTPATH_FRAGMENT_SINGLE, no compression
    out.extend_from_slice(&(data_len as u16).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // UPDATETYPE_BITMAP
    out.extend_from_slice(&1u16.to_le_bytes()); // numberRectangles
    for v in rect {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut i = 0;
    while out.len() < total {
        out.push(fill.get(i % fill.len().max(1)).copied().unwrap_or(0));
        i += 1;
    }
    out
}

/// [2.2.8.1.2] A fast-path input PDU with one mouse event ([2.2.8.1.2.2.3]).
fn mouse_input(x: u16, y: u16) -> Vec<u8> {
    let mut out = vec![0x04, 9, 0x20]; // one event; FASTPATH_INPUT_EVENT_MOUSE
    out.extend_from_slice(&0x0800u16.to_le_bytes()); // PTRFLAGS_MOVE
    out.extend_from_slice(&x.to_le_bytes());
    out.extend_from_slice(&y.to_le_bytes());
    out
}

/// What one session still has to send.
struct Run<'t> {
    t: &'t Template,
    streams: Both<Vec<u8>>,
    addr: Both<SocketAddrV4>,
    next_seq: Both<u32>,
    /// The next template packet.
    next: usize,
    bulk: Option<BulkRun>,
}

struct BulkRun {
    at: usize,
    ciphers: Both<RecordCipher>,
    server_records: u64,
    sent: u64,
    fill: Vec<u8>,
}

/// The output file.
struct Out<W: Write> {
    writer: PcapNgWriter<W>,
    path: String,
    clock: Duration,
    m: Manifest,
}

impl<W: Write> Out<W> {
    fn err(&self, e: impl std::fmt::Display) -> SynthError {
        SynthError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    }

    fn secrets(&mut self, text: &str) -> Result<(), SynthError> {
        let mut value = Vec::with_capacity(text.len() + 12);
        value.extend_from_slice(&SECRETS_TLS_KEY_LOG.to_le_bytes());
        value.extend_from_slice(&(text.len() as u32).to_le_bytes());
        value.extend_from_slice(text.as_bytes());
        while value.len() % 4 != 0 {
            value.push(0);
        }
        let block = Block::Unknown(UnknownBlock {
            type_: DSB_TYPE,
            length: (value.len() + 12) as u32,
            value: Cow::Owned(value),
        });
        self.writer.write_block(&block).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn packet(
        &mut self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        seq: u32,
        ack: u32,
        flags: Flags,
        payload: &[u8],
    ) -> Result<(), SynthError> {
        let data = tcp_packet(src.into(), dst.into(), seq, ack, flags, payload)
            .map_err(|e| self.err(e))?;
        self.clock += TICK;
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: EPOCH + self.clock,
            original_len: data.len() as u32,
            data: Cow::Borrowed(&data),
            options: vec![],
        };
        self.writer
            .write_pcapng_block(epb)
            .map_err(|e| self.err(e))?;
        self.m.packets += 1;
        self.m.payload_bytes += payload.len() as u64;
        Ok(())
    }
}

impl Run<'_> {
    /// Template packets still to send (bulk records not counted).
    fn packets_left(&self) -> u64 {
        self.t.packets.len().saturating_sub(self.next) as u64
    }

    /// Sends `bytes` from `from` in segments.
    fn data<W: Write>(
        &mut self,
        out: &mut Out<W>,
        from: Side,
        bytes: &[u8],
    ) -> Result<(), SynthError> {
        for chunk in bytes.chunks(MSS) {
            let flags = Flags {
                ack: true,
                ..Flags::default()
            };
            self.segment(out, from, flags, chunk)?;
        }
        Ok(())
    }

    fn segment<W: Write>(
        &mut self,
        out: &mut Out<W>,
        from: Side,
        flags: Flags,
        payload: &[u8],
    ) -> Result<(), SynthError> {
        let seq = *self.next_seq.get(from);
        let ack = *self.next_seq.get(from.other());
        out.packet(
            *self.addr.get(from),
            *self.addr.get(from.other()),
            seq,
            ack,
            flags,
            payload,
        )?;
        let advance = payload.len() as u32 + u32::from(flags.syn) + u32::from(flags.fin);
        *self.next_seq.get_mut(from) = seq.wrapping_add(advance);
        Ok(())
    }

    /// Writes the next step: one template packet or one bulk record. False once the session is over.
    fn step<W: Write>(&mut self, out: &mut Out<W>) -> Result<bool, SynthError> {
        if let Some(b) = self.bulk.as_mut()
            && b.at == self.next
            && b.sent < b.server_records
        {
            let n = b.sent;
            b.sent += 1;
            let mut fill = std::mem::take(&mut b.fill);
            if let Some(first) = fill.first_mut() {
                *first = n as u8;
            }
            let update = bitmap_update(&fill);
            let record = b.ciphers.server.seal13(23, &update);
            let input = (n % INPUT_EVERY == INPUT_EVERY - 1)
                .then(|| b.ciphers.client.seal13(23, &mouse_input(n as u16, 7)))
                .flatten();
            b.fill = fill;
            out.m.records_sealed += 1 + u64::from(input.is_some());
            out.m.bulk_bytes += update.len() as u64;
            out.m.bulk_updates += u64::from(record.is_some());
            if let Some(r) = record {
                self.data(out, Side::Server, &r)?;
            }
            if let Some(r) = input {
                self.data(out, Side::Client, &r)?;
            }
            return Ok(true);
        }
        let Some(p) = self.t.packets.get(self.next).cloned() else {
            return Ok(false);
        };
        self.next += 1;
        let payload = self
            .streams
            .get(p.from)
            .get(p.start..p.start + p.len)
            .unwrap_or_default()
            .to_vec();
        self.segment(out, p.from, p.flags, &payload)?;
        Ok(true)
    }
}

/// Writes the capture at `path`.
pub fn generate(path: &Path, opts: &Options) -> Result<Manifest, SynthError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| SynthError::Io { path, source }
    };
    let templates = templates()?;
    let file = std::fs::File::create(path).map_err(io(path))?;
    let section = SectionHeaderBlock {
        endianness: pcap_file::Endianness::Little,
        ..SectionHeaderBlock::default()
    };
    let path_s = path.display().to_string();
    let ng_err = |e: pcap_file::pcapng::PcapNgWriteError| SynthError::Io {
        path: path_s.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut writer = PcapNgWriter::with_section_header(
        std::io::BufWriter::with_capacity(1 << 20, file),
        section,
    )
    .map_err(ng_err)?;
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::RAW,
            snaplen: 0,
            options: vec![],
        })
        .map_err(ng_err)?;
    let mut out = Out {
        writer,
        path: path_s.clone(),
        clock: Duration::ZERO,
        m: Manifest {
            sessions: templates.iter().map(|t| (t.name.clone(), 0)).collect(),
            ..Manifest::default()
        },
    };
    let mut keylog = match &opts.secrets {
        Secrets::KeyLog(p) => Some((
            std::io::BufWriter::new(std::fs::File::create(p).map_err(io(p))?),
            p.clone(),
        )),
        _ => None,
    };
    let mut rng = StdRng::seed_from_u64(opts.seed);
    for name in &opts.templates {
        if !templates.iter().any(|t| &t.name == name) {
            return Err(SynthError::Template {
                name: name.clone(),
                detail: "no such template".to_owned(),
            });
        }
    }
    let chosen = |t: &Template| opts.templates.is_empty() || opts.templates.contains(&t.name);
    let weight = |t: &Template| if chosen(t) { t.weight } else { 0 };
    let total_weight: u32 = templates.iter().map(weight).sum();
    let mut planned = 0u64;
    let mut started = 0u32;
    let mut runs: Vec<Run<'_>> = Vec::new();
    let mut flood_left = opts.flood;
    let more = |planned: u64, started: u32| match opts.sessions {
        Some(n) => u64::from(started) < n,
        None => planned < opts.size,
    };
    loop {
        while more(planned, started) && runs.len() < opts.concurrent.max(1) && total_weight > 0 {
            let mut pick = rng.random_range(0..total_weight.max(1));
            let mut index = 0;
            for (i, t) in templates.iter().enumerate() {
                if pick < weight(t) {
                    index = i;
                    break;
                }
                pick -= weight(t);
            }
            let Some(t) = templates.get(index) else { break };
            if let Some((_, n)) = out.m.sessions.get_mut(index) {
                *n += 1;
            }
            started += 1;
            let mut streams = t.streams.clone();
            let mut text = String::new();
            if let Some(at) = t.client_random {
                let mut random = [0u8; 32];
                rng.fill_bytes(&mut random);
                if let Some(slot) = streams.client.get_mut(at..at + 32) {
                    slot.copy_from_slice(&random);
                }
                let random = hex::encode(random);
                for (label, secret) in &t.keylog {
                    text.push_str(&format!("{label} {random} {secret}\n"));
                }
            }
            let bulk = match t.bulk.as_ref().filter(|_| opts.bulk != (0, 0)) {
                Some(plan) => {
                    let (lo, hi) = opts.bulk;
                    let bytes = rng.random_range(lo.min(hi)..=hi.max(lo));
                    let server_records = bytes.div_ceil(bitmap_update(&[]).len() as u64).max(1);
                    let client_records = server_records / INPUT_EVERY;
                    let shift = Both {
                        client: client_records,
                        server: server_records,
                    };
                    let mut ciphers: Option<Both<RecordCipher>> = None;
                    let make = |side: Side| {
                        RecordCipher::tls13(plan.bulk, plan.hash, plan.secret.get(side))
                    };
                    if let (Some(client), Some(server)) = (make(Side::Client), make(Side::Server)) {
                        ciphers = Some(Both { client, server });
                    }
                    let Some(mut ciphers) = ciphers else {
                        return Err(SynthError::Template {
                            name: t.name.clone(),
                            detail: "no record keys from its secrets".to_owned(),
                        });
                    };
                    // The template's records after the bulk, sealed again further on.
                    for side in SIDES {
                        let c = ciphers.get_mut(side);
                        for l in plan.later.get(side) {
                            c.set_seq(l.seq + shift.get(side));
                            if let Some(r) = c.seal13(l.content_type, &l.plain)
                                && let Some(slot) =
                                    streams.get_mut(side).get_mut(l.offset..l.offset + r.len())
                            {
                                slot.copy_from_slice(&r);
                                out.m.records_sealed += 1;
                            }
                        }
                        c.set_seq(*plan.seq.get(side));
                    }
                    let mut fill = vec![0u8; 4096];
                    rng.fill_bytes(&mut fill);
                    planned += bytes;
                    Some(BulkRun {
                        at: plan.at,
                        ciphers,
                        server_records,
                        sent: 0,
                        fill,
                    })
                }
                None => None,
            };
            planned += t.payload_len();
            match &opts.secrets {
                Secrets::KeyLog(p) if !text.is_empty() => {
                    if let Some((w, _)) = keylog.as_mut() {
                        w.write_all(text.as_bytes()).map_err(io(p))?;
                    }
                }
                Secrets::Embedded if !text.is_empty() => out.secrets(&text)?,
                _ => {}
            }
            let client_ip = Ipv4Addr::from(0x0a00_0000u32 + started);
            let server_ip = if opts.one_server {
                Ipv4Addr::new(192, 168, 0, 1)
            } else {
                Ipv4Addr::new(192, 168, (started >> 8) as u8 % 16, started as u8)
            };
            let port = 49152 + (started % 16000) as u16;
            runs.push(Run {
                t,
                streams,
                addr: Both {
                    client: SocketAddrV4::new(client_ip, port),
                    server: SocketAddrV4::new(server_ip, 3389),
                },
                next_seq: Both {
                    client: rng.random(),
                    server: rng.random(),
                },
                next: 0,
                bulk,
            });
        }
        // The flood's SYNs among the sessions' packets, spread over the whole capture.
        let left: u64 = runs.iter().map(Run::packets_left).sum();
        if flood_left > 0
            && (runs.is_empty() || rng.random_range(0..flood_left + left) < flood_left)
        {
            let n = opts.flood - flood_left;
            flood_left -= 1;
            let flags = Flags {
                syn: true,
                ..Flags::default()
            };
            out.packet(flood_source(n), FLOOD_SERVER, rng.random(), 0, flags, &[])?;
            out.m.flood_syns += 1;
            continue;
        }
        if runs.is_empty() {
            break;
        }
        let i = rng.random_range(0..runs.len());
        let Some(run) = runs.get_mut(i) else { break };
        if !run.step(&mut out)? {
            runs.swap_remove(i);
        }
    }
    if let Some((mut w, p)) = keylog {
        w.flush().map_err(io(&p))?;
    }
    let mut inner = out.writer.into_inner();
    inner.flush().map_err(io(path))?;
    drop(inner);
    let mut m = out.m;
    m.file_bytes = std::fs::metadata(path).map(|md| md.len()).unwrap_or(0);
    Ok(m)
}
