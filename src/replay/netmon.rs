//! Microsoft Network Monitor 2.x capture files (`.cap`, as Network Monitor 3.x and Message Analyzer write
//! them), read frame by frame.
//!
//! What the file holds (Network Monitor 3.4's "Capture File Format" help pages; Wireshark's
//! `wiretap/netmon.c` reads the same):
//! - a header at offset 0: the magic `GMBU`, the format version (minor, then major), a media type, the
//!   capture's start time as a Windows SYSTEMTIME in the capturing machine's local time, then the offset
//!   and length of the frame table and of the user data, comment, process and network info sections;
//! - the frames, wherever the frame table says: a record header (the time since the start in
//!   microseconds, `u64`; the length on the wire and the captured length, `u32` each), the captured
//!   bytes, then from version 2.1 on a trailer: the frame's media type (`u16`), from 2.2 an index into
//!   the process table (`u32`), from 2.3 the frame's UTC time as a FILETIME (`u64`) and a time zone
//!   index (`u8`);
//! - the frame table: the file offset of each frame (`u32`), in frame order. It is written last, so a
//!   file cut short has lost it: then the frames are read in file order from the end of the header.
//!
//! Frames of Network Monitor's own media types (the capture filter, the list of network adapters, event
//! tracing events, ...) hold no network traffic: they are skipped and counted.
//!
//! No crate reads this format (pcap-file reads pcap and pcapng only; pcaparse's `.cap` is the Sniffer
//! format), so this module does, with every length bounded: a frame is at most [`MAX_FRAME`] bytes, the
//! frame table is read [`TABLE_CHUNK`] entries at a time, and nothing else of the file is kept.

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

use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::time::Duration;

use super::link::linktype;
use crate::wire::{Reader as WireReader, WireError};

/// The magic number of a Network Monitor 2.x file.
pub const MAGIC: [u8; 4] = *b"GMBU";
/// The header up to the network info length (Network Monitor 3.x adds fields after it, which are not
/// needed here).
const HEADER_LEN: usize = 64;
/// Where the first frame may start when the frame table is lost: after Network Monitor 3.x's 72-byte
/// header, after the 128 bytes other writers reserve, right after the 64 bytes every 2.x header has.
const FIRST_FRAME_CANDIDATES: [u64; 3] = [72, 128, 64];
/// Time since the start (`u64`), length on the wire (`u32`), captured length (`u32`).
const RECORD_HEADER_LEN: usize = 16;
/// The most bytes a frame may hold (Wireshark's bound on a packet; no network frame comes near it).
pub const MAX_FRAME: u32 = 256 * 1024;
/// Frame table entries read at a time.
pub const TABLE_CHUNK: u32 = 4096;
/// FILETIME ticks (100 ns) from 1601-01-01 to the Unix epoch.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;
const TICKS_PER_SECOND: u64 = 10_000_000;

/// Network Monitor media types ("network types") that are not a LINKTYPE_ of their own.
mod media {
    /// Ethernet; 0 is what some VPN captures write for Ethernet frames.
    pub const NULL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const TOKEN_RING: u16 = 2;
    pub const FDDI: u16 = 3;
    pub const WAN: u16 = 4;
    pub const IEEE_1394: u16 = 5;
    pub const WIFI: u16 = 6;
    pub const TUNNEL: u16 = 7;
    pub const WIRELESS_WAN: u16 = 8;
    pub const RAW_IP: u16 = 9;
    /// A frame converted from a pcap file: the LINKTYPE_ is in the low 12 bits.
    pub const PCAP_BASE: u16 = 0xe000;
    /// Message Analyzer's own media types (802.11 messages, WFP captures, ...), inside the pcap range.
    pub const ANALYZER_FIRST: u16 = 0xe080;
    pub const ANALYZER_LAST: u16 = 0xe08a;
    pub const NET_EVENT: u16 = 0xffe0;
    pub const NETWORK_INFO_EX: u16 = 0xfffb;
    pub const PAYLOAD_HEADER: u16 = 0xfffc;
    pub const NETWORK_INFO: u16 = 0xfffd;
    pub const DNS_CACHE: u16 = 0xfffe;
    pub const FILTER: u16 = 0xffff;
}

