//! Generic key commands: Redis 7.0's `db.c` and `expire.c` keyspace commands.
//!
//! DEL, UNLINK, EXISTS, TYPE, TOUCH, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL,
//! EXPIRETIME, PEXPIRETIME, PERSIST, KEYS, SCAN, RANDOMKEY, RENAME, RENAMENX, COPY, MOVE,
//! SWAPDB, DBSIZE, FLUSHDB, FLUSHALL, OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT|HELP.
//!
//! Replies and error texts are Redis 7.0.15's. The EXPIRE family propagates as
//! `PEXPIREAT key <abs ms> [flags]` (a time already past as `DEL key`), so replicas and the
//! AOF see absolute times. SCAN walks the shards in order, each shard's dict with Redis's
//! reverse-binary cursor, so a key present for the whole walk is returned at least once.

use super::args;
use super::args::ScanOptions;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::keyspace::entry::{FLAG_RAW, FLAG_SHARED, SHARED_REFCOUNT};
use crate::keyspace::notify;
use crate::keyspace::shards::SHARDS;
use crate::keyspace::{AccessMode, Entry};
use crate::protocol::Reply;
use bytes::Bytes;
use rand::Rng;

const SAME_OBJECT: &str = "ERR source and destination objects are the same";
const NX_INCOMPATIBLE: &str = "ERR NX and XX, GT or LT options at the same time are not compatible";
const GT_LT_INCOMPATIBLE: &str = "ERR GT and LT options at the same time are not compatible";
const INVALID_FIRST_DB: &str = "ERR invalid first DB index";
const INVALID_SECOND_DB: &str = "ERR invalid second DB index";
const NOT_INT32: &str = "ERR value is out of range, value must between -2147483648 and 2147483647";
const LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
const LFU_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

/// Bits of a SCAN cursor that name the shard; the dict cursor sits above them.
const CURSOR_SHARD_BITS: u32 = SHARDS.trailing_zeros();
const _: () = assert!(1 << CURSOR_SHARD_BITS == SHARDS);

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

pub static COMMANDS: &[Spec] = &[
    Spec::new("del", del, Lock::Keys),
    Spec::new("unlink", del, Lock::Keys),
    Spec::new("exists", exists, Lock::Keys),
    Spec::new("type", type_command, Lock::Keys),
    Spec::new("touch", touch, Lock::Keys),
    Spec::new("expire", expire, Lock::Keys),
    Spec::new("pexpire", pexpire, Lock::Keys),
    Spec::new("expireat", expireat, Lock::Keys),
    Spec::new("pexpireat", pexpireat, Lock::Keys),
    Spec::new("ttl", ttl, Lock::Keys),
    Spec::new("pttl", pttl, Lock::Keys),
    Spec::new("expiretime", expiretime, Lock::Keys),
    Spec::new("pexpiretime", pexpiretime, Lock::Keys),
    Spec::new("persist", persist, Lock::Keys),
    Spec::new("keys", keys, Lock::All),
    Spec::new("scan", scan, Lock::All),
    Spec::new("randomkey", randomkey, Lock::All),
    Spec::new("rename", rename, Lock::Keys),
    Spec::new("renamenx", renamenx, Lock::Keys),
    Spec::new("copy", copy, Lock::Keys),
    Spec::new("move", move_command, Lock::Keys),
    Spec::new("swapdb", swapdb, Lock::All),
    Spec::new("dbsize", dbsize, Lock::All),
    Spec::new("flushdb", flushdb, Lock::All),
    Spec::new("flushall", flushall, Lock::All),
    Spec::new("object|encoding", object_encoding, Lock::Keys),
    Spec::new("object|freq", object_freq, Lock::Keys),
    Spec::new("object|idletime", object_idletime, Lock::Keys),
    Spec::new("object|refcount", object_refcount, Lock::Keys),
    Spec::new("object|help", object_help, Lock::None),
];

/// `DEL key [key ...]`, `UNLINK key [key ...]`: the number of keys removed.
fn del(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let mut removed = 0;
    for key in &argv[1..] {
        if ctx.ks.delete(db, key) {
            ctx.ks.notify(notify::GENERIC, "del", db, key);
            removed += 1;
        }
    }
    Ok(Reply::Integer(removed as i64))
}

