//! One database's slice of a shard: the keys, and the expiry times of those that have one.
//!
//! Invariant: a key is in `expires` exactly when it is in `keys` with `FLAG_EXPIRES` set.
//!
//! Every change to either table goes through a method here, which reports the change in the
//! tables' own size (nodes, buckets, long keys: the key index) to the tier's `index_bytes`.
//! Under tiering `maxmemory` budgets what is left (`tier::spill::budgeted_memory`): keys never
//! leave RAM, so spilling values cannot pay for them.

use super::dict::{Dict, Hasher};
use super::entry::{Entry, FLAG_EXPIRES};
use crate::tier::memory::Tier;
use crate::types::CompactBytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What `lookup_live` found.
pub enum Live<'a> {
    Found(&'a mut Entry),
    Missing,
    /// The key was due and has just been deleted; its stored name, for propagation.
    Expired(CompactBytes),
}

pub struct Db {
    pub keys: Dict<Entry>,
    /// Absolute expiry times in unix milliseconds.
    pub expires: Dict<u64>,
    /// Where the active expiry cycle continues its walk of `expires`.
    pub expire_cursor: u64,
    /// Where spilling continues its walk of `keys` for candidates (`tier::spill`).
    pub spill_cursor: usize,
    /// The memory tier, told when a cold value leaves the table.
    tier: Arc<Tier>,
    /// What this table last added to `tier.index_bytes` (`account`).
    accounted: usize,
}

impl Db {
    pub fn new(hasher: &Hasher, tier: Arc<Tier>) -> Db {
        Db {
            keys: Dict::new(hasher.clone()),
            expires: Dict::new(hasher.clone()),
            expire_cursor: 0,
            spill_cursor: 0,
            tier,
            accounted: 0,
        }
    }

    /// Brings `tier.index_bytes` up to date with the tables' size: after every change to them.
    fn account(&mut self) {
        let now = self.keys.index_bytes() + self.expires.index_bytes();
        if now != self.accounted {
            self.tier
                .add_index_bytes(now as i64 - self.accounted as i64);
            self.accounted = now;
        }
    }

    /// Inserts a key known to be absent.
    pub fn insert_new(&mut self, key: CompactBytes, entry: Entry) {
        self.keys.insert_new(key, entry);
        self.account();
    }

    /// A loaded key (RDB, an AOF's base): inserted unless present, with its expiry, the key
    /// hashed once for both tables (they share a hasher) and each probed once. `Err` hands
    /// the entry back when the key is present (a file that repeats a key is corrupt).
    pub fn insert_loaded(
        &mut self,
        key: &[u8],
        entry: Entry,
        expire_ms: Option<u64>,
    ) -> Result<(), Entry> {
        debug_assert!(!entry.has_expire(), "the expiry comes as expire_ms");
        let hash = self.keys.hash(key);
        let stored = self
            .keys
            .insert_unique_hashed(hash, CompactBytes::new(key), entry)
            .map_err(|(_, entry)| entry)?;
        if let Some(when_ms) = expire_ms {
            stored.flags |= FLAG_EXPIRES;
            let installed =
                self.expires
                    .insert_unique_hashed(hash, CompactBytes::new(key), when_ms);
            assert!(installed.is_ok(), "an expiry without its key");
        }
        self.account();
        Ok(())
    }

    /// Makes room in the tables for `keys` more keys, `expires` of them with an expiry
    /// (RESIZEDB; the caller bounds both).
    pub fn reserve(&mut self, keys: usize, expires: usize) {
        self.keys.reserve(keys);
        self.expires.reserve(expires);
        self.account();
    }

    /// Background table upkeep (`Dict::maintain` of both tables).
    pub fn maintain(&mut self, steps: usize) {
        self.keys.maintain(steps);
        self.expires.maintain(steps);
        self.account();
    }

    /// The expiry time of `key`, if it has one.
    pub fn expire_at(&self, key: &[u8]) -> Option<u64> {
        let entry = self.keys.get(key)?;
        if !entry.has_expire() {
            return None;
        }
        let when = self.expires.get(key).copied();
        debug_assert!(when.is_some(), "FLAG_EXPIRES without an expires entry");
        when
    }

    pub fn is_expired(&self, key: &[u8], now_ms: u64) -> bool {
        matches!(self.expire_at(key), Some(when) if when < now_ms)
    }

