//! The set family: SADD, SREM, SCARD, SISMEMBER, SMISMEMBER, SMEMBERS, SPOP, SRANDMEMBER,
//! SMOVE, SINTER, SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE and SSCAN,
//! with Redis 7.0.15's replies, error texts and propagated effects (`t_set.c`).
//!
//! The representation and the set algebra live in `types::set`; the handlers here parse,
//! look keys up the way Redis does (reads count hits and misses, every key is type-checked
//! before any work), and render. Effects as Redis 7.0 propagates them: SPOP without a count
//! becomes `SREM key member`; SPOP with a count becomes one `SREM key member` per popped
//! member, or `DEL key` when it empties the set; the STORE variants and SMOVE go verbatim.
//! SRANDMEMBER is a read. Multi-key commands lock all their keys (the table's key specs;
//! SINTERCARD computes its movable key positions from `numkeys`).

use super::args;
use super::args::ScanOptions;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error, NOT_POSITIVE};
use crate::keyspace::notify;
use crate::protocol::parser::parse_i64;
use crate::protocol::Reply;
use crate::types::set::{self as algebra, Set, SPOP_MOVE_STRATEGY_MUL};
use crate::types::Value;
use bytes::Bytes;

const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
const COUNT_OUT_OF_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// Not Redis's: Redis streams an SRANDMEMBER with a huge negative count until the client's
/// output buffer limit closes it; Strata builds replies whole, so it refuses past this.
const REPLY_TOO_LARGE: &str = "ERR count is too large for one reply";
/// Members one SRANDMEMBER reply may carry (repeats included).
const RANDOM_REPLY_MEMBERS_MAX: u64 = 1 << 24;

pub static COMMANDS: &[Spec] = &[
    Spec::new("sadd", sadd, Lock::Keys),
    Spec::new("srem", srem, Lock::Keys),
    Spec::new("scard", scard, Lock::Keys),
    Spec::new("sismember", sismember, Lock::Keys),
    Spec::new("smismember", smismember, Lock::Keys),
    Spec::new("smembers", smembers, Lock::Keys),
    Spec::new("spop", spop, Lock::Keys),
    Spec::new("srandmember", srandmember, Lock::Keys),
    Spec::new("smove", smove, Lock::Keys),
    Spec::new("sinter", sinter, Lock::Keys),
    Spec::new("sintercard", sintercard, Lock::Custom(sintercard_keys)),
    Spec::new("sinterstore", sinterstore, Lock::Keys),
    Spec::new("sunion", sunion, Lock::Keys),
    Spec::new("sunionstore", sunionstore, Lock::Keys),
    Spec::new("sdiff", sdiff, Lock::Keys),
    Spec::new("sdiffstore", sdiffstore, Lock::Keys),
    Spec::new("sscan", sscan, Lock::Keys),
];

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// `set-max-intset-entries`, read at write time (Redis caps it at 2^30).
fn intset_entries_max(ctx: &Ctx<'_, '_>) -> usize {
    let configured = crate::config_int!(ctx.server.config, "set-max-intset-entries");
    usize::try_from(configured.max(0))
        .unwrap_or(usize::MAX)
        .min(crate::types::set::INTSET_ENTRIES_LIMIT)
}

/// The set at `key` for a read (counts hits and misses); WRONGTYPE for another type.
fn read_set<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'c Set>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, key) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Set(set) => Ok(Some(&**set)),
            _ => Err(Error::WrongType),
        },
    }
}

/// The set at `key` for a write; WRONGTYPE for another type.
fn write_set<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'c mut Set>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup(db, key) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::Set(set) => Ok(Some(&mut **set)),
            _ => Err(Error::WrongType),
        },
    }
}

/// Counts `writes` changes (Redis's `server.dirty += n`) for one modified key: the key is
/// signalled once (unless deleting it already did), the rest only add to the dirty counter.
fn signal_writes(ctx: &mut Ctx<'_, '_>, key: &[u8], writes: u64, deleted: bool) {
    debug_assert!(writes > 0);
    if !deleted {
        let db = ctx.db();
        ctx.ks.signal_modified(db, key);
    }
    ctx.ks.dirty = ctx.ks.dirty.saturating_add(writes - 1);
}

