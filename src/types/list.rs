//! Lists: an ordered sequence of byte strings, packed into chunks, with O(1)-per-chunk push
//! and pop at both ends.
//!
//! Redis 7.0 keeps every list in a quicklist: a linked list of listpacks of at most 8 KB each
//! (`list-max-listpack-size -2`), and OBJECT ENCODING always says `quicklist`. Strata keeps
//! the same shape with Rust types: a `VecDeque` of chunks, each chunk one contiguous byte
//! buffer holding its elements back to back plus a `u32` end offset per element. A small
//! element then costs its bytes plus 4, where a slot per element (`VecDeque<CompactBytes>`)
//! would cost 24 plus spare capacity. A chunk may keep spare room before its first element:
//! a chunk opened by a push at the head is filled from its end backwards, and a pop from the
//! head leaves its bytes as room, so LPUSH and LPOP copy one element and shift no bytes
//! (where inserting at a listpack's head moves the whole listpack in Redis). Other inserts
//! move at most one chunk's bytes (bounded by `CHUNK_BYTES_MAX`); reaching an index walks
//! the chunk counts from the nearer end, O(n / CHUNK_ELEMENTS_MAX).
//!
//! Indexes follow Redis's conventions: a negative index counts from the tail (-1 is the last
//! element). The operations here are pure: the keyspace rules (delete the key when the list
//! becomes empty, signal the modification) belong to the command family.
//!
//! Invariants (checked by `check`, in debug builds after every mutation):
//! - no chunk is empty, and `len` is the sum of the chunks' element counts;
//! - a chunk's `ends` rise monotonically from its spare room (`front`) and the last one is its
//!   data length;
//! - a chunk holds at most `CHUNK_ELEMENTS_MAX` elements, and more than one element only while
//!   its bytes fit `CHUNK_BYTES_MAX` (one larger element gets a chunk of its own, like Redis's
//!   plain nodes).

use super::CompactBytes;
use std::collections::VecDeque;

/// Bytes of element data a chunk may hold (Redis's default listpack limit is 8 KB; half that
/// halves the bytes an insert inside a chunk moves).
#[cfg(not(test))]
const CHUNK_BYTES_MAX: usize = 4096;
/// Elements a chunk may hold, which bounds the offset work of a push at the head.
#[cfg(not(test))]
const CHUNK_ELEMENTS_MAX: usize = 256;
/// Tiny chunks under test, so short random operation sequences cross chunk boundaries.
#[cfg(test)]
const CHUNK_BYTES_MAX: usize = 12;
#[cfg(test)]
const CHUNK_ELEMENTS_MAX: usize = 4;

const _: () = assert!(CHUNK_ELEMENTS_MAX >= 2 && CHUNK_BYTES_MAX >= 2);
/// Offsets reserved in a full-size chunk: room for elements of 64 bytes (more grow the Vec).
const ENDS_PREALLOCATED: usize = CHUNK_BYTES_MAX / 64 + 1;
const _: () = assert!(CHUNK_BYTES_MAX <= u32::MAX as usize);

/// Which end of a list an operation works on (Redis's LIST_HEAD / LIST_TAIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head: LPUSH, LPOP, LEFT.
    Left,
    /// The tail: RPUSH, RPOP, RIGHT.
    Right,
}

/// A run of elements stored back to back after `front` spare bytes: element `i` is
/// `data[start(i)..ends[i]]`, where `start(0)` is `front` and `start(i)` is `ends[i - 1]`.
/// Offsets count from the buffer's start, spare bytes included, so a push into the spare
/// room at the head or a pop from the head moves no element bytes and changes no offset.
#[derive(Debug, Clone, Default)]
struct Chunk {
    data: Vec<u8>,
    /// Spare bytes before the first element: where LPUSH writes, and what LPOP leaves.
    front: u32,
    ends: Vec<u32>,
}

impl Chunk {
    fn single(element: &[u8]) -> Chunk {
        let mut chunk = Chunk::default();
        chunk.push_back(element);
        chunk
    }

    /// A chunk holding `element`, with room for a full chunk when `full_size`; the room is
    /// before the element for a chunk that grows at the head (`at` is `End::Left`).
    fn starting(element: &[u8], full_size: bool, at: End) -> Chunk {
        if !full_size || element.len() > CHUNK_BYTES_MAX {
            return Chunk::single(element);
        }
        let mut chunk = Chunk {
            data: Vec::with_capacity(CHUNK_BYTES_MAX),
            front: 0,
            ends: Vec::with_capacity(ENDS_PREALLOCATED),
        };
        if at == End::Left {
            let front = CHUNK_BYTES_MAX - element.len();
            chunk.data.resize(front, 0);
            chunk.front = offset(front);
        }
        chunk.push_back(element);
        chunk
    }

