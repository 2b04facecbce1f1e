//! `Dict`: Redis's hash table, chained buckets with incremental rehashing.
//!
//! Why not `std::collections::HashMap`: SCAN's guarantee. Redis promises that an element
//! present for a whole SCAN is returned at least once even if the table grows or shrinks
//! between calls. That holds only for chained power-of-two tables walked with a reverse-binary
//! cursor (`dictScan`), which is what this is. Rehashing moves one bucket per write, so a
//! resize never stalls a shard, and buckets cost one pointer each. A loader that knows the
//! final size (RDB's RESIZEDB, a collection's count) `reserve`s it, so the table is made once
//! and never rehashed, and inserts with `insert_unique` (one hash, one probe).
//!
//! Invariants: `tables[0]` is the live table; while rehashing, buckets below `rehash_index`
//! of `tables[0]` are empty and new entries go to `tables[1]`; `len()` is the sum of both.

use crate::types::CompactBytes;
use smallvec::SmallVec;

/// Smallest non-empty table.
const TABLE_SIZE_MIN: usize = 4;
/// Empty buckets a single rehash step may visit before yielding (Redis's `empty_visits`).
const REHASH_EMPTY_VISITS_MAX: usize = 10;
/// Below this fill percentage a table shrinks (Redis's HASHTABLE_MIN_FILL).
const FILL_PERCENT_MIN: usize = 10;

pub type Hasher = ahash::RandomState;

struct Node<V> {
    next: Option<Box<Node<V>>>,
    key: CompactBytes,
    value: V,
}

struct Table<V> {
    buckets: Vec<Option<Box<Node<V>>>>,
    used: usize,
}

impl<V> Table<V> {
    fn empty() -> Table<V> {
        Table {
            buckets: Vec::new(),
            used: 0,
        }
    }

    fn with_size(size: usize) -> Table<V> {
        debug_assert!(size.is_power_of_two());
        let mut buckets = Vec::with_capacity(size);
        buckets.resize_with(size, || None);
        Table { buckets, used: 0 }
    }

    fn mask(&self) -> u64 {
        debug_assert!(!self.buckets.is_empty());
        self.buckets.len() as u64 - 1
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<&Node<V>> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut node = self.buckets[(hash & self.mask()) as usize].as_deref();
        while let Some(current) = node {
            if current.key.as_slice() == key {
                return Some(current);
            }
            node = current.next.as_deref();
        }
        None
    }

    fn find_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Node<V>> {
        if self.buckets.is_empty() {
            return None;
        }
        let index = (hash & self.mask()) as usize;
        let mut node = self.buckets[index].as_deref_mut();
        while let Some(current) = node {
            if current.key.as_slice() == key {
                return Some(current);
            }
            node = current.next.as_deref_mut();
        }
        None
    }

    fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Box<Node<V>>> {
        if self.buckets.is_empty() {
            return None;
        }
        let index = (hash & self.mask()) as usize;
        let mut link = &mut self.buckets[index];
        loop {
            match link {
                None => return None,
                Some(node) if node.key.as_slice() == key => {
                    let mut removed = link.take()?;
                    *link = removed.next.take();
                    self.used -= 1;
                    return Some(removed);
                }
                Some(node) => link = &mut node.next,
            }
        }
    }

    fn push(&mut self, hash: u64, mut node: Box<Node<V>>) -> &mut Node<V> {
        let index = (hash & self.mask()) as usize;
        node.next = self.buckets[index].take();
        self.used += 1;
        self.buckets[index].insert(node)
    }
}

/// A hash table from byte-string keys to `V`.
pub struct Dict<V> {
    tables: [Table<V>; 2],
    /// Next bucket of `tables[0]` to move while rehashing.
    rehash_index: Option<usize>,
    hasher: Hasher,
    /// Heap bytes of the stored keys (those too long to sit inline), for `index_bytes`.
    key_heap_bytes: usize,
}

