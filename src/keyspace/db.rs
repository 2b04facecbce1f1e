//! One database's slice of a shard: the keys, and the expiry times of those that have one.
//!
//! Invariant: a key is in `expires` exactly when it is in `keys` with `FLAG_EXPIRES` set.

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
    pub spill_cursor: u64,
    /// The memory tier, told when a cold value leaves the table.
    tier: Arc<Tier>,
}

impl Db {
    pub fn new(hasher: &Hasher, tier: Arc<Tier>) -> Db {
        Db {
            keys: Dict::new(hasher.clone()),
            expires: Dict::new(hasher.clone()),
            expire_cursor: 0,
            spill_cursor: 0,
            tier,
        }
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

    /// Finds `key`, deleting it first if it is past its expiry time; the hash is computed
    /// once for both dicts (they share a hasher).
    pub fn lookup_live(&mut self, key: &[u8], now_ms: u64) -> Live<'_> {
        let hash = self.keys.hash(key);
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
        };
        std::mem::replace(self, empty)
    }

    pub fn clear(&mut self) {
        self.release_cold();
        self.keys.clear();
        self.expires.clear();
        self.expire_cursor = 0;
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
