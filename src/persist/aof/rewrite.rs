//! AOF rewrite as commands (`aof-use-rdb-preamble no`, and the base of a rewrite until the
//! RDB preamble is wired): the shortest command sequence that rebuilds each key, as Redis's
//! `rewriteAppendOnlyFileRio` writes it.
//!
//! Collections go out in batches of `ITEMS_PER_COMMAND` (Redis's AOF_REWRITE_ITEMS_PER_CMD)
//! so no single command is huge; a key with a TTL is followed by `PEXPIREAT`.

use crate::repl::log::encode_command;
use crate::types::Value;
use bytes::{Bytes, BytesMut};

/// Redis's AOF_REWRITE_ITEMS_PER_CMD.
const ITEMS_PER_COMMAND: usize = 64;

/// Appends `SELECT db`.
pub fn select(out: &mut BytesMut, db: usize) {
    let db = db.to_string();
    encode_command(out, &[b"SELECT", db.as_bytes()]);
}

/// Appends the commands that rebuild `key`.
pub fn emit_key(
    out: &mut BytesMut,
    key: &[u8],
    value: &Value,
    expire_ms: Option<u64>,
) -> Result<(), String> {
    match value {
        // The snapshot walk brings cold values back before handing them to a sink.
        Value::Cold(_) => return Err("a cold value reached the AOF rewrite unread".into()),
        Value::Str(bytes) => encode_command(out, &[b"SET", key, bytes.as_slice()]),
        Value::List(list) => {
            let items: Vec<&[u8]> = list.iter().collect();
            emit_batches(out, b"RPUSH", key, &items);
        }
        Value::Hash(hash) => {
            let mut items: Vec<Bytes> = Vec::with_capacity(hash.len() * 2);
            hash.for_each(|field, value| {
                items.push(Bytes::copy_from_slice(field.as_slice()));
                items.push(Bytes::copy_from_slice(value.as_slice()));
            });
            let items: Vec<&[u8]> = items.iter().map(|item| &item[..]).collect();
            emit_pairs(out, b"HMSET", key, &items);
        }
        Value::Set(set) => {
            let members = set.members();
            let items: Vec<&[u8]> = members.iter().map(|member| &member[..]).collect();
            emit_batches(out, b"SADD", key, &items);
        }
        Value::ZSet(zset) => {
            let mut items: Vec<Bytes> = Vec::with_capacity(zset.len() * 2);
            for (score, member) in zset.iter_range(0, zset.len(), false) {
                items.push(Bytes::from(crate::protocol::reply::format_double(score)));
                items.push(Bytes::copy_from_slice(member));
            }
            let items: Vec<&[u8]> = items.iter().map(|item| &item[..]).collect();
            emit_pairs(out, b"ZADD", key, &items);
        }
        Value::Stream(stream) => emit_stream(out, key, stream),
    }
    if let Some(at_ms) = expire_ms {
        let at = at_ms.to_string();
        encode_command(out, &[b"PEXPIREAT", key, at.as_bytes()]);
    }
    Ok(())
}

