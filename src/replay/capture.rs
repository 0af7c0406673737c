//! Reading capture files packet by packet: pcap and pcapng (pcap-file), plain or gzip-compressed (flate2),
//! and Microsoft Network Monitor 2.x files ([`super::netmon`]).
//!
//! The format is told by the file's magic number, never by its name. A plain pcap or pcapng file is read
//! through memory maps ([`super::mapped`]), a window at a time; other files through a buffer. Nothing is
//! read ahead beyond a window or the buffer (and, for Network Monitor files, a chunk of the frame table), so
//! memory does not grow with the file.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pcap_file::pcap::{PcapParseError, PcapParser, PcapReadError, PcapReader};
use pcap_file::pcapng::blocks::Block;
use pcap_file::pcapng::{PcapNgParser, PcapNgReadError, PcapNgReader, PcapNgState};
use pcap_file::{DataLink, Endianness};

use super::mapped::{Mapped, PREFETCH_AHEAD, Window};
use super::netmon::{self, Media, NetMonError};

/// [pcapng] 4.7 Decryption Secrets Block type.
const DECRYPTION_SECRETS_BLOCK: u32 = 0x0000_000a;
/// [pcapng] 4.7 secrets type of a TLS key log ("TLSK").
pub const SECRETS_TLS_KEY_LOG: u32 = 0x544c_534b;

/// Bytes the reader buffers at most: one block or packet record must fit (pcap-file's own default is 8 MB).
const READ_BUFFER: usize = 1 << 22;

/// A reader that can also seek: Network Monitor files are read through their frame table.
pub trait ReadSeek: Read + Seek + Send {}

impl<T: Read + Seek + Send> ReadSeek for T {}

/// Bytes the Network Monitor reader buffers.
const NETMON_BUFFER: usize = 1 << 16;

/// An error reading a capture, with the file and, once packets were read, the packet number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError {
    pub file: String,
    /// The 1-based number of the packet being read when the error happened (in a Network Monitor file,
    /// the frame number, metadata frames included, as Network Monitor and Wireshark number them).
    pub packet: Option<u64>,
    pub detail: String,
}

impl core::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.packet {
            Some(n) => write!(f, "{}: packet {n}: {}", self.file, self.detail),
            None => write!(f, "{}: {}", self.file, self.detail),
        }
    }
}

impl std::error::Error for CaptureError {}

/// One packet as the capture holds it, its bytes borrowed from the reader's buffer.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    /// 1-based, in file order.
    pub number: u64,
    /// Time since the Unix epoch.
    pub ts: Duration,
    /// The LINKTYPE_ value of the interface it was captured on.
    pub link: u32,
    /// The captured bytes (possibly fewer than were on the wire).
    pub data: Cow<'a, [u8]>,
    /// The length on the wire.
    pub orig_len: u32,
    /// The mapped window `data` lies in, when the file is read through memory maps.
    pub window: Option<&'a Arc<Window>>,
}

/// What a capture yields, in file order.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    Packet(Packet<'a>),
    /// [pcapng] 4.7 Decryption Secrets Block.
    Secrets {
        kind: u32,
        data: Vec<u8>,
    },
    /// A pcapng block that is neither (section header, interface description, statistics...), or a
    /// Network Monitor frame without network traffic (counted for [`Capture::notes`]). It is yielded
    /// rather than skipped inside [`Capture::next_item`] so that a packet can borrow the reader.
    Other,
}

/// The container formats rdptrace reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
    NetMon,
}

enum Inner {
    MappedPcap {
        map: Mapped,
        parser: PcapParser,
        link: u32,
    },
    MappedNg {
        map: Mapped,
        parser: PcapNgParser,
        /// The last timestamp seen, for Simple Packet Blocks that have none.
        last_ts: Duration,
    },
    Pcap {
        reader: PcapReader<Box<dyn Read + Send>>,
        link: u32,
    },
    PcapNg {
        reader: PcapNgReader<Box<dyn Read + Send>>,
        /// The last timestamp seen, for Simple Packet Blocks that have none.
        last_ts: Duration,
    },
    NetMon {
        reader: netmon::Reader<BufReader<Box<dyn ReadSeek>>>,
        skipped: Skipped,
    },
}

