//! The list family (non-blocking): LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP, LLEN, LRANGE,
//! LINDEX, LSET, LINSERT, LREM, LTRIM, LPOS, LMOVE, RPOPLPUSH and LMPOP, with Redis 7.0.15's
//! replies, error texts and propagated effects.
//!
//! The representation and its pure operations live in `types::list`; this file parses
//! arguments in Redis's order (which decides which error a bad request gets), applies the
//! keyspace rules (a list that loses its last element is deleted; every change is signalled
//! once per key) and renders. Pop and move are `pub(crate)` so the blocking forms (BLPOP,
//! BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) can call them when they are built.
//!
//! Propagation is verbatim except LMPOP, which Redis replicates as `LPOP|RPOP key <popped>`.

use super::args;
use super::block;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error, NOT_POSITIVE};
use crate::keyspace::notify;
use crate::protocol::parser::parse_i64;
use crate::protocol::Reply;
use crate::types::list::{End, List};
use crate::types::{CompactBytes, Value};
use bytes::Bytes;

const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
const COUNT_NOT_POSITIVE: &str = "ERR count should be greater than 0";

pub static COMMANDS: &[Spec] = &[
    Spec::new("lpush", lpush, Lock::Keys),
    Spec::new("rpush", rpush, Lock::Keys),
    Spec::new("lpushx", lpushx, Lock::Keys),
    Spec::new("rpushx", rpushx, Lock::Keys),
    Spec::new("lpop", lpop, Lock::Keys),
    Spec::new("rpop", rpop, Lock::Keys),
    Spec::new("llen", llen, Lock::Keys),
    Spec::new("lrange", lrange, Lock::Keys),
    Spec::new("lindex", lindex, Lock::Keys),
    Spec::new("lset", lset, Lock::Keys),
    Spec::new("linsert", linsert, Lock::Keys),
    Spec::new("lrem", lrem, Lock::Keys),
    Spec::new("ltrim", ltrim, Lock::Keys),
    Spec::new("lpos", lpos, Lock::Keys),
    Spec::new("lmove", lmove, Lock::Keys),
    Spec::new("rpoplpush", rpoplpush, Lock::Keys),
    Spec::new("lmpop", lmpop, Lock::Custom(lmpop_keys)),
    Spec::new("blpop", blpop, Lock::Keys),
    Spec::new("brpop", brpop, Lock::Keys),
    Spec::new("blmove", blmove, Lock::Keys),
    Spec::new("brpoplpush", brpoplpush, Lock::Keys),
    Spec::new("blmpop", blmpop, Lock::Custom(blmpop_keys)),
];

// ---------------------------------------------------------------------------------------------
// Shared helpers and the reusable operations
// ---------------------------------------------------------------------------------------------

fn bulk(element: CompactBytes) -> Reply {
    Reply::Bulk(Bytes::from(element.into_vec()))
}

fn bulk_array(elements: Vec<CompactBytes>) -> Reply {
    Reply::bulk_array(
        elements.len(),
        elements.iter().map(|element| element.as_slice()),
    )
}

/// Redis's getListPositionFromObjectOrReply: LEFT or RIGHT, a syntax error otherwise.
fn parse_end(arg: &[u8]) -> Result<End, Error> {
    if args::is(arg, "left") {
        Ok(End::Left)
    } else if args::is(arg, "right") {
        Ok(End::Right)
    } else {
        Err(Error::Syntax)
    }
}

/// Redis's getRangeLongFromObjectOrReply with a message: `msg` for a non-integer too.
fn parse_at_least(arg: &[u8], minimum: i64, message: &'static str) -> Result<i64, Error> {
    match parse_i64(arg) {
        Some(value) if value >= minimum => Ok(value),
        _ => Err(Error::from(message)),
    }
}

/// Applies the keyspace rule after elements left the list at `key`: delete it when empty,
/// otherwise signal the change.
fn after_removal(ctx: &mut Ctx<'_, '_>, db: usize, key: &[u8], now_empty: bool) {
    if now_empty {
        let deleted = ctx.ks.delete(db, key);
        debug_assert!(deleted, "the list was just looked up");
    } else {
        ctx.ks.signal_modified(db, key);
    }
}

/// The keyspace event of a push to `end` (Redis's "lpush" / "rpush").
fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