/// Redis's rewriteStreamObject: the entries, the stream's ids and counters, then each group
/// with its pending entries (claimed back to their consumers with their delivery times and
/// counts) and its consumers.
fn emit_stream(out: &mut BytesMut, key: &[u8], stream: &crate::types::Stream) {
    let id = |id: &crate::types::stream::StreamId| format!("{}-{}", id.ms, id.seq);
    if stream.is_empty() {
        // XADD ... MAXLEN 0 makes the key and leaves it empty, as Redis's rewrite does.
        let last = id(&stream.last_id);
        encode_command(
            out,
            &[b"XADD", key, b"MAXLEN", b"0", last.as_bytes(), b"x", b"y"],
        );
    }
    for (entry_id, packed) in stream.entries() {
        let entry_id = id(entry_id);
        let mut argv: Vec<&[u8]> = vec![b"XADD", key, entry_id.as_bytes()];
        for (field, value) in crate::types::stream::unpack(packed) {
            argv.push(field);
            argv.push(value);
        }
        encode_command(out, &argv);
    }
    let last = id(&stream.last_id);
    let added = stream.entries_added.to_string();
    let max_deleted = id(&stream.max_deleted_entry_id);
    encode_command(
        out,
        &[
            b"XSETID",
            key,
            last.as_bytes(),
            b"ENTRIESADDED",
            added.as_bytes(),
            b"MAXDELETEDID",
            max_deleted.as_bytes(),
        ],
    );
    for (name, group) in &stream.groups {
        let group_last = id(&group.last_id);
        let read = group
            .entries_read
            .map_or_else(|| "-1".to_string(), |read| read.to_string());
        encode_command(
            out,
            &[
                b"XGROUP",
                b"CREATE",
                key,
                name.as_slice(),
                group_last.as_bytes(),
                b"ENTRIESREAD",
                read.as_bytes(),
            ],
        );
        for (consumer_name, consumer) in &group.consumers {
            if consumer.pending.is_empty() {
                encode_command(
                    out,
                    &[
                        b"XGROUP",
                        b"CREATECONSUMER",
                        key,
                        name.as_slice(),
                        consumer_name.as_slice(),
                    ],
                );
            }
            for pending_id in &consumer.pending {
                let Some(pending) = group.pending.get(pending_id) else {
                    debug_assert!(false, "a consumer's pending id is in the group's PEL");
                    continue;
                };
                let claimed = id(pending_id);
                let time = pending.delivery_time_ms.to_string();
                let count = pending.delivery_count.to_string();
                encode_command(
                    out,
                    &[
                        b"XCLAIM",
                        key,
                        name.as_slice(),
                        consumer_name.as_slice(),
                        b"0",
                        claimed.as_bytes(),
                        b"TIME",
                        time.as_bytes(),
                        b"RETRYCOUNT",
                        count.as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}

fn emit_batches(out: &mut BytesMut, verb: &[u8], key: &[u8], items: &[&[u8]]) {
    for batch in items.chunks(ITEMS_PER_COMMAND) {
        let mut argv: Vec<&[u8]> = Vec::with_capacity(batch.len() + 2);
        argv.push(verb);
        argv.push(key);
        argv.extend_from_slice(batch);
        encode_command(out, &argv);
    }
}

/// Like `emit_batches` for (field, value) or (score, member) pairs: a pair never splits.
fn emit_pairs(out: &mut BytesMut, verb: &[u8], key: &[u8], items: &[&[u8]]) {
    debug_assert!(items.len() % 2 == 0);
    for batch in items.chunks(ITEMS_PER_COMMAND * 2) {
        let mut argv: Vec<&[u8]> = Vec::with_capacity(batch.len() + 2);
        argv.push(verb);
        argv.push(key);
        argv.extend_from_slice(batch);
        encode_command(out, &argv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{List, ZSet};

    #[test]
    fn batches_collections_and_adds_the_ttl() {
        let mut list = List::new();
        for index in 0..130 {
            list.push(crate::types::list::End::Right, index.to_string().as_bytes());
        }
        let mut out = BytesMut::new();
        emit_key(&mut out, b"l", &Value::List(Box::new(list)), Some(42)).expect("lists");
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("RPUSH").count(), 3, "64 + 64 + 2");
        assert!(text.ends_with("*3\r\n$9\r\nPEXPIREAT\r\n$1\r\nl\r\n$2\r\n42\r\n"));

        let mut zset = ZSet::new();
        zset.insert(1.5, b"a", crate::types::ListpackLimits::ZSET_DEFAULT);
        let mut out = BytesMut::new();
        emit_key(&mut out, b"z", &Value::ZSet(Box::new(zset)), None).expect("zsets");
        assert_eq!(
            &out[..],
            b"*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$3\r\n1.5\r\n$1\r\na\r\n"
        );
    }
}