/// `EXISTS key [key ...]`: how many of the keys exist, a key named twice counting twice.
fn exists(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let found = argv[1..]
        .iter()
        .filter(|key| ctx.ks.peek_meta_read(ctx.session.db, key).is_some())
        .count();
    Ok(Reply::Integer(found as i64))
}

/// `TYPE key`: the type's name, `none` for a missing key.
fn type_command(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let name = ctx
        .ks
        .peek_meta_read(ctx.session.db, &argv[1])
        .map_or("none", |entry| entry.value.type_name());
    Ok(Reply::Simple(name))
}

/// `TOUCH key [key ...]`: records an access on each key; the number that exist.
fn touch(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let touched = argv[1..]
        .iter()
        // Counted as a read, touched as an access; a cold value stays on disk.
        .filter(|key| {
            ctx.ks.peek_meta_read(db, key).is_some() && ctx.ks.lookup_meta(db, key).is_some()
        })
        .count();
    Ok(Reply::Integer(touched as i64))
}

/// The NX/XX/GT/LT condition of the EXPIRE family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ExpireCondition {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireCondition {
    /// Redis's `parseExtendedExpireArgumentsOrReply`.
    fn parse(options: &[Bytes]) -> Result<ExpireCondition, Error> {
        let mut condition = ExpireCondition::default();
        for option in options {
            if args::is(option, "nx") {
                condition.nx = true;
            } else if args::is(option, "xx") {
                condition.xx = true;
            } else if args::is(option, "gt") {
                condition.gt = true;
            } else if args::is(option, "lt") {
                condition.lt = true;
            } else {
                // Redis formats the option as a C string: it ends at the first NUL.
                let shown = option.split(|&byte| byte == 0).next().unwrap_or(&[]);
                let text = args::text(shown).replace(['\r', '\n'], " ");
                return Err(Error::err(format!("Unsupported option {text}")));
            }
        }
        if condition.nx && (condition.xx || condition.gt || condition.lt) {
            return Err(NX_INCOMPATIBLE.into());
        }
        if condition.gt && condition.lt {
            return Err(GT_LT_INCOMPATIBLE.into());
        }
        Ok(condition)
    }

    /// Whether the new time `when_ms` may replace `current_ms` (None: no TTL, i.e. infinite).
    fn allows(&self, current_ms: Option<i64>, when_ms: i64) -> bool {
        if self.nx && current_ms.is_some() {
            return false;
        }
        if self.xx && current_ms.is_none() {
            return false;
        }
        if self.gt && current_ms.is_none_or(|current| when_ms <= current) {
            return false;
        }
        if self.lt && current_ms.is_some_and(|current| when_ms >= current) {
            return false;
        }
        true
    }
}

/// The absolute expiry time in ms of an EXPIRE-family argument, or Redis's overflow error.
fn absolute_expire_ms(value: i64, seconds: bool, base_ms: i64, name: &str) -> Result<i64, Error> {
    let invalid = || Error::InvalidExpire(name.to_string());
    let value_ms = if seconds {
        value.checked_mul(1000).ok_or_else(invalid)?
    } else {
        value
    };
    // Redis only rejects overflow upwards here; a very negative time is simply in the past.
    if value_ms > i64::MAX - base_ms {
        return Err(invalid());
    }
    Ok(value_ms + base_ms)
}

fn expire(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let now_ms = ctx.now_ms() as i64;
    expire_generic(ctx, argv, true, now_ms)
}

fn pexpire(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let now_ms = ctx.now_ms() as i64;
    expire_generic(ctx, argv, false, now_ms)
}

fn expireat(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, true, 0)
}

fn pexpireat(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, false, 0)
}

