//! The threaded replay of a file read through memory maps: every worker walks the whole file.
//!
//! Each worker reads every block's headers, but follows only the connections of its share: it reads a
//! TCP segment's addresses at a glance ([`link::glance`]), asks the same [`Sharder`] as every other
//! worker (each keeps its own, fed the same segments in the same order, so all decide alike) whose it
//! is, and decodes it further only when it is its own. Nothing is handed from thread to thread but what
//! the workers settle, and the file's windows, which they share ([`Shared`]): a window is mapped
//! once, by the first worker to need it.
//!
//! What the replay on one thread does once for the whole file, each worker does for itself, the same
//! way: the capture's clock (so that every worker ticks at the same packets), and the reading of the
//! clients' Kerberos traffic, which is rare (each worker links the exchanges it read before a session
//! settles, as the replay on one thread does). Worker 0 alone counts what the file holds ([`ReadStats`])
//! and reads its Decryption Secrets Blocks into the replay's secrets; every worker waits at such a block
//! until all are there, as on one thread the packets before it are read without its secrets and those
//! after it with them.
//!
//! The merger is [`super::merge`], as for the workers fed by a reader.

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use super::{
    Message, RESULTS, StopOnPanic, WINDOW_PACKETS, WorkerEnd, end, merge, tracker, worker_limits,
};
use crate::replay::capture::{Capture, Item};
use crate::replay::dedupe::Dedupe;
use crate::replay::kerberos::{self, KDC_PORT, KdcTraffic};
use crate::replay::link::{self, Frame};
use crate::replay::mapped::Shared;
use crate::replay::order::{END, Position, Progress};
use crate::replay::session::{At, Limits, RdpPorts, RdpServers, Tracker};
use crate::replay::shard::Sharder;
use crate::replay::tls_decrypt::Secrets;
use crate::replay::{Clock, End, Key, ReadStats, Report, Settled, settled};

/// A worker says how far it is every this many packets...
const PUBLISH_EVERY: usize = 1024;
/// ... and waits there while another worker is more than this many packets behind it: what a worker
/// settles is kept by the merger until every worker is past it, so this bounds what is kept (as the
/// reader's queues bound it for workers fed by a reader).
const MAX_AHEAD: u64 = 16_384;

/// One walking worker: its copy of the file, its share of the connections, and its own reading of what
/// every worker reads alike.
struct Walker<'a> {
    me: usize,
    capture: Capture,
    tracker: Tracker,
    /// Between the file and the flow table: copies of a packet go no further.
    dedupe: Dedupe,
    sharder: Sharder,
    clock: Clock,
    kdc: Mutex<KdcTraffic>,
    /// What the file holds: worker 0's is the replay's; the others' are not read.
    stats: ReadStats,
    secrets: &'a Secrets,
    progress: &'a Progress,
    results: SyncSender<Message>,
}

/// What a worker gives back when it has walked the file.
struct Walked {
    stats: ReadStats,
    capture: Capture,
    kdc: Mutex<KdcTraffic>,
}

impl Walker<'_> {
    fn walk(mut self) -> Walked {
        let _guard = StopOnPanic(self.progress);
        let mut settled_now = Vec::new();
        let mut walked = 0usize;
        let mut stopped = false;
        // Decryption Secrets Blocks met so far.
        let mut secrets_blocks = 0u64;
        while let Some(item) = self.capture.next_item() {
            match item {
                Err(e) => {
                    self.stats.error = Some(e);
                    break;
                }
                Ok(Item::Other) => {}
                Ok(Item::Secrets { kind, data }) => {
                    let next = self.capture.packets() + 1;
                    secrets_blocks += 1;
                    stopped |= !send(&self.results, self.me, &mut settled_now, next);
                    self.progress.advance(self.me, next);
                    if self.me == 0 {
                        // Every worker is here: the packets before the block are read without it.
                        self.progress.wait_for_all(next);
                        self.stats.secrets(self.secrets, kind, &data);
                        self.progress.secrets_read(secrets_blocks);
                    } else {
                        self.progress.wait_for_secrets(secrets_blocks);
                    }
                }
                Ok(Item::Packet(p)) => {
                    if !link::supported(p.link) {
                        self.stats.unsupported(p.link, p.number);
                        continue;
                    }
                    self.stats.supported_packets += 1;
                    let (now, tick) = self.clock.advance(p.ts);
                    let at = At {
                        position: p.number,
                        ts: p.ts,
                        clock: now,
                    };
                    if tick {
                        self.tracker.tick(at.position, at.clock);
                    }
                    // Whose it is, and whether the Kerberos reading wants it: at a glance for most
                    // segments, else decoded (by every worker, as each must feed its own sharder).
                    let mut frame = None;
                    let (owner, kerberos) = match link::glance(p.link, &p.data) {
                        Some(g) => (
                            Some(self.sharder.segment(g.src, g.dst, g.syn, g.ack)),
                            g.src.port() == KDC_PORT || g.dst.port() == KDC_PORT,
                        ),
                        None => {
                            let decoded = link::decode(p.link, &p.data, p.orig_len);
                            let whose = match &decoded {
                                Frame::Tcp(seg) => (
                                    Some(self.sharder.segment(
                                        seg.src,
                                        seg.dst,
                                        seg.syn,
                                        seg.ack_flag,
                                    )),
                                    seg.src.port() == KDC_PORT || seg.dst.port() == KDC_PORT,
                                ),
                                Frame::Unreachable { src, dst, .. } => {
                                    (Some(self.sharder.of(*src, *dst)), false)
                                }
                                Frame::Other => (None, true),
                            };
                            frame = Some(decoded);
                            whose
                        }
                    };
                    if kerberos {
                        let f =
                            frame.get_or_insert_with(|| link::decode(p.link, &p.data, p.orig_len));
                        kerberos::feed(&self.kdc, p.ts, p.link, &p.data, f);
                    }
                    let mine = owner == Some(self.me);
                    if mine {
                        let f =
                            frame.get_or_insert_with(|| link::decode(p.link, &p.data, p.orig_len));
                        // Copies of a packet are of one connection, so one worker sees them all.
                        if !self.dedupe.is_copy(p.ts, f) {
                            self.tracker.packet(at, f);
                        }
                    }
                    if mine || tick {
                        take(&mut self.tracker, &self.kdc, &mut settled_now);
                    }
                    walked += 1;
                    if walked.is_multiple_of(PUBLISH_EVERY) {
                        let next = p.number + 1;
                        self.progress.advance(self.me, next);
                        if walked >= WINDOW_PACKETS {
                            walked = 0;
                            stopped |= !send(&self.results, self.me, &mut settled_now, next);
                        }
                        // Not too far ahead of the others: the merger keeps what it settles until they
                        // are past it.
                        self.progress
                            .wait_for_others(self.me, next.saturating_sub(MAX_AHEAD));
                    }
                }
            }
            if stopped {
                // The merger is gone: nothing more is wanted.
                break;
            }
        }
        // The file is over (or its first error): the others need not keep its windows.
        self.capture.unshare();
        self.tracker.finish();
        take(&mut self.tracker, &self.kdc, &mut settled_now);
        settled_now.sort_unstable_by_key(|(key, _)| *key);
        let _ = self.results.send(Message {
            worker: self.me,
            settled: settled_now,
            upto: END,
            finished: Some(WorkerEnd {
                drops: self.tracker.drops,
                opaque: self.tracker.opaque_tls(),
                duplicates: self.dedupe.dropped,
            }),
        });
        self.stats.backwards = self.clock.backwards;
        Walked {
            stats: self.stats,
            capture: self.capture,
            kdc: self.kdc,
        }
    }
}

