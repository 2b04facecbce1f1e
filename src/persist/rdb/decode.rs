//! Reading one value of any type and encoding Redis has written (RDB versions 1 to 12).
//!
//! The input is hostile until proven otherwise: every length is checked against the bytes
//! left before allocating (each element of a collection takes at least one byte, so a count
//! larger than the rest of the input is refused at once), compressed strings may not claim
//! more than LZF can expand to, and embedded blobs are walked with bounds checks. Errors
//! carry the byte offset. The result is built through the types' public constructors, with
//! the encoding Redis 7.0's `rdbLoadObject` would choose under the given thresholds; a set's
//! table and a listpack hash's pairs are made at their final size (the count is in the
//! record), each member hashed once.

use super::listpack::{self, BlobError, Element};
use super::{lzf, ziplist, DecodeError};
use super::{
    ENC_INT16, ENC_INT32, ENC_INT8, ENC_LZF, LEN_14BIT, LEN_32BIT, LEN_64BIT, LEN_6BIT,
    LEN_ENCODED, QUICKLIST_PACKED, QUICKLIST_PLAIN,
};
use crate::keyspace::dict::{collection_hasher, Dict};
use crate::protocol::parser::parse_i64;
use crate::types::hash::Hash;
use crate::types::list::{End, List};
use crate::types::set::{Member, Set, INTSET_ENTRIES_LIMIT};
use crate::types::zset::ZSet;
use crate::types::{CompactBytes, ListpackLimits, Value};
use std::borrow::Cow;

/// The configuration that decides encodings and how much to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Redis's deep sanitization (`sanitize-dump-payload yes`): duplicates in compact blobs,
    /// back lengths, header counts. Memory safety never depends on it.
    pub deep: bool,
    pub hash_limits: ListpackLimits,
    pub zset_limits: ListpackLimits,
    pub set_intset_entries_max: usize,
}

impl DecodeOptions {
    /// Redis 7.0's default thresholds, with deep checks.
    pub const DEFAULT: DecodeOptions = DecodeOptions {
        deep: true,
        hash_limits: ListpackLimits::HASH_DEFAULT,
        zset_limits: ListpackLimits::ZSET_DEFAULT,
        set_intset_entries_max: 512,
    };

    /// The thresholds from the configuration; `deep` as the caller decides from
    /// `sanitize-dump-payload`.
    pub fn from_config(config: &crate::config::Config, deep: bool) -> DecodeOptions {
        let size = |name: &str| config.int(name).max(0) as usize;
        DecodeOptions {
            deep,
            hash_limits: ListpackLimits {
                entries_max: size("hash-max-listpack-entries"),
                value_bytes_max: size("hash-max-listpack-value"),
            },
            zset_limits: ListpackLimits {
                entries_max: size("zset-max-listpack-entries"),
                value_bytes_max: size("zset-max-listpack-value"),
            },
            set_intset_entries_max: size("set-max-intset-entries"),
        }
    }
}

/// Limits that keep a compact encoding whatever its contents (Redis keeps a loaded listpack
/// as it is unless it has too many entries).
const UNLIMITED: ListpackLimits = ListpackLimits {
    entries_max: usize::MAX,
    value_bytes_max: usize::MAX,
};