/// `EXPIRE key seconds [NX|XX|GT|LT]` and its siblings (Redis's `expireGenericCommand`).
fn expire_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], seconds: bool, base_ms: i64) -> CmdResult {
    let condition = ExpireCondition::parse(&argv[3..])?;
    let value = args::int(&argv[2])?;
    let when_ms = absolute_expire_ms(value, seconds, base_ms, &ctx.command.fullname)?;
    let db = ctx.db();
    let key = &argv[1];
    if ctx.ks.lookup_meta(db, key).is_none() {
        return Ok(Reply::Integer(0));
    }
    let current_ms = ctx.ks.expire_at(db, key).map(|when| when as i64);
    if !condition.allows(current_ms, when_ms) {
        return Ok(Reply::Integer(0));
    }
    if ctx.already_expired(when_ms) {
        let deleted = ctx.ks.delete(db, key);
        assert!(deleted, "a key found by lookup must be deletable");
        ctx.ks.notify(notify::GENERIC, "del", db, key);
        let verb = if ctx.server.config.bool("lazyfree-lazy-expire") {
            "UNLINK"
        } else {
            "DEL"
        };
        ctx.propagate(vec![Bytes::from_static(verb.as_bytes()), key.clone()]);
        return Ok(Reply::Integer(1));
    }
    let set = ctx.ks.set_expire(db, key, when_ms as u64);
    assert!(set, "a key found by lookup must accept an expiry");
    ctx.reply_written();
    ctx.ks.notify(notify::GENERIC, "expire", db, key);
    // Redis rewrites argv[0] and argv[2] only, the condition words going along as given, and
    // leaves PEXPIREAT exactly as the client sent it.
    if !seconds && base_ms == 0 {
        return Ok(Reply::Integer(1));
    }
    let mut rewritten = argv.to_vec();
    rewritten[0] = Bytes::from_static(b"PEXPIREAT");
    rewritten[2] = Bytes::from(when_ms.to_string());
    ctx.propagate(rewritten);
    Ok(Reply::Integer(1))
}

/// What the TTL family reports.
#[derive(Clone, Copy)]
enum TtlOutput {
    Seconds,
    Milliseconds,
    UnixSeconds,
    UnixMilliseconds,
}

fn ttl(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, argv, TtlOutput::Seconds)
}

fn pttl(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, argv, TtlOutput::Milliseconds)
}

fn expiretime(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, argv, TtlOutput::UnixSeconds)
}

fn pexpiretime(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, argv, TtlOutput::UnixMilliseconds)
}

/// `TTL key` and siblings: -2 for a missing key, -1 without expiry (Redis's `ttlGenericCommand`).
fn ttl_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], output: TtlOutput) -> CmdResult {
    if ctx.ks.peek_meta_read(ctx.session.db, &argv[1]).is_none() {
        return Ok(Reply::Integer(-2));
    }
    let db = ctx.db();
    let Some(when_ms) = ctx.ks.expire_at(db, &argv[1]) else {
        return Ok(Reply::Integer(-1));
    };
    let when_ms = when_ms as i64;
    let now_ms = ctx.now_ms() as i64;
    let value_ms = match output {
        TtlOutput::Seconds | TtlOutput::Milliseconds => (when_ms - now_ms).max(0),
        TtlOutput::UnixSeconds | TtlOutput::UnixMilliseconds => when_ms.max(0),
    };
    let value = match output {
        TtlOutput::Milliseconds | TtlOutput::UnixMilliseconds => value_ms,
        // Redis rounds to the nearest second.
        TtlOutput::Seconds | TtlOutput::UnixSeconds => (value_ms + 500) / 1000,
    };
    Ok(Reply::Integer(value))
}

/// `PERSIST key`: 1 if a TTL was removed.
fn persist(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    if ctx.ks.lookup_meta(db, &argv[1]).is_none() {
        return Ok(Reply::Integer(0));
    }
    let removed = ctx.ks.persist(db, &argv[1]);
    if removed {
        ctx.ks.notify(notify::GENERIC, "persist", db, &argv[1]);
    }
    Ok(Reply::Integer(removed as i64))
}

/// `KEYS pattern`: every live key matching the glob. Expired keys are skipped, not deleted.
fn keys(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let now_ms = ctx.now_ms();
    let pattern = &argv[1][..];
    let all = pattern == b"*";
    let mut found = Vec::new();
    for slice in ctx.ks.slices(db) {
        slice.keys.for_each(|key, entry| {
            if !(all || crate::util::glob_match(pattern, key, false)) {
                return;
            }
            let expired = entry.has_expire() && slice.is_expired(key, now_ms);
            if !expired {
                found.push(Reply::bulk_copy(key));
            }
        });
    }
    Ok(Reply::Array(found))
}

/// A SCAN cursor: which shard, and where in that shard's dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ScanCursor {
    shard: usize,
    dict: u64,
}

impl ScanCursor {
    #[cfg(test)]
    const START: ScanCursor = ScanCursor { shard: 0, dict: 0 };

    /// The shard sits in the low bits so early cursors stay small; a dict cursor of a table
    /// below 2^56 buckets fits above them.
    fn encode(self) -> u64 {
        debug_assert!(self.shard < SHARDS);
        (self.dict << CURSOR_SHARD_BITS) | self.shard as u64
    }