/// The keyspace event of a pop from `end` (Redis's "lpop" / "rpop").
fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// The list at `key` for a read command (counts hits and misses); WRONGTYPE otherwise.
fn read_list<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'c mut List>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, key) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::List(list) => Ok(Some(list)),
            _ => Err(Error::WrongType),
        },
    }
}

/// The list at `key` for a write command; WRONGTYPE otherwise.
fn write_list<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'c mut List>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup(db, key) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::List(list) => Ok(Some(list)),
            _ => Err(Error::WrongType),
        },
    }
}

/// Pops up to `count` (at least 1) elements from `end` of the list at `key`, in pop order,
/// deleting the key when it empties. `Ok(None)` when the key does not exist.
pub(crate) fn pop(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Vec<CompactBytes>>, Error> {
    assert!(count >= 1, "callers handle a zero count themselves");
    let db = ctx.db();
    let Some(list) = write_list(ctx, key)? else {
        return Ok(None);
    };
    let popped = list.pop_many(end, count);
    let now_empty = list.is_empty();
    debug_assert!(!popped.is_empty(), "a list in the keyspace is never empty");
    after_removal(ctx, db, key, now_empty);
    ctx.reply_written();
    ctx.ks.notify(notify::LIST, pop_event(end), db, key);
    if now_empty {
        ctx.ks.notify(notify::GENERIC, "del", db, key);
    }
    Ok(Some(popped))
}

/// Redis's lmoveGenericCommand: pops from `from` of `source` and pushes to `to` of
/// `destination` (created if missing). `Ok(None)` when the source does not exist; WRONGTYPE
/// (with nothing moved) when either key holds another type. The same key rotates in place.
pub(crate) fn move_element(
    ctx: &mut Ctx<'_, '_>,
    source: &[u8],
    destination: &[u8],
    from: End,
    to: End,
) -> Result<Option<CompactBytes>, Error> {
    let db = ctx.db();
    let Some(list) = write_list(ctx, source)? else {
        return Ok(None);
    };
    if source == destination {
        let length_before = list.len();
        let Some(element) = list.pop(from) else {
            return Ok(None);
        };
        list.push(to, &element);
        debug_assert_eq!(list.len(), length_before);
        ctx.ks.signal_modified(db, source);
        ctx.ks.notify(notify::LIST, push_event(to), db, destination);
        ctx.reply_written();
        ctx.ks.notify(notify::LIST, pop_event(from), db, source);
        return Ok(Some(element));
    }
    // Check the destination before popping so a WRONGTYPE leaves both keys untouched.
    let destination_exists = write_list(ctx, destination)?.is_some();
    let Some(list) = write_list(ctx, source)? else {
        return Ok(None);
    };
    let Some(element) = list.pop(from) else {
        return Ok(None);
    };
    let now_empty = list.is_empty();
    match write_list(ctx, destination)? {
        Some(target) => {
            debug_assert!(destination_exists);
            target.push(to, &element);
            ctx.ks.signal_modified(db, destination);
        }
        None => {
            let mut target = List::new();
            target.push(to, &element);
            ctx.ks
                .set(db, destination, Value::List(Box::new(target)), false);
        }
    }
    ctx.ks.notify(notify::LIST, push_event(to), db, destination);
    ctx.reply_written();
    after_removal(ctx, db, source, now_empty);
    ctx.ks.notify(notify::LIST, pop_event(from), db, source);
    if now_empty {
        ctx.ks.notify(notify::GENERIC, "del", db, source);
    }
    Ok(Some(element))
}

/// Redis's mpopGenericCommand for lists: pops up to `count` elements from the first
/// non-empty list among `keys`. WRONGTYPE stops the walk at the first key of another type.
pub(crate) fn pop_first(
    ctx: &mut Ctx<'_, '_>,
    keys: &[Bytes],
    end: End,
    count: usize,
) -> Result<Option<(Bytes, Vec<CompactBytes>)>, Error> {
    for key in keys {
        if let Some(popped) = pop(ctx, key, end, count)? {
            return Ok(Some((key.clone(), popped)));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Push
// ---------------------------------------------------------------------------------------------

/// `LPUSH key element [element ...]`, `RPUSH ...`, and the X forms that only push onto an
/// existing list. Replies with the length after the push (0 for an X form on a missing key).
fn push_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let db = ctx.db();
    let key = &argv[1];
    let elements = &argv[2..];
    debug_assert!(!elements.is_empty(), "arity -3 guarantees an element");
    if let Some(list) = write_list(ctx, key)? {
        for element in elements {
            list.push(end, element);
        }
        let length = list.len();
        ctx.ks.signal_modified(db, key);
        ctx.reply_written();
        ctx.ks.notify(notify::LIST, push_event(end), db, key);
        return Ok(Reply::Integer(length as i64));
    }
    if only_existing {
        return Ok(Reply::Integer(0));
    }
    let mut list = List::new();
    for element in elements {
        list.push(end, element);
    }
    let length = list.len();
    ctx.ks.set(db, key, Value::List(Box::new(list)), false);
    ctx.reply_written();
    ctx.ks.notify(notify::LIST, push_event(end), db, key);
    Ok(Reply::Integer(length as i64))
}

fn lpush(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, argv, End::Left, false)
}

fn rpush(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, argv, End::Right, false)
}

fn lpushx(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, argv, End::Left, true)
}

