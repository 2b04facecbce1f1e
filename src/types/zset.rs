//! Sorted sets: members with scores, ordered by (score, member bytes) exactly as Redis orders
//! them.
//!
//! Two encodings, as Redis 7.0 has:
//! - `listpack`: a sorted `Vec<(score, member)>`; every operation is linear like Redis's
//!   listpack, which is fine because it holds at most `zset-max-listpack-entries` (128) members
//!   of at most `zset-max-listpack-value` (64) bytes.
//! - `skiplist`: an order-statistic B+tree ([`super::ordered::Tree`]) for O(log n) insert,
//!   delete, rank and select, plus a member -> score [`Dict`] for O(1) score lookups and
//!   ZSCAN's cursor. It plays the role of Redis's skiplist with spans; the encoding name is
//!   Redis's.
//!
//! Invariants: no score is NaN; members are unique; a set converts from `listpack` to
//! `skiplist` when an insert would exceed either limit and never converts back (Redis does
//! the same for a key that is modified in place); in the `skiplist` form the tree and the dict
//! hold exactly the same (member, score) pairs.

use super::ordered::Tree;
use super::CompactBytes;
use crate::keyspace::dict::{collection_hasher, Dict};
use std::cmp::Ordering;

pub use super::ListpackLimits as Limits;

/// Redis's order: by score, then member bytes (memcmp, shorter first on a common prefix).
pub fn compare(score_a: f64, member_a: &[u8], score_b: f64, member_b: &[u8]) -> Ordering {
    debug_assert!(!score_a.is_nan() && !score_b.is_nan());
    match score_a.partial_cmp(&score_b) {
        Some(Ordering::Equal) | None => member_a.cmp(member_b),
        Some(order) => order,
    }
}

/// The score a listpack keeps: Redis stores it as text through `d2string`, whose integer
/// path turns -0 into 0; every other double round-trips exactly.
fn listpack_score(score: f64) -> f64 {
    if score == 0.0 {
        0.0
    } else {
        score
    }
}

fn listpack_insert(entries: &mut Vec<(f64, CompactBytes)>, score: f64, member: &[u8]) {
    let score = listpack_score(score);
    let position = entries.partition_point(|(candidate_score, candidate)| {
        compare(*candidate_score, candidate, score, member) == Ordering::Less
    });
    entries.insert(position, (score, CompactBytes::new(member)));
}

#[derive(Debug, Clone)]
enum Repr {
    Listpack(Vec<(f64, CompactBytes)>),
    Skiplist(Box<Indexed>),
}

/// A sorted set. See the module documentation for the encodings.
#[derive(Debug, Clone)]
pub struct ZSet {
    repr: Repr,
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet::new()
    }
}

impl PartialEq for ZSet {
    /// Same encoding and the same (score, member) sequence; the tree's shape is irrelevant.
    fn eq(&self, other: &ZSet) -> bool {
        self.encoding() == other.encoding()
            && self.len() == other.len()
            && self
                .iter_range(0, self.len(), false)
                .zip(other.iter_range(0, other.len(), false))
                .all(|((score_a, member_a), (score_b, member_b))| {
                    score_a.to_bits() == score_b.to_bits() && member_a == member_b
                })
    }
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet {
            repr: Repr::Listpack(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(entries) => entries.len(),
            Repr::Skiplist(indexed) => indexed.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Skiplist(_) => "skiplist",
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Listpack(entries) => {
                entries.capacity() * std::mem::size_of::<(f64, CompactBytes)>()
                    + entries
                        .iter()
                        .map(|(_, member)| member.heap_bytes())
                        .sum::<usize>()
            }
            Repr::Skiplist(indexed) => std::mem::size_of::<Indexed>() + indexed.heap_bytes(),
        }
    }

