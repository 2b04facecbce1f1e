//! Sets: Redis 7.0's two encodings and the set algebra its `t_set.c` performs on them.
//!
//! A set starts as an `intset` (a sorted `Vec<i64>`) when its first member is an integer in
//! Redis's canonical form (`string2ll`), and turns into a `hashtable` (a [`Dict`] of members)
//! as soon as a non-integer arrives or it grows past `set-max-intset-entries`. A set never
//! converts back in place; only commands that build a fresh set (SPOP keeping a remainder,
//! the STORE variants) may produce an intset again, exactly where Redis's do, because OBJECT
//! ENCODING and the reply order (intsets iterate ascending) depend on it.
//!
//! Invariants: an intset is strictly ascending and holds at most the threshold it was last
//! written with; a hashtable holds each member once, stored as bytes (integers as their
//! canonical decimal text).

use super::CompactBytes;
use crate::keyspace::dict::{collection_hasher, Dict};
use crate::protocol::parser::parse_i64;
use bytes::Bytes;
use rand::Rng;

/// Redis caps `set-max-intset-entries` at 2^30 because of intset internals.
pub const INTSET_ENTRIES_LIMIT: usize = 1 << 30;

/// Redis's SPOP_MOVE_STRATEGY_MUL: SPOP with a count rebuilds the remainder instead of
/// popping one by one when `remaining * 5 <= count`.
pub const SPOP_MOVE_STRATEGY_MUL: usize = 5;

