//! `CompactBytes`: a byte string stored inline when short, on the heap otherwise.
//!
//! Keys and small string values are the bulk of a keyspace's memory. Redis keeps a 16-byte key
//! in a 24-byte sds allocation plus an 8-byte pointer; storing up to 22 bytes inline in the
//! 24-byte value itself saves the allocation and the pointer chase.
//!
//! A string that is edited in place (APPEND, SETRANGE, SETBIT) becomes `Growable`: a vector
//! with spare capacity, as Redis's sds preallocates, so repeated appends cost amortized O(1)
//! instead of a copy each. Equality, ordering and hashing look only at the bytes, never at
//! which representation holds them.

use std::fmt;

/// Longest byte string kept inline.
pub const INLINE_BYTES_MAX: usize = 22;

#[derive(Clone)]
pub enum CompactBytes {
    Inline {
        len: u8,
        data: [u8; INLINE_BYTES_MAX],
    },
    Heap(Box<[u8]>),
    /// Edited in place: keeps spare capacity for the next edit.
    Growable(Box<Vec<u8>>),
}

impl PartialEq for CompactBytes {
    fn eq(&self, other: &CompactBytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CompactBytes {}

impl std::hash::Hash for CompactBytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl PartialOrd for CompactBytes {
    fn partial_cmp(&self, other: &CompactBytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CompactBytes {
    fn cmp(&self, other: &CompactBytes) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

const _: () = assert!(std::mem::size_of::<CompactBytes>() == 24);
const _: () = assert!(INLINE_BYTES_MAX < u8::MAX as usize);

impl CompactBytes {
    pub fn new(bytes: &[u8]) -> CompactBytes {
        if bytes.len() <= INLINE_BYTES_MAX {
            let mut data = [0u8; INLINE_BYTES_MAX];
            data[..bytes.len()].copy_from_slice(bytes);
            CompactBytes::Inline {
                len: bytes.len() as u8,
                data,
            }
        } else {
            CompactBytes::Heap(bytes.into())
        }
    }

    /// Replaces the bytes with `bytes`, reusing the heap allocation when the length is the
    /// same (an update of a fixed-size value then allocates nothing).
    pub fn assign(&mut self, bytes: &[u8]) {
        match self {
            CompactBytes::Heap(held) if held.len() == bytes.len() => held.copy_from_slice(bytes),
            _ => *self = CompactBytes::new(bytes),
        }
        debug_assert_eq!(self.as_slice(), bytes);
    }

    pub fn from_vec(bytes: Vec<u8>) -> CompactBytes {
        if bytes.len() <= INLINE_BYTES_MAX {
            CompactBytes::new(&bytes)
        } else {
            CompactBytes::Heap(bytes.into_boxed_slice())
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            CompactBytes::Inline { len, data } => &data[..*len as usize],
            CompactBytes::Heap(bytes) => bytes,
            CompactBytes::Growable(bytes) => bytes,
        }
    }

    /// Mutable access for in-place edits; the string becomes `Growable` (Redis's sds with free
    /// space), so a following edit that grows it usually does not copy.
    pub fn to_mut(&mut self) -> &mut Vec<u8> {
        if !matches!(self, CompactBytes::Growable(_)) {
            let bytes = self.as_slice().to_vec();
            *self = CompactBytes::Growable(Box::new(bytes));
        }
        match self {
            CompactBytes::Growable(bytes) => bytes,
            _ => unreachable!("converted just above"),
        }
    }

    /// Appends, growing capacity geometrically as sds does (doubling below 1 MB, then 1 MB).
    pub fn append(&mut self, suffix: &[u8]) {
        const PREALLOC_STEP_MAX: usize = 1024 * 1024;
        let bytes = self.to_mut();
        let needed = bytes.len() + suffix.len();
        if needed > bytes.capacity() {
            let target = if needed < PREALLOC_STEP_MAX {
                needed * 2
            } else {
                needed + PREALLOC_STEP_MAX
            };
            bytes.reserve_exact(target - bytes.len());
        }
        bytes.extend_from_slice(suffix);
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes owned beyond the 24 bytes of the value itself.
    pub fn heap_bytes(&self) -> usize {
        match self {
            CompactBytes::Inline { .. } => 0,
            CompactBytes::Heap(bytes) => bytes.len(),
            CompactBytes::Growable(bytes) => bytes.capacity() + std::mem::size_of::<Vec<u8>>(),
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        match self {
            CompactBytes::Inline { .. } => self.as_slice().to_vec(),
            CompactBytes::Heap(bytes) => bytes.into_vec(),
            CompactBytes::Growable(bytes) => *bytes,
        }
    }
}

impl std::ops::Deref for CompactBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for CompactBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::borrow::Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for CompactBytes {
    fn from(bytes: &[u8]) -> CompactBytes {
        CompactBytes::new(bytes)
    }
}

impl From<Vec<u8>> for CompactBytes {
    fn from(bytes: Vec<u8>) -> CompactBytes {
        CompactBytes::from_vec(bytes)
    }
}

impl fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growable_strings_compare_by_content_and_amortize() {
        let mut grown = CompactBytes::new(b"ab");
        grown.append(b"cd");
        assert_eq!(grown, CompactBytes::new(b"abcd"));
        assert!(matches!(grown, CompactBytes::Growable(_)));
        let mut reallocations = 0;
        let mut capacity = 0;
        for _ in 0..100_000 {
            grown.append(b"x");
            let now = grown.heap_bytes();
            if now != capacity {
                reallocations += 1;
                capacity = now;
            }
        }
        assert!(
            reallocations < 40,
            "{reallocations} reallocations for 100k appends"
        );
        grown.to_mut()[0] = b'z';
        assert_eq!(&grown.as_slice()[..4], b"zbcd");
    }

    #[test]
    fn inline_and_heap_round_trip() {
        for len in [0, 1, INLINE_BYTES_MAX, INLINE_BYTES_MAX + 1, 1000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let compact = CompactBytes::new(&bytes);
            assert_eq!(compact.as_slice(), &bytes[..]);
            assert_eq!(compact.heap_bytes() == 0, len <= INLINE_BYTES_MAX);
            assert_eq!(CompactBytes::from_vec(bytes.clone()).as_slice(), &bytes[..]);
        }
    }
}