/// Network Monitor frames skipped, for the notes.
#[derive(Debug, Default)]
struct Skipped {
    /// Frames of Network Monitor's own records: how many, the first one's number, what they held.
    metadata: Option<(u64, u64, Vec<&'static str>)>,
    /// Frames of media types rdptrace does not read: (media type, frames, the first one's number).
    /// Bounded: there are at most 65536 media types.
    unsupported: Vec<(u16, u64, u64)>,
}

impl Skipped {
    fn add(&mut self, frame: u64, media: Media, code: u16) {
        match media {
            Media::Metadata(what) => {
                let (n, _, kinds) = self.metadata.get_or_insert((0, frame, Vec::new()));
                *n += 1;
                if !kinds.contains(&what) {
                    kinds.push(what);
                }
            }
            _ => match self.unsupported.iter_mut().find(|(c, _, _)| *c == code) {
                Some((_, n, _)) => *n += 1,
                None => self.unsupported.push((code, 1, frame)),
            },
        }
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some((n, first, kinds)) = &self.metadata {
            notes.push(format!(
                "{n} frame(s) skipped, the first is frame {first}: Network Monitor's own records ({}), not network traffic",
                kinds.join(", ")
            ));
        }
        for (code, n, first) in &self.unsupported {
            notes.push(format!(
                "{n} frame(s) skipped, the first is frame {first}: {} is not supported",
                netmon::media_name(*code)
            ));
        }
        notes
    }
}

/// A capture file opened for reading.
pub struct Capture {
    file: String,
    inner: Inner,
    format: Format,
    gzip: bool,
    packets: u64,
    done: bool,
    /// A progress bar told of the read position of a mapped file (a buffered one counts its reads).
    bar: Option<indicatif::ProgressBar>,
    /// What of a mapped file is fetched into the CPU's cache ahead of the read position.
    prefetch: Prefetch,
}

/// What of a mapped file is fetched into the CPU's cache ahead of the read position: a hint, which changes
/// no byte read and no result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Prefetch {
    /// Every byte, [`PREFETCH_AHEAD`] ahead: for a replay that reads payloads whole (it decrypts them).
    #[default]
    Everything,
    /// The headers and the trailing lengths of the next few blocks, where blocks as long as this one
    /// would put them: for a replay that reads the headers, and a record's header now and then.
    Headers,
}

/// Blocks ahead whose headers [`Prefetch::Headers`] asks for.
const HEADERS_AHEAD: usize = 3;
/// Bytes of a block's headers: a pcapng Enhanced Packet Block's fields, IPv4 or IPv6, and TCP.
const HEADERS: usize = 128;

/// Asks for what `prefetch` wants of the blocks after the one of `len` bytes at `pos` in `window`.
fn ahead(window: &Window, pos: usize, len: usize, prefetch: Prefetch) {
    match prefetch {
        Prefetch::Everything => window.prefetch(pos + PREFETCH_AHEAD, len),
        Prefetch::Headers => {
            for k in 1..=HEADERS_AHEAD {
                let next = pos + k * len;
                window.prefetch(next, HEADERS);
                // Its end: a pcapng block's trailing length, which the reader checks.
                window.prefetch(next + len.saturating_sub(TRAILER), TRAILER);
            }
        }
    }
}

impl core::fmt::Debug for Capture {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Capture")
            .field("file", &self.file)
            .field("format", &self.format)
            .field("gzip", &self.gzip)
            .field("packets", &self.packets)
            .finish()
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Magic {
    Gzip,
    Pcap,
    PcapNg,
    NetMon,
    Other,
}

fn magic(head: &[u8]) -> Magic {
    match head {
        [0x1f, 0x8b, ..] => Magic::Gzip,
        [0xa1, 0xb2, 0xc3, 0xd4, ..]
        | [0xd4, 0xc3, 0xb2, 0xa1, ..]
        | [0xa1, 0xb2, 0x3c, 0x4d, ..]
        | [0x4d, 0x3c, 0xb2, 0xa1, ..] => Magic::Pcap,
        [0x0a, 0x0d, 0x0d, 0x0a, ..] => Magic::PcapNg,
        [a, b, c, d, ..] if [*a, *b, *c, *d] == netmon::MAGIC => Magic::NetMon,
        _ => Magic::Other,
    }
}

/// Looks at the first bytes without consuming them.
fn peek(reader: &mut dyn BufRead, file: &str) -> Result<Magic, CaptureError> {
    let head = reader.fill_buf().map_err(|e| CaptureError {
        file: file.to_owned(),
        packet: None,
        detail: format!("cannot read: {e}"),
    })?;
    if head.len() < 4 {
        return Err(CaptureError {
            file: file.to_owned(),
            packet: None,
            detail: if head.is_empty() {
                "the file is empty".to_owned()
            } else {
                "not a pcap or pcapng capture (too short)".to_owned()
            },
        });
    }
    Ok(magic(head))
}

impl Capture {
    /// Opens `path`, told to `bar` as it is read: a plain pcap or pcapng file through memory maps, any
    /// other through a buffer.
    pub fn open(path: &Path, bar: Option<indicatif::ProgressBar>) -> Result<Capture, CaptureError> {
        let name = path.display().to_string();
        let err = |detail: String| CaptureError {
            file: name.clone(),
            packet: None,
            detail,
        };
        let mut file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let mut head = [0u8; 4];
        let got = read_up_to(&mut file, &mut head).map_err(|e| err(format!("cannot read: {e}")))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| err(format!("cannot read: {e}")))?;
        let kind = (got == head.len()).then(|| magic(&head));
        if matches!(kind, Some(Magic::Pcap | Magic::PcapNg)) {
            let reopened = file
                .try_clone()
                .map_err(|e| err(format!("cannot read: {e}")))?;
            if let Some(map) =
                Mapped::open(reopened, READ_BUFFER).map_err(|e| err(format!("cannot read: {e}")))?
            {
                let mut capture = Self::mapped(name.clone(), map)?;
                capture.bar = bar;
                return Ok(capture);
            }
        }
        let raw: Box<dyn ReadSeek> = match bar {
            Some(bar) => Box::new(bar.wrap_read(file)),
            None => Box::new(file),
        };
        Self::from_seekable(name, raw)
    }