    /// The member's score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Listpack(entries) => entries
                .iter()
                .find(|(_, candidate)| candidate.as_slice() == member)
                .map(|(score, _)| *score),
            Repr::Skiplist(indexed) => indexed.scores.get(member).copied(),
        }
    }

    /// Adds a member that is not present, converting to `skiplist` first when the listpack
    /// would exceed `limits` (Redis's zsetAdd).
    pub fn insert(&mut self, score: f64, member: &[u8], limits: Limits) {
        assert!(!score.is_nan(), "a NaN score never reaches the set");
        debug_assert!(self.score(member).is_none(), "insert is for new members");
        if let Repr::Listpack(entries) = &self.repr {
            if entries.len() + 1 > limits.entries_max || member.len() > limits.value_bytes_max {
                self.convert();
            }
        }
        match &mut self.repr {
            Repr::Listpack(entries) => listpack_insert(entries, score, member),
            Repr::Skiplist(indexed) => indexed.insert(score, member),
        }
    }

    /// Changes an existing member's score.
    pub fn update(&mut self, member: &[u8], score: f64) {
        assert!(!score.is_nan(), "a NaN score never reaches the set");
        match &mut self.repr {
            Repr::Listpack(_) => {
                let removed = self.remove(member);
                debug_assert!(removed.is_some(), "update is for present members");
                // The member was present, so the set cannot need converting.
                if let Repr::Listpack(entries) = &mut self.repr {
                    listpack_insert(entries, score, member);
                }
            }
            // The dict entry stays where it is (Redis's zsetAdd updates the score in place);
            // only the tree moves the member.
            Repr::Skiplist(indexed) => indexed.update(member, score),
        }
    }

    /// Removes a member, returning its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Listpack(entries) => {
                let position = entries
                    .iter()
                    .position(|(_, candidate)| candidate.as_slice() == member)?;
                Some(entries.remove(position).0)
            }
            Repr::Skiplist(indexed) => indexed.remove(member),
        }
    }

    /// The member's 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Listpack(entries) => entries
                .iter()
                .position(|(_, candidate)| candidate.as_slice() == member),
            Repr::Skiplist(indexed) => {
                let score = *indexed.scores.get(member)?;
                Some(indexed.tree.count_before(|node_score, node_member| {
                    compare(node_score, node_member, score, member) == Ordering::Less
                }))
            }
        }
    }

    /// How many elements come before the first one with a score above `score` (`inclusive`)
    /// or at least `score` (not inclusive): the rank where a score range starts or ends.
    pub fn count_score_below(&self, score: f64, inclusive: bool) -> usize {
        let before = |node_score: f64| {
            if inclusive {
                node_score <= score
            } else {
                node_score < score
            }
        };
        match &self.repr {
            Repr::Listpack(entries) => entries.partition_point(|(candidate, _)| before(*candidate)),
            Repr::Skiplist(indexed) => indexed
                .tree
                .count_before(|node_score, _| before(node_score)),
        }
    }

    /// Like [`ZSet::count_score_below`] for members, assuming equal scores (as lex ranges do).
    pub fn count_member_below(&self, member: &[u8], inclusive: bool) -> usize {
        let before = |node_member: &[u8]| {
            if inclusive {
                node_member <= member
            } else {
                node_member < member
            }
        };
        match &self.repr {
            Repr::Listpack(entries) => {
                entries.partition_point(|(_, candidate)| before(candidate.as_slice()))
            }
            Repr::Skiplist(indexed) => indexed
                .tree
                .count_before(|_, node_member| before(node_member)),
        }
    }

    /// The element at ascending rank `rank`.
    pub fn get(&self, rank: usize) -> Option<(f64, &[u8])> {
        match &self.repr {
            Repr::Listpack(entries) => entries
                .get(rank)
                .map(|(score, member)| (*score, member.as_slice())),
            Repr::Skiplist(indexed) => indexed.tree.select(rank),
        }
    }

    /// Elements of ascending ranks `start..end`, ascending or (when `reverse`) descending.
    pub fn iter_range(
        &self,
        start: usize,
        end: usize,
        reverse: bool,
    ) -> impl Iterator<Item = (f64, &[u8])> + '_ {
        let end = end.min(self.len());
        let start = start.min(end);
        let count = end - start;
        let inner: Box<dyn Iterator<Item = (f64, &[u8])> + '_> = match &self.repr {
            Repr::Listpack(entries) => {
                let slice = entries[start..end]
                    .iter()
                    .map(|(score, member)| (*score, member.as_slice()));
                if reverse {
                    Box::new(slice.rev())
                } else {
                    Box::new(slice)
                }
            }
            Repr::Skiplist(indexed) => {
                if count == 0 {
                    Box::new(std::iter::empty())
                } else if reverse {
                    Box::new(indexed.tree.iter_from(end - 1, true))
                } else {
                    Box::new(indexed.tree.iter_from(start, false))
                }
            }
        };
        inner.take(count)
    }

    /// Removes the elements of ascending ranks `start..end`; returns how many.
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        let start = start.min(end);
        match &mut self.repr {
            Repr::Listpack(entries) => entries.drain(start..end).count(),
            Repr::Skiplist(indexed) => indexed.remove_range(start, end),
        }
    }

    /// Removes and returns the lowest (or, with `max`, highest) element.
    pub fn pop(&mut self, max: bool) -> Option<(f64, CompactBytes)> {
        let rank = if max { self.len().checked_sub(1)? } else { 0 };
        let (score, member) = self.get(rank)?;
        let member = CompactBytes::new(member);
        let removed = self.remove(&member);
        debug_assert_eq!(removed.map(f64::to_bits), Some(score.to_bits()));
        Some((score, member))
    }

    /// One ZSCAN step: a listpack returns everything with cursor 0; a skiplist walks its
    /// dict from `cursor`, visiting at most `10 * count` buckets as Redis does, and stops once
    /// the reply holds `count` items (a member and its score count as two, as in Redis).
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Listpack(entries) => {
                for (score, member) in entries {
                    visit(member, *score);
                }
                0
            }
            Repr::Skiplist(indexed) => {
                let mut cursor = cursor;
                let mut visited = 0usize;
                let steps_max = count.saturating_mul(10).max(1);
                for _ in 0..steps_max {
                    cursor = indexed.scores.scan(cursor, |member, score| {
                        visited += 1;
                        visit(member, *score);
                    });
                    if cursor == 0 || visited.saturating_mul(2) >= count {
                        break;
                    }
                }
                cursor
            }
        }
    }

    /// Moves every element into the skiplist form (never undone).
    pub fn convert(&mut self) {
        if let Repr::Listpack(entries) = &mut self.repr {
            let mut indexed = Indexed::new();
            for (score, member) in entries.drain(..) {
                indexed.insert(score, &member);
            }
            self.repr = Repr::Skiplist(Box::new(indexed));
        }
    }

    /// Builds a set from elements in any order with unique members, choosing the encoding as
    /// the incremental inserts of ZADD would.
    pub fn from_elements(elements: Vec<(f64, CompactBytes)>, limits: Limits) -> ZSet {
        let mut zset = ZSet::new();
        let fits = elements.len() <= limits.entries_max
            && elements
                .iter()
                .all(|(_, member)| member.len() <= limits.value_bytes_max);
        if fits {
            let mut entries = elements;
            for (score, _) in entries.iter_mut() {
                *score = listpack_score(*score);
            }
            entries.sort_by(|(score_a, member_a), (score_b, member_b)| {
                compare(*score_a, member_a, *score_b, member_b)
            });
            debug_assert!(entries.windows(2).all(|pair| pair[0].1 != pair[1].1));
            zset.repr = Repr::Listpack(entries);
        } else {
            let mut indexed = Indexed::new();
            for (score, member) in elements {
                indexed.insert(score, &member);
            }
            zset.repr = Repr::Skiplist(Box::new(indexed));
        }
        zset
    }

    /// Checks the representation's invariants (tests and debug assertions).
    pub fn check(&self) {
        match &self.repr {
            Repr::Listpack(entries) => {
                assert!(entries
                    .windows(2)
                    .all(|pair| compare(pair[0].0, &pair[0].1, pair[1].0, &pair[1].1)
                        == Ordering::Less));
            }
            Repr::Skiplist(indexed) => indexed.check(),
        }
    }
}

