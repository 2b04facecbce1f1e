//! Hashes: Redis 7.0's two encodings and the rules that move a hash between them.
//!
//! A new hash is a *listpack*: a vector of `(field, value)` pairs in insertion order, which is
//! the order HGETALL/HKEYS/HVALS/HSCAN report for small hashes in Redis. Overwriting a field
//! keeps its position, as `lpReplace` does. Once the hash holds more than
//! `hash-max-listpack-entries` pairs, or is asked to hold a field or value longer than
//! `hash-max-listpack-value` bytes, it becomes a *hashtable* (a [`Dict`]) and never converts
//! back, so OBJECT ENCODING answers exactly as Redis does for the same history.
//!
//! Invariants: listpack fields are unique; a listpack never holds more than its limit's entries
//! after a write (the write that exceeds it converts); the keyspace never stores an empty hash
//! (the family deletes the key when the last field goes).

use super::CompactBytes;
use crate::keyspace::dict::{collection_hasher, Dict};

pub use super::ListpackLimits as Limits;

#[derive(Debug, Clone, PartialEq)]
enum Encoding {
    /// Insertion-ordered pairs with unique fields (Redis's listpack).
    Listpack(Vec<(CompactBytes, CompactBytes)>),
    /// Redis's dict, walked by HSCAN's reverse-binary cursor.
    Table(Dict<CompactBytes>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hash {
    encoding: Encoding,
}

impl Default for Hash {
    fn default() -> Hash {
        Hash::new()
    }
}

impl Hash {
    /// An empty listpack hash (Redis's `createHashObject`).
    pub fn new() -> Hash {
        Hash {
            encoding: Encoding::Listpack(Vec::new()),
        }
    }

    /// A listpack hash of `pairs`, in their order; the fields must be unique (a loader that
    /// checked them builds the vector at its final size).
    pub fn from_listpack_pairs(pairs: Vec<(CompactBytes, CompactBytes)>) -> Hash {
        debug_assert!(
            {
                let mut fields: Vec<&[u8]> =
                    pairs.iter().map(|(field, _)| field.as_slice()).collect();
                fields.sort_unstable();
                fields.windows(2).all(|pair| pair[0] != pair[1])
            },
            "unique fields"
        );
        Hash {
            encoding: Encoding::Listpack(pairs),
        }
    }

    pub fn len(&self) -> usize {
        match &self.encoding {
            Encoding::Listpack(pairs) => pairs.len(),
            Encoding::Table(dict) => dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match &self.encoding {
            Encoding::Listpack(_) => "listpack",
            Encoding::Table(_) => "hashtable",
        }
    }

    pub fn is_listpack(&self) -> bool {
        matches!(self.encoding, Encoding::Listpack(_))
    }

    /// Owned heap bytes: the pair vector or the dict's buckets and nodes, plus long strings.
    pub fn heap_bytes(&self) -> usize {
        let pair_bytes = 2 * std::mem::size_of::<CompactBytes>();
        // A dict node holds a key, a value and the chain pointer.
        let node_bytes = pair_bytes + std::mem::size_of::<usize>();
        let mut strings = 0;
        self.for_each(|field, value| {
            strings += field.heap_bytes() + value.heap_bytes();
        });
        match &self.encoding {
            Encoding::Listpack(pairs) => pairs.capacity() * pair_bytes + strings,
            Encoding::Table(dict) => {
                dict.bucket_count() * std::mem::size_of::<usize>()
                    + dict.len() * node_bytes
                    + strings
            }
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.encoding {
            Encoding::Listpack(pairs) => pairs
                .iter()
                .find(|(name, _)| name.as_slice() == field)
                .map(|(_, value)| value.as_slice()),
            Encoding::Table(dict) => dict.get(field).map(CompactBytes::as_slice),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Redis's `hashTypeTryConversion`: a listpack that is about to receive any argument longer
    /// than the value limit becomes a hashtable first.
    pub fn fit_lengths(&mut self, lengths: impl IntoIterator<Item = usize>, limits: Limits) {
        if self.is_listpack() && lengths.into_iter().any(|len| len > limits.value_bytes_max) {
            self.convert();
        }
    }

    /// Redis's `hashTypeSet`: sets `field` to `value`, converting to a hashtable when the pair
    /// is too long for a listpack or the count exceeds the entry limit. True when the field is
    /// new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        self.fit_lengths([field.len(), value.len()], limits);
        let created = match &mut self.encoding {
            Encoding::Listpack(pairs) => {
                match pairs.iter_mut().find(|(name, _)| name.as_slice() == field) {
                    Some((_, slot)) => {
                        // Replaced in place: a listpack keeps the field's position.
                        slot.assign(value);
                        false
                    }
                    None => {
                        pairs.push((CompactBytes::new(field), CompactBytes::new(value)));
                        true
                    }
                }
            }
            Encoding::Table(dict) => {
                let hash = dict.hash(field);
                match dict.get_mut_hashed(hash, field) {
                    Some(slot) => {
                        slot.assign(value);
                        false
                    }
                    None => {
                        let (field, value) = (CompactBytes::new(field), CompactBytes::new(value));
                        dict.insert_new_hashed(hash, field, value);
                        true
                    }
                }
            }
        };
        if self.is_listpack() && self.len() > limits.entries_max {
            self.convert();
        }
        debug_assert_eq!(self.get(field), Some(value));
        debug_assert!(!self.is_listpack() || self.len() <= limits.entries_max);
        created
    }

    /// Removes `field`; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = match &mut self.encoding {
            Encoding::Listpack(pairs) => {
                match pairs.iter().position(|(name, _)| name.as_slice() == field) {
                    Some(index) => {
                        // `remove`, not `swap_remove`: the listpack order must survive.
                        pairs.remove(index);
                        true
                    }
                    None => false,
                }
            }
            Encoding::Table(dict) => {
                let removed = dict.remove(field).is_some();
                // Redis shrinks a mostly empty dict after HDEL (htNeedsResize + dictResize).
                dict.maintain(1);
                removed
            }
        };
        debug_assert!(!self.contains(field));
        removed
    }

    /// Visits every pair: insertion order for a listpack, dict order for a hashtable.
    pub fn for_each(&self, mut visit: impl FnMut(&CompactBytes, &CompactBytes)) {
        match &self.encoding {
            Encoding::Listpack(pairs) => {
                for (field, value) in pairs {
                    visit(field, value);
                }
            }
            Encoding::Table(dict) => dict.for_each(visit),
        }
    }

    /// One HSCAN step from `cursor`: a listpack visits everything and returns 0 (the cursor is
    /// ignored, as in Redis); a hashtable walks one dict cursor step.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&CompactBytes, &CompactBytes)) -> u64 {
        match &self.encoding {
            Encoding::Listpack(pairs) => {
                for (field, value) in pairs {
                    visit(field, value);
                }
                0
            }
            Encoding::Table(dict) => dict.scan(cursor, visit),
        }
    }

    /// A uniformly chosen pair (near-uniform for a hashtable, like Redis's dictGetFairRandomKey).
    pub fn random(&self, rng: &mut impl rand::Rng) -> Option<(&[u8], &[u8])> {
        match &self.encoding {
            Encoding::Listpack(pairs) => {
                if pairs.is_empty() {
                    return None;
                }
                let (field, value) = &pairs[rng.gen_range(0..pairs.len())];
                Some((field.as_slice(), value.as_slice()))
            }
            Encoding::Table(dict) => dict
                .random(rng)
                .map(|(field, value)| (field.as_slice(), value.as_slice())),
        }
    }

    /// Listpack to hashtable (Redis's `hashTypeConvertListpack`); never the other way.
    pub fn convert(&mut self) {
        let Encoding::Listpack(pairs) = &mut self.encoding else {
            return;
        };
        let pairs = std::mem::take(pairs);
        let count = pairs.len();
        let mut dict = Dict::new(collection_hasher());
        for (field, value) in pairs {
            dict.insert_new(field, value);
        }
        assert_eq!(dict.len(), count, "listpack fields are unique");
        self.encoding = Encoding::Table(dict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs_of(hash: &Hash) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut pairs = Vec::new();
        hash.for_each(|field, value| {
            pairs.push((field.as_slice().to_vec(), value.as_slice().to_vec()))
        });
        pairs
    }

    /// Every pair through repeated scan calls, as HSCAN walks it.
    fn scanned(hash: &Hash) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut pairs = Vec::new();
        let mut cursor = 0;
        for _ in 0..100_000 {
            cursor = hash.scan(cursor, |field, value| {
                pairs.push((field.as_slice().to_vec(), value.as_slice().to_vec()))
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(cursor, 0, "the walk ends");
        pairs.sort();
        pairs.dedup();
        pairs
    }

    #[test]
    fn listpack_keeps_insertion_order_across_updates_and_deletes() {
        let mut hash = Hash::new();
        for field in ["z", "y", "x", "w"] {
            assert!(hash.set(field.as_bytes(), b"1", Limits::HASH_DEFAULT));
        }
        assert!(!hash.set(b"y", b"22", Limits::HASH_DEFAULT));
        assert!(hash.remove(b"x"));
        assert!(!hash.remove(b"x"));
        assert!(hash.set(b"x", b"33", Limits::HASH_DEFAULT));
        let fields: Vec<Vec<u8>> = pairs_of(&hash)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(
            fields,
            [b"z".to_vec(), b"y".to_vec(), b"w".to_vec(), b"x".to_vec()]
        );
        assert_eq!(hash.get(b"y"), Some(&b"22"[..]));
        assert_eq!(hash.encoding(), "listpack");
    }

    #[test]
    fn thresholds_convert_exactly_past_the_limits_and_never_back() {
        let limits = Limits {
            entries_max: 2,
            value_bytes_max: 3,
        };
        let mut hash = Hash::new();
        hash.set(b"a", b"abc", limits);
        hash.set(b"b", b"1", limits);
        assert_eq!(
            hash.encoding(),
            "listpack",
            "at the limits is still a listpack"
        );
        hash.set(b"c", b"1", limits);
        assert_eq!(hash.encoding(), "hashtable");
        hash.remove(b"a");
        hash.remove(b"b");
        assert_eq!(hash.encoding(), "hashtable");
        assert_eq!(pairs_of(&hash), [(b"c".to_vec(), b"1".to_vec())]);

        let mut long_value = Hash::new();
        long_value.set(b"a", b"abcd", limits);
        assert_eq!(long_value.encoding(), "hashtable");
        let mut long_field = Hash::new();
        long_field.set(b"abcd", b"", limits);
        assert_eq!(long_field.encoding(), "hashtable");
        let mut fitted = Hash::new();
        fitted.fit_lengths([1, 4], limits);
        assert_eq!(
            fitted.encoding(),
            "hashtable",
            "conversion happens before any write"
        );
        assert!(fitted.is_empty());
    }

    #[test]
    fn listpack_scan_returns_everything_with_cursor_zero() {
        let mut hash = Hash::new();
        hash.set(b"a", b"1", Limits::HASH_DEFAULT);
        hash.set(b"b", b"2", Limits::HASH_DEFAULT);
        let mut seen = Vec::new();
        let next = hash.scan(12345, |field, _| seen.push(field.as_slice().to_vec()));
        assert_eq!(next, 0);
        assert_eq!(seen, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn random_picks_only_present_pairs() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut hash = Hash::new();
        assert_eq!(hash.random(&mut rng), None);
        let limits = Limits {
            entries_max: 4,
            value_bytes_max: 64,
        };
        for index in 0..10u8 {
            hash.set(&[b'f', index], &[index], limits);
        }
        assert_eq!(hash.encoding(), "hashtable");
        for _ in 0..100 {
            let (field, value) = hash.random(&mut rng).expect("non-empty");
            assert_eq!(hash.get(field), Some(value));
        }
    }

    #[test]
    fn heap_bytes_grows_with_content() {
        let mut hash = Hash::new();
        let empty = hash.heap_bytes();
        hash.set(b"field", &[b'x'; 100], Limits::HASH_DEFAULT);
        assert!(hash.heap_bytes() >= empty + 100);
    }

    #[derive(Debug, Clone)]
    enum Operation {
        Set(u8, Vec<u8>),
        SetPairs(Vec<(u8, Vec<u8>)>),
        Remove(u8),
    }

    fn field_name(index: u8) -> Vec<u8> {
        // Field lengths vary with the index so the value-length threshold also sees fields.
        let mut name = vec![b'f'; 1 + (index % 5) as usize];
        name.push(b'a' + index);
        name
    }

    fn operation() -> impl Strategy<Value = Operation> {
        let value = proptest::collection::vec(b'0'..=b'9', 0..6);
        prop_oneof![
            4 => (0u8..12, value.clone()).prop_map(|(field, value)| Operation::Set(field, value)),
            1 => proptest::collection::vec((0u8..12, value), 1..4).prop_map(Operation::SetPairs),
            3 => (0u8..12).prop_map(Operation::Remove),
        ]
    }

    proptest! {
        /// The hash behaves as an insertion-ordered map, and its encoding is a hashtable
        /// exactly when some write went past a threshold.
        #[test]
        fn hash_matches_an_ordered_map_model(
            operations in proptest::collection::vec(operation(), 1..120),
            entries_max in 0usize..8,
            value_bytes_max in 1usize..7,
        ) {
            let limits = Limits { entries_max, value_bytes_max };
            let mut hash = Hash::new();
            let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut converted = false;
            let model_set = |model: &mut Vec<(Vec<u8>, Vec<u8>)>, field: Vec<u8>, value: Vec<u8>| {
                match model.iter_mut().find(|(name, _)| *name == field) {
                    Some((_, slot)) => { *slot = value; false }
                    None => { model.push((field, value)); true }
                }
            };
            for operation in operations {
                match operation {
                    Operation::Set(index, value) => {
                        let field = field_name(index);
                        converted |= field.len() > value_bytes_max || value.len() > value_bytes_max;
                        let created = hash.set(&field, &value, limits);
                        prop_assert_eq!(created, model_set(&mut model, field, value));
                        converted |= model.len() > entries_max;
                    }
                    Operation::SetPairs(pairs) => {
                        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
                            pairs.into_iter().map(|(index, value)| (field_name(index), value)).collect();
                        let lengths = pairs.iter().flat_map(|(field, value)| [field.len(), value.len()]);
                        converted |= lengths.clone().any(|len| len > value_bytes_max);
                        hash.fit_lengths(lengths, limits);
                        for (field, value) in pairs {
                            let created = hash.set(&field, &value, limits);
                            prop_assert_eq!(created, model_set(&mut model, field, value));
                            converted |= model.len() > entries_max;
                        }
                    }
                    Operation::Remove(index) => {
                        let field = field_name(index);
                        let position = model.iter().position(|(name, _)| *name == field);
                        if let Some(position) = position {
                            model.remove(position);
                        }
                        prop_assert_eq!(hash.remove(&field), position.is_some());
                    }
                }
                prop_assert_eq!(hash.len(), model.len());
                prop_assert_eq!(hash.encoding(), if converted { "hashtable" } else { "listpack" });
                for index in 0..12 {
                    let field = field_name(index);
                    let expected = model.iter().find(|(name, _)| *name == field).map(|(_, value)| value.as_slice());
                    prop_assert_eq!(hash.get(&field), expected);
                }
                let mut sorted = model.clone();
                sorted.sort();
                if converted {
                    let mut pairs = pairs_of(&hash);
                    pairs.sort();
                    prop_assert_eq!(&pairs, &sorted);
                } else {
                    prop_assert_eq!(&pairs_of(&hash), &model);
                }
                prop_assert_eq!(&scanned(&hash), &sorted);
            }
        }
    }
}
