//! Streams in RDB: types 15, 19 and 21 (STREAM_LISTPACKS 1 to 3). `encode.rs` and
//! `decode.rs` reach streams only through `value_type`, `encode` and `decode` here.
//!
//! Layout (Redis 7.0's `rdbSaveObject`, type 19, what RDB 10 holds):
//! - the radix tree of nodes: a count, then per node its master ID as a 16-byte big-endian
//!   string and its listpack as a string (both through `rdbSaveRawString`, so LZF applies);
//! - the length, last ID, first ID, max deleted entry ID (two lengths each) and
//!   `entries_added`; type 15 (RDB 9) stops after the last ID;
//! - the consumer groups: a count, then per group its name, last ID, `entries_read` (type
//!   19 and later; -1 as a 64-bit length when unknown), the global PEL (a count, then per
//!   entry the raw 16-byte ID, the delivery time as 8 bytes little-endian and the delivery
//!   count), then the consumers (a count, then per consumer its name, seen time as 8 bytes
//!   little-endian, in type 21 also the active time, and its PEL as raw IDs only).
//!
//! A node's listpack is what t_stream.c's `streamAppendItem` builds: a master entry (live
//! count, deleted count, the master field count, the field names, a 0 terminator), then per
//! entry: flags (SAMEFIELDS when the fields are the master's, DELETED once XDEL/XTRIM marked
//! it), the ms and seq deltas from the master ID, the field count and names unless
//! SAMEFIELDS, the values, and the lp-count back reference (the entry's element count without
//! itself).
//!
//! Deleted entries: a node is written with its tombstones (`types::stream::Tombstone`) in
//! their listpack positions, flagged DELETED, and the master entry's deleted count, so a node
//! is the listpack Redis holds, to the byte, and a DUMP or RDB of a stream with XDEL'd or
//! trimmed entries is Redis's. Reading keeps them the same way.
//!
//! Decoding is hostile-input safe: every count is checked against the bytes left before
//! anything is reserved, listpacks are walked with bounds checks, an entry whose fields are
//! the master fields (SAMEFIELDS, or listed and equal) keeps its values only and shares the
//! node's names (a long master field is held once, not once per entry), a node whose
//! decoded records and fields would take more than `DECODED_BYTES_PER_LISTPACK_BYTE_MAX`
//! times its listpack's size is refused (no well-formed node comes near it; it guards the
//! representation against amplifying its input again), and everything Strata's
//! representation relies on is always checked (the node structure, live IDs ascending and
//! inside their node, counts agreeing with the entries' flags, the stream length, the PELs'
//! ownership),
//! not only under deep sanitization. `deep` adds the listpack's own deep checks (back
//! lengths, header count). Redis trusts a few fields it could check; Strata recomputes the
//! first ID from the entries (its representation derives it) rather than refusing.

