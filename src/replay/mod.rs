//! Offline replay: the RDP sessions of a pcap, pcapng or Network Monitor capture, through the same dissector
//! and diagnosis.
//!
//! - [`capture`] reads the file packet by packet (pcap, pcapng, gzip; [`netmon`] for Network Monitor);
//! - [`link`] turns a frame into a TCP segment (etherparse for IP and TCP);
//! - [`dedupe`] drops the copies of a packet that some captures hold (pktmon, Linux on several
//!   interfaces);
//! - [`reassembly`] puts each direction's bytes in order and reports what is missing;
//! - [`session`] tells RDP connections from the rest and keeps one [`crate::dissect::Dissector`] per session;
//! - [`keylog`] and [`tls_decrypt`] open TLS records with the secrets the user gives;
//! - [`threads`] shares the connections among worker threads by their flow key, the reader feeding them
//!   and the results merged back in capture order; [`order`] keeps what one connection learns and another
//!   reads in capture order across them.
//!
//! On one thread ([`Options::threads`] 1) the reader hands each packet to the flow table itself; on more,
//! the same flow table code runs on each worker, and the reports come out the same, in the same order.

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

pub mod capture;
pub mod cli;
pub mod dedupe;
pub mod gateway;
pub mod kerberos;
pub mod keylog;
pub mod link;
pub mod mapped;
pub mod netmon;
pub mod order;
pub mod reassembly;
pub mod redirect;
pub mod session;
mod shard;
mod summary;
mod threads;
pub mod tls_decrypt;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capture::{Capture, CaptureError, Item};
use dedupe::Dedupe;
use keylog::{KeyLog, Source};
use session::{At, Attempt, Drops, Ended, Limits, Outcome, RdpPorts, RdpServers, Tracker};
use tls_decrypt::Secrets;
use tracing::{debug, info};

use crate::trace::{Origin, Trace};
use crate::verdict::Verdict;

/// Files larger than this get a progress bar when stderr is a terminal.
const PROGRESS_THRESHOLD: u64 = 100 * 1024 * 1024;

/// What to read and with which secrets.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// An NSS key log file.
    pub keylog: Option<PathBuf>,
    /// Server RSA private keys (PEM, PKCS#1 or PKCS#8).
    pub rsa_keys: Vec<PathBuf>,
    /// An MIT keytab with the server's keys ([`crate::kerberos::unwrap`]).
    pub keytab: Option<PathBuf>,
    pub limits: Limits,
    /// Ports RDP listens on besides 3389 (`--port`).
    pub ports: Vec<u16>,
    /// Show a progress bar for large files when stderr is a terminal.
    pub progress: bool,
    /// Worker threads; 0 for one per core. 1 reads, follows and settles every connection on the calling
    /// thread.
    pub threads: usize,
}

impl Options {
    /// The worker threads this replay uses.
    pub fn workers(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// One RDP session of the capture, diagnosed.
#[derive(Debug, Clone)]
pub struct Session {
    /// 1-based, in the order the sessions end in the capture (see [`replay_each`]).
    pub index: usize,
    pub trace: Trace,
    pub verdict: Verdict,
    /// The connection carried data (it is not a bare connection attempt).
    pub data: bool,
}

/// A connection to the RDP port that carried no data, numbered among the sessions: what a scan or a
/// flood is made of, reported without building its trace until it is shown.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    /// 1-based, as [`Session::index`].
    pub index: usize,
    pub attempt: Attempt,
}

impl AttemptReport {
    /// The attempt as a session, its trace built and diagnosed.
    pub fn session(&self, file: &str) -> Session {
        let trace = self.attempt.trace(file, self.index);
        let verdict = crate::diagnose::diagnose(&trace);
        Session {
            index: self.index,
            trace,
            verdict,
            data: false,
        }
    }
}

/// What a replay reports, in order.
// One is made, handed on and dropped at a time: boxing the larger variant would only add an allocation
// per session.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Report {
    Session(Session),
    Attempt(AttemptReport),
}