fn rpushx(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, argv, End::Right, true)
}

// ---------------------------------------------------------------------------------------------
// Pop
// ---------------------------------------------------------------------------------------------

/// `LPOP key [count]` / `RPOP key [count]`. Without a count: the element or a null bulk.
/// With one: an array in pop order, an empty array for count 0, a null array for a missing
/// key (RESP2 `*-1`; RESP3 `_`).
fn pop_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], end: End) -> CmdResult {
    if argv.len() > 3 {
        return Err(Error::Arity(ctx.command.fullname.clone()));
    }
    let key = &argv[1];
    let count = match argv.get(2) {
        None => None,
        Some(arg) => Some(parse_at_least(arg, 0, NOT_POSITIVE)?),
    };
    match count {
        None => Ok(match pop(ctx, key, end, 1)? {
            Some(mut popped) => match popped.pop() {
                Some(element) => bulk(element),
                None => Reply::Null,
            },
            None => Reply::Null,
        }),
        Some(0) => Ok(match write_list(ctx, key)? {
            Some(_) => Reply::Array(Vec::new()),
            None => Reply::NullArray,
        }),
        Some(count) => {
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            Ok(match pop(ctx, key, end, count)? {
                Some(popped) => bulk_array(popped),
                None => Reply::NullArray,
            })
        }
    }
}

fn lpop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, argv, End::Left)
}

fn rpop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, argv, End::Right)
}

// ---------------------------------------------------------------------------------------------
// Reads: LLEN, LRANGE, LINDEX, LPOS
// ---------------------------------------------------------------------------------------------

/// `LLEN key`: 0 for a missing key.
fn llen(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let length = read_list(ctx, &argv[1])?.map_or(0, |list| list.len());
    Ok(Reply::Integer(length as i64))
}

