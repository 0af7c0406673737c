//! Entry points for the fuzz targets in `fuzz/`, one per parser of untrusted bytes.
//!
//! Each takes arbitrary bytes, runs them through the same code the tool runs on a peer's bytes or a
//! user's file, and returns what came out (so that tests can check that a seed means what it should).
//! None of them does I/O. Whatever the input, they must not panic, hang or grow without bound: the fuzz
//! targets call them, and `tests/fuzz_regressions.rs` replays every input that once broke one.
//!
//! Inputs that stand for more than one byte stream are a list of chunks: a tag byte, a little-endian
//! `u16` length, then that many bytes (the last chunk takes what is left). [`chunk`] writes one.

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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dissect::{Decrypted, Dissector, TlsRecordSink};
use crate::probe::transport::{FrameKind, Framer};
use crate::replay::capture::Capture;
use crate::replay::dedupe::Dedupe;
use crate::replay::keylog::{KeyLog, Source};
use crate::replay::link::{Frame, Segment};
use crate::replay::session::{Limits, RdpPorts, Tracker};
use crate::replay::tls_decrypt::{self, Decryptor, Secrets};
use crate::trace::{CloseKind, Deadline, Origin, PerSide, Side, Trace};
use crate::verdict::Verdict;

/// The chunks of a multi-part input.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Chunks<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Chunks { rest: data }
    }
}

impl<'a> Iterator for Chunks<'a> {
    /// The tag and the bytes of one chunk.
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, rest) = self.rest.split_first()?;
        let len = match rest {
            [lo, hi, ..] => usize::from(u16::from_le_bytes([*lo, *hi])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or(&[]);
        let len = len.min(rest.len());
        let (body, after) = rest.split_at(len);
        self.rest = after;
        Some((tag, body))
    }
}

