//! The replay on several threads: workers, each with a share of the connections, and the caller's thread
//! merging what the workers settle back into capture order.
//!
//! - The file is read by one worker at a time, for all ([`Reader`]): a worker running short of batches
//!   reads the next window of packets while the others go on with theirs. The reader reads a packet's
//!   headers no further than the addresses that say whose it is (the worker of its client,
//!   [`super::shard`]), and hands each worker its share of the window at once (a worker with nothing in
//!   it gets an empty batch), with the clock's ticks of the window, so that each worker settles idle
//!   connections at the same packets as a replay on one thread would. A packet's bytes stay where the
//!   reader found them (a mapped window of the file) unless the file is read through a buffer. A window is
//!   read only when every worker's queue has room, so the reader never waits for a worker, and the windows
//!   held are bounded.
//! - Each worker decodes its packets, runs a [`Tracker`] over its share, diagnoses what it settles, and
//!   sends it on with its place in the order: the packet it ended at, then its start. It says how far it
//!   is after each batch ([`Progress`]), and tells the merger when it has something for it.
//! - The caller's thread keeps what came in until every worker is past its place, then numbers and hands
//!   it on: the sessions come out in the order the replay on one thread gives them ([`merge`]).
//!
//! A Decryption Secrets Block ends a window. Worker 0 reads it into the replay's secrets once every worker
//! has handled the packets before it, and every worker waits for it before the packets after it, as on
//! one thread ([`super::order`]).
//!
//! Reading in turns, rather than by a thread of its own, keeps the cores busy with as many threads as
//! cores; reading each packet once, rather than each worker walking the whole file, keeps a worker from
//! spending its time on the other workers' headers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, channel, sync_channel,
};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::Duration;

use super::capture::{Capture, Item, Packet};
use super::dedupe::Dedupe;
use super::kerberos::{self, KDC_PORT, KdcTraffic};
use super::link::{self, Frame};
use super::mapped::Window;
use super::order::{END, Position, Progress};
use super::session::{At, Drops, Limits, RdpPorts, RdpServers, Tracker};
use super::shard::Sharder;
use super::tls_decrypt::Secrets;
use super::{Clock, End, Key, ReadStats, Report, Settled, number, settled};

/// A batch is handed on once the window holds this many packets...
const WINDOW_PACKETS: usize = 4096;
/// ... or this many frame bytes copied into the batches (a file read through a buffer) ...
const WINDOW_BYTES: usize = 1 << 20;
/// ... or this many frame bytes in mapped windows (the windows stay mapped while a batch holds them).
const WINDOW_MAPPED: usize = 2 << 20;
/// The longest window of a mapped file ([`super::mapped::Mapped::for_workers`]): on the bulk capture,
/// mapping and unmapping 2 MiB windows cost the threaded replay a tenth more CPU than the one-thread
/// replay, and more when the machine is loaded; windows of up to 8 MiB cost a few percent, for about 5 MiB
/// more memory (BENCHMARKS.md).
pub(super) const WINDOW_MOST: usize = 8 << 20;
/// Batches waiting for each worker.
const QUEUE: usize = 4;
/// A worker with fewer batches than this in its queue reads the next window when no other worker is
/// reading one: the queues are filled before they run dry, so a worker seldom waits for the window another
/// is reading (on the bulk capture, a few milliseconds a worker instead of 20 to 60).
const READ_AHEAD: usize = 2;
/// Messages waiting for the merger.
const RESULTS: usize = 4;
/// A worker with nothing settled tells the merger how far it is every this many batches.
const SAY_EVERY: usize = 16;
/// A worker asks for the frame this many ahead of the one it reads, which the reader fetched on its own
/// core: its first bytes (the headers, and what the duplicate filter hashes) when the replay has no key,
/// all of it when a key may open its records (the payload is then copied and decrypted; asking for whole
/// frames without a key was slower).
const PREFETCH_PACKETS: usize = 4;
const PREFETCH_BYTES: usize = 128;