    fn count(&self) -> usize {
        self.ends.len()
    }

    /// Bytes of element data, spare room excluded.
    fn bytes(&self) -> usize {
        self.data.len() - self.front as usize
    }

    fn start(&self, index: usize) -> usize {
        if index == 0 {
            self.front as usize
        } else {
            self.ends[index - 1] as usize
        }
    }

    fn get(&self, index: usize) -> &[u8] {
        &self.data[self.start(index)..self.ends[index] as usize]
    }

    /// True when `extra` more bytes (one more element) may join this chunk.
    fn has_room(&self, extra: usize) -> bool {
        self.count() < CHUNK_ELEMENTS_MAX && self.bytes() + extra <= CHUNK_BYTES_MAX
    }

    fn push_back(&mut self, element: &[u8]) {
        // Spare room at the head is given up rather than letting the buffer grow past it.
        if self.front > 0 && self.data.len() + element.len() > self.data.capacity() {
            self.close_front();
        }
        // Offsets are computed before any change, so a refused size leaves the chunk whole.
        let end = offset(self.data.len() + element.len());
        self.data.extend_from_slice(element);
        self.ends.push(end);
    }

    /// Moves the elements down to the buffer's start, so no spare room is left at the head.
    fn close_front(&mut self) {
        let front = self.front as usize;
        self.data.copy_within(front.., 0);
        self.data.truncate(self.data.len() - front);
        for end in &mut self.ends {
            *end -= self.front;
        }
        self.front = 0;
    }

    /// Inserts at `index` (0..=count), shifting the later elements' bytes and offsets.
    fn insert(&mut self, index: usize, element: &[u8]) {
        debug_assert!(index <= self.count());
        if index == 0 && element.len() <= self.front as usize {
            // The hot path of LPUSH: the element goes into the spare room at the head.
            let at = self.front as usize - element.len();
            self.data[at..at + element.len()].copy_from_slice(element);
            self.ends.insert(0, self.front);
            self.front = offset(at);
            return;
        }
        if self.front > 0 && self.data.len() + element.len() > self.data.capacity() {
            self.close_front();
        }
        let at = self.start(index);
        let _total = offset(self.data.len() + element.len()); // the last offset after the insert
        let (shift, new_end) = (offset(element.len()), offset(at + element.len()));
        // Grow, move the tail up with one memmove, then copy the element in: `splice` with an
        // iterator moves byte by byte.
        let old_len = self.data.len();
        self.data.resize(old_len + element.len(), 0);
        self.data.copy_within(at..old_len, at + element.len());
        self.data[at..at + element.len()].copy_from_slice(element);
        for end in &mut self.ends[index..] {
            *end += shift;
        }
        self.ends.insert(index, new_end);
    }

    /// Replaces element `index`, shifting the later offsets by the size difference.
    fn replace(&mut self, index: usize, element: &[u8]) {
        let (start, end) = (self.start(index), self.ends[index] as usize);
        let _total = offset(self.data.len() - (end - start) + element.len()); // the last offset after
        self.data.splice(start..end, element.iter().copied());
        let new_end = start + element.len();
        let shift = new_end as i64 - end as i64;
        for end in &mut self.ends[index..] {
            *end = offset((*end as i64 + shift) as usize);
        }
    }

    /// Removes the first `count` elements: their bytes become spare room at the head.
    fn drop_front(&mut self, count: usize) {
        debug_assert!(count <= self.count());
        self.front = offset(self.start(count));
        self.ends.drain(..count);
    }

    /// Removes the last `count` elements.
    fn drop_back(&mut self, count: usize) {
        debug_assert!(count <= self.count());
        let keep = self.count() - count;
        self.data.truncate(self.start(keep));
        self.ends.truncate(keep);
    }

    /// Splits off the elements from `index` on into a new chunk.
    fn split_off(&mut self, index: usize) -> Chunk {
        let cut = self.start(index);
        let data = self.data.split_off(cut);
        let ends = self
            .ends
            .split_off(index)
            .into_iter()
            .map(|end| end - offset(cut))
            .collect();
        Chunk {
            data,
            front: 0,
            ends,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.data.capacity() + self.ends.capacity() * std::mem::size_of::<u32>()
    }
}

/// A chunk offset. Chunk data only exceeds `CHUNK_BYTES_MAX` by holding one element, and
/// elements are bounded by proto-max-bulk-len (512 MB by default), so this only fails for an
/// element of 4 GB or more under a raised limit. Every mutation computes its offsets before
/// changing anything, so that panic (which the executor turns into an error reply) leaves the
/// list intact.
fn offset(bytes: usize) -> u32 {
    u32::try_from(bytes).expect("a list element over 4 GB")
}

#[derive(Clone, Default)]
pub struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl std::fmt::Debug for List {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

/// Two lists are equal when they hold the same elements, however they are chunked.
impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Redis 7.0 reports every list as a quicklist.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Every chunk's buffers plus the deque's chunk slots.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self.chunks.iter().map(Chunk::heap_bytes).sum::<usize>()
    }