/// A cursor over RDB bytes: every read is bounds-checked and fails with its offset.
#[derive(Debug)]
pub struct Reader<'a> {
    input: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Reader<'a> {
        Reader { input, position: 0 }
    }

    /// A reader of `input` from `position` (offsets stay those of the whole input).
    pub fn at(input: &'a [u8], position: usize) -> Reader<'a> {
        assert!(position <= input.len(), "a position inside the input");
        Reader { input, position }
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    pub fn error(&self, reason: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError::new(self.position, reason)
    }

    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self
            .input
            .get(self.position)
            .ok_or_else(|| self.error("unexpected end of input"))?;
        self.position += 1;
        Ok(byte)
    }

    /// The next `len` bytes; refused before anything is allocated when fewer are left.
    pub fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() as u64 {
            return Err(self.error(format!(
                "length {len} exceeds the {} bytes left",
                self.remaining()
            )));
        }
        let start = self.position;
        self.position += len as usize;
        Ok(&self.input[start..self.position])
    }

    /// Redis's `rdbLoadLenByRef`: a length, or (`Err` of the low 6 bits) a special string
    /// encoding.
    fn length_or_encoding(&mut self) -> Result<Result<u64, u8>, DecodeError> {
        let at = self.position;
        let first = self.byte()?;
        Ok(match first >> 6 {
            LEN_6BIT => Ok((first & 0x3f) as u64),
            LEN_14BIT => Ok((((first & 0x3f) as u64) << 8) | self.byte()? as u64),
            LEN_ENCODED => Err(first & 0x3f),
            _ if first == LEN_32BIT => {
                let raw = self.take(4)?;
                Ok(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as u64)
            }
            _ if first == LEN_64BIT => {
                let raw = self.take(8)?;
                let mut word = [0u8; 8];
                word.copy_from_slice(raw);
                Ok(u64::from_be_bytes(word))
            }
            _ => {
                return Err(DecodeError::new(
                    at,
                    format!("unknown length encoding 0x{first:02x}"),
                ))
            }
        })
    }

    /// A plain length (`rdbLoadLen`). Like Redis, which ignores the "encoded" flag there, a
    /// special-encoding byte reads as its low 6 bits.
    pub fn length(&mut self) -> Result<u64, DecodeError> {
        Ok(match self.length_or_encoding()? {
            Ok(len) => len,
            Err(low_bits) => low_bits as u64,
        })
    }

    /// A count of items that each take at least one byte: refused when the rest of the
    /// input cannot hold them (callers still cap what they reserve at `RESERVE_ITEMS_MAX`).
    pub fn count(&mut self) -> Result<usize, DecodeError> {
        let at = self.position;
        let count = self.length()?;
        if count > self.remaining() as u64 {
            return Err(DecodeError::new(
                at,
                format!("count {count} exceeds the {} bytes left", self.remaining()),
            ));
        }
        Ok(count as usize)
    }

    /// A string in any of its encodings (`rdbGenericLoadStringObject`).
    pub fn string(&mut self) -> Result<Cow<'a, [u8]>, DecodeError> {
        let at = self.position;
        match self.length_or_encoding()? {
            Ok(len) => Ok(Cow::Borrowed(self.take(len)?)),
            Err(ENC_INT8) => Ok(Cow::Owned(decimal(self.take(1)?[0] as i8 as i64))),
            Err(ENC_INT16) => {
                let raw = self.take(2)?;
                Ok(Cow::Owned(decimal(
                    i16::from_le_bytes([raw[0], raw[1]]) as i64
                )))
            }
            Err(ENC_INT32) => {
                let raw = self.take(4)?;
                let value = i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                Ok(Cow::Owned(decimal(value as i64)))
            }
            Err(ENC_LZF) => {
                let compressed_len = self.length()?;
                let len = self.length()?;
                let compressed = self.take(compressed_len)?;
                if len == 0 {
                    // lzf_decompress returns 0 on any error, which Redis compares with the
                    // declared length: a declared empty string always loads as one.
                    return Ok(Cow::Owned(Vec::new()));
                }
                if len > (compressed.len() as u64).saturating_mul(lzf::EXPANSION_MAX as u64) {
                    return Err(DecodeError::new(
                        at,
                        format!("LZF string claims {len} bytes from {compressed_len}"),
                    ));
                }
                lzf::decompress(compressed, len as usize)
                    .map(Cow::Owned)
                    .map_err(|error| {
                        DecodeError::new(at, format!("invalid LZF compressed string: {error}"))
                    })
            }
            Err(other) => Err(DecodeError::new(
                at,
                format!("unknown string encoding {other}"),
            )),
        }
    }

    /// Moves past a string in any of its encodings: exactly the bytes [`Reader::string`]
    /// takes, without decompressing or converting anything.
    pub fn skip_string(&mut self) -> Result<(), DecodeError> {
        let at = self.position;
        let len = match self.length_or_encoding()? {
            Ok(len) => len,
            Err(ENC_INT8) => 1,
            Err(ENC_INT16) => 2,
            Err(ENC_INT32) => 4,
            Err(ENC_LZF) => {
                let compressed_len = self.length()?;
                self.length()?;
                compressed_len
            }
            Err(other) => {
                return Err(DecodeError::new(
                    at,
                    format!("unknown string encoding {other}"),
                ))
            }
        };
        self.take(len)?;
        Ok(())
    }

    /// The text double of RDB_TYPE_ZSET (`rdbLoadDoubleValue`): a length byte, with 253, 254
    /// and 255 meaning NaN, +inf and -inf.
    pub fn text_double(&mut self) -> Result<f64, DecodeError> {
        let at = self.position;
        match self.byte()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            len => {
                let text = self.take(len as u64)?;
                strtod_prefix(text).ok_or_else(|| DecodeError::new(at, "invalid double value"))
            }
        }
    }

    pub fn binary_double(&mut self) -> Result<f64, DecodeError> {
        let raw = self.take(8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(raw);
        Ok(f64::from_le_bytes(word))
    }
}