/// Where a frame's bytes are: in one of the batch's mapped windows (where the reader found them), or
/// copied into the batch's bytes (a file read through a buffer).
#[derive(Debug, Clone, Copy)]
enum Bytes {
    Window {
        window: usize,
        from: usize,
        to: usize,
    },
    Copied {
        from: usize,
        to: usize,
    },
}

/// A frame as a worker gets it: where its bytes are, and what the capture says of it. The worker decodes
/// it: the reader reads no further than the addresses that say whose it is.
#[derive(Debug, Clone, Copy)]
struct Owned {
    at: At,
    link: u32,
    orig_len: u32,
    bytes: Bytes,
}

/// A Decryption Secrets Block, at the end of the batch read before it.
#[derive(Debug)]
struct SecretsBlock {
    kind: u32,
    data: Vec<u8>,
    /// Its number among the file's Decryption Secrets Blocks, from 1.
    count: u64,
}

/// One worker's share of a window of packets.
#[derive(Debug, Default)]
struct Batch {
    /// Every packet before this position is in this batch or an earlier one.
    upto: u64,
    /// The clock's ticks in the window: (position, clock).
    ticks: Vec<(u64, Duration)>,
    packets: Vec<Owned>,
    bytes: Vec<u8>,
    /// The mapped windows its frames are in; each is unmapped when the last batch holding it is cleared.
    windows: Vec<Arc<Window>>,
    /// The block the window ends at: read into the secrets once every worker is past `upto`.
    secrets: Option<Arc<SecretsBlock>>,
}

impl Batch {
    fn clear(&mut self) {
        self.ticks.clear();
        self.packets.clear();
        self.bytes.clear();
        self.windows.clear();
        self.secrets = None;
    }

    /// `data` where the worker will find it: in `window` when it lies there, else copied.
    fn place(&mut self, data: &[u8], window: Option<&Arc<Window>>) -> Bytes {
        if let Some(window) = window
            && let Some((from, to)) = window.range_of(data)
        {
            let same = self
                .windows
                .last()
                .is_some_and(|last| Arc::ptr_eq(last, window));
            if !same {
                self.windows.push(Arc::clone(window));
            }
            return Bytes::Window {
                window: self.windows.len() - 1,
                from,
                to,
            };
        }
        let from = self.bytes.len();
        self.bytes.extend_from_slice(data);
        Bytes::Copied {
            from,
            to: self.bytes.len(),
        }
    }

    /// The bytes of a frame.
    fn get(&self, bytes: Bytes) -> &[u8] {
        match bytes {
            Bytes::Window { window, from, to } => self
                .windows
                .get(window)
                .and_then(|w| w.bytes().get(from..to))
                .unwrap_or_default(),
            Bytes::Copied { from, to } => self.bytes.get(from..to).unwrap_or_default(),
        }
    }

    /// Asks the CPU for a frame's bytes ahead of their reading, its first [`PREFETCH_BYTES`] or all of them
    /// (`whole`): a hint, nothing is read.
    fn prefetch(&self, bytes: Bytes, whole: bool) {
        if let Bytes::Window { window, from, to } = bytes
            && let Some(w) = self.windows.get(window)
        {
            let len = to - from;
            w.prefetch(from, if whole { len } else { len.min(PREFETCH_BYTES) });
        }
    }
}

/// What a worker tells the merger after a batch in which it settled something (and every [`SAY_EVERY`]
/// batches): what it settled, in order, and that it has sent everything it settled before `upto`; at the
/// end, with what its table gave up.
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

/// The reader: the capture, what it tells about the file, and the reader's side of the workers' queues.
/// One worker at a time holds it, to read a window for all.
struct Reader {
    capture: Capture,
    stats: ReadStats,
    clock: Clock,
    queues: Vec<Sender<Batch>>,
    /// Batches in each worker's queue: a window is read only when every queue has room, so that the
    /// reader never waits for a worker.
    queued: Arc<[AtomicUsize]>,
    batches: Vec<Batch>,
    spare: Receiver<Batch>,
    packets: usize,
    /// Frame bytes copied into the window's batches.
    bytes: usize,
    /// Frame bytes in mapped windows in the window's batches.
    mapped: usize,
    /// Decryption Secrets Blocks read so far.
    secrets_blocks: u64,
    /// A worker went away (it panicked): reading stops.
    broken: bool,
    /// The file is read to its end (or to its first error), and the queues are closed.
    done: bool,
    sharder: Sharder,
}

