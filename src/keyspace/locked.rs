//! `Locked`: a command's view of the keyspace while it holds its shards' locks.
//!
//! Every key access goes through here, so lazy expiry (a key past its time is deleted on
//! access and its deletion propagated), LRU/LFU updates, hit/miss counts and the dirty counter
//! are done once, the same way for every command. Asking for a key whose shard is not locked is
//! a bug in the command table's key specs and panics in debug builds.

use super::db::{Db, Live};
use super::entry::{Entry, FLAG_EXPIRES, FLAG_SHARED, FLAG_SNAPSHOT, SHARED_INTEGERS};
use super::notify::{self, Event};
use super::shards::{Keyspace, Shard};
use crate::sync::MutexGuard;
use crate::types::{CompactBytes, Value};
use smallvec::SmallVec;
use std::sync::atomic::Ordering;

/// A key found in a hold (`Locked::locate`): its guard's position and its hash in its
/// database's table, and which key it was (the address and length of the caller's slice,
/// compared and never read: `Locked::set_hints`).
#[derive(Clone, Copy)]
pub struct Located {
    position: usize,
    hash: u64,
    db: usize,
    addr: usize,
    len: usize,
}

impl Located {
    /// The same key located at another slice of the same bytes (a later command's argument).
    pub fn rebind(&mut self, key: &[u8]) {
        debug_assert_eq!(self.len, key.len());
        self.addr = key.as_ptr() as usize;
        self.len = key.len();
    }
}

/// Most commands touch one or two shards: keep their guards inline.
pub type Guards<'a> = SmallVec<[(usize, MutexGuard<'a, Shard>); 4]>;

pub struct Locked<'a> {
    keyspace: &'a Keyspace,
    /// Held guards, sorted by shard index. With `all`, position == shard index.
    guards: Guards<'a>,
    all: bool,
    /// The command's one time snapshot (unix ms).
    pub now_ms: u64,
    /// What expiry compares against: `now_ms`, or 0 while loading (nothing expires then).
    expire_ms: u64,
    /// Keys deleted by lazy expiry, to propagate as DEL before the command's own effects.
    pub expired: Vec<(usize, CompactBytes)>,
    /// Writes made (Redis's `server.dirty` delta); a write command propagates only if > 0.
    pub dirty: u64,
    /// Keys with blocked clients that were modified: served once the locks are released.
    pub ready: Vec<(usize, CompactBytes)>,
    /// Keyspace notifications raised, published once the locks are released.
    pub events: Vec<Event>,
    /// Whether the command may write: during a snapshot its look-ups copy unsaved entries
    /// aside first. True unless the executor knows better (a read command).
    pub writing: bool,
    /// Cold values lent to a read-only command (`install_warm` with `keep` false): in the
    /// entry only while the locks are held; `Drop` puts each pointer back.
    lent: SmallVec<[Lent; 1]>,
    /// What SORT's patterns name, read ahead with the locks released (`lookup_prefetched`).
    prefetched: Option<Box<Prefetched>>,
    /// Values overwritten by `set`, freed once the locks are released: freeing is the
    /// allocator's slow path when another thread allocated the value, and MSET's ten of them
    /// kept its shards locked longer than its ten look-ups did.
    overwritten: Vec<Value>,
    /// The running command's keys as a run located them (`set_hints`): its look-ups take
    /// their shard and hash from here instead of hashing the key twice more.
    hints: SmallVec<[Located; 2]>,
}

/// Overwritten values a hold keeps to free after it (a transaction or a run of commands holds
/// one for all of them); past this many, the rest are freed at once.
const OVERWRITTEN_PENDING_MAX: usize = 1024;

/// Values of cold keys read from the disk tier with the locks released and cut down to the
/// part a command takes (SORT's BY and GET patterns take a string, or one field of a hash),
/// each with the pointer it was read from: valid while the key's entry still holds that
/// pointer (records are never reused). Holding the parts, not the values, keeps a SORT over
/// many cold keys near the memory its reply and its sort vector need anyway.
#[derive(Default)]
pub struct Prefetched {
    /// Per key: its database, each field read (None: the string itself), the pointer, the
    /// part.
    parts: std::collections::HashMap<Box<[u8]>, SmallVec<[Part; 1]>>,
    bytes: usize,
}

struct Part {
    db: usize,
    field: Option<Box<[u8]>>,
    cold: crate::tier::ColdRef,
    value: Option<bytes::Bytes>,
}

/// Bookkeeping per part held, beside its bytes, for `Prefetched::bytes`.
const PART_OVERHEAD_BYTES: usize = 64;

impl Prefetched {
    pub fn insert(
        &mut self,
        db: usize,
        key: &[u8],
        field: Option<&[u8]>,
        cold: crate::tier::ColdRef,
        value: Option<bytes::Bytes>,
    ) {
        self.bytes += key.len()
            + field.map_or(0, <[u8]>::len)
            + value.as_ref().map_or(0, |value| value.len())
            + PART_OVERHEAD_BYTES;
        self.parts.entry(key.into()).or_default().push(Part {
            db,
            field: field.map(Into::into),
            cold,
            value,
        });
    }