    /// A plain pcap or pcapng file through memory maps.
    fn mapped(name: String, mut map: Mapped) -> Result<Capture, CaptureError> {
        let err = |detail: String| CaptureError {
            file: name.clone(),
            packet: None,
            detail,
        };
        let (inner, format) = match magic(map.rest()) {
            Magic::Pcap => {
                let header = match map.ready(PCAP_HEADER, |_| PCAP_HEADER) {
                    Ok(true) => PcapParser::new(map.rest())
                        .map(|(rest, parser)| (map.rest().len() - rest.len(), parser)),
                    Ok(false) => Err(PcapParseError::IncompleteBuffer(PCAP_HEADER, 0)),
                    Err(e) => return Err(err(format!("cannot read: {e}"))),
                };
                let (used, parser) = header.map_err(|e| {
                    err(format!(
                        "invalid pcap header: {}",
                        pcap_error(&pcap_read_error(e))
                    ))
                })?;
                *map.parts().1 += used;
                (
                    Inner::MappedPcap {
                        link: u32::from(parser.header().datalink),
                        parser,
                        map,
                    },
                    Format::Pcap,
                )
            }
            _ => {
                let header = match map.ready(NG_HEADER, |h| ng_block_len(h, Endianness::Big)) {
                    Ok(true) => PcapNgParser::new(map.rest())
                        .map(|(rest, parser)| (map.rest().len() - rest.len(), parser)),
                    Ok(false) => Err(pcap_file::pcapng::PcapNgParseError::IncompleteBuffer(
                        NG_HEADER, 0,
                    )),
                    Err(e) => return Err(err(format!("cannot read: {e}"))),
                };
                let (used, parser) = header.map_err(|e| {
                    err(format!(
                        "invalid pcapng section header: {}",
                        ng_error(&PcapNgReadError::from(e))
                    ))
                })?;
                *map.parts().1 += used;
                (
                    Inner::MappedNg {
                        map,
                        parser,
                        last_ts: Duration::ZERO,
                    },
                    Format::PcapNg,
                )
            }
        };
        Ok(Capture {
            file: name,
            inner,
            format,
            gzip: false,
            packets: 0,
            done: false,
            bar: None,
            prefetch: Prefetch::Everything,
        })
    }

    /// Reads a capture from a reader that can seek (a file): any format, Network Monitor included; `name`
    /// is used in errors.
    pub fn from_seekable(
        name: String,
        mut raw: Box<dyn ReadSeek>,
    ) -> Result<Capture, CaptureError> {
        let err = |detail: String| CaptureError {
            file: name.clone(),
            packet: None,
            detail,
        };
        let mut head = [0u8; 4];
        let got = read_up_to(&mut raw, &mut head).map_err(|e| err(format!("cannot read: {e}")))?;
        raw.seek(SeekFrom::Start(0))
            .map_err(|e| err(format!("cannot read: {e}")))?;
        if got < head.len() || magic(&head) != Magic::NetMon {
            return Self::from_reader(name, raw);
        }
        let reader = netmon::Reader::open(BufReader::with_capacity(NETMON_BUFFER, raw))
            .map_err(|e| netmon_error(&name, e))?;
        Ok(Capture {
            file: name,
            inner: Inner::NetMon {
                reader,
                skipped: Skipped::default(),
            },
            format: Format::NetMon,
            gzip: false,
            packets: 0,
            done: false,
            bar: None,
            prefetch: Prefetch::Everything,
        })
    }

