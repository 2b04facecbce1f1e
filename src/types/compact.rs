//! `CompactBytes`: a byte string stored inline when short, on the heap otherwise.
//!
//! Keys and small string values are the bulk of a keyspace's memory. Redis keeps a 16-byte key
//! in a 24-byte sds allocation plus an 8-byte pointer; storing up to 22 bytes inline in the
//! 24-byte value itself saves the allocation and the pointer chase.

use std::fmt;

/// Longest byte string kept inline.
pub const INLINE_BYTES_MAX: usize = 22;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompactBytes {
    Inline {
        len: u8,
        data: [u8; INLINE_BYTES_MAX],
    },
    Heap(Box<[u8]>),
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
        }
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
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        match self {
            CompactBytes::Inline { .. } => self.as_slice().to_vec(),
            CompactBytes::Heap(bytes) => bytes.into_vec(),
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
