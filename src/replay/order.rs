//! Capture order across worker threads.
//!
//! A threaded replay shards connections over workers by their flow key; what one connection learns and
//! another one reads (a server seen speaking RDP, a TLS session to resume, secrets in the capture) must
//! read the same whether the two are on one worker or two, and whatever the workers' pace. Every packet
//! has a position (its number in the capture); a value learned while a worker handled position `p` is
//! [`Learned`] at `p`, and a lookup made at position `q` sees what was learned before `q` and nothing
//! after: it first waits until every other worker has handled every packet before `q`
//! ([`Position::wait_for_others`]). Such lookups are rare (a TLS ClientHello on a port that is not RDP's,
//! an abbreviated TLS handshake), so the wait costs little.
//!
//! With one worker nothing waits, and the single-threaded replay reads exactly as the threaded one.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The position of everything that happens after the last packet (the connections still open at the end
/// of the capture).
pub const END: u64 = u64::MAX;

/// How far each worker is: every packet before `done[w]` that belongs to worker `w` has been handled.
#[derive(Debug)]
pub struct Progress {
    done: Vec<Padded>,
    /// A worker stopped early (the replay is being torn down): nobody waits any more.
    stopped: AtomicBool,
    /// Decryption Secrets Blocks read into the replay's secrets, counted from the file's start
    /// ([`Self::secrets_read`]).
    secrets: AtomicU64,
}

/// A worker's progress on a cache line of its own: each worker writes its own at every packet, and
/// neighbours on one line would make the cores pass that line back and forth.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl std::ops::Deref for Padded {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

impl Progress {
    pub fn new(workers: usize) -> Arc<Progress> {
        Arc::new(Progress {
            done: (0..workers.max(1)).map(|_| Padded::default()).collect(),
            stopped: AtomicBool::new(false),
            secrets: AtomicU64::new(0),
        })
    }

    pub fn workers(&self) -> usize {
        self.done.len()
    }

    /// Worker `w` has handled every one of its packets before `position`.
    pub fn advance(&self, w: usize, position: u64) {
        if let Some(d) = self.done.get(w) {
            d.fetch_max(position, Ordering::Release);
        }
    }

    /// Nobody waits any more (a worker or the reader ends early).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Waits until every worker but `me` has handled its packets before `position`.
    ///
    /// INVARIANT: this always returns. A worker waits only for positions below the packet it holds, and
    /// the worker furthest behind is never kept waiting by one ahead of it: the reader hands every worker
    /// its share of a window of packets at once ([`super::threads`]), so when worker `me` holds packet
    /// `p`, every other worker holds (or has handled) its packets before `p`, and a worker holding packets
    /// handles them without waiting for a window (the reader never waits for a worker). So the worker
    /// holding the lowest position among those waiting never waits for anyone, and the others follow.
    pub fn wait_for_others(&self, me: usize, position: u64) {
        for (w, done) in self.done.iter().enumerate() {
            if w == me {
                continue;
            }
            self.wait_until(|| done.load(Ordering::Acquire) >= position);
        }
    }