/// The skiplist encoding: ordered tree plus member -> score dict.
#[derive(Debug, Clone)]
struct Indexed {
    tree: Tree,
    scores: Dict<f64>,
}

impl Indexed {
    fn new() -> Indexed {
        Indexed {
            tree: Tree::new(),
            scores: Dict::new(collection_hasher()),
        }
    }

    fn len(&self) -> usize {
        debug_assert_eq!(self.tree.len(), self.scores.len());
        self.scores.len()
    }

    fn heap_bytes(&self) -> usize {
        let mut bytes = self.tree.heap_bytes();
        // A dict node: key, value, next pointer, plus the bucket pointer.
        bytes += self.scores.bucket_count() * std::mem::size_of::<usize>();
        self.scores.for_each(|member, _| {
            bytes += std::mem::size_of::<CompactBytes>() + 16 + member.heap_bytes();
        });
        bytes
    }

    fn insert(&mut self, score: f64, member: &[u8]) {
        let previous = self.scores.insert(CompactBytes::new(member), score);
        assert!(previous.is_none(), "insert is for new members");
        self.tree.insert(score, CompactBytes::new(member));
    }

    fn update(&mut self, member: &[u8], score: f64) {
        let slot = self
            .scores
            .get_mut(member)
            .expect("update is for present members");
        let previous = std::mem::replace(slot, score);
        let removed = self.tree.remove(previous, member);
        assert!(removed, "the tree holds every member of the dict");
        self.tree.insert(score, CompactBytes::new(member));
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (_, score) = self.scores.remove(member)?;
        let removed = self.tree.remove(score, member);
        assert!(removed, "the tree holds every member of the dict");
        Some(score)
    }

    fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let removed = self.tree.remove_range(start, end);
        for member in &removed {
            let gone = self.scores.remove(member);
            assert!(gone.is_some(), "the dict holds every member of the tree");
        }
        removed.len()
    }

    fn check(&self) {
        self.tree.check();
        assert_eq!(self.tree.len(), self.scores.len());
        for (score, member) in self.tree.iter_from(0, false) {
            assert_eq!(
                self.scores.get(member).map(|found| found.to_bits()),
                Some(score.to_bits())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(zset: &ZSet) -> Vec<(f64, Vec<u8>)> {
        zset.iter_range(0, zset.len(), false)
            .map(|(score, member)| (score, member.to_vec()))
            .collect()
    }

    #[test]
    fn orders_by_score_then_member_bytes() {
        let mut zset = ZSet::new();
        for (score, member) in [(2.0, "b"), (1.0, "z"), (2.0, "a"), (2.0, "ab"), (-1.0, "q")] {
            zset.insert(score, member.as_bytes(), Limits::ZSET_DEFAULT);
        }
        let order: Vec<Vec<u8>> = members(&zset).into_iter().map(|(_, m)| m).collect();
        assert_eq!(
            order,
            vec![
                b"q".to_vec(),
                b"z".to_vec(),
                b"a".to_vec(),
                b"ab".to_vec(),
                b"b".to_vec()
            ]
        );
        assert_eq!(zset.encoding(), "listpack");
    }

    #[test]
    fn converts_on_count_and_member_length_and_never_back() {
        let limits = Limits {
            entries_max: 3,
            value_bytes_max: 4,
        };
        let mut zset = ZSet::new();
        for index in 0..3 {
            zset.insert(f64::from(index), format!("m{index}").as_bytes(), limits);
        }
        assert_eq!(zset.encoding(), "listpack");
        zset.insert(9.0, b"m9", limits);
        assert_eq!(zset.encoding(), "skiplist");
        zset.remove_range(0, 4);
        assert!(zset.is_empty());
        assert_eq!(zset.encoding(), "skiplist");

        let mut long = ZSet::new();
        long.insert(1.0, b"12345", limits);
        assert_eq!(long.encoding(), "skiplist");
        long.check();
    }

    #[test]
    fn tree_rank_select_and_iteration_agree() {
        let limits = Limits {
            entries_max: 0,
            value_bytes_max: 0,
        };
        let mut zset = ZSet::new();
        for index in 0..1000u32 {
            let score = f64::from((index * 7919) % 101);
            zset.insert(score, format!("m{index}").as_bytes(), limits);
        }
        zset.check();
        let all = members(&zset);
        for (rank, (_, member)) in all.iter().enumerate() {
            assert_eq!(zset.rank(member), Some(rank));
        }
        let reversed: Vec<_> = zset
            .iter_range(10, 20, true)
            .map(|(score, member)| (score, member.to_vec()))
            .collect();
        let mut expected = all[10..20].to_vec();
        expected.reverse();
        assert_eq!(reversed, expected);
        assert_eq!(
            zset.count_score_below(50.0, false),
            all.iter().filter(|(s, _)| *s < 50.0).count()
        );
        assert_eq!(
            zset.count_score_below(50.0, true),
            all.iter().filter(|(s, _)| *s <= 50.0).count()
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, i8),
        Increment(u8, i8),
        Remove(u8),
        Pop(bool),
        RemoveRange(u8, u8),
        Query(u8, u8, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), any::<i8>()).prop_map(|(m, s)| Op::Add(m, s)),
            2 => (any::<u8>(), any::<i8>()).prop_map(|(m, s)| Op::Increment(m, s)),
            2 => any::<u8>().prop_map(Op::Remove),
            1 => any::<bool>().prop_map(Op::Pop),
            1 => (any::<u8>(), 0u8..4).prop_map(|(a, b)| Op::RemoveRange(a, b)),
            2 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(a, b, r)| Op::Query(a, b, r)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_a_sorted_vec_model(ops in proptest::collection::vec(op(), 1..400)) {
            let limits = Limits { entries_max: 16, value_bytes_max: 64 };
            let mut zset = ZSet::new();
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            let sort = |model: &mut Vec<(f64, Vec<u8>)>| {
                model.sort_by(|a, b| compare(a.0, &a.1, b.0, &b.1));
            };
            for op in ops {
                match op {
                    Op::Add(member, score) | Op::Increment(member, score) => {
                        let name = format!("m{}", member % 64).into_bytes();
                        let increment = matches!(op, Op::Increment(..));
                        let existing = model.iter().position(|(_, m)| *m == name);
                        let mut score = f64::from(score) / 4.0;
                        match existing {
                            Some(position) => {
                                if increment { score += model[position].0; }
                                model[position].0 = score;
                                zset.update(&name, score);
                            }
                            None => {
                                model.push((score, name.clone()));
                                zset.insert(score, &name, limits);
                            }
                        }
                        sort(&mut model);
                    }
                    Op::Remove(member) => {
                        let name = format!("m{}", member % 64).into_bytes();
                        let expected = model.iter().position(|(_, m)| *m == name).map(|p| model.remove(p).0);
                        prop_assert_eq!(zset.remove(&name), expected);
                    }
                    Op::Pop(max) => {
                        let expected = if model.is_empty() { None } else if max { model.pop() } else { Some(model.remove(0)) };
                        let got = zset.pop(max).map(|(s, m)| (s, m.to_vec()));
                        prop_assert_eq!(got, expected);
                    }
                    Op::RemoveRange(start, count) => {
                        let start = (start as usize).min(model.len());
                        let end = (start + count as usize).min(model.len());
                        model.drain(start..end);
                        prop_assert_eq!(zset.remove_range(start, end), end - start);
                    }
                    Op::Query(a, b, reverse) => {
                        let (start, end) = (a as usize % 70, b as usize % 70);
                        let got: Vec<_> = zset.iter_range(start, end, reverse).map(|(s, m)| (s, m.to_vec())).collect();
                        let end_clamped = end.min(model.len());
                        let start_clamped = start.min(end_clamped);
                        let mut expected = model[start_clamped..end_clamped].to_vec();
                        if reverse { expected.reverse(); }
                        prop_assert_eq!(got, expected);
                        let bound = f64::from(a as i8) / 4.0;
                        prop_assert_eq!(zset.count_score_below(bound, true), model.iter().filter(|(s, _)| *s <= bound).count());
                        prop_assert_eq!(zset.count_score_below(bound, false), model.iter().filter(|(s, _)| *s < bound).count());
                    }
                }
                prop_assert_eq!(zset.len(), model.len());
                if model.len() > limits.entries_max {
                    prop_assert_eq!(zset.encoding(), "skiplist");
                }
                zset.check();
                for (rank, (score, member)) in model.iter().enumerate() {
                    prop_assert_eq!(zset.rank(member), Some(rank));
                    prop_assert_eq!(zset.score(member), Some(*score));
                    prop_assert_eq!(zset.get(rank).map(|(s, m)| (s, m.to_vec())), Some((*score, member.clone())));
                }
            }
        }
    }
}