    /// Bytes held, roughly: keys, fields, parts and bookkeeping.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    fn get(
        &self,
        db: usize,
        key: &[u8],
        field: Option<&[u8]>,
        cold: crate::tier::ColdRef,
    ) -> Option<&Option<bytes::Bytes>> {
        self.parts
            .get(key)?
            .iter()
            .find(|part| part.db == db && part.field.as_deref() == field && part.cold == cold)
            .map(|part| &part.value)
    }
}

/// A value read from the disk tier for one read-only command, its record left in place.
struct Lent {
    db: usize,
    key: Box<[u8]>,
    cold: crate::tier::ColdRef,
}

impl<'a> Locked<'a> {
    pub(super) fn new(
        keyspace: &'a Keyspace,
        guards: Guards<'a>,
        all: bool,
        now_ms: u64,
    ) -> Locked<'a> {
        let expire_ms = if keyspace.loading.load(Ordering::Relaxed) {
            0
        } else {
            now_ms
        };
        Locked {
            keyspace,
            guards,
            all,
            now_ms,
            expire_ms,
            expired: Vec::new(),
            dirty: 0,
            ready: Vec::new(),
            events: Vec::new(),
            writing: true,
            lent: SmallVec::new(),
            overwritten: Vec::new(),
            prefetched: None,
            hints: SmallVec::new(),
        }
    }

    /// Starts the next command on this view (a run of pipelined commands on one hold of
    /// their locks, `dispatch_run`), with its own time snapshot. What the last one raised
    /// was taken.
    pub fn next_command(&mut self, now_ms: u64) {
        debug_assert!(self.expired.is_empty() && self.ready.is_empty() && self.events.is_empty());
        debug_assert!(self.lent.is_empty() && self.prefetched.is_none());
        self.now_ms = now_ms;
        self.expire_ms = if self.keyspace.loading.load(Ordering::Relaxed) {
            0
        } else {
            now_ms
        };
    }

    /// Hands the view what was read ahead for its command (`lookup_prefetched`).
    pub fn set_prefetched(&mut self, prefetched: Prefetched) {
        self.prefetched = (!prefetched.is_empty()).then(|| Box::new(prefetched));
    }

    /// A part of `key` (its string, or hash `field`) read ahead with the locks released, if
    /// the key is still cold at the pointer it was read from: counted and touched as
    /// `lookup_read` would, without a disk read. None sends the caller to `lookup_read`
    /// (a hot or missing key, or one that changed since).
    pub fn lookup_prefetched(
        &mut self,
        db: usize,
        key: &[u8],
        field: Option<&[u8]>,
    ) -> Option<Option<bytes::Bytes>> {
        let prefetched = self.prefetched.take()?;
        if self.writing {
            self.preserve(db, key);
        }
        let mode = self.keyspace.access_mode();
        let now_ms = self.now_ms;
        let found = self.live_entry_raw(db, key).and_then(|entry| {
            let Value::Cold(cold) = entry.value else {
                return None;
            };
            let part = prefetched.get(db, key, field, cold)?.clone();
            entry.touch(now_ms, mode);
            entry.mark_read();
            Some(part)
        });
        self.prefetched = Some(prefetched);
        if found.is_some() {
            count_hit(&self.keyspace.stats, true);
        }
        found
    }

    /// Raises the keyspace notification `name` (Redis's event name: `set`, `lpush`, `del`,
    /// ...) of `class` (a `notify` class bit) for `key`, if `notify-keyspace-events` enables
    /// it. Call it after the change, once per change, as Redis's `notifyKeyspaceEvent`.
    pub fn notify(&mut self, class: u32, name: &'static str, db: usize, key: &[u8]) {
        record(self.keyspace, &mut self.events, class, name, db, key);
    }

    /// Before a change to `key` while a snapshot runs: copies the entry aside if the saver
    /// has not saved it yet, so the snapshot keeps its start state. One atomic load otherwise.
    fn preserve(&mut self, db: usize, key: &[u8]) {
        let global = &self.keyspace.snapshot;
        if !global.is_active() {
            return;
        }
        let position = self.shard_index(key);
        let Shard { dbs, snapshot, .. } = &mut *self.guards[position].1;
        if !super::snapshot::watching(global, snapshot, db) {
            return;
        }
        let slice = &mut dbs[db];
        let expire_ms = slice.expire_at(key);
        if let Some(entry) = slice.keys.get_mut(key) {
            super::snapshot::preserve_entry(global, snapshot, db, key, entry, expire_ms);
        }
    }

    /// Hands a removed entry to a snapshot that still needs it (a move, not a copy).
    fn preserve_removed(
        &mut self,
        db: usize,
        key: &[u8],
        mut entry: Entry,
        expire_ms: Option<u64>,
    ) {
        let global = &self.keyspace.snapshot;
        let position = self.shard_index(key);
        let snapshot = &mut self.guards[position].1.snapshot;
        if super::snapshot::watching(global, snapshot, db) {
            super::snapshot::preserve_value(
                global,
                snapshot,
                db,
                key,
                &mut entry.flags,
                entry.value,
                expire_ms,
            );
        }
    }

    /// The expiry of `key`, read only while a snapshot runs (what a removed entry keeps).
    fn expire_if_snapshot(&mut self, db: usize, key: &[u8]) -> Option<u64> {
        if !self.keyspace.snapshot.is_active() {
            return None;
        }
        self.db(db, key).expire_at(key)
    }

    pub fn keyspace(&self) -> &'a Keyspace {
        self.keyspace
    }

    pub fn holds_all(&self) -> bool {
        self.all
    }

    /// Whether another thread is waiting for a shard this hold has locked.
    pub fn contended(&self) -> bool {
        !self.all
            && self
                .guards
                .iter()
                .any(|(index, _)| self.keyspace.is_awaited(*index))
    }

    /// Where `key` is in this hold, for prefetching (`prefetch_slots`): its shard's guard and
    /// its hash in `db`'s table. None if this hold did not lock its shard.
    pub fn locate(&self, db: usize, key: &[u8]) -> Option<Located> {
        let position = self.guard_position(self.keyspace.shard_of(key))?;
        let (_, guard) = self.guards.get(position)?;
        let hash = guard.dbs.get(db)?.keys.hash(key);
        Some(Located {
            position,
            hash,
            db,
            addr: key.as_ptr() as usize,
            len: key.len(),
        })
    }

    /// Tells the view where the next command's keys are (`locate`d by the run, from the
    /// command's own arguments). A look-up recognises a key by its slice, the same memory
    /// the run located, which the arguments keep alive and unchanged while the command
    /// runs; `clear_hints` must follow the command, before that memory may be reused.
    pub fn set_hints(&mut self, located: &[Located]) {
        self.hints.clear();
        self.hints.extend_from_slice(located);
    }

    pub fn clear_hints(&mut self) {
        self.hints.clear();
    }

    /// `key`'s guard position, and its hash in `db` if a hint knows it.
    fn position_and_hash(&self, db: usize, key: &[u8]) -> (usize, Option<u64>) {
        match self.hint(key) {
            Some(hint) if hint.db == db => (hint.position, Some(hint.hash)),
            _ => (self.shard_index(key), None),
        }
    }

    /// The hint for `key`, if the run located this very slice.
    fn hint(&self, key: &[u8]) -> Option<&Located> {
        if self.hints.is_empty() {
            return None;
        }
        let addr = key.as_ptr() as usize;
        self.hints
            .iter()
            .find(|hint| hint.addr == addr && hint.len == key.len())
    }

    /// Prefetching for a pipelined run (`dispatch_run`): a lookup is two dependent cache
    /// misses, the bucket slot and then the node, and taken one key after another they were a
    /// fifth of GET's CPU at -P 16. The run starts the slots of the command after next and
    /// the nodes of the next one while a command runs, so the misses overlap its work.
    /// This is the first stage: the bucket slots of `keys` in `db`.
    pub fn prefetch_slots(&self, db: usize, keys: &[Located]) {
        for key in keys {
            if let Some(dict) = self.located_dict(db, key) {
                dict.prefetch_slot(key.hash);
            }
        }
    }

    /// The second stage of `prefetch_slots`: the first node of each key's bucket.
    pub fn prefetch_nodes(&self, db: usize, keys: &[Located]) {
        for key in keys {
            if let Some(dict) = self.located_dict(db, key) {
                dict.prefetch_node(key.hash);
            }
        }
    }

    fn located_dict(&self, db: usize, key: &Located) -> Option<&super::Dict<Entry>> {
        let (_, guard) = self.guards.get(key.position)?;
        Some(&guard.dbs.get(db)?.keys)
    }

    /// Where shard `shard`'s guard is in `guards`, if this hold locked it. A binary search:
    /// the guards are sorted, and a pipelined run of MSETs holds a hundred and more.
    fn guard_position(&self, shard: usize) -> Option<usize> {
        if self.all {
            return Some(shard);
        }
        self.guards
            .binary_search_by_key(&shard, |(index, _)| *index)
            .ok()
    }

    fn shard_index(&self, key: &[u8]) -> usize {
        if let Some(hint) = self.hint(key) {
            debug_assert_eq!(
                self.guard_position(self.keyspace.shard_of(key)),
                Some(hint.position)
            );
            return hint.position;
        }
        let shard = self.keyspace.shard_of(key);
        match self.guard_position(shard) {
            Some(position) => position,
            None => panic!("shard {shard} of a key is not locked: the command's key spec is wrong"),
        }
    }

    /// The database slice that holds `key`.
    pub fn db(&mut self, db: usize, key: &[u8]) -> &mut Db {
        let position = self.shard_index(key);
        &mut self.guards[position].1.dbs[db]
    }

    /// Every locked database slice of `db` (whole-keyspace commands).
    pub fn slices<'s>(&'s mut self, db: usize) -> impl Iterator<Item = &'s mut Db> + use<'s, 'a> {
        self.guards
            .iter_mut()
            .map(move |(_, shard)| &mut shard.dbs[db])
    }

    /// Every locked shard.
    pub fn shards<'s>(&'s mut self) -> impl Iterator<Item = &'s mut Shard> + use<'s, 'a> {
        self.guards.iter_mut().map(|(_, shard)| &mut **shard)
    }

    /// Deletes `key` if its time has passed; true if it did.
    pub fn expire_if_needed(&mut self, db: usize, key: &[u8]) -> bool {
        let expire_ms = self.expire_ms;
        let slice = self.db(db, key);
        if !slice.is_expired(key, expire_ms) {
            return false;
        }
        if let Some((stored, _)) = slice.remove(key) {
            self.keyspace
                .stats
                .expired_keys
                .fetch_add(1, Ordering::Relaxed);
            self.expired.push((db, stored));
            self.notify(notify::EXPIRED, "expired", db, key);
        }
        self.touch_watched(db, key);
        true
    }

    /// Looks a key up for reading or writing: expires it if due, records the access.
    pub fn lookup(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.lookup_as(db, key, true)
    }

    /// The live entry (deleting it first if it is due), without recording an access, its
    /// value brought back into RAM if it was cold: what commands work on.
    fn live_entry(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        let tier = &*self.keyspace.tier;
        let entry = self.live_entry_raw(db, key)?;
        if let Value::Cold(cold) = entry.value {
            // The executor reads a command's cold keys (SORT's pattern keys too) before
            // locking for it; one that changed in between is read here, lock held.
            tier.stats.locked_reads.incr();
            match tier.read(cold) {
                Ok(value) => {
                    entry.value = value;
                    tier.release_cold(cold);
                    tier.stats.promotions.incr();
                }
                Err(err) => std::panic::panic_any(crate::tier::memory::ReadFault(format!(
                    "can't read the value of '{}' from the disk tier: {err}",
                    String::from_utf8_lossy(key)
                ))),
            }
        }
        Some(entry)
    }

    /// The live entry as stored: a cold value stays a pointer. For what only needs the
    /// metadata (EXISTS, TYPE, TTL, OBJECT FREQ, MEMORY USAGE): those never read the disk.
    pub fn peek_meta(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.live_entry_raw(db, key)
    }

    /// `peek_read` for metadata: counts the hit or miss, leaves a cold value on disk.
    pub fn peek_meta_read(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.probe_read(db, key, false)
    }

    /// `lookup` for metadata writes (EXPIRE, PERSIST): records the access, leaves a cold
    /// value on disk.
    pub fn lookup_meta(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.lookup_as(db, key, false)
    }

    /// The live entry, its value brought back into RAM when `warm` (else left as stored).
    fn live_entry_as(&mut self, db: usize, key: &[u8], warm: bool) -> Option<&mut Entry> {
        if warm {
            self.live_entry(db, key)
        } else {
            self.live_entry_raw(db, key)
        }
    }

    /// Redis's `LOOKUP_NOTOUCH` read: counts the hit or miss, raises `keymiss`.
    fn probe_read(&mut self, db: usize, key: &[u8], warm: bool) -> Option<&mut Entry> {
        let stats = &self.keyspace.stats;
        if self.notifies_key_miss() && self.live_entry_as(db, key, warm).is_none() {
            count_hit(stats, false);
            self.notify(notify::KEY_MISS, "keymiss", db, key);
            return None;
        }
        let found = self.live_entry_as(db, key, warm);
        count_hit(stats, found.is_some());
        found
    }

    /// Redis's `lookupKey`: expires the key if due and records the access.
    fn lookup_as(&mut self, db: usize, key: &[u8], warm: bool) -> Option<&mut Entry> {
        if self.writing {
            self.preserve(db, key);
        }
        let mode = self.keyspace.access_mode();
        let now_ms = self.now_ms;
        let entry = self.live_entry_as(db, key, warm)?;
        entry.touch(now_ms, mode);
        Some(entry)
    }

    /// A cold key among `keys` of `db` (not due to expire), and its pointer.
    pub fn cold_refs<'k>(
        &mut self,
        db: usize,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> SmallVec<[(&'k [u8], crate::tier::ColdRef); 2]> {
        let mut found = SmallVec::new();
        if self.keyspace.tier.stats.cold_keys.load(Ordering::Relaxed) <= 0 {
            return found;
        }
        let expire_ms = self.expire_ms;
        for key in keys {
            let slice = self.db(db, key);
            if let Some(Entry {
                value: Value::Cold(cold),
                ..
            }) = slice.keys.get(key)
            {
                let cold = *cold;
                if !slice.is_expired(key, expire_ms) {
                    found.push((key, cold));
                }
            }
        }
        found
    }

    /// Installs a value read from the disk tier while the lock was released, if the entry
    /// still holds the pointer it was read from (records are never reused: equal pointers
    /// mean no change). True if installed. `keep` decides, given the entry as it was, whether
    /// the value stays in RAM (a promotion: its record dies) or is only lent to this command:
    /// the record stays and the entry gets its pointer back when the locks are released, so
    /// reading a cold value costs no spill elsewhere. Lend only to a read-only command: one
    /// that changes no entry, or says so with `signal_modified` (then the value is kept).
    pub fn install_warm(
        &mut self,
        db: usize,
        key: &[u8],
        cold: crate::tier::ColdRef,
        value: Value,
        keep: impl FnOnce(&Entry, &Value) -> bool,
    ) -> bool {
        let tier = &*self.keyspace.tier;
        let Some(entry) = self.db(db, key).keys.get_mut(key) else {
            return false;
        };
        if entry.value != Value::Cold(cold) {
            return false;
        }
        if keep(entry, &value) {
            entry.value = value;
            tier.release_cold(cold);
            tier.stats.promotions.incr();
        } else {
            entry.value = value;
            self.lent.push(Lent {
                db,
                key: key.into(),
                cold,
            });
        }
        true
    }

    /// The live entry (deleting it first if it is due), without recording an access.
    fn live_entry_raw(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        let expire_ms = self.expire_ms;
        let (position, hash) = self.position_and_hash(db, key);
        let keyspace = self.keyspace;
        // Borrow the shard's fields apart: the entry comes from `dbs`, a WATCH touch on expiry
        // goes to `watched`.
        let Shard { dbs, watched, .. } = &mut *self.guards[position].1;
        match dbs[db].lookup_live(key, hash, expire_ms) {
            Live::Found(entry) => Some(entry),
            Live::Missing => None,
            Live::Expired(stored) => {
                keyspace.stats.expired_keys.fetch_add(1, Ordering::Relaxed);
                if let Some(watch) = watched[db].get_mut(key) {
                    watch.version += 1;
                }
                self.expired.push((db, stored));
                record(
                    keyspace,
                    &mut self.events,
                    notify::EXPIRED,
                    "expired",
                    db,
                    key,
                );
                None
            }
        }
    }

    /// Looks a key up for a read command, counting keyspace hits and misses.
    pub fn lookup_read(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        let stats = &self.keyspace.stats;
        // Probed without recording an access, so a hit is touched once (LFU counts it once).
        if self.notifies_key_miss() && self.live_entry(db, key).is_none() {
            count_hit(stats, false);
            self.notify(notify::KEY_MISS, "keymiss", db, key);
            return None;
        }
        let found = self.lookup(db, key);
        count_hit(stats, found.is_some());
        let entry = found?;
        entry.mark_read();
        Some(entry)
    }

    /// Whether `keymiss` events are wanted: only then do reads look a key up twice (once to
    /// learn it is missing, which the borrow of a found entry does not allow to act on).
    fn notifies_key_miss(&self) -> bool {
        let flags = self.keyspace.notify_flags.load(Ordering::Relaxed);
        notify::enabled(flags, notify::KEY_MISS)
    }

    /// Redis's `LOOKUP_NOTOUCH` read (TYPE, EXISTS, OBJECT): counts hits and misses but
    /// leaves the access time alone.
    pub fn peek_read(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.probe_read(db, key, true)
    }

    /// Like `lookup` but without recording an access (OBJECT, TYPE-like introspection).
    pub fn peek(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.live_entry(db, key)
    }

    pub fn exists(&mut self, db: usize, key: &[u8]) -> bool {
        self.live_entry_raw(db, key).is_some()
    }

    /// Redis's `setKey`: creates or overwrites; the TTL is cleared unless `keep_ttl`.
    pub fn set(&mut self, db: usize, key: &[u8], value: Value, keep_ttl: bool) {
        let old_expire = self.expire_if_snapshot(db, key);
        let saved = self.keyspace.snapshot.saved_bit();
        let mode = self.keyspace.access_mode();
        let now_ms = self.now_ms;
        let expire_ms = self.expire_ms;
        let shared = if self.keyspace.share_integers() && is_shared_integer(&value) {
            FLAG_SHARED
        } else {
            0
        };
        let (position, hash) = self.position_and_hash(db, key);
        let global = &self.keyspace.snapshot;
        let Shard { dbs, snapshot, .. } = &mut *self.guards[position].1;
        let watching = super::snapshot::watching(global, snapshot, db);
        let slice = &mut dbs[db];
        let mut drop_ttl = false;
        match slice.lookup_live(key, hash, expire_ms) {
            Live::Found(entry) => {
                let old = std::mem::replace(&mut entry.value, value);
                self.keyspace.tier.release(&old);
                if watching {
                    // The overwritten value moves aside for the snapshot: no copy.
                    super::snapshot::preserve_value(
                        global,
                        snapshot,
                        db,
                        key,
                        &mut entry.flags,
                        old,
                        old_expire,
                    );
                } else if self.overwritten.len() < OVERWRITTEN_PENDING_MAX {
                    self.overwritten.push(old);
                }
                entry.flags = (entry.flags & (FLAG_EXPIRES | FLAG_SNAPSHOT)) | shared;
                entry.touch(now_ms, mode);
                drop_ttl = !keep_ttl && entry.has_expire();
            }
            Live::Missing => {
                let mut entry = Entry::new(value, now_ms, mode);
                entry.flags = shared | saved;
                slice.insert_new(CompactBytes::new(key), entry);
                record(self.keyspace, &mut self.events, notify::NEW, "new", db, key);
            }
            Live::Expired(stored) => {
                let mut entry = Entry::new(value, now_ms, mode);
                entry.flags = shared | saved;
                slice.insert_new(CompactBytes::new(key), entry);
                self.keyspace
                    .stats
                    .expired_keys
                    .fetch_add(1, Ordering::Relaxed);
                self.expired.push((db, stored));
                let (keyspace, events) = (self.keyspace, &mut self.events);
                record(keyspace, events, notify::EXPIRED, "expired", db, key);
                record(keyspace, events, notify::NEW, "new", db, key);
            }
        }
        if drop_ttl {
            self.guards[position].1.dbs[db].persist(key);
        }
        self.signal_modified(db, key);
    }

    /// A key read from an RDB file (or an AOF's base) while loading, with its expiry; false,
    /// and nothing changed, when the key is there already (the file repeats it). One hash
    /// and one probe; no notification, watch or dirty count, as Redis's `dbAddRDBLoad`
    /// (no client is served yet).
    pub fn insert_loaded(
        &mut self,
        db: usize,
        key: &[u8],
        value: Value,
        expire_ms: Option<u64>,
    ) -> bool {
        let shared = if self.keyspace.share_integers() && is_shared_integer(&value) {
            FLAG_SHARED
        } else {
            0
        };
        let mut entry = Entry::new(value, self.now_ms, self.keyspace.access_mode());
        entry.flags = shared | self.keyspace.snapshot.saved_bit();
        self.db(db, key)
            .insert_loaded(key, entry, expire_ms)
            .is_ok()
    }

    /// `set` with an expiry: one write, as Redis counts a SET with EX/PX (`server.dirty`).
    pub fn set_expiring(&mut self, db: usize, key: &[u8], value: Value, when_ms: u64) {
        self.set(db, key, value, false);
        let installed = self.db(db, key).set_expire(key, when_ms);
        debug_assert!(installed, "the key was just written");
    }

    /// Deletes a key; true if it existed (an expired key counts as absent).
    pub fn delete(&mut self, db: usize, key: &[u8]) -> bool {
        self.expire_if_needed(db, key);
        let expire_ms = self.expire_if_snapshot(db, key);
        let Some((_, entry)) = self.db(db, key).remove(key) else {
            return false;
        };
        self.preserve_removed(db, key, entry, expire_ms);
        self.signal_modified(db, key);
        true
    }

    /// Removes a key and hands back its entry (RENAME, MOVE, GETDEL).
    pub fn take(&mut self, db: usize, key: &[u8]) -> Option<(Entry, Option<u64>)> {
        self.expire_if_needed(db, key);
        // A taken entry moves under another name, which a record's header would not know:
        // bring the value back first (records name their owner for compaction).
        self.live_entry(db, key);
        self.preserve(db, key);
        let slice = self.db(db, key);
        let when = slice.expire_at(key);
        let (_, mut entry) = slice.remove(key)?;
        entry.flags &= !FLAG_EXPIRES;
        self.signal_modified(db, key);
        Some((entry, when))
    }

    /// Installs an entry taken elsewhere (RENAME, MOVE, COPY), replacing any existing key.
    pub fn put(&mut self, db: usize, key: &[u8], mut entry: Entry, expire_at_ms: Option<u64>) {
        self.expire_if_needed(db, key);
        let old_expire = self.expire_if_snapshot(db, key);
        if let Some((_, replaced)) = self.db(db, key).remove(key) {
            self.preserve_removed(db, key, replaced, old_expire);
        }
        let saved = self.keyspace.snapshot.saved_bit();
        let slice = self.db(db, key);
        // Born after any snapshot in progress started: never part of it.
        entry.flags = (entry.flags & !(FLAG_EXPIRES | FLAG_SNAPSHOT)) | saved;
        slice.insert_new(CompactBytes::new(key), entry);
        if let Some(when) = expire_at_ms {
            slice.set_expire(key, when);
        }
        // Redis deletes the destination, then dbAdd raises `new`.
        self.notify(notify::NEW, "new", db, key);
        self.signal_modified(db, key);
    }

    pub fn expire_at(&mut self, db: usize, key: &[u8]) -> Option<u64> {
        self.expire_if_needed(db, key);
        self.db(db, key).expire_at(key)
    }

    /// Sets the expiry of an existing key; false if absent.
    pub fn set_expire(&mut self, db: usize, key: &[u8], when_ms: u64) -> bool {
        self.expire_if_needed(db, key);
        self.preserve(db, key);
        let done = self.db(db, key).set_expire(key, when_ms);
        if done {
            self.signal_modified(db, key);
        }
        done
    }

    /// Removes the expiry; true if there was one.
    pub fn persist(&mut self, db: usize, key: &[u8]) -> bool {
        self.expire_if_needed(db, key);
        self.preserve(db, key);
        let done = self.db(db, key).persist(key);
        if done {
            self.signal_modified(db, key);
        }
        done
    }

    /// Redis's `signalModifiedKey`: a key changed. Counts the write; WATCH, keyspace
    /// notifications and the tier hook in here as they are built.
    pub fn signal_modified(&mut self, db: usize, key: &[u8]) {
        self.dirty += 1;
        self.keep_lent(db, key);
        self.touch_watched(db, key);
        self.signal_ready(db, key);
    }

    /// Redis's signalKeyAsReady: if clients are blocked on `key`, queue it to be served after
    /// this command. Any change counts (LPUSH, RENAME onto it, RESTORE, an EXEC); a served
    /// client that still finds nothing stays blocked in its place.
    fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if self.keyspace.blocking.load(Ordering::Relaxed) == 0 {
            return;
        }
        let position = self.shard_index(key);
        let has_waiters = self.guards[position].1.blocked[db].contains_key(key);
        let queued = self
            .ready
            .iter()
            .any(|(ready_db, ready)| *ready_db == db && ready.as_slice() == key);
        if has_waiters && !queued {
            self.ready.push((db, CompactBytes::new(key)));
        }
    }

    /// Queues waiter `id` behind those already blocked on `key`.
    pub fn block_on(&mut self, db: usize, key: &[u8], id: u64) {
        let position = self.shard_index(key);
        self.guards[position].1.blocked[db]
            .entry(CompactBytes::new(key))
            .or_default()
            .push_back(id);
        self.keyspace.blocking.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes waiter `id` from `key`'s queue; false if it was not there.
    pub fn unblock_from(&mut self, db: usize, key: &[u8], id: u64) -> bool {
        let position = self.shard_index(key);
        let table = &mut self.guards[position].1.blocked[db];
        let Some(queue) = table.get_mut(key) else {
            return false;
        };
        let Some(index) = queue.iter().position(|waiter| *waiter == id) else {
            return false;
        };
        queue.remove(index);
        if queue.is_empty() {
            table.remove(key);
        }
        self.keyspace.blocking.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// The waiter blocked longest on `key`.
    pub fn first_waiter(&mut self, db: usize, key: &[u8]) -> Option<u64> {
        let position = self.shard_index(key);
        self.guards[position].1.blocked[db]
            .get(key)
            .and_then(|queue| queue.front().copied())
    }

    /// Bumps the WATCH version of `key` if any client watches it (Redis's touchWatchedKey).
    pub fn touch_watched(&mut self, db: usize, key: &[u8]) {
        if self.keyspace.watching.load(Ordering::Relaxed) == 0 {
            return;
        }
        let position = self.shard_index(key);
        if let Some(watch) = self.guards[position].1.watched[db].get_mut(key) {
            watch.version += 1;
        }
    }

    /// Registers one more watcher of `key`; returns the version to compare at EXEC.
    pub fn watch(&mut self, db: usize, key: &[u8]) -> u64 {
        let position = self.shard_index(key);
        let watch = self.guards[position].1.watched[db]
            .entry(CompactBytes::new(key))
            .or_default();
        watch.watchers += 1;
        self.keyspace.watching.fetch_add(1, Ordering::Relaxed);
        watch.version
    }

    /// Drops one watcher of `key`, forgetting the key when nobody watches it any more.
    pub fn unwatch(&mut self, db: usize, key: &[u8]) {
        let position = self.shard_index(key);
        let table = &mut self.guards[position].1.watched[db];
        let Some(watch) = table.get_mut(key) else {
            debug_assert!(false, "unwatch of a key that is not watched");
            return;
        };
        debug_assert!(watch.watchers > 0);
        watch.watchers -= 1;
        if watch.watchers == 0 {
            table.remove(key);
        }
        self.keyspace.watching.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current WATCH version of a watched key.
    pub fn watch_version(&mut self, db: usize, key: &[u8]) -> u64 {
        let position = self.shard_index(key);
        self.guards[position].1.watched[db]
            .get(key)
            .map_or(0, |watch| watch.version)
    }

    /// Whether `key` exists in the dict but is past its expiry (not yet reclaimed).
    pub fn is_logically_expired(&mut self, db: usize, key: &[u8]) -> bool {
        let expire_ms = self.expire_ms;
        self.db(db, key).is_expired(key, expire_ms)
    }

    /// Bumps every watched key of `db` that exists in `db` or `other` (FLUSHDB, SWAPDB), as
    /// Redis's touchAllWatchedKeysInDb.
    fn touch_all_watched(&mut self, db: usize, other: usize) {
        if self.keyspace.watching.load(Ordering::Relaxed) == 0 {
            return;
        }
        for shard in self.shards() {
            let Shard { dbs, watched, .. } = shard;
            for (key, watch) in watched[db].iter_mut() {
                if dbs[db].keys.contains_key(key) || dbs[other].keys.contains_key(key) {
                    watch.version += 1;
                }
            }
        }
    }

    /// Keys and keys-with-expiry per database across the locked shards (INFO keyspace).
    pub fn counts(&mut self, databases: usize) -> Vec<(usize, usize)> {
        let mut counts = vec![(0, 0); databases];
        for shard in self.shards() {
            for (db, slot) in shard.dbs.iter().zip(counts.iter_mut()) {
                slot.0 += db.keys.len();
                slot.1 += db.expires.len();
            }
        }
        counts
    }

    /// Keys in `db` across the locked shards (all of them for DBSIZE).
    pub fn len(&mut self, db: usize) -> usize {
        self.slices(db).map(|slice| slice.len()).sum()
    }

    /// Empties `db` in every locked shard; returns the number of keys removed.
    pub fn flush_db(&mut self, db: usize) -> usize {
        debug_assert!(self.all, "FLUSHDB must hold every shard");
        self.touch_all_watched(db, db);
        let snapshot = self.keyspace.snapshot.is_active();
        let mut removed = 0;
        for shard in self.shards() {
            removed += shard.dbs[db].len();
            if snapshot && shard.snapshot.pending.get(db).copied().unwrap_or(false) {
                // The snapshot still needs this table: retire it (a move), do not drop it.
                let retired = shard.dbs[db].take_contents();
                shard.snapshot.retired.push((db, retired));
            } else {
                shard.dbs[db].clear();
            }
        }
        self.dirty += removed as u64;
        removed
    }

    /// Swaps two databases in every shard (SWAPDB).
    pub fn swap_db(&mut self, a: usize, b: usize) {
        debug_assert!(self.all, "SWAPDB must hold every shard");
        self.touch_all_watched(a, b);
        self.touch_all_watched(b, a);
        let global = &self.keyspace.snapshot;
        let active = global.is_active();
        for shard in self.shards() {
            if active {
                // The saver walks tables by database index: what it has not saved of the two
                // databases is copied aside under the index it had at the start.
                for db in [a, b] {
                    if !shard.snapshot.pending.get(db).copied().unwrap_or(false) {
                        continue;
                    }
                    let Shard { dbs, snapshot, .. } = &mut *shard;
                    let super::db::Db { keys, expires, .. } = &mut dbs[db];
                    keys.for_each_mut(|key, entry| {
                        let expire_ms = if entry.has_expire() {
                            expires.get(key.as_slice()).copied()
                        } else {
                            None
                        };
                        super::snapshot::preserve_entry(
                            global, snapshot, db, key, entry, expire_ms,
                        );
                    });
                }
            }
            shard.dbs.swap(a, b);
        }
        // Blocked clients stay with their database index, which now holds other data: let
        // them look again (Redis's scanDatabaseForReadyKeys).
        let mut ready = Vec::new();
        for shard in self.shards() {
            for db in [a, b] {
                ready.extend(shard.blocked[db].keys().map(|key| (db, key.clone())));
            }
        }
        self.ready.extend(ready);
        self.dirty += 1;
    }
}

/// Records an event if `notify-keyspace-events` enables its class (one atomic load when not).
/// A free function so callers holding a borrow of the shards can still record.
fn record(
    keyspace: &Keyspace,
    events: &mut Vec<Event>,
    class: u32,
    name: &'static str,
    db: usize,
    key: &[u8],
) {
    let flags = keyspace.notify_flags.load(Ordering::Relaxed);
    if notify::enabled(flags, class) {
        events.push(Event {
            class,
            name,
            db,
            key: CompactBytes::new(key),
        });
    }
}

fn count_hit(stats: &super::shards::Stats, hit: bool) {
    let counter = if hit {
        &stats.keyspace_hits
    } else {
        &stats.keyspace_misses
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Redis's `tryObjectEncoding` shares integers 0..9999 instead of storing them.
fn is_shared_integer(value: &Value) -> bool {
    value
        .as_str()
        .filter(|bytes| bytes.len() <= 4)
        .and_then(crate::protocol::parser::parse_i64)
        .is_some_and(|number| (0..SHARED_INTEGERS).contains(&number))
}

impl Locked<'_> {
    /// A lent value was changed (PFCOUNT caches its count in the value yet is read-only): it
    /// stays in RAM, a promotion like any other, since its record no longer holds it.
    fn keep_lent(&mut self, db: usize, key: &[u8]) {
        let Some(position) = self
            .lent
            .iter()
            .position(|lent| lent.db == db && &*lent.key == key)
        else {
            return;
        };
        let lent = self.lent.swap_remove(position);
        let tier = &*self.keyspace.tier;
        tier.release_cold(lent.cold);
        tier.stats.promotions.incr();
    }

    /// Puts the pointers of lent values back in their entries; the values, to free.
    pub fn return_lent(&mut self) -> SmallVec<[Value; 1]> {
        let tier = &*self.keyspace.tier;
        let mut freed = SmallVec::new();
        for Lent { db, key, cold } in std::mem::take(&mut self.lent) {
            match self.db(db, &key).keys.get_mut(&key[..]) {
                Some(entry) if !entry.value.is_cold() => {
                    freed.push(std::mem::replace(&mut entry.value, Value::Cold(cold)));
                }
                // Deleted or spilled anew while lent (never by a read-only command): the
                // record is dead.
                _ => {
                    debug_assert!(false, "a lent value's entry changed");
                    tier.release_cold(cold);
                }
            }
        }
        freed
    }
}

impl Drop for Locked<'_> {
    /// Lent values go back to being pointers before the locks are released; they and the
    /// values `set` overwrote are freed after, with no lock held.
    fn drop(&mut self) {
        let freed = if self.lent.is_empty() {
            SmallVec::new()
        } else {
            self.return_lent()
        };
        self.guards.clear();
        drop(freed);
        drop(std::mem::take(&mut self.overwritten));
    }
}