impl Reader {
    /// Reads the next window of packets and hands every worker its share; at the end of the file, the
    /// last window, and the queues are closed. `false` when it read nothing: a worker's queue is full.
    fn window(&mut self, kdc: &Mutex<KdcTraffic>) -> bool {
        if self.done {
            return true;
        }
        if self
            .queued
            .iter()
            .any(|q| q.load(Ordering::Acquire) >= QUEUE)
        {
            return false;
        }
        // INVARIANT: each pass reads one item of the file, and the file is finite.
        loop {
            if self.broken {
                break;
            }
            match self.capture.next_item() {
                None => break,
                Some(Err(e)) => {
                    self.stats.error = Some(e);
                    break;
                }
                Some(Ok(Item::Other)) => {}
                Some(Ok(Item::Secrets { kind, data })) => {
                    // As on one thread: the packets before the block are read without its secrets, those
                    // after it with them. The workers read it in ([`work`]).
                    let next = self.capture.packets() + 1;
                    self.secrets_blocks += 1;
                    let block = Arc::new(SecretsBlock {
                        kind,
                        data,
                        count: self.secrets_blocks,
                    });
                    for b in &mut self.batches {
                        b.secrets = Some(Arc::clone(&block));
                    }
                    self.flush(next);
                    return true;
                }
                Some(Ok(Item::Packet(p))) => {
                    let Some((at, tick)) = self.stats.place(&p, &mut self.clock) else {
                        continue;
                    };
                    if tick {
                        for b in &mut self.batches {
                            b.ticks.push((at.position, at.clock));
                        }
                    }
                    let Some(w) = whose(&mut self.sharder, &p, kdc) else {
                        continue;
                    };
                    if let Some(b) = self.batches.get_mut(w) {
                        let bytes = b.place(&p.data, p.window);
                        match bytes {
                            Bytes::Window { .. } => self.mapped += p.data.len(),
                            Bytes::Copied { .. } => self.bytes += p.data.len(),
                        }
                        b.packets.push(Owned {
                            at,
                            link: p.link,
                            orig_len: p.orig_len,
                            bytes,
                        });
                    }
                    self.packets += 1;
                    if self.packets >= WINDOW_PACKETS
                        || self.bytes >= WINDOW_BYTES
                        || self.mapped >= WINDOW_MAPPED
                    {
                        let upto = p.number + 1;
                        self.flush(upto);
                        return true;
                    }
                }
            }
        }
        let packets = self.capture.packets();
        self.flush(packets + 1);
        self.stats.backwards = self.clock.backwards;
        self.done = true;
        // The workers' queues end once they are empty.
        self.queues.clear();
        true
    }

    /// Hands every worker its share of the window, up to `upto`.
    fn flush(&mut self, upto: u64) {
        for w in 0..self.queues.len() {
            let mut fresh = self.spare.try_recv().unwrap_or_default();
            fresh.clear();
            let Some(slot) = self.batches.get_mut(w) else {
                continue;
            };
            let mut b = std::mem::replace(slot, fresh);
            b.upto = upto;
            if let Some(q) = self.queued.get(w) {
                q.fetch_add(1, Ordering::AcqRel);
            }
            if self.queues.get(w).is_none_or(|q| q.send(b).is_err()) {
                self.broken = true;
            }
        }
        self.packets = 0;
        self.bytes = 0;
        self.mapped = 0;
    }
}