/// Looks every key up in order as Redis does (lazy expiry, hit/miss counts, WRONGTYPE on
/// the first set of another type), then lends all the sets at once to `work`; a missing key
/// is `None`. Two passes, because one lookup borrows the keyspace mutably.
fn with_sets<T>(
    ctx: &mut Ctx<'_, '_>,
    keys: &[Bytes],
    work: impl FnOnce(&[Option<&Set>]) -> T,
) -> Result<T, Error> {
    let mut present = Vec::with_capacity(keys.len());
    for key in keys {
        present.push(read_set(ctx, key)?.is_some());
    }
    let db = ctx.db();
    let slices: Vec<_> = ctx.ks.slices(db).collect();
    let sets: Vec<Option<&Set>> = keys
        .iter()
        .zip(&present)
        .map(|(key, &present)| {
            if !present {
                return None;
            }
            // A key lives in exactly one (locked) slice; the first pass left it live.
            let entry = slices.iter().find_map(|slice| slice.keys.get(key));
            debug_assert!(entry.is_some(), "a key found by the first pass");
            match entry.map(|entry| &entry.value) {
                Some(Value::Set(set)) => Some(&**set),
                _ => None,
            }
        })
        .collect();
    Ok(work(&sets))
}

fn set_reply(members: Vec<Bytes>) -> Reply {
    Reply::Set(members.into_iter().map(Reply::Bulk).collect())
}

fn array_reply(members: Vec<Bytes>) -> Reply {
    Reply::Array(members.into_iter().map(Reply::Bulk).collect())
}

/// Stores a computed set at `destination` (Redis's `setKey`, clearing any TTL), or deletes
/// the destination when the result is empty. Replies with the result's size.
/// Raises `event` (the command's name) after the reply, or `del` if a destination went.
fn store(ctx: &mut Ctx<'_, '_>, destination: &[u8], result: Set, event: &'static str) -> Reply {
    let db = ctx.db();
    let size = result.len();
    if size == 0 {
        if ctx.ks.delete(db, destination) {
            ctx.ks.notify(notify::GENERIC, "del", db, destination);
        }
    } else {
        ctx.ks
            .set(db, destination, Value::Set(Box::new(result)), false);
        ctx.reply_written();
        ctx.ks.notify(notify::SET, event, db, destination);
    }
    Reply::Integer(size as i64)
}

// ---------------------------------------------------------------------------------------------
// Single-key commands
// ---------------------------------------------------------------------------------------------

/// `SADD key member [member ...]`: how many members were new.
fn sadd(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (key, members) = (&argv[1], &argv[2..]);
    let intset_entries_max = intset_entries_max(ctx);
    let mut added = 0;
    match write_set(ctx, key)? {
        Some(set) => {
            for member in members {
                added += u64::from(set.add(member, intset_entries_max));
            }
        }
        None => {
            let mut set = Set::for_first_member(&members[0]);
            for member in members {
                added += u64::from(set.add(member, intset_entries_max));
            }
            let db = ctx.db();
            ctx.ks.set(db, key, Value::Set(Box::new(set)), false);
            ctx.ks.notify(notify::SET, "sadd", db, key);
            // `set` signalled the key once already.
            ctx.ks.dirty = ctx.ks.dirty.saturating_add(added - 1);
            return Ok(Reply::Integer(added as i64));
        }
    }
    if added > 0 {
        signal_writes(ctx, key, added, false);
        let db = ctx.db();
        ctx.ks.notify(notify::SET, "sadd", db, key);
    }
    Ok(Reply::Integer(added as i64))
}

/// `SREM key member [member ...]`: how many were removed; the key goes with its last member.
fn srem(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(set) = write_set(ctx, key)? else {
        return Ok(Reply::Integer(0));
    };
    let mut removed = 0;
    for member in &argv[2..] {
        removed += u64::from(set.remove(member));
        if set.is_empty() {
            break;
        }
    }
    let emptied = set.is_empty();
    if emptied {
        let db = ctx.db();
        ctx.ks.delete(db, key);
    }
    if removed > 0 {
        signal_writes(ctx, key, removed, emptied);
        let db = ctx.db();
        ctx.ks.notify(notify::SET, "srem", db, key);
        if emptied {
            ctx.ks.notify(notify::GENERIC, "del", db, key);
        }
    }
    Ok(Reply::Integer(removed as i64))
}

/// `SCARD key`.
fn scard(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let size = read_set(ctx, &argv[1])?.map_or(0, Set::len);
    Ok(Reply::Integer(size as i64))
}

