//! The replay on several threads: workers, each with a share of the connections, and the caller's thread
//! merging what the workers settle back into capture order.
//!
//! A file read through memory maps is walked by every worker ([`walk`]): each reads every block's
//! headers and follows its own share, and nothing passes between them but the windows of the file they
//! share. Any other capture (a compressed file, a stream, a Network Monitor file), and more workers than
//! the machine has cores, go through a reader that feeds the workers:
//!
//! - The reader reads the file and decodes each frame down to its TCP segment; it hands the segment to the
//!   worker of its client ([`super::shard`]), in batches. Every batch closes a window of packets for
//!   every worker at once (a worker with nothing in the window gets an empty batch), carrying the clock's
//!   ticks of that window, so that each worker settles idle connections at the same packets as a replay on
//!   one thread would.
//! - Each worker runs a [`Tracker`] over its share, diagnoses what it settles, and sends it on with its
//!   place in the order: the packet it ended at, then its start. After each batch it says how far it is.
//! - The caller's thread keeps what came in until every worker is past its place, then numbers and hands
//!   it on: the sessions come out in the order the replay on one thread gives them ([`merge`], for both
//!   ways of reading).
//!
//! A Decryption Secrets Block waits until every worker has handled the packets before it, as it would be
//! read on one thread ([`order`]).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod walk;

use super::capture::{Capture, Item};
use super::dedupe::{self, Dedupe};
use super::kerberos::KdcTraffic;
use super::link::{Frame, Segment};
use super::mapped::Window;
use super::order::{END, Position, Progress};
use super::session::{At, Drops, Limits, RdpPorts, RdpServers, Tracker};
use super::shard::Sharder;
use super::tls_decrypt::Secrets;
use super::{Clock, End, Key, ReadStats, Report, Settled, number, settled};

/// A batch is handed on once the window holds this many packets...
const WINDOW_PACKETS: usize = 4096;
/// ... or this many bytes of payload copied into the batches (a file read through a buffer) ...
const WINDOW_BYTES: usize = 1 << 20;
/// ... or this many bytes of payload in mapped windows (the windows stay mapped while a batch holds them).
const WINDOW_MAPPED: usize = 2 << 20;
/// Batches waiting for each worker.
const QUEUE: usize = 4;
/// Messages (one per batch) waiting for the merger.
const RESULTS: usize = 16;

/// Segment flags, packed.
const SYN: u8 = 1;
const ACK: u8 = 2;
const FIN: u8 = 4;
const RST: u8 = 8;

/// Where a segment's payload is: in one of the batch's mapped windows (where the reader found it), or
/// copied into the batch's bytes (a file read through a buffer).
#[derive(Debug, Clone, Copy)]
enum Payload {
    Window {
        window: usize,
        from: usize,
        to: usize,
    },
    Bytes {
        from: usize,
        to: usize,
    },
}

/// A frame as a worker gets it: the segment's fields and where its payload is.
#[derive(Debug)]
enum Owned {
    Tcp {
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: u32,
        flags: u8,
        ip_id: Option<u16>,
        payload: Payload,
        missing: u32,
        /// [`dedupe::payload_hash`], taken by the reader while the bytes are in its cache.
        hash: u64,
    },
    Unreachable {
        src: SocketAddr,
        dst: SocketAddr,
        reporter: IpAddr,
        what: String,
    },
}

/// One worker's share of a window of packets.
#[derive(Debug, Default)]
struct Batch {
    /// Every packet before this position is in this batch or an earlier one.
    upto: u64,
    /// The clock's ticks in the window: (position, clock).
    ticks: Vec<(u64, Duration)>,
    packets: Vec<(At, Owned)>,
    bytes: Vec<u8>,
    /// The mapped windows its payloads are in; each is unmapped when the last batch holding it is cleared.
    windows: Vec<Arc<Window>>,
}

impl Batch {
    fn clear(&mut self) {
        self.ticks.clear();
        self.packets.clear();
        self.bytes.clear();
        self.windows.clear();
    }