    /// Reads a capture from any reader (pcap and pcapng, plain or gzip-compressed); `name` is used in
    /// errors.
    pub fn from_reader(name: String, raw: Box<dyn Read + Send>) -> Result<Capture, CaptureError> {
        let mut reader: Box<dyn BufRead + Send> = Box::new(BufReader::new(raw));
        let mut gzip = false;
        let mut kind = peek(&mut reader, &name)?;
        if kind == Magic::Gzip {
            gzip = true;
            reader = Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(reader)));
            kind = peek(&mut reader, &name)?;
        }
        let err = |detail: String| CaptureError {
            file: name.clone(),
            packet: None,
            detail,
        };
        let boxed: Box<dyn Read + Send> = Box::new(reader);
        let (inner, format) = match kind {
            Magic::Pcap => {
                let reader = PcapReader::with_capacity(boxed, READ_BUFFER)
                    .map_err(|e| err(format!("invalid pcap header: {}", pcap_error(&e))))?;
                let header = reader.header();
                (
                    Inner::Pcap {
                        link: u32::from(header.datalink),
                        reader,
                    },
                    Format::Pcap,
                )
            }
            Magic::PcapNg => {
                let reader = PcapNgReader::with_capacity(boxed, READ_BUFFER)
                    .map_err(|e| err(format!("invalid pcapng section header: {}", ng_error(&e))))?;
                (
                    Inner::PcapNg {
                        reader,
                        last_ts: Duration::ZERO,
                    },
                    Format::PcapNg,
                )
            }
            Magic::NetMon => {
                return Err(err(if gzip {
                    "a gzip-compressed Network Monitor capture: its frame table is at its end, so rdptrace reads it only uncompressed (gunzip it first)".to_owned()
                } else {
                    "a Network Monitor capture read from a stream: its frame table is at its end, so rdptrace reads it only from a file".to_owned()
                }));
            }
            Magic::Gzip => {
                return Err(err("a gzip file inside a gzip file".to_owned()));
            }
            Magic::Other => {
                return Err(err(if gzip {
                    "a gzip file that does not hold a pcap or pcapng capture".to_owned()
                } else {
                    "not a pcap or pcapng capture".to_owned()
                }));
            }
        };
        Ok(Capture {
            file: name,
            inner,
            format,
            gzip,
            packets: 0,
            done: false,
            bar: None,
            prefetch: Prefetch::Everything,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// What is worth telling about the file as a whole once it was read (Network Monitor frames that
    /// hold no network traffic or one rdptrace does not read; how frame times were found).
    pub fn notes(&self) -> Vec<String> {
        let Inner::NetMon { reader, skipped } = &self.inner else {
            return Vec::new();
        };
        let mut notes = skipped.notes();
        if reader.table_lost() {
            notes.push(
                "the Network Monitor frame table is missing (the file was cut short): frames were read in file order"
                    .to_owned(),
            );
        }
        if reader.local_times() && self.packets > 0 {
            let v = reader.version();
            notes.push(format!(
                "a Network Monitor {}.{} file holds the capturing machine's local time without its time zone: times are shown as if it were UTC",
                v.major, v.minor
            ));
        }
        notes
    }

    /// The file's memory maps, when it is read through them.
    fn map(&self) -> Option<&Mapped> {
        match &self.inner {
            Inner::MappedPcap { map, .. } | Inner::MappedNg { map, .. } => Some(map),
            _ => None,
        }
    }

    /// Reads a mapped file for worker threads, with windows of up to `most` bytes
    /// ([`Mapped::for_workers`]).
    pub fn for_workers(&mut self, most: usize) {
        if let Inner::MappedPcap { map, .. } | Inner::MappedNg { map, .. } = &mut self.inner {
            map.for_workers(most);
        }
    }

    /// What of a mapped file is fetched ahead of the read position ([`Prefetch`]).
    pub fn set_prefetch(&mut self, prefetch: Prefetch) {
        self.prefetch = prefetch;
    }

    /// The next packet, secrets block or other block; `None` at the end of the file. After an error,
    /// `None`. A packet's bytes are borrowed from the reader until the next call.
    pub fn next_item(&mut self) -> Option<Result<Item<'_>, CaptureError>> {
        if self.done {
            return None;
        }
        let prefetch = self.prefetch;
        if self.packets.is_multiple_of(BAR_EVERY)
            && let (Some(bar), Some(map)) = (&self.bar, self.map())
        {
            bar.set_position(map.offset());
        }
        let item = match &mut self.inner {
            Inner::Pcap { reader, link } => {
                let resolution = reader.header().ts_resolution;
                match reader.next_raw_packet() {
                    None => None,
                    Some(Err(e)) => Some(Err(pcap_error(&e))),
                    Some(Ok(raw)) => Some(raw_pcap_packet(raw, *link, resolution)),
                }
            }
            Inner::MappedPcap { map, parser, link } => {
                let endianness = parser.header().endianness;
                match map.ready(PCAP_RECORD, |h| pcap_record_len(h, endianness)) {
                    Ok(false) => None,
                    Err(e) => Some(Err(io_detail(&e))),
                    Ok(true) => {
                        let resolution = parser.header().ts_resolution;
                        let (window, pos) = map.parts();
                        let rest = window.bytes().get(*pos..).unwrap_or_default();
                        match parser.next_raw_packet(rest) {
                            Err(e) => Some(Err(pcap_error(&pcap_read_error(e)))),
                            Ok((left, raw)) => {
                                let used = rest.len() - left.len();
                                ahead(window, *pos, used, prefetch);
                                *pos += used;
                                Some(raw_pcap_packet(raw, *link, resolution).map(
                                    |item| match item {
                                        Item::Packet(p) => Item::Packet(Packet {
                                            window: Some(window),
                                            ..p
                                        }),
                                        other => other,
                                    },
                                ))
                            }
                        }
                    }
                }
            }
            Inner::MappedNg {
                map,
                parser,
                last_ts,
            } => {
                let endianness = parser.section().endianness;
                match map.ready(NG_HEADER, |h| ng_block_len(h, endianness)) {
                    Ok(false) => None,
                    Err(e) => Some(Err(io_detail(&e))),
                    Ok(true) => {
                        let (window, pos) = map.parts();
                        let rest = window.bytes().get(*pos..).unwrap_or_default();
                        if let Some(epb) = plain_epb(rest, parser.state(), endianness) {
                            ahead(window, *pos, epb.len, prefetch);
                            *pos += epb.len;
                            *last_ts = epb.ts;
                            Some(Ok(Item::Packet(Packet {
                                number: 0,
                                ts: epb.ts,
                                link: epb.link,
                                data: Cow::Borrowed(epb.data),
                                orig_len: epb.orig_len,
                                window: Some(window),
                            })))
                        } else {
                            match parser.next_block(rest) {
                                Err(e) => Some(Err(ng_error(&PcapNgReadError::from(e)))),
                                Ok((left, block)) => {
                                    let used = rest.len() - left.len();
                                    ahead(window, *pos, used, prefetch);
                                    *pos += used;
                                    ng_item(block, parser.state(), last_ts, Some(window))
                                }
                            }
                        }
                    }
                }
            }
            Inner::PcapNg { reader, last_ts } => match reader.next_block() {
                None => None,
                Some(Err(e)) => Some(Err(ng_error(&e))),
                Some(Ok((block, state))) => ng_item(block, state, last_ts, None),
            },
            Inner::NetMon { reader, skipped } => match reader.next_record() {
                None => None,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(netmon_error(&self.file, e)));
                }
                Some(Ok(netmon::Record::Skipped { frame, media, code })) => {
                    skipped.add(frame, media, code);
                    Some(Ok(Item::Other))
                }
                Some(Ok(netmon::Record::Packet {
                    frame,
                    ts,
                    link,
                    data,
                    orig_len,
                })) => {
                    self.packets += 1;
                    return Some(Ok(Item::Packet(Packet {
                        number: frame,
                        ts,
                        link,
                        data: Cow::Borrowed(data),
                        orig_len,
                        window: None,
                    })));
                }
            },
        };
        match item {
            None => {
                self.done = true;
                None
            }
            Some(Err(detail)) => {
                self.done = true;
                Some(Err(CaptureError {
                    file: self.file.clone(),
                    packet: Some(self.packets + 1),
                    detail,
                }))
            }
            Some(Ok(Item::Packet(mut p))) => {
                self.packets += 1;
                p.number = self.packets;
                Some(Ok(Item::Packet(p)))
            }
            Some(Ok(secrets)) => Some(Ok(secrets)),
        }
    }
}