    /// Waits until `ready` (or until the replay is torn down): spinning a little, then yielding, then
    /// sleeping.
    fn wait_until(&self, ready: impl Fn() -> bool) {
        let mut spins = 0u32;
        while !ready() && !self.stopped.load(Ordering::Acquire) {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else if spins < 256 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// The file's first `blocks` Decryption Secrets Blocks are in the replay's secrets: one worker reads a
    /// block into them, the others wait for it ([`Self::wait_for_secrets`]). Counted by block, not by
    /// position: two blocks may come with no packet between them.
    pub fn secrets_read(&self, blocks: u64) {
        self.secrets.fetch_max(blocks, Ordering::Release);
    }

    /// Waits until the file's first `blocks` Decryption Secrets Blocks are in the replay's secrets.
    pub fn wait_for_secrets(&self, blocks: u64) {
        self.wait_until(|| self.secrets.load(Ordering::Acquire) >= blocks);
    }

    /// Waits until every worker has handled its packets before `position`.
    pub fn wait_for_all(&self, position: u64) {
        self.wait_for_others(usize::MAX, position);
    }
}

/// Where one worker is: the packet it handles now, and the progress of all.
#[derive(Debug)]
pub struct Position {
    progress: Arc<Progress>,
    me: usize,
    now: AtomicU64,
}

impl Position {
    pub fn new(progress: Arc<Progress>, me: usize) -> Arc<Position> {
        Arc::new(Position {
            progress,
            me,
            now: AtomicU64::new(0),
        })
    }

    /// A position for a replay on one thread.
    pub fn single() -> Arc<Position> {
        Position::new(Progress::new(1), 0)
    }

    /// The worker handles the packet at `position` now (or the end of the capture, [`END`]); every one of
    /// its packets before it has been handled.
    pub fn set(&self, position: u64) {
        self.now.store(position, Ordering::Relaxed);
        // At the end every packet has been handled.
        self.progress
            .advance(self.me, if position == END { END - 1 } else { position });
    }

    pub fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// Waits until what the other workers learn before this position is known. At the end of the capture
    /// the workers settle their open connections at once: there, what is learned at the end is not seen
    /// by the others (it is not before the end), so nobody waits for anybody.
    pub fn wait_for_others(&self) {
        let now = self.now();
        self.progress
            .wait_for_others(self.me, if now == END { END - 1 } else { now });
    }
}

/// Values learned at a position, read as they were at another one.
#[derive(Debug)]
pub struct Learned<K, V> {
    inner: Mutex<Table<K, V>>,
    /// Keys kept at most; when full, the key learned latest gives way, so that which keys are kept does not
    /// depend on the workers' pace.
    limit: usize,
}

#[derive(Debug)]
struct Table<K, V> {
    map: HashMap<K, Vec<(u64, V)>, foldhash::fast::RandomState>,
    /// The latest position a key of `map` was first learned at (when the table is full).
    latest: u64,
}

/// Versions of one key kept at most (the oldest gives way).
const MAX_VERSIONS: usize = 64;

impl<K: Eq + Hash + Clone, V: Clone + PartialEq> Learned<K, V> {
    pub fn new(limit: usize) -> Self {
        Learned {
            inner: Mutex::new(Table {
                map: HashMap::default(),
                latest: 0,
            }),
            limit,
        }
    }

    /// `key` has `value` from `position` on.
    pub fn learn(&self, position: u64, key: K, value: V) {
        let Ok(mut t) = self.inner.lock() else {
            return;
        };
        if let Some(versions) = t.map.get_mut(&key) {
            // INVARIANT: `versions` is in the order of positions, with no value twice in a row.
            let i = versions.partition_point(|(at, _)| *at < position);
            // The value it has just before `position` already: learning it again changes nothing (a
            // server that speaks RDP in every one of a brute force's sessions is learnt once).
            if i > 0 && versions.get(i - 1).is_some_and(|(_, v)| *v == value) {
                return;
            }
            if versions.get(i).is_some_and(|(_, v)| *v == value) {
                versions.remove(i);
            }
            versions.insert(i, (position, value));
            if versions.len() > MAX_VERSIONS {
                versions.remove(0);
            }
            return;
        }
        if t.map.len() >= self.limit {
            // In capture order the newcomer is the latest: dropped at once. Only a worker running behind
            // another one makes room, for a key learned before the latest kept.
            if position >= t.latest {
                return;
            }
            let latest = t
                .map
                .iter()
                .filter_map(|(k, v)| v.first().map(|(at, _)| (*at, k.clone())))
                .max_by_key(|(at, _)| *at);
            if let Some((_, k)) = latest {
                t.map.remove(&k);
            }
            t.map.insert(key, vec![(position, value)]);
            t.latest = t
                .map
                .values()
                .filter_map(|v| v.first().map(|(at, _)| *at))
                .max()
                .unwrap_or(0);
            return;
        }
        t.latest = t.latest.max(position);
        t.map.insert(key, vec![(position, value)]);
    }

    /// The value of `key` as of `at`'s position (learned before it), after waiting for the other workers.
    pub fn get(&self, at: &Position, key: &K) -> Option<V> {
        at.wait_for_others();
        self.get_before(at.now(), key)
    }

    /// The value of `key` learned last before `position`, without waiting.
    pub fn get_before(&self, position: u64, key: &K) -> Option<V> {
        let t = self.inner.lock().ok()?;
        t.map
            .get(key)?
            .iter()
            .rev()
            .find(|(at, _)| *at < position)
            .map(|(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_as_of_a_position() {
        let at = Position::single();
        let l: Learned<u32, &str> = Learned::new(8);
        l.learn(10, 1, "a");
        l.learn(20, 1, "b");
        at.set(5);
        assert_eq!(l.get(&at, &1), None);
        at.set(11);
        assert_eq!(l.get(&at, &1), Some("a"));
        at.set(END);
        assert_eq!(l.get(&at, &1), Some("b"));
        l.learn(END, 2, "end");
        assert_eq!(l.get(&at, &2), None, "not before the end");
    }

    #[test]
    fn a_value_learnt_again_is_kept_once() {
        let l = Learned::new(4);
        for at in 1..=10_000u64 {
            l.learn(at * 10, 1, ());
        }
        l.learn(5, 1, ());
        let t = l.inner.lock().unwrap();
        assert_eq!(t.map.get(&1).map(Vec::len), Some(1), "{:?}", t.map);
        drop(t);
        assert_eq!(l.get_before(6, &1), Some(()));
        assert_eq!(l.get_before(5, &1), None);
    }

    #[test]
    fn a_full_table_keeps_the_earliest() {
        let l: Learned<u32, ()> = Learned::new(2);
        l.learn(30, 3, ());
        l.learn(10, 1, ());
        l.learn(20, 2, ());
        l.learn(40, 4, ());
        assert!(l.get_before(END, &1).is_some());
        assert!(l.get_before(END, &2).is_some());
        assert!(l.get_before(END, &3).is_none());
        assert!(l.get_before(END, &4).is_none());
    }

    #[test]
    fn waits_end_when_the_others_get_there() {
        let progress = Progress::new(2);
        let me = Position::new(Arc::clone(&progress), 0);
        let other = Position::new(Arc::clone(&progress), 1);
        me.set(100);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.set(150);
        });
        me.wait_for_others();
        assert!(progress.done.get(1).unwrap().load(Ordering::Acquire) >= 100);
        t.join().unwrap();
    }
}