/// `SISMEMBER key member`.
fn sismember(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let found = read_set(ctx, &argv[1])?.is_some_and(|set| set.contains(&argv[2]));
    Ok(Reply::Integer(i64::from(found)))
}

/// `SMISMEMBER key member [member ...]`: 1 or 0 per member.
fn smismember(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let set = read_set(ctx, &argv[1])?;
    let flags = argv[2..]
        .iter()
        .map(|member| Reply::Integer(i64::from(set.is_some_and(|set| set.contains(member)))))
        .collect();
    Ok(Reply::Array(flags))
}

/// `SMEMBERS key`: Redis serves it with SINTER of one key.
fn smembers(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    sinter(ctx, argv)
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`.
fn sscan(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let cursor = args::scan_cursor(&argv[2])?;
    let Some(set) = read_set(ctx, &argv[1])? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let options = ScanOptions::parse(&argv[3..], false)?;
    let mut found: Vec<Bytes> = Vec::new();
    let mut cursor = cursor;
    let mut iterations_left = options.count.saturating_mul(10);
    // Redis's loop: at most 10 * COUNT dict steps, stopping once COUNT members are in.
    loop {
        cursor = set.scan(cursor, |member| found.push(member.to_bytes()));
        if cursor == 0 || iterations_left == 0 || found.len() >= options.count {
            break;
        }
        iterations_left -= 1;
    }
    if let Some(pattern) = &options.pattern {
        found.retain(|member| crate::util::glob_match(pattern, member, false));
    }
    Ok(scan_reply(cursor, found))
}

fn scan_reply(cursor: u64, members: Vec<Bytes>) -> Reply {
    Reply::Array(vec![Reply::bulk(cursor.to_string()), array_reply(members)])
}

// ---------------------------------------------------------------------------------------------
// SPOP and SRANDMEMBER
// ---------------------------------------------------------------------------------------------

/// `SPOP key [count]`.
fn spop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    match argv.len() {
        2 => spop_one(ctx, &argv[1]),
        3 => {
            let count = args::int(&argv[2])
                .ok()
                .filter(|count| *count >= 0)
                .ok_or(Error::from(NOT_POSITIVE))?;
            spop_count(ctx, &argv[1], count as u64)
        }
        _ => Err(Error::Syntax),
    }
}

/// SPOP without a count: one random member, propagated as `SREM key member`.
fn spop_one(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> CmdResult {
    let db = ctx.db();
    let Some(set) = write_set(ctx, key)? else {
        return Ok(Reply::Null);
    };
    let member = set.pop_random(&mut crate::util::random());
    let emptied = set.is_empty();
    let Some(member) = member else {
        debug_assert!(false, "a set in the keyspace is never empty");
        return Ok(Reply::Null);
    };
    if emptied {
        ctx.ks.delete(db, key);
    }
    signal_writes(ctx, key, 1, emptied);
    ctx.ks.notify(notify::SET, "spop", db, key);
    ctx.reply_written();
    if emptied {
        ctx.ks.notify(notify::GENERIC, "del", db, key);
    }
    ctx.propagate(vec![
        Bytes::from_static(b"SREM"),
        key.clone(),
        member.clone(),
    ]);
    Ok(Reply::Bulk(member))
}

/// SPOP with a count: Redis 7.0's three cases, which decide the reply order and the
/// encoding of what remains.
fn spop_count(ctx: &mut Ctx<'_, '_>, key: &Bytes, count: u64) -> CmdResult {
    let intset_entries_max = intset_entries_max(ctx);
    let db = ctx.db();
    let Some(set) = write_set(ctx, key)? else {
        return Ok(Reply::Set(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::Set(Vec::new()));
    }
    let size = set.len() as u64;
    if count >= size {
        // The whole set, replied through a fresh union (an intset again when it can be).
        let members = algebra::union(&[Some(&*set)], intset_entries_max).members();
        ctx.ks.delete(db, key);
        signal_writes(ctx, key, size, true);
        ctx.ks.notify(notify::SET, "spop", db, key);
        ctx.reply_written();
        ctx.ks.notify(notify::GENERIC, "del", db, key);
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
        return Ok(set_reply(members));
    }
    let popped = pop_count(
        set,
        count as usize,
        intset_entries_max,
        &mut crate::util::random(),
    );
    debug_assert!(!set.is_empty());
    signal_writes(ctx, key, count, false);
    ctx.ks.notify(notify::SET, "spop", db, key);
    for member in &popped {
        ctx.propagate(vec![
            Bytes::from_static(b"SREM"),
            key.clone(),
            member.clone(),
        ]);
    }
    Ok(set_reply(popped))
}

/// Pops `count` (< size) random members of `set` and returns them, in Redis's reply order:
/// when few remain, the remainder is drawn into a fresh set (which may be an intset again)
/// and the popped ones are replied in the old set's iteration order.
pub(crate) fn pop_count(
    set: &mut Set,
    count: usize,
    intset_entries_max: usize,
    rng: &mut impl rand::Rng,
) -> Vec<Bytes> {
    let size = set.len();
    assert!(count < size, "popping the whole set is the caller's case");
    let remaining = size - count;
    if remaining.saturating_mul(SPOP_MOVE_STRATEGY_MUL) > count {
        let mut popped = Vec::with_capacity(count);
        for _ in 0..count {
            match set.pop_random(rng) {
                Some(member) => popped.push(member),
                None => break,
            }
        }
        debug_assert_eq!(popped.len(), count);
        return popped;
    }
    let mut kept: Option<Set> = None;
    for _ in 0..remaining {
        let Some(member) = set.pop_random(rng) else {
            break;
        };
        kept.get_or_insert_with(|| Set::for_first_member(&member))
            .add(&member, intset_entries_max);
    }
    let popped = set.members();
    debug_assert_eq!(popped.len(), count);
    *set = kept.unwrap_or_default();
    debug_assert_eq!(set.len(), remaining);
    popped
}

/// `SRANDMEMBER key [count]`.
fn srandmember(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    match argv.len() {
        2 => {
            let set = read_set(ctx, &argv[1])?;
            Ok(set
                .and_then(|set| set.random(&mut crate::util::random()))
                .map_or(Reply::Null, Reply::Bulk))
        }
        3 => {
            let count = args::int(&argv[2])?;
            if count == i64::MIN {
                return Err(Error::from(COUNT_OUT_OF_RANGE));
            }
            let Some(set) = read_set(ctx, &argv[1])? else {
                return Ok(Reply::Array(Vec::new()));
            };
            let members = random_members(set, count, &mut crate::util::random())?;
            Ok(array_reply(members))
        }
        _ => Err(Error::Syntax),
    }
}

/// SRANDMEMBER's count cases: negative allows repeats, a count covering the set returns it
/// in iteration order, otherwise distinct random members.
fn random_members(set: &Set, count: i64, rng: &mut impl rand::Rng) -> Result<Vec<Bytes>, Error> {
    let wanted = count.unsigned_abs();
    if wanted == 0 {
        return Ok(Vec::new());
    }
    if count < 0 || wanted == 1 {
        if wanted > RANDOM_REPLY_MEMBERS_MAX {
            return Err(Error::from(REPLY_TOO_LARGE));
        }
        return Ok((0..wanted).filter_map(|_| set.random(rng)).collect());
    }
    let size = set.len();
    if wanted >= size as u64 {
        return Ok(set.members());
    }
    let wanted = wanted as usize;
    if wanted.saturating_mul(3) > size {
        // Close to the whole set: shuffle a copy and keep a prefix.
        let mut members = set.members();
        for index in 0..wanted {
            let pick = rng.gen_range(index..members.len());
            members.swap(index, pick);
        }
        members.truncate(wanted);
        return Ok(members);
    }
    // Far smaller than the set: draw until enough distinct members; the expected number of
    // draws is below 1.5 * wanted, the bound only guards a degenerate generator.
    let mut chosen = std::collections::HashSet::with_capacity(wanted);
    let mut members = Vec::with_capacity(wanted);
    let draws_max = wanted.saturating_mul(64).saturating_add(1024);
    for _ in 0..draws_max {
        if members.len() == wanted {
            break;
        }
        if let Some(member) = set.random(rng) {
            if chosen.insert(member.clone()) {
                members.push(member);
            }
        }
    }
    if members.len() < wanted {
        set.for_each(|member| {
            let member = member.to_bytes();
            if members.len() < wanted && chosen.insert(member.clone()) {
                members.push(member);
            }
        });
    }
    debug_assert_eq!(members.len(), wanted);
    Ok(members)
}

// ---------------------------------------------------------------------------------------------
// SMOVE
// ---------------------------------------------------------------------------------------------

/// `SMOVE source destination member`: 1 if moved (or already in source == destination).
fn smove(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (source, destination, member) = (&argv[1], &argv[2], &argv[3]);
    let intset_entries_max = intset_entries_max(ctx);
    // Both keys are looked up first (expiring them), then a missing source answers 0
    // before either type is checked, as in Redis.
    let source_found = write_set(ctx, source).map(|set| set.is_some());
    let destination_found = write_set(ctx, destination).map(|set| set.is_some());
    if matches!(source_found, Ok(false)) {
        return Ok(Reply::Integer(0));
    }
    source_found?;
    destination_found?;
    if source == destination {
        let found = write_set(ctx, source)?.is_some_and(|set| set.contains(member));
        return Ok(Reply::Integer(i64::from(found)));
    }
    Ok(Reply::Integer(i64::from(move_member(
        ctx,
        source,
        destination,
        member,
        intset_entries_max,
    )?)))
}

/// Moves `member` between two distinct keys already type-checked (WRONGTYPE otherwise);
/// false if the source lacks it. Reusable by any command that moves a member.
pub(crate) fn move_member(
    ctx: &mut Ctx<'_, '_>,
    source: &[u8],
    destination: &[u8],
    member: &[u8],
    intset_entries_max: usize,
) -> Result<bool, Error> {
    debug_assert_ne!(source, destination);
    let db = ctx.db();
    let Some(set) = write_set(ctx, source)? else {
        return Ok(false);
    };
    if !set.remove(member) {
        return Ok(false);
    }
    let emptied = set.is_empty();
    if emptied {
        ctx.ks.delete(db, source);
    }
    signal_writes(ctx, source, 1, emptied);
    ctx.ks.notify(notify::SET, "srem", db, source);
    if emptied {
        ctx.ks.notify(notify::GENERIC, "del", db, source);
    }
    let added = match write_set(ctx, destination)? {
        Some(set) => set.add(member, intset_entries_max),
        None => {
            let mut set = Set::for_first_member(member);
            set.add(member, intset_entries_max);
            ctx.ks
                .set(db, destination, Value::Set(Box::new(set)), false);
            ctx.ks.notify(notify::SET, "sadd", db, destination);
            // `set` signalled the destination.
            return Ok(true);
        }
    };
    if added {
        signal_writes(ctx, destination, 1, false);
        ctx.ks.notify(notify::SET, "sadd", db, destination);
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Set algebra
// ---------------------------------------------------------------------------------------------

/// `SINTER key [key ...]`: replied in the smallest set's iteration order.
fn sinter(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    with_sets(ctx, &argv[1..], |sets| {
        let mut members = Vec::new();
        if let Some(present) = all_present(sets) {
            algebra::intersection_walk(&present, |member| {
                members.push(member.to_bytes());
                true
            });
        }
        set_reply(members)
    })
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`.
fn sintercard(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let numkeys = parse_numkeys(argv)?;
    let keys = &argv[2..2 + numkeys];
    let mut limit: u64 = 0;
    let mut index = 2 + numkeys;
    while index < argv.len() {
        if args::is(&argv[index], "limit") && index + 1 < argv.len() {
            limit = args::int(&argv[index + 1])
                .ok()
                .filter(|limit| *limit >= 0)
                .ok_or(Error::from(LIMIT_NEGATIVE))? as u64;
            index += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    with_sets(ctx, keys, |sets| {
        let mut cardinality: u64 = 0;
        if let Some(present) = all_present(sets) {
            algebra::intersection_walk(&present, |_| {
                cardinality += 1;
                limit == 0 || cardinality < limit
            });
        }
        Reply::Integer(cardinality as i64)
    })
}

/// SINTERCARD's `numkeys`: at least 1 and no more than the arguments after it.
fn parse_numkeys(argv: &[Bytes]) -> Result<usize, Error> {
    let numkeys = argv
        .get(1)
        .and_then(|arg| parse_i64(arg))
        .filter(|numkeys| *numkeys >= 1)
        .ok_or(Error::from(NUMKEYS_NOT_POSITIVE))?;
    if numkeys as u64 > argv.len().saturating_sub(2) as u64 {
        return Err(Error::from(NUMKEYS_TOO_MANY));
    }
    Ok(numkeys as usize)
}

/// SINTERCARD's movable keys: the `numkeys` arguments after it, none when it is invalid
/// (the handler then refuses before touching a key).
fn sintercard_keys(argv: &[Bytes]) -> Vec<usize> {
    match parse_numkeys(argv) {
        Ok(numkeys) => (2..2 + numkeys).collect(),
        Err(_) => Vec::new(),
    }
}

/// `SINTERSTORE destination key [key ...]`.
fn sinterstore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let intset_entries_max = intset_entries_max(ctx);
    let result = with_sets(ctx, &argv[2..], |sets| match all_present(sets) {
        Some(present) => algebra::intersection(&present, intset_entries_max),
        None => Set::new(),
    })?;
    Ok(store(ctx, &argv[1], result, "sinterstore"))
}

/// `SUNION key [key ...]`.
fn sunion(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let intset_entries_max = intset_entries_max(ctx);
    with_sets(ctx, &argv[1..], |sets| {
        set_reply(algebra::union(sets, intset_entries_max).members())
    })
}

/// `SUNIONSTORE destination key [key ...]`.
fn sunionstore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let intset_entries_max = intset_entries_max(ctx);
    let result = with_sets(ctx, &argv[2..], |sets| {
        algebra::union(sets, intset_entries_max)
    })?;
    Ok(store(ctx, &argv[1], result, "sunionstore"))
}

/// `SDIFF key [key ...]`.
fn sdiff(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let intset_entries_max = intset_entries_max(ctx);
    with_sets(ctx, &argv[1..], |sets| {
        set_reply(algebra::difference(sets, intset_entries_max).members())
    })
}

/// `SDIFFSTORE destination key [key ...]`.
fn sdiffstore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let intset_entries_max = intset_entries_max(ctx);
    let result = with_sets(ctx, &argv[2..], |sets| {
        algebra::difference(sets, intset_entries_max)
    })?;
    Ok(store(ctx, &argv[1], result, "sdiffstore"))
}