/// [pcap] 4: a packet record's header.
const PCAP_RECORD: usize = 16;
/// [pcap] 4: the file header.
const PCAP_HEADER: usize = 24;
/// [pcapng] 3.1: the bytes that tell a block's length (and, for a Section Header Block, its byte order).
const NG_HEADER: usize = 12;
/// [pcapng] 4.1 Section Header Block type.
const SECTION_HEADER: u32 = 0x0a0d_0d0a;
/// [pcapng] 4.1 byte-order magic.
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Packets between two updates of a mapped file's progress bar.
const BAR_EVERY: u64 = 4096;

fn u32_at(h: &[u8], at: usize, endianness: Endianness) -> Option<u32> {
    let b: [u8; 4] = h.get(at..at + 4)?.try_into().ok()?;
    Some(match endianness {
        Endianness::Big => u32::from_be_bytes(b),
        Endianness::Little => u32::from_le_bytes(b),
    })
}

/// [pcap] 4: a packet record's length, its header included.
fn pcap_record_len(h: &[u8], endianness: Endianness) -> usize {
    u32_at(h, 8, endianness).map_or(PCAP_RECORD, |incl| PCAP_RECORD + incl as usize)
}

/// [pcapng] 3.1: a block's total length, in the byte order of its section (a Section Header Block tells
/// its own).
fn ng_block_len(h: &[u8], endianness: Endianness) -> usize {
    let endianness = if u32_at(h, 0, Endianness::Big) == Some(SECTION_HEADER) {
        match u32_at(h, 8, Endianness::Big) {
            Some(BYTE_ORDER_MAGIC) => Endianness::Big,
            _ => Endianness::Little,
        }
    } else {
        endianness
    };
    u32_at(h, 4, endianness).map_or(NG_HEADER, |len| len as usize)
}