    /// `payload` where the worker will find it: in `window` when it lies there, else copied.
    fn payload(&mut self, payload: &[u8], window: Option<&Arc<Window>>) -> Payload {
        if let Some(window) = window
            && let Some((from, to)) = window.range_of(payload)
        {
            let same = self
                .windows
                .last()
                .is_some_and(|last| Arc::ptr_eq(last, window));
            if !same {
                self.windows.push(Arc::clone(window));
            }
            return Payload::Window {
                window: self.windows.len() - 1,
                from,
                to,
            };
        }
        let from = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        Payload::Bytes {
            from,
            to: self.bytes.len(),
        }
    }

    /// The bytes of a payload.
    fn get(&self, payload: Payload) -> &[u8] {
        match payload {
            Payload::Window { window, from, to } => self
                .windows
                .get(window)
                .and_then(|w| w.bytes().get(from..to))
                .unwrap_or_default(),
            Payload::Bytes { from, to } => self.bytes.get(from..to).unwrap_or_default(),
        }
    }
}

/// What a worker tells the merger after each batch: what it settled in it, in order, and that it has sent
/// everything it settled before `upto`; at the end, with what its table gave up.
struct Message {
    worker: usize,
    settled: Vec<(Key, Settled)>,
    upto: u64,
    /// At the end of the worker's share.
    finished: Option<WorkerEnd>,
}

/// What a worker tells at the end of its share.
struct WorkerEnd {
    /// What its flow table dropped.
    drops: Drops,
    /// Its opaque TLS connections ([`Tracker::opaque_tls`]).
    opaque: crate::replay::gateway::Opaque,
    /// Copies of packets it dropped.
    duplicates: u64,
}

/// The reader's side of the workers' queues.
struct Feeder {
    queues: Vec<SyncSender<Batch>>,
    batches: Vec<Batch>,
    spare: Receiver<Batch>,
    packets: usize,
    /// Payload bytes copied into the window's batches.
    bytes: usize,
    /// Payload bytes in mapped windows in the window's batches.
    mapped: usize,
    /// A worker went away (it panicked): reading stops.
    broken: bool,
    sharder: Sharder,
    /// The workers' duplicate filters' payload hasher.
    hasher: dedupe::Fast,
}

impl Feeder {
    fn batch(&mut self) -> Batch {
        let mut b = self.spare.try_recv().unwrap_or_default();
        b.clear();
        b
    }

    /// Hands every worker its share of the window, up to `upto`.
    fn flush(&mut self, upto: u64) {
        for w in 0..self.queues.len() {
            let fresh = self.batch();
            let Some(slot) = self.batches.get_mut(w) else {
                continue;
            };
            let mut b = std::mem::replace(slot, fresh);
            b.upto = upto;
            if self.queues.get(w).is_none_or(|q| q.send(b).is_err()) {
                self.broken = true;
            }
        }
        self.packets = 0;
        self.bytes = 0;
        self.mapped = 0;
    }

    fn tick(&mut self, position: u64, clock: Duration) {
        for b in &mut self.batches {
            b.ticks.push((position, clock));
        }
    }