/// C's `strtod` on `text`: the longest prefix (after white space) that spells a decimal
/// number, `inf`/`infinity` or `nan`; `None` when there is none (strtod's "no conversion").
/// Redis reads listpack scores (`zzlStrtod`) and RDB text doubles (`%lg`) this way, so a
/// corrupt score loads as whatever its prefix says.
pub fn strtod_prefix(text: &[u8]) -> Option<f64> {
    let mut start = 0;
    while start < text.len() && matches!(text[start], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        start += 1;
    }
    let rest = &text[start..];
    let (negative, unsigned) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let lower: Vec<u8> = unsigned
        .iter()
        .take(8)
        .map(u8::to_ascii_lowercase)
        .collect();
    let special = if lower.starts_with(b"inf") {
        Some(f64::INFINITY)
    } else if lower.starts_with(b"nan") {
        Some(f64::NAN)
    } else {
        None
    };
    if let Some(value) = special {
        return Some(if negative { -value } else { value });
    }
    // Digits, an optional fraction, then an exponent only if it has digits.
    let digits = |from: usize| {
        unsigned[from..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count()
    };
    let integer = digits(0);
    let mut end = integer;
    let mut fraction = 0;
    if unsigned.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        if integer + fraction > 0 {
            end += 1 + fraction;
        }
    }
    if integer + fraction == 0 {
        return None;
    }
    if matches!(unsigned.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(unsigned.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits(end + 1 + sign);
        if exponent > 0 {
            end += 1 + sign + exponent;
        }
    }
    let number = std::str::from_utf8(&unsigned[..end])
        .ok()?
        .parse::<f64>()
        .ok()?;
    Some(if negative { -number } else { number })
}

fn decimal(value: i64) -> Vec<u8> {
    itoa::Buffer::new().format(value).as_bytes().to_vec()
}

/// Reads the type byte and the value at the start of `input`; returns the value and the bytes
/// it took.
pub fn decode_value(input: &[u8], options: &DecodeOptions) -> Result<(Value, usize), DecodeError> {
    let mut reader = Reader::new(input);
    let kind = reader.byte()?;
    let value = decode_body(&mut reader, kind, options)?;
    debug_assert!(reader.position() <= input.len());
    Ok((value, reader.position()))
}

/// Reads back a value this process encoded (the memory tier's records): the encoding comes
/// back exactly as the type byte names it, whatever the size thresholds say, so a value that
/// went to disk and returned is indistinguishable from one that never left (OBJECT ENCODING,
/// listpack score texts).
pub fn decode_value_exact(input: &[u8]) -> Result<(Value, usize), DecodeError> {
    use super::*;
    const NONE: ListpackLimits = ListpackLimits {
        entries_max: 0,
        value_bytes_max: 0,
    };
    let kind = *input
        .first()
        .ok_or_else(|| DecodeError::new(0, "empty value"))?;
    // The large encodings are built directly (a detour through the compact one would
    // normalize what it cannot hold, such as a -0 score).
    let large = |wanted: u8| kind == wanted;
    let options = DecodeOptions {
        deep: false,
        hash_limits: if large(TYPE_HASH) { NONE } else { UNLIMITED },
        zset_limits: if large(TYPE_ZSET) || large(TYPE_ZSET_2) {
            NONE
        } else {
            UNLIMITED
        },
        set_intset_entries_max: if large(TYPE_SET) { 0 } else { usize::MAX },
    };
    let (mut value, used) = decode_value(input, &options)?;
    match (&mut value, kind) {
        (Value::Hash(hash), TYPE_HASH) => hash.convert(),
        (Value::Set(set), TYPE_SET) => set.convert_to_table(),
        (Value::ZSet(zset), TYPE_ZSET | TYPE_ZSET_2) => zset.convert(),
        _ => {}
    }
    Ok((value, used))
}

/// Moves past a value of RDB type `kind` without building it, for a loader that frames
/// records on one thread and decodes them on others. Where [`decode_body`] succeeds, this
/// takes exactly the bytes it takes (the decoder's checks of contents are left to it).
/// `Ok(false)`, the reader unmoved, for the types it leaves to [`decode_body`] (streams,
/// modules, unknown ones).
pub fn skip_body(reader: &mut Reader<'_>, kind: u8) -> Result<bool, DecodeError> {
    use super::*;
    match kind {
        TYPE_STRING | TYPE_HASH_ZIPMAP | TYPE_LIST_ZIPLIST | TYPE_SET_INTSET
        | TYPE_ZSET_ZIPLIST | TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK | TYPE_ZSET_LISTPACK
        | TYPE_SET_LISTPACK => reader.skip_string()?,
        TYPE_LIST | TYPE_SET => {
            for _ in 0..reader.count()? {
                reader.skip_string()?;
            }
        }
        TYPE_HASH => {
            for _ in 0..reader.count()? {
                reader.skip_string()?;
                reader.skip_string()?;
            }
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            for _ in 0..reader.count()? {
                reader.skip_string()?;
                if kind == TYPE_ZSET_2 {
                    reader.take(8)?;
                } else if let len @ 0..=252 = reader.byte()? {
                    // 253 to 255 are NaN and the infinities, with no text.
                    reader.take(len as u64)?;
                }
            }
        }
        TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
            for _ in 0..reader.count()? {
                if kind == TYPE_LIST_QUICKLIST_2 {
                    reader.length()?;
                }
                reader.skip_string()?;
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Reads a value of RDB type `kind` (Redis's `rdbLoadObject`).
pub fn decode_body(
    reader: &mut Reader<'_>,
    kind: u8,
    options: &DecodeOptions,
) -> Result<Value, DecodeError> {
    use super::*;
    let at = reader.position();
    let value = match kind {
        TYPE_STRING => Value::Str(match reader.string()? {
            Cow::Borrowed(bytes) => CompactBytes::new(bytes),
            Cow::Owned(bytes) => CompactBytes::from_vec(bytes),
        }),
        TYPE_LIST => read_plain_list(reader)?,
        TYPE_SET => read_plain_set(reader, options)?,
        TYPE_ZSET | TYPE_ZSET_2 => read_plain_zset(reader, kind == TYPE_ZSET_2, options)?,
        TYPE_HASH => read_plain_hash(reader, options)?,
        TYPE_HASH_ZIPMAP => {
            let blob = reader.string()?;
            let pairs = zipmap::pairs(&blob).map_err(|error| blob_error(at, error))?;
            // Zipmaps convert by count and by length (and always refuse duplicates).
            let longest = pairs
                .iter()
                .map(|(field, value)| field.len().max(value.len()))
                .max();
            let fits = pairs.len() <= options.hash_limits.entries_max
                && longest.unwrap_or(0) <= options.hash_limits.value_bytes_max;
            let limits = if fits { UNLIMITED } else { options.hash_limits };
            let mut hash = Hash::new();
            for (field, value) in pairs {
                add_pair(&mut hash, at, field, value, true, limits)?;
            }
            non_empty(at, Value::Hash(Box::new(hash)))?
        }
        TYPE_LIST_ZIPLIST => {
            let blob = reader.string()?;
            let mut list = List::new();
            ziplist::walk(&blob, options.deep, |element| {
                push_element(&mut list, element);
                Ok(())
            })
            .map_err(|error| blob_error(at, error))?;
            non_empty_list(at, list)?
        }
        TYPE_SET_INTSET => {
            let blob = reader.string()?;
            let values =
                intset::values(&blob, options.deep).map_err(|error| blob_error(at, error))?;
            let mut set = Set::new();
            for value in values {
                set.add_member(Member::Int(value), options.set_intset_entries_max);
            }
            Value::Set(Box::new(set))
        }
        TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
            let blob = reader.string()?;
            let elements = blob_elements(at, &blob, kind == TYPE_ZSET_LISTPACK, options.deep)?;
            zset_from_pairs(at, &elements, options)?
        }
        TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
            let blob = reader.string()?;
            let elements = blob_elements(at, &blob, kind == TYPE_HASH_LISTPACK, options.deep)?;
            if elements.len() % 2 != 0 {
                return Err(DecodeError::new(
                    at,
                    "hash blob with an odd number of elements",
                ));
            }
            let fits = elements.len() / 2 <= options.hash_limits.entries_max;
            if fits {
                if let Some(hash) = listpack_hash(&elements) {
                    return non_empty(at, Value::Hash(Box::new(hash)));
                }
                if options.deep {
                    return Err(DecodeError::new(at, "hash blob with duplicate fields"));
                }
            }
            let limits = if fits { UNLIMITED } else { options.hash_limits };
            let mut hash = Hash::new();
            let (mut field_digits, mut value_digits) = (itoa::Buffer::new(), itoa::Buffer::new());
            for pair in elements.chunks_exact(2) {
                let field = element_bytes(&pair[0], &mut field_digits);
                let value = element_bytes(&pair[1], &mut value_digits);
                add_pair(&mut hash, at, field, value, options.deep, limits)?;
            }
            non_empty(at, Value::Hash(Box::new(hash)))?
        }
        TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
            read_quicklist(reader, kind == TYPE_LIST_QUICKLIST_2, options)?
        }
        TYPE_SET_LISTPACK => {
            let blob = reader.string()?;
            let elements = blob_elements(at, &blob, true, options.deep)?;
            let mut set = Set::new();
            for element in elements {
                let added = match element {
                    Element::Int(value) => {
                        set.add_member(Member::Int(value), options.set_intset_entries_max)
                    }
                    Element::Bytes(bytes) => set.add(bytes, options.set_intset_entries_max),
                };
                if !added && options.deep {
                    return Err(DecodeError::new(at, "duplicate set members detected"));
                }
            }
            non_empty(at, Value::Set(Box::new(set)))?
        }
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
            super::stream::decode(reader, kind, options)?
        }
        TYPE_MODULE_PRE_GA | TYPE_MODULE_2 => {
            return Err(DecodeError::unsupported(
                at,
                "module values are not supported",
            ))
        }
        TYPE_HASH_METADATA_PRE_GA
        | TYPE_HASH_LISTPACK_EX_PRE_GA
        | TYPE_HASH_METADATA
        | TYPE_HASH_LISTPACK_EX => {
            return Err(DecodeError::unsupported(
                at,
                "hashes with field expiration (RDB 12) are not supported",
            ))
        }
        other => {
            return Err(DecodeError::new(
                at.saturating_sub(1),
                format!("unknown RDB value type {other}"),
            ))
        }
    };
    Ok(value)
}

fn blob_error(at: usize, error: BlobError) -> DecodeError {
    DecodeError::new(
        at,
        format!("{} (offset {} in the blob)", error.reason, error.offset),
    )
}

/// Every element of a listpack (`listpack`) or ziplist blob.
fn blob_elements<'b>(
    at: usize,
    blob: &'b [u8],
    listpack: bool,
    deep: bool,
) -> Result<Vec<Element<'b>>, DecodeError> {
    let elements = if listpack {
        listpack::elements(blob, deep)
    } else {
        ziplist::elements(blob, deep)
    };
    elements.map_err(|error| blob_error(at, error))
}

