//! The segment files a store has open, and the hand-off of one to a reader: apart from the
//! rest of the store so that loom checks this code as it is (`tests/loom_segment.rs` compiles
//! this file against loom's locks; it names nothing of the crate but `crate::sync`).
//!
//! A read locates its record under the store's mutex, then reads it with no lock held. What
//! it takes from this table is a handle (`Arc`) to the segment's file, and the file's map
//! stays valid for as long as a handle lives, whatever happens to the table meanwhile.
//! `retire` takes a file out of the table; the file is unmapped when its last handle drops, so
//! a reader that took a handle first reads the bytes it located, and one that comes after
//! finds no file (`get` is None, which the store reports as Gone: the reader looks up its
//! entry's current ref again). Ids come from `allocate` only and are never reused, not even
//! after `clear`, so a ref never names another record's bytes.
//!
//! Lock order: the store's mutex, then this table's, never the other way round.

use crate::sync::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Open segment files by segment id.
pub struct Files<F: ?Sized> {
    table: Mutex<Table<F>>,
}

struct Table<F: ?Sized> {
    open: BTreeMap<u32, Arc<F>>,
    /// Every id handed out is below this one.
    next_id: u32,
}

impl<F: ?Sized> Files<F> {
    /// An empty table whose first id is 1.
    pub fn new() -> Files<F> {
        Files {
            table: Mutex::new(Table {
                open: BTreeMap::new(),
                next_id: 1,
            }),
        }
    }

    /// A new segment id, never handed out before; None once they ran out (four billion).
    pub fn allocate(&self) -> Option<u32> {
        let mut table = self.table.lock();
        let id = table.next_id;
        table.next_id = id.checked_add(1)?;
        Some(id)
    }

    /// Every id handed out so far is below this.
    pub fn next_id(&self) -> u32 {
        self.table.lock().next_id
    }

    /// Adds segment `id`'s file (at its first flush). An id not allocated, or with a file
    /// already, is a bug: refused.
    pub fn insert(&self, id: u32, file: Arc<F>) -> bool {
        let mut table = self.table.lock();
        let fresh = id < table.next_id && !table.open.contains_key(&id);
        debug_assert!(
            fresh,
            "segment {id}: not allocated, or its file is open already"
        );
        if fresh {
            table.open.insert(id, file);
        }
        fresh
    }

    /// The hand-off: a handle to segment `id`'s file, valid after the lock is released; None
    /// if the segment has no file (retired, cleared, or not yet flushed).
    pub fn get(&self, id: u32) -> Option<Arc<F>> {
        self.table.lock().open.get(&id).cloned()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.table.lock().open.contains_key(&id)
    }

    /// Takes segment `id`'s file out: later `get`s find none. The caller drops the handle
    /// with no lock held (unmapping may take a while); readers holding one keep the map.
    #[must_use]
    pub fn retire(&self, id: u32) -> Option<Arc<F>> {
        self.table.lock().open.remove(&id)
    }

    /// Takes every file out (FLUSHALL); ids go on from where they were.
    #[must_use]
    pub fn clear(&self) -> BTreeMap<u32, Arc<F>> {
        std::mem::take(&mut self.table.lock().open)
    }

    /// Handles to every open file.
    pub fn all(&self) -> Vec<Arc<F>> {
        self.table.lock().open.values().cloned().collect()
    }
}
