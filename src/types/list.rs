//! Lists: an ordered sequence of byte strings with O(1) push and pop at both ends.
//!
//! Redis 7.0 keeps every list in a quicklist (a linked list of listpacks) and OBJECT ENCODING
//! always says `quicklist`. Strata keeps a `VecDeque<CompactBytes>`: pushes and pops at either
//! end are O(1) amortised, indexing (LINDEX, LSET) is O(1) instead of Redis's O(n/node), and a
//! short element costs one 24-byte `CompactBytes` slot with its bytes inline.
//!
//! Indexes follow Redis's conventions: a negative index counts from the tail (-1 is the last
//! element). The operations here are pure: the keyspace rules (delete the key when the list
//! becomes empty, signal the modification) belong to the command family.
//!
//! Invariant: none beyond VecDeque's; an empty `List` may exist transiently inside a command
//! but never in the keyspace.

use super::CompactBytes;
use std::collections::VecDeque;

/// Which end of a list an operation works on (Redis's LIST_HEAD / LIST_TAIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head: LPUSH, LPOP, LEFT.
    Left,
    /// The tail: RPUSH, RPOP, RIGHT.
    Right,
}

/// Spare deque slots a shrinking list may keep without giving memory back.
const SPARE_SLOTS_KEPT: usize = 32;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct List {
    items: VecDeque<CompactBytes>,
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Redis 7.0 reports every list as a quicklist.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// The deque's slots (used or spare) plus every element's own heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<CompactBytes>()
            + self
                .items
                .iter()
                .map(CompactBytes::heap_bytes)
                .sum::<usize>()
    }

    /// Elements from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &CompactBytes> + ExactSizeIterator {
        self.items.iter()
    }

    pub fn push(&mut self, end: End, element: CompactBytes) {
        let length_before = self.items.len();
        match end {
            End::Left => self.items.push_front(element),
            End::Right => self.items.push_back(element),
        }
        debug_assert_eq!(self.items.len(), length_before + 1);
    }

    pub fn pop(&mut self, end: End) -> Option<CompactBytes> {
        let popped = match end {
            End::Left => self.items.pop_front(),
            End::Right => self.items.pop_back(),
        };
        self.release_spare();
        popped
    }

    /// Gives back slots a list that shrank no longer needs, as Redis frees emptied quicklist
    /// nodes: a queue that once held a million elements should not keep their 24 MB. Halving
    /// only below a quarter full keeps push/pop amortised O(1) (no shrink-grow ping-pong).
    fn release_spare(&mut self) {
        let capacity = self.items.capacity();
        if capacity > SPARE_SLOTS_KEPT && self.items.len() < capacity / 4 {
            self.items
                .shrink_to((self.items.len() * 2).max(SPARE_SLOTS_KEPT));
        }
        debug_assert!(self.items.capacity() >= self.items.len());
    }

    /// Pops up to `count` elements from `end`, in the order they were popped.
    pub fn pop_many(&mut self, end: End, count: usize) -> Vec<CompactBytes> {
        let taken = count.min(self.items.len());
        let popped: Vec<CompactBytes> = match end {
            End::Left => self.items.drain(..taken).collect(),
            End::Right => {
                let start = self.items.len() - taken;
                self.items.drain(start..).rev().collect()
            }
        };
        debug_assert_eq!(popped.len(), taken);
        self.release_spare();
        popped
    }

    /// The position a Redis index (negative counts from the tail) names, if it is in range.
    fn position(&self, index: i64) -> Option<usize> {
        let length = self.items.len() as i64;
        let position = if index < 0 { length + index } else { index };
        (0..length).contains(&position).then_some(position as usize)
    }

    /// LINDEX: the element at a Redis index.
    pub fn get(&self, index: i64) -> Option<&CompactBytes> {
        self.position(index)
            .and_then(|position| self.items.get(position))
    }

    /// LSET: replaces the element at a Redis index; false when the index is out of range.
    pub fn set(&mut self, index: i64, element: CompactBytes) -> bool {
        match self
            .position(index)
            .and_then(|position| self.items.get_mut(position))
        {
            Some(slot) => {
                *slot = element;
                true
            }
            None => false,
        }
    }

    /// Redis's range normalisation (addListRangeReply, LTRIM): the inclusive positions
    /// `start..=end` name, or None when the range is empty.
    pub fn range_positions(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let length = self.items.len() as i64;
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
    pub fn range(&self, start: i64, end: i64) -> impl Iterator<Item = &CompactBytes> {
        let (first, last, take) = match self.range_positions(start, end) {
            Some((first, last)) => (first, last, last - first + 1),
            None => (0, 0, 0),
        };
        debug_assert!(take == 0 || last < self.items.len());
        self.items.range(first..).take(take)
    }

    /// LTRIM: keeps only the elements between two Redis indexes; returns how many it removed.
    pub fn trim(&mut self, start: i64, end: i64) -> usize {
        let length = self.items.len();
        match self.range_positions(start, end) {
            None => {
                self.items.clear();
                length
            }
            Some((first, last)) => {
                self.items.truncate(last + 1);
                self.items.drain(..first);
                debug_assert_eq!(self.items.len(), last - first + 1);
                self.release_spare();
                length - self.items.len()
            }
        }
    }

    /// LINSERT: inserts `element` before or after the first occurrence of `pivot` (from the
    /// head); false when the pivot is absent.
    pub fn insert(&mut self, pivot: &[u8], after: bool, element: CompactBytes) -> bool {
        let Some(found) = self.items.iter().position(|item| item.as_slice() == pivot) else {
            return false;
        };
        let at = if after { found + 1 } else { found };
        self.items.insert(at, element);
        true
    }

    /// LREM: removes up to `count` occurrences of `element` (all when 0) scanning from the
    /// head, or from the tail when `count` is negative; returns how many it removed.
    pub fn remove(&mut self, count: i64, element: &[u8]) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let length_before = self.items.len();
        let mut removed = 0usize;
        if count >= 0 {
            self.items.retain(|item| {
                if removed < limit && item.as_slice() == element {
                    removed += 1;
                    false
                } else {
                    true
                }
            });
        } else {
            // Mark matches from the tail, then keep the rest in order.
            let mut doomed = vec![false; length_before];
            for (position, item) in self.items.iter().enumerate().rev() {
                if removed == limit {
                    break;
                }
                if item.as_slice() == element {
                    doomed[position] = true;
                    removed += 1;
                }
            }
            let mut position = 0;
            self.items.retain(|_| {
                let keep = !doomed[position];
                position += 1;
                keep
            });
        }
        debug_assert_eq!(self.items.len() + removed, length_before);
        self.release_spare();
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
        let length = self.items.len();
        let mut found = Vec::new();
        let mut matches: i64 = 0;
        let scan: Box<dyn Iterator<Item = (usize, &CompactBytes)>> = if from_tail {
            Box::new(self.items.iter().enumerate().rev())
        } else {
            Box::new(self.items.iter().enumerate())
        };
        for (compared, (position, item)) in scan.enumerate() {
            if maxlen != 0 && compared as u64 >= maxlen {
                break;
            }
            if item.as_slice() != element {
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
        debug_assert!(found.len() <= length);
        found
    }
}

impl FromIterator<CompactBytes> for List {
    fn from_iter<I: IntoIterator<Item = CompactBytes>>(iter: I) -> List {
        List {
            items: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(items: &[&str]) -> List {
        items
            .iter()
            .map(|item| CompactBytes::new(item.as_bytes()))
            .collect()
    }

    fn strings<'a>(items: impl Iterator<Item = &'a CompactBytes>) -> Vec<String> {
        items
            .map(|item| String::from_utf8_lossy(item.as_slice()).into_owned())
            .collect()
    }

    #[test]
    fn push_pop_both_ends() {
        let mut l = List::new();
        l.push(End::Left, CompactBytes::new(b"b"));
        l.push(End::Left, CompactBytes::new(b"a"));
        l.push(End::Right, CompactBytes::new(b"c"));
        assert_eq!(strings(l.iter()), ["a", "b", "c"]);
        assert_eq!(l.pop(End::Right).as_deref(), Some(&b"c"[..]));
        assert_eq!(l.pop(End::Left).as_deref(), Some(&b"a"[..]));
        assert_eq!(l.len(), 1);
        assert_eq!(l.encoding(), "quicklist");
    }

    #[test]
    fn shrinking_gives_memory_back() {
        let mut l: List = (0..10_000u32)
            .map(|i| CompactBytes::new(&i.to_le_bytes()))
            .collect();
        let full = l.heap_bytes();
        for _ in 0..9_990 {
            assert!(l.pop(End::Left).is_some());
        }
        assert_eq!(l.len(), 10);
        assert!(l.heap_bytes() * 10 < full);
        assert_eq!(
            l.get(0).map(|x| x.as_slice()),
            Some(&9_990u32.to_le_bytes()[..])
        );
    }

    #[test]
    fn pop_many_order() {
        let mut l = list(&["a", "b", "c", "d"]);
        assert_eq!(strings(l.pop_many(End::Right, 3).iter()), ["d", "c", "b"]);
        assert_eq!(strings(l.pop_many(End::Left, 10).iter()), ["a"]);
        assert!(l.is_empty());
    }

    #[test]
    fn indexes() {
        let mut l = list(&["a", "b", "c"]);
        assert_eq!(l.get(0).map(|x| x.as_slice()), Some(&b"a"[..]));
        assert_eq!(l.get(-1).map(|x| x.as_slice()), Some(&b"c"[..]));
        assert!(l.get(3).is_none());
        assert!(l.get(-4).is_none());
        assert!(l.get(i64::MIN).is_none());
        assert!(l.get(i64::MAX).is_none());
        assert!(l.set(-3, CompactBytes::new(b"z")));
        assert!(!l.set(3, CompactBytes::new(b"z")));
        assert_eq!(strings(l.iter()), ["z", "b", "c"]);
    }

    #[test]
    fn ranges() {
        let l = list(&["a", "b", "c", "d"]);
        assert_eq!(strings(l.range(0, -1)), ["a", "b", "c", "d"]);
        assert_eq!(strings(l.range(-2, i64::MAX)), ["c", "d"]);
        assert_eq!(strings(l.range(i64::MIN, 1)), ["a", "b"]);
        assert!(strings(l.range(2, 1)).is_empty());
        assert!(strings(l.range(4, 10)).is_empty());
        assert!(strings(l.range(0, i64::MIN)).is_empty());
    }

    #[test]
    fn trims() {
        let mut l = list(&["a", "b", "c", "d"]);
        assert_eq!(l.trim(1, -2), 2);
        assert_eq!(strings(l.iter()), ["b", "c"]);
        assert_eq!(l.trim(0, -1), 0);
        assert_eq!(l.trim(5, 6), 2);
        assert!(l.is_empty());
    }

    #[test]
    fn insert_and_remove() {
        let mut l = list(&["a", "b", "a", "c", "a"]);
        assert!(l.insert(b"c", true, CompactBytes::new(b"x")));
        assert!(l.insert(b"a", false, CompactBytes::new(b"y")));
        assert!(!l.insert(b"nope", false, CompactBytes::new(b"y")));
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
    }

    fn op() -> impl Strategy<Value = Op> {
        let small = -6i64..6;
        prop_oneof![
            4 => (any::<bool>(), 0u8..4).prop_map(|(left, v)| Op::Push(left, v)),
            2 => any::<bool>().prop_map(Op::Pop),
            1 => (any::<bool>(), 0usize..4).prop_map(|(left, n)| Op::PopMany(left, n)),
            1 => (0u8..4, any::<bool>(), 0u8..4).prop_map(|(p, a, v)| Op::Insert(p, a, v)),
            1 => (small.clone(), 0u8..4).prop_map(|(c, v)| Op::Remove(c, v)),
            1 => (small.clone(), small.clone()).prop_map(|(s, e)| Op::Trim(s, e)),
            1 => (small, 0u8..4).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (any::<bool>(), any::<bool>()).prop_map(|(f, t)| Op::Rotate(f, t)),
        ]
    }

    fn end(left: bool) -> End {
        if left {
            End::Left
        } else {
            End::Right
        }
    }

    fn element(v: u8) -> CompactBytes {
        CompactBytes::new(&[b'a' + v])
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

    fn apply_model(model: &mut VecDeque<Vec<u8>>, op: &Op) {
        match *op {
            Op::Push(true, v) => model.push_front(element(v).into_vec()),
            Op::Push(false, v) => model.push_back(element(v).into_vec()),
            Op::Pop(true) => {
                model.pop_front();
            }
            Op::Pop(false) => {
                model.pop_back();
            }
            Op::PopMany(left, n) => {
                for _ in 0..n {
                    if left {
                        model.pop_front();
                    } else {
                        model.pop_back();
                    }
                }
            }
            Op::Insert(p, after, v) => {
                let pivot = element(p).into_vec();
                if let Some(found) = model.iter().position(|x| *x == pivot) {
                    model.insert(found + usize::from(after), element(v).into_vec());
                }
            }
            Op::Remove(count, v) => {
                let target = element(v).into_vec();
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
                let length = model.len() as i64;
                let mut first = if start < 0 { length + start } else { start }.max(0);
                let last = (if stop < 0 { length + stop } else { stop }).min(length - 1);
                if first > last {
                    first = length;
                }
                let kept: VecDeque<Vec<u8>> = model
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| (*i as i64) >= first && (*i as i64) <= last)
                    .map(|(_, x)| x.clone())
                    .collect();
                *model = kept;
            }
            Op::Set(index, v) => {
                if let Some(position) = model_position(model.len(), index) {
                    model[position] = element(v).into_vec();
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
        }
    }

    fn apply_list(l: &mut List, op: &Op) {
        match *op {
            Op::Push(left, v) => l.push(end(left), element(v)),
            Op::Pop(left) => {
                l.pop(end(left));
            }
            Op::PopMany(left, n) => {
                l.pop_many(end(left), n);
            }
            Op::Insert(p, after, v) => {
                l.insert(element(p).as_slice(), after, element(v));
            }
            Op::Remove(count, v) => {
                l.remove(count, element(v).as_slice());
            }
            Op::Trim(start, stop) => {
                l.trim(start, stop);
            }
            Op::Set(index, v) => {
                l.set(index, element(v));
            }
            Op::Rotate(from_left, to_left) => {
                if let Some(x) = l.pop(end(from_left)) {
                    l.push(end(to_left), x);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn matches_a_vecdeque_model(ops in proptest::collection::vec(op(), 0..80)) {
            let mut l = List::new();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in &ops {
                apply_list(&mut l, op);
                apply_model(&mut model, op);
                let actual: Vec<Vec<u8>> = l.iter().map(|x| x.as_slice().to_vec()).collect();
                let expected: Vec<Vec<u8>> = model.iter().cloned().collect();
                prop_assert_eq!(actual, expected);
                prop_assert_eq!(l.len(), model.len());
                for index in -6i64..6 {
                    let got = l.get(index).map(|x| x.as_slice().to_vec());
                    let want = model_position(model.len(), index).map(|p| model[p].clone());
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}