/// Redis refuses empty collections in a payload ("empty keys").
fn non_empty(at: usize, value: Value) -> Result<Value, DecodeError> {
    let empty = match &value {
        Value::List(list) => list.is_empty(),
        Value::Hash(hash) => hash.is_empty(),
        Value::Set(set) => set.is_empty(),
        Value::ZSet(zset) => zset.is_empty(),
        _ => false,
    };
    if empty {
        return Err(DecodeError::new(at, "empty collection"));
    }
    Ok(value)
}

fn non_empty_list(at: usize, list: List) -> Result<Value, DecodeError> {
    non_empty(at, Value::List(Box::new(list)))
}

fn push_element(list: &mut List, element: Element<'_>) {
    match element {
        Element::Bytes(bytes) => list.push(End::Right, bytes),
        Element::Int(value) => list.push(End::Right, itoa::Buffer::new().format(value).as_bytes()),
    }
}

fn read_plain_list(reader: &mut Reader<'_>) -> Result<Value, DecodeError> {
    let at = reader.position();
    let count = reader.count()?;
    let mut list = List::new();
    for _ in 0..count {
        list.push(End::Right, &reader.string()?);
    }
    non_empty_list(at, list)
}

/// QUICKLIST (ziplist nodes) or QUICKLIST_2 (a container kind, then a listpack or one plain
/// element per node). Empty nodes are skipped as Redis does; an empty list is refused.
fn read_quicklist(
    reader: &mut Reader<'_>,
    version_2: bool,
    options: &DecodeOptions,
) -> Result<Value, DecodeError> {
    let at = reader.position();
    let nodes = reader.count()?;
    let mut list = List::new();
    for _ in 0..nodes {
        let container = if version_2 {
            reader.length()?
        } else {
            QUICKLIST_PACKED
        };
        let node_at = reader.position();
        let blob = reader.string()?;
        match container {
            QUICKLIST_PLAIN => list.push(End::Right, &blob),
            QUICKLIST_PACKED => {
                let visit = |element| {
                    push_element(&mut list, element);
                    Ok(())
                };
                let walked = if version_2 {
                    listpack::walk(&blob, options.deep, visit)
                } else {
                    ziplist::walk(&blob, options.deep, visit)
                };
                walked.map_err(|error| blob_error(node_at, error))?;
            }
            _ => {
                return Err(DecodeError::new(
                    node_at,
                    "quicklist integrity check failed: unknown container",
                ))
            }
        }
    }
    non_empty_list(at, list)
}