/// What a frame's media type says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// Network traffic with this LINKTYPE_ value.
    Link(u32),
    /// Network Monitor's own records, no network traffic.
    Metadata(&'static str),
    /// Network traffic of a media type rdptrace does not read.
    Unsupported(u16),
}

impl Media {
    pub fn of(code: u16) -> Media {
        match code {
            media::NULL | media::ETHERNET => Media::Link(linktype::ETHERNET),
            media::TUNNEL | media::WIRELESS_WAN | media::RAW_IP => Media::Link(linktype::RAW),
            media::ANALYZER_FIRST..=media::ANALYZER_LAST => Media::Unsupported(code),
            c if c & 0xf000 == media::PCAP_BASE => Media::Link(u32::from(c & 0x0fff)),
            media::NET_EVENT => Media::Metadata("event tracing events"),
            media::NETWORK_INFO_EX | media::NETWORK_INFO => {
                Media::Metadata("the list of network adapters")
            }
            media::PAYLOAD_HEADER => Media::Metadata("reassembled payload headers"),
            media::DNS_CACHE => Media::Metadata("the DNS cache"),
            media::FILTER => Media::Metadata("the capture filter"),
            other => Media::Unsupported(other),
        }
    }
}

/// A media type in words, for messages.
pub fn media_name(code: u16) -> String {
    let what = match code {
        media::TOKEN_RING => "Token Ring",
        media::FDDI => "FDDI",
        media::WAN => "NDIS WAN (ATM)",
        media::IEEE_1394 => "IP over IEEE 1394",
        media::WIFI => "802.11 with Network Monitor's radio header",
        media::ANALYZER_FIRST..=media::ANALYZER_LAST => "a Message Analyzer message type",
        _ => "unknown",
    };
    format!("Network Monitor media type 0x{code:04x} ({what})")
}

/// An error reading a Network Monitor file: what went wrong and, once frames are read, which frame (1-based,
/// in frame table order, as Network Monitor and Wireshark number them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetMonError {
    pub frame: Option<u64>,
    pub kind: NetMonErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetMonErrorKind {
    #[error("the file ends in the middle of this frame (truncated capture)")]
    Truncated,
    #[error("the file ends in its header (truncated capture)")]
    TruncatedHeader,
    #[error("invalid Network Monitor header: {0}")]
    Header(WireError),
    #[error("invalid frame record: {0}")]
    Record(WireError),
    #[error("Network Monitor format version {major}.{minor} is not supported (2.0 to 2.3 are)")]
    Version { major: u8, minor: u8 },
    #[error("invalid capture start time in the header: {0}")]
    StartTime(String),
    #[error("the frame table length {0} is not a multiple of 4")]
    TableLength(u32),
    #[error(
        "the frame table says this frame is at offset {offset}, past the end of the file ({len} bytes)"
    )]
    OffsetOutside { offset: u64, len: u64 },
    #[error("a frame of {0} bytes, more than the {MAX_FRAME} bytes a frame may hold")]
    TooLarge(u32),
    #[error(
        "no frame where the frames should start (offset 64, 72 or 128); the frame table is missing"
    )]
    NoFirstFrame,
    #[error("read error: {0}")]
    Io(String),
}

impl core::fmt::Display for NetMonError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.frame {
            Some(n) => write!(f, "frame {n}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for NetMonError {}

/// One frame of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Packet {
        /// 1-based, in frame table order.
        frame: u64,
        /// Time since the Unix epoch.
        ts: Duration,
        /// The LINKTYPE_ value.
        link: u32,
        data: &'a [u8],
        orig_len: u32,
    },
    /// A frame of Network Monitor's own records, or of a media type rdptrace does not read.
    Skipped { frame: u64, media: Media, code: u16 },
}

/// Where the frames are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frames {
    /// The frame table lies whole in the file: `count` entries at `offset`.
    Table { offset: u64, count: u32 },
    /// The frame table is lost (the file was cut short): frames follow one another from `next` until
    /// `end`.
    Walk { next: u64, end: u64 },
}

/// The format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

impl Version {
    /// Bytes after each frame's data.
    fn trailer_len(self) -> usize {
        match self.minor {
            0 => 0,
            1 => 2,
            2 => 6,
            _ => 15,
        }
    }
}

