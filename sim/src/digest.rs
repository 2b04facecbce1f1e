//! An order-independent digest of a keyspace's data: two keyspaces with the same digest hold
//! the same keys, values and exact expiry times. Keys past their time but not yet reclaimed
//! count too: a loaded server (nothing expires while loading) and a replayed reference both
//! still hold them, and telling "expired, still there" from "deleted" keeps two history
//! prefixes from looking alike when what follows would treat them differently. A stream
//! group's derived entries-read counter is left out (see `value_digest`). A cold value is
//! digested as what the memory tier reads back; one it cannot read is reported with its
//! pointer and the tier's error (`Unreadable`), never guessed at.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use strata::keyspace::Keyspace;
use strata::tier::ColdRef;
use strata::types::Value;

/// A cold value the tier could not read back: its pointer and the tier's error.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub cold: ColdRef,
    pub error: String,
}

/// `(db, key)`.
pub type KeyName = (usize, Vec<u8>);

/// The digest of every database of `keyspace` as of `now_ms`, and the number of keys; Err
/// names the first value the tier could not read back.
pub fn digest(keyspace: &Keyspace, now_ms: u64) -> Result<(u64, usize), String> {
    let keys = key_digests(keyspace, now_ms);
    let mut hasher = DefaultHasher::new();
    for (name, digest) in &keys {
        match digest {
            Ok(digest) => (name, digest).hash(&mut hasher),
            Err(unreadable) => {
                return Err(format!(
                    "the value of {:?} in db {} does not read back: {}",
                    String::from_utf8_lossy(&name.1),
                    name.0,
                    unreadable.error
                ))
            }
        }
    }
    Ok((hasher.finish(), keys.len()))
}

/// The number of keys `digest` counts (expired ones not yet reclaimed included).
pub fn key_count(keyspace: &Keyspace, now_ms: u64) -> usize {
    let mut ks = keyspace.lock_all(now_ms);
    (0..keyspace.databases())
        .map(|db| ks.slices(db).map(|slice| slice.keys.len()).sum::<usize>())
        .sum()
}

/// Every key's digest (value and exact expiry), cold values read back from the tier.
pub fn key_digests(keyspace: &Keyspace, now_ms: u64) -> BTreeMap<KeyName, Result<u64, Unreadable>> {
    let mut keys = BTreeMap::new();
    walk(keyspace, now_ms, |db, key, digest, _| {
        keys.insert((db, key.to_vec()), digest.map(|(digest, _)| digest));
    });
    keys
}

/// Per-key digests (for explaining a mismatch): `(db, key) -> (digest, description)`.
pub fn per_key(keyspace: &Keyspace, now_ms: u64) -> BTreeMap<KeyName, (u64, String)> {
    let mut keys = BTreeMap::new();
    walk(keyspace, now_ms, |db, key, digest, expire| {
        let (digest, text) = match digest {
            Ok((digest, value)) => (digest, format!("{expire:?} {value:?}")),
            Err(unreadable) => (0, format!("{expire:?} unreadable: {}", unreadable.error)),
        };
        let text = match text.find("groups") {
            Some(at) => text[at..].chars().take(700).collect(),
            None => text.chars().take(400).collect(),
        };
        keys.insert((db, key.to_vec()), (digest, text));
    });
    keys
}

/// Every key of every database with its digest (value and exact expiry) and value, or why
/// its cold value did not read back; and its expiry time.
fn walk(
    keyspace: &Keyspace,
    now_ms: u64,
    mut visit: impl FnMut(usize, &[u8], Result<(u64, &Value), Unreadable>, Option<u64>),
) {
    let mut ks = keyspace.lock_all(now_ms);
    for db in 0..keyspace.databases() {
        for slice in ks.slices(db) {
            let expires = &slice.expires;
            slice.keys.for_each(|key, entry| {
                let expire = if entry.has_expire() {
                    expires.get(key.as_slice()).copied()
                } else {
                    None
                };
                // A cold value is compared as what it holds, read back from the tier.
                let read;
                let value = match &entry.value {
                    Value::Cold(cold) => match keyspace.tier.read(*cold) {
                        Ok(value) => {
                            read = value;
                            &read
                        }
                        Err(err) => {
                            let unreadable = Unreadable {
                                cold: *cold,
                                error: err.to_string(),
                            };
                            visit(db, key.as_slice(), Err(unreadable), expire);
                            return;
                        }
                    },
                    value => value,
                };
                let mut hasher = DefaultHasher::new();
                expire.hash(&mut hasher);
                value_digest(value, &mut hasher);
                visit(db, key.as_slice(), Ok((hasher.finish(), value)), expire);
            });
        }
    }
}

fn value_digest(value: &Value, hasher: &mut DefaultHasher) {
    value.type_name().hash(hasher);
    match value {
        Value::Str(bytes) => bytes.as_slice().hash(hasher),
        Value::Cold(_) => unreachable!("walk reads cold values back first"),
        Value::List(list) => {
            for element in list.iter() {
                element.hash(hasher);
            }
        }
        Value::Hash(hash) => {
            let mut pairs = Vec::new();
            hash.for_each(|field, value| pairs.push((field.to_vec(), value.to_vec())));
            pairs.sort();
            pairs.hash(hasher);
        }
        Value::Set(set) => {
            let mut members = set.members();
            members.sort();
            members.hash(hasher);
        }
        Value::ZSet(zset) => {
            for (score, member) in zset.iter_range(0, zset.len(), false) {
                score.to_bits().hash(hasher);
                member.hash(hasher);
            }
        }
        Value::Stream(stream) => {
            for (id, packed) in stream.entries() {
                (id.ms, id.seq).hash(hasher);
                packed.hash(hasher);
            }
            let ids = [stream.last_id, stream.max_deleted_entry_id];
            for id in ids {
                (id.ms, id.seq).hash(hasher);
            }
            stream.entries_added.hash(hasher);
            for (name, group) in &stream.groups {
                name.as_slice().hash(hasher);
                // Not `entries_read`: a rewrite rebuilds the stream without its deleted
                // entries (Redis's does too), which can make a later read's estimate known
                // where the original's was not. Everything a rewrite must keep is here.
                (group.last_id.ms, group.last_id.seq).hash(hasher);
                for (id, pending) in &group.pending {
                    (
                        id.ms,
                        id.seq,
                        pending.delivery_count,
                        pending.delivery_time_ms,
                    )
                        .hash(hasher);
                    pending.consumer.as_slice().hash(hasher);
                }
                for (consumer, state) in &group.consumers {
                    consumer.as_slice().hash(hasher);
                    state.pending.len().hash(hasher);
                }
            }
        }
    }
}