/// Every set when all keys exist; None when one is missing (an empty intersection).
fn all_present<'s>(sets: &[Option<&'s Set>]) -> Option<Vec<&'s Set>> {
    sets.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::argv as bytes;
    use rand::SeedableRng;

    fn set_of(members: &[&str]) -> Set {
        let mut set = Set::for_first_member(members[0].as_bytes());
        for member in members {
            set.add(member.as_bytes(), 512);
        }
        set
    }

    #[test]
    fn numkeys_rules() {
        assert_eq!(parse_numkeys(&bytes(&["sintercard", "1", "a"])), Ok(1));
        assert_eq!(
            parse_numkeys(&bytes(&["sintercard", "0", "a"])),
            Err(Error::from(NUMKEYS_NOT_POSITIVE))
        );
        assert_eq!(
            parse_numkeys(&bytes(&["sintercard", "x", "a"])),
            Err(Error::from(NUMKEYS_NOT_POSITIVE))
        );
        assert_eq!(
            parse_numkeys(&bytes(&["sintercard", "2", "a"])),
            Err(Error::from(NUMKEYS_TOO_MANY))
        );
        assert_eq!(
            sintercard_keys(&bytes(&["sintercard", "2", "a", "b", "LIMIT", "1"])),
            vec![2, 3]
        );
        assert!(sintercard_keys(&bytes(&["sintercard", "9", "a"])).is_empty());
        assert!(sintercard_keys(&bytes(&["sintercard"])).is_empty());
    }

    #[test]
    fn scan_options_and_cursor() {
        assert_eq!(args::scan_cursor(b""), Ok(0));
        assert_eq!(args::scan_cursor(b"-1"), Ok(u64::MAX));
        assert!(args::scan_cursor(b"x").is_err());
        assert!(args::scan_cursor(b"18446744073709551616").is_err());
        let parsed =
            ScanOptions::parse(&bytes(&["COUNT", "5", "match", "a*"]), false).expect("valid");
        assert_eq!(parsed.count, 5);
        assert_eq!(parsed.pattern.as_deref(), Some(&b"a*"[..]));
        assert_eq!(
            ScanOptions::parse(&bytes(&["count", "0"]), false),
            Err(Error::Syntax)
        );
        assert_eq!(
            ScanOptions::parse(&bytes(&["type", "set"]), false),
            Err(Error::Syntax)
        );
        assert_eq!(
            ScanOptions::parse(&bytes(&["match"]), false),
            Err(Error::Syntax)
        );
        assert_eq!(
            ScanOptions::parse(&bytes(&["match", "*"]), false).map(|o| o.pattern),
            Ok(None)
        );
    }

    #[test]
    fn pop_count_keeps_a_small_remainder_as_a_fresh_set() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let members: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let mut set = set_of(&refs);
        assert_eq!(set.encoding(), "hashtable");
        let popped = pop_count(&mut set, 590, 512, &mut rng);
        assert_eq!(popped.len(), 590);
        assert_eq!(set.len(), 10);
        assert_eq!(set.encoding(), "intset");
        for member in &popped {
            assert!(!set.contains(member));
        }
        // Few popped: one at a time, the encoding stays.
        let mut set = set_of(&refs);
        let popped = pop_count(&mut set, 3, 512, &mut rng);
        assert_eq!(
            (popped.len(), set.len(), set.encoding()),
            (3, 597, "hashtable")
        );
    }

    #[test]
    fn random_members_cases() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let set = set_of(&["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
        assert!(random_members(&set, 0, &mut rng).expect("ok").is_empty());
        assert_eq!(random_members(&set, -25, &mut rng).expect("ok").len(), 25);
        assert_eq!(
            random_members(&set, 10, &mut rng).expect("ok"),
            set.members()
        );
        assert_eq!(
            random_members(&set, 99, &mut rng).expect("ok"),
            set.members()
        );
        for count in [1, 2, 3, 4, 9] {
            let picked = random_members(&set, count, &mut rng).expect("ok");
            let distinct: std::collections::HashSet<_> = picked.iter().collect();
            assert_eq!(distinct.len(), count as usize);
            assert!(picked.iter().all(|member| set.contains(member)));
        }
        assert_eq!(
            random_members(&set, -(RANDOM_REPLY_MEMBERS_MAX as i64) - 1, &mut rng),
            Err(Error::from(REPLY_TOO_LARGE))
        );
    }

    /// Runs `lines`; their replies and the propagated commands without SELECT.
    fn run(lines: &[&str]) -> (Vec<Reply>, Vec<String>) {
        let test = crate::testing::TestServer::starting_at(1_000_000);
        let mut session = test.session();
        let replies = lines
            .iter()
            .map(|line| test.reply(&mut session, line))
            .collect();
        let effects = test
            .propagated()
            .into_iter()
            .filter(|command| command != "SELECT 0")
            .collect();
        (replies, effects)
    }

    #[test]
    fn effects_are_propagated_as_redis_does() {
        let (_, effects) = run(&[
            "sadd s 1 2 3",
            "sadd s 3",
            "srem s 9",
            "sadd one x",
            "spop one",
            "sadd p 1 2 3",
            "spop p 0",
            "spop p 5",
            "sadd q 1",
            "smove q r 1",
            "smove q r 1",
            "sinterstore d s s",
            "sinterstore nothing s missing",
            "sunionstore d missing",
            "srandmember s 2",
        ]);
        assert_eq!(
            effects,
            vec![
                "sadd s 1 2 3",
                "sadd one x",
                "SREM one x",
                "sadd p 1 2 3",
                "DEL p",
                "sadd q 1",
                "smove q r 1",
                "sinterstore d s s",
                "sunionstore d missing",
            ]
        );
    }

    #[test]
    fn spop_with_a_count_propagates_one_srem_per_member() {
        let (replies, effects) = run(&["sadd s 1 2 3 4 5 6 7 8 9 10", "spop s 2", "spop s 7"]);
        let Reply::Set(popped) = &replies[1] else {
            panic!("SPOP with a count replies with a set");
        };
        assert_eq!(popped.len(), 2);
        // Each SPOP's SREMs travel as one MULTI/EXEC block, as in Redis 7.0's AOF.
        assert_eq!(effects.len(), 1 + (2 + 2) + (7 + 2));
        assert_eq!(
            (effects[1].as_str(), effects[4].as_str()),
            ("MULTI", "EXEC")
        );
        assert_eq!(
            (effects[5].as_str(), effects[13].as_str()),
            ("MULTI", "EXEC")
        );
        for (effect, member) in effects[2..4].iter().zip(popped) {
            let Reply::Bulk(member) = member else {
                panic!("members are bulk strings");
            };
            assert_eq!(
                effect,
                &format!("SREM s {}", String::from_utf8_lossy(member))
            );
        }
        assert!(effects[6..13]
            .iter()
            .all(|effect| effect.starts_with("SREM s ")));
    }
}
