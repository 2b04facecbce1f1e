//! Writing one value as Redis 7.0's `rdbSaveObjectType` + `rdbSaveObject` write it.
//!
//! For the same data in the same encoding the bytes are Redis's, so a DUMP from Strata equals
//! Redis's DUMP: strings with the integer encodings and LZF, lists as QUICKLIST_2 nodes split
//! where Redis's quicklist splits a list built by RPUSH, hashes as a listpack or plain pairs,
//! sets as an intset or plain members, sorted sets as a listpack or ZSET_2 (highest first,
//! binary doubles). Hashtable iteration order is Strata's own, so those bytes differ from
//! Redis's while meaning the same.

use super::{listpack, lzf, EncodeError};
use super::{
    ENC_INT16, ENC_INT32, ENC_INT8, ENC_LZF, LEN_14BIT, LEN_32BIT, LEN_64BIT, LEN_ENCODED,
    QUICKLIST_PACKED, QUICKLIST_PLAIN, TYPE_HASH, TYPE_HASH_LISTPACK, TYPE_LIST_QUICKLIST_2,
    TYPE_SET, TYPE_SET_INTSET, TYPE_STRING, TYPE_ZSET_2, TYPE_ZSET_LISTPACK,
};
use crate::types::hash::Hash;
use crate::types::list::List;
use crate::types::set::{Member, Set};
use crate::types::zset::ZSet;
use crate::types::Value;

/// The configuration that shapes the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when it saves space.
    pub compression: bool,
    /// `list-max-listpack-size`: the quicklist fill factor (negative: a byte limit per node,
    /// -1 = 4 KB ... -5 = 64 KB; positive: an element count).
    pub list_fill: i64,
}

impl EncodeOptions {
    /// Redis 7.0's defaults.
    pub const DEFAULT: EncodeOptions = EncodeOptions {
        compression: true,
        list_fill: -2,
    };

    pub fn from_config(config: &crate::config::Config) -> EncodeOptions {
        EncodeOptions {
            compression: config.bool("rdbcompression"),
            list_fill: config.int("list-max-listpack-size"),
        }
    }
}

const COLD: EncodeError = EncodeError {
    reason: "a cold value reached the encoder unread",
};

/// The RDB type number `value` is written with.
pub fn value_type(value: &Value) -> Result<u8, EncodeError> {
    Ok(match value {
        Value::Str(_) => TYPE_STRING,
        Value::List(_) => TYPE_LIST_QUICKLIST_2,
        Value::Hash(hash) if hash.is_listpack() => TYPE_HASH_LISTPACK,
        Value::Hash(_) => TYPE_HASH,
        Value::Set(set) if set.is_intset() => TYPE_SET_INTSET,
        Value::Set(_) => TYPE_SET,
        Value::ZSet(zset) if zset.encoding() == "listpack" => TYPE_ZSET_LISTPACK,
        Value::ZSet(_) => TYPE_ZSET_2,
        Value::Stream(_) => return super::stream::value_type(),
        // The snapshot walk and DUMP bring cold values back before encoding them.
        Value::Cold(_) => return Err(COLD),
    })
}

/// Appends the type byte and the value (what a DUMP payload holds before its footer).
pub fn encode_value(
    out: &mut Vec<u8>,
    value: &Value,
    options: &EncodeOptions,
) -> Result<(), EncodeError> {
    let kind = value_type(value)?;
    out.push(kind);
    match value {
        Value::Str(bytes) => write_string(out, bytes, options),
        Value::List(list) => write_list(out, list, options),
        Value::Hash(hash) => write_hash(out, hash, options),
        Value::Set(set) => write_set(out, set, options),
        Value::ZSet(zset) => write_zset(out, zset, options),
        Value::Stream(stream) => super::stream::encode(out, stream, options)?,
        Value::Cold(_) => return Err(COLD),
    }
    Ok(())
}