    /// Finds `key`, deleting it first if it is past its expiry time; the hash (`hash` if the
    /// caller knows it) is computed once for both dicts (they share a hasher).
    pub fn lookup_live(&mut self, key: &[u8], hash: Option<u64>, now_ms: u64) -> Live<'_> {
        let hash = hash.unwrap_or_else(|| self.keys.hash(key));
        debug_assert_eq!(hash, self.keys.hash(key));
        if self.expires.is_empty() {
            // Nothing here can be due: one walk of the chain, not two.
            return match self.keys.get_mut_hashed(hash, key) {
                Some(entry) => Live::Found(entry),
                None => Live::Missing,
            };
        }
        let due = match self.keys.get_hashed(hash, key) {
            None => return Live::Missing,
            Some(entry) if entry.has_expire() => {
                let when = self.expires.get_hashed(hash, key).copied();
                debug_assert!(when.is_some(), "FLAG_EXPIRES without an expires entry");
                matches!(when, Some(when) if when < now_ms)
            }
            Some(_) => false,
        };
        if due {
            return match self.remove(key) {
                Some((stored, _)) => Live::Expired(stored),
                None => Live::Missing,
            };
        }
        match self.keys.get_mut_hashed(hash, key) {
            Some(entry) => Live::Found(entry),
            None => Live::Missing,
        }
    }

    /// Sets or replaces the expiry of an existing key; false if the key is absent.
    pub fn set_expire(&mut self, key: &[u8], when_ms: u64) -> bool {
        let Some(entry) = self.keys.get_mut(key) else {
            return false;
        };
        entry.flags |= FLAG_EXPIRES;
        match self.expires.get_mut(key) {
            Some(slot) => *slot = when_ms,
            None => {
                self.expires.insert_new(CompactBytes::new(key), when_ms);
                self.account();
            }
        }
        true
    }

    /// Removes the expiry; true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.keys.get_mut(key) else {
            return false;
        };
        if !entry.has_expire() {
            return false;
        }
        entry.flags &= !FLAG_EXPIRES;
        let removed = self.expires.remove(key);
        debug_assert!(removed.is_some());
        self.account();
        true
    }

    /// Removes a key and its expiry.
    pub fn remove(&mut self, key: &[u8]) -> Option<(CompactBytes, Entry)> {
        let (stored, entry) = self.keys.remove(key)?;
        self.tier.release(&entry.value);
        if entry.has_expire() {
            let removed = self.expires.remove(key);
            debug_assert!(removed.is_some());
        }
        self.account();
        Some((stored, entry))
    }

    /// Moves the contents out, leaving this table empty (FLUSHDB during a snapshot).
    pub fn take_contents(&mut self) -> Db {
        // The snapshot still reads the cold values it takes; their records stay on disk until
        // it ends (no compaction while one runs), so they count as released now.
        self.release_cold();
        let empty = Db {
            keys: self.keys.empty_like(),
            expires: self.expires.empty_like(),
            expire_cursor: 0,
            spill_cursor: 0,
            tier: self.tier.clone(),
            accounted: 0,
        };
        // The taken tables stay counted until they are dropped (`Drop`), maybe on another
        // thread: that is when their memory goes.
        std::mem::replace(self, empty)
    }

    pub fn clear(&mut self) {
        self.release_cold();
        self.keys.clear();
        self.expires.clear();
        self.expire_cursor = 0;
        self.account();
    }

    /// Tells the tier every cold value here is gone (a walk only while any value is cold).
    fn release_cold(&mut self) {
        if self.tier.stats.cold_keys.load(Ordering::Relaxed) == 0 {
            return;
        }
        let tier = &self.tier;
        self.keys
            .for_each_mut(|_, entry| tier.release(&entry.value));
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.tier.add_index_bytes(-(self.accounted as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::entry::AccessMode;
    use crate::types::Value;

    fn index_of(tier: &Tier, db: &Db) -> (usize, usize) {
        (
            tier.index_bytes(),
            db.keys.index_bytes() + db.expires.index_bytes(),
        )
    }

    #[test]
    fn loaded_keys_are_refused_when_repeated_and_carry_their_expiry() {
        let tier = Arc::new(Tier::default());
        let hasher = Hasher::with_seeds(1, 2, 3, 4);
        let mut db = Db::new(&hasher, tier.clone());
        db.reserve(100, 50);
        let entry =
            |text: &[u8]| Entry::new(Value::Str(CompactBytes::new(text)), 0, AccessMode::Lru);
        for i in 0..100u64 {
            let expire = (i % 2 == 0).then_some(1_000 + i);
            let key = format!("k{i}");
            assert!(db
                .insert_loaded(key.as_bytes(), entry(b"v"), expire)
                .is_ok());
        }
        assert!(!db.keys.is_rehashing() && !db.expires.is_rehashing());
        let refused = db.insert_loaded(b"k4", entry(b"again"), None);
        assert!(refused.is_err());
        assert_eq!(db.len(), 100);
        assert_eq!(db.expires.len(), 50);
        assert_eq!(db.expire_at(b"k4"), Some(1_004));
        assert_eq!(db.expire_at(b"k5"), None);
        let (counted, actual) = index_of(&tier, &db);
        assert_eq!(counted, actual);
    }

    #[test]
    fn the_key_index_is_accounted_through_every_change_and_released_on_drop() {
        let tier = Arc::new(Tier::default());
        let hasher = Hasher::with_seeds(1, 2, 3, 4);
        let mut db = Db::new(&hasher, tier.clone());
        for i in 0..1000 {
            // Every third key is too long to sit inline: its heap bytes count too.
            let key = if i % 3 == 0 {
                format!("a-key-long-enough-for-the-heap-{i}")
            } else {
                format!("k{i}")
            };
            let entry = Entry::new(Value::Str(CompactBytes::new(b"v")), 0, AccessMode::Lru);
            db.insert_new(CompactBytes::new(key.as_bytes()), entry);
            if i % 2 == 0 {
                db.set_expire(key.as_bytes(), 1_000);
            }
        }
        let (counted, actual) = index_of(&tier, &db);
        assert_eq!(counted, actual);
        assert!(actual >= 1000 * std::mem::size_of::<Entry>());
        db.persist(b"k1");
        db.persist(b"k2");
        for i in (0..1000).step_by(4) {
            db.remove(format!("k{i}").as_bytes());
        }
        db.maintain(100);
        let (counted, actual) = index_of(&tier, &db);
        assert_eq!(counted, actual);
        let taken = db.take_contents();
        assert_eq!(
            tier.index_bytes(),
            actual,
            "taken tables count until dropped"
        );
        drop(taken);
        assert_eq!(tier.index_bytes(), 0);
        db.insert_new(
            CompactBytes::new(b"x"),
            Entry::new(Value::Str(CompactBytes::new(b"v")), 0, AccessMode::Lru),
        );
        db.clear();
        assert_eq!(tier.index_bytes(), 0);
        drop(db);
        assert_eq!(tier.index_bytes(), 0);
    }
}