impl Report {
    pub fn index(&self) -> usize {
        match self {
            Report::Session(s) => s.index,
            Report::Attempt(a) => a.index,
        }
    }

    /// The report as a session (an attempt's trace built and diagnosed).
    pub fn into_session(self, file: &str) -> Session {
        match self {
            Report::Session(s) => s,
            Report::Attempt(a) => a.session(file),
        }
    }
}

/// The outcome of reading a capture.
#[derive(Debug, Clone)]
pub struct Replay {
    pub file: String,
    pub sessions: Vec<Session>,
    /// The error that stopped the reading, if one did; the sessions read until then are still there.
    pub error: Option<CaptureError>,
    pub packets: u64,
    /// Copies of packets dropped ([`dedupe`]).
    pub duplicates: u64,
    /// Things worth telling about the file as a whole.
    pub notes: Vec<String>,
    /// What the flow table gave up to stay within its bounds.
    pub drops: Drops,
}

/// Something that keeps the replay from starting at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Capture(CaptureError),
    #[error("{file}: {detail}")]
    Secrets { file: String, detail: String },
}

/// Loads the secrets the user gave; what is worth telling about them (lines of the key log that are not
/// key log lines) goes to `notes`.
pub fn load_secrets(opts: &Options, notes: &mut Vec<String>) -> Result<Secrets, ReplayError> {
    let mut log = KeyLog::new();
    if let Some(path) = &opts.keylog {
        let text = std::fs::read(path).map_err(|e| ReplayError::Secrets {
            file: path.display().to_string(),
            detail: format!("cannot read the key log: {e}"),
        })?;
        let added = log.add_text(&String::from_utf8_lossy(&text), Source::File);
        info!(file = %path.display(), secrets = added.secrets, bad_lines = added.bad_lines, "key log loaded");
        if added.bad_lines > 0 {
            notes.push(format!(
                "{}: {} line(s) that are not NSS key log lines were skipped",
                path.display(),
                added.bad_lines
            ));
        }
        if added.secrets == 0 {
            return Err(ReplayError::Secrets {
                file: path.display().to_string(),
                detail: "no TLS secrets in this key log (NSS key log format expected)".to_owned(),
            });
        }
    }
    let mut secrets = Secrets::new(log);
    for path in &opts.rsa_keys {
        let pem = std::fs::read_to_string(path).map_err(|e| ReplayError::Secrets {
            file: path.display().to_string(),
            detail: format!("cannot read the RSA key: {e}"),
        })?;
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        secrets
            .add_rsa_pem(&pem, label)
            .map_err(|detail| ReplayError::Secrets {
                file: path.display().to_string(),
                detail,
            })?;
    }
    if let Some(path) = &opts.keytab {
        let err = |detail: String| ReplayError::Secrets {
            file: path.display().to_string(),
            detail,
        };
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read the keytab: {e}")))?;
        let entries = crate::kerberos::keytab::parse(&bytes).map_err(|e| err(e.to_string()))?;
        secrets.add_keytab(entries);
    }
    Ok(secrets)
}

/// Reads the capture at `path` and diagnoses every RDP session in it.
pub fn replay(path: &Path, opts: &Options) -> Result<Replay, ReplayError> {
    let mut sessions = Vec::new();
    let end = replay_each(path, opts, &mut |s| sessions.push(s))?;
    Ok(Replay {
        file: end.file,
        sessions,
        error: end.error,
        packets: end.packets,
        duplicates: end.duplicates,
        notes: end.notes,
        drops: end.drops,
    })
}

/// How a streamed replay ended.
#[derive(Debug, Clone)]
pub struct End {
    pub file: String,
    /// The error that stopped the reading, if one did.
    pub error: Option<CaptureError>,
    pub packets: u64,
    /// Copies of packets dropped ([`dedupe`]).
    pub duplicates: u64,
    /// RDP sessions found (connection attempts included).
    pub sessions: usize,
    pub notes: Vec<String>,
    /// What the flow table gave up to stay within its bounds.
    pub drops: Drops,
}