/// Redis's `rdbLoadObject` for a plain set: an intset while the count fits one and the
/// members are integers; otherwise a hashtable made at its final size (`dictExpand` there),
/// each member hashed once.
fn read_plain_set(reader: &mut Reader<'_>, options: &DecodeOptions) -> Result<Value, DecodeError> {
    let at = reader.position();
    let count = reader.count()?;
    let intset_entries_max = options.set_intset_entries_max.min(INTSET_ENTRIES_LIMIT);
    let table_with_room = || {
        let mut table = Dict::new(collection_hasher());
        table.reserve(count.min(super::RESERVE_ITEMS_MAX));
        table
    };
    let mut ints = (count <= intset_entries_max).then(Set::new);
    let mut table = if ints.is_none() {
        Some(table_with_room())
    } else {
        None
    };
    let duplicate = |member_at| DecodeError::new(member_at, "duplicate set members detected");
    for _ in 0..count {
        let member_at = reader.position();
        let member = reader.string()?;
        if let Some(set) = &mut ints {
            if parse_i64(&member).is_some() {
                // At most `count` members: the intset never outgrows its limit here.
                if !set.add(&member, intset_entries_max) {
                    return Err(duplicate(member_at));
                }
                continue;
            }
            // The first member that is not an integer: the integers so far move to a table.
            let mut converted = table_with_room();
            set.for_each(|member| {
                member.with_bytes(|bytes| converted.insert_new(CompactBytes::new(bytes), ()));
            });
            ints = None;
            table = Some(converted);
        }
        let Some(table) = &mut table else {
            unreachable!("a set is an intset or a table");
        };
        if table.insert_unique(CompactBytes::new(&member), ()).is_err() {
            return Err(duplicate(member_at));
        }
    }
    let set = match (ints, table) {
        (Some(set), _) => set,
        (None, Some(table)) => Set::from_table(table),
        (None, None) => unreachable!("a set is an intset or a table"),
    };
    non_empty(at, Value::Set(Box::new(set)))
}

fn read_plain_zset(
    reader: &mut Reader<'_>,
    binary: bool,
    options: &DecodeOptions,
) -> Result<Value, DecodeError> {
    let at = reader.position();
    let count = reader.count()?;
    let mut elements: Vec<(f64, CompactBytes)> =
        Vec::with_capacity(count.min(super::RESERVE_ITEMS_MAX));
    for _ in 0..count {
        let member = CompactBytes::new(&reader.string()?);
        let score_at = reader.position();
        let score = if binary {
            reader.binary_double()?
        } else {
            reader.text_double()?
        };
        if score.is_nan() {
            return Err(DecodeError::new(score_at, "zset with NAN score detected"));
        }
        elements.push((score, member));
    }
    if has_duplicate_members(&elements) {
        return Err(DecodeError::new(at, "duplicate zset fields detected"));
    }
    non_empty(
        at,
        Value::ZSet(Box::new(ZSet::from_elements(elements, options.zset_limits))),
    )
}

fn has_duplicate_members(elements: &[(f64, CompactBytes)]) -> bool {
    let mut members: Vec<&[u8]> = elements
        .iter()
        .map(|(_, member)| member.as_slice())
        .collect();
    members.sort_unstable();
    members.windows(2).any(|pair| pair[0] == pair[1])
}