use super::decode::{DecodeOptions, Reader};
use super::encode::{write_len, write_string, EncodeOptions};
use super::listpack::{self, BlobError, Element};
use super::{DecodeError, EncodeError};
use super::{
    RESERVE_ITEMS_MAX, TYPE_STREAM_LISTPACKS, TYPE_STREAM_LISTPACKS_2, TYPE_STREAM_LISTPACKS_3,
};
use crate::types::stream::{
    self as streams, Consumer, Group, Node, PendingEntry, StreamId, Tombstone,
};
use crate::types::{CompactBytes, Stream, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Entry flags (t_stream.c's STREAM_ITEM_FLAG_*).
const FLAG_DELETED: i64 = 1;
const FLAG_SAME_FIELDS: i64 = 2;
/// Elements of an entry besides its fields and values: flags, ms delta, seq delta.
const ENTRY_FIXED_ELEMENTS: i64 = 3;
/// Bytes of a raw stream ID (two big-endian u64).
const ID_BYTES: usize = 16;
/// Bytes of an RDB millisecond time.
const TIME_BYTES: usize = 8;
/// What a decoded node may take in memory, at most, per byte of its (uncompressed)
/// listpack. A record costs `RECORD_OVERHEAD_BYTES` beside its strings and takes at least 8
/// bytes of listpack, a master field `FIELD_OVERHEAD_BYTES` and at least 2, and an element
/// grows at most 2.1 times as text (a 64-bit integer: 10 bytes, 20 digits): every
/// well-formed node stays under the bound now that entries share their node's field names
/// instead of copying them, so a node over it is a representation amplifying its input, and
/// is refused as corrupt rather than loaded. (LZF, before this, expands at most 88 times.)
const DECODED_BYTES_PER_LISTPACK_BYTE_MAX: usize = 16;
/// The memory a decoded record costs beside its strings (its tree slot or tombstone).
const RECORD_OVERHEAD_BYTES: usize = 48;
/// The memory a master field costs beside its bytes.
const FIELD_OVERHEAD_BYTES: usize = std::mem::size_of::<CompactBytes>();
// The smallest record (4 one-byte integers, 8 bytes) and master field (an integer of up to
// 3 digits in 2 bytes) fit the bound.
const _: () = assert!(RECORD_OVERHEAD_BYTES < 8 * DECODED_BYTES_PER_LISTPACK_BYTE_MAX);
const _: () = assert!(FIELD_OVERHEAD_BYTES + 3 <= 2 * DECODED_BYTES_PER_LISTPACK_BYTE_MAX);
/// Redis's SCG_INVALID_ENTRIES_READ (-1) as the length it is written with.
const ENTRIES_READ_UNKNOWN: u64 = u64::MAX;

/// The type number a stream is written with: STREAM_LISTPACKS_2, what Redis 7.0 writes.
pub fn value_type() -> Result<u8, EncodeError> {
    Ok(TYPE_STREAM_LISTPACKS_2)
}

/// Appends a stream's body (after its type byte), as Redis 7.0's `rdbSaveObject`.
pub fn encode(
    out: &mut Vec<u8>,
    stream: &Stream,
    options: &EncodeOptions,
) -> Result<(), EncodeError> {
    let nodes = stream.nodes();
    write_len(out, nodes.len() as u64);
    let mut written_entries = 0usize;
    for (master, node) in nodes {
        write_string(out, &master.to_be_bytes(), options);
        let (listpack, entries) = node_listpack(stream, *master, node);
        written_entries += entries;
        write_string(out, &listpack, options);
    }
    assert_eq!(
        written_entries,
        stream.len(),
        "every entry lies in one node"
    );
    write_len(out, stream.len() as u64);
    write_id(out, stream.last_id);
    write_id(out, stream.first_id);
    write_id(out, stream.max_deleted_entry_id);
    write_len(out, stream.entries_added);
    write_len(out, stream.groups.len() as u64);
    for (name, group) in &stream.groups {
        write_group(out, name, group, options);
    }
    Ok(())
}

fn write_id(out: &mut Vec<u8>, id: StreamId) {
    write_len(out, id.ms);
    write_len(out, id.seq);
}

fn write_group(out: &mut Vec<u8>, name: &[u8], group: &Group, options: &EncodeOptions) {
    write_string(out, name, options);
    write_id(out, group.last_id);
    write_len(out, group.entries_read.unwrap_or(ENTRIES_READ_UNKNOWN));
    // rdbSaveStreamPEL with the NACKs: raw ID, delivery time, delivery count.
    write_len(out, group.pending.len() as u64);
    for (id, entry) in &group.pending {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&entry.delivery_time_ms.to_le_bytes());
        write_len(out, entry.delivery_count);
    }
    // rdbSaveStreamConsumers: the consumer PELs hold raw IDs only; the loader resolves them
    // in the group PEL.
    write_len(out, group.consumers.len() as u64);
    let mut owned = 0usize;
    for (consumer_name, consumer) in &group.consumers {
        write_string(out, consumer_name, options);
        out.extend_from_slice(&consumer.seen_time_ms.to_le_bytes());
        write_len(out, consumer.pending.len() as u64);
        for id in &consumer.pending {
            out.extend_from_slice(&id.to_be_bytes());
        }
        owned += consumer.pending.len();
    }
    debug_assert_eq!(
        owned,
        group.pending.len(),
        "every pending entry has one owner"
    );
}

/// The listpack of one node, live entries and tombstones in their order, and how many live
/// entries it holds.
fn node_listpack(stream: &Stream, master: StreamId, node: &Node) -> (Vec<u8>, usize) {
    let mut writer = listpack::Writer::new();
    writer.push_int(node.live as i64);
    writer.push_int(node.deleted as i64);
    writer.push_int(node.master_fields.len() as i64);
    for field in &node.master_fields {
        writer.push(field.as_slice());
    }
    writer.push_int(0);
    let (mut live, mut deleted) = (0usize, 0u64);
    for record in stream.node_records(master) {
        let pairs: Vec<(&[u8], &[u8])> = streams::unpack(record.fields).collect();
        let same_fields = record.fields.shares_fields()
            || (pairs.len() == node.master_fields.len()
                && pairs
                    .iter()
                    .zip(&node.master_fields)
                    .all(|((field, _), master_field)| *field == master_field.as_slice()));
        let mut flags = if same_fields { FLAG_SAME_FIELDS } else { 0 };
        if record.deleted {
            flags |= FLAG_DELETED;
            deleted += 1;
        } else {
            live += 1;
        }
        // Redis subtracts as unsigned and stores the result as a signed integer.
        writer.push_int(flags);
        writer.push_int(record.id.ms.wrapping_sub(master.ms) as i64);
        writer.push_int(record.id.seq.wrapping_sub(master.seq) as i64);
        if !same_fields {
            writer.push_int(pairs.len() as i64);
        }
        for (field, value) in &pairs {
            if !same_fields {
                writer.push(field);
            }
            writer.push(value);
        }
        let mut lp_count = pairs.len() as i64 + ENTRY_FIXED_ELEMENTS;
        if !same_fields {
            lp_count += pairs.len() as i64 + 1;
        }
        writer.push_int(lp_count);
    }
    assert_eq!(live as u64, node.live, "a node's live count is its entries");
    assert_eq!(
        deleted, node.deleted,
        "a node's deleted count is its tombstones"
    );
    // For a node XADD built this is Redis's listpack to the byte (the round trip tests check
    // `node.bytes` against it). Not asserted here: a node loaded from a listpack with
    // non-canonical encodings keeps that listpack's size, as Redis would.
    let listpack = writer.finish();
    (listpack, live)
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// One node as read: its master ID, its state and tombstones, its live entries in order.
struct LoadedNode {
    /// Where the node's key starts in the input, for errors about the node as a whole.
    at: usize,
    master: StreamId,
    node: Node,
    entries: Vec<(StreamId, Box<[u8]>)>,
}

/// Reads a stream body of RDB type `kind` (15, 19 or 21), as Redis's `rdbLoadObject`.
pub fn decode(
    reader: &mut Reader<'_>,
    kind: u8,
    options: &DecodeOptions,
) -> Result<Value, DecodeError> {
    debug_assert!(matches!(
        kind,
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3
    ));
    let mut nodes = read_nodes(reader, options)?;
    nodes.sort_by_key(|loaded| loaded.master);
    if let Some(pair) = nodes
        .windows(2)
        .find(|pair| pair[0].master == pair[1].master)
    {
        return Err(DecodeError::new(
            pair[1].at,
            "Listpack re-added with existing key",
        ));
    }
    check_node_ranges(&nodes)?;
    // Only a hand-made file gets here (a listpack's size is a u32, and Redis keeps nodes
    // far smaller), but Strata's node holds its entries in one block with 32-bit ends.
    if let Some(loaded) = nodes.iter().find(|loaded| {
        let packed: usize = loaded.entries.iter().map(|(_, packed)| packed.len()).sum();
        packed > crate::types::stream::NODE_PACKED_BYTES_MAX
    }) {
        return Err(DecodeError::new(loaded.at, "stream node too large"));
    }
    let live: usize = nodes.iter().map(|loaded| loaded.entries.len()).sum();

    let length_at = reader.position();
    let length = reader.length()?;
    if length != live as u64 {
        return Err(DecodeError::new(
            length_at,
            format!("stream length {length} but its nodes hold {live} entries"),
        ));
    }
    let last_id_at = reader.position();
    let last_id = read_id(reader)?;
    let last_entry = nodes
        .iter()
        .rev()
        .find_map(|loaded| loaded.entries.last().map(|(id, _)| *id));
    if last_entry.is_some_and(|last_entry| last_entry > last_id) {
        return Err(DecodeError::new(
            last_id_at,
            "stream last ID below its last entry",
        ));
    }
    let (max_deleted, entries_added) = if kind == TYPE_STREAM_LISTPACKS {
        // RDB 9 has no counters: Redis starts entries_added at the length.
        (StreamId::MIN, length)
    } else {
        // The recorded first ID: Strata derives it from the entries (see the module doc).
        let _first_id = read_id(reader)?;
        let max_deleted = read_id(reader)?;
        (max_deleted, reader.length()?)
    };

    let mut stream = Stream::new();
    for loaded in nodes {
        stream.load_node(loaded.master, loaded.node, loaded.entries);
    }
    stream.set_id(last_id, entries_added, max_deleted);

    let group_count = reader.count()?;
    for _ in 0..group_count {
        let group_at = reader.position();
        let (name, group) = read_group(reader, kind, &stream)?;
        if stream.groups.contains_key(name.as_slice()) {
            return Err(DecodeError::new(
                group_at,
                format!(
                    "Duplicated consumer group name {}",
                    String::from_utf8_lossy(name.as_slice())
                ),
            ));
        }
        stream.groups.insert(name, group);
    }
    #[cfg(debug_assertions)]
    stream.check();
    Ok(Value::Stream(Box::new(stream)))
}

fn read_id(reader: &mut Reader<'_>) -> Result<StreamId, DecodeError> {
    let ms = reader.length()?;
    let seq = reader.length()?;
    Ok(StreamId::new(ms, seq))
}

fn raw_id(bytes: &[u8]) -> StreamId {
    debug_assert_eq!(bytes.len(), ID_BYTES);
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&bytes[..8]);
    seq.copy_from_slice(&bytes[8..ID_BYTES]);
    StreamId::new(u64::from_be_bytes(ms), u64::from_be_bytes(seq))
}

fn read_raw_id(reader: &mut Reader<'_>) -> Result<StreamId, DecodeError> {
    Ok(raw_id(reader.take(ID_BYTES as u64)?))
}

fn read_time_ms(reader: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let raw = reader.take(TIME_BYTES as u64)?;
    let mut word = [0u8; TIME_BYTES];
    word.copy_from_slice(raw);
    Ok(u64::from_le_bytes(word))
}

fn read_nodes(
    reader: &mut Reader<'_>,
    options: &DecodeOptions,
) -> Result<Vec<LoadedNode>, DecodeError> {
    let count = reader.count()?;
    let mut nodes = Vec::with_capacity(count.min(RESERVE_ITEMS_MAX));
    for _ in 0..count {
        let key_at = reader.position();
        let key = reader.string()?;
        if key.len() != ID_BYTES {
            return Err(DecodeError::new(
                key_at,
                "Stream node key entry is not the size of a stream ID",
            ));
        }
        let master = raw_id(&key);
        let blob_at = reader.position();
        let blob = reader.string()?;
        let loaded = read_node(&blob, key_at, master, options.deep).map_err(|error| {
            DecodeError::new(
                blob_at,
                format!("Stream listpack integrity check failed: {error}"),
            )
        })?;
        nodes.push(loaded);
    }
    Ok(nodes)
}

/// Why a node's listpack was refused: a malformed listpack (with the byte offset inside it)
/// or a well-formed one that is not a stream node (with the element's index).
#[derive(Debug)]
enum NodeError {
    Listpack(BlobError),
    Element { index: usize, reason: &'static str },
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Listpack(error) => write!(
                formatter,
                "{} (byte {} of the listpack)",
                error.reason, error.offset
            ),
            NodeError::Element { index, reason } => {
                write!(formatter, "{reason} (element {index} of the listpack)")
            }
        }
    }
}

/// A cursor over a node's listpack elements; errors name the element's index.
struct Elements<'a> {
    elements: Vec<Element<'a>>,
    position: usize,
}

impl<'a> Elements<'a> {
    fn fail<T>(&self, reason: &'static str) -> Result<T, NodeError> {
        Err(NodeError::Element {
            index: self.position,
            reason,
        })
    }