    /// The invariants in the module comment; debug builds check them after every mutation.
    /// The walk is O(chunks), so very long lists skip it to keep debug builds usable.
    fn check(&self) {
        const CHECKED_CHUNKS_MAX: usize = 4096;
        if cfg!(debug_assertions) && self.chunks.len() <= CHECKED_CHUNKS_MAX {
            let mut total = 0;
            for chunk in &self.chunks {
                assert!(chunk.count() > 0, "an empty chunk");
                assert!(chunk.count() <= CHUNK_ELEMENTS_MAX);
                assert!(chunk.count() == 1 || chunk.bytes() <= CHUNK_BYTES_MAX);
                assert!(chunk.ends.first().is_some_and(|&end| end >= chunk.front));
                assert!(chunk.ends.windows(2).all(|pair| pair[0] <= pair[1]));
                assert_eq!(
                    chunk.ends.last().map(|&end| end as usize),
                    Some(chunk.data.len())
                );
                total += chunk.count();
            }
            assert_eq!(total, self.len);
        }
    }

    /// Elements from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.chunks
            .iter()
            .flat_map(|chunk| (0..chunk.count()).map(move |index| chunk.get(index)))
    }

    /// (position, element) pairs from the head, or from the tail when `from_tail`.
    fn scan(&self, from_tail: bool) -> Box<dyn Iterator<Item = (usize, &[u8])> + '_> {
        if from_tail {
            Box::new((0..self.len).rev().zip(self.iter().rev()))
        } else {
            Box::new(self.iter().enumerate())
        }
    }

    /// Elements from position `first` on, head to tail.
    fn iter_from(&self, first: usize) -> impl Iterator<Item = &[u8]> {
        let (chunk_index, skip) = self.locate(first).unwrap_or((self.chunks.len(), 0));
        self.chunks
            .range(chunk_index..)
            .enumerate()
            .flat_map(move |(step, chunk)| {
                let from = if step == 0 { skip } else { 0 };
                (from..chunk.count()).map(move |index| chunk.get(index))
            })
    }

    /// The chunk and the index inside it of element `position`, walking from the nearer end.
    fn locate(&self, position: usize) -> Option<(usize, usize)> {
        if position >= self.len {
            return None;
        }
        if position < self.len / 2 {
            let mut remaining = position;
            for (chunk_index, chunk) in self.chunks.iter().enumerate() {
                if remaining < chunk.count() {
                    return Some((chunk_index, remaining));
                }
                remaining -= chunk.count();
            }
        } else {
            let mut remaining = self.len - 1 - position;
            for (chunk_index, chunk) in self.chunks.iter().enumerate().rev() {
                if remaining < chunk.count() {
                    return Some((chunk_index, chunk.count() - 1 - remaining));
                }
                remaining -= chunk.count();
            }
        }
        unreachable!("len is the sum of the chunk counts")
    }

    pub fn push(&mut self, end: End, element: &[u8]) {
        // A list that has filled a chunk keeps growing at that end: its new chunk gets its
        // full size at once instead of doubling its way there. A small list stays small.
        let growing = !self.chunks.is_empty();
        match end {
            End::Left => match self.chunks.front_mut() {
                Some(chunk) if chunk.has_room(element.len()) => chunk.insert(0, element),
                _ => self
                    .chunks
                    .push_front(Chunk::starting(element, growing, End::Left)),
            },
            End::Right => match self.chunks.back_mut() {
                Some(chunk) if chunk.has_room(element.len()) => chunk.push_back(element),
                _ => self
                    .chunks
                    .push_back(Chunk::starting(element, growing, End::Right)),
            },
        }
        self.len += 1;
        self.check();
    }

    pub fn pop(&mut self, end: End) -> Option<CompactBytes> {
        self.pop_many(end, 1).pop()
    }

    /// Pops up to `count` elements from `end`, in the order they were popped.
    pub fn pop_many(&mut self, end: End, count: usize) -> Vec<CompactBytes> {
        let taken = count.min(self.len);
        let popped: Vec<CompactBytes> = match end {
            End::Left => self.iter().take(taken).map(CompactBytes::new).collect(),
            End::Right => self
                .iter()
                .rev()
                .take(taken)
                .map(CompactBytes::new)
                .collect(),
        };
        self.drop_elements(end, taken);
        debug_assert_eq!(popped.len(), taken);
        popped
    }

    /// Removes `count` elements from `end`: whole chunks first, then part of one.
    fn drop_elements(&mut self, end: End, count: usize) {
        assert!(count <= self.len);
        let mut remaining = count;
        while remaining > 0 {
            let chunk = match end {
                End::Left => self.chunks.front_mut(),
                End::Right => self.chunks.back_mut(),
            };
            let Some(chunk) = chunk else {
                unreachable!("len counts the elements");
            };
            if remaining >= chunk.count() {
                remaining -= chunk.count();
                match end {
                    End::Left => self.chunks.pop_front(),
                    End::Right => self.chunks.pop_back(),
                };
            } else {
                match end {
                    End::Left => chunk.drop_front(remaining),
                    End::Right => chunk.drop_back(remaining),
                }
                remaining = 0;
            }
        }
        self.len -= count;
        self.release_spare();
        self.check();
    }

    /// Gives back chunk slots a shrunken list no longer needs (a queue that once held a
    /// million elements should not keep its slots); halving only below a quarter full keeps
    /// push and pop amortised O(1).
    fn release_spare(&mut self) {
        const SPARE_CHUNKS_KEPT: usize = 16;
        let capacity = self.chunks.capacity();
        if capacity > SPARE_CHUNKS_KEPT && self.chunks.len() < capacity / 4 {
            self.chunks
                .shrink_to((self.chunks.len() * 2).max(SPARE_CHUNKS_KEPT));
        }
    }

    /// The position a Redis index (negative counts from the tail) names, if it is in range.
    fn position(&self, index: i64) -> Option<usize> {
        let length = self.len as i64;
        let position = if index < 0 { length + index } else { index };
        (0..length).contains(&position).then_some(position as usize)
    }

    /// LINDEX: the element at a Redis index.
    pub fn get(&self, index: i64) -> Option<&[u8]> {
        let (chunk_index, inner) = self.locate(self.position(index)?)?;
        Some(self.chunks[chunk_index].get(inner))
    }

    /// LSET: replaces the element at a Redis index; false when the index is out of range.
    pub fn set(&mut self, index: i64, element: &[u8]) -> bool {
        let Some((chunk_index, inner)) = self.position(index).and_then(|p| self.locate(p)) else {
            return false;
        };
        self.chunks[chunk_index].replace(inner, element);
        self.rebalance(chunk_index);
        self.check();
        true
    }

    /// Restores the size invariant of a chunk that grew in place: split it in half, or
    /// isolate the one oversized element.
    fn rebalance(&mut self, chunk_index: usize) {
        let chunk = &mut self.chunks[chunk_index];
        let count = chunk.count();
        let fits = count <= CHUNK_ELEMENTS_MAX && chunk.bytes() <= CHUNK_BYTES_MAX;
        if count == 1 || fits {
            return;
        }
        let tail = chunk.split_off(count / 2);
        self.chunks.insert(chunk_index + 1, tail);
        // Each half holds at most the old count halved (rounded up); if bytes still overflow
        // (one big element), keep splitting: every split strictly shrinks a chunk.
        self.rebalance(chunk_index + 1);
        self.rebalance(chunk_index);
    }

    /// Redis's range normalisation (addListRangeReply, LTRIM): the inclusive positions
    /// `start..=end` name, or None when the range is empty.
    pub fn range_positions(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let length = self.len as i64;
        // Adding a non-negative length to a negative i64 cannot overflow.
        let mut start = if start < 0 { length + start } else { start };
        let mut end = if end < 0 { length + end } else { end };
        if start < 0 {
            start = 0;
        }
        if start > end || start >= length {
            return None;
        }
        if end >= length {
            end = length - 1;
        }
        debug_assert!(0 <= start && start <= end && end < length);
        Some((start as usize, end as usize))
    }

    /// LRANGE: the elements between two Redis indexes, both inclusive.
    pub fn range(&self, start: i64, end: i64) -> impl Iterator<Item = &[u8]> {
        let (first, take) = match self.range_positions(start, end) {
            Some((first, last)) => (first, last - first + 1),
            None => (self.len, 0),
        };
        self.iter_from(first).take(take)
    }

    /// LTRIM: keeps only the elements between two Redis indexes; returns how many it removed.
    pub fn trim(&mut self, start: i64, end: i64) -> usize {
        let length = self.len;
        match self.range_positions(start, end) {
            None => self.drop_elements(End::Left, length),
            Some((first, last)) => {
                self.drop_elements(End::Right, length - 1 - last);
                self.drop_elements(End::Left, first);
                debug_assert_eq!(self.len, last - first + 1);
            }
        }
        length - self.len
    }

    /// LINSERT: inserts `element` before or after the first occurrence of `pivot` (from the
    /// head); false when the pivot is absent.
    pub fn insert(&mut self, pivot: &[u8], after: bool, element: &[u8]) -> bool {
        let found = self
            .chunks
            .iter()
            .enumerate()
            .find_map(|(chunk_index, chunk)| {
                (0..chunk.count())
                    .find(|&inner| chunk.get(inner) == pivot)
                    .map(|inner| (chunk_index, inner))
            });
        let Some((chunk_index, inner)) = found else {
            return false;
        };
        let at = if after { inner + 1 } else { inner };
        self.chunks[chunk_index].insert(at, element);
        self.len += 1;
        self.rebalance(chunk_index);
        self.check();
        true
    }

    /// LREM: removes up to `count` occurrences of `element` (all when 0) scanning from the
    /// head, or from the tail when `count` is negative; returns how many it removed. O(n):
    /// the survivors are repacked into fresh chunks.
    pub fn remove(&mut self, count: i64, element: &[u8]) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let length_before = self.len;
        let mut doomed = vec![false; length_before];
        let mut removed = 0usize;
        let scan = self.scan(count < 0);
        for (position, item) in scan {
            if removed == limit {
                break;
            }
            if item == element {
                doomed[position] = true;
                removed += 1;
            }
        }
        if removed > 0 {
            let kept: List = self
                .iter()
                .zip(&doomed)
                .filter(|(_, &gone)| !gone)
                .map(|(item, _)| item)
                .collect();
            *self = kept;
        }
        debug_assert_eq!(self.len + removed, length_before);
        self.check();
        removed
    }

    /// LPOS: the positions of matches of `element`, as Redis 7.0's lposCommand computes them.
    ///
    /// `rank` is the 1-based match to start from (negative: scan from the tail); `count` is
    /// how many positions to collect (0: all; None: only the first, for the single reply);
    /// `maxlen` bounds how many elements are compared (0: no bound). Redis negates `rank`
    /// and subtracts it in C `long` arithmetic, which wraps for LONG_MIN; the wrapping
    /// operations reproduce what it replies (every match from the tail).
    pub fn positions(
        &self,
        element: &[u8],
        rank: i64,
        count: Option<u64>,
        maxlen: u64,
    ) -> Vec<usize> {
        debug_assert!(rank != 0, "the caller rejects RANK 0");
        let from_tail = rank < 0;
        let rank = if from_tail { rank.wrapping_neg() } else { rank };
        let mut found = Vec::new();
        let mut matches: i64 = 0;
        let scan = self.scan(from_tail);
        for (compared, (position, item)) in scan.enumerate() {
            if maxlen != 0 && compared as u64 >= maxlen {
                break;
            }
            if item != element {
                continue;
            }
            matches += 1;
            if matches < rank {
                continue;
            }
            found.push(position);
            match count {
                None => break,
                Some(wanted) => {
                    let collected = matches.wrapping_sub(rank).wrapping_add(1);
                    if wanted != 0 && collected >= 0 && collected as u64 >= wanted {
                        break;
                    }
                }
            }
        }
        debug_assert!(found.len() <= self.len);
        found
    }
}

