//! Offline replay: the RDP sessions of a pcap, pcapng or Network Monitor capture, through the same dissector
//! and diagnosis.
//!
//! - [`capture`] reads the file packet by packet (pcap, pcapng, gzip; [`netmon`] for Network Monitor);
//! - [`link`] turns a frame into a TCP segment (etherparse for IP and TCP);
//! - [`dedupe`] drops the copies of a packet that some captures hold (pktmon, Linux on several
//!   interfaces);
//! - [`reassembly`] puts each direction's bytes in order and reports what is missing;
//! - [`session`] tells RDP connections from the rest and keeps one [`crate::dissect::Dissector`] per session;
//! - [`keylog`] and [`tls_decrypt`] open TLS records with the secrets the user gives.

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
pub mod netmon;
pub mod reassembly;
pub mod redirect;
pub mod session;
pub mod tls_decrypt;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capture::{Capture, CaptureError, Item};
use dedupe::Dedupe;
use keylog::{KeyLog, Source};
use session::{Limits, RdpPorts, Tracker};
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
}

/// One RDP session of the capture, diagnosed.
#[derive(Debug, Clone)]
pub struct Session {
    /// 1-based, in the order the sessions start in the capture.
    pub index: usize,
    pub trace: Trace,
    pub verdict: Verdict,
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
    /// RDP sessions found.
    pub sessions: usize,
    pub notes: Vec<String>,
}

/// Reads the capture at `path` and hands each RDP session to `each` as soon as it ends, so that memory
/// holds only the sessions still open. Sessions are numbered in the order they end (those still open at
/// the end of the capture, or dropped together, by the order they started).
pub fn replay_each(
    path: &Path,
    opts: &Options,
    each: &mut dyn FnMut(Session),
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
    let wrap_bar = bar.clone();
    let capture = Capture::open(path, move |file| match wrap_bar {
        Some(bar) => Box::new(bar.wrap_read(file)),
        None => Box::new(file),
    })
    .map_err(ReplayError::Capture)?;
    let mut end = run(
        capture,
        path.display().to_string(),
        secrets,
        opts.limits,
        &RdpPorts::new(&opts.ports),
        each,
    );
    secrets_notes.append(&mut end.notes);
    end.notes = secrets_notes;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(end)
}

/// Numbers, diagnoses and hands on the sessions the tracker finished.
fn hand_on(
    tracker: &mut Tracker,
    kdc: &kerberos::KdcTraffic,
    file: &str,
    count: &mut usize,
    each: &mut dyn FnMut(Session),
) {
    let mut finished = tracker.take_finished();
    if finished.is_empty() {
        return;
    }
    finished.sort_by(|a, b| a.first_ts.cmp(&b.first_ts).then(a.order.cmp(&b.order)));
    for f in finished {
        *count += 1;
        let mut trace = f.trace;
        kdc.attach(&mut trace, f.first_ts);
        trace.origin = Origin::Replay {
            file: file.to_owned(),
            session: *count,
        };
        let verdict = crate::diagnose::diagnose(&trace);
        each(Session {
            index: *count,
            trace,
            verdict,
        });
    }
}

/// Reads an opened capture to its end (or its first error).
pub fn run(
    mut capture: Capture,
    file: String,
    secrets: Arc<Secrets>,
    limits: Limits,
    ports: &RdpPorts,
    each: &mut dyn FnMut(Session),
) -> End {
    let mut tracker =
        Tracker::new(file.clone(), limits, Some(Arc::clone(&secrets))).with_ports(ports.clone());
    // Between the capture reader and the flow table: copies of a packet go no further.
    let mut dedupe = Dedupe::new();
    // Beside the flow table: the clients' Kerberos traffic (port 88), linked to their RDP sessions.
    let mut kdc = kerberos::KdcTraffic::new();
    let mut error = None;
    let mut notes = Vec::new();
    let mut secrets_blocks = 0usize;
    let mut count = 0usize;
    // Packets of link types rdptrace cannot decode: (link type, packets, the first one's number).
    let mut unsupported: Vec<(u32, u64, u64)> = Vec::new();
    let mut supported_packets = 0u64;
    while let Some(item) = capture.next_item() {
        match item {
            Err(e) => {
                error = Some(e);
                break;
            }
            Ok(Item::Secrets { kind, data }) => {
                if kind == capture::SECRETS_TLS_KEY_LOG {
                    let added =
                        secrets.add_keylog_text(&String::from_utf8_lossy(&data), Source::Capture);
                    secrets_blocks += 1;
                    debug!(secrets = added, "decryption secrets block");
                } else {
                    notes.push(format!(
                        "a decryption secrets block of type 0x{kind:08x} that rdptrace does not use"
                    ));
                }
            }
            Ok(Item::Other) => {}
            Ok(Item::Packet(p)) => {
                if !link::supported(p.link) {
                    // Skipped, not fatal: a pcapng may hold other interfaces rdptrace can read.
                    match unsupported.iter_mut().find(|(link, _, _)| *link == p.link) {
                        Some((_, n, _)) => *n += 1,
                        None => unsupported.push((p.link, 1, p.number)),
                    }
                    continue;
                }
                supported_packets += 1;
                let frame = link::decode(p.link, &p.data, p.orig_len);
                if dedupe.is_copy(p.ts, &frame) {
                    continue;
                }
                kdc.packet(p.ts, p.link, &p.data, &frame);
                tracker.frame(p.ts, &frame);
                hand_on(&mut tracker, &kdc, &file, &mut count, each);
            }
        }
    }
    tracker.finish();
    hand_on(&mut tracker, &kdc, &file, &mut count, each);
    for &(link, packets, first) in &unsupported {
        let detail = format!(
            "link type {link} ({}) is not supported",
            capture::link_name(link)
        );
        if supported_packets == 0 && error.is_none() {
            // Nothing in the file could be read: that is the error, not a note.
            error = Some(CaptureError {
                file: file.clone(),
                packet: Some(first),
                detail,
            });
        } else {
            notes.push(format!(
                "{packets} packet(s) skipped, the first is packet {first}: {detail}"
            ));
        }
    }
    notes.append(&mut capture.notes());
    notes.append(&mut kdc.notes());
    if secrets_blocks > 0 {
        notes.push(format!(
            "{secrets_blocks} TLS key log block(s) in the capture"
        ));
    }
    let (opaque, first) = tracker.opaque_tls();
    if count == 0 && opaque > 0 {
        // [MS-TSGU] an RD Gateway carries the RDP connection inside HTTPS: without its secrets it looks like
        // any other TLS.
        notes.push(format!(
            "{opaque} TLS connection(s) that are not RDP could not be decrypted (the first: {}); if one is an RD Gateway's (RDP inside HTTPS), give its TLS secrets (--keylog, or a capture with a decryption secrets block) to read the gateway exchange and the RDP connection in it",
            first.unwrap_or_default()
        ));
    }
    if tracker.evicted > 0 {
        notes.push(format!(
            "{} connections were dropped to stay within {} open connections",
            tracker.evicted, limits.max_connections
        ));
    }
    End {
        file,
        error,
        packets: capture.packets(),
        duplicates: dedupe.dropped,
        sessions: count,
        notes,
    }
}
