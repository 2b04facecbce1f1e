//! Sorted sets. (Representation being built: see the sorted-sets family.)

use super::CompactBytes;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ZSet {
    entries: Vec<(f64, CompactBytes)>,
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(f64, CompactBytes)>()
            + self
                .entries
                .iter()
                .map(|(_, member)| member.heap_bytes())
                .sum::<usize>()
    }
}
