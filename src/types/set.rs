//! Sets. (Representation being built: see the sets family.)

use super::CompactBytes;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Set {
    members: Vec<CompactBytes>,
}

impl Set {
    pub fn new() -> Set {
        Set::default()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        "hashtable"
    }

    pub fn heap_bytes(&self) -> usize {
        self.members.capacity() * std::mem::size_of::<CompactBytes>()
            + self
                .members
                .iter()
                .map(CompactBytes::heap_bytes)
                .sum::<usize>()
    }
}