    fn decode(cursor: u64) -> ScanCursor {
        ScanCursor {
            shard: (cursor & (SHARDS as u64 - 1)) as usize,
            dict: cursor >> CURSOR_SHARD_BITS,
        }
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
fn scan(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let cursor = args::scan_cursor(&argv[1])?;
    let options = ScanOptions::parse(&argv[2..], true)?;
    let db = ctx.db();
    let (next, candidates) = scan_collect(ctx, db, ScanCursor::decode(cursor), options.count);
    let mut found = Vec::with_capacity(candidates.len());
    for key in candidates {
        if let Some(pattern) = &options.pattern {
            if !crate::util::glob_match(pattern, &key, false) {
                continue;
            }
        }
        if let Some(wanted) = &options.type_name {
            // As Redis 7.0: the lookup expires the key, so a key that just expired is "none".
            let name = ctx
                .ks
                .peek_meta_read(ctx.session.db, &key)
                .map_or("none", |entry| entry.value.type_name());
            if !wanted.eq_ignore_ascii_case(name.as_bytes()) {
                continue;
            }
        }
        if ctx.ks.expire_if_needed(db, &key) {
            continue;
        }
        found.push(Reply::bulk(key));
    }
    let next = next.map_or(0, ScanCursor::encode);
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(found),
    ]))
}

/// Step 2 of Redis's SCAN: walks from `cursor` until `count` keys are gathered or
/// `10 * count` dict steps are spent. Returns the next cursor (None: walk complete).
fn scan_collect(
    ctx: &mut Ctx<'_, '_>,
    db: usize,
    cursor: ScanCursor,
    count: usize,
) -> (Option<ScanCursor>, Vec<Bytes>) {
    debug_assert!(ctx.ks.holds_all(), "SCAN walks every shard");
    let mut slices: Vec<_> = ctx.ks.slices(db).collect();
    assert_eq!(slices.len(), SHARDS);
    let mut keys = Vec::new();
    let mut position = cursor;
    let mut steps_left = count.saturating_mul(10);
    // Each pass either finishes a shard or spends a step, so this bounds the loop.
    for _ in 0..SHARDS.saturating_add(steps_left) {
        let slice = &mut slices[position.shard];
        // Empty shards cost nothing, so a small keyspace is walked in one call as in Redis.
        if !slice.keys.is_empty() {
            position.dict = slice.keys.scan(position.dict, |key, _| {
                keys.push(Bytes::copy_from_slice(key));
            });
            steps_left -= 1;
        } else {
            position.dict = 0;
        }
        if position.dict == 0 {
            position.shard += 1;
            if position.shard == SHARDS {
                return (None, keys);
            }
        }
        if steps_left == 0 || keys.len() >= count {
            break;
        }
    }
    (Some(position), keys)
}

/// `RANDOMKEY`: a random live key, shards weighted by size; expired picks are deleted.
fn randomkey(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let mut rng = crate::util::random();
    // Every retry deletes an expired key, so the tries are bounded by the key count.
    let tries_max = ctx.ks.len(db) + 1;
    for _ in 0..tries_max {
        let sizes: Vec<usize> = ctx.ks.slices(db).map(|slice| slice.len()).collect();
        let total: usize = sizes.iter().sum();
        if total == 0 {
            return Ok(Reply::Null);
        }
        let mut pick = rng.gen_range(0..total);
        let shard = sizes
            .iter()
            .position(|&size| {
                if pick < size {
                    true
                } else {
                    pick -= size;
                    false
                }
            })
            .expect("the pick is below the total");
        let slice = ctx.ks.slices(db).nth(shard).expect("every shard is locked");
        let Some((key, entry)) = slice.keys.random(&mut rng) else {
            continue;
        };
        let key = Bytes::copy_from_slice(key);
        if entry.has_expire() && ctx.ks.expire_if_needed(db, &key) {
            continue;
        }
        return Ok(Reply::Bulk(key));
    }
    Ok(Reply::Null)
}

fn rename(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    rename_generic(ctx, argv, false)
}

fn renamenx(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    rename_generic(ctx, argv, true)
}