impl<'a> FromIterator<&'a [u8]> for List {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> List {
        let mut list = List::new();
        for element in iter {
            list.push(End::Right, element);
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(items: &[&str]) -> List {
        items.iter().map(|item| item.as_bytes()).collect()
    }

    fn strings<'a>(items: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
        items
            .map(|item| String::from_utf8_lossy(item).into_owned())
            .collect()
    }

    fn popped(items: &[CompactBytes]) -> Vec<String> {
        strings(items.iter().map(|item| item.as_slice()))
    }

    /// A chunk opened at the head fills from its end; a head pop leaves room that a head push
    /// reuses without moving bytes; a push or insert that would grow the buffer while room
    /// is left closes the room first (test chunks hold 12 bytes, 4 elements).
    #[test]
    fn spare_room_at_a_chunks_head() {
        let mut chunk = Chunk::starting(b"dd", true, End::Left);
        assert_eq!((chunk.front, chunk.data.len()), (10, 12));
        chunk.insert(0, b"cc");
        chunk.insert(0, b"b");
        assert_eq!(chunk.front, 7);
        assert_eq!(chunk.ends, [8, 10, 12]);
        chunk.drop_front(1);
        assert_eq!((chunk.front, chunk.bytes()), (8, 4));
        chunk.insert(0, b"aaa");
        assert_eq!(chunk.front, 5);
        assert!(chunk.has_room(1) && !chunk.has_room(6));
        chunk.push_back(b"ee");
        assert_eq!(
            chunk.front, 0,
            "the tail push closed the room instead of growing"
        );
        let elements: Vec<&[u8]> = (0..chunk.count()).map(|index| chunk.get(index)).collect();
        assert_eq!(elements, [&b"aaa"[..], b"cc", b"dd", b"ee"]);
        assert_eq!(chunk.ends, [3, 5, 7, 9]);
        // So does an insert after the head; one that fits leaves the room where it is.
        let mut chunk = Chunk::starting(b"z", true, End::Left);
        chunk.insert(1, b"y");
        assert_eq!(
            (chunk.front, chunk.get(0), chunk.get(1)),
            (0, &b"z"[..], &b"y"[..])
        );
        chunk.drop_front(1);
        chunk.insert(1, b"x");
        assert_eq!(
            (chunk.front, chunk.get(0), chunk.get(1)),
            (1, &b"y"[..], &b"x"[..])
        );
    }

