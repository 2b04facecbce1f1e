//! Value representations: what a key holds.
//!
//! Owns the in-memory form of every Redis type and the encoding names OBJECT ENCODING reports.
//! The keyspace stores a [`Value`] per key; command families operate on it. A value that the
//! tier has moved to disk is a different variant (added by the tiering work), so every family
//! goes through the keyspace's accessors rather than matching on a raw entry.

pub mod compact;
pub mod geohash;
pub mod hash;
pub mod hll;
pub mod list;
pub mod ordered;
pub mod set;
pub mod stream;
pub mod zset;

pub use compact::CompactBytes;
pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use stream::Stream;
pub use zset::ZSet;

/// The two thresholds under which Redis keeps a hash or sorted set in its compact listpack
/// form; read from the configuration at write time (`hash-max-listpack-*`,
/// `zset-max-listpack-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListpackLimits {
    /// More entries than this converts to the large encoding.
    pub entries_max: usize,
    /// An element longer than this (bytes) converts to the large encoding.
    pub value_bytes_max: usize,
}

impl ListpackLimits {
    /// Redis 7.0's defaults for hashes (512 entries, 64 bytes).
    pub const HASH_DEFAULT: ListpackLimits = ListpackLimits {
        entries_max: 512,
        value_bytes_max: 64,
    };
    /// Redis 7.0's defaults for sorted sets (128 entries, 64 bytes).
    pub const ZSET_DEFAULT: ListpackLimits = ListpackLimits {
        entries_max: 128,
        value_bytes_max: 64,
    };
}

/// The value a key holds. Collections are boxed so a value stays 24 bytes.
///
/// Invariant: a collection stored in the keyspace (streams excepted) is never empty; the command that removes
/// its last element deletes the key, as Redis does.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (Redis's `string` type; also bitmaps and HyperLogLogs).
    Str(CompactBytes),
    List(Box<List>),
    Hash(Box<Hash>),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
    /// Unlike the other collections, a stream may be empty (XDEL, XTRIM leave the key).
    Stream(Box<Stream>),
    /// Spilled to the memory tier's segments (`crate::tier`): only the pointer stays in RAM.
    /// The keyspace's accessors bring it back before a command sees it, so command code never
    /// meets this variant; only whole-keyspace walks (snapshots, SCAN-like metadata) do.
    Cold(crate::tier::ColdRef),
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
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
            Value::Cold(cold) => Kind::from_code(cold.kind).name(),
        }
    }

    /// The type as a number, what a cold pointer keeps of it.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::Str,
            Value::List(_) => Kind::List,
            Value::Hash(_) => Kind::Hash,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
            Value::Stream(_) => Kind::Stream,
            Value::Cold(cold) => Kind::from_code(cold.kind),
        }
    }

    pub fn is_cold(&self) -> bool {
        matches!(self, Value::Cold(_))
    }

    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Value::Str(bytes) => Some(bytes.as_slice()),
            _ => None,
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
            Value::List(list) => list.encoding(),
            Value::Hash(hash) => hash.encoding(),
            Value::Set(set) => set.encoding(),
            Value::ZSet(zset) => zset.encoding(),
            Value::Stream(stream) => stream.encoding(),
            // Callers bring a value back before asking; a pointer has no encoding of its own.
            Value::Cold(_) => "cold",
        }
    }

    /// Heap bytes the value owns beyond its 24 inline bytes, for MEMORY USAGE and accounting.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::Str(bytes) => bytes.heap_bytes(),
            Value::List(list) => std::mem::size_of::<List>() + list.heap_bytes(),
            Value::Hash(hash) => std::mem::size_of::<Hash>() + hash.heap_bytes(),
            Value::Set(set) => std::mem::size_of::<Set>() + set.heap_bytes(),
            Value::ZSet(zset) => std::mem::size_of::<ZSet>() + zset.heap_bytes(),
            Value::Stream(stream) => std::mem::size_of::<Stream>() + stream.heap_bytes(),
            Value::Cold(_) => 0,
        }
    }
}

/// A value's type, as a cold pointer records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str = 0,
    List = 1,
    Hash = 2,
    Set = 3,
    ZSet = 4,
    Stream = 5,
}

impl Kind {
    pub fn from_code(code: u8) -> Kind {
        match code {
            0 => Kind::Str,
            1 => Kind::List,
            2 => Kind::Hash,
            3 => Kind::Set,
            4 => Kind::ZSet,
            _ => {
                debug_assert_eq!(code, Kind::Stream as u8, "unknown kind code");
                Kind::Stream
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
        }
    }
}

/// True when `bytes` is an integer in Redis's canonical form that fits a `long long`,
/// which Redis stores with the `int` encoding.
pub fn is_canonical_integer(bytes: &[u8]) -> bool {
    bytes.len() <= 20 && crate::protocol::parser::parse_i64(bytes).is_some()
}
