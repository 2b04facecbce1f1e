//! The RDB value codec: one value of any type to and from Redis's RDB bytes.
//!
//! Owns the on-disk type numbers, the length and string encodings, and the compact blobs
//! Redis embeds in values (listpack, ziplist, intset, zipmap). `encode` writes what Redis
//! 7.0's `rdbSaveObject` writes for the same encodings (RDB version 10); `decode` reads
//! every type and encoding Redis has written into RDB versions 1 to 12. The DUMP payload
//! (`payload`) wraps one value with the RDB version and a CRC-64.
//!
//! Decoding treats its input as hostile: every length is checked against the bytes left
//! before anything is allocated, every blob is walked with bounds checks, and errors carry
//! the byte offset. `DecodeOptions::deep` adds Redis's `sanitize-dump-payload` checks
//! (duplicates, back lengths, header counts) on top of what memory safety already needs.
//!
//! Streams (types 15, 19, 21) are in `stream.rs`. A whole file is walked in `file.rs`, and
//! decoded on several threads in `parallel.rs`.

pub mod crc64;
pub mod decode;
pub mod encode;
pub mod file;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod parallel;
pub mod payload;
pub mod stream;
pub mod ziplist;
pub mod zipmap;

pub use decode::{decode_value, DecodeOptions};
pub use encode::{encode_value, EncodeOptions};
pub use payload::{create_dump_payload, fuzz_restore_payload, verify_dump_payload};

use std::borrow::Cow;

/// The RDB version Strata writes (what Redis 7.0 writes and loads).
pub const RDB_VERSION: u16 = 10;
/// The newest RDB version Strata reads (Redis 7.4's).
pub const RDB_VERSION_READ_MAX: u16 = 12;

// On-disk value type numbers (Redis's rdb.h). These are file format, fixed forever and kept
// apart from the in-memory `Value` variants: adding a type means a new number here, a match
// arm in `decode::decode_body`, and a writer in `encode`.
pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE_PRE_GA: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub const TYPE_SET_LISTPACK: u8 = 20;
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;
pub const TYPE_HASH_METADATA_PRE_GA: u8 = 22;
pub const TYPE_HASH_LISTPACK_EX_PRE_GA: u8 = 23;
pub const TYPE_HASH_METADATA: u8 = 24;
pub const TYPE_HASH_LISTPACK_EX: u8 = 25;

/// Quicklist node containers (QUICKLIST_NODE_CONTAINER_*).
pub const QUICKLIST_PLAIN: u64 = 1;
pub const QUICKLIST_PACKED: u64 = 2;

// Length prefixes (RDB_6BITLEN ...): the top two bits of the first byte.
pub const LEN_6BIT: u8 = 0;
pub const LEN_14BIT: u8 = 1;
pub const LEN_32BIT: u8 = 0x80;
pub const LEN_64BIT: u8 = 0x81;
/// Top bits 11: not a length but a special string encoding (RDB_ENCVAL).
pub const LEN_ENCODED: u8 = 3;
pub const ENC_INT8: u8 = 0;
pub const ENC_INT16: u8 = 1;
pub const ENC_INT32: u8 = 2;
pub const ENC_LZF: u8 = 3;

/// The most slots a decoder reserves up front from a count or size it read: more than this
/// grows as elements actually arrive, so a hostile count cannot make one allocation many
/// times the input.
pub const RESERVE_ITEMS_MAX: usize = 4096;

/// A value that could not be decoded: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the decoded input (for errors inside an embedded blob, the offset of
    /// the blob; the reason names the offset inside it).
    pub offset: usize,
    pub reason: Cow<'static, str>,
    /// Well formed, but a kind of value Strata cannot hold yet (modules, hash field
    /// TTLs), as opposed to corrupt bytes.
    pub unsupported: bool,
}

impl DecodeError {
    pub fn new(offset: usize, reason: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError {
            offset,
            reason: reason.into(),
            unsupported: false,
        }
    }

    pub fn unsupported(offset: usize, reason: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError {
            offset,
            reason: reason.into(),
            unsupported: true,
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} at offset {}", self.reason, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// A value Strata cannot write yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub reason: &'static str,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.reason)
    }
}

impl std::error::Error for EncodeError {}

/// Redis's `string2ll` plus the round trip check of `rdbTryIntegerEncoding` and
/// `lpStringToInt64`: the integer `bytes` spells in canonical form (no sign on zero, no
/// leading zeros, no '+'), if any.
pub fn canonical_integer(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let value = crate::protocol::parser::parse_i64(bytes)?;
    let mut buffer = itoa::Buffer::new();
    (buffer.format(value).as_bytes() == bytes).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_only() {
        assert_eq!(canonical_integer(b"0"), Some(0));
        assert_eq!(canonical_integer(b"-12"), Some(-12));
        assert_eq!(canonical_integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(canonical_integer(b"-9223372036854775808"), Some(i64::MIN));
        for not_canonical in [
            &b""[..],
            b"-0",
            b"012",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"1.0",
        ] {
            assert_eq!(canonical_integer(not_canonical), None, "{not_canonical:?}");
        }
    }

    #[test]
    fn errors_render_with_their_offset() {
        let error = DecodeError::new(17, "listpack without terminator");
        assert_eq!(
            error.to_string(),
            "listpack without terminator at offset 17"
        );
        assert!(!error.unsupported);
        assert!(DecodeError::unsupported(0, "streams").unsupported);
    }
}
