//! Lists. (Representation being built: see the lists family.)

use super::CompactBytes;
use std::collections::VecDeque;

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

    pub fn heap_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<CompactBytes>()
            + self
                .items
                .iter()
                .map(CompactBytes::heap_bytes)
                .sum::<usize>()
    }
}