/// The worker of packet `p`, from its addresses: read at a glance for most TCP segments, else decoded. The
/// clients' Kerberos traffic is read here, once for all workers. `None` for a frame that is neither a TCP
/// segment nor an ICMP error about one.
fn whose(sharder: &mut Sharder, p: &Packet<'_>, kdc: &Mutex<KdcTraffic>) -> Option<usize> {
    if let Some(g) = link::glance(p.link, &p.data) {
        let w = sharder.segment(g.src, g.dst, g.syn, g.ack);
        if g.src.port() == KDC_PORT || g.dst.port() == KDC_PORT {
            kerberos::feed(
                kdc,
                p.ts,
                p.link,
                &p.data,
                &link::decode(p.link, &p.data, p.orig_len),
            );
        }
        return Some(w);
    }
    let frame = link::decode(p.link, &p.data, p.orig_len);
    kerberos::feed(kdc, p.ts, p.link, &p.data, &frame);
    match &frame {
        Frame::Tcp(seg) => Some(sharder.segment(seg.src, seg.dst, seg.syn, seg.ack_flag)),
        Frame::Unreachable { src, dst, .. } => Some(sharder.of(*src, *dst)),
        Frame::Other => None,
    }
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

/// What one worker holds: its share of the connections, and the duplicate filter in front of them.
struct Share {
    me: usize,
    tracker: Tracker,
    dedupe: Dedupe,
}

/// What every worker shares: the reader, the progress of all, the clients' Kerberos traffic, the replay's
/// secrets, and what the Decryption Secrets Blocks tell (read in by worker 0).
struct Common<'a> {
    reader: &'a Mutex<Reader>,
    queued: &'a [AtomicUsize],
    progress: &'a Progress,
    kdc: &'a Mutex<KdcTraffic>,
    secrets: &'a Secrets,
    secrets_stats: &'a Mutex<ReadStats>,
}

/// How long a worker with nothing to do waits for a batch before it looks again: another worker may be
/// reading a window, or be behind with a full queue.
const WAIT_FOR_READER: Duration = Duration::from_millis(1);

