//! Streams: entries by ID with consumer groups (placeholder until the streams family lands).

/// A stream value. Placeholder: the streams work replaces the representation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    entries: usize,
}

impl Stream {
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Redis 7.0 reports every stream as `stream`.
    pub fn encoding(&self) -> &'static str {
        "stream"
    }

    pub fn heap_bytes(&self) -> usize {
        0
    }
}