/// A Network Monitor 2.x file opened for reading.
pub struct Reader<R> {
    inner: R,
    /// Where `inner` stands.
    pos: u64,
    /// The file's length.
    len: u64,
    version: Version,
    /// The header's media type (the media type of every frame before version 2.1).
    media: u16,
    /// The start time, read as if it were UTC (the file does not say the capturing machine's time zone).
    start: Result<Duration, String>,
    frames: Frames,
    /// The 0-based number of the next frame.
    next: u32,
    /// Frame table entries from `chunk_first` on.
    chunk: Vec<u32>,
    chunk_first: u32,
    buf: Vec<u8>,
    /// An error found on opening that belongs to the first frame.
    pending: Option<NetMonError>,
    done: bool,
}

impl<R> core::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("netmon::Reader")
            .field("version", &self.version)
            .field("frames", &self.frames)
            .field("next", &self.next)
            .finish()
    }
}

fn io_error(e: &std::io::Error) -> NetMonErrorKind {
    NetMonErrorKind::Io(e.to_string())
}

impl<R: Read + Seek> Reader<R> {
    /// Reads the header of the file `inner` holds from its start.
    pub fn open(mut inner: R) -> Result<Self, NetMonError> {
        let header_err = |kind| NetMonError { frame: None, kind };
        let len = inner
            .seek(SeekFrom::End(0))
            .map_err(|e| header_err(io_error(&e)))?;
        inner
            .seek(SeekFrom::Start(0))
            .map_err(|e| header_err(io_error(&e)))?;
        let mut head = [0u8; HEADER_LEN];
        read_exact(&mut inner, &mut head).map_err(|e| {
            header_err(match e {
                Short::Eof => NetMonErrorKind::TruncatedHeader,
                Short::Io(e) => e,
            })
        })?;
        let h = Header::parse(&head).map_err(|e| header_err(NetMonErrorKind::Header(e)))?;
        if h.version.major != 2 {
            return Err(header_err(NetMonErrorKind::Version {
                major: h.version.major,
                minor: h.version.minor,
            }));
        }
        if !h.table_len.is_multiple_of(4) {
            return Err(header_err(NetMonErrorKind::TableLength(h.table_len)));
        }
        let table_end = u64::from(h.table_offset) + u64::from(h.table_len);
        let cut_short = table_end > len;
        let frames = if !cut_short && u64::from(h.table_offset) >= HEADER_LEN as u64 {
            Frames::Table {
                offset: u64::from(h.table_offset),
                count: h.table_len / 4,
            }
        } else {
            // The file was cut before the end of its frame table: the frames end where the table would
            // start, or where the file does.
            let end = if u64::from(h.table_offset) >= HEADER_LEN as u64 {
                u64::from(h.table_offset).min(len)
            } else {
                len
            };
            Frames::Walk { next: 0, end }
        };
        let mut reader = Reader {
            inner,
            pos: HEADER_LEN as u64,
            len,
            version: h.version,
            media: h.media,
            start: h.start,
            frames,
            next: 0,
            chunk: Vec::new(),
            chunk_first: 0,
            buf: Vec::new(),
            pending: None,
            done: false,
        };
        if let Frames::Walk { end, .. } = reader.frames {
            match reader.first_frame(end, cut_short) {
                Ok(first) => reader.frames = Frames::Walk { next: first, end },
                // The header is whole: the error is the first frame's.
                Err(e) => reader.pending = Some(e),
            }
        }
        Ok(reader)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether the frame table was lost and the frames are read in file order.
    pub fn table_lost(&self) -> bool {
        matches!(self.frames, Frames::Walk { .. })
    }

    /// Whether frame times come from the start time in the header (local time of the capturing machine)
    /// rather than from each frame's UTC time (version 2.3).
    pub fn local_times(&self) -> bool {
        self.version.minor < 3
    }

    /// The next frame; `None` after the last one or after an error.
    pub fn next_record(&mut self) -> Option<Result<Record<'_>, NetMonError>> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Some(Err(e));
        }
        let frame = u64::from(self.next) + 1;
        let offset = match self.frames {
            Frames::Table { count, .. } if self.next >= count => {
                self.done = true;
                return None;
            }
            Frames::Table { .. } => match self.table_entry(self.next) {
                Ok(offset) => u64::from(offset),
                Err(kind) => return Some(Err(self.fail(frame, kind))),
            },
            Frames::Walk { next, end } => {
                if next >= end {
                    self.done = true;
                    return None;
                }
                next
            }
        };
        let (data_len, trailer) = match self.read_frame(offset) {
            Ok(v) => v,
            Err(kind) => return Some(Err(self.fail(frame, kind))),
        };
        self.next = self.next.saturating_add(1);
        if let Frames::Walk { next, .. } = &mut self.frames {
            *next = offset
                .saturating_add(RECORD_HEADER_LEN as u64)
                .saturating_add(self.buf.len() as u64);
        }
        let code = trailer.media.unwrap_or(self.media);
        let m = Media::of(code);
        let Media::Link(link) = m else {
            return Some(Ok(Record::Skipped {
                frame,
                media: m,
                code,
            }));
        };
        let ts = match trailer.utc.and_then(filetime_to_unix) {
            Some(ts) => ts,
            None => match &self.start {
                Ok(start) => offset_time(*start, trailer.delta_us),
                Err(e) => {
                    let kind = NetMonErrorKind::StartTime(e.clone());
                    return Some(Err(self.fail(frame, kind)));
                }
            },
        };
        let data = self.buf.get(..data_len).unwrap_or_default();
        Some(Ok(Record::Packet {
            frame,
            ts,
            link,
            data,
            orig_len: trailer
                .orig_len
                .max(u32::try_from(data_len).unwrap_or(u32::MAX)),
        }))
    }

    fn fail(&mut self, frame: u64, kind: NetMonErrorKind) -> NetMonError {
        self.done = true;
        NetMonError {
            frame: Some(frame),
            kind,
        }
    }

    /// Moves `inner` to `offset` unless it is there.
    fn seek(&mut self, offset: u64) -> Result<(), NetMonErrorKind> {
        if self.pos != offset {
            self.inner
                .seek(SeekFrom::Start(offset))
                .map_err(|e| io_error(&e))?;
            self.pos = offset;
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at the current position.
    fn read(&mut self, buf: &mut [u8]) -> Result<(), Short> {
        let got = read_exact(&mut self.inner, buf);
        // After a short read the position is unknown: seek next time.
        self.pos = match got {
            Ok(()) => self.pos.saturating_add(buf.len() as u64),
            Err(_) => u64::MAX,
        };
        got
    }

    /// The offset of frame `i` (0-based) from the frame table, read a chunk at a time.
    fn table_entry(&mut self, i: u32) -> Result<u32, NetMonErrorKind> {
        let Frames::Table { offset, count } = self.frames else {
            return Err(NetMonErrorKind::Truncated);
        };
        let in_chunk = i
            .checked_sub(self.chunk_first)
            .and_then(|k| self.chunk.get(k as usize).copied());
        if let Some(entry) = in_chunk {
            return Ok(entry);
        }
        let n = TABLE_CHUNK.min(count.saturating_sub(i));
        let at = offset.saturating_add(u64::from(i) * 4);
        self.seek(at)?;
        let mut raw = vec![0u8; n as usize * 4];
        self.read(&mut raw).map_err(|e| match e {
            // INVARIANT: the table was checked to lie in the file; a short read means it changed.
            Short::Eof => NetMonErrorKind::Truncated,
            Short::Io(e) => e,
        })?;
        self.chunk = raw
            .chunks_exact(4)
            .map(|c| {
                let mut word = [0u8; 4];
                word.copy_from_slice(c);
                u32::from_le_bytes(word)
            })
            .collect();
        self.chunk_first = i;
        self.chunk
            .first()
            .copied()
            .ok_or(NetMonErrorKind::Truncated)
    }

    /// Reads the frame at `offset` into `buf` (its data, then its trailer): the data's length and the
    /// record's fields.
    fn read_frame(&mut self, offset: u64) -> Result<(usize, Trailer), NetMonErrorKind> {
        if offset >= self.len {
            return Err(NetMonErrorKind::OffsetOutside {
                offset,
                len: self.len,
            });
        }
        self.seek(offset)?;
        let mut head = [0u8; RECORD_HEADER_LEN];
        self.read(&mut head).map_err(Short::truncated)?;
        let base = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut r = WireReader::with_base(&head, base);
        let delta_us = u64::from_le_bytes(r.array("time offset").map_err(NetMonErrorKind::Record)?);
        let orig_len = r
            .u32_le("length on the wire")
            .map_err(NetMonErrorKind::Record)?;
        let incl_len = r
            .u32_le("captured length")
            .map_err(NetMonErrorKind::Record)?;
        if incl_len > MAX_FRAME {
            return Err(NetMonErrorKind::TooLarge(incl_len));
        }
        let data_len = incl_len as usize;
        let total = data_len + self.version.trailer_len();
        let end = offset
            .saturating_add(RECORD_HEADER_LEN as u64)
            .saturating_add(total as u64);
        if end > self.len {
            return Err(NetMonErrorKind::Truncated);
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(total, 0);
        let got = self.read(&mut buf);
        self.buf = buf;
        got.map_err(Short::truncated)?;
        let trailer_at = base.saturating_add(RECORD_HEADER_LEN + data_len);
        let mut t = WireReader::with_base(self.buf.get(data_len..).unwrap_or_default(), trailer_at);
        let mut trailer = Trailer {
            delta_us,
            orig_len,
            media: None,
            utc: None,
        };
        if self.version.minor >= 1 {
            trailer.media = Some(t.u16_le("media type").map_err(NetMonErrorKind::Record)?);
        }
        if self.version.minor >= 3 {
            t.skip(4, "process info index")
                .map_err(NetMonErrorKind::Record)?;
            trailer.utc = Some(u64::from_le_bytes(
                t.array("UTC time").map_err(NetMonErrorKind::Record)?,
            ));
        }
        Ok((data_len, trailer))
    }

    /// Where the first frame starts when the frame table is lost: the first candidate offset holding a
    /// record that fits before `end` (and, from version 2.1 on, whose trailer names a known media type).
    /// `cut_short`: the table was lost because the file ends before it.
    fn first_frame(&mut self, end: u64, cut_short: bool) -> Result<u64, NetMonError> {
        for at in FIRST_FRAME_CANDIDATES {
            if at >= end {
                continue;
            }
            match self.read_frame(at) {
                Ok((_, trailer)) => {
                    let known = trailer
                        .media
                        .is_none_or(|m| !matches!(Media::of(m), Media::Unsupported(_)));
                    let record_end = at
                        .saturating_add(RECORD_HEADER_LEN as u64)
                        .saturating_add(self.buf.len() as u64);
                    if known && record_end <= end {
                        return Ok(at);
                    }
                }
                Err(NetMonErrorKind::Io(e)) => {
                    return Err(NetMonError {
                        frame: None,
                        kind: NetMonErrorKind::Io(e),
                    });
                }
                Err(_) => {}
            }
        }
        // Nothing fits: the file was cut in its first frame, or its frames are not where they belong.
        Err(NetMonError {
            frame: Some(1),
            kind: if cut_short {
                NetMonErrorKind::Truncated
            } else {
                NetMonErrorKind::NoFirstFrame
            },
        })
    }
}

/// The fields of a frame record around its data.
#[derive(Debug, Clone, Copy)]
struct Trailer {
    delta_us: u64,
    orig_len: u32,
    media: Option<u16>,
    utc: Option<u64>,
}

/// The fields of the file header that reading needs.
struct Header {
    version: Version,
    media: u16,
    start: Result<Duration, String>,
    table_offset: u32,
    table_len: u32,
}

impl Header {
    fn parse(head: &[u8]) -> Result<Header, WireError> {
        let mut r = WireReader::new(head);
        let magic: [u8; 4] = r.array("magic")?;
        if magic != MAGIC {
            return Err(WireError {
                offset: 0,
                what: "magic (GMBU expected)",
            });
        }
        let minor = r.u8("minor version")?;
        let major = r.u8("major version")?;
        let media = r.u16_le("media type")?;
        let year = r.u16_le("start year")?;
        let month = r.u16_le("start month")?;
        r.skip(2, "start day of week")?;
        let day = r.u16_le("start day")?;
        let hour = r.u16_le("start hour")?;
        let minute = r.u16_le("start minute")?;
        let second = r.u16_le("start second")?;
        let milli = r.u16_le("start millisecond")?;
        let table_offset = r.u32_le("frame table offset")?;
        let table_len = r.u32_le("frame table length")?;
        Ok(Header {
            version: Version { major, minor },
            media,
            start: system_time(year, month, day, hour, minute, second, milli),
            table_offset,
            table_len,
        })
    }
}

/// A SYSTEMTIME as time since the Unix epoch, read as UTC.
fn system_time(
    year: u16,
    month: u16,
    day: u16,
    hour: u16,
    minute: u16,
    second: u16,
    milli: u16,
) -> Result<Duration, String> {
    let bad =
        || format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{milli:03}");
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let date = time::Date::from_calendar_date(
        i32::from(year),
        month,
        u8::try_from(day).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let clock = time::Time::from_hms_milli(
        u8::try_from(hour).map_err(|_| bad())?,
        u8::try_from(minute).map_err(|_| bad())?,
        u8::try_from(second).map_err(|_| bad())?,
        milli,
    )
    .map_err(|_| bad())?;
    let nanos = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp_nanos();
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| bad())
}

/// A frame's time from the start time and its offset. The offset is in microseconds; the format's
/// documentation has it read as a signed count of 100 ns after multiplying by ten, so that a frame may be
/// stamped before the start. Before the Unix epoch is the epoch.
fn offset_time(start: Duration, delta_us: u64) -> Duration {
    let ticks = i128::from(delta_us.wrapping_mul(10) as i64);
    let nanos = i128::try_from(start.as_nanos()).unwrap_or(i128::MAX) + ticks * 100;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .unwrap_or(Duration::ZERO)
}

/// A FILETIME (100 ns since 1601-01-01 UTC) as time since the Unix epoch; `None` before the epoch.
fn filetime_to_unix(ft: u64) -> Option<Duration> {
    let ticks = ft.checked_sub(FILETIME_UNIX_EPOCH)?;
    Some(
        Duration::from_secs(ticks / TICKS_PER_SECOND)
            + Duration::from_nanos((ticks % TICKS_PER_SECOND) * 100),
    )
}

/// Why `read_exact` came short.
enum Short {
    Eof,
    Io(NetMonErrorKind),
}

impl Short {
    fn truncated(self) -> NetMonErrorKind {
        match self {
            Short::Eof => NetMonErrorKind::Truncated,
            Short::Io(e) => e,
        }
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), Short> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            Short::Eof
        } else {
            Short::Io(io_error(&e))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A 2.`minor` file: a 72-byte header, the frames as (media type, bytes, µs since the start), the
    /// frame table last.
    fn file(minor: u8, frames: &[(u16, &[u8], u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[minor, 2]);
        out.extend_from_slice(&1u16.to_le_bytes());
        // 2024-02-29 (a Thursday) 23:59:58.500
        for v in [2024u16, 2, 4, 29, 23, 59, 58, 500] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(72, 0);
        let mut table = Vec::new();
        for (m, data, us) in frames {
            table.push(out.len() as u32);
            out.extend_from_slice(&us.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
            if minor >= 1 {
                out.extend_from_slice(&m.to_le_bytes());
            }
            if minor >= 2 {
                out.extend_from_slice(&[0xff; 4]);
            }
            if minor >= 3 {
                let ft = FILETIME_UNIX_EPOCH + 1_700_000_000 * TICKS_PER_SECOND + us * 10;
                out.extend_from_slice(&ft.to_le_bytes());
                out.push(0);
            }
        }
        let table_offset = out.len() as u32;
        for t in &table {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out[24..28].copy_from_slice(&table_offset.to_le_bytes());
        out[28..32].copy_from_slice(&((table.len() * 4) as u32).to_le_bytes());
        out
    }

    fn records(bytes: Vec<u8>) -> (Vec<String>, Option<NetMonError>) {
        let mut r = match Reader::open(Cursor::new(bytes)) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut out = Vec::new();
        while let Some(rec) = r.next_record() {
            match rec {
                Ok(Record::Packet {
                    frame,
                    ts,
                    link,
                    data,
                    ..
                }) => out.push(format!("{frame} {} {link} {data:?}", ts.as_micros())),
                Ok(Record::Skipped { frame, code, .. }) => {
                    out.push(format!("{frame} skip {code:x}"))
                }
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[test]
    fn frames_times_and_metadata() {
        let start = 1_709_251_198_500_000u64;
        let (got, err) = records(file(
            1,
            &[
                (0xffff, b"filter", 0),
                (1, b"ab", 250),
                (0xe065, b"ip", 1_000_000),
            ],
        ));
        assert_eq!(err, None);
        assert_eq!(
            got,
            vec![
                "1 skip ffff".to_owned(),
                format!("2 {} 1 [97, 98]", start + 250),
                format!("3 {} 101 [105, 112]", start + 1_000_000),
            ]
        );
        // Version 2.3: the frame's own UTC time.
        let (got, _) = records(file(3, &[(1, b"x", 7)]));
        assert_eq!(
            got,
            vec![format!("1 {} 1 [120]", 1_700_000_000_000_000u64 + 7)]
        );
        // Version 2.0: the header's media type, no trailer.
        let (got, _) = records(file(0, &[(9, b"x", 1), (9, b"yz", 2)]));
        assert_eq!(got.len(), 2);
        assert!(got[1].ends_with(" 1 [121, 122]"), "{got:?}");
    }

    #[test]
    fn a_cut_file_is_read_in_file_order_up_to_the_cut() {
        let whole = file(3, &[(1, b"first", 1), (1, b"second", 2), (1, b"third", 3)]);
        // Cut in the third frame's data: the table is gone.
        let cut = whole[..whole.len() - 12 - 15 - 2].to_vec();
        let (got, err) = records(cut);
        assert_eq!(got.len(), 2);
        let err = err.unwrap();
        assert_eq!(err.frame, Some(3));
        assert_eq!(err.kind, NetMonErrorKind::Truncated);
        assert_eq!(
            err.to_string(),
            "frame 3: the file ends in the middle of this frame (truncated capture)"
        );
        // Cut inside the table: every frame is read.
        let cut = whole[..whole.len() - 2].to_vec();
        let (got, err) = records(cut);
        assert_eq!((got.len(), err), (3, None));
    }

    #[test]
    fn hostile_lengths_and_offsets() {
        let mut big = file(1, &[(1, b"ab", 0)]);
        big[72 + 12..72 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        let (_, err) = records(big);
        assert_eq!(err.unwrap().kind, NetMonErrorKind::TooLarge(u32::MAX));

        let mut outside = file(1, &[(1, b"ab", 0)]);
        let at = outside.len() - 4;
        outside[at..].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        let (_, err) = records(outside);
        assert!(matches!(
            err.unwrap().kind,
            NetMonErrorKind::OffsetOutside {
                offset: 0x7fff_0000,
                ..
            }
        ));

        let mut odd = file(1, &[(1, b"ab", 0)]);
        odd[28..32].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            records(odd).1.unwrap().kind,
            NetMonErrorKind::TableLength(3)
        );

        let mut v1 = file(1, &[]);
        v1[5] = 1;
        assert_eq!(
            records(v1).1.unwrap().to_string(),
            "Network Monitor format version 1.1 is not supported (2.0 to 2.3 are)"
        );
        assert_eq!(
            records(b"GMBU\x01\x02".to_vec()).1.unwrap().kind,
            NetMonErrorKind::TruncatedHeader
        );
    }

    #[test]
    fn filetime_and_negative_offsets() {
        assert_eq!(filetime_to_unix(FILETIME_UNIX_EPOCH - 1), None);
        assert_eq!(
            filetime_to_unix(0x01d7_4a51_e48c_9aab),
            Some(Duration::from_nanos(1_621_169_361_794_525_900))
        );
        let start = Duration::from_secs(100);
        // 0x1999_9999_9999_999a microseconds: tenfold wraps to 4, i.e. 400 ns after the start; and
        // 0xe666_6666_6666_6666 tenfold wraps to -4 ticks, 400 ns before it.
        assert_eq!(
            offset_time(start, 0x1999_9999_9999_999a),
            Duration::from_nanos(100_000_000_400)
        );
        assert_eq!(
            offset_time(start, 0xe666_6666_6666_6666),
            Duration::from_nanos(99_999_999_600)
        );
        assert_eq!(offset_time(start, 5), Duration::from_micros(100_000_005));
        assert_eq!(offset_time(Duration::ZERO, u64::MAX / 5), Duration::ZERO);
    }
}