    fn frame(&mut self, at: At, frame: &Frame<'_>, window: Option<&Arc<Window>>) {
        let (w, owned) = match frame {
            Frame::Tcp(seg) => {
                let w = self
                    .sharder
                    .segment(seg.src, seg.dst, seg.syn, seg.ack_flag);
                let Some(b) = self.batches.get_mut(w) else {
                    return;
                };
                let payload = b.payload(seg.payload, window);
                match payload {
                    Payload::Window { .. } => self.mapped += seg.payload.len(),
                    Payload::Bytes { .. } => self.bytes += seg.payload.len(),
                }
                let hash = dedupe::payload_hash(&self.hasher, seg.payload);
                let flags = (u8::from(seg.syn) * SYN)
                    | (u8::from(seg.ack_flag) * ACK)
                    | (u8::from(seg.fin) * FIN)
                    | (u8::from(seg.rst) * RST);
                (
                    w,
                    Owned::Tcp {
                        src: seg.src,
                        dst: seg.dst,
                        seq: seg.seq,
                        ack: seg.ack,
                        flags,
                        ip_id: seg.ip_id,
                        payload,
                        missing: seg.missing,
                        hash,
                    },
                )
            }
            Frame::Unreachable {
                src,
                dst,
                reporter,
                what,
            } => (
                self.sharder.of(*src, *dst),
                Owned::Unreachable {
                    src: *src,
                    dst: *dst,
                    reporter: *reporter,
                    what: what.clone(),
                },
            ),
            Frame::Other => return,
        };
        if let Some(b) = self.batches.get_mut(w) {
            b.packets.push((at, owned));
        }
        self.packets += 1;
    }

    fn full(&self) -> bool {
        self.packets >= WINDOW_PACKETS || self.bytes >= WINDOW_BYTES || self.mapped >= WINDOW_MAPPED
    }
}

/// Reads the capture and feeds the workers; returns what it tells about the file.
fn read(
    mut capture: Capture,
    mut feeder: Feeder,
    secrets: &Secrets,
    progress: &Progress,
    kdc: &Mutex<KdcTraffic>,
) -> (ReadStats, Capture) {
    let mut stats = ReadStats::default();
    let mut clock = Clock::default();
    while let Some(item) = capture.next_item() {
        if feeder.broken {
            break;
        }
        match item {
            Err(e) => {
                stats.error = Some(e);
                break;
            }
            Ok(Item::Secrets { kind, data }) => {
                // As on one thread: the packets before the block are read without its secrets, those after
                // it with them.
                let next = capture.packets() + 1;
                feeder.flush(next);
                progress.wait_for_all(next);
                stats.secrets(secrets, kind, &data);
            }
            Ok(Item::Other) => {}
            Ok(Item::Packet(p)) => {
                let Some((frame, at, tick)) = stats.packet(&p, &mut clock, kdc) else {
                    continue;
                };
                if tick {
                    feeder.tick(at.position, at.clock);
                }
                feeder.frame(at, &frame, p.window);
                if feeder.full() {
                    feeder.flush(p.number + 1);
                }
            }
        }
    }
    let packets = capture.packets();
    feeder.flush(packets + 1);
    stats.backwards = clock.backwards;
    (stats, capture)
}

/// Stops every wait when a worker ends early (a panic), so that the others do not wait for it forever.
struct StopOnPanic<'a>(&'a Progress);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// One worker: its share of the connections, from the batches to the merger.
/// What one worker holds: its share of the connections, and the duplicate filter in front of them.
struct Share {
    me: usize,
    tracker: Tracker,
    dedupe: Dedupe,
}