/// What `tracker` settled, linked to the Kerberos exchanges read before, into `into`.
fn take(tracker: &mut Tracker, kdc: &Mutex<KdcTraffic>, into: &mut Vec<(Key, Settled)>) {
    into.extend(tracker.take_finished().into_iter().map(|e| settled(e, kdc)));
}

/// Sends the merger what worker `me` settled, in order, and that it has sent everything it settles
/// before `upto`; `false` when the merger is gone.
fn send(
    results: &SyncSender<Message>,
    me: usize,
    settled_now: &mut Vec<(Key, Settled)>,
    upto: u64,
) -> bool {
    settled_now.sort_unstable_by_key(|(key, _)| *key);
    results
        .send(Message {
            worker: me,
            settled: std::mem::take(settled_now),
            upto,
            finished: None,
        })
        .is_ok()
}

/// Reads `capture` (read through memory maps, not read from yet) with a walking worker for it and one for
/// each of its `twins` ([`Capture::twin`]).
pub(super) fn run(
    mut capture: Capture,
    mut twins: Vec<Capture>,
    file: String,
    secrets: Arc<Secrets>,
    limits: Limits,
    ports: &RdpPorts,
    each: &mut dyn FnMut(Report),
) -> End {
    let workers = twins.len() + 1;
    let progress = Progress::new(workers);
    let shared = Shared::new(workers, Arc::clone(&progress));
    capture.share_windows(Arc::clone(&shared), 0);
    for (i, twin) in twins.iter_mut().enumerate() {
        twin.share_windows(Arc::clone(&shared), i + 1);
    }
    let share = worker_limits(limits, workers);
    let servers = RdpServers::new(Position::new(Arc::clone(&progress), 0));
    let (results_tx, results) = std::sync::mpsc::sync_channel::<Message>(RESULTS);
    let mut count = 0usize;
    let mut ends = Vec::new();
    let walker = |me: usize, capture: Capture| Walker {
        me,
        capture,
        tracker: tracker(&file, share, &secrets, &progress, &servers, ports, me),
        dedupe: Dedupe::new(),
        sharder: Sharder::new(workers),
        clock: Clock::default(),
        kdc: Mutex::new(KdcTraffic::new()),
        stats: ReadStats::default(),
        secrets: &secrets,
        progress: &progress,
        results: results_tx.clone(),
    };
    let first = walker(0, capture);
    let others: Vec<Walker<'_>> = twins
        .into_iter()
        .enumerate()
        .map(|(i, twin)| walker(i + 1, twin))
        .collect();
    drop(results_tx);
    let Walked {
        mut stats,
        capture,
        kdc,
    } = std::thread::scope(|scope| {
        let first = scope.spawn(move || first.walk());
        let others: Vec<_> = others
            .into_iter()
            .map(|w| scope.spawn(move || w.walk()))
            .collect();
        merge(&results, workers, &file, &mut count, &mut ends, each);
        for other in others {
            if let Err(panic) = other.join() {
                std::panic::resume_unwind(panic);
            }
        }
        match first.join() {
            Ok(walked) => walked,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    stats.kdc(&kdc);
    end(stats, &capture, ends, file, count, limits)
}