/// One chunk of a multi-part input (bytes past 65535 are cut).
pub fn chunk(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let bytes = bytes.get(..usize::from(u16::MAX)).unwrap_or(bytes);
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(bytes.len() + 3);
    out.push(tag);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Diagnoses and renders a trace the way the command line does, so that the renderers see every trace
/// the parsers can make.
fn settle(trace: &Trace) -> Verdict {
    let verdict = crate::diagnose::diagnose(trace);
    let _ = crate::report::text::render(
        trace,
        &verdict,
        crate::report::text::Options { verbose: true },
    );
    let _ = crate::report::json::line(trace, &verdict);
    verdict
}

// ---- the passive dissector ----------------------------------------------------------------------------

/// [`dissect`] chunk kinds (bits 1 and 2 of the tag; bit 0 is the side, 0 client, 1 server).
pub mod dissect_tag {
    /// TCP payload, to `Dissector::on_tcp_data`.
    pub const TCP: u8 = 0;
    /// TLS plaintext from the caller's own TLS stack, to `Dissector::on_plaintext`.
    pub const PLAINTEXT: u8 = 1 << 1;
    /// What the TLS record sink answers to the next record of that side: empty for "cannot decrypt",
    /// else the content type then the plaintext.
    pub const SINK: u8 = 2 << 1;
    /// An event: the first byte picks a close by FIN or RST, a gap, a deadline, or switches the
    /// plaintext-external mode the live probe uses.
    pub const EVENT: u8 = 3 << 1;
}

/// A TLS record sink that answers from a queue the input fills.
struct QueueSink {
    queue: Arc<Mutex<PerSide<VecDeque<Option<Decrypted>>>>>,
}

impl TlsRecordSink for QueueSink {
    fn record(&mut self, from: Side, _record: &[u8]) -> Option<Decrypted> {
        let mut queue = self.queue.lock().ok()?;
        queue[from].pop_front().flatten()
    }
}

/// The passive dissector, both directions: TCP payload, TLS plaintext, decrypted records and closes in
/// the order the chunks give them (see [`dissect_tag`]). Returns the settled trace and its verdict.
pub fn dissect(data: &[u8]) -> (Trace, Verdict) {
    let mut d = Dissector::new(Trace::new("fuzz", Origin::Probe));
    let queue: Arc<Mutex<PerSide<VecDeque<Option<Decrypted>>>>> = Arc::default();
    d.set_tls_sink(Box::new(QueueSink {
        queue: Arc::clone(&queue),
    }));
    let mut external = false;
    let mut at = 0.0;
    // The chunks are bounded by the input; each is handled once.
    for (tag, body) in Chunks::new(data) {
        at += 1.0;
        let side = if tag & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        match tag & 0b110 {
            dissect_tag::TCP => d.on_tcp_data(side, at, body),
            dissect_tag::PLAINTEXT => d.on_plaintext(side, at, body),
            dissect_tag::SINK => {
                let answer = body.split_first().map(|(&content_type, data)| Decrypted {
                    content_type,
                    data: data.to_vec(),
                });
                if let Ok(mut q) = queue.lock() {
                    q[side].push_back(answer);
                }
            }
            _ => match body.first().copied().unwrap_or(0) % 5 {
                0 => d.on_close(side, CloseKind::Fin, at),
                1 => d.on_close(side, CloseKind::Rst, at),
                2 => {
                    let byte = |i: usize| body.get(i).copied().unwrap_or(0);
                    d.on_gap(side, at, u64::from(u16::from_le_bytes([byte(1), byte(2)])));
                }
                3 => d.on_timeout(
                    at,
                    Deadline::Phase { seconds: 5.0 },
                    "the server's next PDU",
                ),
                _ => {
                    external = !external;
                    d.set_plaintext_external(external);
                }
            },
        }
    }
    d.on_capture_end(at + 1.0);
    let mut trace = d.into_trace();
    trace.finish(true);
    let verdict = settle(&trace);
    (trace, verdict)
}

// ---- captures -----------------------------------------------------------------------------------------

/// The whole replay of a capture file held in memory: pcap, pcapng, gzip or Network Monitor, link
/// layers, the duplicate filter, TCP reassembly, sessions (with 3390 named as an RDP port besides 3389),
/// the key log blocks it embeds and decryption. Returns the sessions' traces and the error that stopped
/// the reading, if one did.
pub fn capture(data: &[u8]) -> (Vec<Trace>, Option<String>) {
    let reader = Box::new(std::io::Cursor::new(data.to_vec()));
    let capture = match Capture::from_seekable("fuzz".to_owned(), reader) {
        Ok(c) => c,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let secrets = Arc::new(Secrets::new(KeyLog::new()));
    let mut traces = Vec::new();
    let end = crate::replay::run(
        capture,
        "fuzz".to_owned(),
        secrets,
        fuzz_limits(),
        &RdpPorts::new(&[3390]),
        &mut |s| {
            let _ = settle(&s.trace);
            traces.push(s.trace);
        },
    );
    (traces, end.error.map(|e| e.to_string()))
}

/// The capture file read both ways: through memory maps (`Capture::open`, as a plain pcap or pcapng file
/// is read) and through a buffer (as a gzip file or a stream is): the same packets, blocks and error, or
/// how they differ (the fuzz target fails on it): the two readers must agree on every file. Returns how they differ, when they do.
pub fn capture_readings(data: &[u8]) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!("rdptrace-fuzz-{}.cap", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return Ok(());
    }
    let mapped = Capture::open(&path, None).map(read_items);
    // What is fetched ahead is a hint: reading with the headers only fetched ahead yields the same.
    let headers = Capture::open(&path, None).map(|mut c| {
        c.set_prefetch(crate::replay::capture::Prefetch::Headers);
        read_items(c)
    });
    let buffered = Capture::from_seekable(
        "x".to_owned(),
        Box::new(std::io::Cursor::new(data.to_vec())),
    )
    .map(read_items);
    let _ = std::fs::remove_file(&path);
    match (&mapped, &headers) {
        (Ok(m), Ok(h)) if m == h => {}
        (Err(m), Err(h)) if m.detail == h.detail => {}
        (m, h) => {
            return Err(format!(
                "mapped readings differ with the headers fetched ahead: {m:?} / {h:?}"
            ));
        }
    }
    match (mapped, buffered) {
        (Ok(m), Ok(b)) if m == b => Ok(()),
        (Err(m), Err(b)) if m.detail == b.detail => Ok(()),
        (m, b) => Err(format!(
            "mapped and buffered readings differ: {m:?} / {b:?}"
        )),
    }
}

/// A capture file replayed on one thread and with two workers (a plain file: every worker walks it,
/// `replay::threads`): the same sessions in the same order, the same notes, counts and error. `Err` says
/// where the two differ.
pub fn replay_threads(data: &[u8]) -> Result<(), String> {
    let path =
        std::env::temp_dir().join(format!("rdptrace-fuzz-threads-{}.cap", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return Ok(());
    }
    let read = |threads: usize| {
        replay_reading(&path, threads, &[]).unwrap_or_else(|e| format!("cannot replay: {e}"))
    };
    let one = read(1);
    let two = read(2);
    let _ = std::fs::remove_file(&path);
    if one == two {
        return Ok(());
    }
    Err(format!(
        "one thread and two read differently, {}",
        first_difference(&one, &two)
    ))
}

/// Everything a replay of `path` on `threads` workers says, as one text: its sessions (traces and
/// verdicts), error, counts, notes and what its table gave up.
pub fn replay_reading(
    path: &std::path::Path,
    threads: usize,
    rsa_keys: &[std::path::PathBuf],
) -> Result<String, crate::replay::ReplayError> {
    let r = crate::replay::replay(
        path,
        &crate::replay::Options {
            threads,
            rsa_keys: rsa_keys.to_vec(),
            ..crate::replay::Options::default()
        },
    )?;
    Ok(format!(
        "{:#?}\nerror {:?}\npackets {} duplicates {}\nnotes {:#?}\ndrops {:?}",
        r.sessions, r.error, r.packets, r.duplicates, r.notes, r.drops
    ))
}

/// Where two texts first differ: the line, and the lines around it in each.
pub fn first_difference(a: &str, b: &str) -> String {
    let line = a
        .lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or(a.lines().count().min(b.lines().count()));
    let around = |s: &str| {
        s.lines()
            .skip(line.saturating_sub(3))
            .take(7)
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "at line {line}:\n--- first\n{}\n--- second\n{}",
        around(a),
        around(b)
    )
}

/// What a capture yields: its items, then the error it stopped at (without the file's name).
fn read_items(mut capture: Capture) -> (Vec<String>, Option<String>) {
    use crate::replay::capture::Item;
    let mut out = Vec::new();
    while let Some(item) = capture.next_item() {
        match item {
            Ok(Item::Packet(p)) => out.push(format!(
                "{} {:?} {} {} {:?}",
                p.number, p.ts, p.link, p.orig_len, p.data
            )),
            Ok(Item::Secrets { kind, data }) => out.push(format!("secrets {kind} {data:?}")),
            Ok(Item::Other) => out.push("other".to_owned()),
            Err(e) => return (out, Some(format!("{:?} {}", e.packet, e.detail))),
        }
    }
    (out, None)
}

// ---- RPC over HTTP ----------------------------------------------------------------------------------------

/// RPC over HTTP as the built-in gateway, the probe and the replay read it ([MS-RPCH], [MS-TSGU] 3.2): the
/// input cut into fragments by their frag_length and each decoded (DCE/RPC and RTS PDUs), then the whole
/// input decoded as the request and the response stub of every TsProxy method. Returns how many fragments
/// decoded.
pub fn rpc(data: &[u8]) -> usize {
    use crate::gateway::rpc::{ndr, pdu};
    let mut rest = data;
    let mut decoded = 0;
    // INVARIANT: each pass takes at least a common header off the input, or leaves the loop.
    for _ in 0..=data.len() / pdu::HEADER_LEN {
        let Ok(Some(len)) = pdu::pdu_len(rest) else {
            break;
        };
        let Some((fragment, tail)) = rest.split_at_checked(len) else {
            break;
        };
        if pdu::Pdu::decode(fragment).is_ok() {
            decoded += 1;
        }
        rest = tail;
    }
    for op in [
        ndr::opnum::CREATE_TUNNEL,
        ndr::opnum::AUTHORIZE_TUNNEL,
        ndr::opnum::MAKE_TUNNEL_CALL,
        ndr::opnum::CREATE_CHANNEL,
        ndr::opnum::CLOSE_CHANNEL,
        ndr::opnum::CLOSE_TUNNEL,
        ndr::opnum::SETUP_RECEIVE_PIPE,
        ndr::opnum::SEND_TO_SERVER,
    ] {
        let _ = ndr::Call::decode(op, data);
        let _ = ndr::Reply::decode(op, data);
    }
    decoded
}

/// Small limits, so that the fuzzer reaches them.
fn fuzz_limits() -> Limits {
    Limits {
        max_connections: 8,
        max_pending: 1 << 14,
    }
}

/// [`tcp`] tag bits.
pub mod tcp_tag {
    /// Sent by the second address (the server on port 3389 or 3390) rather than the first.
    pub const FROM_SERVER: u8 = 1;
    pub const SYN: u8 = 1 << 1;
    pub const ACK: u8 = 1 << 2;
    pub const FIN: u8 = 1 << 3;
    pub const RST: u8 = 1 << 4;
    /// Two bits: which of four client ports.
    pub const CONN_SHIFT: u8 = 5;
    /// The server listens on 3390 rather than 3389.
    pub const OTHER_PORT: u8 = 1 << 7;
}

/// The duplicate filter, session tracking and TCP reassembly without the capture format (3390 is not
/// named as an RDP port: a connection to it is RDP by its bytes only): each chunk is one TCP segment (see
/// [`tcp_tag`]) whose body is the sequence number (`u32` LE), the bytes the snapshot length cut
/// (`u16` LE), the time since the previous segment in milliseconds (`i8`, so time may go backwards),
/// then the payload. SYN, FIN and RST all set stand for an ICMP destination unreachable instead.
pub fn tcp(data: &[u8]) -> Vec<Trace> {
    let mut tracker = Tracker::new("fuzz", fuzz_limits(), None);
    let mut dedupe = Dedupe::new();
    let mut micros: u64 = 1_700_000_000_000_000;
    let mut traces = Vec::new();
    for (tag, body) in Chunks::new(data) {
        let field = |at: usize| body.get(at).copied().unwrap_or(0);
        let seq = u32::from_le_bytes([field(0), field(1), field(2), field(3)]);
        let missing = u32::from(u16::from_le_bytes([field(4), field(5)]));
        let step = i64::from(i8::from_le_bytes([field(6)])) * 1000;
        micros = micros.saturating_add_signed(step);
        let payload = body.get(7..).unwrap_or(&[]);
        let conn = u16::from((tag >> tcp_tag::CONN_SHIFT) & 0b11);
        let client = SocketAddr::from(([10, 0, 0, 1], 50_000 + conn));
        let server_port = if tag & tcp_tag::OTHER_PORT != 0 {
            3390
        } else {
            3389
        };
        let server = SocketAddr::from(([10, 0, 0, 2], server_port));
        let (src, dst) = if tag & tcp_tag::FROM_SERVER != 0 {
            (server, client)
        } else {
            (client, server)
        };
        let flags = tcp_tag::SYN | tcp_tag::FIN | tcp_tag::RST;
        let frame = if tag & flags == flags {
            Frame::Unreachable {
                src,
                dst,
                reporter: server.ip(),
                what: "port unreachable".to_owned(),
            }
        } else {
            Frame::Tcp(Segment {
                src,
                dst,
                seq,
                ack: 0,
                syn: tag & tcp_tag::SYN != 0,
                ack_flag: tag & tcp_tag::ACK != 0,
                fin: tag & tcp_tag::FIN != 0,
                rst: tag & tcp_tag::RST != 0,
                ip_id: None,
                payload,
                missing,
            })
        };
        let ts = Duration::from_micros(micros);
        if !dedupe.is_copy(ts, &frame) {
            tracker.frame(ts, &frame);
        }
        traces.extend(
            tracker
                .take_finished()
                .into_iter()
                .map(|f| f.into_trace("fuzz")),
        );
    }
    tracker.finish();
    traces.extend(
        tracker
            .take_finished()
            .into_iter()
            .map(|f| f.into_trace("fuzz")),
    );
    for t in &traces {
        let _ = settle(t);
    }
    traces
}

// ---- TLS ----------------------------------------------------------------------------------------------

/// [`tls_records`] chunk kinds (the tag modulo 3).
pub mod tls_tag {
    /// Key log text, as a file or a Decryption Secrets Block gives it.
    pub const KEYLOG: u8 = 0;
    /// A TLS record (header included) from the client.
    pub const CLIENT: u8 = 1;
    /// A TLS record from the server.
    pub const SERVER: u8 = 2;
}

/// The TLS record layer and key-log decryption of one session: key log text and records of both sides
/// (see [`tls_tag`]) through the replay's decryptor. Returns the plaintext records it opened and the facts
/// it gives the tls phase.
pub fn tls_records(data: &[u8]) -> (Vec<Decrypted>, Vec<(&'static str, String)>) {
    let secrets = Arc::new(Secrets::new(KeyLog::new()));
    let mut decryptor = Decryptor::new(Arc::clone(&secrets));
    let status = decryptor.status();
    let mut opened = Vec::new();
    for (tag, body) in Chunks::new(data) {
        match tag % 3 {
            tls_tag::KEYLOG => {
                let _ = secrets.add_keylog_text(&String::from_utf8_lossy(body), Source::Capture);
            }
            tls_tag::CLIENT => opened.extend(decryptor.record(Side::Client, body)),
            _ => opened.extend(decryptor.record(Side::Server, body)),
        }
    }
    let facts = tls_decrypt::facts(&status)
        .into_iter()
        .map(|(k, v)| (k.as_str(), format!("{v:?}")))
        .collect();
    (opened, facts)
}

/// An NSS key log file. Returns the secrets and the bad lines it counted.
pub fn keylog(data: &[u8]) -> (usize, usize) {
    let mut log = KeyLog::new();
    let added = log.add_text(&String::from_utf8_lossy(data), Source::File);
    (added.secrets, added.bad_lines)
}

// ---- the probe ----------------------------------------------------------------------------------------

/// The probe's inbound frame reader: each chunk is bytes read off the connection, its tag the kind of
/// frame the probe waits for next (modulo 4: TPKT or fast-path, a DER TSRequest, the 4-byte Early User
/// Authorization Result, a TPKT alone). Returns the frames cut, and the errors that stopped a frame.
pub fn probe_frames(data: &[u8]) -> (Vec<Vec<u8>>, Vec<&'static str>) {
    let mut framer = Framer::default();
    let mut frames = Vec::new();
    let mut errors = Vec::new();
    for (tag, body) in Chunks::new(data) {
        let kind = match tag % 4 {
            0 => FrameKind::Rdp,
            1 => FrameKind::Der,
            2 => FrameKind::Fixed(4),
            _ => FrameKind::Tpkt,
        };
        framer.push(body);
        // INVARIANT: each pass removes a frame from the buffer or stops.
        loop {
            match framer.next_frame(kind) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    // The probe gives up on the connection here; start over as a new one would.
                    errors.push(e);
                    framer = Framer::default();
                    break;
                }
            }
        }
    }
    (frames, errors)
}

/// The plaintext of an RD Gateway connection, both ways, as the replay reads it once its TLS is open: each
/// chunk is bytes from the client (even tag) or the gateway (odd tag); HTTP heads and bodies, WebSocket
/// frames, the HTTP transport's body and seed, MS-TSGU packets, then the RDP connection their data packets
/// carry. Returns the tunnel's trace.
pub fn gateway(data: &[u8]) -> Trace {
    use crate::replay::gateway::{GatewayConn, Tunnels};
    let position = crate::replay::order::Position::single();
    let mut conn = GatewayConn::new(
        "127.0.0.1:443".to_owned(),
        "fuzz",
        None,
        &position,
        Duration::ZERO,
    );
    let mut tunnels = Tunnels::default();
    let mut joined = false;
    for (i, (tag, body)) in Chunks::new(data).enumerate() {
        let side = if tag % 2 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        let at = Duration::from_millis(u64::try_from(i).unwrap_or(u64::MAX));
        conn.plaintext(side, at, body);
        if !joined && conn.verdict == crate::replay::gateway::Verdict::Gateway {
            let trace = Trace::new(
                "127.0.0.1:443",
                Origin::Replay {
                    file: "fuzz".to_owned(),
                    session: 1,
                },
            );
            joined = tunnels.create("fuzz", trace, &mut conn, Duration::ZERO, 0, None);
        }
        if joined {
            tunnels.apply("fuzz", conn.take_items());
        }
    }
    if joined {
        tunnels.closed(
            "fuzz",
            Side::Server,
            CloseKind::Fin,
            Duration::from_secs(1),
            true,
        );
    }
    tunnels
        .ended("fuzz", Duration::from_secs(1), 1)
        .map(|(_, _, t)| t)
        .unwrap_or_else(|| {
            Trace::new(
                "127.0.0.1:443",
                Origin::Replay {
                    file: "fuzz".to_owned(),
                    session: 1,
                },
            )
        })
}

// ---- files --------------------------------------------------------------------------------------------

/// A `.rdp` file: its bytes decoded (UTF-16 or UTF-8) and parsed into a target.
pub fn rdp_file(
    data: &[u8],
) -> Result<crate::fleet::targets::TargetSpec, crate::fleet::rdpfile::RdpFileError> {
    crate::fleet::rdpfile::parse_bytes(data, "fuzz.rdp")
}

/// A targets file for `probe --targets`.
pub fn targets_file(
    data: &[u8],
) -> Result<Vec<crate::fleet::targets::TargetSpec>, crate::fleet::targets::TargetsError> {
    crate::fleet::targets::read(data, "fuzz.txt")
}

/// A TOML policy for `check --policy`, and the expectations it gives each of its targets.
pub fn policy(data: &[u8]) -> Result<Vec<String>, crate::check::policy::PolicyError> {
    let policy = crate::check::policy::Policy::parse(&String::from_utf8_lossy(data), "fuzz.toml")?;
    let mut out = Vec::new();
    for target in policy.target_names() {
        for e in policy.for_target(&target) {
            out.push(format!("{target}: {e} ({})", e.expected()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_cut_short_input() {
        let mut data = chunk(7, b"abc");
        data.extend(chunk(1, b""));
        data.extend([9, 5, 0, b'x']);
        let got: Vec<(u8, &[u8])> = Chunks::new(&data).collect();
        assert_eq!(got, vec![(7, &b"abc"[..]), (1, &b""[..]), (9, &b"x"[..])]);
        assert_eq!(Chunks::new(&[3]).collect::<Vec<_>>(), vec![(3, &b""[..])]);
    }
}