/// `RENAME key newkey` / `RENAMENX key newkey` (Redis's `renameGenericCommand`).
fn rename_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], nx: bool) -> CmdResult {
    let db = ctx.db();
    let (source, target) = (&argv[1], &argv[2]);
    if ctx.ks.lookup(db, source).is_none() {
        return Err(Error::NoSuchKey);
    }
    if source == target {
        // Redis 7: renaming an existing key to itself changes nothing and is not propagated.
        return Ok(if nx { Reply::Integer(0) } else { Reply::OK });
    }
    // Existence only: the target's value, cold or not, is replaced without being read.
    if nx && ctx.ks.lookup_meta(db, target).is_some() {
        return Ok(Reply::Integer(0));
    }
    let (entry, expire_at_ms) = ctx.ks.take(db, source).expect("the source was just found");
    ctx.ks.put(db, target, entry, expire_at_ms);
    ctx.ks.notify(notify::GENERIC, "rename_from", db, source);
    ctx.ks.notify(notify::GENERIC, "rename_to", db, target);
    Ok(if nx { Reply::Integer(1) } else { Reply::OK })
}

/// A database index given as a C `int` (Redis's `getIntFromObjectOrReply` then `selectDb`).
fn db_argument(ctx: &Ctx<'_, '_>, arg: &[u8]) -> Result<usize, Error> {
    let index = args::int(arg)?;
    let index = i32::try_from(index).map_err(|_| Error::from(NOT_INT32))?;
    let databases = ctx.server.keyspace.databases();
    if index < 0 || index as usize >= databases {
        return Err(crate::error::DB_INDEX_OUT_OF_RANGE.into());
    }
    Ok(index as usize)
}

/// `COPY source destination [DB destination-db] [REPLACE]`.
fn copy(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let source_db = ctx.db();
    let mut target_db = source_db;
    let mut replace = false;
    let mut index = 3;
    while index < argv.len() {
        if args::is(&argv[index], "replace") {
            replace = true;
        } else if args::is(&argv[index], "db") && index + 1 < argv.len() {
            target_db = db_argument(ctx, &argv[index + 1])?;
            index += 1;
        } else {
            return Err(Error::Syntax);
        }
        index += 1;
    }
    let (source, target) = (&argv[1], &argv[2]);
    if source_db == target_db && source == target {
        return Err(SAME_OBJECT.into());
    }
    let mode = ctx.ks.keyspace().access_mode();
    let now_ms = ctx.now_ms();
    let Some(entry) = lookup_read_entry(ctx, source) else {
        return Ok(Reply::Integer(0));
    };
    // A copy is a new object: fresh access time, same value and encoding.
    let mut copied = Entry::new(entry.value.clone(), now_ms, mode);
    copied.flags = entry.flags & FLAG_RAW;
    let expire_at_ms = ctx.ks.expire_at(source_db, source);
    if ctx.ks.lookup_meta(target_db, target).is_some() && !replace {
        return Ok(Reply::Integer(0));
    }
    ctx.ks.put(target_db, target, copied, expire_at_ms);
    ctx.ks.notify(notify::GENERIC, "copy_to", target_db, target);
    Ok(Reply::Integer(1))
}

/// Redis's `lookupKeyRead` in the selected database: expires, touches, counts hit or miss.
fn lookup_read_entry<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Option<&'c mut Entry> {
    let db = ctx.db();
    ctx.ks.lookup_read(db, key)
}

/// `MOVE key db`: 1 if moved; 0 if absent here or present there.
fn move_command(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let source_db = ctx.db();
    let target_db = db_argument(ctx, &argv[2])?;
    if source_db == target_db {
        return Err(SAME_OBJECT.into());
    }
    let key = &argv[1];
    if ctx.ks.lookup(source_db, key).is_none() {
        return Ok(Reply::Integer(0));
    }
    if ctx.ks.lookup(target_db, key).is_some() {
        return Ok(Reply::Integer(0));
    }
    let (entry, expire_at_ms) = ctx.ks.take(source_db, key).expect("the key was just found");
    ctx.ks.put(target_db, key, entry, expire_at_ms);
    ctx.ks.notify(notify::GENERIC, "move_from", source_db, key);
    ctx.ks.notify(notify::GENERIC, "move_to", target_db, key);
    Ok(Reply::Integer(1))
}

