//! Offline replay: the RDP sessions of a pcap or pcapng capture, through the same dissector and diagnosis.
//!
//! - [`capture`] reads the file packet by packet (pcap, pcapng, gzip);
//! - [`link`] turns a frame into a TCP segment (etherparse for IP and TCP);
//! - [`reassembly`] puts each direction's bytes in order and reports what is missing;
//! - [`session`] tells RDP connections from the rest and keeps one [`crate::dissect::Dissector`] per session;
//! - [`keylog`] and [`tls_decrypt`] open TLS records with the secrets the user gives.

pub mod capture;
pub mod cli;
pub mod keylog;
pub mod link;
pub mod reassembly;
pub mod session;
pub mod tls_decrypt;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capture::{Capture, CaptureError, Item};
use keylog::{KeyLog, Source};
use session::{Limits, Tracker};
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
    pub limits: Limits,
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

/// Loads the secrets the user gave.
pub fn load_secrets(opts: &Options) -> Result<Secrets, ReplayError> {
    let mut log = KeyLog::new();
    if let Some(path) = &opts.keylog {
        let text = std::fs::read(path).map_err(|e| ReplayError::Secrets {
            file: path.display().to_string(),
            detail: format!("cannot read the key log: {e}"),
        })?;
        let added = log.add_text(&String::from_utf8_lossy(&text), Source::File);
        info!(file = %path.display(), secrets = added.secrets, bad_lines = added.bad_lines, "key log loaded");
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
    Ok(secrets)
}

/// Reads the capture at `path` and diagnoses every RDP session in it.
pub fn replay(path: &Path, opts: &Options) -> Result<Replay, ReplayError> {
    let secrets = Arc::new(load_secrets(opts)?);
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
    let out = run(capture, path.display().to_string(), secrets, opts.limits);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(out)
}

/// Reads an opened capture to its end (or its first error).
pub fn run(mut capture: Capture, file: String, secrets: Arc<Secrets>, limits: Limits) -> Replay {
    let mut tracker = Tracker::new(file.clone(), limits, Some(Arc::clone(&secrets)));
    let mut error = None;
    let mut notes = Vec::new();
    let mut secrets_blocks = 0usize;
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
            Ok(Item::Packet(p)) => {
                if !link::supported(p.link) {
                    error = Some(CaptureError {
                        file: file.clone(),
                        packet: Some(p.number),
                        detail: format!(
                            "link type {} ({}) is not supported",
                            p.link,
                            capture::link_name(p.link)
                        ),
                    });
                    break;
                }
                let frame = link::decode(p.link, &p.data, p.orig_len);
                tracker.frame(p.ts, &frame);
            }
        }
    }
    tracker.finish();
    if secrets_blocks > 0 {
        notes.push(format!(
            "{secrets_blocks} TLS key log block(s) in the capture"
        ));
    }
    if tracker.evicted > 0 {
        notes.push(format!(
            "{} connections were dropped to stay within {} open connections",
            tracker.evicted, limits.max_connections
        ));
    }
    let mut finished = tracker.take_finished();
    finished.sort_by(|a, b| a.first_ts.cmp(&b.first_ts).then(a.order.cmp(&b.order)));
    let sessions = finished
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let mut trace = f.trace;
            trace.origin = Origin::Replay {
                file: file.clone(),
                session: i + 1,
            };
            let verdict = crate::diagnose::diagnose(&trace);
            Session {
                index: i + 1,
                trace,
                verdict,
            }
        })
        .collect();
    Replay {
        file,
        sessions,
        error,
        packets: capture.packets(),
        notes,
    }
}