    #[test]
    fn push_pop_both_ends() {
        let mut l = List::new();
        l.push(End::Left, b"b");
        l.push(End::Left, b"a");
        l.push(End::Right, b"c");
        assert_eq!(strings(l.iter()), ["a", "b", "c"]);
        assert_eq!(l.pop(End::Right).as_deref(), Some(&b"c"[..]));
        assert_eq!(l.pop(End::Left).as_deref(), Some(&b"a"[..]));
        assert_eq!(l.len(), 1);
        assert_eq!(l.encoding(), "quicklist");
    }

    #[test]
    fn pop_many_order() {
        let mut l = list(&["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(
            popped(&l.pop_many(End::Right, 5)),
            ["g", "f", "e", "d", "c"]
        );
        assert_eq!(popped(&l.pop_many(End::Left, 10)), ["a", "b"]);
        assert!(l.is_empty());
        assert!(l.pop(End::Left).is_none());
    }

    #[test]
    fn indexes() {
        let mut l = list(&["a", "b", "c", "d", "e", "f"]);
        assert_eq!(l.get(0), Some(&b"a"[..]));
        assert_eq!(l.get(-1), Some(&b"f"[..]));
        assert_eq!(l.get(4), Some(&b"e"[..]));
        assert!(l.get(6).is_none());
        assert!(l.get(-7).is_none());
        assert!(l.get(i64::MIN).is_none());
        assert!(l.get(i64::MAX).is_none());
        assert!(l.set(-6, b"z"));
        assert!(!l.set(6, b"z"));
        assert!(l.set(4, b"a much longer element than a chunk holds"));
        assert_eq!(
            strings(l.iter()),
            [
                "z",
                "b",
                "c",
                "d",
                "a much longer element than a chunk holds",
                "f"
            ]
        );
        assert!(l.set(4, b""));
        assert_eq!(strings(l.iter()), ["z", "b", "c", "d", "", "f"]);
    }

    #[test]
    fn ranges() {
        let l = list(&["a", "b", "c", "d", "e", "f"]);
        assert_eq!(strings(l.range(0, -1)), ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(strings(l.range(-2, i64::MAX)), ["e", "f"]);
        assert_eq!(strings(l.range(i64::MIN, 1)), ["a", "b"]);
        assert_eq!(strings(l.range(3, 4)), ["d", "e"]);
        assert!(strings(l.range(2, 1)).is_empty());
        assert!(strings(l.range(6, 10)).is_empty());
        assert!(strings(l.range(0, i64::MIN)).is_empty());
    }

    #[test]
    fn trims() {
        let mut l = list(&["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(l.trim(1, -2), 2);
        assert_eq!(strings(l.iter()), ["b", "c", "d", "e", "f"]);
        assert_eq!(l.trim(0, -1), 0);
        assert_eq!(l.trim(5, 6), 5);
        assert!(l.is_empty());
    }

    #[test]
    fn insert_and_remove() {
        let mut l = list(&["a", "b", "a", "c", "a"]);
        assert!(l.insert(b"c", true, b"x"));
        assert!(l.insert(b"a", false, b"y"));
        assert!(!l.insert(b"nope", false, b"y"));
        assert_eq!(strings(l.iter()), ["y", "a", "b", "a", "c", "x", "a"]);
        assert_eq!(l.remove(-1, b"a"), 1);
        assert_eq!(strings(l.iter()), ["y", "a", "b", "a", "c", "x"]);
        assert_eq!(l.remove(1, b"a"), 1);
        assert_eq!(l.remove(0, b"a"), 1);
        assert_eq!(l.remove(i64::MIN, b"y"), 1);
        assert_eq!(strings(l.iter()), ["b", "c", "x"]);
    }

    #[test]
    fn lpos_like_redis() {
        let l = list(&["a", "b", "c", "a"]);
        assert_eq!(l.positions(b"a", 1, None, 0), [0]);
        assert_eq!(l.positions(b"a", -1, None, 0), [3]);
        assert_eq!(l.positions(b"a", 2, None, 0), [3]);
        assert_eq!(l.positions(b"a", 1, Some(0), 0), [0, 3]);
        assert_eq!(l.positions(b"a", -1, Some(0), 1), [3]);
        assert_eq!(l.positions(b"a", 1, Some(1), 0), [0]);
        assert!(l.positions(b"a", 3, None, 0).is_empty());
        assert!(l.positions(b"c", 1, None, 2).is_empty());
        // RANK LONG_MIN wraps in Redis: every match from the tail, COUNT never reached.
        assert_eq!(l.positions(b"a", i64::MIN, Some(1), 0), [3, 0]);
        assert_eq!(l.positions(b"a", i64::MIN, None, 0), [3]);
    }

    #[test]
    fn small_elements_pack_densely() {
        // Under test chunks are tiny; the production constants are checked by size here.
        let mut l = List::new();
        for index in 0..1000u32 {
            l.push(End::Right, &index.to_le_bytes()[..2]);
        }
        assert_eq!(l.len(), 1000);
        assert!(l.heap_bytes() < 1000 * 24, "{} bytes", l.heap_bytes());
        assert_eq!(l.get(999), Some(&999u32.to_le_bytes()[..2]));
    }

    #[test]
    fn shrinking_gives_memory_back() {
        let mut l: List = (0..10_000u32)
            .map(|i| i.to_le_bytes())
            .collect::<Vec<_>>()
            .iter()
            .map(|b| &b[..])
            .collect();
        let full = l.heap_bytes();
        assert_eq!(popped(&l.pop_many(End::Left, 9_990)).len(), 9_990);
        assert_eq!(l.len(), 10);
        assert!(l.heap_bytes() * 10 < full);
        assert_eq!(l.get(0), Some(&9_990u32.to_le_bytes()[..]));
    }

    #[test]
    fn equality_ignores_chunking() {
        let pushed_left = {
            let mut l = List::new();
            for item in ["d", "c", "b", "a"] {
                l.push(End::Left, item.as_bytes());
            }
            l
        };
        let pushed_right = list(&["a", "b", "c", "d"]);
        assert_eq!(pushed_left, pushed_right);
        assert_ne!(pushed_left, list(&["a", "b", "c"]));
        assert_eq!(format!("{pushed_right:?}"), r#"["a", "b", "c", "d"]"#);
    }

    /// One operation of the model test.
    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, u8),
        Pop(bool),
        PopMany(bool, usize),
        Insert(u8, bool, u8),
        Remove(i64, u8),
        Trim(i64, i64),
        Set(i64, u8),
        Rotate(bool, bool),
        Range(i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let small = -9i64..9;
        prop_oneof![
            6 => (any::<bool>(), 0u8..8).prop_map(|(left, v)| Op::Push(left, v)),
            2 => any::<bool>().prop_map(Op::Pop),
            1 => (any::<bool>(), 0usize..6).prop_map(|(left, n)| Op::PopMany(left, n)),
            2 => (0u8..8, any::<bool>(), 0u8..8).prop_map(|(p, a, v)| Op::Insert(p, a, v)),
            1 => (small.clone(), 0u8..8).prop_map(|(c, v)| Op::Remove(c, v)),
            1 => (small.clone(), small.clone()).prop_map(|(s, e)| Op::Trim(s, e)),
            2 => (small.clone(), 0u8..8).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (any::<bool>(), any::<bool>()).prop_map(|(f, t)| Op::Rotate(f, t)),
            1 => (small.clone(), small).prop_map(|(s, e)| Op::Range(s, e)),
        ]
    }

    fn end(left: bool) -> End {
        if left {
            End::Left
        } else {
            End::Right
        }
    }

    /// Element `v`: lengths 0 to 14 bytes, so some fill or overflow a test-sized chunk.
    fn element(v: u8) -> Vec<u8> {
        vec![b'a' + v; usize::from(v) * 2]
    }

    /// A model index: Redis's negative-from-the-tail convention on a plain VecDeque.
    fn model_position(length: usize, index: i64) -> Option<usize> {
        let position = if index < 0 {
            length as i64 + index
        } else {
            index
        };
        (0..length as i64)
            .contains(&position)
            .then_some(position as usize)
    }

    /// Redis's range normalisation, written independently for the model.
    fn model_range(length: usize, start: i64, stop: i64) -> std::ops::Range<usize> {
        let length = length as i64;
        let first = if start < 0 { length + start } else { start }.max(0);
        let last = (if stop < 0 { length + stop } else { stop }).min(length - 1);
        if first > last {
            0..0
        } else {
            first as usize..last as usize + 1
        }
    }

    fn apply_model(model: &mut VecDeque<Vec<u8>>, op: &Op) -> Vec<Vec<u8>> {
        match *op {
            Op::Push(true, v) => model.push_front(element(v)),
            Op::Push(false, v) => model.push_back(element(v)),
            Op::Pop(left) => {
                let popped = if left {
                    model.pop_front()
                } else {
                    model.pop_back()
                };
                return popped.into_iter().collect();
            }
            Op::PopMany(left, n) => {
                let mut popped = Vec::new();
                for _ in 0..n {
                    popped.extend(if left {
                        model.pop_front()
                    } else {
                        model.pop_back()
                    });
                }
                return popped;
            }
            Op::Insert(p, after, v) => {
                let pivot = element(p);
                if let Some(found) = model.iter().position(|x| *x == pivot) {
                    model.insert(found + usize::from(after), element(v));
                }
            }
            Op::Remove(count, v) => {
                let target = element(v);
                let mut budget = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                if count >= 0 {
                    let mut position = 0;
                    while position < model.len() {
                        if budget > 0 && model[position] == target {
                            model.remove(position);
                            budget -= 1;
                        } else {
                            position += 1;
                        }
                    }
                } else {
                    let mut position = model.len();
                    while position > 0 && budget > 0 {
                        position -= 1;
                        if model[position] == target {
                            model.remove(position);
                            budget -= 1;
                        }
                    }
                }
            }
            Op::Trim(start, stop) => {
                let keep = model_range(model.len(), start, stop);
                *model = model.range(keep).cloned().collect();
            }
            Op::Set(index, v) => {
                if let Some(position) = model_position(model.len(), index) {
                    model[position] = element(v);
                }
            }
            Op::Rotate(from_left, to_left) => {
                let popped = if from_left {
                    model.pop_front()
                } else {
                    model.pop_back()
                };
                if let Some(x) = popped {
                    if to_left {
                        model.push_front(x);
                    } else {
                        model.push_back(x);
                    }
                }
            }
            Op::Range(start, stop) => {
                return model
                    .range(model_range(model.len(), start, stop))
                    .cloned()
                    .collect();
            }
        }
        Vec::new()
    }

    fn apply_list(l: &mut List, op: &Op) -> Vec<Vec<u8>> {
        let into =
            |items: Vec<CompactBytes>| items.into_iter().map(CompactBytes::into_vec).collect();
        match *op {
            Op::Push(left, v) => l.push(end(left), &element(v)),
            Op::Pop(left) => return into(l.pop(end(left)).into_iter().collect()),
            Op::PopMany(left, n) => return into(l.pop_many(end(left), n)),
            Op::Insert(p, after, v) => {
                l.insert(&element(p), after, &element(v));
            }
            Op::Remove(count, v) => {
                l.remove(count, &element(v));
            }
            Op::Trim(start, stop) => {
                l.trim(start, stop);
            }
            Op::Set(index, v) => {
                l.set(index, &element(v));
            }
            Op::Rotate(from_left, to_left) => {
                if let Some(x) = l.pop(end(from_left)) {
                    l.push(end(to_left), &x);
                }
            }
            Op::Range(start, stop) => return l.range(start, stop).map(<[u8]>::to_vec).collect(),
        }
        Vec::new()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_a_vecdeque_model(ops in proptest::collection::vec(op(), 0..120)) {
            let mut l = List::new();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in &ops {
                let got = apply_list(&mut l, op);
                let want = apply_model(&mut model, op);
                prop_assert_eq!(got, want, "{:?}", op);
                let actual: Vec<Vec<u8>> = l.iter().map(<[u8]>::to_vec).collect();
                let expected: Vec<Vec<u8>> = model.iter().cloned().collect();
                prop_assert_eq!(actual, expected);
                let reversed: Vec<Vec<u8>> = l.iter().rev().map(<[u8]>::to_vec).collect();
                let expected_reversed: Vec<Vec<u8>> = model.iter().rev().cloned().collect();
                prop_assert_eq!(reversed, expected_reversed);
                prop_assert_eq!(l.len(), model.len());
                for index in -9i64..9 {
                    let got = l.get(index).map(<[u8]>::to_vec);
                    let want = model_position(model.len(), index).map(|p| model[p].clone());
                    prop_assert_eq!(got, want);
                }
                for v in 0u8..8 {
                    let target = element(v);
                    let first = model.iter().position(|x| *x == target);
                    prop_assert_eq!(l.positions(&target, 1, None, 0).first().copied(), first);
                    let last = model.iter().rposition(|x| *x == target);
                    prop_assert_eq!(l.positions(&target, -1, None, 0).first().copied(), last);
                    let all: Vec<usize> = (0..model.len()).filter(|&p| model[p] == target).collect();
                    prop_assert_eq!(l.positions(&target, 1, Some(0), 0), all);
                }
            }
        }
    }
}