/// A pcap parse error as the buffered reader reports it.
fn pcap_read_error(e: PcapParseError) -> PcapReadError {
    match e {
        PcapParseError::IncompleteBuffer(_, _) => {
            PcapReadError::Io(std::io::Error::from(ErrorKind::UnexpectedEof))
        }
        PcapParseError::Validation(v) => PcapReadError::Validation(v),
    }
}

/// [pcapng] 4.3 Enhanced Packet Block type.
const ENHANCED_PACKET: u32 = 6;
/// [pcapng] 4.3: an Enhanced Packet Block's fields before the packet data, and the trailing length.
const EPB_FIELDS: usize = 28;
const TRAILER: usize = 4;

/// An Enhanced Packet Block read without the parser ([`plain_epb`]).
struct PlainEpb<'a> {
    /// The block's length.
    len: usize,
    ts: Duration,
    link: u32,
    data: &'a [u8],
    orig_len: u32,
}

/// [pcapng] 4.3: the Enhanced Packet Block at the start of `rest` when it has no options and is one the
/// parser reads without complaint: most blocks of a capture, read at their fixed offsets. `None` for any
/// other block (another type, options, anything the parser would reject), which the parser then reads.
fn plain_epb<'a>(
    rest: &'a [u8],
    state: &PcapNgState,
    endianness: Endianness,
) -> Option<PlainEpb<'a>> {
    if u32_at(rest, 0, endianness)? != ENHANCED_PACKET {
        return None;
    }
    let len = u32_at(rest, 4, endianness)? as usize;
    let interface = u32_at(rest, 8, endianness)?;
    let captured = u32_at(rest, 20, endianness)?;
    let orig_len = u32_at(rest, 24, endianness)?;
    let padded = (captured as usize).checked_add(3)? & !3;
    if !len.is_multiple_of(4)
        || EPB_FIELDS.checked_add(padded)?.checked_add(TRAILER)? != len
        || u32_at(rest, len.checked_sub(TRAILER)?, endianness)? as usize != len
        || orig_len < captured
    {
        return None;
    }
    let link = u32::from(state.interfaces().get(interface as usize)?.linktype);
    let ts = state
        .decode_timestamp(
            interface,
            u32_at(rest, 12, endianness)?,
            u32_at(rest, 16, endianness)?,
        )
        .ok()?;
    let data = rest.get(EPB_FIELDS..EPB_FIELDS.checked_add(captured as usize)?)?;
    Some(PlainEpb {
        len,
        ts,
        link,
        data,
        orig_len,
    })
}

/// A pcapng block as an item: a packet with its interface's link type, a secrets block, or another.
fn ng_item<'a>(
    block: Block<'a>,
    state: &PcapNgState,
    last_ts: &mut Duration,
    window: Option<&'a Arc<Window>>,
) -> Option<Result<Item<'a>, String>> {
    let packet = |ts, link: u32, data, orig_len| {
        Ok(Item::Packet(Packet {
            number: 0,
            ts,
            link,
            data,
            orig_len,
            window,
        }))
    };
    match block {
        Block::EnhancedPacket(epb) => {
            let link = state
                .interfaces()
                .get(epb.interface_id as usize)
                .map(|i| u32::from(i.linktype));
            *last_ts = epb.timestamp;
            Some(match link {
                Some(link) => packet(epb.timestamp, link, epb.data, epb.original_len),
                None => Err(format!(
                    "interface {} is not described in the file",
                    epb.interface_id
                )),
            })
        }
        Block::SimplePacket(spb) => {
            let link = state.interfaces().first().map(|i| u32::from(i.linktype));
            Some(match link {
                Some(link) => packet(*last_ts, link, spb.data, spb.original_len),
                None => Err("a simple packet before any interface".to_owned()),
            })
        }
        Block::Packet(pb) => {
            let link = state
                .interfaces()
                .get(usize::from(pb.interface_id))
                .map(|i| u32::from(i.linktype));
            *last_ts = pb.timestamp;
            Some(match link {
                Some(link) => packet(pb.timestamp, link, pb.data, pb.original_len),
                None => Err(format!(
                    "interface {} is not described in the file",
                    pb.interface_id
                )),
            })
        }
        Block::Unknown(unknown) if unknown.type_ == DECRYPTION_SECRETS_BLOCK => Some(
            secrets_block(&unknown.value, state.endianness())
                .map(|(kind, data)| Item::Secrets { kind, data }),
        ),
        _ => Some(Ok(Item::Other)),
    }
}

