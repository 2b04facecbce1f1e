//! The live entries of one stream node, packed contiguously as Redis packs a node's entries
//! into its listpack.
//!
//! A block holds its entries' IDs in one vector (fixed width, so a lookup is a binary search
//! and an iterator can hand out `&StreamId`), where each entry's packed strings end in a
//! second, and the packed strings themselves (see `super::pack`) one after another in a
//! third. Appending an entry extends the three vectors of the tail block: no allocation of
//! its own and no tree insert, as XADD appends to Redis's tail listpack. A block that stops
//! being the tail is shrunk to its size (`seal`), so a stream keeps no growth slack beyond
//! its tail's.
//!
//! Invariants (`Block::check`): the IDs ascend; there is one end per ID, the ends do not
//! descend, the last is the packed length, and the packed length stays below
//! `PACKED_BYTES_MAX` (ends are `u32`); every entry's bytes start with its kind.

use super::StreamId;

/// The most packed bytes one block holds: its ends are 32-bit. XADD opens a new node before
/// a block would pass it (see `Stream::append`), which Redis's 1 GiB listpack limit makes
/// happen only for entries made almost entirely of short integers.
pub(super) const PACKED_BYTES_MAX: usize = u32::MAX as usize;

/// The live entries of one node, in ID (and listpack) order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Block {
    /// The entries' IDs, ascending.
    ids: Vec<StreamId>,
    /// Where entry `i`'s bytes end in `packed`; they start where entry `i - 1`'s end (0 for
    /// the first).
    ends: Vec<u32>,
    /// The entries' packed strings, a kind byte first (see `super::pack`).
    packed: Vec<u8>,
}

impl Block {
    pub(super) const EMPTY: Block = Block {
        ids: Vec::new(),
        ends: Vec::new(),
        packed: Vec::new(),
    };

    /// An empty block with room for `entries` entries of `entry_bytes` packed bytes each.
    pub(super) fn with_capacity(entries: usize, entry_bytes: usize) -> Block {
        Block {
            ids: Vec::with_capacity(entries),
            ends: Vec::with_capacity(entries),
            packed: Vec::with_capacity(entries.saturating_mul(entry_bytes)),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn ids(&self) -> &[StreamId] {
        &self.ids
    }

    pub(super) fn packed_len(&self) -> usize {
        self.packed.len()
    }

    /// The packed strings of entry `index`.
    pub(super) fn packed(&self, index: usize) -> &[u8] {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] as usize,
        };
        &self.packed[start..self.ends[index] as usize]
    }

    /// The index of `id`, or where it would go.
    pub(super) fn search(&self, id: StreamId) -> Result<usize, usize> {
        self.ids.binary_search(&id)
    }

    /// How many entries have IDs below `id`.
    pub(super) fn count_below(&self, id: StreamId) -> usize {
        self.ids.partition_point(|entry| *entry < id)
    }

    /// How many entries have IDs at or below `id`.
    pub(super) fn count_to(&self, id: StreamId) -> usize {
        self.ids.partition_point(|entry| *entry <= id)
    }

    /// Appends an entry above every one held, its packed strings written by `write` (which
    /// must write at least the kind byte).
    pub(super) fn push_with(&mut self, id: StreamId, write: impl FnOnce(&mut Vec<u8>)) {
        assert!(
            self.ids.last().is_none_or(|last| *last < id),
            "block IDs ascend"
        );
        let start = self.packed.len();
        write(&mut self.packed);
        assert!(self.packed.len() > start, "an entry has its kind byte");
        let end = u32::try_from(self.packed.len()).expect("a block's packed bytes fit its ends");
        self.ids.push(id);
        self.ends.push(end);
    }

    /// Appends an entry whose strings are already packed.
    pub(super) fn push(&mut self, id: StreamId, packed: &[u8]) {
        self.push_with(id, |out| out.extend_from_slice(packed));
    }

