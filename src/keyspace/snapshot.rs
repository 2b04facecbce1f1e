//! Point-in-time snapshots of the whole keyspace while writers go on: what BGSAVE, the AOF
//! rewrite and a replica's full sync read, without fork and without copying the dataset.
//!
//! A snapshot starts at one instant, with every shard held ([`run`]'s `start` step runs
//! there too, so the AOF can switch files at exactly that point). From then on the saver's
//! walkers (one thread each; a foreground SAVE uses every core) walk the shards one batch at
//! a time, holding one shard's lock per batch, and hand each entry to a [`Sink`] as it was
//! at the start:
//! - every entry carries a parity bit (`FLAG_SNAPSHOT`); a snapshot flips the keyspace's
//!   parity, so at its start every entry is "not yet saved";
//! - the saver saves an entry not yet saved and flips its bit;
//! - a writer about to change or delete an entry not yet saved first sets it aside
//!   (`preserved`) and flips its bit: the saver saves that, never the new value. An entry
//!   overwritten or deleted moves aside (no copy); only an in-place change copies it. The
//!   saver drains what was set aside between its batches, so it does not accumulate;
//! - an entry created after the start is born with the new parity: never saved;
//! - FLUSHDB/FLUSHALL retire the whole table aside instead of dropping it (a move, not a
//!   copy); SWAPDB copies the two databases' unsaved entries aside.
//!
//! Extra memory is what writers change before the saver reaches it, not the dataset.
//!
//! Invariant: outside a snapshot, every entry's bit equals the keyspace's parity (an aborted
//! snapshot restores it before it ends).

use super::db::Db;
use super::entry::{Entry, FLAG_SNAPSHOT};
use super::shards::{Keyspace, SHARDS};
use super::Locked;
use crate::types::{CompactBytes, Value};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// Dict buckets the saver walks per lock hold: short enough that writers to that shard
/// barely notice, long enough that locking is not the cost.
const BUCKETS_PER_BATCH: usize = 256;

/// The keyspace-wide snapshot state.
#[derive(Debug, Default)]
pub struct State {
    active: AtomicBool,
    /// 0 or 1: the bit value that means "saved in the current snapshot".
    parity: AtomicU32,
    /// Entries copied aside and not yet saved, across shards: the saver drains them between
    /// batches so they do not pile up for the whole save.
    preserved: AtomicUsize,
    /// Their bytes, and the bound past which writers wait for the saver
    /// ([`State::over_allowance`]).
    preserved_bytes: AtomicUsize,
    preserved_bytes_max: AtomicUsize,
}

impl State {
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Bytes set aside for the saver right now.
    pub fn preserved_bytes(&self) -> usize {
        self.preserved_bytes.load(Ordering::Relaxed)
    }

    /// Whether writers should wait before writing: what they set aside exceeds the bound,
    /// so the saver must write it out first. This keeps a save's extra memory bounded even
    /// when writers overwrite faster than the disk takes the snapshot (backpressure, as
    /// Dragonfly applies). The connection waits asynchronously, before taking any lock.
    pub fn over_allowance(&self) -> bool {
        self.is_active()
            && self.preserved_bytes.load(Ordering::Relaxed)
                > self.preserved_bytes_max.load(Ordering::Relaxed)
    }

    /// The `FLAG_SNAPSHOT` value a saved (or new) entry carries now.
    pub fn saved_bit(&self) -> u32 {
        if self.parity.load(Ordering::Relaxed) == 1 {
            FLAG_SNAPSHOT
        } else {
            0
        }
    }
}

/// A shard's part of a snapshot.
#[derive(Default)]
pub struct ShardState {
    /// Per database: true until the saver has finished this shard's slice of it.
    pub pending: Vec<bool>,
    /// Entries as they were at the start, copied aside by writers.
    pub preserved: Vec<Preserved>,
    /// Tables emptied by FLUSHDB/FLUSHALL during the snapshot, kept until saved.
    pub retired: Vec<(usize, Db)>,
}