    fn remaining(&self) -> usize {
        self.elements.len() - self.position
    }

    fn next(&mut self) -> Result<Element<'a>, NodeError> {
        match self.elements.get(self.position) {
            Some(element) => {
                self.position += 1;
                Ok(*element)
            }
            None => self.fail("stream listpack ends inside an entry"),
        }
    }

    /// An integer element (`lpGetIntegerIfValid`: an integer, or a string spelling one).
    fn int(&mut self) -> Result<i64, NodeError> {
        let value = match self.next()? {
            Element::Int(value) => Some(value),
            Element::Bytes(bytes) => super::canonical_integer(bytes),
        };
        match value {
            Some(value) => Ok(value),
            None => {
                self.position -= 1;
                self.fail("stream listpack element is not an integer")
            }
        }
    }

    /// A count of elements that follow: not negative, not more than what is left.
    fn count(&mut self) -> Result<usize, NodeError> {
        let value = self.int()?;
        match usize::try_from(value) {
            Ok(count) if count <= self.remaining() => Ok(count),
            _ => {
                self.position -= 1;
                self.fail("stream listpack count out of range")
            }
        }
    }
}

/// Parses one node's listpack (t_stream.c's layout, checked as `streamValidateListpackIntegrity`
/// with deep checks, plus the ID order Strata's representation needs).
fn read_node(
    blob: &[u8],
    at: usize,
    master: StreamId,
    deep: bool,
) -> Result<LoadedNode, NodeError> {
    let elements = listpack::elements(blob, deep).map_err(NodeError::Listpack)?;
    let mut cursor = Elements {
        elements,
        position: 0,
    };
    if cursor.remaining() == 0 {
        return cursor.fail("Empty listpack inside stream");
    }
    let live_declared = cursor.int()?;
    let deleted_declared = cursor.int()?;
    let master_field_count = cursor.count()?;
    let mut master_fields = Vec::with_capacity(master_field_count);
    for _ in 0..master_field_count {
        master_fields.push(CompactBytes::from_vec(cursor.next()?.to_vec()));
    }
    if cursor.int()? != 0 {
        cursor.position -= 1;
        return cursor.fail("stream master entry without its 0 terminator");
    }
    let (Ok(live_declared), Ok(deleted_declared)) = (
        u64::try_from(live_declared),
        u64::try_from(deleted_declared),
    ) else {
        return cursor.fail("stream node with a negative count");
    };
    // Each entry takes at least four elements, so this bounds the loop by the input.
    let records = live_declared.saturating_add(deleted_declared);
    if records > cursor.remaining() as u64 {
        return cursor.fail("stream node counts more entries than it holds");
    }
    let mut entries: Vec<(StreamId, Box<[u8]>)> = Vec::with_capacity(live_declared as usize);
    let mut tombstones: Vec<Tombstone> = Vec::new();
    let mut last_record: Option<StreamId> = None;
    let mut fields: Vec<Element<'_>> = Vec::new();
    let mut values: Vec<Element<'_>> = Vec::new();
    let decoded_bytes_max = blob
        .len()
        .saturating_mul(DECODED_BYTES_PER_LISTPACK_BYTE_MAX);
    let mut decoded_bytes: usize = master_fields
        .iter()
        .map(|field| FIELD_OVERHEAD_BYTES + field.len())
        .sum();
    for slot in 0..records {
        let flags = cursor.int()?;
        let ms_delta = cursor.int()?;
        let seq_delta = cursor.int()?;
        let id = StreamId::new(
            master.ms.wrapping_add(ms_delta as u64),
            master.seq.wrapping_add(seq_delta as u64),
        );
        let deleted = flags & FLAG_DELETED != 0;
        // Live entries ascend (each was above every live one when appended, and XSETID
        // cannot go below a live entry); a tombstone may be above later records, after
        // XSETID moved the last ID back over it.
        if !deleted && entries.last().is_some_and(|(last, _)| *last >= id) {
            return cursor.fail("stream node entries out of order");
        }
        let same_fields = flags & FLAG_SAME_FIELDS != 0;
        let field_count = if same_fields {
            master_fields.len()
        } else {
            cursor.count()?
        };
        // Values alone after SAMEFIELDS, else each field followed by its value.
        fields.clear();
        values.clear();
        for _ in 0..field_count {
            if !same_fields {
                fields.push(cursor.next()?);
            }
            values.push(cursor.next()?);
        }
        let mut expected = field_count as i64 + ENTRY_FIXED_ELEMENTS;
        if !same_fields {
            expected += field_count as i64 + 1;
        }
        if cursor.int()? != expected {
            cursor.position -= 1;
            return cursor.fail("stream entry lp-count mismatch");
        }
        last_record = Some(id);
        let packed = pack_record(&master_fields, same_fields, &fields, &values);
        decoded_bytes = decoded_bytes.saturating_add(RECORD_OVERHEAD_BYTES + packed.len());
        if decoded_bytes > decoded_bytes_max {
            return cursor.fail("stream node decodes to far more than its listpack's size");
        }
        if deleted {
            tombstones.push(Tombstone {
                slot,
                id,
                fields: packed,
            });
        } else {
            entries.push((id, packed));
        }
    }
    if cursor.remaining() != 0 {
        return cursor.fail("stream node holds more than its counts say");
    }
    if entries.len() as u64 != live_declared || tombstones.len() as u64 != deleted_declared {
        return cursor.fail("stream node counts disagree with its entries' flags");
    }
    debug_assert_eq!(cursor.position, cursor.elements.len());
    Ok(LoadedNode {
        at,
        master,
        node: Node {
            live: live_declared,
            deleted: deleted_declared,
            bytes: blob.len(),
            last_id: last_record.unwrap_or(master),
            master_fields,
            tombstones,
        },
        entries,
    })
}