impl<V> Dict<V> {
    pub fn new(hasher: Hasher) -> Dict<V> {
        Dict {
            tables: [Table::empty(), Table::empty()],
            rehash_index: None,
            hasher,
            key_heap_bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.tables[0].used + self.tables[1].used
    }

    /// An empty dict with the same hash function.
    pub fn empty_like(&self) -> Dict<V> {
        Dict::new(self.hasher.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buckets allocated, for memory accounting.
    pub fn bucket_count(&self) -> usize {
        self.tables[0].buckets.len() + self.tables[1].buckets.len()
    }

    /// What the table itself allocated: its nodes (each holding a key and a `V`), buckets and
    /// the keys' heap bytes; not what the values own beyond their inline part. O(1).
    pub fn index_bytes(&self) -> usize {
        self.len() * std::mem::size_of::<Node<V>>()
            + self.bucket_count() * std::mem::size_of::<Option<Box<Node<V>>>>()
            + self.key_heap_bytes
    }

    pub fn is_rehashing(&self) -> bool {
        self.rehash_index.is_some()
    }

    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_key_value(key).map(|(_, value)| value)
    }

    pub fn get_key_value(&self, key: &[u8]) -> Option<(&CompactBytes, &V)> {
        if self.is_empty() {
            return None;
        }
        let node = self.find(self.hash(key), key)?;
        Some((&node.key, &node.value))
    }

    /// Like `get`, with the hash already computed (dicts built from the same hasher share it).
    pub fn get_hashed(&self, hash: u64, key: &[u8]) -> Option<&V> {
        if self.is_empty() {
            return None;
        }
        self.find(hash, key).map(|node| &node.value)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.is_empty() {
            return None;
        }
        let hash = self.hash(key);
        self.get_mut_hashed(hash, key)
    }

    /// Like `get_mut`, with the hash already computed.
    pub fn get_mut_hashed(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        if self.is_empty() {
            return None;
        }
        // Split so that a hit in the first table can be returned while the second is still
        // borrowable: one walk of each chain at most.
        let [first, second] = &mut self.tables;
        if let Some(node) = first.find_mut(hash, key) {
            return Some(&mut node.value);
        }
        second.find_mut(hash, key).map(|node| &mut node.value)
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<&Node<V>> {
        self.tables[0]
            .find(hash, key)
            .or_else(|| self.tables[1].find(hash, key))
    }

    /// Inserts or replaces; returns the previous value. An existing key keeps its stored key.
    pub fn insert(&mut self, key: CompactBytes, value: V) -> Option<V> {
        let hash = self.hash(&key);
        if let Some(slot) = self.get_mut_hashed(hash, &key) {
            return Some(std::mem::replace(slot, value));
        }
        self.push_new(hash, key, value);
        None
    }

    /// Inserts a key known to be absent.
    pub fn insert_new(&mut self, key: CompactBytes, value: V) -> &mut V {
        let hash = self.hash(&key);
        self.insert_new_hashed(hash, key, value)
    }

    /// [`Dict::insert_new`] with the hash already computed (`get_mut_hashed` missed it).
    pub fn insert_new_hashed(&mut self, hash: u64, key: CompactBytes, value: V) -> &mut V {
        debug_assert!(!self.contains_key(&key));
        self.push_new(hash, key, value)
    }

    /// Inserts an absent key of hash `hash`: one rehash step, growth if due, then the node
    /// goes where new entries go.
    fn push_new(&mut self, hash: u64, key: CompactBytes, value: V) -> &mut V {
        self.rehash_step();
        self.expand_if_needed();
        let target = if self.is_rehashing() { 1 } else { 0 };
        self.key_heap_bytes += key.heap_bytes();
        let node = Box::new(Node {
            next: None,
            key,
            value,
        });
        &mut self.tables[target].push(hash, node).value
    }

    /// Inserts `key` unless present, hashing it once and probing each table once (a loader's
    /// insert: the key is new unless the input repeats one). `Err` hands back the key and
    /// value when it is present.
    pub fn insert_unique(
        &mut self,
        key: CompactBytes,
        value: V,
    ) -> Result<&mut V, (CompactBytes, V)> {
        let hash = self.hash(&key);
        self.insert_unique_hashed(hash, key, value)
    }

    /// [`Dict::insert_unique`] with the hash already computed (dicts built from the same
    /// hasher share it).
    pub fn insert_unique_hashed(
        &mut self,
        hash: u64,
        key: CompactBytes,
        value: V,
    ) -> Result<&mut V, (CompactBytes, V)> {
        debug_assert_eq!(hash, self.hash(&key), "the hash of this dict's hasher");
        if !self.is_empty() && self.find(hash, &key).is_some() {
            return Err((key, value));
        }
        Ok(self.push_new(hash, key, value))
    }

    /// Makes room for `additional` more entries without growing again (Redis's `dictExpand`
    /// with RESIZEDB's sizes, or a collection's count): an empty dict gets its table at once,
    /// a non-empty one starts an incremental resize. Does nothing while a rehash runs, or when
    /// the table already has room. The caller bounds `additional` (it allocates a bucket per
    /// entry).
    pub fn reserve(&mut self, additional: usize) {
        let wanted = self.len().saturating_add(additional);
        if self.is_rehashing() || wanted <= self.tables[0].buckets.len() {
            return;
        }
        let Some(size) = wanted.max(TABLE_SIZE_MIN).checked_next_power_of_two() else {
            return;
        };
        if self.is_empty() {
            self.tables[0] = Table::with_size(size);
        } else {
            self.start_resize(size);
        }
        debug_assert!(self.tables[0].buckets.len() >= wanted || self.is_rehashing());
    }

    /// The value for `key`, inserting `make()` first if absent.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> V) -> &mut V {
        if self.contains_key(key) {
            return self.get_mut(key).expect("checked just above");
        }
        self.insert_new(CompactBytes::new(key), make())
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<(CompactBytes, V)> {
        if self.is_empty() {
            return None;
        }
        self.rehash_step();
        let hash = self.hash(key);
        let node = match self.tables[0].remove(hash, key) {
            Some(node) => node,
            None => self.tables[1].remove(hash, key)?,
        };
        self.shrink_if_needed();
        let Node { key, value, .. } = *node;
        self.key_heap_bytes -= key.heap_bytes();
        Some((key, value))
    }

    /// Removes everything, releasing the buckets.
    pub fn clear(&mut self) {
        // Dropping chains iteratively keeps the stack flat whatever a chain's length.
        for table in &mut self.tables {
            for bucket in &mut table.buckets {
                let mut node = bucket.take();
                while let Some(mut current) = node {
                    node = current.next.take();
                }
            }
        }
        self.tables = [Table::empty(), Table::empty()];
        self.rehash_index = None;
        self.key_heap_bytes = 0;
    }

    /// Calls `visit` on every entry; the order is the table's.
    pub fn for_each(&self, mut visit: impl FnMut(&CompactBytes, &V)) {
        for table in &self.tables {
            for bucket in &table.buckets {
                let mut node = bucket.as_deref();
                while let Some(current) = node {
                    visit(&current.key, &current.value);
                    node = current.next.as_deref();
                }
            }
        }
    }

    /// Calls `visit` on every entry with mutable access to the value.
    pub fn for_each_mut(&mut self, mut visit: impl FnMut(&CompactBytes, &mut V)) {
        for table in &mut self.tables {
            for bucket in &mut table.buckets {
                let mut node = bucket.as_deref_mut();
                while let Some(current) = node {
                    visit(&current.key, &mut current.value);
                    node = current.next.as_deref_mut();
                }
            }
        }
    }

    /// Removes every entry for which `keep` returns false; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&CompactBytes, &mut V) -> bool) -> usize {
        let mut doomed = Vec::new();
        self.for_each_mut(|key, value| {
            if !keep(key, value) {
                doomed.push(key.clone());
            }
        });
        for key in &doomed {
            self.remove(key);
        }
        doomed.len()
    }

    /// One step of Redis's `dictScan`: visits the buckets at `cursor` and returns the next
    /// cursor, 0 when the walk is complete. An entry present from the first to the last call is
    /// visited at least once, whatever resizes happen in between.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&CompactBytes, &V)) -> u64 {
        let (buckets, next) = self.scan_step(cursor);
        for (table, index) in buckets {
            let mut node = self.tables[table].buckets[index].as_deref();
            while let Some(current) = node {
                visit(&current.key, &current.value);
                node = current.next.as_deref();
            }
        }
        next
    }

    /// [`Dict::scan`] with mutable values (the snapshot marks what it saved).
    pub fn scan_mut(&mut self, cursor: u64, mut visit: impl FnMut(&CompactBytes, &mut V)) -> u64 {
        let (buckets, next) = self.scan_step(cursor);
        // The reverse-binary cursor lands on a cold cache line at every step, and reading the
        // first entry's flags was three quarters of a snapshot step's own time (a SAVE):
        // the next step's first entry is on its way while this one's are visited.
        if next != 0 {
            self.prefetch_bucket(next);
        }
        for (table, index) in buckets {
            let mut node = self.tables[table].buckets[index].as_deref_mut();
            while let Some(current) = node {
                visit(&current.key, &mut current.value);
                node = current.next.as_deref_mut();
            }
        }
        next
    }

    /// Visits the entries of up to `buckets` buckets from `position` in memory order (the live
    /// table's buckets, then the new table's while rehashing, end to end) until `visit`
    /// returns false; the next position, 0 after the last bucket. A clock hand for sweeps that
    /// need no SCAN guarantee: walking the bucket array in order lets the CPU prefetch it,
    /// where SCAN's reverse-binary cursor lands on a new cache line at every step.
    pub fn sweep_mut(
        &mut self,
        position: usize,
        buckets: usize,
        mut visit: impl FnMut(&CompactBytes, &mut V) -> bool,
    ) -> usize {
        let first = self.tables[0].buckets.len();
        let total = first + self.tables[1].buckets.len();
        // While rehashing, the live table's buckets below the rehash index are empty.
        let moved = self.rehash_index.unwrap_or(0).min(first);
        let mut position = if position < total { position } else { 0 };
        for _ in 0..buckets {
            if position < moved {
                position = moved;
            }
            if position >= total {
                return 0;
            }
            let (table, index) = if position < first {
                (0, position)
            } else {
                (1, position - first)
            };
            position += 1;
            let mut node = self.tables[table].buckets[index].as_deref_mut();
            while let Some(current) = node {
                if !visit(&current.key, &mut current.value) {
                    return position;
                }
                node = current.next.as_deref_mut();
            }
        }
        if position >= total {
            0
        } else {
            position
        }
    }

    /// Asks the CPU to fetch the bucket slot `hash` falls in: the first of the two dependent
    /// loads of a lookup, started early for several keys at once (`prefetch_node` is the
    /// second). Not while rehashing (the key may be in either table, and it is brief).
    pub fn prefetch_slot(&self, hash: u64) {
        if self.is_rehashing() || self.is_empty() {
            return;
        }
        let table = &self.tables[0];
        if let Some(slot) = table.buckets.get((hash & table.mask()) as usize) {
            prefetch(slot);
        }
    }

    /// Asks the CPU to fetch the first node of `hash`'s bucket (its slot read, best after
    /// `prefetch_slot` had time to bring it in).
    pub fn prefetch_node(&self, hash: u64) {
        if self.is_rehashing() || self.is_empty() {
            return;
        }
        let table = &self.tables[0];
        if let Some(node) = table
            .buckets
            .get((hash & table.mask()) as usize)
            .and_then(|head| head.as_deref())
        {
            prefetch(node);
        }
    }

    /// Asks the CPU to fetch the first entry of `cursor`'s bucket (not while rehashing: then a
    /// step spans several buckets, and it is brief).
    fn prefetch_bucket(&self, cursor: u64) {
        if self.is_rehashing() {
            return;
        }
        let table = &self.tables[0];
        let index = (cursor & table.mask()) as usize;
        if let Some(node) = table.buckets.get(index).and_then(|head| head.as_deref()) {
            prefetch(node);
        }
    }

    /// The `(table, bucket)` pairs one SCAN step visits from `cursor`, and the next cursor:
    /// Redis's reverse-binary cursor, which visits every bucket of the smaller table and then
    /// each bucket of the larger table that expands it, so a key present for the whole scan
    /// is returned at least once across resizes.
    fn scan_step(&self, cursor: u64) -> (SmallVec<[(usize, usize); 4]>, u64) {
        let mut buckets = SmallVec::new();
        if self.is_empty() {
            return (buckets, 0);
        }
        let mut v = cursor;
        if !self.is_rehashing() {
            let mask = self.tables[0].mask();
            buckets.push((0, (v & mask) as usize));
            v |= !mask;
            v = v.reverse_bits().wrapping_add(1).reverse_bits();
        } else {
            let (small, large) = if self.tables[0].buckets.len() <= self.tables[1].buckets.len() {
                (0, 1)
            } else {
                (1, 0)
            };
            let (mask_small, mask_large) = (self.tables[small].mask(), self.tables[large].mask());
            buckets.push((small, (v & mask_small) as usize));
            // Then every bucket of the larger table that expands the smaller one's bucket.
            loop {
                buckets.push((large, (v & mask_large) as usize));
                v |= !mask_large;
                v = v.reverse_bits().wrapping_add(1).reverse_bits();
                if v & (mask_small ^ mask_large) == 0 {
                    break;
                }
            }
        }
        (buckets, v)
    }

    /// A random entry, near-uniform (a random bucket, then a random element of its chain).
    pub fn random(&self, rng: &mut impl rand::Rng) -> Option<(&CompactBytes, &V)> {
        if self.is_empty() {
            return None;
        }
        // Bounded: with load >= 10% the expected number of tries is small; after the bound a
        // linear walk from a random start always finds something since len() > 0.
        const TRIES_MAX: usize = 100;
        let total = self.tables[0].buckets.len() + self.tables[1].buckets.len();
        let bucket_at = |index: usize| {
            if index < self.tables[0].buckets.len() {
                self.tables[0].buckets[index].as_deref()
            } else {
                self.tables[1].buckets[index - self.tables[0].buckets.len()].as_deref()
            }
        };
        let mut head = None;
        for _ in 0..TRIES_MAX {
            if let Some(node) = bucket_at(rng.gen_range(0..total)) {
                head = Some(node);
                break;
            }
        }
        if head.is_none() {
            let start = rng.gen_range(0..total);
            head = (0..total).find_map(|offset| bucket_at((start + offset) % total));
        }
        let head = head?;
        let mut chain_len = 0;
        let mut node = Some(head);
        while let Some(current) = node {
            chain_len += 1;
            node = current.next.as_deref();
        }
        let mut pick = head;
        for _ in 0..rng.gen_range(0..chain_len) {
            pick = pick.next.as_deref()?;
        }
        Some((&pick.key, &pick.value))
    }

    /// Performs up to `steps` rehash steps; returns true while rehashing remains.
    pub fn rehash(&mut self, steps: usize) -> bool {
        for _ in 0..steps {
            if !self.rehash_step() {
                return false;
            }
        }
        self.is_rehashing()
    }

    /// Background upkeep (the cron's `tryResizeHashTables` + `incrementallyRehash`): starts a
    /// shrink when the table is mostly empty, then rehashes up to `steps` buckets.
    pub fn maintain(&mut self, steps: usize) {
        self.shrink_if_needed();
        self.rehash(steps);
    }

    /// Moves one bucket from `tables[0]` to `tables[1]`; false when no rehash is in progress.
    fn rehash_step(&mut self) -> bool {
        let Some(mut index) = self.rehash_index else {
            return false;
        };
        let mut empty_visits = 0;
        while index < self.tables[0].buckets.len() && self.tables[0].buckets[index].is_none() {
            index += 1;
            empty_visits += 1;
            if empty_visits >= REHASH_EMPTY_VISITS_MAX {
                self.rehash_index = Some(index);
                return true;
            }
        }
        if index < self.tables[0].buckets.len() {
            let mut node = self.tables[0].buckets[index].take();
            while let Some(mut current) = node {
                node = current.next.take();
                self.tables[0].used -= 1;
                let hash = self.hasher.hash_one(current.key.as_slice());
                self.tables[1].push(hash, current);
            }
            index += 1;
        }
        if self.tables[0].used == 0 {
            debug_assert!(self.tables[0].buckets.iter().all(Option::is_none));
            self.tables.swap(0, 1);
            self.tables[1] = Table::empty();
            self.rehash_index = None;
            return false;
        }
        self.rehash_index = Some(index);
        true
    }

    fn expand_if_needed(&mut self) {
        if self.is_rehashing() {
            return;
        }
        let size = self.tables[0].buckets.len();
        if size == 0 {
            self.tables[0] = Table::with_size(TABLE_SIZE_MIN);
        } else if self.tables[0].used >= size {
            self.start_resize((self.tables[0].used + 1).next_power_of_two());
        }
    }

    fn shrink_if_needed(&mut self) {
        if self.is_rehashing() {
            return;
        }
        let size = self.tables[0].buckets.len();
        let used = self.tables[0].used;
        if size > TABLE_SIZE_MIN && used * 100 / size < FILL_PERCENT_MIN {
            if used == 0 {
                self.tables[0] = Table::empty();
                return;
            }
            self.start_resize(used.next_power_of_two().max(TABLE_SIZE_MIN));
        }
    }

    fn start_resize(&mut self, size: usize) {
        debug_assert!(!self.is_rehashing());
        if size == self.tables[0].buckets.len() {
            return;
        }
        self.tables[1] = Table::with_size(size);
        self.rehash_index = Some(0);
    }
}

/// The hasher for collections' dicts (hash fields, set members): seeded from the keyspace's
/// seed, so the simulator's runs (and their SCAN orders) repeat. A dict keeps the hasher it
/// was made with.
pub fn collection_hasher() -> Hasher {
    SEEDED_HERE
        .with(|seeded| seeded.borrow().clone())
        .unwrap_or_else(|| {
            COLLECTION_HASHER
                .get_or_init(|| Hasher::with_seeds(0x5eed, 1, 2, 3))
                .clone()
        })
}

/// Seeds [`collection_hasher`] (the keyspace calls it as it is made): for this thread, and
/// for the process if it is the first. The thread that made a keyspace uses that keyspace's
/// seed, so the simulator's seeds, each run on one thread, get their own collection order
/// even after other seeds ran in the process (with the first call winning everywhere, a
/// failing seed passed when replayed alone); the server's runtime threads use the first.
pub fn seed_collection_hasher(seed: u64) {
    let hasher = Hasher::with_seeds(seed ^ 0xc011, seed.rotate_left(7), 5, 9);
    SEEDED_HERE.with(|seeded| *seeded.borrow_mut() = Some(hasher.clone()));
    let _ = COLLECTION_HASHER.set(hasher);
}

static COLLECTION_HASHER: std::sync::OnceLock<Hasher> = std::sync::OnceLock::new();

thread_local! {
    static SEEDED_HERE: std::cell::RefCell<Option<Hasher>> = const { std::cell::RefCell::new(None) };
}

impl<V: Clone> Clone for Dict<V> {
    fn clone(&self) -> Dict<V> {
        let mut copy = Dict::new(self.hasher.clone());
        self.for_each(|key, value| {
            copy.insert_new(key.clone(), value.clone());
        });
        copy
    }
}

impl<V: PartialEq> PartialEq for Dict<V> {
    /// Equal when both hold the same keys with equal values, whatever the table layout.
    fn eq(&self, other: &Dict<V>) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut equal = true;
        self.for_each(|key, value| {
            if equal && other.get(key) != Some(value) {
                equal = false;
            }
        });
        equal
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Dict<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        self.for_each(|key, value| {
            map.entry(key, value);
        });
        map.finish()
    }
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A hint that `value` is about to be read: the CPU starts fetching its cache line.
#[inline]
#[allow(unsafe_code)]
fn prefetch<T>(value: &T) {
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is only a hint: it reads
    // nothing into the program and never faults (here the address is a live reference anyway).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};
    use std::collections::{BTreeMap, HashSet};

    fn hasher() -> Hasher {
        Hasher::with_seeds(1, 2, 3, 4)
    }

    #[test]
    fn matches_a_btreemap_under_random_operations() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut dict = Dict::new(hasher());
        let mut model = BTreeMap::new();
        for _ in 0..50_000 {
            let key = format!("k{}", rand::Rng::gen_range(&mut rng, 0..2000)).into_bytes();
            match rand::Rng::gen_range(&mut rng, 0..3) {
                0 | 1 => {
                    let value = rand::Rng::gen::<u32>(&mut rng);
                    assert_eq!(
                        dict.insert(CompactBytes::new(&key), value),
                        model.insert(key, value)
                    );
                }
                _ => assert_eq!(dict.remove(&key).map(|(_, v)| v), model.remove(&key)),
            }
            assert_eq!(dict.len(), model.len());
        }
        for (key, value) in &model {
            assert_eq!(dict.get(key), Some(value));
        }
    }