/// `LRANGE key start stop`: indexes are parsed before the key is looked up, as in Redis.
fn lrange(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let start = args::int(&argv[2])?;
    let stop = args::int(&argv[3])?;
    let Some(list) = read_list(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let count = list
        .range_positions(start, stop)
        .map_or(0, |(first, last)| last - first + 1);
    Ok(Reply::bulk_array(count, list.range(start, stop)))
}

/// `LINDEX key index`: the key is looked up before the index is parsed, as in Redis (a
/// missing key answers null even for a bad index).
fn lindex(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let Some(list) = read_list(ctx, &argv[1])? else {
        return Ok(Reply::Null);
    };
    let index = args::int(&argv[2])?;
    Ok(match list.get(index) {
        Some(element) => Reply::bulk_copy(element),
        None => Reply::Null,
    })
}

/// LPOS's options.
struct PositionOptions {
    rank: i64,
    /// None when COUNT was not given (reply a single position or null).
    count: Option<u64>,
    maxlen: u64,
}

fn parse_position_options(options: &[Bytes]) -> Result<PositionOptions, Error> {
    let mut parsed = PositionOptions {
        rank: 1,
        count: None,
        maxlen: 0,
    };
    let mut position = 0;
    while position < options.len() {
        let option = &options[position];
        let value = options.get(position + 1);
        match value {
            Some(value) if args::is(option, "rank") => {
                parsed.rank = args::int(value)?;
                if parsed.rank == 0 {
                    return Err(Error::from(RANK_ZERO));
                }
            }
            Some(value) if args::is(option, "count") => {
                parsed.count = Some(parse_at_least(value, 0, COUNT_NEGATIVE)? as u64);
            }
            Some(value) if args::is(option, "maxlen") => {
                parsed.maxlen = parse_at_least(value, 0, MAXLEN_NEGATIVE)? as u64;
            }
            _ => return Err(Error::Syntax),
        }
        position += 2;
    }
    Ok(parsed)
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
fn lpos(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let options = parse_position_options(&argv[3..])?;
    let Some(list) = read_list(ctx, &argv[1])? else {
        return Ok(match options.count {
            Some(_) => Reply::Array(Vec::new()),
            None => Reply::Null,
        });
    };
    let found = list.positions(&argv[2], options.rank, options.count, options.maxlen);
    Ok(match options.count {
        Some(_) => Reply::Array(
            found
                .into_iter()
                .map(|position| Reply::Integer(position as i64))
                .collect(),
        ),
        None => match found.first() {
            Some(&position) => Reply::Integer(position as i64),
            None => Reply::Null,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// In-place writes: LSET, LINSERT, LREM, LTRIM
// ---------------------------------------------------------------------------------------------

/// `LSET key index element`: "no such key" before the index is parsed.
fn lset(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let key = &argv[1];
    let Some(list) = write_list(ctx, key)? else {
        return Err(Error::NoSuchKey);
    };
    let index = args::int(&argv[2])?;
    if !list.set(index, &argv[3]) {
        return Err(Error::from(INDEX_OUT_OF_RANGE));
    }
    ctx.ks.signal_modified(db, key);
    ctx.reply_written();
    ctx.ks.notify(notify::LIST, "lset", db, key);
    Ok(Reply::OK)
}

/// `LINSERT key BEFORE|AFTER pivot element`: the new length, -1 without the pivot, 0 for a
/// missing key. The direction is checked before the key.
fn linsert(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let key = &argv[1];
    let after = if args::is(&argv[2], "after") {
        true
    } else if args::is(&argv[2], "before") {
        false
    } else {
        return Err(Error::Syntax);
    };
    let Some(list) = write_list(ctx, key)? else {
        return Ok(Reply::Integer(0));
    };
    if !list.insert(&argv[3], after, &argv[4]) {
        return Ok(Reply::Integer(-1));
    }
    let length = list.len();
    ctx.ks.signal_modified(db, key);
    ctx.ks.notify(notify::LIST, "linsert", db, key);
    Ok(Reply::Integer(length as i64))
}

/// `LREM key count element`: how many were removed.
fn lrem(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let key = &argv[1];
    let count = args::int(&argv[2])?;
    let Some(list) = write_list(ctx, key)? else {
        return Ok(Reply::Integer(0));
    };
    let removed = list.remove(count, &argv[3]);
    let now_empty = list.is_empty();
    if removed > 0 {
        after_removal(ctx, db, key, now_empty);
        ctx.ks.notify(notify::LIST, "lrem", db, key);
        if now_empty {
            ctx.ks.notify(notify::GENERIC, "del", db, key);
        }
    }
    Ok(Reply::Integer(removed as i64))
}

/// `LTRIM key start stop`. A trim that removes nothing is not a write (Redis adds the
/// number removed to `server.dirty`), so it does not propagate.
fn ltrim(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let key = &argv[1];
    let start = args::int(&argv[2])?;
    let stop = args::int(&argv[3])?;
    let Some(list) = write_list(ctx, key)? else {
        return Ok(Reply::OK);
    };
    let removed = list.trim(start, stop);
    let now_empty = list.is_empty();
    if removed > 0 {
        after_removal(ctx, db, key, now_empty);
    }
    ctx.ks.notify(notify::LIST, "ltrim", db, key);
    if now_empty {
        ctx.ks.notify(notify::GENERIC, "del", db, key);
    }
    Ok(Reply::OK)
}

// ---------------------------------------------------------------------------------------------
// Moves: LMOVE, RPOPLPUSH, LMPOP
// ---------------------------------------------------------------------------------------------

fn move_reply(moved: Option<CompactBytes>) -> Reply {
    match moved {
        Some(element) => bulk(element),
        None => Reply::Null,
    }
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`.
fn lmove(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let from = parse_end(&argv[3])?;
    let to = parse_end(&argv[4])?;
    let moved = move_element(ctx, &argv[1], &argv[2], from, to)?;
    Ok(move_reply(moved))
}

/// `RPOPLPUSH source destination`: LMOVE source destination RIGHT LEFT.
fn rpoplpush(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let moved = move_element(ctx, &argv[1], &argv[2], End::Right, End::Left)?;
    Ok(move_reply(moved))
}

/// LMPOP's parsed arguments.
struct MultiPop {
    numkeys: usize,
    end: End,
    count: usize,
}

/// Redis's lmpopGenericCommand parsing, in its order: numkeys (at `first`), the direction after
/// the keys, then an optional single COUNT. LMPOP has numkeys at 1, BLMPOP at 2.
fn parse_multi_pop(argv: &[Bytes], first: usize) -> Result<MultiPop, Error> {
    let numkeys = parse_at_least(&argv[first], 1, NUMKEYS_NOT_POSITIVE)?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    // The direction follows the keys: without room for it the request is a syntax error.
    let end_position = numkeys.checked_add(first + 1).filter(|&at| at < argv.len());
    let Some(end_position) = end_position else {
        return Err(Error::Syntax);
    };
    let end = parse_end(&argv[end_position])?;
    let mut count = None;
    let mut position = end_position + 1;
    while position < argv.len() {
        match argv.get(position + 1) {
            Some(value) if count.is_none() && args::is(&argv[position], "count") => {
                count = Some(parse_at_least(value, 1, COUNT_NOT_POSITIVE)?);
            }
            _ => return Err(Error::Syntax),
        }
        position += 2;
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok(MultiPop {
        numkeys,
        end,
        count,
    })
}

/// The key positions of LMPOP/BLMPOP (Redis's lmpopGetKeys): the `numkeys` arguments after
/// numkeys at `first`, none when numkeys is not a usable count (the command then fails before
/// touching a key).
fn multi_pop_keys(argv: &[Bytes], first: usize) -> Vec<usize> {
    let Some(numkeys) = argv.get(first).and_then(|arg| parse_i64(arg)) else {
        return Vec::new();
    };
    let available = argv.len().saturating_sub(first + 1) as i64;
    if numkeys < 1 || numkeys > available {
        return Vec::new();
    }
    (first + 1..first + 1 + numkeys as usize).collect()
}

fn lmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    multi_pop_keys(argv, 1)
}

/// Pops for LMPOP/BLMPOP from the first non-empty list of `keys`: `[key, [elements]]`, or a
/// null array. Propagates as `LPOP|RPOP key <popped>`.
fn multi_pop(ctx: &mut Ctx<'_, '_>, keys: &[Bytes], request: &MultiPop) -> CmdResult {
    let Some((key, popped)) = pop_first(ctx, keys, request.end, request.count)? else {
        return Ok(Reply::NullArray);
    };
    let command: &'static [u8] = match request.end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    };
    let mut buffer = itoa::Buffer::new();
    let popped_count = Bytes::copy_from_slice(buffer.format(popped.len()).as_bytes());
    ctx.propagate(vec![Bytes::from_static(command), key.clone(), popped_count]);
    Ok(Reply::Array(vec![Reply::Bulk(key), bulk_array(popped)]))
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`: `[key, [elements]]` from the first
/// non-empty list, or a null array.
fn lmpop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let request = parse_multi_pop(argv, 1)?;
    let keys = &argv[2..2 + request.numkeys];
    debug_assert_eq!(lmpop_keys(argv).len(), keys.len(), "every key is locked");
    multi_pop(ctx, keys, &request)
}

// ---------------------------------------------------------------------------------------------
// Blocking forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP): see `command::block`.
// ---------------------------------------------------------------------------------------------

/// `BLPOP key [key ...] timeout`, `BRPOP ...`: `[key, element]` from the first non-empty list.
fn blocking_pop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], end: End) -> CmdResult {
    let timeout_ms = block::parse_timeout(&argv[argv.len() - 1], ctx.now_ms())?;
    let keys = &argv[1..argv.len() - 1];
    for key in keys {
        let popped = match pop(ctx, key, end, 1) {
            Ok(popped) => popped,
            Err(error) if block::wrong_type_keeps_waiting(ctx, &error) => break,
            Err(error) => return Err(error),
        };
        if let Some(mut popped) = popped {
            let element = popped
                .pop()
                .ok_or(Error::from("ERR internal error: empty pop"))?;
            let command: &'static [u8] = match end {
                End::Left => b"LPOP",
                End::Right => b"RPOP",
            };
            ctx.propagate(vec![Bytes::from_static(command), key.clone()]);
            return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), bulk(element)]));
        }
    }
    block::block_on(
        ctx,
        argv,
        keys,
        timeout_ms,
        Reply::NullArray,
        Reply::NullArray,
    )
}

