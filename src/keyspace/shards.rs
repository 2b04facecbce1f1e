//! The shard array and how keys map to shards and shards are locked.

use super::db::Db;
use super::dict::Hasher;
use super::entry::AccessMode;
use super::locked::Locked;
use crate::sync::Mutex;
use crate::tier::memory::Tier;
use crate::types::CompactBytes;
use crate::util::Counter;
use smallvec::SmallVec;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

/// Shards in the keyspace. A power of two; enough that writers on different keys rarely meet,
/// few enough that whole-keyspace commands (DBSIZE, FLUSHALL) take little time locking them.
/// A command naming ten keys (MSET) locks about ten shards: with 32, two such commands on the
/// two threads of a 2-core machine nearly always shared one, and a sixth of MSET -P 1's CPU was
/// the loser's wait (futex and sched_yield 9%, more with the values it freed under the locks);
/// with 256 the waits are 5% and MSET -P 1 runs at 15.2 us of CPU per request instead of 17.4.
/// An idle server's shards take 1.4 MB more than with 32.
pub const SHARDS: usize = 256;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();
const _: () = assert!(SHARDS.is_power_of_two() && SHARDS <= 1024);

/// One shard: the slice of every database whose keys hash here.
pub struct Shard {
    pub dbs: Vec<Db>,
    /// WATCHed keys of this shard, per database: a version bumped on every change to the key
    /// (writes, deletion, expiry, FLUSH, SWAPDB) and the number of clients watching it. It lives
    /// beside the data, not in `Db`, because SWAPDB swaps data but not what clients watch.
    pub watched: Vec<HashMap<CompactBytes, Watch>>,
    /// Clients blocked on keys of this shard (BLPOP, BZPOPMIN, ...), per database: waiter ids
    /// in arrival order, served first-come first-served.
    pub blocked: Vec<HashMap<CompactBytes, VecDeque<u64>>>,
    /// This shard's part of a snapshot in progress.
    pub snapshot: super::snapshot::ShardState,
}

/// One watched key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch {
    pub version: u64,
    pub watchers: u32,
}

/// Counters INFO reports; updated without taking shard locks.
#[derive(Default)]
pub struct Stats {
    pub expired_keys: Counter,
    pub expired_stale_perc_x100: Counter,
    pub expire_cycle_time_used_ms: Counter,
    pub keyspace_hits: Counter,
    pub keyspace_misses: Counter,
    pub evicted_keys: Counter,
}

pub struct Keyspace {
    shards: Box<[Mutex<Shard>]>,
    /// Per shard, the threads waiting for its lock (`lock_yielding`): a pipelined run that
    /// holds it gives way to them (`Locked::contended`).
    waiting: Box<[AtomicU32]>,
    shard_hasher: Hasher,
    databases: usize,
    pub stats: Stats,
    /// `AccessMode` as numbers: 0 = LRU, else LFU with the factor and decay packed.
    access_mode: AtomicU32,
    /// Whether new small integers are Redis shared objects: `maxmemory` 0 or a policy that
    /// is neither LRU nor LFU (shared objects cannot carry per-key access times).
    share_integers: AtomicBool,
    /// Watcher registrations across all shards; writes skip the watch table while it is 0.
    pub watching: AtomicUsize,
    /// Waiter registrations across all shards; writes skip the blocked table while it is 0.
    pub blocking: AtomicUsize,
    /// `notify-keyspace-events` as `notify` class bits; 0 (the default) raises nothing.
    pub notify_flags: AtomicU32,
    /// The snapshot in progress, if any (BGSAVE, AOF rewrite).
    pub snapshot: super::snapshot::State,
    /// True while the AOF or an RDB loads: nothing expires then, as in Redis, so replaying a
    /// command on a key whose time has passed does what it did when first run.
    pub loading: AtomicBool,
    /// The memory tier: where cold values live and how they come back.
    pub tier: Arc<Tier>,
}