/// Reads the capture at `path` and hands each RDP session to `each` as soon as it ends, so that memory
/// holds only the sessions still open. Sessions are numbered in the order they end (those that end at the
/// same packet, and those still open at the end of the capture, by the order they started).
pub fn replay_each(
    path: &Path,
    opts: &Options,
    each: &mut dyn FnMut(Session),
) -> Result<End, ReplayError> {
    let file = path.display().to_string();
    replay_stream(path, opts, &mut |r| each(r.into_session(&file)))
}

/// [`replay_each`], with the connection attempts that carried no data handed on as they are.
pub fn replay_stream(
    path: &Path,
    opts: &Options,
    each: &mut dyn FnMut(Report),
) -> Result<End, ReplayError> {
    let mut secrets_notes = Vec::new();
    let secrets = Arc::new(load_secrets(opts, &mut secrets_notes)?);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = (opts.progress && size > PROGRESS_THRESHOLD && std::io::stderr().is_terminal()).then(
        || {
            let bar = indicatif::ProgressBar::new(size);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {elapsed} (eta {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        },
    );
    let capture = Capture::open(path, bar.clone()).map_err(ReplayError::Capture)?;
    let mut end = run_stream(
        capture,
        path.display().to_string(),
        secrets,
        opts.limits,
        &RdpPorts::new(&opts.ports),
        opts.workers(),
        each,
    );
    secrets_notes.append(&mut end.notes);
    end.notes = secrets_notes;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(end)
}

/// Reads an opened capture to its end (or its first error) on the calling thread.
pub fn run(
    capture: Capture,
    file: String,
    secrets: Arc<Secrets>,
    limits: Limits,
    ports: &RdpPorts,
    each: &mut dyn FnMut(Session),
) -> End {
    let name = file.clone();
    run_stream(capture, file, secrets, limits, ports, 1, &mut |r| {
        each(r.into_session(&name))
    })
}

/// Reads an opened capture to its end (or its first error) with `workers` worker threads (1: on the
/// calling thread), handing on every session and connection attempt in order.
pub fn run_stream(
    mut capture: Capture,
    file: String,
    secrets: Arc<Secrets>,
    limits: Limits,
    ports: &RdpPorts,
    workers: usize,
    each: &mut dyn FnMut(Report),
) -> End {
    if workers > 1 {
        // The reader walks a window's headers in a tight loop: fetching every byte ahead of it (the
        // capture's default) keeps that loop from waiting for memory, and leaves the frames in the cache
        // the cores share for the workers. Its windows are mapped as it reads them, and grow for long
        // records: mapping them costs more with threads on several cores.
        capture.for_workers(threads::WINDOW_MOST);
        threads::run(capture, file, secrets, limits, ports, workers, each)
    } else {
        if !secrets.any() {
            // Without a key nothing reads a payload whole: the headers ahead are what is waited for.
            capture.set_prefetch(capture::Prefetch::Headers);
        }
        run_single(capture, file, secrets, limits, ports, each)
    }
}

/// The capture's clock: the latest packet time seen (it never goes back), and a tick each time it enters a
/// new second, when idle connections are settled. The reader keeps it, so that every worker ticks at the
/// same packets.
#[derive(Debug, Default)]
struct Clock {
    now: Option<Duration>,
    /// Packets timed before the one before them.
    backwards: u64,
}

impl Clock {
    /// A packet at `ts`: the clock after it, and whether it ticks first.
    fn advance(&mut self, ts: Duration) -> (Duration, bool) {
        match self.now {
            None => {
                self.now = Some(ts);
                (ts, true)
            }
            Some(now) => {
                if ts < now {
                    self.backwards += 1;
                    return (now, false);
                }
                self.now = Some(ts);
                (ts, ts.as_secs() > now.as_secs())
            }
        }
    }
}

/// What the reader tells about the file, besides the sessions.
#[derive(Debug, Default)]
struct ReadStats {
    error: Option<CaptureError>,
    notes: Vec<String>,
    secrets_blocks: usize,
    /// Packets of link types rdptrace cannot decode: (link type, packets, the first one's number).
    unsupported: Vec<(u32, u64, u64)>,
    supported_packets: u64,
    backwards: u64,
    /// Copies of packets dropped ([`dedupe`]).
    duplicates: u64,
    /// TLS connections that were not RDP and could not be decrypted: how many, the first one's addresses.
    opaque: crate::replay::gateway::Opaque,
}

impl ReadStats {
    /// A worker's opaque TLS connections ([`Tracker::opaque_tls`]), added to the others'; the first is the
    /// one settled at the earliest packet, as on one thread.
    fn opaque(&mut self, theirs: crate::replay::gateway::Opaque) {
        self.opaque.merge(theirs);
    }

    /// What the reading of the clients' Kerberos traffic has to tell.
    fn kdc(&mut self, kdc: &Mutex<kerberos::KdcTraffic>) {
        if let Ok(kdc) = kdc.lock() {
            self.notes.append(&mut kdc.notes());
        }
    }

    /// A packet of the capture as the reader takes it: skipped (`None`, counted) when its link type is not
    /// one rdptrace reads; else decoded, given to the Kerberos reading, and placed on the capture's clock
    /// (with whether the clock ticks before it).
    fn packet<'p>(
        &mut self,
        p: &'p capture::Packet<'_>,
        clock: &mut Clock,
        kdc: &Mutex<kerberos::KdcTraffic>,
    ) -> Option<(link::Frame<'p>, At, bool)> {
        let (at, tick) = self.place(p, clock)?;
        let frame = link::decode(p.link, &p.data, p.orig_len);
        kerberos::feed(kdc, p.ts, p.link, &p.data, &frame);
        Some((frame, at, tick))
    }

    /// A packet placed on the capture's clock (with whether the clock ticks before it); `None` (counted)
    /// when its link type is not one rdptrace reads.
    fn place(&mut self, p: &capture::Packet<'_>, clock: &mut Clock) -> Option<(At, bool)> {
        if !link::supported(p.link) {
            self.unsupported(p.link, p.number);
            return None;
        }
        self.supported_packets += 1;
        let (now, tick) = clock.advance(p.ts);
        let at = At {
            position: p.number,
            ts: p.ts,
            clock: now,
        };
        Some((at, tick))
    }

    /// A packet of an unsupported link type.
    fn unsupported(&mut self, link: u32, number: u64) {
        // Skipped, not fatal: a pcapng may hold other interfaces rdptrace can read.
        match self.unsupported.iter_mut().find(|(l, _, _)| *l == link) {
            Some((_, n, _)) => *n += 1,
            None => self.unsupported.push((link, 1, number)),
        }
    }

    /// A Decryption Secrets Block.
    fn secrets(&mut self, secrets: &Secrets, kind: u32, data: &[u8]) {
        if kind == capture::SECRETS_TLS_KEY_LOG {
            let added = secrets.add_keylog_text(&String::from_utf8_lossy(data), Source::Capture);
            self.secrets_blocks += 1;
            debug!(secrets = added, "decryption secrets block");
        } else {
            self.notes.push(format!(
                "a decryption secrets block of type 0x{kind:08x} that rdptrace does not use"
            ));
        }
    }

    /// The replay's end: the notes about the file (`capture`'s own among them) and the table's bounds.
    fn end(
        mut self,
        capture: &Capture,
        file: String,
        sessions: usize,
        drops: Drops,
        limits: Limits,
    ) -> End {
        let mut notes = std::mem::take(&mut self.notes);
        for &(link, n, first) in &self.unsupported {
            let detail = format!(
                "link type {link} ({}) is not supported",
                capture::link_name(link)
            );
            if self.supported_packets == 0 && self.error.is_none() {
                // Nothing in the file could be read: that is the error, not a note.
                self.error = Some(CaptureError {
                    file: file.clone(),
                    packet: Some(first),
                    detail,
                });
            } else {
                notes.push(format!(
                    "{n} packet(s) skipped, the first is packet {first}: {detail}"
                ));
            }
        }
        notes.append(&mut capture.notes());
        if self.secrets_blocks > 0 {
            notes.push(format!(
                "{} TLS key log block(s) in the capture",
                self.secrets_blocks
            ));
        }
        if self.backwards > 0 {
            notes.push(format!(
                "{} packet(s) are timed before a packet ahead of them in the file (the capture is not in time order); idle timeouts follow the latest time seen",
                self.backwards
            ));
        }
        if sessions == 0 && self.opaque.0 > 0 {
            // [MS-TSGU] an RD Gateway carries the RDP connection inside HTTPS: without its secrets it looks
            // like any other TLS.
            notes.push(format!(
                "{} TLS connection(s) that are not RDP could not be decrypted (the first: {}); if one is an RD Gateway's (RDP inside HTTPS), give its TLS secrets (--keylog, or a capture with a decryption secrets block) to read the gateway exchange and the RDP connection in it",
                self.opaque.0,
                self.opaque.first()
            ));
        }
        notes.extend(drop_notes(&drops, limits));
        End {
            file,
            error: self.error,
            packets: capture.packets(),
            duplicates: self.duplicates,
            sessions,
            notes,
            drops,
        }
    }
}

/// What the flow table gave up, by kind, in words.
fn drop_notes(d: &Drops, limits: Limits) -> Vec<String> {
    let max = limits.max_connections;
    let mut notes = Vec::new();
    if d.unanswered > 0 {
        notes.push(format!(
            "{} unanswered connection attempt(s) were settled before their timeout to stay within {max} open connections (each is reported with the SYNs seen until then)",
            d.unanswered
        ));
    }
    if d.no_data > 0 {
        notes.push(format!(
            "{} connection(s) that carried no data were settled early to stay within {max} open connections",
            d.no_data
        ));
    }
    if d.undecided > 0 {
        notes.push(format!(
            "{} connection(s) on other ports than 3389 whose first bytes did not yet say whether they are RDP were dropped to stay within {max} open connections",
            d.undecided
        ));
    }
    if d.sessions > 0 {
        notes.push(format!(
            "{} RDP session(s) were settled before their end to stay within {max} open connections: each is reported with what was read until then",
            d.sessions
        ));
    }
    if d.late_packets > 0 {
        notes.push(format!(
            "{} later packet(s) of the connections settled early were not read",
            d.late_packets
        ));
    }
    notes
}

/// A connection settled by a worker, diagnosed, waiting for its number.
#[derive(Debug)]
enum Settled {
    Session(Box<Session>),
    Attempt(Box<Attempt>),
}

/// The order sessions are reported in: the packet they ended at, then their start.
type Key = (u64, Duration, u64);

/// Diagnoses what a tracker settled (on the thread that settled it).
fn settled(e: Ended, kdc: &Mutex<kerberos::KdcTraffic>) -> (Key, Settled) {
    let key = (e.position, e.first_ts, e.order);
    let s = match e.outcome {
        Outcome::Session { mut trace, data } => {
            // INVARIANT: the reader has read every packet before the one this session ended at, so the
            // client's Kerberos exchanges of its time are known.
            if let Ok(kdc) = kdc.lock() {
                kdc.attach(&mut trace, e.first_ts);
            }
            let verdict = crate::diagnose::diagnose(&trace);
            Settled::Session(Box::new(Session {
                index: 0,
                trace: *trace,
                verdict,
                data,
            }))
        }
        Outcome::Attempt(a) => Settled::Attempt(a),
    };
    (key, s)
}

/// Numbers what was settled and hands it on.
fn number(s: Settled, file: &str, count: &mut usize, each: &mut dyn FnMut(Report)) {
    *count += 1;
    let report = match s {
        Settled::Session(mut session) => {
            session.index = *count;
            session.trace.origin = Origin::Replay {
                file: file.to_owned(),
                session: *count,
            };
            Report::Session(*session)
        }
        Settled::Attempt(attempt) => Report::Attempt(AttemptReport {
            index: *count,
            attempt: *attempt,
        }),
    };
    each(report);
}

/// Numbers, diagnoses and hands on what the tracker settled, in order.
fn hand_on(
    tracker: &mut Tracker,
    kdc: &Mutex<kerberos::KdcTraffic>,
    file: &str,
    count: &mut usize,
    each: &mut dyn FnMut(Report),
) {
    let mut finished = tracker.take_finished();
    match finished.len() {
        0 => {}
        1 => {
            if let Some(e) = finished.pop() {
                number(settled(e, kdc).1, file, count, each);
            }
        }
        _ => {
            let mut settled: Vec<(Key, Settled)> =
                finished.into_iter().map(|e| settled(e, kdc)).collect();
            settled.sort_unstable_by_key(|(key, _)| *key);
            for (_, s) in settled {
                number(s, file, count, each);
            }
        }
    }
}

/// The replay on the calling thread.
fn run_single(
    mut capture: Capture,
    file: String,
    secrets: Arc<Secrets>,
    limits: Limits,
    ports: &RdpPorts,
    each: &mut dyn FnMut(Report),
) -> End {
    let position = order::Position::single();
    let servers = RdpServers::new(Arc::clone(&position));
    let mut tracker = Tracker::with(
        file.clone(),
        limits,
        Some(Arc::clone(&secrets)),
        position,
        servers,
    )
    .with_ports(ports.clone());
    // Between the capture reader and the flow table: copies of a packet go no further.
    let mut dedupe = Dedupe::new();
    let mut stats = ReadStats::default();
    let mut clock = Clock::default();
    // Beside the flow table: the clients' Kerberos traffic (port 88), linked to their RDP sessions.
    let kdc = Mutex::new(kerberos::KdcTraffic::new());
    let mut count = 0usize;
    while let Some(item) = capture.next_item() {
        match item {
            Err(e) => {
                stats.error = Some(e);
                break;
            }
            Ok(Item::Secrets { kind, data }) => stats.secrets(&secrets, kind, &data),
            Ok(Item::Other) => {}
            Ok(Item::Packet(p)) => {
                let Some((frame, at, tick)) = stats.packet(&p, &mut clock, &kdc) else {
                    continue;
                };
                // The clock, then the duplicate filter, as the reader and a worker of the threaded
                // replay do them.
                if tick {
                    tracker.tick(at.position, at.clock);
                }
                if dedupe.is_copy(p.ts, &frame) {
                    continue;
                }
                tracker.packet(at, &frame);
                hand_on(&mut tracker, &kdc, &file, &mut count, each);
            }
        }
    }
    tracker.finish();
    hand_on(&mut tracker, &kdc, &file, &mut count, each);
    stats.backwards = clock.backwards;
    stats.duplicates = dedupe.dropped;
    stats.opaque(tracker.opaque_tls());
    stats.kdc(&kdc);
    let drops = tracker.drops;
    stats.end(&capture, file, count, drops, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::gateway::Opaque;

    /// The workers of a threaded replay report their first opaque TLS connection in any order; the one
    /// settled at the earliest packet is the capture's first, as on one thread.
    #[test]
    fn the_first_opaque_connection_is_the_earliest_of_any_worker() {
        let reports = [
            Opaque(
                1,
                Some(((50, 40), "10.0.0.2:50000 -> 10.0.0.9:443".to_owned())),
            ),
            Opaque(0, None),
            Opaque(
                2,
                Some(((10, 5), "10.0.0.1:50000 -> 10.0.0.9:443".to_owned())),
            ),
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut stats = ReadStats::default();
            for i in order {
                if let Some(r) = reports.get(i) {
                    stats.opaque(r.clone());
                }
            }
            assert_eq!(stats.opaque.0, 3);
            assert_eq!(
                stats.opaque.1.as_ref().map(|(_, a)| a.as_str()),
                Some("10.0.0.1:50000 -> 10.0.0.9:443"),
                "{order:?}"
            );
        }
    }
}