/// A member seen while walking a set, without formatting integers until needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The member as an owned reply string.
    pub fn to_bytes(self) -> Bytes {
        match self {
            Member::Int(value) => {
                let mut buffer = itoa::Buffer::new();
                Bytes::copy_from_slice(buffer.format(value).as_bytes())
            }
            Member::Bytes(bytes) => Bytes::copy_from_slice(bytes),
        }
    }

    /// Calls `with` on the member's bytes (integers formatted on the stack).
    pub fn with_bytes<T>(self, with: impl FnOnce(&[u8]) -> T) -> T {
        match self {
            Member::Int(value) => {
                let mut buffer = itoa::Buffer::new();
                with(buffer.format(value).as_bytes())
            }
            Member::Bytes(bytes) => with(bytes),
        }
    }

    /// The integer an intset would store for this member, if any.
    fn as_int(self) -> Option<i64> {
        match self {
            Member::Int(value) => Some(value),
            Member::Bytes(bytes) => parse_i64(bytes),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Encoding {
    /// Strictly ascending integers.
    Ints(Vec<i64>),
    Table(Dict<()>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Set {
    encoding: Encoding,
}

impl Default for Set {
    fn default() -> Set {
        Set::new()
    }
}

impl Set {
    /// An empty intset (Redis's `createIntsetObject`, the start of every computed set).
    pub fn new() -> Set {
        Set {
            encoding: Encoding::Ints(Vec::new()),
        }
    }

    /// An empty set encoded for its first member (Redis's `setTypeCreate`).
    pub fn for_first_member(member: &[u8]) -> Set {
        if parse_i64(member).is_some() {
            Set::new()
        } else {
            Set {
                encoding: Encoding::Table(Dict::new(collection_hasher())),
            }
        }
    }

    /// A hashtable set of the members `table` holds (a loader builds the table at its final
    /// size, each member hashed once, with [`collection_hasher`]).
    pub fn from_table(table: Dict<()>) -> Set {
        Set {
            encoding: Encoding::Table(table),
        }
    }

    pub fn len(&self) -> usize {
        match &self.encoding {
            Encoding::Ints(ints) => ints.len(),
            Encoding::Table(table) => table.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match &self.encoding {
            Encoding::Ints(_) => "intset",
            Encoding::Table(_) => "hashtable",
        }
    }

    pub fn is_intset(&self) -> bool {
        matches!(self.encoding, Encoding::Ints(_))
    }

    pub fn heap_bytes(&self) -> usize {
        match &self.encoding {
            Encoding::Ints(ints) => ints.capacity() * std::mem::size_of::<i64>(),
            Encoding::Table(table) => {
                // A bucket pointer each, and per member a node: next pointer plus the key.
                let node_bytes = std::mem::size_of::<usize>() + std::mem::size_of::<CompactBytes>();
                table.bucket_count() * std::mem::size_of::<usize>()
                    + table.len() * node_bytes
                    + sampled_member_heap_bytes(table)
            }
        }
    }

    /// Redis's `setTypeAdd`: true if `member` was new. An intset converts to a hashtable on
    /// a non-integer member or when it would exceed `intset_entries_max`.
    pub fn add(&mut self, member: &[u8], intset_entries_max: usize) -> bool {
        self.add_member(Member::Bytes(member), intset_entries_max)
    }

    /// `add` for a member taken from another set.
    pub fn add_member(&mut self, member: Member<'_>, intset_entries_max: usize) -> bool {
        let intset_entries_max = intset_entries_max.min(INTSET_ENTRIES_LIMIT);
        if let Encoding::Ints(ints) = &mut self.encoding {
            match member.as_int() {
                Some(value) => {
                    let Err(position) = ints.binary_search(&value) else {
                        return false;
                    };
                    ints.insert(position, value);
                    if ints.len() > intset_entries_max {
                        self.convert_to_table();
                    }
                    return true;
                }
                None => self.convert_to_table(),
            }
        }
        let Encoding::Table(table) = &mut self.encoding else {
            unreachable!("converted above");
        };
        member.with_bytes(|bytes| {
            let hash = table.hash(bytes);
            if table.get_hashed(hash, bytes).is_some() {
                false
            } else {
                table.insert_new_hashed(hash, CompactBytes::new(bytes), ());
                true
            }
        })
    }

    /// Redis's `setTypeRemove`: true if `member` was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.remove_member(Member::Bytes(member))
    }

    pub fn remove_member(&mut self, member: Member<'_>) -> bool {
        match &mut self.encoding {
            Encoding::Ints(ints) => {
                let Some(value) = member.as_int() else {
                    return false;
                };
                match ints.binary_search(&value) {
                    Ok(position) => {
                        ints.remove(position);
                        true
                    }
                    Err(_) => false,
                }
            }
            Encoding::Table(table) => member.with_bytes(|bytes| table.remove(bytes).is_some()),
        }
    }

    /// Redis's `setTypeIsMember`.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.contains_member(Member::Bytes(member))
    }

    pub fn contains_member(&self, member: Member<'_>) -> bool {
        match &self.encoding {
            Encoding::Ints(ints) => member
                .as_int()
                .is_some_and(|value| ints.binary_search(&value).is_ok()),
            Encoding::Table(table) => member.with_bytes(|bytes| table.contains_key(bytes)),
        }
    }

    /// Visits every member in the set's iteration order (ascending for an intset).
    pub fn for_each(&self, mut visit: impl FnMut(Member<'_>)) {
        match &self.encoding {
            Encoding::Ints(ints) => ints.iter().for_each(|&value| visit(Member::Int(value))),
            Encoding::Table(table) => table.for_each(|member, _| visit(Member::Bytes(member))),
        }
    }

    /// Every member, in iteration order, as reply strings.
    pub fn members(&self) -> Vec<Bytes> {
        let mut members = Vec::with_capacity(self.len());
        self.for_each(|member| members.push(member.to_bytes()));
        debug_assert_eq!(members.len(), self.len());
        members
    }

    /// A uniformly (intset) or near-uniformly (hashtable) chosen member.
    pub fn random(&self, rng: &mut impl Rng) -> Option<Bytes> {
        match &self.encoding {
            Encoding::Ints(ints) if ints.is_empty() => None,
            Encoding::Ints(ints) => {
                Some(Member::Int(ints[rng.gen_range(0..ints.len())]).to_bytes())
            }
            Encoding::Table(table) => table
                .random(rng)
                .map(|(member, _)| Bytes::copy_from_slice(member)),
        }
    }

    /// Removes and returns a random member (Redis's `setTypePopRandom`).
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<Bytes> {
        let member = self.random(rng)?;
        let removed = self.remove(&member);
        debug_assert!(removed, "a member just drawn from the set");
        Some(member)
    }

    /// One step of SSCAN: a hashtable walks its dict from `cursor` and returns the next
    /// cursor; an intset visits everything and returns 0, as Redis does for small encodings.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(Member<'_>)) -> u64 {
        match &self.encoding {
            Encoding::Ints(_) => {
                self.for_each(visit);
                0
            }
            Encoding::Table(table) => table.scan(cursor, |member, _| visit(Member::Bytes(member))),
        }
    }

    /// Redis's `setTypeConvert(OBJ_ENCODING_HT)`.
    pub fn convert_to_table(&mut self) {
        let Encoding::Ints(ints) = &self.encoding else {
            return;
        };
        let mut table = Dict::new(collection_hasher());
        let mut buffer = itoa::Buffer::new();
        for &value in ints {
            table.insert_new(CompactBytes::new(buffer.format(value).as_bytes()), ());
        }
        debug_assert_eq!(table.len(), ints.len());
        self.encoding = Encoding::Table(table);
    }

    #[cfg(test)]
    fn assert_invariants(&self) {
        if let Encoding::Ints(ints) = &self.encoding {
            assert!(
                ints.windows(2).all(|pair| pair[0] < pair[1]),
                "intset not ascending"
            );
        }
    }
}

/// Members whose heap bytes MEMORY USAGE measures before extrapolating, so it stays cheap
/// on a huge set (Redis samples too, 5 elements by default).
const HEAP_SAMPLE_MEMBERS: usize = 64;

/// The members' own heap bytes: exact for small tables, else the average of a sample walked
/// with the dict's cursor, times the size.
fn sampled_member_heap_bytes(table: &Dict<()>) -> usize {
    let mut sampled = 0usize;
    let mut sampled_bytes = 0usize;
    let mut cursor = 0;
    // Each step visits at least one bucket; the bound keeps a sparse table from walking long.
    for _ in 0..HEAP_SAMPLE_MEMBERS * 4 {
        cursor = table.scan(cursor, |member, _| {
            sampled += 1;
            sampled_bytes += member.heap_bytes();
        });
        if cursor == 0 || sampled >= HEAP_SAMPLE_MEMBERS {
            break;
        }
    }
    if cursor == 0 || sampled == 0 {
        return sampled_bytes;
    }
    sampled_bytes.saturating_mul(table.len()) / sampled
}

// ---------------------------------------------------------------------------------------------
// Set algebra (Redis's sinterGenericCommand and sunionDiffGenericCommand)
// ---------------------------------------------------------------------------------------------

/// Walks the intersection of `sets` (all present: a missing key empties the result before
/// this is called), smallest set first as Redis does, so the order is that set's iteration
/// order. `visit` returns false to stop early (SINTERCARD's LIMIT).
pub fn intersection_walk(sets: &[&Set], mut visit: impl FnMut(Member<'_>) -> bool) {
    let mut sorted: Vec<&Set> = sets.to_vec();
    sorted.sort_by_key(|set| set.len());
    let Some((&smallest, others)) = sorted.split_first() else {
        return;
    };
    let mut done = false;
    smallest.for_each(|member| {
        if done {
            return;
        }
        let everywhere = others
            .iter()
            .all(|other| std::ptr::eq(*other, smallest) || other.contains_member(member));
        if everywhere && !visit(member) {
            done = true;
        }
    });
}

/// The intersection as a new set, built the way SINTERSTORE builds it (intset first).
pub fn intersection(sets: &[&Set], intset_entries_max: usize) -> Set {
    let mut result = Set::new();
    intersection_walk(sets, |member| {
        result.add_member(member, intset_entries_max);
        true
    });
    result
}

/// SUNION: every member of every present set, added to a fresh intset in key order.
pub fn union(sets: &[Option<&Set>], intset_entries_max: usize) -> Set {
    let mut result = Set::new();
    for set in sets.iter().flatten() {
        set.for_each(|member| {
            result.add_member(member, intset_entries_max);
        });
    }
    result
}

/// SDIFF: the first set minus the others, with Redis's choice between its two algorithms,
/// because the choice decides the result's encoding (algorithm 2 may convert the result to a
/// hashtable while it still holds all of the first set).
pub fn difference(sets: &[Option<&Set>], intset_entries_max: usize) -> Set {
    let mut result = Set::new();
    let Some(Some(first)) = sets.first() else {
        return result;
    };
    let present = sets.iter().flatten().count();
    let algorithm_one_work = first.len().saturating_mul(present) / 2;
    let algorithm_two_work: usize = sets.iter().flatten().map(|set| set.len()).sum();
    if algorithm_one_work <= algorithm_two_work {
        let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
        first.for_each(|member| {
            let elsewhere = others
                .iter()
                .any(|other| std::ptr::eq(*other, *first) || other.contains_member(member));
            if !elsewhere {
                result.add_member(member, intset_entries_max);
            }
        });
    } else {
        for (index, set) in sets.iter().enumerate() {
            let Some(set) = set else { continue };
            set.for_each(|member| {
                if index == 0 {
                    result.add_member(member, intset_entries_max);
                } else {
                    result.remove_member(member);
                }
            });
            // Nothing more can be removed from an empty result.
            if result.is_empty() {
                break;
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set_of(members: &[&str], intset_entries_max: usize) -> Set {
        let mut set = Set::for_first_member(members[0].as_bytes());
        for member in members {
            set.add(member.as_bytes(), intset_entries_max);
        }
        set
    }

    fn sorted_members(set: &Set) -> Vec<Vec<u8>> {
        let mut members: Vec<Vec<u8>> = set.members().iter().map(|m| m.to_vec()).collect();
        members.sort();
        members
    }

    #[test]
    fn integers_stay_an_intset_in_ascending_order() {
        let set = set_of(&["5", "-3", "10", "5", "0"], 512);
        assert_eq!(set.encoding(), "intset");
        assert_eq!(set.len(), 4);
        assert_eq!(set.members(), vec!["-3", "0", "5", "10"]);
        set.assert_invariants();
    }

    #[test]
    fn non_canonical_integers_convert_to_a_hashtable() {
        for odd in [
            "01",
            "+1",
            " 1",
            "-0",
            "1.0",
            "9223372036854775808",
            "",
            "abc",
        ] {
            let mut set = set_of(&["1", "2"], 512);
            assert!(set.add(odd.as_bytes(), 512));
            assert_eq!(set.encoding(), "hashtable", "member {odd:?}");
            assert!(set.contains(b"1") && set.contains(odd.as_bytes()));
            assert!(!set.add(b"2", 512));
        }
        let edges = set_of(&["-9223372036854775808", "9223372036854775807"], 512);
        assert_eq!(edges.encoding(), "intset");
    }

    #[test]
    fn the_threshold_converts_when_exceeded_and_never_back() {
        let mut set = set_of(&["1", "2", "3"], 3);
        assert_eq!(set.encoding(), "intset");
        set.add(b"4", 3);
        assert_eq!(set.encoding(), "hashtable");
        set.remove(b"4");
        set.remove(b"3");
        assert_eq!(set.encoding(), "hashtable");
        assert_eq!(sorted_members(&set), vec![b"1".to_vec(), b"2".to_vec()]);
        // A threshold of 0 still creates an intset for an integer, then converts it.
        let zero = set_of(&["7"], 0);
        assert_eq!(zero.encoding(), "hashtable");
    }

    #[test]
    fn heap_bytes_grow_with_the_members() {
        let ints = set_of(&["1", "2", "3"], 512);
        assert!(ints.heap_bytes() >= 3 * std::mem::size_of::<i64>());
        let long_members: Vec<String> = (0..1000).map(|i| format!("{i:0>40}")).collect();
        let refs: Vec<&str> = long_members.iter().map(String::as_str).collect();
        let table = set_of(&refs, 512);
        // Every member is 40 bytes on the heap; the sample must see that.
        assert!(table.heap_bytes() >= 1000 * 40, "{}", table.heap_bytes());
        assert!(table.heap_bytes() < 1000 * 200, "{}", table.heap_bytes());
    }

    #[test]
    fn first_member_decides_the_encoding() {
        assert!(Set::for_first_member(b"12").is_intset());
        assert!(!Set::for_first_member(b"x").is_intset());
    }

    #[test]
    fn intset_scan_returns_everything_with_cursor_zero() {
        let set = set_of(&["3", "1", "2"], 512);
        let mut seen = Vec::new();
        assert_eq!(set.scan(12345, |member| seen.push(member.to_bytes())), 0);
        assert_eq!(seen, vec!["1", "2", "3"]);
    }

    #[test]
    fn hashtable_scan_visits_every_member() {
        let members: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let set = set_of(&refs, 512);
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        for _ in 0..10_000 {
            cursor = set.scan(cursor, |member| {
                seen.insert(member.to_bytes());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(cursor, 0);
        assert_eq!(seen.len(), 200);
    }

    #[test]
    fn algebra_builds_intsets_from_scratch() {
        let a = set_of(&["1", "2", "3", "x"], 512);
        let b = set_of(&["1", "2", "3", "y"], 512);
        let both = intersection(&[&a, &b], 512);
        assert_eq!(both.encoding(), "intset");
        assert_eq!(both.members(), vec!["1", "2", "3"]);
        let only_a = difference(&[Some(&a), Some(&b)], 512);
        assert_eq!(only_a.members(), vec!["x"]);
        assert_eq!(union(&[Some(&a), None, Some(&b)], 512).len(), 5);
        assert!(difference(&[Some(&a), Some(&a)], 512).is_empty());
        assert!(difference(&[None, Some(&a)], 512).is_empty());
    }

    #[test]
    fn difference_algorithm_two_keeps_the_hashtable_encoding() {
        // First set big, the others tiny: Redis copies the first set then removes.
        let big: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = big.iter().map(String::as_str).collect();
        let first = set_of(&refs, 10);
        let small = set_of(&["1"], 10);
        let result = difference(
            &[Some(&first), Some(&small), Some(&small), Some(&small)],
            10,
        );
        assert_eq!(result.len(), 19);
        assert_eq!(result.encoding(), "hashtable");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(Vec<String>),
        Remove(Vec<String>),
        Pop,
        Move(String),
        Inter,
        Union,
        Diff,
    }

    fn member() -> impl Strategy<Value = String> {
        prop_oneof![
            (-20i64..20).prop_map(|value| value.to_string()),
            "[a-c]{1,2}",
            Just("01".to_string()),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => proptest::collection::vec(member(), 1..6).prop_map(Op::Add),
            2 => proptest::collection::vec(member(), 1..4).prop_map(Op::Remove),
            1 => Just(Op::Pop),
            1 => member().prop_map(Op::Move),
            1 => Just(Op::Inter),
            1 => Just(Op::Union),
            1 => Just(Op::Diff),
        ]
    }

    /// True when every member is a canonical integer (a precondition of the intset encoding).
    fn all_integers(model: &BTreeSet<Vec<u8>>) -> bool {
        model.iter().all(|member| parse_i64(member).is_some())
    }

    fn check(set: &Set, model: &BTreeSet<Vec<u8>>) {
        set.assert_invariants();
        assert_eq!(set.len(), model.len());
        let actual: BTreeSet<Vec<u8>> = set.members().iter().map(|m| m.to_vec()).collect();
        assert_eq!(&actual, model);
    }

    proptest! {
        #[test]
        fn operations_match_a_btreeset_model(
            ops in proptest::collection::vec(op(), 1..60),
            threshold in 0usize..8,
            seed in any::<u64>(),
        ) {
            use rand::SeedableRng;
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let mut sets = [Set::new(), Set::new()];
            let mut models = [BTreeSet::<Vec<u8>>::new(), BTreeSet::new()];
            // Once a hashtable, always a hashtable (until rebuilt by an algebra op).
            let mut converted = [false, false];
            for (step, op) in ops.iter().enumerate() {
                let target = step % 2;
                match op {
                    Op::Add(members) => {
                        for member in members {
                            let added = sets[target].add(member.as_bytes(), threshold);
                            prop_assert_eq!(added, models[target].insert(member.clone().into_bytes()));
                        }
                    }
                    Op::Remove(members) => {
                        for member in members {
                            let removed = sets[target].remove(member.as_bytes());
                            prop_assert_eq!(removed, models[target].remove(member.as_bytes()));
                        }
                    }
                    Op::Pop => {
                        let popped = sets[target].pop_random(&mut rng);
                        match popped {
                            Some(member) => prop_assert!(models[target].remove(&member[..])),
                            None => prop_assert!(models[target].is_empty()),
                        }
                    }
                    Op::Move(member) => {
                        let (source, destination) = (target, 1 - target);
                        let moved = sets[source].remove(member.as_bytes());
                        prop_assert_eq!(moved, models[source].remove(member.as_bytes()));
                        if moved {
                            sets[destination].add(member.as_bytes(), threshold);
                            models[destination].insert(member.clone().into_bytes());
                        }
                    }
                    Op::Inter | Op::Union | Op::Diff => {
                        let (a, b) = (&sets[0], &sets[1]);
                        let (result, expected): (Set, BTreeSet<Vec<u8>>) = match op {
                            Op::Inter => (
                                intersection(&[a, b], threshold),
                                models[0].intersection(&models[1]).cloned().collect(),
                            ),
                            Op::Union => (
                                union(&[Some(a), Some(b)], threshold),
                                models[0].union(&models[1]).cloned().collect(),
                            ),
                            _ => (
                                difference(&[Some(a), Some(b)], threshold),
                                models[0].difference(&models[1]).cloned().collect(),
                            ),
                        };
                        check(&result, &expected);
                        if matches!(op, Op::Inter | Op::Union) {
                            // Built member by member into a fresh intset: an intset exactly
                            // when every member is an integer and the count fits.
                            let fits = all_integers(&expected) && expected.len() <= threshold;
                            prop_assert_eq!(result.is_intset(), fits);
                        }
                        sets[target] = result;
                        models[target] = expected;
                        converted[target] = false;
                    }
                }
                for index in 0..2 {
                    if converted[index] {
                        prop_assert!(!sets[index].is_intset(), "converted back in place");
                    }
                    converted[index] = !sets[index].is_intset();
                    if sets[index].is_intset() {
                        prop_assert!(all_integers(&models[index]));
                        prop_assert!(models[index].len() <= threshold);
                    }
                }
                check(&sets[0], &models[0]);
                check(&sets[1], &models[1]);
            }
        }
    }
}