fn blpop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, argv, End::Left)
}

fn brpop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, argv, End::Right)
}

/// BLMOVE and BRPOPLPUSH: the element moved, propagated as the non-blocking form.
fn blocking_move(
    ctx: &mut Ctx<'_, '_>,
    argv: &[Bytes],
    ends: (End, End),
    timeout_arg: &Bytes,
    propagated: Vec<Bytes>,
) -> CmdResult {
    let timeout_ms = block::parse_timeout(timeout_arg, ctx.now_ms())?;
    match move_element(ctx, &argv[1], &argv[2], ends.0, ends.1) {
        Ok(Some(element)) => {
            ctx.propagate(propagated);
            Ok(bulk(element))
        }
        // Redis answers every timed-out list wait with a null array, BLMOVE's too.
        Ok(None) => block::block_on(
            ctx,
            argv,
            &argv[1..2],
            timeout_ms,
            Reply::NullArray,
            Reply::Null,
        ),
        Err(error) if block::wrong_type_keeps_waiting(ctx, &error) => block::block_on(
            ctx,
            argv,
            &argv[1..2],
            timeout_ms,
            Reply::NullArray,
            Reply::Null,
        ),
        Err(error) => Err(error),
    }
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`.
fn blmove(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let from = parse_end(&argv[3])?;
    let to = parse_end(&argv[4])?;
    let mut propagated = argv[..5].to_vec();
    propagated[0] = Bytes::from_static(b"LMOVE");
    blocking_move(ctx, argv, (from, to), &argv[5], propagated)
}

/// `BRPOPLPUSH source destination timeout`.
fn brpoplpush(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mut propagated = argv[..3].to_vec();
    propagated[0] = Bytes::from_static(b"RPOPLPUSH");
    blocking_move(ctx, argv, (End::Right, End::Left), &argv[3], propagated)
}

/// BLMPOP's key positions: LMPOP's, shifted by the timeout.
fn blmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    multi_pop_keys(argv, 2)
}

/// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]`.
fn blmpop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let timeout_ms = block::parse_timeout(&argv[1], ctx.now_ms())?;
    let request = parse_multi_pop(argv, 2)?;
    let keys = &argv[3..3 + request.numkeys];
    match multi_pop(ctx, keys, &request) {
        Ok(Reply::NullArray) => block::block_on(
            ctx,
            argv,
            keys,
            timeout_ms,
            Reply::NullArray,
            Reply::NullArray,
        ),
        Err(error) if block::wrong_type_keeps_waiting(ctx, &error) => block::block_on(
            ctx,
            argv,
            keys,
            timeout_ms,
            Reply::NullArray,
            Reply::NullArray,
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::argv;

    #[test]
    fn lmpop_key_positions() {
        assert_eq!(lmpop_keys(&argv(&["lmpop", "2", "a", "b", "left"])), [2, 3]);
        assert_eq!(lmpop_keys(&argv(&["lmpop", "1", "a", "left"])), [2]);
        assert!(lmpop_keys(&argv(&["lmpop", "0", "a", "left"])).is_empty());
        assert!(lmpop_keys(&argv(&["lmpop", "x", "a", "left"])).is_empty());
        assert!(lmpop_keys(&argv(&["lmpop", "9", "a", "left"])).is_empty());
    }

    #[test]
    fn lmpop_parsing_errors() {
        let parse =
            |words: &[&str]| parse_multi_pop(&argv(words), 1).map(|p| (p.numkeys, p.end, p.count));
        assert_eq!(parse(&["lmpop", "1", "a", "left"]), Ok((1, End::Left, 1)));
        assert_eq!(
            parse(&["lmpop", "2", "a", "b", "RIGHT", "count", "5"]),
            Ok((2, End::Right, 5))
        );
        assert_eq!(
            parse(&["lmpop", "0", "a", "left"]),
            Err(Error::from(NUMKEYS_NOT_POSITIVE))
        );
        assert_eq!(parse(&["lmpop", "2", "a", "left"]), Err(Error::Syntax));
        assert_eq!(
            parse(&["lmpop", "9223372036854775807", "a", "left"]),
            Err(Error::Syntax)
        );
        assert_eq!(parse(&["lmpop", "1", "a", "up"]), Err(Error::Syntax));
        assert_eq!(
            parse(&["lmpop", "1", "a", "left", "count", "0"]),
            Err(Error::from(COUNT_NOT_POSITIVE))
        );
        assert_eq!(
            parse(&["lmpop", "1", "a", "left", "count", "1", "count", "1"]),
            Err(Error::Syntax)
        );
        assert_eq!(
            parse(&["lmpop", "1", "a", "left", "count"]),
            Err(Error::Syntax)
        );
    }

    #[test]
    fn lpos_option_errors() {
        let parse = |words: &[&str]| {
            parse_position_options(&argv(words)).map(|o| (o.rank, o.count, o.maxlen))
        };
        assert_eq!(parse(&[]), Ok((1, None, 0)));
        assert_eq!(
            parse(&["rank", "-2", "count", "0", "maxlen", "3"]),
            Ok((-2, Some(0), 3))
        );
        assert_eq!(parse(&["rank", "0"]), Err(Error::from(RANK_ZERO)));
        assert_eq!(parse(&["rank", "x"]), Err(Error::NotInteger));
        assert_eq!(parse(&["count", "x"]), Err(Error::from(COUNT_NEGATIVE)));
        assert_eq!(parse(&["maxlen", "-1"]), Err(Error::from(MAXLEN_NEGATIVE)));
        assert_eq!(parse(&["rank"]), Err(Error::Syntax));
        assert_eq!(parse(&["foo", "1"]), Err(Error::Syntax));
    }

    #[test]
    fn ends_parse() {
        assert_eq!(parse_end(b"LeFt"), Ok(End::Left));
        assert_eq!(parse_end(b"right"), Ok(End::Right));
        assert_eq!(parse_end(b"up"), Err(Error::Syntax));
    }

    /// Runs `lines` and returns each propagated command as space-joined words.
    fn propagated(lines: &[&str]) -> Vec<String> {
        let test = crate::testing::TestServer::starting_at(1_000_000);
        let mut session = test.session();
        for line in lines {
            test.reply(&mut session, line);
        }
        test.propagated()
    }

    /// The same commands as a real Redis 7.0.15 wrote to its AOF (appendonly yes).
    #[test]
    fn effects_propagate_as_redis_writes_them() {
        let lines = [
            "rpush l a b c d e",
            "lpush l z",
            "lpushx nope x",
            "rpushx l y",
            "lpop l 0",
            "lpop l",
            "rpop l 2",
            "lpop nope 2",
            "ltrim l 0 -1",
            "ltrim l 1 -1",
            "lset l 0 Q",
            "linsert l before Q P",
            "linsert l before nopivot P",
            "lrem l 0 nope",
            "lrem l 1 P",
            "lmove l m left right",
            "lmove l l right left",
            "rpoplpush l m",
            "rpoplpush nope m",
            "lmpop 2 nope l right count 10",
            "lmpop 1 nope left",
            "lpos m a",
            "rpush x 1",
            "ltrim x 1 0",
        ];
        let expected = [
            "SELECT 0",
            "rpush l a b c d e",
            "lpush l z",
            "rpushx l y",
            "lpop l",
            "rpop l 2",
            "ltrim l 1 -1",
            "lset l 0 Q",
            "linsert l before Q P",
            "lrem l 1 P",
            "lmove l m left right",
            "lmove l l right left",
            "rpoplpush l m",
            "RPOP l 1",
            "rpush x 1",
            "ltrim x 1 0",
        ];
        assert_eq!(propagated(&lines), expected);
    }
}