/// Redis's `rdbSaveLen`.
pub fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push((LEN_14BIT << 6) | (len >> 8) as u8);
        out.push(len as u8);
    } else if let Ok(len32) = u32::try_from(len) {
        out.push(LEN_32BIT);
        out.extend_from_slice(&len32.to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Redis's `rdbEncodeInteger`: the integer string encodings, when `value` fits 32 bits.
fn write_integer(out: &mut Vec<u8>, value: i64) -> bool {
    let tag = |encoding: u8| (LEN_ENCODED << 6) | encoding;
    if let Ok(small) = i8::try_from(value) {
        out.extend_from_slice(&[tag(ENC_INT8), small as u8]);
    } else if let Ok(medium) = i16::try_from(value) {
        out.push(tag(ENC_INT16));
        out.extend_from_slice(&medium.to_le_bytes());
    } else if let Ok(large) = i32::try_from(value) {
        out.push(tag(ENC_INT32));
        out.extend_from_slice(&large.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Redis's `rdbSaveRawString`: an integer encoding for short canonical integers, LZF for
/// strings over 20 bytes when compression is on and saves at least 4 bytes, else plain.
pub fn write_string(out: &mut Vec<u8>, bytes: &[u8], options: &EncodeOptions) {
    if bytes.len() <= 11 {
        if let Some(value) = super::canonical_integer(bytes) {
            if write_integer(out, value) {
                return;
            }
        }
    }
    if options.compression && bytes.len() > 20 {
        if let Some(compressed) = lzf::compress(bytes, bytes.len() - 4) {
            out.push((LEN_ENCODED << 6) | ENC_LZF);
            write_len(out, compressed.len() as u64);
            write_len(out, bytes.len() as u64);
            out.extend_from_slice(&compressed);
            return;
        }
    }
    write_len(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Redis's `rdbSaveBinaryDoubleValue`.
pub fn write_binary_double(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

// ---------------------------------------------------------------------------------------------
// Lists: quicklist nodes
// ---------------------------------------------------------------------------------------------

/// Node byte limits of the negative fill factors (quicklist.c's optimization_level).
const NODE_BYTES_LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// A node never grows past this unless a size level allows it (SIZE_SAFETY_LIMIT).
const NODE_BYTES_SAFETY: usize = 8192;
/// Redis's per-element size estimate in a node (SIZE_ESTIMATE_OVERHEAD).
const SIZE_ESTIMATE_OVERHEAD: usize = 8;
/// Elements this large get a plain node of their own (packed_threshold, 1 GB).
const PLAIN_ELEMENT_BYTES_MIN: usize = 1 << 30;
/// quicklistSetFill clamps the fill factor to this range.
const FILL_MIN: i64 = -5;
const FILL_MAX: i64 = (1 << 15) - 1;

/// Redis 7.0.15's `_quicklistNodeAllowInsert` with `quicklistNodeExceedsLimit`: may a node
/// of `node_bytes` holding `node_count` elements take one more of `element_bytes`? The size
/// is Redis's estimate (a fixed 8 bytes of overhead per element), not the exact listpack
/// growth, because the split points must be Redis's. Checked against real Redis DUMPs.
fn node_allows(node_bytes: usize, node_count: usize, fill: i64, element_bytes: usize) -> bool {
    if element_bytes >= PLAIN_ELEMENT_BYTES_MIN {
        return false;
    }
    let new_bytes = node_bytes + element_bytes + SIZE_ESTIMATE_OVERHEAD;
    if fill < 0 {
        let level = ((-fill - 1) as usize).min(NODE_BYTES_LEVELS.len() - 1);
        return new_bytes <= NODE_BYTES_LEVELS[level];
    }
    // A count limit; zero still allows one element per node.
    let count_max = fill.max(1) as usize;
    new_bytes <= NODE_BYTES_SAFETY && node_count < count_max
}

enum Node<'a> {
    Plain(&'a [u8]),
    Packed(listpack::Writer),
}

/// Splits a list into the nodes Redis's quicklist holds after RPUSHing its elements in order.
fn quicklist_nodes<'a>(list: &'a List, fill: i64) -> Vec<Node<'a>> {
    let fill = fill.clamp(FILL_MIN, FILL_MAX);
    let mut nodes: Vec<Node<'a>> = Vec::new();
    for element in list.iter() {
        if let Some(Node::Packed(writer)) = nodes.last_mut() {
            if node_allows(writer.total_bytes(), writer.count(), fill, element.len()) {
                writer.push(element);
                continue;
            }
        }
        if element.len() >= PLAIN_ELEMENT_BYTES_MIN {
            nodes.push(Node::Plain(element));
        } else {
            let mut writer = listpack::Writer::new();
            writer.push(element);
            nodes.push(Node::Packed(writer));
        }
    }
    debug_assert!(list.is_empty() || !nodes.is_empty());
    nodes
}

fn write_list(out: &mut Vec<u8>, list: &List, options: &EncodeOptions) {
    let nodes = quicklist_nodes(list, options.list_fill);
    write_len(out, nodes.len() as u64);
    for node in nodes {
        match node {
            Node::Plain(element) => {
                write_len(out, QUICKLIST_PLAIN);
                write_string(out, element, options);
            }
            Node::Packed(writer) => {
                write_len(out, QUICKLIST_PACKED);
                write_string(out, &writer.finish(), options);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hashes, sets, sorted sets
// ---------------------------------------------------------------------------------------------

fn write_hash(out: &mut Vec<u8>, hash: &Hash, options: &EncodeOptions) {
    if hash.is_listpack() {
        let mut writer = listpack::Writer::new();
        hash.for_each(|field, value| {
            writer.push(field);
            writer.push(value);
        });
        debug_assert_eq!(writer.count(), hash.len() * 2);
        write_string(out, &writer.finish(), options);
    } else {
        write_len(out, hash.len() as u64);
        let mut written = 0usize;
        hash.for_each(|field, value| {
            write_string(out, field, options);
            write_string(out, value, options);
            written += 1;
        });
        debug_assert_eq!(written, hash.len());
    }
}

fn write_set(out: &mut Vec<u8>, set: &Set, options: &EncodeOptions) {
    if set.is_intset() {
        let mut values = Vec::with_capacity(set.len());
        set.for_each(|member| match member {
            Member::Int(value) => values.push(value),
            Member::Bytes(bytes) => {
                let value = super::canonical_integer(bytes);
                values.push(value.expect("an intset member is an integer"));
            }
        });
        write_string(out, &super::intset::build(&values), options);
    } else {
        write_len(out, set.len() as u64);
        set.for_each(|member| member.with_bytes(|bytes| write_string(out, bytes, options)));
    }
}

/// Redis 7.0's `d2string`: how a listpack sorted set stores a score (an integer when the
/// double is one within 2^52, else `%.17g`).
pub fn score_text(score: f64) -> String {
    if score == 0.0 {
        return if score.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    const MIN: f64 = -4503599627370495.0;
    const MAX: f64 = 4503599627370496.0;
    if score > MIN && score < MAX && score == (score as i64) as f64 {
        return itoa::Buffer::new().format(score as i64).to_string();
    }
    crate::protocol::reply::format_double(score)
}

fn write_zset(out: &mut Vec<u8>, zset: &ZSet, options: &EncodeOptions) {
    let len = zset.len();
    if zset.encoding() == "listpack" {
        let mut writer = listpack::Writer::new();
        for (score, member) in zset.iter_range(0, len, false) {
            writer.push(member);
            writer.push(score_text(score).as_bytes());
        }
        debug_assert_eq!(writer.count(), len * 2);
        write_string(out, &writer.finish(), options);
    } else {
        // Highest first, as rdbSaveObject walks the skiplist from its tail, so a loader's
        // inserts always land at the head.
        write_len(out, len as u64);
        for (score, member) in zset.iter_range(0, len, true) {
            write_string(out, member, options);
            write_binary_double(out, score);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(&mut out, value, &EncodeOptions::DEFAULT).unwrap();
        out
    }

    #[test]
    fn strings_use_redis_encodings() {
        assert_eq!(encoded(&Value::string(b"bar")), b"\x00\x03bar");
        assert_eq!(encoded(&Value::string(b"12")), b"\x00\xc0\x0c");
        assert_eq!(encoded(&Value::string(b"-300")), b"\x00\xc1\xd4\xfe");
        assert_eq!(
            encoded(&Value::string(b"100000")),
            b"\x00\xc2\xa0\x86\x01\x00"
        );
        // Not canonical, or too long for the integer encodings: plain.
        assert_eq!(encoded(&Value::string(b"012")), b"\x00\x03012");
        assert_eq!(
            encoded(&Value::string(b"12345678901")),
            b"\x00\x0b12345678901"
        );
        let long: Vec<u8> = [vec![b'a'; 30], vec![b'b'; 30]].concat();
        assert_eq!(
            encoded(&Value::string(&long)),
            b"\x00\xc3\x0e<\x01aa\xe0\x13\x00\x00b\xe0\x12\x00\x01bb"
        );
    }

    #[test]
    fn lengths() {
        let mut out = Vec::new();
        write_len(&mut out, 63);
        write_len(&mut out, 64);
        write_len(&mut out, 16384);
        write_len(&mut out, 1 << 32);
        assert_eq!(
            out,
            b"\x3f\x40\x40\x80\x00\x00\x40\x00\x81\x00\x00\x00\x01\x00\x00\x00\x00"
        );
    }

    #[test]
    fn scores_as_d2string() {
        assert_eq!(score_text(1.0), "1");
        assert_eq!(score_text(-0.0), "-0");
        assert_eq!(score_text(1.5), "1.5");
        assert_eq!(score_text(f64::INFINITY), "inf");
        assert_eq!(score_text(4503599627370496.0), "4503599627370496");
        assert_eq!(score_text(0.1), "0.10000000000000001");
    }

    /// DUMP of RPUSH l a b 1 -5 300 70000 hello in Redis 7.0.15, without the footer.
    #[test]
    fn list_like_redis() {
        let list: List = ["a", "b", "1", "-5", "300", "70000", "hello"]
            .iter()
            .map(|text| text.as_bytes())
            .collect();
        assert_eq!(
            encoded(&Value::List(Box::new(list))),
            &b"\x12\x01\x02!!\x00\x00\x00\x07\x00\x81a\x02\x81b\x02\x01\x01\xdf\xfb\x02\xc1,\x02\xf2p\x11\x01\x04\x85hello\x06\xff"[..]
        );
    }
}