    /// Removes entry `index`; its ID and packed strings.
    pub(super) fn remove(&mut self, index: usize) -> (StreamId, Box<[u8]>) {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] as usize,
        };
        let end = self.ends[index] as usize;
        let packed: Box<[u8]> = self.packed.drain(start..end).collect();
        let removed = (end - start) as u32;
        self.ends.remove(index);
        for later in &mut self.ends[index..] {
            *later -= removed;
        }
        let id = self.ids.remove(index);
        debug_assert_eq!(
            self.ends.last().map_or(0, |end| *end as usize),
            self.packed.len()
        );
        (id, packed)
    }

    /// Removes the first `count` entries (at most all); their IDs and packed strings.
    pub(super) fn remove_first(&mut self, count: usize) -> Vec<(StreamId, Box<[u8]>)> {
        let count = count.min(self.len());
        let mut removed = Vec::with_capacity(count);
        for index in 0..count {
            removed.push((self.ids[index], Box::from(self.packed(index))));
        }
        let cut = match count {
            0 => 0,
            _ => self.ends[count - 1],
        };
        self.ids.drain(..count);
        self.ends.drain(..count);
        self.packed.drain(..cut as usize);
        for end in &mut self.ends {
            *end -= cut;
        }
        removed
    }

    /// Drops the growth slack, once the block is no longer the tail.
    pub(super) fn seal(&mut self) {
        self.ids.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.packed.shrink_to_fit();
    }

    /// The bytes the block's three vectors hold (allocated, not only used).
    pub(super) fn heap_bytes(&self) -> usize {
        self.ids.capacity() * std::mem::size_of::<StreamId>()
            + self.ends.capacity() * std::mem::size_of::<u32>()
            + self.packed.capacity()
    }

    /// Checks the invariants (tests and debug builds).
    pub(super) fn check(&self) {
        assert!(
            self.ids.windows(2).all(|pair| pair[0] < pair[1]),
            "block IDs ascend"
        );
        assert_eq!(self.ids.len(), self.ends.len(), "one end per entry");
        assert!(
            self.ends.windows(2).all(|pair| pair[0] < pair[1]),
            "every entry has bytes"
        );
        assert_eq!(
            self.ends.last().map_or(0, |end| *end as usize),
            self.packed.len(),
            "the last end is the packed length"
        );
        assert!(self.packed.len() <= PACKED_BYTES_MAX);
        for index in 0..self.len() {
            assert!(!self.packed(index).is_empty(), "an entry has its kind byte");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(entries: &[(u64, &[u8])]) -> Block {
        let mut block = Block::default();
        for (ms, packed) in entries {
            block.push(StreamId::new(*ms, 0), packed);
        }
        block.check();
        block
    }

    #[test]
    fn removes_from_the_middle_and_the_front() {
        let mut block = block(&[
            (1, b"\x00a"),
            (2, b"\x01bb"),
            (3, b"\x00ccc"),
            (4, b"\x01d"),
        ]);
        assert_eq!(block.search(StreamId::new(3, 0)), Ok(2));
        assert_eq!(block.count_below(StreamId::new(3, 0)), 2);
        assert_eq!(block.count_to(StreamId::new(3, 0)), 3);
        let (id, packed) = block.remove(1);
        assert_eq!((id.ms, &packed[..]), (2, &b"\x01bb"[..]));
        block.check();
        assert_eq!(block.packed(1), b"\x00ccc");
        let removed = block.remove_first(2);
        assert_eq!(removed.len(), 2);
        assert_eq!(&removed[1].1[..], b"\x00ccc");
        block.check();
        assert_eq!(block.ids(), &[StreamId::new(4, 0)]);
        assert_eq!(block.packed(0), b"\x01d");
        block.seal();
        block.check();
        assert_eq!(block.remove_first(5).len(), 1);
        assert_eq!(block.len(), 0);
        block.check();
    }

    #[test]
    #[should_panic(expected = "block IDs ascend")]
    fn refuses_an_id_out_of_order() {
        let mut block = block(&[(2, b"\x00")]);
        block.push(StreamId::new(1, 0), b"\x00");
    }
}