/// `SWAPDB index1 index2`. Swapping a database with itself is a (propagated) no-op.
fn swapdb(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let parse = |arg: &[u8], text: &'static str| -> Result<i64, Error> {
        let index = args::int(arg).map_err(|_| Error::from(text))?;
        i32::try_from(index).map_err(|_| Error::from(text))?;
        Ok(index)
    };
    let first = parse(&argv[1], INVALID_FIRST_DB)?;
    let second = parse(&argv[2], INVALID_SECOND_DB)?;
    let databases = ctx.server.keyspace.databases() as i64;
    if !(0..databases).contains(&first) || !(0..databases).contains(&second) {
        return Err(crate::error::DB_INDEX_OUT_OF_RANGE.into());
    }
    ctx.ks.swap_db(first as usize, second as usize);
    Ok(Reply::OK)
}

/// `DBSIZE`: keys in the selected database, including expired ones not yet reclaimed.
fn dbsize(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    Ok(Reply::Integer(ctx.ks.len(db) as i64))
}

/// Redis's `getFlushCommandFlags`: an optional ASYNC or SYNC, nothing else. Strata frees in
/// place either way, so the choice is only validated.
fn flush_arguments(argv: &[Bytes]) -> Result<(), Error> {
    match argv {
        [_] => Ok(()),
        [_, mode] if args::is(mode, "sync") || args::is(mode, "async") => Ok(()),
        _ => Err(Error::Syntax),
    }
}

/// `FLUSHDB [ASYNC|SYNC]`: always propagated, even when the database was already empty.
fn flushdb(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    flush_arguments(argv)?;
    let db = ctx.db();
    let removed = ctx.ks.flush_db(db);
    if removed == 0 {
        ctx.force_propagate();
    }
    Ok(Reply::OK)
}

/// `FLUSHALL [ASYNC|SYNC]`: empties every database; always propagated.
fn flushall(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    flush_arguments(argv)?;
    for db in 0..ctx.server.keyspace.databases() {
        ctx.ks.flush_db(db);
    }
    // Redis counts the flush itself as one more change.
    ctx.ks.dirty += 1;
    Ok(Reply::OK)
}

/// `OBJECT ENCODING key`.
fn object_encoding(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    Ok(match ctx.ks.peek_read(ctx.session.db, &argv[2]) {
        None => Reply::Null,
        Some(entry) => Reply::bulk(entry.value.encoding(entry.flags)),
    })
}

/// True when `maxmemory-policy` is an LFU policy (Redis's MAXMEMORY_FLAG_LFU).
fn lfu_policy(ctx: &Ctx<'_, '_>) -> bool {
    ctx.server.config.word("maxmemory-policy").ends_with("lfu")
}

/// `OBJECT FREQ key`: the decayed LFU counter; an error unless an LFU policy is in force.
fn object_freq(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let lfu = lfu_policy(ctx);
    let decay_minutes = match ctx.ks.keyspace().access_mode() {
        AccessMode::Lfu { decay_minutes, .. } => decay_minutes,
        AccessMode::Lru => ctx
            .server
            .config
            .int("lfu-decay-time")
            .clamp(0, u32::MAX as i64) as u32,
    };
    let now_ms = ctx.now_ms();
    let Some(entry) = ctx.ks.peek_meta_read(ctx.session.db, &argv[2]) else {
        return Ok(Reply::Null);
    };
    if !lfu {
        return Err(LFU_NOT_SELECTED.into());
    }
    Ok(Reply::Integer(
        entry.lfu_counter(now_ms, decay_minutes) as i64
    ))
}

/// `OBJECT IDLETIME key`: seconds since the last access; an error under an LFU policy.
fn object_idletime(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let lfu = lfu_policy(ctx);
    let now_ms = ctx.now_ms();
    let Some(entry) = ctx.ks.peek_meta_read(ctx.session.db, &argv[2]) else {
        return Ok(Reply::Null);
    };
    if lfu {
        return Err(LFU_SELECTED.into());
    }
    Ok(Reply::Integer(entry.idle_seconds(now_ms) as i64))
}

/// `OBJECT REFCOUNT key`: Strata shares nothing, but Redis reports its shared small
/// integers (0..9999, when maxmemory does not need per-key LRU/LFU) with INT_MAX.
fn object_refcount(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let Some(entry) = ctx.ks.peek_read(ctx.session.db, &argv[2]) else {
        return Ok(Reply::Null);
    };
    // Sharing is decided when the value is written (Redis's tryObjectEncoding), so a later
    // change of maxmemory or policy does not change the answer until the key is rewritten.
    let shared = entry.flags & FLAG_SHARED != 0 && entry.value.encoding(entry.flags) == "int";
    Ok(Reply::Integer(if shared { SHARED_REFCOUNT } else { 1 }))
}

