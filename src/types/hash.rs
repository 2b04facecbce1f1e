//! Hashes. (Representation being built: see the hashes family.)

use super::CompactBytes;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hash {
    fields: Vec<(CompactBytes, CompactBytes)>,
}

impl Hash {
    pub fn new() -> Hash {
        Hash::default()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    pub fn heap_bytes(&self) -> usize {
        self.fields.capacity() * 2 * std::mem::size_of::<CompactBytes>()
            + self
                .fields
                .iter()
                .map(|(field, value)| field.heap_bytes() + value.heap_bytes())
                .sum::<usize>()
    }
}
