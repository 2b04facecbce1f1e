//! Value representations: what a key holds.
//!
//! Owns the in-memory form of every Redis type and the encoding names OBJECT ENCODING reports.
//! The keyspace stores a [`Value`] per key; command families operate on it. A value that the
//! tier has moved to disk is a different variant (added by the tiering work), so every family
//! goes through the keyspace's accessors rather than matching on a raw entry.

pub mod compact;

pub use compact::CompactBytes;

/// The value a key holds. Collection types join as their families are built.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (Redis's `string` type; also bitmaps and HyperLogLogs).
    Str(CompactBytes),
}

/// Keep a keyspace entry small: a value is 24 bytes, so a dict node is 64 with its key.
const _: () = assert!(std::mem::size_of::<Value>() <= 24);

/// Strings up to this length are `embstr` in Redis (OBJ_ENCODING_EMBSTR_SIZE_LIMIT).
pub const EMBSTR_BYTES_MAX: usize = 44;

impl Value {
    pub fn string(bytes: &[u8]) -> Value {
        Value::Str(CompactBytes::new(bytes))
    }

    /// The name TYPE replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
        }
    }

    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Value::Str(bytes) => Some(bytes.as_slice()),
        }
    }

    /// The name OBJECT ENCODING reports, as Redis 7.0 decides it for a value written by SET:
    /// `int` for a canonical integer of at most 20 characters, `embstr` up to 44 bytes, `raw`
    /// otherwise or when the entry's `FLAG_RAW` says APPEND/SETRANGE built it in place.
    pub fn encoding(&self, flags: u32) -> &'static str {
        match self {
            Value::Str(bytes) => {
                let from_float = flags & crate::keyspace::entry::FLAG_EMBSTR != 0;
                if flags & crate::keyspace::entry::FLAG_RAW != 0 {
                    "raw"
                } else if !from_float && is_canonical_integer(bytes.as_slice()) {
                    "int"
                } else if bytes.len() <= EMBSTR_BYTES_MAX {
                    "embstr"
                } else {
                    "raw"
                }
            }
        }
    }

    /// Heap bytes the value owns beyond its 24 inline bytes, for MEMORY USAGE and accounting.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::Str(bytes) => bytes.heap_bytes(),
        }
    }
}

/// True when `bytes` is an integer in Redis's canonical form that fits a `long long`,
/// which Redis stores with the `int` encoding.
pub fn is_canonical_integer(bytes: &[u8]) -> bool {
    bytes.len() <= 20 && crate::protocol::parser::parse_i64(bytes).is_some()
}