/// `OBJECT HELP`.
fn object_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(
        OBJECT_HELP.iter().map(|line| Reply::Simple(line)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::argv as words;

    /// Runs `commands` on a fresh server, moving the clock by each one's delay first, and
    /// returns the replies and the propagated stream, one command per line.
    fn propagated(commands: &[(&[&str], u64)]) -> (Vec<Reply>, Vec<String>) {
        let test = crate::testing::TestServer::new();
        let mut session = test.session();
        let mut replies = Vec::new();
        for (argv, advance_ms) in commands {
            test.advance_ms(*advance_ms);
            replies.push(test.command(&mut session, argv));
        }
        (replies, test.propagated())
    }

    #[test]
    fn propagation_matches_redis() {
        let (replies, lines) = propagated(&[
            (&["SET", "k", "v"], 0),
            (&["EXPIRE", "k", "100", "XX"], 0),
            (&["EXPIRE", "k", "100"], 0),
            (&["PEXPIRE", "k", "5000", "nx"], 0),
            (&["EXPIREAT", "k", "4000000000", "gt"], 0),
            (&["pexpireat", "k", "4000000000001", "gt"], 0),
            (&["EXPIRE", "k", "-1"], 0),
            (&["SET", "a", "1"], 0),
            (&["RENAME", "a", "a"], 0),
            (&["RENAME", "nokey", "b"], 0),
            (&["SET", "x", "1"], 0),
            (&["PEXPIRE", "x", "10"], 0),
            (&["TTL", "x"], 20),
            (&["SWAPDB", "0", "0"], 0),
            (&["FLUSHDB"], 0),
            (&["FLUSHDB"], 0),
            (&["FLUSHALL", "async"], 0),
        ]);
        let integers: Vec<Option<i64>> = replies
            .iter()
            .map(|reply| match reply {
                Reply::Integer(value) => Some(*value),
                _ => None,
            })
            .collect();
        assert_eq!(
            integers,
            [
                None,
                Some(0),
                Some(1),
                Some(0),
                Some(1),
                Some(1),
                Some(1),
                None,
                None,
                None,
                None,
                Some(1),
                Some(-2),
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(
            lines,
            [
                "SELECT 0",
                "SET k v",
                "PEXPIREAT k 1700000100000",
                "PEXPIREAT k 4000000000000 gt",
                "pexpireat k 4000000000001 gt",
                "DEL k",
                "SET a 1",
                "SET x 1",
                "PEXPIREAT x 1700000000010",
                "DEL x",
                "SWAPDB 0 0",
                "FLUSHDB",
                "FLUSHDB",
                "FLUSHALL async",
            ]
        );
    }

    #[test]
    fn scan_returns_every_stable_key_while_the_keyspace_grows_and_shrinks() {
        use std::collections::HashSet;
        let test = crate::testing::TestServer::new();
        let mut session = test.session();
        let mut run = |argv: &[&str]| test.command(&mut session, argv);
        let stable: Vec<String> = (0..500).map(|i| format!("stable:{i}")).collect();
        for key in &stable {
            run(&["SET", key, "1"]);
        }
        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        let mut added = 0;
        const CALLS_MAX: usize = 100_000;
        for call in 0..CALLS_MAX {
            let Reply::Array(parts) = run(&["SCAN", &cursor, "COUNT", "3"]) else {
                panic!("SCAN replies with an array");
            };
            let [Reply::Bulk(next), Reply::Array(keys)] = &parts[..] else {
                panic!("SCAN replies with a cursor and keys");
            };
            for key in keys {
                let Reply::Bulk(key) = key else {
                    panic!("keys are bulk strings")
                };
                seen.insert(String::from_utf8_lossy(key).into_owned());
            }
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                break;
            }
            // Grow for a while (dicts expand), then delete the extra keys (dicts shrink).
            if call < 100 {
                for _ in 0..20 {
                    run(&["SET", &format!("grow:{added}"), "1"]);
                    added += 1;
                }
            } else {
                for index in (call - 100) * 40..(call - 99) * 40 {
                    run(&["DEL", &format!("grow:{index}")]);
                }
            }
            assert!(call + 1 < CALLS_MAX, "SCAN never finished");
        }
        let missing: Vec<&String> = stable.iter().filter(|key| !seen.contains(*key)).collect();
        assert!(missing.is_empty(), "missed {missing:?}");
    }

    #[test]
    fn cursor_round_trips() {
        for cursor in [
            ScanCursor::START,
            ScanCursor { shard: 31, dict: 0 },
            ScanCursor {
                shard: 5,
                dict: 12345,
            },
            ScanCursor {
                shard: SHARDS - 1,
                dict: (1 << (63 - CURSOR_SHARD_BITS)) + 3,
            },
        ] {
            assert_eq!(ScanCursor::decode(cursor.encode()), cursor);
        }
        assert_eq!(ScanCursor::START.encode(), 0);
        assert_eq!(ScanCursor::decode(0), ScanCursor::START);
    }

    #[test]
    fn cursor_parsing_follows_strtoul() {
        assert_eq!(args::scan_cursor(b"0"), Ok(0));
        assert_eq!(args::scan_cursor(b""), Ok(0));
        assert_eq!(args::scan_cursor(b"+7"), Ok(7));
        assert_eq!(args::scan_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(args::scan_cursor(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b"18446744073709551616"[..],
            b" 1",
            b"1 ",
            b"abc",
            b"+",
            b"-",
            b"1x",
        ] {
            assert_eq!(
                args::scan_cursor(bad),
                Err(Error::from(args::INVALID_CURSOR)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn scan_options() {
        let parsed = ScanOptions::parse(
            &words(&["MATCH", "a*", "count", "5", "TYPE", "string"]),
            true,
        );
        assert_eq!(
            parsed,
            Ok(ScanOptions {
                count: 5,
                pattern: Some(Bytes::from_static(b"a*")),
                type_name: Some(Bytes::from_static(b"string")),
            })
        );
        let star = ScanOptions::parse(&words(&["match", "*"]), true).map(|options| options.pattern);
        assert_eq!(star, Ok(None));
        assert_eq!(
            ScanOptions::parse(&words(&["count", "0"]), true),
            Err(Error::Syntax)
        );
        assert_eq!(
            ScanOptions::parse(&words(&["count", "x"]), true),
            Err(Error::NotInteger)
        );
        assert_eq!(
            ScanOptions::parse(&words(&["count"]), true),
            Err(Error::Syntax)
        );
        assert_eq!(
            ScanOptions::parse(&words(&["foo", "1"]), true),
            Err(Error::Syntax)
        );
    }

    #[test]
    fn expire_conditions() {
        let parse = |list: &[&str]| ExpireCondition::parse(&words(list));
        assert_eq!(parse(&["nx", "xx"]), Err(NX_INCOMPATIBLE.into()));
        assert_eq!(parse(&["NX", "gt"]), Err(NX_INCOMPATIBLE.into()));
        assert_eq!(parse(&["gt", "LT"]), Err(GT_LT_INCOMPATIBLE.into()));
        assert_eq!(parse(&["foo"]), Err(Error::err("Unsupported option foo")));
        assert_eq!(parse(&["a\0b"]), Err(Error::err("Unsupported option a")));
        let xx_gt = parse(&["xx", "gt"]).expect("XX and GT combine");
        assert!(xx_gt.allows(Some(10), 11));
        assert!(!xx_gt.allows(Some(10), 10));
        assert!(!xx_gt.allows(None, 11));
        let lt = parse(&["lt"]).expect("LT alone");
        assert!(lt.allows(None, 5));
        assert!(!lt.allows(Some(5), 5));
        let nx = parse(&["nx"]).expect("NX alone");
        assert!(nx.allows(None, 5) && !nx.allows(Some(1), 5));
    }

    #[test]
    fn expire_overflow() {
        assert_eq!(absolute_expire_ms(5, true, 1000, "expire"), Ok(6000));
        assert_eq!(
            absolute_expire_ms(i64::MAX / 1000 + 1, true, 0, "expire"),
            Err(Error::InvalidExpire("expire".into()))
        );
        assert_eq!(
            absolute_expire_ms(i64::MIN / 1000 - 1, true, 0, "expireat"),
            Err(Error::InvalidExpire("expireat".into()))
        );
        assert_eq!(
            absolute_expire_ms(i64::MAX, false, 1, "pexpire"),
            Err(Error::InvalidExpire("pexpire".into()))
        );
        assert_eq!(
            absolute_expire_ms(i64::MIN, false, 5, "pexpire"),
            Ok(i64::MIN + 5)
        );
    }
}