/// A Network Monitor error as a capture error naming the frame.
fn netmon_error(file: &str, e: NetMonError) -> CaptureError {
    CaptureError {
        file: file.to_owned(),
        packet: e.frame,
        detail: e.kind.to_string(),
    }
}

/// Reads as many bytes as `buf` holds or the reader has.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A packet record ([pcap] 4): a packet cut by the snap length is one whose captured length is below its
/// length on the wire, so the file's snap length itself tells nothing more.
fn raw_pcap_packet(
    raw: pcap_file::pcap::RawPcapPacket<'_>,
    link: u32,
    resolution: pcap_file::pcap::PcapTsResolution,
) -> Result<Item<'_>, String> {
    let nanos = match resolution {
        pcap_file::pcap::PcapTsResolution::MicroSecond => u64::from(raw.ts_frac) * 1_000,
        pcap_file::pcap::PcapTsResolution::NanoSecond => u64::from(raw.ts_frac),
    };
    if nanos >= 1_000_000_000 {
        return Err(format!(
            "invalid timestamp fraction {} in the packet record",
            raw.ts_frac
        ));
    }
    Ok(Item::Packet(Packet {
        number: 0,
        ts: Duration::from_secs(u64::from(raw.ts_sec)) + Duration::from_nanos(nanos),
        link,
        // A record longer than the length on the wire is an odd writer, not a cut packet.
        orig_len: raw.orig_len.max(raw.incl_len),
        data: raw.data,
        window: None,
    }))
}

/// [pcapng] 4.7: secrets type, secrets length, the secrets (padded to 32 bits), options.
fn secrets_block(body: &[u8], endianness: Endianness) -> Result<(u32, Vec<u8>), String> {
    read_secrets_block(&mut crate::wire::Reader::new(body), endianness)
        .map_err(|e| format!("invalid decryption secrets block: {e}"))
}

fn read_secrets_block(
    r: &mut crate::wire::Reader<'_>,
    endianness: Endianness,
) -> crate::wire::WireResult<(u32, Vec<u8>)> {
    let (kind, len) = match endianness {
        Endianness::Little => (r.u32_le("secrets type")?, r.u32_le("secrets length")?),
        Endianness::Big => (r.u32_be("secrets type")?, r.u32_be("secrets length")?),
    };
    let data = r.bytes(len as usize, "secrets data")?;
    Ok((kind, data.to_vec()))
}

fn io_detail(e: &std::io::Error) -> String {
    if e.kind() == ErrorKind::UnexpectedEof {
        "the file ends in the middle of this packet (truncated capture)".to_owned()
    } else {
        format!("read error: {e}")
    }
}

fn pcap_error(e: &PcapReadError) -> String {
    match e {
        PcapReadError::Io(io) => io_detail(io),
        PcapReadError::Validation(v) => format!("invalid packet record: {}", lower(&v.to_string())),
    }
}

fn ng_error(e: &PcapNgReadError) -> String {
    match e {
        PcapNgReadError::Io(io) => io_detail(io),
        other => format!("invalid pcapng block: {}", lower(&other.to_string())),
    }
}