    #[test]
    fn a_sweep_revolution_visits_every_entry_once_even_while_rehashing() {
        let mut dict = Dict::new(hasher());
        for i in 0..5000u32 {
            dict.insert(CompactBytes::new(format!("k{i}").as_bytes()), i);
        }
        for extra in [0u32, 1] {
            // The second round starts a resize and stops it midway.
            if extra == 1 {
                let mut i = 5000u32;
                while !dict.is_rehashing() {
                    dict.insert(CompactBytes::new(format!("k{i}").as_bytes()), i);
                    i += 1;
                }
                dict.rehash(100);
                assert!(dict.is_rehashing());
            }
            let mut seen = HashSet::new();
            let mut position = 0;
            loop {
                position = dict.sweep_mut(position, 7, |key, _| {
                    assert!(seen.insert(key.as_slice().to_vec()), "visited twice");
                    true
                });
                if position == 0 {
                    break;
                }
            }
            assert_eq!(seen.len(), dict.len());
        }
    }

    #[test]
    fn scan_returns_every_stable_key_across_resizes() {
        let mut dict = Dict::new(hasher());
        for i in 0..1000 {
            dict.insert(CompactBytes::new(format!("stable{i}").as_bytes()), ());
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = dict.scan(cursor, |key, _| {
                seen.insert(key.to_vec());
            });
            // Grow, then shrink, while the scan is under way.
            round += 1;
            if round < 20 {
                for i in 0..200 {
                    dict.insert(CompactBytes::new(format!("t{round}-{i}").as_bytes()), ());
                }
            } else if round < 40 {
                for i in 0..200 {
                    dict.remove(format!("t{}-{i}", round - 20).as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            assert!(
                seen.contains(format!("stable{i}").as_bytes()),
                "missed stable{i}"
            );
        }
    }

    #[test]
    fn a_reserved_dict_takes_its_entries_without_rehashing() {
        let mut dict = Dict::new(hasher());
        dict.reserve(1000);
        assert_eq!(dict.bucket_count(), 1024);
        for i in 0..1000u32 {
            let key = CompactBytes::new(format!("k{i}").as_bytes());
            assert!(dict.insert_unique(key, i).is_ok());
            assert!(!dict.is_rehashing());
        }
        assert_eq!(dict.bucket_count(), 1024);
        let repeated = dict.insert_unique(CompactBytes::new(b"k7"), 0);
        assert!(matches!(repeated, Err((key, 0)) if key.as_slice() == b"k7"));
        assert_eq!(dict.get(b"k7"), Some(&7));
        assert_eq!(dict.len(), 1000);
        // Room already there: nothing changes; more than there is: an incremental resize.
        dict.reserve(24);
        assert!(!dict.is_rehashing());
        dict.reserve(2000);
        assert!(dict.is_rehashing());
        dict.rehash(100_000);
        assert_eq!(dict.bucket_count(), 4096);
        for i in 0..1000u32 {
            assert_eq!(dict.get(format!("k{i}").as_bytes()), Some(&i));
        }
    }

    #[test]
    fn insert_unique_refuses_a_present_key_while_rehashing() {
        let mut dict = Dict::new(hasher());
        let mut i = 0u32;
        while !dict.is_rehashing() {
            dict.insert(CompactBytes::new(format!("k{i}").as_bytes()), i);
            i += 1;
        }
        for j in 0..i {
            let key = CompactBytes::new(format!("k{j}").as_bytes());
            assert!(dict.insert_unique(key, 0).is_err(), "k{j} is present");
        }
        assert!(dict.insert_unique(CompactBytes::new(b"new"), 0).is_ok());
        assert_eq!(dict.len(), i as usize + 1);
    }

    #[test]
    fn prefetching_is_a_hint_in_every_state_of_the_table() {
        let mut dict = Dict::new(hasher());
        // Empty (no buckets at all), filling, rehashing, and after: lookups stay exact.
        for key in [&b"absent"[..], b"k0"] {
            dict.prefetch_slot(dict.hash(key));
            dict.prefetch_node(dict.hash(key));
        }
        let mut i = 0u32;
        while !dict.is_rehashing() {
            dict.insert(CompactBytes::new(format!("k{i}").as_bytes()), i);
            i += 1;
        }
        for j in 0..=i {
            let key = format!("k{j}");
            dict.prefetch_slot(dict.hash(key.as_bytes()));
            dict.prefetch_node(dict.hash(key.as_bytes()));
            assert_eq!(dict.get(key.as_bytes()), (j < i).then_some(&j));
        }
        dict.maintain(1_000_000);
        assert!(!dict.is_rehashing());
        for j in 0..i {
            let key = format!("k{j}");
            dict.prefetch_slot(dict.hash(key.as_bytes()));
            dict.prefetch_node(dict.hash(key.as_bytes()));
            assert_eq!(dict.get(key.as_bytes()), Some(&j));
        }
    }

    #[test]
    fn random_finds_entries_and_shrinks() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut dict = Dict::new(hasher());
        for i in 0..10_000u32 {
            dict.insert(CompactBytes::new(&i.to_be_bytes()), i);
        }
        for i in 0..9_990u32 {
            dict.remove(&i.to_be_bytes());
        }
        for _ in 0..10 {
            dict.maintain(100_000);
        }
        assert!(dict.bucket_count() <= 64, "buckets {}", dict.bucket_count());
        for _ in 0..100 {
            let (_, value) = dict.random(&mut rng).unwrap();
            assert!(*value >= 9_990);
        }
    }
}