impl Keyspace {
    /// A keyspace of `databases` databases. The seed fixes the hash functions, so the
    /// simulator gets the same layout (and SCAN order) from the same seed.
    pub fn new(databases: usize, seed: u64) -> Keyspace {
        assert!(databases >= 1);
        super::dict::seed_collection_hasher(seed);
        let dict_hasher = Hasher::with_seeds(seed, seed ^ 0x9e37_79b9, seed.rotate_left(17), 7);
        let tier = Arc::new(Tier::default());
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    dbs: (0..databases)
                        .map(|_| Db::new(&dict_hasher, tier.clone()))
                        .collect(),
                    watched: (0..databases).map(|_| HashMap::new()).collect(),
                    blocked: (0..databases).map(|_| HashMap::new()).collect(),
                    snapshot: super::snapshot::ShardState::default(),
                })
            })
            .collect();
        Keyspace {
            shards,
            waiting: (0..SHARDS).map(|_| AtomicU32::new(0)).collect(),
            shard_hasher: Hasher::with_seeds(seed.rotate_left(31), 3, seed ^ 0x5bd1_e995, 11),
            databases,
            stats: Stats::default(),
            access_mode: AtomicU32::new(0),
            share_integers: AtomicBool::new(true),
            watching: AtomicUsize::new(0),
            blocking: AtomicUsize::new(0),
            notify_flags: AtomicU32::new(0),
            snapshot: super::snapshot::State::default(),
            loading: AtomicBool::new(false),
            tier,
        }
    }

    pub fn databases(&self) -> usize {
        self.databases
    }

    /// The shard a key lives in.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        (self.shard_hasher.hash_one(key) >> (64 - SHARD_BITS)) as usize
    }

    pub fn access_mode(&self) -> AccessMode {
        let packed = self.access_mode.load(Ordering::Relaxed);
        if packed == 0 {
            AccessMode::Lru
        } else {
            AccessMode::Lfu {
                log_factor: (packed >> 16) & 0x7fff,
                decay_minutes: packed & 0xffff,
            }
        }
    }

    pub fn set_access_mode(&self, mode: AccessMode) {
        let packed = match mode {
            AccessMode::Lru => 0,
            AccessMode::Lfu {
                log_factor,
                decay_minutes,
            } => (1 << 31) | (log_factor.min(0x7fff) << 16) | decay_minutes.min(0xffff),
        };
        self.access_mode.store(packed, Ordering::Relaxed);
    }

    pub fn share_integers(&self) -> bool {
        self.share_integers.load(Ordering::Relaxed)
    }

    pub fn set_share_integers(&self, share: bool) {
        self.share_integers.store(share, Ordering::Relaxed);
    }

    /// Locks the shards of `keys` in shard order.
    pub fn lock_keys<'a, 'k>(
        &'a self,
        keys: impl IntoIterator<Item = &'k [u8]>,
        now_ms: u64,
    ) -> Locked<'a> {
        // A pipelined run often names one key over and over (LPUSH, SADD, HSET on one
        // collection): a repeat of the key before it is not hashed again.
        let mut wanted: SmallVec<[usize; 8]> = SmallVec::new();
        let mut previous: Option<&[u8]> = None;
        for key in keys {
            if previous != Some(key) {
                wanted.push(self.shard_of(key));
                previous = Some(key);
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        self.lock_shards(&wanted, now_ms)
    }

    /// Locks the given shards, which must be sorted and unique.
    pub fn lock_shards(&self, shards: &[usize], now_ms: u64) -> Locked<'_> {
        debug_assert!(shards.windows(2).all(|pair| pair[0] < pair[1]));
        let guards = shards
            .iter()
            .map(|&index| {
                (
                    index,
                    lock_yielding(&self.shards[index], &self.waiting[index]),
                )
            })
            .collect();
        Locked::new(self, guards, false, now_ms)
    }

    /// Whether a thread is waiting for shard `index`'s lock.
    pub fn is_awaited(&self, index: usize) -> bool {
        self.waiting
            .get(index)
            .is_some_and(|waiting| waiting.load(Ordering::Relaxed) > 0)
    }

    /// Locks every shard, for whole-keyspace commands.
    pub fn lock_all(&self, now_ms: u64) -> Locked<'_> {
        let guards = self
            .shards
            .iter()
            .enumerate()
            .map(|(index, shard)| (index, shard.lock()))
            .collect();
        Locked::new(self, guards, true, now_ms)
    }

    /// Locks nothing, for commands that touch no keys.
    pub fn lock_none(&self, now_ms: u64) -> Locked<'_> {
        Locked::new(self, SmallVec::new(), false, now_ms)
    }

    /// One shard's raw guard, for the snapshot saver (it works below `Locked`).
    pub(super) fn lock_shard_raw(&self, index: usize) -> crate::sync::MutexGuard<'_, Shard> {
        self.shards[index].lock()
    }

    /// Locks one shard (the active expiry cycle walks them one at a time).
    pub fn lock_shard(&self, index: usize, now_ms: u64) -> Locked<'_> {
        self.lock_shards(&[index], now_ms)
    }

    /// Background dict upkeep, one shard at a time: shrinks mostly-empty tables and moves
    /// up to `steps` buckets of each table being rehashed (Redis's `activerehashing`).
    pub fn maintain(&self, steps: usize) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            for db in shard.dbs.iter_mut() {
                db.maintain(steps);
            }
        }
    }
}

/// Times a thread that finds a shard locked gives up its CPU and tries again before it
/// sleeps on the lock.
#[cfg_attr(shuttle, allow(dead_code))]
const LOCK_YIELDS_MAX: usize = 32;

/// Locks a shard; when it is held, yields the CPU between tries for a while before sleeping
/// on it. Many clients writing one key keep two runtime threads taking its shard's lock in
/// turn, and `parking_lot` puts the loser to sleep in the kernel after a few spins and
/// yields: a futex wait and a wake per hand-off, a quarter of ZADD's CPU at `-P 16` (a
/// sorted-set insert holds the lock for a microsecond or two). Yielding keeps the loser
/// awake without taking the core from anyone else (redis-benchmark shares the 2 cores):
/// ZADD `-P 16` 199-240k -> 304-382k requests/s (Redis 254-359k), 5.4-6.1 -> 4.3-5.4 µs of
/// CPU per request; SADD, LPOP, LPUSH and HSET no slower. Spinning without yielding helped ZADD as
/// much but cost SADD and LPOP 10-20%: the spinning thread took redis-benchmark's core.
/// Under shuttle the plain lock: the checker schedules threads itself.
/// While it waits, the thread is counted in `waiting`.
fn lock_yielding<'s>(
    shard: &'s Mutex<Shard>,
    waiting: &AtomicU32,
) -> crate::sync::MutexGuard<'s, Shard> {
    if let Some(guard) = shard.try_lock() {
        return guard;
    }
    waiting.fetch_add(1, Ordering::Relaxed);
    let guard = lock_contended(shard);
    waiting.fetch_sub(1, Ordering::Relaxed);
    guard
}

fn lock_contended(shard: &Mutex<Shard>) -> crate::sync::MutexGuard<'_, Shard> {
    #[cfg(not(shuttle))]
    for _ in 0..LOCK_YIELDS_MAX {
        std::thread::yield_now();
        if let Some(guard) = shard.try_lock() {
            return guard;
        }
    }
    shard.lock()
}