/// One record's strings as stored: the values only when its fields are the master fields
/// (flagged SAMEFIELDS, or listed and equal to them), which it then shares with its node
/// instead of copying them; else its field/value pairs.
fn pack_record(
    master_fields: &[CompactBytes],
    same_fields: bool,
    fields: &[Element<'_>],
    values: &[Element<'_>],
) -> Box<[u8]> {
    let values: Vec<std::borrow::Cow<'_, [u8]>> =
        values.iter().map(|value| element_text(*value)).collect();
    let fields: Vec<std::borrow::Cow<'_, [u8]>> =
        fields.iter().map(|field| element_text(*field)).collect();
    let shares = same_fields
        || (fields.len() == master_fields.len()
            && fields
                .iter()
                .zip(master_fields)
                .all(|(field, master_field)| field.as_ref() == master_field.as_slice()));
    if shares {
        return streams::pack_values(values.iter().map(|value| value.as_ref()));
    }
    debug_assert_eq!(fields.len(), values.len());
    streams::pack(
        fields
            .iter()
            .zip(&values)
            .map(|(field, value)| (field.as_ref(), value.as_ref())),
    )
}

/// An element as bytes (integers in decimal), borrowing string elements.
fn element_text(element: Element<'_>) -> std::borrow::Cow<'_, [u8]> {
    match element {
        Element::Bytes(bytes) => std::borrow::Cow::Borrowed(bytes),
        Element::Int(_) => std::borrow::Cow::Owned(element.to_vec()),
    }
}

/// Every node's live entries lie between its master ID and the next node's (the first node
/// may also hold IDs below its master: Redis appends there after XSETID moved the last ID
/// back over a node emptied by trimming), which is where Strata looks an entry up. Its
/// tombstones may lie anywhere (see `read_node`). Nodes are sorted by master ID.
fn check_node_ranges(nodes: &[LoadedNode]) -> Result<(), DecodeError> {
    for (index, loaded) in nodes.iter().enumerate() {
        let first_live = loaded.entries.first().map(|(id, _)| *id);
        let last_live = loaded.entries.last().map(|(id, _)| *id);
        if index > 0 && first_live.is_some_and(|first| first < loaded.master) {
            return Err(DecodeError::new(
                loaded.at,
                format!(
                    "stream node {} holds an entry below its master ID",
                    loaded.master
                ),
            ));
        }
        let past_next = nodes
            .get(index + 1)
            .is_some_and(|next| last_live.is_some_and(|last| last >= next.master));
        if past_next {
            return Err(DecodeError::new(
                loaded.at,
                format!(
                    "stream node {} holds an entry past the next node's master ID",
                    loaded.master
                ),
            ));
        }
    }
    Ok(())
}

/// One consumer group; needs the stream loaded so far for type 15's estimated read counter.
fn read_group(
    reader: &mut Reader<'_>,
    kind: u8,
    stream: &Stream,
) -> Result<(CompactBytes, Group), DecodeError> {
    let name = CompactBytes::new(&reader.string()?);
    let last_id = read_id(reader)?;
    let entries_read = if kind == TYPE_STREAM_LISTPACKS {
        stream.estimate_distance(last_id)
    } else {
        match reader.length()? {
            ENTRIES_READ_UNKNOWN => None,
            read => Some(read),
        }
    };
    let mut group = Group::new(last_id, entries_read);

    // The global PEL, owners resolved from the consumers' PELs below.
    let pending_count = reader.count()?;
    let mut pending: BTreeMap<StreamId, (u64, u64, Option<CompactBytes>)> = BTreeMap::new();
    for _ in 0..pending_count {
        let entry_at = reader.position();
        let id = read_raw_id(reader)?;
        let delivery_time_ms = read_time_ms(reader)?;
        let delivery_count = reader.length()?;
        if pending
            .insert(id, (delivery_time_ms, delivery_count, None))
            .is_some()
        {
            return Err(DecodeError::new(
                entry_at,
                "Duplicated global PEL entry loading stream consumer group",
            ));
        }
    }

    let consumer_count = reader.count()?;
    for _ in 0..consumer_count {
        let consumer_at = reader.position();
        let consumer_name = CompactBytes::new(&reader.string()?);
        if group.consumers.contains_key(consumer_name.as_slice()) {
            return Err(DecodeError::new(
                consumer_at,
                "Duplicate stream consumer detected.",
            ));
        }
        let seen_time_ms = read_time_ms(reader)?;
        if kind == TYPE_STREAM_LISTPACKS_3 {
            // Redis 7.2's active time: Strata models 7.0's consumers, which have none.
            let _active_time_ms = read_time_ms(reader)?;
        }
        let owned_count = reader.count()?;
        let mut owned = BTreeSet::new();
        for _ in 0..owned_count {
            let id_at = reader.position();
            let id = read_raw_id(reader)?;
            let Some(entry) = pending.get_mut(&id) else {
                return Err(DecodeError::new(
                    id_at,
                    "Consumer entry not found in group global PEL",
                ));
            };
            // Redis 7.0.15 as Debian patches it (1~deb12u10) refuses an entry a second
            // consumer names too, as a duplicate: one owner per entry.
            if entry.2.is_some() || !owned.insert(id) {
                return Err(DecodeError::new(
                    id_at,
                    "Duplicated consumer PEL entry loading a stream consumer group",
                ));
            }
            entry.2 = Some(consumer_name.clone());
        }
        group.consumers.insert(
            consumer_name,
            Consumer {
                seen_time_ms,
                pending: owned,
            },
        );
    }

    // Redis checks ownership only with deep sanitization (and crashes later without it);
    // Strata cannot hold an entry without an owner, so it always checks.
    for (id, (delivery_time_ms, delivery_count, consumer)) in pending {
        let Some(consumer) = consumer else {
            return Err(reader.error(format!("Stream CG PEL entry {id} without consumer")));
        };
        group.pending.insert(
            id,
            PendingEntry {
                delivery_time_ms,
                delivery_count,
                consumer,
            },
        );
    }
    debug_assert_eq!(
        group.pending.len(),
        group
            .consumers
            .values()
            .map(|consumer| consumer.pending.len())
            .sum::<usize>()
    );
    Ok((name, group))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::rdb::decode::decode_value;
    use crate::persist::rdb::encode::encode_value;
    use crate::persist::rdb::payload::create_dump_payload;
    use crate::types::stream::{NodeLimits, Trim};
    use proptest::prelude::*;

    fn encoded(stream: &Stream, compression: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let options = EncodeOptions {
            compression,
            ..EncodeOptions::DEFAULT
        };
        encode_value(&mut out, &Value::Stream(Box::new(stream.clone())), &options)
            .expect("streams encode");
        out
    }

    fn decoded_with(bytes: &[u8], deep: bool) -> Result<Stream, DecodeError> {
        let options = DecodeOptions {
            deep,
            ..DecodeOptions::DEFAULT
        };
        let (value, consumed) = decode_value(bytes, &options)?;
        assert_eq!(consumed, bytes.len(), "a stream takes all its bytes");
        match value {
            Value::Stream(stream) => Ok(*stream),
            other => panic!("decoded a {}", other.type_name()),
        }
    }

    fn decoded(bytes: &[u8]) -> Result<Stream, DecodeError> {
        decoded_with(bytes, true)
    }

    fn add(stream: &mut Stream, ms: u64, seq: u64, pairs: &[(&str, &str)]) {
        let pairs: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(field, value)| (field.as_bytes(), value.as_bytes()))
            .collect();
        stream.append(StreamId::new(ms, seq), &pairs, NodeLimits::DEFAULT);
    }

    /// XADD t 5-0 a 1 b 2; XADD t 6-3 a 3 b 4; XADD t 7-0 c x in Redis 7.0.15, DUMP t
    /// without its footer.
    const REDIS_THREE_ENTRIES: &[u8] = b"\x13\x01\x10\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00==\x00\x00\x00\x19\x00\x03\x01\x00\x01\x02\x01\x81a\x02\x81b\x02\x00\x01\x02\x01\x00\x01\x00\x01\x01\x01\x02\x01\x05\x01\x02\x01\x01\x01\x03\x01\x03\x01\x04\x01\x05\x01\x00\x01\x02\x01\x00\x01\x01\x01\x81c\x02\x81x\x02\x06\x01\xff\x03\x07\x00\x05\x00\x00\x00\x03\x00";

    fn three_entries() -> Stream {
        let mut stream = Stream::new();
        add(&mut stream, 5, 0, &[("a", "1"), ("b", "2")]);
        add(&mut stream, 6, 3, &[("a", "3"), ("b", "4")]);
        add(&mut stream, 7, 0, &[("c", "x")]);
        stream
    }

    #[test]
    fn writes_what_redis_writes() {
        assert_eq!(encoded(&three_entries(), true), REDIS_THREE_ENTRIES);
        // XADD s 1-1 f v; XDEL s 1-1: no nodes, the counters kept.
        let mut stream = Stream::new();
        add(&mut stream, 1, 1, &[("f", "v")]);
        assert!(stream.delete(StreamId::new(1, 1)));
        assert_eq!(
            encoded(&stream, true),
            b"\x13\x00\x00\x01\x01\x00\x00\x01\x01\x01\x00"
        );
        // XGROUP CREATE e g $ MKSTREAM: entries_read unknown is -1 as a 64-bit length.
        let mut stream = Stream::new();
        stream
            .groups
            .insert(CompactBytes::new(b"g"), Group::new(StreamId::MIN, None));
        assert_eq!(
            encoded(&stream, true),
            &b"\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01g\x00\x00\x81\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00"[..]
        );
    }

    #[test]
    fn reads_what_redis_writes() {
        let stream = decoded(REDIS_THREE_ENTRIES).unwrap();
        assert_eq!(stream, three_entries());
        stream.check();
    }

    /// A stream with every piece of state: several nodes, differing fields, a group with
    /// pending entries, a consumer without any, an integer-like name.
    fn rich() -> Stream {
        let mut stream = Stream::new();
        let limits = NodeLimits {
            bytes_max: 4096,
            entries_max: 3,
        };
        for ms in 1..=10u64 {
            let value = (ms * 1000).to_string();
            let pairs: Vec<(&[u8], &[u8])> = if ms % 4 == 0 {
                vec![(b"other", value.as_bytes()), (b"x", b"")]
            } else {
                vec![(b"n", value.as_bytes())]
            };
            stream.append(StreamId::new(ms, ms % 3), &pairs, limits);
        }
        let mut group = Group::new(StreamId::new(6, 0), Some(6));
        group.create_consumer(b"alice", 1_700_000_000_123);
        group.create_consumer(b"bob", 1_700_000_000_456);
        group.create_consumer(b"idle", 1_700_000_000_789);
        group.assign(StreamId::new(2, 2), b"alice", 1_700_000_001_000, 1);
        group.assign(StreamId::new(3, 0), b"bob", 1_700_000_002_000, 3);
        group.assign(StreamId::new(5, 2), b"alice", 1_700_000_003_000, 2);
        stream.groups.insert(CompactBytes::new(b"g1"), group);
        stream
            .groups
            .insert(CompactBytes::new(b"12"), Group::new(StreamId::MAX, None));
        stream.check();
        stream
    }

    #[test]
    fn round_trips_every_piece_of_state() {
        let stream = rich();
        for compression in [false, true] {
            let bytes = encoded(&stream, compression);
            let back = decoded(&bytes).unwrap();
            assert_eq!(back, stream);
            assert_eq!(encoded(&back, compression), bytes);
        }
        let payload = create_dump_payload(
            &Value::Stream(Box::new(stream.clone())),
            &EncodeOptions::DEFAULT,
        )
        .unwrap();
        assert!(crate::persist::rdb::verify_dump_payload(&payload, false).is_some());
    }

    /// Redis 7.0.15 with `rdbcompression no`: XADD t 1-0 a 1 ... 5-0 a 5; XADD t 6-0 b x;
    /// XDEL t 2-0 6-0; XTRIM t MAXLEN 3; DUMP t without its footer.
    const REDIS_TOMBSTONES: &[u8] = b"\x13\x01\x10\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00@TT\x00\x00\x00%\x00\x03\x01\x03\x01\x01\x01\x81a\x02\x00\x01\x03\x01\x00\x01\x00\x01\x01\x01\x04\x01\x03\x01\x01\x01\x00\x01\x02\x01\x04\x01\x02\x01\x02\x01\x00\x01\x03\x01\x04\x01\x02\x01\x03\x01\x00\x01\x04\x01\x04\x01\x02\x01\x04\x01\x00\x01\x05\x01\x04\x01\x01\x01\x05\x01\x00\x01\x01\x01\x81b\x02\x81x\x02\x06\x01\xff\x03\x06\x00\x03\x00\x06\x00\x06\x00";

    /// Redis 7.0.15: XADD e 5-0 a 1; 6-0 a 2; 7-0 a 3; XDEL e 7-0; XTRIM e MINID 7;
    /// XSETID e 0-5; XADD e 0-6 b 1; DUMP e without its footer. The live entry follows
    /// three tombstones with greater IDs.
    const REDIS_TOMBSTONES_ABOVE: &[u8] = b"\x13\x01\x10\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00@@@\x00\x00\x00\x1b\x00\x01\x01\x03\x01\x01\x01\x81a\x02\x00\x01\x03\x01\x00\x01\x00\x01\x01\x01\x04\x01\x03\x01\x01\x01\x00\x01\x02\x01\x04\x01\x03\x01\x02\x01\x00\x01\x03\x01\x04\x01\x00\x01\xdf\xfb\x02\x06\x01\x01\x01\x81b\x02\x01\x01\x06\x01\xff\x01\x00\x06\x00\x06\x07\x00\x04\x00";

    #[test]
    fn tombstones_are_written_and_read_as_redis_does() {
        let mut stream = Stream::new();
        for ms in 1..=5u64 {
            add(&mut stream, ms, 0, &[("a", &ms.to_string())]);
        }
        add(&mut stream, 6, 0, &[("b", "x")]);
        assert!(stream.delete(StreamId::new(2, 0)));
        assert!(stream.delete(StreamId::new(6, 0)));
        assert_eq!(stream.trim(Trim::MaxLen(3), false, 0), 1);
        stream.check();
        assert_eq!(encoded(&stream, false), REDIS_TOMBSTONES);
        let back = decoded(REDIS_TOMBSTONES).unwrap();
        assert_eq!(back, stream);
        back.check();

        let mut stream = Stream::new();
        for ms in 5..=7u64 {
            add(&mut stream, ms, 0, &[("a", &(ms - 4).to_string())]);
        }
        assert!(stream.delete(StreamId::new(7, 0)));
        assert_eq!(stream.trim(Trim::MinId(StreamId::new(7, 0)), false, 0), 2);
        assert_eq!(stream.nodes()[&StreamId::new(5, 0)].live, 0);
        stream.set_id(
            StreamId::new(0, 5),
            stream.entries_added,
            stream.max_deleted_entry_id,
        );
        add(&mut stream, 0, 6, &[("b", "1")]);
        stream.check();
        assert_eq!(encoded(&stream, false), REDIS_TOMBSTONES_ABOVE);
        let back = decoded(REDIS_TOMBSTONES_ABOVE).unwrap();
        assert_eq!(back, stream);
        let records: Vec<(StreamId, bool)> = back
            .node_records(StreamId::new(5, 0))
            .map(|record| (record.id, record.deleted))
            .collect();
        assert_eq!(
            records,
            vec![
                (StreamId::new(5, 0), true),
                (StreamId::new(6, 0), true),
                (StreamId::new(7, 0), true),
                (StreamId::new(0, 6), false),
            ]
        );
    }

    #[test]
    fn deleted_entries_round_trip_with_their_nodes() {
        let mut stream = rich();
        assert!(stream.delete(StreamId::new(5, 2)));
        stream.trim(Trim::MaxLen(8), false, 0);
        assert!(stream.nodes().values().any(|node| node.deleted > 0));
        for compression in [false, true] {
            let bytes = encoded(&stream, compression);
            let back = decoded(&bytes).unwrap();
            back.check();
            assert_eq!(back, stream);
            assert_eq!(encoded(&back, compression), bytes);
        }
    }

    /// A hostile RESTORE payload: one node whose master field name is 60 KB, and 20,000
    /// SAMEFIELDS entries (some deleted) with one-byte values. Decoding used to copy the name
    /// into every entry, 1.2 GB out of a payload of a few hundred KB (or a few KB with LZF);
    /// entries now share it, so the stream costs a small multiple of the uncompressed payload.
    #[test]
    fn a_long_master_field_is_not_copied_into_every_entry() {
        let name = vec![b'n'; 60_000];
        let unlimited = NodeLimits {
            bytes_max: 0,
            entries_max: 0,
        };
        let mut stream = Stream::new();
        let entries = 20_000u64;
        for ms in 1..=entries {
            let value = [b'a' + (ms % 26) as u8];
            stream.append(
                StreamId::new(ms, 0),
                &[(name.as_slice(), value.as_slice())],
                unlimited,
            );
        }
        for ms in (1..=entries).step_by(7) {
            assert!(stream.delete(StreamId::new(ms, 0)));
        }
        assert_eq!(stream.tree_keys(), 1);
        let value = Value::Stream(Box::new(stream.clone()));
        let options_of = |compression| EncodeOptions {
            compression,
            ..EncodeOptions::DEFAULT
        };
        let uncompressed = create_dump_payload(&value, &options_of(false)).unwrap();
        for compression in [false, true] {
            let options = options_of(compression);
            let payload = create_dump_payload(&value, &options).unwrap();
            let body = &payload[..payload.len() - 10];
            let Value::Stream(back) =
                crate::persist::rdb::payload::decode_dump_body(body, &DecodeOptions::DEFAULT)
                    .unwrap()
            else {
                panic!("a stream decodes as a stream");
            };
            back.check();
            assert_eq!(*back, stream);
            assert!(back.entries().all(|(_, entry)| entry.shares_fields()));
            let heap_bytes = back.heap_bytes();
            assert!(
                heap_bytes < 8 * uncompressed.len(),
                "{heap_bytes} bytes decoded from {} (uncompressed {})",
                payload.len(),
                uncompressed.len()
            );
            // Encoding it again gives the same bytes: SAMEFIELDS, as read.
            assert_eq!(
                create_dump_payload(&Value::Stream(back), &options).unwrap(),
                payload
            );
        }
    }

    /// Entries listing fields equal to the master's (Redis never writes them so, a payload
    /// may) share them too, and are written back as SAMEFIELDS, as before.
    #[test]
    fn listed_master_fields_are_shared_too() {
        let listed = listpack_of(
            (2, 0),
            &["f"],
            &[
                (0, 0, 0, Some(&["f"]), &["1"], 6),
                (2, 1, 0, None, &["2"], 4),
            ],
        );
        let stream = decoded(&two_entries_with(listed)).unwrap();
        assert!(stream.entries().all(|(_, entry)| entry.shares_fields()));
        let pairs: Vec<(&[u8], &[u8])> = stream
            .entries()
            .flat_map(|(_, entry)| streams::unpack(entry))
            .collect();
        assert_eq!(pairs, vec![(&b"f"[..], &b"1"[..]), (&b"f"[..], &b"2"[..])]);
    }

    /// A node's listpack built by hand: the master entry, then entries as
    /// (flags, ms delta, seq delta, fields or None for SAMEFIELDS, values, lp-count).
    type RawEntry<'a> = (i64, i64, i64, Option<&'a [&'a str]>, &'a [&'a str], i64);

    fn listpack_of(counts: (i64, i64), master: &[&str], entries: &[RawEntry<'_>]) -> Vec<u8> {
        let mut writer = listpack::Writer::new();
        writer.push_int(counts.0);
        writer.push_int(counts.1);
        writer.push_int(master.len() as i64);
        for field in master {
            writer.push(field.as_bytes());
        }
        writer.push_int(0);
        for (flags, ms, seq, fields, values, lp_count) in entries {
            writer.push_int(*flags);
            writer.push_int(*ms);
            writer.push_int(*seq);
            if let Some(fields) = fields {
                writer.push_int(fields.len() as i64);
                for (field, value) in fields.iter().zip(values.iter()) {
                    writer.push(field.as_bytes());
                    writer.push(value.as_bytes());
                }
            } else {
                for value in values.iter() {
                    writer.push(value.as_bytes());
                }
            }
            writer.push_int(*lp_count);
        }
        writer.finish()
    }

    /// A type 19 body: the nodes, then `tail` (length, IDs, counters, groups).
    fn body(kind: u8, nodes: &[(StreamId, Vec<u8>)], tail: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        write_len(&mut out, nodes.len() as u64);
        for (master, listpack) in nodes {
            write_string(&mut out, &master.to_be_bytes(), &EncodeOptions::DEFAULT);
            write_string(&mut out, listpack, &EncodeOptions::DEFAULT);
        }
        out.extend_from_slice(tail);
        out
    }

    /// Length 2, last ID 9-0, first 1-0, max deleted 0-0, 2 added, no groups.
    const TWO_TAIL: &[u8] = b"\x02\x09\x00\x01\x00\x00\x00\x02\x00";

    fn two_entries(entries: &[RawEntry<'_>]) -> Vec<u8> {
        body(
            19,
            &[(StreamId::new(1, 0), listpack_of((2, 0), &["f"], entries))],
            TWO_TAIL,
        )
    }

    fn two_entries_with(listpack: Vec<u8>) -> Vec<u8> {
        body(19, &[(StreamId::new(1, 0), listpack)], TWO_TAIL)
    }

    #[test]
    fn reads_hand_built_nodes_and_refuses_broken_ones() {
        let good: &[RawEntry<'_>] = &[
            (2, 0, 0, None, &["v"], 4),
            (0, 1, 0, Some(&["g", "h"]), &["1", "2"], 8),
        ];
        let stream = decoded(&two_entries(good)).unwrap();
        assert_eq!(stream.len(), 2);
        let second: Vec<(&[u8], &[u8])> =
            streams::unpack(stream.get(StreamId::new(2, 0)).unwrap()).collect();
        assert_eq!(second, vec![(&b"g"[..], &b"1"[..]), (&b"h"[..], &b"2"[..])]);

        let broken: &[(&str, &[RawEntry<'_>])] = &[
            (
                "lp-count",
                &[(2, 0, 0, None, &["v"], 5), (2, 1, 0, None, &["v"], 4)],
            ),
            (
                "order",
                &[(2, 1, 0, None, &["v"], 4), (2, 0, 0, None, &["v"], 4)],
            ),
            (
                "same id",
                &[(2, 0, 0, None, &["v"], 4), (2, 0, 0, None, &["v"], 4)],
            ),
            ("one missing", &[(2, 0, 0, None, &["v"], 4)]),
            (
                "flagged deleted",
                &[(2, 0, 0, None, &["v"], 4), (3, 1, 0, None, &["v"], 4)],
            ),
            (
                "below master",
                &[(2, -1, 0, None, &["v"], 4), (2, 0, 0, None, &["v"], 4)],
            ),
        ];
        for (what, entries) in broken {
            let bytes = two_entries(entries);
            let shallow = decoded_with(&bytes, false);
            let deep = decoded_with(&bytes, true);
            if *what == "below master" {
                // Legal in the first node (XSETID back over a trimmed node) but the
                // entries must still be under last ID and in order: this one is fine.
                assert!(deep.is_ok() && shallow.is_ok(), "{what}");
                continue;
            }
            assert!(deep.is_err(), "{what} decoded deeply");
            assert!(shallow.is_err(), "{what} decoded shallowly");
        }
        // A node counting an extra deleted entry, and one without its terminator.
        let bytes = body(
            19,
            &[(StreamId::new(1, 0), listpack_of((2, 1), &["f"], good))],
            TWO_TAIL,
        );
        assert!(decoded(&bytes).is_err());
        let mut writer = listpack::Writer::new();
        for value in [1, 0, 1] {
            writer.push_int(value);
        }
        writer.push(b"f");
        writer.push_int(7);
        let bytes = body(19, &[(StreamId::new(1, 0), writer.finish())], TWO_TAIL);
        assert!(decoded(&bytes).is_err());
        // An empty listpack.
        let bytes = body(
            19,
            &[(StreamId::new(1, 0), listpack::Writer::new().finish())],
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        );
        let error = decoded(&bytes).unwrap_err();
        assert!(error.reason.contains("Empty listpack"), "{error}");
    }

    /// Redis writes canonical encodings, but a listpack may hold an integer as a string or
    /// in a wider encoding: it loads (keeping its size, as Redis keeps the listpack) and
    /// writes back canonically.
    #[test]
    fn non_canonical_listpacks_load_and_write_canonically() {
        let mut writer = listpack::Writer::new();
        writer.push_string(b"1"); // count, as a string
        writer.push_int(0);
        writer.push_int(1);
        writer.push_string(b"7"); // a field spelling an integer, as a string
        writer.push_int(0);
        for value in [2i64, 0, 0] {
            writer.push_int(value);
        }
        writer.push_string(b"12");
        writer.push_int(4);
        let listpack = writer.finish();
        let bytes = body(
            19,
            &[(StreamId::new(1, 0), listpack.clone())],
            b"\x01\x01\x00\x01\x00\x00\x00\x01\x00",
        );
        let stream = decoded(&bytes).unwrap();
        assert_eq!(stream.nodes()[&StreamId::new(1, 0)].bytes, listpack.len());
        let fields: Vec<(&[u8], &[u8])> =
            streams::unpack(stream.get(StreamId::new(1, 0)).unwrap()).collect();
        assert_eq!(fields, vec![(&b"7"[..], &b"12"[..])]);
        let again = encoded(&stream, false);
        assert!(again.len() < bytes.len());
        let back = decoded(&again).unwrap();
        assert_eq!(
            back.entries().collect::<Vec<_>>(),
            stream.entries().collect::<Vec<_>>()
        );
    }

    #[test]
    fn errors_name_the_node() {
        let node = |master: u64| {
            (
                StreamId::new(master, 0),
                listpack_of((1, 0), &["f"], &[(2, 0, 0, None, &["v"], 5)]),
            )
        };
        let bytes = body(19, &[node(1)], TWO_TAIL);
        let error = decoded(&bytes).unwrap_err();
        // The listpack starts after the type, the node count and the 17-byte key string.
        assert_eq!(error.offset, 1 + 1 + 17, "{error}");
        assert!(error.reason.contains("lp-count"), "{error}");
    }

    #[test]
    fn refuses_inconsistent_stream_state() {
        let node = |master: u64, ms: i64| {
            (
                StreamId::new(master, 0),
                listpack_of((1, 0), &["f"], &[(2, ms, 0, None, &["v"], 4)]),
            )
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // Node key of 15 bytes.
            ("key size", {
                let mut out = vec![19u8, 1, 15];
                out.extend_from_slice(&[0; 15]);
                out
            }),
            ("duplicate node", body(19, &[node(1, 0), node(1, 0)], b"\x02\x09\x00")),
            ("entry past next master", body(19, &[node(1, 5), node(3, 0)], b"\x02\x09\x00")),
            ("below master, not first", body(19, &[node(1, 0), node(5, -1)], b"\x02\x09\x00")),
            ("length", body(19, &[node(1, 0)], b"\x02\x09\x00\x01\x00\x00\x00\x01\x00")),
            ("last id", body(19, &[node(1, 0)], b"\x01\x00\x05\x01\x00\x00\x00\x01\x00")),
            // A group named g twice.
            (
                "duplicate group",
                body(19, &[], b"\x00\x00\x00\x00\x00\x00\x00\x00\x02\x01g\x00\x00\x00\x00\x00\x01g\x00\x00\x00\x00\x00"),
            ),
        ];
        for (what, bytes) in &cases {
            let error = decoded(bytes).expect_err(what);
            assert!(!error.unsupported, "{what}");
            let error = decoded_with(bytes, false).expect_err(what);
            assert!(!error.reason.is_empty());
        }
        // Out-of-order nodes are sorted, as Redis's rax sorts them.
        let bytes = body(
            19,
            &[node(5, 0), node(1, 0)],
            b"\x02\x09\x00\x01\x00\x00\x00\x02\x00",
        );
        let stream = decoded(&bytes).unwrap();
        assert_eq!(stream.first_id, StreamId::new(1, 0));
        stream.check();
    }

    /// The groups part of a body with no entries: `groups` is the bytes after the count.
    fn with_groups(count: u8, groups: &[u8]) -> Vec<u8> {
        let mut tail = b"\x00\x09\x00\x00\x00\x00\x00\x00".to_vec();
        tail.push(count);
        tail.extend_from_slice(groups);
        body(19, &[], &tail)
    }

    fn pel_entry(ms: u8, time: u8, count: u8) -> Vec<u8> {
        let mut out = StreamId::new(ms as u64, 0).to_be_bytes().to_vec();
        out.extend_from_slice(&[time, 0, 0, 0, 0, 0, 0, 0]);
        out.push(count);
        out
    }

    fn group_bytes(pel: &[Vec<u8>], consumers: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"\x01g\x05\x00\x02".to_vec();
        out.push(pel.len() as u8);
        for entry in pel {
            out.extend_from_slice(entry);
        }
        out.push(consumers.len() as u8);
        for (name, owned) in consumers {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
            out.push(owned.len() as u8);
            for ms in owned.iter() {
                out.extend_from_slice(&StreamId::new(*ms as u64, 0).to_be_bytes());
            }
        }
        out
    }

    #[test]
    fn checks_pel_ownership() {
        let good = with_groups(
            1,
            &group_bytes(&[pel_entry(1, 7, 2)], &[("c", &[1]), ("d", &[])]),
        );
        let stream = decoded(&good).unwrap();
        let group = &stream.groups[b"g".as_slice()];
        assert_eq!(group.entries_read, Some(2));
        assert_eq!(group.pending[&StreamId::new(1, 0)].delivery_time_ms, 7);
        assert_eq!(group.pending[&StreamId::new(1, 0)].delivery_count, 2);
        assert_eq!(group.consumers[b"c".as_slice()].seen_time_ms, 9);
        assert!(group.consumers[b"d".as_slice()].pending.is_empty());
        assert_eq!(encoded(&stream, true), good);

        let bad = [
            (
                "not in the PEL",
                group_bytes(&[pel_entry(1, 7, 2)], &[("c", &[2])]),
            ),
            (
                "two owners",
                group_bytes(&[pel_entry(1, 7, 2)], &[("c", &[1]), ("d", &[1])]),
            ),
            (
                "owned twice",
                group_bytes(&[pel_entry(1, 7, 2)], &[("c", &[1, 1])]),
            ),
            (
                "no owner",
                group_bytes(&[pel_entry(1, 7, 2)], &[("c", &[])]),
            ),
            (
                "duplicate PEL",
                group_bytes(&[pel_entry(1, 7, 2), pel_entry(1, 7, 2)], &[("c", &[1])]),
            ),
            (
                "duplicate consumer",
                group_bytes(&[], &[("c", &[]), ("c", &[])]),
            ),
        ];
        for (what, group) in &bad {
            let bytes = with_groups(1, group);
            assert!(decoded(&bytes).is_err(), "{what}");
            assert!(decoded_with(&bytes, false).is_err(), "{what}");
        }
    }

    #[test]
    fn reads_rdb_9_and_redis_7_2_streams() {
        let stream = rich();
        let bytes = encoded(&stream, false);
        // Type 21 (7.2): the same, plus an active time after each seen time.
        let mut seven_two = vec![TYPE_STREAM_LISTPACKS_3];
        let mut reader = Reader::new(&bytes[1..]);
        let _ = decode(
            &mut reader,
            TYPE_STREAM_LISTPACKS_2,
            &DecodeOptions::DEFAULT,
        )
        .unwrap();
        // Rebuild from the parts: everything up to the groups is shared.
        let groups_at = {
            let mut without_groups = stream.clone();
            without_groups.groups.clear();
            encoded(&without_groups, false).len() - 1
        };
        seven_two.extend_from_slice(&bytes[..groups_at]);
        write_len(&mut seven_two, stream.groups.len() as u64);
        for (name, group) in &stream.groups {
            write_string(&mut seven_two, name, &EncodeOptions::DEFAULT);
            write_id(&mut seven_two, group.last_id);
            write_len(
                &mut seven_two,
                group.entries_read.unwrap_or(ENTRIES_READ_UNKNOWN),
            );
            write_len(&mut seven_two, group.pending.len() as u64);
            for (id, entry) in &group.pending {
                seven_two.extend_from_slice(&id.to_be_bytes());
                seven_two.extend_from_slice(&entry.delivery_time_ms.to_le_bytes());
                write_len(&mut seven_two, entry.delivery_count);
            }
            write_len(&mut seven_two, group.consumers.len() as u64);
            for (consumer_name, consumer) in &group.consumers {
                write_string(&mut seven_two, consumer_name, &EncodeOptions::DEFAULT);
                seven_two.extend_from_slice(&consumer.seen_time_ms.to_le_bytes());
                seven_two.extend_from_slice(&(consumer.seen_time_ms + 5).to_le_bytes());
                write_len(&mut seven_two, consumer.pending.len() as u64);
                for id in &consumer.pending {
                    seven_two.extend_from_slice(&id.to_be_bytes());
                }
            }
        }
        seven_two.remove(1);
        assert_eq!(seven_two[0], TYPE_STREAM_LISTPACKS_3);
        assert_eq!(decoded(&seven_two).unwrap(), stream);

        // Type 15 (RDB 9): no first ID, max deleted, entries added or entries_read.
        let mut plain = Stream::new();
        add(&mut plain, 3, 0, &[("f", "v")]);
        add(&mut plain, 4, 0, &[("f", "w")]);
        let bytes = encoded(&plain, false);
        // Body: type, 1 node (key + listpack), length, last ID, then 7.0's extra counters.
        let mut reader = Reader::new(&bytes);
        reader.byte().unwrap();
        reader.length().unwrap();
        reader.string().unwrap();
        reader.string().unwrap();
        reader.length().unwrap();
        read_id(&mut reader).unwrap();
        let cut = reader.position();
        let mut old = vec![TYPE_STREAM_LISTPACKS];
        old.extend_from_slice(&bytes[1..cut]);
        // One group at 3-0 whose read counter Redis estimates.
        old.extend_from_slice(b"\x01\x01g\x03\x00\x00\x00");
        let back = decoded(&old).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.entries_added, 2);
        assert_eq!(back.max_deleted_entry_id, StreamId::MIN);
        assert_eq!(back.first_id, StreamId::new(3, 0));
        assert_eq!(back.groups[b"g".as_slice()].entries_read, Some(1));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for compression in [false, true] {
            let bytes = encoded(&rich(), compression);
            for cut in 0..bytes.len() {
                assert!(decoded_with(&bytes[..cut], true).is_err(), "cut at {cut}");
                assert!(decoded_with(&bytes[..cut], false).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let cases: &[&[u8]] = &[
            b"\x13\x80\xff\xff\xff\xff",
            b"\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x81\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01g\x00\x00\x00\x80\xff\xff\xff\xff",
            b"\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01g\x00\x00\x00\x00\x80\xff\xff\xff\xff",
        ];
        for case in cases {
            assert!(decoded(case).is_err());
        }
        // A node whose master entry claims 2^62 fields or entries.
        for counts in [(1i64 << 62, 0i64), (1, 1 << 62)] {
            let bytes = body(
                19,
                &[(StreamId::new(1, 0), listpack_of(counts, &["f"], &[]))],
                TWO_TAIL,
            );
            assert!(decoded(&bytes).is_err());
        }
    }

    // -----------------------------------------------------------------------------------
    // Property tests
    // -----------------------------------------------------------------------------------

    fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|value| value.to_string().into_bytes()),
            (-200i64..200).prop_map(|value| value.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(Just(b'z'), 60..5000),
        ]
    }

    const FIELD_SETS: &[&[&str]] = &[&["a"], &["a", "b"], &["b", "a"], &["1", "field", "a"]];
    const NAMES: &[&str] = &["g", "12", "group", "", "alice", "bob"];

    #[derive(Debug, Clone)]
    struct GroupPlan {
        name: usize,
        last_ms: u64,
        entries_read: Option<u64>,
        consumers: Vec<(usize, u64)>,
        deliveries: Vec<(u64, usize, u64, u64)>,
    }

    fn group_plan() -> impl Strategy<Value = GroupPlan> {
        (
            0..NAMES.len(),
            0u64..300,
            proptest::option::of(any::<u64>().prop_filter("not -1", |read| *read != u64::MAX)),
            proptest::collection::vec((0..NAMES.len(), any::<u64>()), 0..4),
            proptest::collection::vec((0u64..300, any::<usize>(), any::<u64>(), 0u64..5), 0..12),
        )
            .prop_map(
                |(name, last_ms, entries_read, consumers, deliveries)| GroupPlan {
                    name,
                    last_ms,
                    entries_read,
                    consumers,
                    deliveries,
                },
            )
    }

    #[derive(Debug, Clone)]
    struct StreamPlan {
        limits: (usize, u64),
        entries: Vec<(u64, u64, usize, Vec<Vec<u8>>)>,
        deletes: Vec<prop::sample::Index>,
        /// MAXLEN n, or MINID n-0 when true.
        trim: Option<(u64, bool)>,
        /// Entries added after XSETID back to the last live entry (below any tombstone
        /// after it).
        back: usize,
        groups: Vec<GroupPlan>,
        counters: Option<(u64, u64)>,
    }

    fn stream_plan() -> impl Strategy<Value = StreamPlan> {
        (
            prop_oneof![
                Just((4096usize, 100u64)),
                Just((300, 5)),
                Just((0, 0)),
                Just((4096, 1))
            ],
            proptest::collection::vec(
                (
                    0u64..3,
                    0u64..3,
                    0..FIELD_SETS.len(),
                    proptest::collection::vec(value_bytes(), 3),
                ),
                0..80,
            ),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            proptest::option::of((0u64..80, any::<bool>())),
            prop_oneof![3 => Just(0usize), 1 => 1usize..6],
            proptest::collection::vec(group_plan(), 0..3),
            proptest::option::of((any::<u64>(), 0u64..50)),
        )
            .prop_map(|(limits, entries, deletes, trim, back, groups, counters)| {
                StreamPlan {
                    limits,
                    entries,
                    deletes,
                    trim,
                    back,
                    groups,
                    counters,
                }
            })
    }

    fn build(plan: &StreamPlan) -> Stream {
        let mut stream = Stream::new();
        let limits = NodeLimits {
            bytes_max: plan.limits.0,
            entries_max: plan.limits.1,
        };
        let mut ms = 1u64;
        for (ms_step, seq, set, values) in &plan.entries {
            ms += ms_step;
            let mut id = StreamId::new(ms, *seq);
            if id <= stream.last_id {
                id = stream.last_id.next().expect("small IDs");
            }
            let fields = FIELD_SETS[*set];
            let pairs: Vec<(&[u8], &[u8])> = fields
                .iter()
                .zip(values.iter())
                .map(|(field, value)| (field.as_bytes(), value.as_slice()))
                .collect();
            stream.append(id, &pairs, limits);
            ms = id.ms;
        }
        let ids: Vec<StreamId> = stream.entries().map(|(id, _)| *id).collect();
        for index in &plan.deletes {
            if !ids.is_empty() {
                stream.delete(*index.get(&ids));
            }
        }
        match plan.trim {
            Some((max_len, false)) => {
                stream.trim(Trim::MaxLen(max_len), false, 0);
            }
            Some((min_ms, true)) => {
                stream.trim(Trim::MinId(StreamId::new(min_ms, 0)), false, 0);
            }
            None => {}
        }
        if plan.back > 0 {
            let back = stream.last_entry_id().unwrap_or(StreamId::new(0, 1));
            stream.set_id(back, stream.entries_added, stream.max_deleted_entry_id);
            for _ in 0..plan.back {
                let id = stream.last_id.next().expect("small IDs");
                stream.append(id, &[(b"a".as_slice(), b"back".as_slice())], limits);
            }
        }
        if let Some((entries_added_extra, max_deleted_ms)) = plan.counters {
            // XSETID ... ENTRIESADDED n MAXDELETEDID id (kept above what the stream needs).
            let entries_added = stream
                .entries_added
                .saturating_add(entries_added_extra % 1000);
            let max_deleted = stream
                .max_deleted_entry_id
                .max(StreamId::new(max_deleted_ms, 0));
            let last_id = stream.last_id.max(max_deleted);
            stream.set_id(last_id, entries_added, max_deleted);
        }
        for plan in &plan.groups {
            let mut group = Group::new(StreamId::new(plan.last_ms, 0), plan.entries_read);
            for (name, seen) in &plan.consumers {
                group.create_consumer(NAMES[*name].as_bytes(), *seen);
            }
            let consumers: Vec<CompactBytes> = group.consumers.keys().cloned().collect();
            if !consumers.is_empty() {
                for (id_ms, owner, time, count) in &plan.deliveries {
                    let owner = consumers[owner % consumers.len()].clone();
                    group.assign(StreamId::new(*id_ms, 0), owner.as_slice(), *time, *count);
                }
            }
            stream
                .groups
                .insert(CompactBytes::new(NAMES[plan.name].as_bytes()), group);
        }
        stream.check();
        stream
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        #[test]
        fn round_trips(plan in stream_plan(), compression in any::<bool>()) {
            let stream = build(&plan);
            let bytes = encoded(&stream, compression);
            for deep in [true, false] {
                let back = decoded_with(&bytes, deep).unwrap();
                back.check();
                prop_assert_eq!(&back, &stream);
                // A node XADD built is Redis's listpack to the byte.
                for (master, node) in stream.nodes() {
                    let (listpack, _) = node_listpack(&stream, *master, node);
                    prop_assert_eq!(listpack.len(), node.bytes);
                }
                // What was read writes the same bytes again.
                prop_assert_eq!(encoded(&back, compression), bytes.clone());
            }
        }

        #[test]
        fn bit_flips_never_panic(
            plan in stream_plan(),
            flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4),
            compression in any::<bool>(),
        ) {
            let mut bytes = encoded(&build(&plan), compression);
            for (index, bit) in flips {
                let index = index % bytes.len();
                bytes[index] ^= 1 << bit;
            }
            for deep in [true, false] {
                // A flip may also shorten the value: whatever prefix decodes must hold.
                let options = DecodeOptions { deep, ..DecodeOptions::DEFAULT };
                if let Ok((Value::Stream(stream), consumed)) = decode_value(&bytes, &options) {
                    prop_assert!(consumed <= bytes.len());
                    stream.check();
                    let again = encoded(&stream, false);
                    prop_assert!(decoded_with(&again, deep).is_ok());
                }
            }
            crate::persist::rdb::fuzz_restore_payload(&bytes);
        }
    }
}