/// Error text of other crates in this project's style: lowercase first letter.
fn lower(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The LINKTYPE_ name, for messages.
pub fn link_name(link: u32) -> String {
    format!("{:?}", DataLink::from(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(magic(&[0xd4, 0xc3, 0xb2, 0xa1]), Magic::Pcap);
        assert_eq!(magic(&[0x4d, 0x3c, 0xb2, 0xa1]), Magic::Pcap);
        assert_eq!(magic(&[0x0a, 0x0d, 0x0d, 0x0a]), Magic::PcapNg);
        assert_eq!(magic(&[0x1f, 0x8b, 8, 0]), Magic::Gzip);
        assert_eq!(magic(b"GMBU"), Magic::NetMon);
        assert_eq!(magic(b"%PDF"), Magic::Other);
    }

    #[test]
    fn not_a_capture() {
        let err =
            Capture::from_reader("x.txt".into(), Box::new(&b"hello world\n"[..])).unwrap_err();
        assert_eq!(err.to_string(), "x.txt: not a pcap or pcapng capture");
        let err = Capture::from_reader("e".into(), Box::new(&b""[..])).unwrap_err();
        assert_eq!(err.to_string(), "e: the file is empty");
    }

    /// A pcapng block, little-endian: type, length, body, length.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let len = u32::try_from(12 + body.len()).unwrap();
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    /// A section header and one raw IP interface.
    fn head() -> Vec<u8> {
        let mut shb = 0x1a2b_3c4d_u32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut out = block(SECTION_HEADER, &shb);
        let mut idb = 101u16.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        out.extend(block(1, &idb));
        out
    }

    /// An Enhanced Packet Block's body: interface, time, lengths, data padded, then `options`.
    fn epb(interface: u32, ts: u64, data: &[u8], orig: u32, options: &[u8]) -> Vec<u8> {
        let mut b = interface.to_le_bytes().to_vec();
        b.extend_from_slice(&u32::try_from(ts >> 32).unwrap().to_le_bytes());
        b.extend_from_slice(&u32::try_from(ts & 0xffff_ffff).unwrap().to_le_bytes());
        b.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        b.extend_from_slice(&orig.to_le_bytes());
        b.extend_from_slice(data);
        b.resize(b.len().next_multiple_of(4), 0);
        b.extend_from_slice(options);
        b
    }

    /// [pcapng] 4.3: Enhanced Packet Blocks without options are read at their fixed offsets
    /// ([`plain_epb`]), every other block by the parser; both read them as the buffered reader does,
    /// errors included.
    #[test]
    fn plain_packet_blocks_read_as_the_parser_reads_them() {
        let state = |bytes: &[u8]| {
            let (_, mut parser) = PcapNgParser::new(bytes).unwrap();
            let rest = &bytes[28..];
            let (_, _) = parser.next_block(rest).unwrap();
            parser
        };
        let data = b"\x45\x00\x00\x14 some packet bytes";
        // epb_flags (2), 4 bytes, then opt_endofopt.
        let mut flags = vec![2, 0, 4, 0, 1, 0, 0, 0];
        flags.extend_from_slice(&[0, 0, 0, 0]);
        let mut bad_trailer = block(6, &epb(0, 5, data, 60, &[]));
        let at = bad_trailer.len() - 4;
        bad_trailer[at] ^= 4;
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            (
                "plain",
                block(6, &epb(0, 1_700_000_000_000_001, data, 60, &[])),
                true,
            ),
            ("odd length", block(6, &epb(0, 7, &data[..5], 5, &[])), true),
            ("empty", block(6, &epb(0, 7, &[], 0, &[])), true),
            ("options", block(6, &epb(0, 9, data, 60, &flags)), false),
            ("trailer", bad_trailer, false),
            (
                "captured over original",
                block(6, &epb(0, 9, data, 3, &[])),
                false,
            ),
            (
                "no such interface",
                block(6, &epb(4, 9, data, 60, &[])),
                false,
            ),
            ("simple packet", block(3, &[4, 0, 0, 0, 1, 2, 3, 4]), false),
        ];
        for (name, b, plain) in cases {
            let mut file = head();
            let parser = state(&file);
            assert_eq!(
                plain_epb(&b, parser.state(), Endianness::Little).is_some(),
                plain,
                "{name}"
            );
            // The block between two plain ones, and last.
            let first = block(6, &epb(0, 3, data, 60, &[]));
            file.extend_from_slice(&first);
            file.extend_from_slice(&b);
            file.extend_from_slice(&first);
            crate::fuzzing::capture_readings(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut last = head();
            last.extend_from_slice(&b);
            crate::fuzzing::capture_readings(&last).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn secrets_block_both_orders() {
        let mut le = Vec::new();
        le.extend_from_slice(&SECRETS_TLS_KEY_LOG.to_le_bytes());
        le.extend_from_slice(&3u32.to_le_bytes());
        le.extend_from_slice(b"abc\0");
        assert_eq!(
            secrets_block(&le, Endianness::Little).unwrap(),
            (SECRETS_TLS_KEY_LOG, b"abc".to_vec())
        );
        let mut be = Vec::new();
        be.extend_from_slice(&SECRETS_TLS_KEY_LOG.to_be_bytes());
        be.extend_from_slice(&9u32.to_be_bytes());
        be.extend_from_slice(b"abc\0");
        assert!(secrets_block(&be, Endianness::Big).is_err());
    }
}
