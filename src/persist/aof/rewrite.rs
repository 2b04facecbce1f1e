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

/// Appends the commands that rebuild `key`; an error for a type this cannot write yet.
pub fn emit_key(
    out: &mut BytesMut,
    key: &[u8],
    value: &Value,
    expire_ms: Option<u64>,
) -> Result<(), String> {
    match value {
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
        #[allow(unreachable_patterns)]
        other => {
            return Err(format!(
                "rewriting a {} key as commands is not supported yet",
                other.type_name()
            ))
        }
    }
    if let Some(at_ms) = expire_ms {
        let at = at_ms.to_string();
        encode_command(out, &[b"PEXPIREAT", key, at.as_bytes()]);
    }
    Ok(())
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