fn work(
    share: Share,
    queue: Receiver<Batch>,
    spare: Sender<Batch>,
    results: SyncSender<Message>,
    progress: &Progress,
    kdc: &Mutex<KdcTraffic>,
) {
    let _guard = StopOnPanic(progress);
    let Share {
        me,
        mut tracker,
        // Between the reader and the flow table: copies of a packet go no further.
        mut dedupe,
    } = share;
    let mut settled_now = Vec::new();
    let take = |tracker: &mut Tracker, into: &mut Vec<(Key, Settled)>| {
        into.extend(tracker.take_finished().into_iter().map(|e| settled(e, kdc)));
    };
    while let Ok(mut batch) = queue.recv() {
        let mut ticks = batch.ticks.iter().peekable();
        for (at, owned) in &batch.packets {
            while let Some(&&(position, clock)) = ticks.peek() {
                if position > at.position {
                    break;
                }
                tracker.tick(position, clock);
                ticks.next();
            }
            let mut hashed = 0;
            let frame = match owned {
                Owned::Tcp {
                    src,
                    dst,
                    seq,
                    ack,
                    flags,
                    ip_id,
                    payload,
                    missing,
                    hash,
                } => {
                    hashed = *hash;
                    Frame::Tcp(Segment {
                        src: *src,
                        dst: *dst,
                        seq: *seq,
                        ack: *ack,
                        syn: flags & SYN != 0,
                        ack_flag: flags & ACK != 0,
                        fin: flags & FIN != 0,
                        rst: flags & RST != 0,
                        ip_id: *ip_id,
                        payload: batch.get(*payload),
                        missing: *missing,
                    })
                }
                Owned::Unreachable {
                    src,
                    dst,
                    reporter,
                    what,
                } => Frame::Unreachable {
                    src: *src,
                    dst: *dst,
                    reporter: *reporter,
                    what: what.clone(),
                },
            };
            // Copies of a packet are of one connection, so one worker sees them all.
            if dedupe.is_copy_hashed(at.ts, &frame, hashed) {
                continue;
            }
            tracker.packet(*at, &frame);
            take(&mut tracker, &mut settled_now);
        }
        for &(position, clock) in ticks {
            tracker.tick(position, clock);
        }
        take(&mut tracker, &mut settled_now);
        // In the order the replay on one thread hands them on.
        settled_now.sort_unstable_by_key(|(key, _)| *key);
        progress.advance(me, batch.upto);
        let message = Message {
            worker: me,
            settled: std::mem::take(&mut settled_now),
            upto: batch.upto,
            finished: None,
        };
        if results.send(message).is_err() {
            return;
        }
        batch.clear();
        let _ = spare.send(batch);
    }
    // The capture is over.
    tracker.finish();
    take(&mut tracker, &mut settled_now);
    settled_now.sort_unstable_by_key(|(key, _)| *key);
    let _ = results.send(Message {
        worker: me,
        settled: settled_now,
        upto: END,
        finished: Some(WorkerEnd {
            drops: tracker.drops,
            opaque: tracker.opaque_tls(),
            duplicates: dedupe.dropped,
        }),
    });
}