/// A sorted set from a listpack or ziplist of (member, score) pairs. Redis keeps the compact
/// encoding unless there are too many entries.
fn zset_from_pairs(
    at: usize,
    elements: &[Element<'_>],
    options: &DecodeOptions,
) -> Result<Value, DecodeError> {
    if elements.len() % 2 != 0 {
        return Err(DecodeError::new(
            at,
            "zset blob with an odd number of elements",
        ));
    }
    let mut pairs: Vec<(f64, CompactBytes)> = Vec::with_capacity(elements.len() / 2);
    for pair in elements.chunks_exact(2) {
        let score = match pair[1] {
            Element::Int(value) => value as f64,
            // zzlStrtod: at most 127 bytes through strtod; no number at all reads as 0.
            Element::Bytes(text) => strtod_prefix(&text[..text.len().min(127)]).unwrap_or(0.0),
        };
        if score.is_nan() {
            return Err(DecodeError::new(at, "zset with NAN score detected"));
        }
        let mut digits = itoa::Buffer::new();
        let member = CompactBytes::new(element_bytes(&pair[0], &mut digits));
        pairs.push((score, member));
    }
    if has_duplicate_members(&pairs) {
        if options.deep {
            return Err(DecodeError::new(at, "zset blob with duplicate members"));
        }
        // Without deep checks Redis would keep the corrupt blob; Strata keeps the first.
        let mut seen = std::collections::HashSet::new();
        pairs.retain(|(_, member)| seen.insert(member.clone()));
    }
    let limits = if pairs.len() > options.zset_limits.entries_max {
        options.zset_limits
    } else {
        UNLIMITED
    };
    non_empty(
        at,
        Value::ZSet(Box::new(ZSet::from_elements(pairs, limits))),
    )
}

fn read_plain_hash(reader: &mut Reader<'_>, options: &DecodeOptions) -> Result<Value, DecodeError> {
    let at = reader.position();
    let count = reader.count()?;
    let mut hash = Hash::new();
    for _ in 0..count {
        let field_at = reader.position();
        let field = reader.string()?;
        let value = reader.string()?;
        if hash.contains(&field) {
            // Redis checks a hash still small enough for a listpack only when sanitizing
            // deeply, and keeps the corrupt listpack otherwise (its HGET finds the first).
            if options.deep || !hash.is_listpack() {
                return Err(DecodeError::new(field_at, "duplicate hash fields detected"));
            }
            continue;
        }
        hash.set(&field, &value, options.hash_limits);
    }
    non_empty(at, Value::Hash(Box::new(hash)))
}

/// The listpack hash of a blob's (field, value) elements, made at its final size; `None`
/// when a field repeats (the caller refuses the blob or keeps the first of each).
fn listpack_hash(elements: &[Element<'_>]) -> Option<Hash> {
    debug_assert!(elements.len() % 2 == 0);
    let mut digits = itoa::Buffer::new();
    let pairs: Vec<(CompactBytes, CompactBytes)> = elements
        .chunks_exact(2)
        .map(|pair| {
            let field = CompactBytes::new(element_bytes(&pair[0], &mut digits));
            let value = CompactBytes::new(element_bytes(&pair[1], &mut digits));
            (field, value)
        })
        .collect();
    let mut fields: Vec<&[u8]> = pairs.iter().map(|(field, _)| field.as_slice()).collect();
    fields.sort_unstable();
    if fields.windows(2).any(|pair| pair[0] == pair[1]) {
        return None;
    }
    drop(fields);
    Some(Hash::from_listpack_pairs(pairs))
}

/// Adds a pair of a compact blob to `hash`, under `limits` (a listpack stays one unless it
/// has too many entries). A duplicate field is an error when `refuse_duplicates`, else the
/// first one wins.
fn add_pair(
    hash: &mut Hash,
    at: usize,
    field: &[u8],
    value: &[u8],
    refuse_duplicates: bool,
    limits: ListpackLimits,
) -> Result<(), DecodeError> {
    if refuse_duplicates {
        // One lookup: `set` says whether the field was new (the hash is dropped if not).
        if !hash.set(field, value, limits) {
            return Err(DecodeError::new(at, "hash blob with duplicate fields"));
        }
    } else if !hash.contains(field) {
        hash.set(field, value, limits);
    }
    Ok(())
}

/// An element's bytes: its own, or an integer's decimal digits written into `digits`.
fn element_bytes<'e>(element: &'e Element<'_>, digits: &'e mut itoa::Buffer) -> &'e [u8] {
    match element {
        Element::Bytes(bytes) => bytes,
        Element::Int(value) => digits.format(*value).as_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::rdb::encode::{encode_value, EncodeOptions};
    use crate::persist::rdb::payload::{create_dump_payload, verify_dump_payload};
    use proptest::prelude::*;

    fn encode(value: &Value, compression: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let options = EncodeOptions {
            compression,
            list_fill: -2,
        };
        encode_value(&mut out, value, &options).expect("every collection encodes");
        out
    }

    fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
        let (value, consumed) = decode_value(bytes, &DecodeOptions::DEFAULT)?;
        assert_eq!(consumed, bytes.len(), "a value takes all its bytes");
        Ok(value)
    }

    fn element() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|value| value.to_string().into_bytes()),
            (-200i64..200).prop_map(|value| value.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..30),
            proptest::collection::vec(prop_oneof![Just(b'x'), Just(b'y')], 0..300),
        ]
    }

    fn list() -> impl Strategy<Value = Value> {
        prop_oneof![
            proptest::collection::vec(element(), 1..40),
            // Long enough to span several quicklist nodes.
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 500..3000), 3..12),
        ]
        .prop_map(|elements| {
            let list: List = elements.iter().map(Vec::as_slice).collect();
            Value::List(Box::new(list))
        })
    }

    fn hash() -> impl Strategy<Value = Value> {
        (
            proptest::collection::btree_map(element(), element(), 1..40),
            0usize..3,
        )
            .prop_map(|(pairs, shape)| {
                // Shape 0: Redis's defaults; 1: a hashtable by count; 2: by value length.
                let limits = match shape {
                    0 => ListpackLimits::HASH_DEFAULT,
                    1 => ListpackLimits {
                        entries_max: 0,
                        value_bytes_max: 64,
                    },
                    _ => ListpackLimits {
                        entries_max: 512,
                        value_bytes_max: 0,
                    },
                };
                let mut hash = Hash::new();
                for (field, value) in &pairs {
                    hash.set(field, value, limits);
                }
                // Keep only shapes the default decoder rebuilds the same way.
                let any_long = pairs
                    .iter()
                    .any(|(field, value)| field.len() > 64 || value.len() > 64);
                if !hash.is_listpack() && !any_long && pairs.len() <= 512 {
                    let mut hash = Hash::new();
                    for (field, value) in &pairs {
                        hash.set(field, value, ListpackLimits::HASH_DEFAULT);
                    }
                    return Value::Hash(Box::new(hash));
                }
                Value::Hash(Box::new(hash))
            })
    }

    fn set() -> impl Strategy<Value = Value> {
        prop_oneof![
            proptest::collection::btree_set(any::<i64>(), 1..100).prop_map(|values| {
                let mut set = Set::new();
                for value in values {
                    set.add_member(Member::Int(value), 512);
                }
                set
            }),
            proptest::collection::btree_set(element(), 1..60).prop_map(|members| {
                let mut set = Set::for_first_member(b"not an integer");
                for member in &members {
                    set.add(member, 512);
                }
                if !set.is_intset()
                    && members
                        .iter()
                        .all(|member| crate::persist::rdb::canonical_integer(member).is_some())
                {
                    // All integers and few: the decoder makes an intset, so make one here.
                    let mut ints = Set::new();
                    for member in &members {
                        ints.add(member, 512);
                    }
                    return ints;
                }
                set
            }),
        ]
        .prop_map(|set| Value::Set(Box::new(set)))
    }

    fn zset() -> impl Strategy<Value = Value> {
        let score = prop_oneof![
            any::<f64>().prop_filter("no NaN", |score| !score.is_nan()),
            (-1000i64..1000).prop_map(|value| value as f64),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
        ];
        proptest::collection::btree_map(element(), score, 1..200).prop_map(|pairs| {
            let elements: Vec<(f64, CompactBytes)> = pairs
                .into_iter()
                .map(|(member, score)| (score, CompactBytes::from_vec(member)))
                .collect();
            Value::ZSet(Box::new(ZSet::from_elements(
                elements,
                ListpackLimits::ZSET_DEFAULT,
            )))
        })
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            element().prop_map(|bytes| Value::string(&bytes)),
            list(),
            hash(),
            set(),
            zset(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn round_trips(value in value(), compression in any::<bool>()) {
            let bytes = encode(&value, compression);
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(decoded.encoding(0), value.encoding(0));
            prop_assert_eq!(&decoded, &value);
            // And the bytes are stable: encoding the decoded value gives the same bytes
            // whenever iteration order is deterministic (not for hashtables).
            if !matches!(value.encoding(0), "hashtable") {
                prop_assert_eq!(encode(&decoded, compression), bytes);
            }
        }

        #[test]
        fn bit_flips_never_panic(value in value(), flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4)) {
            let mut bytes = encode(&value, true);
            for (index, bit) in flips {
                let index = index % bytes.len();
                bytes[index] ^= 1 << bit;
            }
            let _ = decode_value(&bytes, &DecodeOptions::DEFAULT);
            let shallow = DecodeOptions { deep: false, ..DecodeOptions::DEFAULT };
            let _ = decode_value(&bytes, &shallow);
            // The same through the payload path, with a recomputed checksum.
            bytes.extend_from_slice(&10u16.to_le_bytes());
            let crc = crate::persist::rdb::crc64::checksum(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            crate::persist::rdb::fuzz_restore_payload(&bytes);
        }

        /// What the parallel loader relies on: where decoding succeeds, skipping takes the
        /// very same bytes (or leaves the type to the decoder), flipped bits or not.
        #[test]
        fn skip_body_takes_what_decode_body_takes(
            value in value(),
            compression in any::<bool>(),
            flips in proptest::collection::vec((any::<usize>(), 0u8..8), 0..3),
        ) {
            let mut bytes = encode(&value, compression);
            for (index, bit) in flips {
                let index = index % bytes.len();
                bytes[index] ^= 1 << bit;
            }
            let kind = bytes[0];
            let mut decoder = Reader::at(&bytes, 1);
            let decoded = decode_body(&mut decoder, kind, &DecodeOptions::DEFAULT);
            let mut skipper = Reader::at(&bytes, 1);
            match (decoded, skip_body(&mut skipper, kind)) {
                (Ok(_), Ok(true)) => prop_assert_eq!(skipper.position(), decoder.position()),
                (Ok(_), Err(error)) => prop_assert!(false, "skip failed: {}", error.reason),
                (_, Ok(false)) => prop_assert_eq!(skipper.position(), 1),
                (Err(_), _) => {}
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            crate::persist::rdb::fuzz_restore_payload(&bytes);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let values = [
            Value::string(b"hello"),
            Value::string(&[b'a'; 100]),
            Value::List(Box::new(
                ["a", "1", "long"]
                    .iter()
                    .map(|text| text.as_bytes())
                    .collect(),
            )),
            Value::ZSet(Box::new(ZSet::from_elements(
                (0..200)
                    .map(|index| {
                        (
                            index as f64 / 3.0,
                            CompactBytes::from_vec(format!("m{index}").into_bytes()),
                        )
                    })
                    .collect(),
                ListpackLimits::ZSET_DEFAULT,
            ))),
        ];
        for value in &values {
            for compression in [false, true] {
                let bytes = encode(value, compression);
                for cut in 0..bytes.len() {
                    let result = decode_value(&bytes[..cut], &DecodeOptions::DEFAULT);
                    assert!(result.is_err(), "a cut at {cut} of {} decoded", bytes.len());
                }
                let payload = create_dump_payload(value, &EncodeOptions::DEFAULT).unwrap();
                for cut in 0..payload.len() {
                    assert!(verify_dump_payload(&payload[..cut], false).is_none());
                }
            }
        }
    }

    #[test]
    fn huge_declared_lengths_are_refused_before_allocating() {
        let cases: &[&[u8]] = &[
            // A string of 2^64-1 bytes.
            b"\x00\x81\xff\xff\xff\xff\xff\xff\xff\xff",
            // A list of 4 G elements.
            b"\x01\x80\xff\xff\xff\xff\x00",
            // A zset, hash and set of 4 G elements.
            b"\x05\x80\xff\xff\xff\xff",
            b"\x04\x80\xff\xff\xff\xff",
            b"\x02\x80\xff\xff\xff\xff",
            // An LZF string claiming 1 TB from 2 bytes.
            b"\x00\xc3\x02\x81\x00\x00\x01\x00\x00\x00\x00\x00\x00a",
            // A quicklist of 4 G nodes.
            b"\x12\x80\xff\xff\xff\xff",
        ];
        for case in cases {
            let error = decode_value(case, &DecodeOptions::DEFAULT).unwrap_err();
            assert!(!error.reason.is_empty());
        }
        // A listpack whose one string claims 4 GB.
        let mut listpack = vec![0u8; 6];
        listpack.extend_from_slice(&[0xF0, 0xff, 0xff, 0xff, 0xff, b'a', 6, 0xFF]);
        let total = listpack.len() as u32;
        listpack[0..4].copy_from_slice(&total.to_le_bytes());
        let mut bytes = vec![
            crate::persist::rdb::TYPE_HASH_LISTPACK,
            listpack.len() as u8,
        ];
        bytes.extend_from_slice(&listpack);
        assert!(decode_value(&bytes, &DecodeOptions::DEFAULT).is_err());
    }

    #[test]
    fn scores_parse_like_strtod() {
        assert_eq!(strtod_prefix(b"1.5"), Some(1.5));
        assert_eq!(strtod_prefix(b" -2.5e3xyz"), Some(-2500.0));
        assert_eq!(strtod_prefix(b"1e"), Some(1.0));
        assert_eq!(strtod_prefix(b".5"), Some(0.5));
        assert_eq!(strtod_prefix(b"5."), Some(5.0));
        assert_eq!(strtod_prefix(b"-inFinity"), Some(f64::NEG_INFINITY));
        assert!(strtod_prefix(b"nan").is_some_and(f64::is_nan));
        assert_eq!(strtod_prefix(b"."), None);
        assert_eq!(strtod_prefix(b"-"), None);
        assert_eq!(strtod_prefix(b"x1"), None);
        assert_eq!(strtod_prefix(b""), None);
    }

    #[test]
    fn errors_carry_offsets() {
        let error = decode_value(b"\x01\x02\x01a\x05ab", &DecodeOptions::DEFAULT).unwrap_err();
        assert_eq!(error.offset, 5);
        let error = decode_value(b"\x63", &DecodeOptions::DEFAULT).unwrap_err();
        assert_eq!(error.offset, 0);
        assert!(
            error.to_string().contains("unknown RDB value type 99"),
            "{error}"
        );
    }

    #[test]
    fn refuses_empty_collections_and_duplicates() {
        assert!(decode(b"\x01\x00").is_err());
        assert!(decode(b"\x02\x02\x01a\x01a").is_err());
        assert!(decode(b"\x04\x02\x01a\x01b\x01a\x01c").is_err());
        let shallow = DecodeOptions {
            deep: false,
            ..DecodeOptions::DEFAULT
        };
        let (value, _) = decode_value(b"\x04\x02\x01a\x01b\x01a\x01c", &shallow).unwrap();
        let Value::Hash(hash) = value else {
            panic!("a hash")
        };
        assert_eq!(hash.get(b"a"), Some(&b"b"[..]));
        assert!(decode(
            b"\x05\x02\x01a\x00\x00\x00\x00\x00\x00\xf0\x3f\x01a\x00\x00\x00\x00\x00\x00\xf0\x3f"
        )
        .is_err());
        // A NaN score.
        assert!(decode(b"\x05\x01\x01a\x00\x00\x00\x00\x00\x00\xf8\x7f").is_err());
        assert!(decode(b"\x03\x01\x01a\xfd").is_err());
        // A listpack hash with a duplicate field: refused when deep, first kept otherwise.
        let mut writer = listpack::Writer::new();
        for element in ["f", "1", "f", "2"] {
            writer.push(element.as_bytes());
        }
        let blob = writer.finish();
        let mut bytes = vec![crate::persist::rdb::TYPE_HASH_LISTPACK, blob.len() as u8];
        bytes.extend_from_slice(&blob);
        assert!(decode(&bytes).is_err());
        let shallow = DecodeOptions {
            deep: false,
            ..DecodeOptions::DEFAULT
        };
        let (value, _) = decode_value(&bytes, &shallow).unwrap();
        let Value::Hash(hash) = value else {
            panic!("a hash")
        };
        assert_eq!(hash.get(b"f"), Some(&b"1"[..]));
        assert_eq!(hash.len(), 1);
    }

    #[test]
    fn refuses_modules_and_field_ttls_clearly() {
        for kind in [6u8, 7, 22, 23, 24, 25] {
            let error = decode_value(&[kind, 0, 0], &DecodeOptions::DEFAULT).unwrap_err();
            assert!(error.unsupported, "type {kind}");
        }
    }

    /// Old encodings, laid out as Redis 2.x-6.x wrote them.
    #[test]
    fn reads_old_encodings() {
        use crate::persist::rdb::ziplist;
        let string_of = |blob: &[u8]| {
            let mut out = Vec::new();
            crate::persist::rdb::encode::write_len(&mut out, blob.len() as u64);
            out.extend_from_slice(blob);
            out
        };
        // A ziplist list (type 10).
        let blob = ziplist::build(&[Element::Bytes(b"a"), Element::Int(7)]);
        let mut bytes = vec![10u8];
        bytes.extend(string_of(&blob));
        let Value::List(list) = decode(&bytes).unwrap() else {
            panic!("a list")
        };
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![&b"a"[..], &b"7"[..]]);
        // A quicklist of two ziplists (type 14).
        let mut bytes = vec![14u8, 2];
        bytes.extend(string_of(&blob));
        bytes.extend(string_of(&ziplist::build(&[Element::Int(-70000)])));
        let Value::List(list) = decode(&bytes).unwrap() else {
            panic!("a list")
        };
        assert_eq!(list.len(), 3);
        // A ziplist hash (13) and sorted set (12).
        let blob = ziplist::build(&[Element::Bytes(b"f"), Element::Bytes(b"v")]);
        let mut bytes = vec![13u8];
        bytes.extend(string_of(&blob));
        let Value::Hash(hash) = decode(&bytes).unwrap() else {
            panic!("a hash")
        };
        assert_eq!(hash.get(b"f"), Some(&b"v"[..]));
        let blob = ziplist::build(&[
            Element::Bytes(b"m"),
            Element::Bytes(b"1.5"),
            Element::Bytes(b"n"),
            Element::Int(3),
        ]);
        let mut bytes = vec![12u8];
        bytes.extend(string_of(&blob));
        let Value::ZSet(zset) = decode(&bytes).unwrap() else {
            panic!("a zset")
        };
        assert_eq!(zset.score(b"m"), Some(1.5));
        assert_eq!(zset.score(b"n"), Some(3.0));
        // A zipmap hash (9).
        let mut bytes = vec![9u8];
        bytes.extend(string_of(
            b"\x02\x03foo\x03\x00bar\x05hello\x05\x00world\xff",
        ));
        let Value::Hash(hash) = decode(&bytes).unwrap() else {
            panic!("a hash")
        };
        assert_eq!(hash.get(b"hello"), Some(&b"world"[..]));
        // A plain sorted set with text scores (3).
        let Value::ZSet(zset) = decode(b"\x03\x02\x01a\x031.5\x01b\xfe").unwrap() else {
            panic!("a zset")
        };
        assert_eq!(zset.score(b"b"), Some(f64::INFINITY));
        // A listpack set (20, Redis 7.2) of integers becomes an intset.
        let mut writer = listpack::Writer::new();
        writer.push(b"5");
        writer.push(b"3");
        let blob = writer.finish();
        let mut bytes = vec![20u8];
        bytes.extend(string_of(&blob));
        let Value::Set(set) = decode(&bytes).unwrap() else {
            panic!("a set")
        };
        assert!(set.is_intset());
        assert_eq!(set.len(), 2);
        // A quicklist 2 plain node.
        let Value::List(list) = decode(b"\x12\x01\x01\x03abc").unwrap() else {
            panic!("a list")
        };
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![&b"abc"[..]]);
        assert!(decode(b"\x12\x01\x03\x03abc").is_err());
    }
}