/// One worker: its batches, read by whichever worker has nothing left to do, to the merger.
fn work(
    share: Share,
    queue: Receiver<Batch>,
    spare: Sender<Batch>,
    results: SyncSender<Message>,
    common: Common<'_>,
) {
    let Common {
        reader,
        queued,
        progress,
        kdc,
        secrets,
        secrets_stats,
    } = common;
    let _guard = StopOnPanic(progress);
    let Share {
        me,
        mut tracker,
        // Between the reader and the flow table: copies of a packet go no further.
        mut dedupe,
    } = share;
    let mut settled_now = Vec::new();
    // Batches handled since the merger was last told.
    let mut unsaid = 0usize;
    let take = |tracker: &mut Tracker, into: &mut Vec<(Key, Settled)>| {
        into.extend(tracker.take_finished().into_iter().map(|e| settled(e, kdc)));
    };
    // INVARIANT: each pass handles a batch, or waits at most `WAIT_FOR_READER` for one (another worker
    // reading a window, or behind with a full queue); windows are read here, and the file is finite; the
    // queue ends when the file is read.
    loop {
        if queued
            .get(me)
            .is_some_and(|q| q.load(Ordering::Acquire) < READ_AHEAD)
        {
            match reader.try_lock() {
                // A window, or nothing when another worker's queue is full.
                Ok(mut reader) => {
                    reader.window(kdc);
                }
                // Another worker is reading one.
                Err(TryLockError::WouldBlock) => {}
                // Another worker panicked while reading: the replay is being torn down.
                Err(TryLockError::Poisoned(_)) => break,
            }
        }
        let mut batch = match queue.try_recv() {
            Ok(batch) => batch,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => match queue.recv_timeout(WAIT_FOR_READER) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        if let Some(q) = queued.get(me) {
            q.fetch_sub(1, Ordering::AcqRel);
        }
        let mut ticks = batch.ticks.iter().peekable();
        // A key read from a Decryption Secrets Block counts from the batches after it.
        let whole = secrets.any();
        for (i, owned) in batch.packets.iter().enumerate() {
            if let Some(ahead) = batch.packets.get(i + PREFETCH_PACKETS) {
                batch.prefetch(ahead.bytes, whole);
            }
            let at = owned.at;
            while let Some(&&(position, clock)) = ticks.peek() {
                if position > at.position {
                    break;
                }
                tracker.tick(position, clock);
                ticks.next();
            }
            let frame = link::decode(owned.link, batch.get(owned.bytes), owned.orig_len);
            // Copies of a packet are of one connection, so one worker sees them all.
            if dedupe.is_copy(at.ts, &frame) {
                continue;
            }
            tracker.packet(at, &frame);
            take(&mut tracker, &mut settled_now);
        }
        for &(position, clock) in ticks {
            tracker.tick(position, clock);
        }
        take(&mut tracker, &mut settled_now);
        progress.advance(me, batch.upto);
        // The merger is told when there is something to hand on, and now and then how far this worker
        // is: each message wakes it, on a core the workers need.
        unsaid += 1;
        if !settled_now.is_empty() || unsaid >= SAY_EVERY {
            unsaid = 0;
            // In the order the replay on one thread hands them on.
            settled_now.sort_unstable_by_key(|(key, _)| *key);
            let message = Message {
                worker: me,
                settled: std::mem::take(&mut settled_now),
                upto: batch.upto,
                finished: None,
            };
            if results.send(message).is_err() {
                return;
            }
        }
        if let Some(block) = &batch.secrets {
            // Every worker is past the packets before the block before it is read in, and none reads a
            // packet after it before it is.
            if me == 0 {
                progress.wait_for_all(batch.upto);
                if let Ok(mut stats) = secrets_stats.lock() {
                    stats.secrets(secrets, block.kind, &block.data);
                }
                progress.secrets_read(block.count);
            } else {
                progress.wait_for_secrets(block.count);
            }
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
    let progress = Progress::new(workers);
    let share = worker_limits(limits, workers);
    let servers = RdpServers::new(Position::new(Arc::clone(&progress), 0));
    let (results_tx, results) = sync_channel::<Message>(RESULTS);
    let (spare_tx, spare) = channel::<Batch>();
    let queued: Arc<[AtomicUsize]> = (0..workers).map(|_| AtomicUsize::new(0)).collect();
    let mut queues = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = channel::<Batch>();
        queues.push(tx);
        receivers.push(rx);
    }
    let reader = Mutex::new(Reader {
        capture,
        stats: ReadStats::default(),
        clock: Clock::default(),
        queues,
        queued: Arc::clone(&queued),
        batches: (0..workers).map(|_| Batch::default()).collect(),
        spare,
        packets: 0,
        bytes: 0,
        mapped: 0,
        secrets_blocks: 0,
        broken: false,
        done: false,
        sharder: Sharder::new(workers),
    });
    let secrets_stats = Mutex::new(ReadStats::default());
    let mut count = 0usize;
    let mut ends = Vec::new();
    // Beside the flow tables: the clients' Kerberos traffic, read by the reader, linked by the workers.
    let kdc = Mutex::new(KdcTraffic::new());
    std::thread::scope(|scope| {
        for (me, queue) in receivers.into_iter().enumerate() {
            let tracker = tracker(&file, share, &secrets, &progress, &servers, ports, me);
            let results = results_tx.clone();
            let spare = spare_tx.clone();
            let common = Common {
                reader: &reader,
                queued: &queued,
                progress: &progress,
                kdc: &kdc,
                secrets: &secrets,
                secrets_stats: &secrets_stats,
            };
            let share = Share {
                me,
                tracker,
                dedupe: Dedupe::new(),
            };
            scope.spawn(move || work(share, queue, spare, results, common));
        }
        drop(results_tx);
        drop(spare_tx);
        merge(&results, workers, &file, &mut count, &mut ends, each);
    });
    let Reader {
        capture, mut stats, ..
    } = reader.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut from_blocks = secrets_stats
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    stats.secrets_blocks += from_blocks.secrets_blocks;
    stats.notes.append(&mut from_blocks.notes);
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