/// Reads `capture` with `workers` worker threads; see the module's documentation.
pub(super) fn run(
    capture: Capture,
    file: String,
    secrets: Arc<Secrets>,
    limits: Limits,
    ports: &RdpPorts,
    workers: usize,
    each: &mut dyn FnMut(Report),
) -> End {
    // A file read through memory maps is walked by every worker, when each has a core of its own (every
    // worker reads every header: more workers than cores would read them in turn); any other capture is
    // read once, by a reader feeding the workers.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if capture.is_mapped() && workers <= cores {
        let twins: Option<Vec<Capture>> = (1..workers).map(|_| capture.twin()).collect();
        if let Some(twins) = twins {
            return walk::run(capture, twins, file, secrets, limits, ports, each);
        }
    }
    let progress = Progress::new(workers);
    let share = worker_limits(limits, workers);
    let servers = RdpServers::new(Position::new(Arc::clone(&progress), 0));
    let (results_tx, results) = sync_channel::<Message>(RESULTS);
    // One payload hasher for the reader and every worker's duplicate filter.
    let hasher = Dedupe::new().hasher();
    let (spare_tx, spare) = channel::<Batch>();
    let mut queues = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = sync_channel::<Batch>(QUEUE);
        queues.push(tx);
        receivers.push(rx);
    }
    let feeder = Feeder {
        queues,
        batches: (0..workers).map(|_| Batch::default()).collect(),
        spare,
        packets: 0,
        bytes: 0,
        mapped: 0,
        broken: false,
        sharder: Sharder::new(workers),
        hasher: hasher.clone(),
    };

    let mut count = 0usize;
    let mut ends = Vec::new();
    // Beside the flow tables: the clients' Kerberos traffic, read by the reader, linked by the workers.
    let kdc = Mutex::new(KdcTraffic::new());
    let (mut stats, capture) = std::thread::scope(|scope| {
        for (me, queue) in receivers.into_iter().enumerate() {
            let tracker = tracker(&file, share, &secrets, &progress, &servers, ports, me);
            let results = results_tx.clone();
            let spare = spare_tx.clone();
            let progress = &progress;
            let kdc = &kdc;
            let share = Share {
                me,
                tracker,
                dedupe: Dedupe::with_hasher(hasher.clone()),
            };
            scope.spawn(move || work(share, queue, spare, results, progress, kdc));
        }
        drop(results_tx);
        drop(spare_tx);
        let reader = {
            let secrets = &secrets;
            let progress = &progress;
            let kdc = &kdc;
            scope.spawn(move || {
                let _guard = StopOnPanic(progress);
                read(capture, feeder, secrets, progress, kdc)
            })
        };
        merge(&results, workers, &file, &mut count, &mut ends, each);
        match reader.join() {
            Ok(read) => read,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    stats.kdc(&kdc);
    end(stats, &capture, ends, file, count, limits)
}

/// A worker's bounds: its part of the flow table's.
fn worker_limits(limits: Limits, workers: usize) -> Limits {
    Limits {
        max_connections: (limits.max_connections / workers).max(1),
        ..limits
    }
}

/// Worker `me`'s flow table, with its share of the bound (`share`).
fn tracker(
    file: &str,
    share: Limits,
    secrets: &Arc<Secrets>,
    progress: &Arc<Progress>,
    servers: &RdpServers,
    ports: &RdpPorts,
    me: usize,
) -> Tracker {
    let position = Position::new(Arc::clone(progress), me);
    Tracker::with(
        file.to_owned(),
        share,
        Some(Arc::clone(secrets)),
        Arc::clone(&position),
        servers.at(position),
    )
    .with_ports(ports.clone())
}

/// The replay's end: what the file held (`stats`) and what each worker's table gave up, opened that no
/// one could read, and dropped as copies.
fn end(
    mut stats: ReadStats,
    capture: &Capture,
    ends: Vec<WorkerEnd>,
    file: String,
    count: usize,
    limits: Limits,
) -> End {
    let mut drops = Drops::default();
    for e in ends {
        drops.add(&e.drops);
        stats.opaque(e.opaque);
        stats.duplicates += e.duplicates;
    }
    stats.end(capture, file, count, drops, limits)
}

/// Numbers and hands on what the workers settled, in order: a session goes once every worker is past the
/// packet it ended at. Each worker's share comes in order, so the merge takes the least of their heads.
fn merge(
    results: &Receiver<Message>,
    workers: usize,
    file: &str,
    count: &mut usize,
    ends: &mut Vec<WorkerEnd>,
    each: &mut dyn FnMut(Report),
) {
    let mut queues: Vec<VecDeque<(Key, Settled)>> = (0..workers).map(|_| VecDeque::new()).collect();
    let mut done = vec![0u64; workers];
    let mut finished = vec![false; workers];
    let mut emit = |queues: &mut Vec<VecDeque<(Key, Settled)>>, low: u64| loop {
        let next = queues
            .iter()
            .enumerate()
            .filter_map(|(w, q)| q.front().map(|(key, _)| (*key, w)))
            .min();
        match next {
            Some((key, w)) if key.0 < low || low == END => {
                if let Some((_, s)) = queues.get_mut(w).and_then(VecDeque::pop_front) {
                    number(s, file, count, each);
                }
            }
            _ => return,
        }
    };
    while let Ok(m) = results.recv() {
        if let Some(q) = queues.get_mut(m.worker) {
            q.extend(m.settled);
        }
        if let Some(d) = done.get_mut(m.worker) {
            *d = m.upto;
        }
        if let Some(end) = m.finished {
            ends.push(end);
            if let Some(f) = finished.get_mut(m.worker) {
                *f = true;
            }
        }
        let low = if finished.iter().all(|f| *f) {
            END
        } else {
            done.iter().copied().min().unwrap_or(0)
        };
        emit(&mut queues, low);
    }
    // Every worker is gone (one may have ended early): what came is handed on.
    emit(&mut queues, END);
}