/// An entry copied aside before its first change during a snapshot.
#[derive(Debug)]
pub struct Preserved {
    pub db: usize,
    pub key: CompactBytes,
    pub value: Value,
    pub expire_ms: Option<u64>,
}

/// Where a snapshot's entries go.
pub trait Sink {
    /// One entry as it was at the snapshot's start. May be called with a shard lock held:
    /// buffer, do no I/O here.
    fn entry(&mut self, db: usize, key: &[u8], value: &Value, expire_ms: Option<u64>);
    /// Called with no lock held between batches: write the buffered bytes out.
    fn flush(&mut self) -> Result<(), String>;
    /// Called with no lock held once this sink's walker has no more work: a sink that shares
    /// its file with other walkers' sinks writes out everything it still holds.
    fn walked(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Takes a snapshot into `sinks`, one walker thread per sink (the first walks on the calling
/// thread). The shards' slices are handed out to the walkers one at a time, in order, and
/// each entry goes to exactly one sink: with one sink, the entries come in a fixed order
/// (the simulator replays it); with several, which sink gets which slice depends on timing.
/// `start` runs at the snapshot's instant with every shard held (the AOF switches to a new
/// incr file there). On error the snapshot is abandoned cleanly and the keyspace is as if
/// it had never started; the first error is the outcome.
pub fn run(
    keyspace: &Keyspace,
    now_ms: u64,
    start: impl FnOnce(&mut Locked<'_>) -> Result<(), String>,
    sinks: &mut [&mut (dyn Sink + Send)],
) -> Result<(), String> {
    assert!(!sinks.is_empty(), "a snapshot needs a sink");
    {
        let mut ks = keyspace.lock_all(now_ms);
        if keyspace.snapshot.is_active() {
            return Err("a snapshot is already in progress".into());
        }
        start(&mut ks)?;
        let state = &keyspace.snapshot;
        state
            .parity
            .store(1 - state.parity.load(Ordering::Relaxed), Ordering::Relaxed);
        for shard in ks.shards() {
            shard.snapshot.pending = vec![true; shard.dbs.len()];
            debug_assert!(shard.snapshot.preserved.is_empty() && shard.snapshot.retired.is_empty());
        }
        // A 512th of what the keyspace holds now (at least 1 MB) may wait aside: measured,
        // a larger allowance costs more in allocator churn than it saves writers in waiting.
        let bound = (crate::tier::used_memory() / 512).max(1 << 20);
        state.preserved_bytes_max.store(bound, Ordering::Relaxed);
        state.active.store(true, Ordering::Release);
    }
    let work = Work {
        keyspace,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    let outcome = match sinks {
        [sink] => work.walk(*sink),
        [first, rest @ ..] => std::thread::scope(|scope| {
            let work = &work;
            // A walker that cannot be started leaves its share to the others.
            let walkers: Vec<_> = rest
                .iter_mut()
                .filter_map(|sink| {
                    std::thread::Builder::new()
                        .name("snapshot".into())
                        .spawn_scoped(scope, move || work.walk(*sink))
                        .ok()
                })
                .collect();
            let mut outcome = work.walk(*first);
            for walker in walkers {
                let walked = walker
                    .join()
                    .unwrap_or_else(|_| Err("a snapshot thread failed".into()));
                outcome = outcome.and(walked);
            }
            outcome
        }),
        [] => unreachable!("asserted above"),
    };
    if outcome.is_err() {
        abandon(keyspace);
    }
    keyspace.snapshot.active.store(false, Ordering::Release);
    outcome
}

/// What the walkers of one snapshot share.
struct Work<'a> {
    keyspace: &'a Keyspace,
    /// The next slice to walk, as `db * SHARDS + shard`.
    next: AtomicUsize,
    /// Set by a walker that failed: the others stop at their next batch.
    stop: AtomicBool,
}

impl Work<'_> {
    /// One walker: takes slices until none are left, then lets the sink write out the rest
    /// (not when another walker failed: the file is going).
    fn walk(&self, sink: &mut (dyn Sink + Send)) -> Result<(), String> {
        let outcome = self.walk_slices(sink).and_then(|()| {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            sink.walked()
        });
        if outcome.is_err() {
            self.stop.store(true, Ordering::Relaxed);
        }
        outcome
    }

    fn walk_slices(&self, sink: &mut dyn Sink) -> Result<(), String> {
        let keyspace = self.keyspace;
        let saved = keyspace.snapshot.saved_bit();
        let slices = keyspace.databases() * SHARDS;
        let mut deferred = Vec::new();
        loop {
            let next = self.next.fetch_add(1, Ordering::Relaxed);
            if next >= slices {
                return Ok(());
            }
            let (db, shard_index) = (next / SHARDS, next % SHARDS);
            let mut cursor = 0u64;
            loop {
                // Another walker failed: the snapshot is abandoned, its error the outcome.
                if self.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let mut shard = keyspace.lock_shard_raw(shard_index);
                let slice = &mut shard.dbs[db];
                let mut buckets = 0;
                loop {
                    cursor = save_step(slice, cursor, db, saved, sink, &mut deferred);
                    buckets += 1;
                    if cursor == 0 || buckets >= BUCKETS_PER_BATCH {
                        break;
                    }
                }
                if cursor != 0 {
                    drop(shard);
                    emit_deferred(keyspace, sink, &mut deferred)?;
                    drain_preserved(keyspace, sink)?;
                    sink.flush()?;
                    continue;
                }
                // This slice is saved: what writers copied aside and what FLUSH retired
                // complete it, and writers stop copying.
                shard.snapshot.pending[db] = false;
                let state = &mut shard.snapshot;
                let (mine, others): (Vec<_>, Vec<_>) =
                    state.preserved.drain(..).partition(|item| item.db == db);
                state.preserved = others;
                let (retired, kept): (Vec<_>, Vec<_>) =
                    state.retired.drain(..).partition(|(index, _)| *index == db);
                state.retired = kept;
                drop(shard);
                emit_deferred(keyspace, sink, &mut deferred)?;
                let emitted: Result<(), String> = mine.iter().try_for_each(|item| {
                    emit(keyspace, sink, db, &item.key, &item.value, item.expire_ms)
                });
                release(&keyspace.snapshot, &mine);
                emitted?;
                drain_preserved(keyspace, sink)?;
                for (_, mut table) in retired {
                    let mut cursor = 0;
                    loop {
                        cursor = save_step(&mut table, cursor, db, saved, sink, &mut deferred);
                        emit_deferred(keyspace, sink, &mut deferred)?;
                        if cursor == 0 {
                            break;
                        }
                    }
                }
                sink.flush()?;
                break;
            }
        }
    }
}

/// Saves what writers copied aside so far, in every shard, and frees it: the copies live
/// only from one batch to the next, not for the whole save.
fn drain_preserved(keyspace: &Keyspace, sink: &mut dyn Sink) -> Result<(), String> {
    if keyspace.snapshot.preserved.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    for shard_index in 0..SHARDS {
        let items = std::mem::take(&mut keyspace.lock_shard_raw(shard_index).snapshot.preserved);
        let emitted: Result<(), String> = items.iter().try_for_each(|item| {
            emit(
                keyspace,
                sink,
                item.db,
                &item.key,
                &item.value,
                item.expire_ms,
            )
        });
        release(&keyspace.snapshot, &items);
        emitted?;
    }
    Ok(())
}

/// A cold entry met under a shard lock: its value is read from the disk tier once the lock
/// is released.
struct Deferred {
    db: usize,
    key: CompactBytes,
    cold: crate::tier::ColdRef,
    expire_ms: Option<u64>,
}

/// Hands an entry to the sink, reading it from the disk tier first if it is cold. Called with
/// no shard lock held. The records a snapshot reads stay on disk until it ends (compaction
/// does not retire segments meanwhile).
fn emit(
    keyspace: &Keyspace,
    sink: &mut dyn Sink,
    db: usize,
    key: &[u8],
    value: &Value,
    expire_ms: Option<u64>,
) -> Result<(), String> {
    match value {
        Value::Cold(cold) => emit_cold(keyspace, sink, db, key, *cold, expire_ms),
        value => {
            sink.entry(db, key, value, expire_ms);
            Ok(())
        }
    }
}

fn emit_cold(
    keyspace: &Keyspace,
    sink: &mut dyn Sink,
    db: usize,
    key: &[u8],
    cold: crate::tier::ColdRef,
    expire_ms: Option<u64>,
) -> Result<(), String> {
    let tier = &keyspace.tier;
    let value = tier.read(cold).map_err(|err| {
        format!(
            "can't read the value of '{}' from the disk tier: {err}",
            String::from_utf8_lossy(key)
        )
    })?;
    sink.entry(db, key, &value, expire_ms);
    Ok(())
}

fn emit_deferred(
    keyspace: &Keyspace,
    sink: &mut dyn Sink,
    deferred: &mut Vec<Deferred>,
) -> Result<(), String> {
    for item in deferred.drain(..) {
        emit_cold(
            keyspace,
            sink,
            item.db,
            item.key.as_slice(),
            item.cold,
            item.expire_ms,
        )?;
    }
    Ok(())
}

/// Saves the entries of one scan step of `slice` not yet saved; the next cursor. Cold entries
/// go to `deferred`, for the caller to read with the lock released.
fn save_step(
    slice: &mut Db,
    cursor: u64,
    db: usize,
    saved: u32,
    sink: &mut dyn Sink,
    deferred: &mut Vec<Deferred>,
) -> u64 {
    let Db { keys, expires, .. } = slice;
    keys.scan_mut(cursor, |key, entry| {
        if entry.flags & FLAG_SNAPSHOT == saved {
            return;
        }
        entry.flags = (entry.flags & !FLAG_SNAPSHOT) | saved;
        let expire_ms = if entry.has_expire() {
            expires.get(key.as_slice()).copied()
        } else {
            None
        };
        // A key past its time but not yet reclaimed is saved too, with that time (as Redis's
        // RDB saves it): whoever loads it lets it expire, exactly as the writers' log does.
        match &entry.value {
            Value::Cold(cold) => deferred.push(Deferred {
                db,
                key: key.clone(),
                cold: *cold,
                expire_ms,
            }),
            value => sink.entry(db, key.as_slice(), value, expire_ms),
        }
    })
}

/// Ends a failed snapshot: every entry gets the current parity back, nothing stays aside.
fn abandon(keyspace: &Keyspace) {
    let saved = keyspace.snapshot.saved_bit();
    for shard_index in 0..SHARDS {
        let mut shard = keyspace.lock_shard_raw(shard_index);
        for slice in shard.dbs.iter_mut() {
            slice
                .keys
                .for_each_mut(|_, entry| entry.flags = (entry.flags & !FLAG_SNAPSHOT) | saved);
        }
        shard
            .snapshot
            .pending
            .iter_mut()
            .for_each(|pending| *pending = false);
        shard.snapshot.preserved.clear();
        shard.snapshot.retired.clear();
    }
    keyspace.snapshot.preserved.store(0, Ordering::Relaxed);
    keyspace
        .snapshot
        .preserved_bytes
        .store(0, Ordering::Relaxed);
}

/// Copies an entry aside before its first change in a snapshot, if it needs it. `entry` is
/// the live entry, `expire_ms` its expiry.
pub fn preserve_entry(
    global: &State,
    state: &mut ShardState,
    db: usize,
    key: &[u8],
    entry: &mut Entry,
    expire_ms: Option<u64>,
) {
    let saved = global.saved_bit();
    if entry.flags & FLAG_SNAPSHOT == saved {
        return;
    }
    entry.flags = (entry.flags & !FLAG_SNAPSHOT) | saved;
    keep(global, state, db, key, entry.value.clone(), expire_ms);
}

/// Keeps for the saver an entry being removed or overwritten, if it has not been saved yet:
/// its value moves aside, nothing is copied. `entry` is the removed entry (or the live one,
/// with `value` the one it held).
pub fn preserve_value(
    global: &State,
    state: &mut ShardState,
    db: usize,
    key: &[u8],
    entry_flags: &mut u32,
    value: Value,
    expire_ms: Option<u64>,
) {
    let saved = global.saved_bit();
    if *entry_flags & FLAG_SNAPSHOT == saved {
        return;
    }
    *entry_flags = (*entry_flags & !FLAG_SNAPSHOT) | saved;
    keep(global, state, db, key, value, expire_ms);
}

fn keep(
    global: &State,
    state: &mut ShardState,
    db: usize,
    key: &[u8],
    value: Value,
    expire_ms: Option<u64>,
) {
    global
        .preserved_bytes
        .fetch_add(item_bytes(key.len(), &value), Ordering::Relaxed);
    state.preserved.push(Preserved {
        db,
        key: CompactBytes::new(key),
        value,
        expire_ms,
    });
    global.preserved.fetch_add(1, Ordering::Relaxed);
}

/// What a set-aside entry costs.
fn item_bytes(key_len: usize, value: &Value) -> usize {
    std::mem::size_of::<Preserved>() + key_len + value.heap_bytes()
}

/// Forgets set-aside entries the saver wrote out (or dropped).
fn release(global: &State, items: &[Preserved]) {
    let bytes: usize = items
        .iter()
        .map(|item| item_bytes(item.key.len(), &item.value))
        .sum();
    global.preserved.fetch_sub(items.len(), Ordering::Relaxed);
    global.preserved_bytes.fetch_sub(bytes, Ordering::Relaxed);
}

/// Whether a change to an entry of `db` in this shard must keep the old entry first.
pub fn watching(global: &State, state: &ShardState, db: usize) -> bool {
    global.is_active() && state.pending.get(db).copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Collects what a snapshot saw, checking each key comes once.
    #[derive(Default)]
    struct Collect(BTreeMap<(usize, Vec<u8>), (Value, Option<u64>)>);

    impl Sink for Collect {
        fn entry(&mut self, db: usize, key: &[u8], value: &Value, expire_ms: Option<u64>) {
            let previous = self
                .0
                .insert((db, key.to_vec()), (value.clone(), expire_ms));
            assert!(previous.is_none(), "saved twice: {key:?}");
        }

        fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    /// Everything in the keyspace now, the way a snapshot reports it.
    fn contents(keyspace: &Keyspace) -> BTreeMap<(usize, Vec<u8>), (Value, Option<u64>)> {
        let mut all = BTreeMap::new();
        let mut ks = keyspace.lock_all(0);
        for db in 0..keyspace.databases() {
            for slice in ks.slices(db) {
                let expires = &slice.expires;
                slice.keys.for_each(|key, entry| {
                    let expire = expires.get(key.as_slice()).copied();
                    all.insert((db, key.to_vec()), (entry.value.clone(), expire));
                });
            }
        }
        all
    }

    /// A sink that writes into the keyspace while the snapshot runs, at every flush: the
    /// snapshot must still see the start state.
    struct Meddler<'a> {
        inner: Collect,
        keyspace: &'a Keyspace,
        round: u64,
    }

    impl Sink for Meddler<'_> {
        fn entry(&mut self, db: usize, key: &[u8], value: &Value, expire_ms: Option<u64>) {
            self.inner.entry(db, key, value, expire_ms);
        }

        fn flush(&mut self) -> Result<(), String> {
            self.round += 1;
            let round = self.round;
            let mut ks = self.keyspace.lock_all(0);
            for index in 0..40u64 {
                let key = format!("k{}", (round * 7 + index * 13) % 500);
                match index % 5 {
                    0 => {
                        ks.delete(0, key.as_bytes());
                    }
                    1 => ks.set(0, key.as_bytes(), Value::string(b"changed"), false),
                    2 => ks.set(
                        1,
                        format!("new{round}-{index}").as_bytes(),
                        Value::string(b"n"),
                        false,
                    ),
                    3 => {
                        ks.set_expire(0, key.as_bytes(), 99_999);
                    }
                    _ => {
                        if let Some((entry, expire)) = ks.take(0, key.as_bytes()) {
                            ks.put(2, key.as_bytes(), entry, expire);
                        }
                    }
                }
            }
            if round == 3 {
                ks.flush_db(1);
            }
            if round == 5 {
                ks.swap_db(0, 2);
            }
            Ok(())
        }
    }

    /// Fills three databases, then snapshots them `walkers` at a time while every flush
    /// changes them: the sinks together must hold exactly the start state, each key once.
    fn sees_the_start_state_with(walkers: usize) {
        let keyspace = Keyspace::new(3, 7);
        {
            let mut ks = keyspace.lock_all(0);
            for index in 0..500u64 {
                let key = format!("k{index}");
                ks.set(
                    0,
                    key.as_bytes(),
                    Value::string(index.to_string().as_bytes()),
                    false,
                );
                if index % 3 == 0 {
                    ks.set_expire(0, key.as_bytes(), 10_000 + index);
                }
                ks.set(
                    1,
                    format!("one{index}").as_bytes(),
                    Value::string(b"1"),
                    false,
                );
            }
        }
        for attempt in 0..3 {
            let expected = contents(&keyspace);
            let mut sinks: Vec<Meddler> = (0..walkers as u64)
                .map(|walker| Meddler {
                    inner: Collect::default(),
                    keyspace: &keyspace,
                    round: attempt * 100 + walker * 1000,
                })
                .collect();
            let mut handles: Vec<&mut (dyn Sink + Send)> = sinks
                .iter_mut()
                .map(|sink| sink as &mut (dyn Sink + Send))
                .collect();
            run(&keyspace, 0, |_| Ok(()), &mut handles).expect("snapshot");
            let mut seen = BTreeMap::new();
            for sink in sinks {
                for (key, value) in sink.inner.0 {
                    assert!(
                        seen.insert(key.clone(), value).is_none(),
                        "saved twice: {key:?}"
                    );
                }
            }
            assert_eq!(seen.len(), expected.len(), "attempt {attempt}");
            assert!(
                seen == expected,
                "attempt {attempt}: the snapshot is the start state"
            );
            assert!(!keyspace.snapshot.is_active());
            let mut ks = keyspace.lock_all(0);
            for shard in ks.shards() {
                assert!(shard.snapshot.preserved.is_empty() && shard.snapshot.retired.is_empty());
            }
        }
    }

    #[test]
    fn sees_the_start_state_while_writers_change_everything() {
        sees_the_start_state_with(1);
    }

    #[test]
    fn several_walkers_together_see_the_start_state_once() {
        sees_the_start_state_with(3);
    }

    struct Failing(usize);

    impl Sink for Failing {
        fn entry(&mut self, _: usize, _: &[u8], _: &Value, _: Option<u64>) {}

        fn flush(&mut self) -> Result<(), String> {
            self.0 += 1;
            if self.0 == 4 {
                return Err("disk full".into());
            }
            Ok(())
        }
    }

    #[test]
    fn an_abandoned_snapshot_leaves_the_next_one_whole() {
        let keyspace = Keyspace::new(1, 3);
        {
            let mut ks = keyspace.lock_all(0);
            for index in 0..2000u64 {
                ks.set(
                    0,
                    format!("k{index}").as_bytes(),
                    Value::string(b"v"),
                    false,
                );
            }
        }
        let failed = run(&keyspace, 0, |_| Ok(()), &mut [&mut Failing(0)]);
        assert_eq!(failed, Err("disk full".into()));
        let mut collect = Collect::default();
        run(&keyspace, 0, |_| Ok(()), &mut [&mut collect]).expect("snapshot");
        assert_eq!(collect.0.len(), 2000);
    }
}
