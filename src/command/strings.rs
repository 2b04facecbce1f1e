//! The string family: SET, GET, GETEX, GETDEL, GETSET, MGET, MSET, MSETNX, SETNX, SETEX,
//! PSETEX, INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT, APPEND, STRLEN, GETRANGE, SUBSTR, SETRANGE
//! and LCS, with Redis 7.0.15's replies, error texts and propagated effects.
//!
//! Each command has a small argument parser, a pure operation where there is one worth
//! testing apart (option conflicts, range clamping, x87 long double arithmetic for
//! INCRBYFLOAT, the LCS table walk), and a thin handler that touches the keyspace and renders.
//! Effects are rewritten for determinism exactly as Redis 7.0 does: relative expiries become
//! `SET key value PXAT <ms>` or `PEXPIREAT`, GETDEL becomes DEL, GETSET becomes SET, and
//! INCRBYFLOAT becomes `SET key <result> KEEPTTL`.

use super::args;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error, STRING_TOO_LONG};
use crate::keyspace::entry::{FLAG_EMBSTR, FLAG_RAW};
use crate::keyspace::notify;
use crate::long_double;
use crate::protocol::Reply;
use crate::types::{CompactBytes, Value};
use bytes::Bytes;

const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
const DECREMENT_OVERFLOW: &str = "ERR decrement would overflow";
const FLOAT_NAN_OR_INFINITY: &str = "ERR increment would produce NaN or Infinity";
const LCS_NOT_STRINGS: &str = "ERR The specified keys must contain string values";
const LCS_IDX_AND_LEN: &str = "ERR If you want both the length and indexes, please just use IDX.";
const LCS_TOO_LONG: &str = "ERR String too long for LCS";
const LCS_ALLOCATION_FAILED: &str =
    "ERR Insufficient memory, failed allocating transient memory for LCS";
const LCS_TABLE_TOO_BIG: &str =
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";

pub static COMMANDS: &[Spec] = &[
    Spec::new("get", get, Lock::Keys),
    Spec::new("set", set, Lock::Keys),
    Spec::new("setnx", setnx, Lock::Keys),
    Spec::new("setex", setex, Lock::Keys),
    Spec::new("psetex", psetex, Lock::Keys),
    Spec::new("getex", getex, Lock::Keys),
    Spec::new("getdel", getdel, Lock::Keys),
    Spec::new("getset", getset, Lock::Keys),
    Spec::new("mget", mget, Lock::Keys),
    Spec::new("mset", mset, Lock::Keys),
    Spec::new("msetnx", msetnx, Lock::Keys),
    Spec::new("incr", incr, Lock::Keys),
    Spec::new("decr", decr, Lock::Keys),
    Spec::new("incrby", incrby, Lock::Keys),
    Spec::new("decrby", decrby, Lock::Keys),
    Spec::new("incrbyfloat", incrbyfloat, Lock::Keys),
    Spec::new("append", append, Lock::Keys),
    Spec::new("strlen", strlen, Lock::Keys),
    Spec::new("getrange", getrange, Lock::Keys),
    Spec::new("substr", getrange, Lock::Keys),
    Spec::new("setrange", setrange, Lock::Keys),
    Spec::new("lcs", lcs, Lock::Keys),
];

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// The string at `key` for a read command (counts hits and misses); WRONGTYPE otherwise.
fn read_string(ctx: &mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<Bytes>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, key) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Str(bytes) => Ok(Some(Bytes::copy_from_slice(bytes))),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

/// The string at `key` for a write command (no hit/miss accounting); WRONGTYPE otherwise.
fn write_lookup_string(ctx: &mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<Bytes>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup(db, key) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Str(bytes) => Ok(Some(Bytes::copy_from_slice(bytes))),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

fn bulk_or_null(value: Option<Bytes>) -> Reply {
    match value {
        Some(bytes) => Reply::Bulk(bytes),
        None => Reply::Null,
    }
}

fn proto_max_bulk_len(ctx: &Ctx<'_, '_>) -> i64 {
    crate::config_int!(ctx.server.config, "proto-max-bulk-len")
}

/// Redis's `checkStringLength`: a string of `size + append` bytes must fit the configured
/// proto-max-bulk-len (and not overflow).
fn check_string_length(size: u64, append: u64, limit: i64) -> Result<(), Error> {
    match size.checked_add(append) {
        Some(total) if total <= limit.max(0) as u64 => Ok(()),
        _ => Err(Error::from(STRING_TOO_LONG)),
    }
}

fn ms_bytes(milliseconds: i64) -> Bytes {
    let mut buffer = itoa::Buffer::new();
    Bytes::copy_from_slice(buffer.format(milliseconds).as_bytes())
}

// ---------------------------------------------------------------------------------------------
// SET-style options (SET and GETEX share Redis's parseExtendedStringArgumentsOrReply)
// ---------------------------------------------------------------------------------------------

const OPT_NX: u32 = 1 << 0;
const OPT_XX: u32 = 1 << 1;
const OPT_GET: u32 = 1 << 2;
const OPT_KEEPTTL: u32 = 1 << 3;
const OPT_PERSIST: u32 = 1 << 4;
const OPT_EX: u32 = 1 << 5;
const OPT_PX: u32 = 1 << 6;
const OPT_EXAT: u32 = 1 << 7;
const OPT_PXAT: u32 = 1 << 8;
const OPT_ANY_EXPIRE: u32 = OPT_EX | OPT_PX | OPT_EXAT | OPT_PXAT;

/// Which command the options belong to: SET takes NX/XX/GET/KEEPTTL, GETEX takes PERSIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptionsFor {
    Set,
    Getex,
}

/// Parsed SET/GETEX options. `expire` is the raw argument after EX/PX/EXAT/PXAT; it is
/// validated later because Redis validates it at different points for SET and GETEX.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct StringOptions {
    flags: u32,
    expire: Option<Bytes>,
}

impl StringOptions {
    fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Redis's `parseExtendedStringArgumentsOrReply`, conflicts and all: an option that
    /// conflicts with one already seen, or an expiry word without a value, is a syntax error.
    /// Repeating an option is allowed (the last expiry value wins).
    fn parse(options: &[Bytes], target: OptionsFor) -> Result<StringOptions, Error> {
        let mut parsed = StringOptions::default();
        let set = target == OptionsFor::Set;
        let mut index = 0;
        while index < options.len() {
            let option = &options[index];
            let next = options.get(index + 1);
            let flags = parsed.flags;
            let expiry_word = |own: u32| -> Option<u32> {
                let others = (OPT_ANY_EXPIRE & !own) | OPT_KEEPTTL | OPT_PERSIST;
                (flags & others == 0 && next.is_some()).then_some(own)
            };
            let expiry = if args::is(option, "EX") {
                expiry_word(OPT_EX)
            } else if args::is(option, "PX") {
                expiry_word(OPT_PX)
            } else if args::is(option, "EXAT") {
                expiry_word(OPT_EXAT)
            } else if args::is(option, "PXAT") {
                expiry_word(OPT_PXAT)
            } else {
                None
            };
            if let Some(flag) = expiry {
                parsed.flags |= flag;
                parsed.expire = next.cloned();
                index += 2;
                continue;
            }
            if args::is(option, "NX") && set && flags & OPT_XX == 0 {
                parsed.flags |= OPT_NX;
            } else if args::is(option, "XX") && set && flags & OPT_NX == 0 {
                parsed.flags |= OPT_XX;
            } else if args::is(option, "GET") && set {
                parsed.flags |= OPT_GET;
            } else if args::is(option, "KEEPTTL")
                && set
                && flags & (OPT_PERSIST | OPT_ANY_EXPIRE) == 0
            {
                parsed.flags |= OPT_KEEPTTL;
            } else if args::is(option, "PERSIST")
                && !set
                && flags & (OPT_KEEPTTL | OPT_ANY_EXPIRE) == 0
            {
                parsed.flags |= OPT_PERSIST;
            } else {
                return Err(Error::Syntax);
            }
            index += 1;
        }
        debug_assert!(parsed.expire.is_some() == parsed.has(OPT_ANY_EXPIRE));
        Ok(parsed)
    }

    /// Redis's `getExpireMillisecondsOrReply`: the absolute expiry in unix milliseconds.
    fn expire_at_ms(&self, now_ms: u64, command: &str) -> Result<Option<i64>, Error> {
        let Some(argument) = &self.expire else {
            return Ok(None);
        };
        let seconds = self.has(OPT_EX) || self.has(OPT_EXAT);
        let relative = self.has(OPT_EX) || self.has(OPT_PX);
        expire_at_ms(argument, seconds, relative, now_ms, command).map(Some)
    }
}

/// An expiry argument as absolute unix milliseconds; `invalid expire time` for values <= 0 or
/// ones that overflow once scaled or offset by the current time.
fn expire_at_ms(
    argument: &[u8],
    seconds: bool,
    relative: bool,
    now_ms: u64,
    command: &str,
) -> Result<i64, Error> {
    let value = args::int(argument)?;
    let invalid = || Error::InvalidExpire(command.to_string());
    if value <= 0 || (seconds && value > i64::MAX / 1000) {
        return Err(invalid());
    }
    let mut milliseconds = if seconds { value * 1000 } else { value };
    if relative {
        let now_ms = i64::try_from(now_ms).map_err(|_| invalid())?;
        milliseconds = milliseconds.checked_add(now_ms).ok_or_else(invalid)?;
    }
    debug_assert!(milliseconds > 0);
    Ok(milliseconds)
}

// ---------------------------------------------------------------------------------------------
// GET / SET and friends
// ---------------------------------------------------------------------------------------------

/// `GET key`: the string, or null.
fn get(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    Ok(bulk_or_null(read_string(ctx, &argv[1])?))
}

/// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds |
/// PXAT unix-time-milliseconds | KEEPTTL]`
fn set(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let options = StringOptions::parse(&argv[3..], OptionsFor::Set)?;
    let outcome = set_generic(ctx, argv, &argv[1], &argv[2], &options)?;
    if options.has(OPT_GET) {
        return Ok(bulk_or_null(outcome.old));
    }
    Ok(if outcome.written {
        Reply::OK
    } else {
        Reply::Null
    })
}

struct SetOutcome {
    /// Whether the key was written (NX/XX conditions held).
    written: bool,
    /// The previous value when GET was asked for.
    old: Option<Bytes>,
}

/// Redis's `setGenericCommand`: validate the expiry, fetch the old value for GET, apply the
/// NX/XX condition, write, and rewrite the propagated command.
fn set_generic(
    ctx: &mut Ctx<'_, '_>,
    argv: &[Bytes],
    key: &Bytes,
    value: &Bytes,
    options: &StringOptions,
) -> Result<SetOutcome, Error> {
    let command = ctx.command;
    let expire_at = options.expire_at_ms(ctx.now_ms(), &command.fullname)?;
    let old = if options.has(OPT_GET) {
        let old = read_string(ctx, key)?;
        ctx.reply_written();
        old
    } else {
        None
    };
    let db = ctx.db();
    let conditional = options.has(OPT_NX) || options.has(OPT_XX);
    // Existence only (in RAM): a cold value is not read, since SET replaces it.
    let found = conditional && ctx.ks.lookup_meta(db, key).is_some();
    if (options.has(OPT_NX) && found) || (options.has(OPT_XX) && !found) {
        return Ok(SetOutcome {
            written: false,
            old,
        });
    }
    match expire_at {
        Some(milliseconds) => {
            ctx.ks
                .set_expiring(db, key, Value::string(value), milliseconds as u64)
        }
        None => ctx
            .ks
            .set(db, key, Value::string(value), options.has(OPT_KEEPTTL)),
    }
    ctx.ks.notify(notify::STRING, "set", db, key);
    if expire_at.is_some() {
        ctx.ks.notify(notify::GENERIC, "expire", db, key);
    }
    match expire_at {
        Some(milliseconds) => {
            ctx.propagate(vec![
                Bytes::from_static(b"SET"),
                key.clone(),
                value.clone(),
                Bytes::from_static(b"PXAT"),
                ms_bytes(milliseconds),
            ]);
        }
        None if options.has(OPT_GET) => {
            // Redis drops every GET word after the value so replicas do not reply to it.
            let rewritten = argv
                .iter()
                .enumerate()
                .filter(|(index, word)| *index < 3 || !args::is(word, "GET"))
                .map(|(_, word)| word.clone())
                .collect();
            ctx.propagate(rewritten);
        }
        None => {}
    }
    Ok(SetOutcome { written: true, old })
}

/// `SETNX key value`: 1 if set, 0 if the key existed.
fn setnx(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let options = StringOptions {
        flags: OPT_NX,
        expire: None,
    };
    let outcome = set_generic(ctx, argv, &argv[1], &argv[2], &options)?;
    Ok(Reply::Integer(outcome.written as i64))
}

/// `SETEX key seconds value`
fn setex(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    set_with_expiry(ctx, argv, OPT_EX)
}

/// `PSETEX key milliseconds value`
fn psetex(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    set_with_expiry(ctx, argv, OPT_PX)
}

/// SETEX and PSETEX: SET with the expiry (in the unit `unit` names) before the value.
fn set_with_expiry(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], unit: u32) -> CmdResult {
    let options = StringOptions {
        flags: unit,
        expire: Some(argv[2].clone()),
    };
    set_generic(ctx, argv, &argv[1], &argv[3], &options)?;
    Ok(Reply::OK)
}

/// `GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds |
/// PXAT unix-time-milliseconds | PERSIST]`: the string, then the expiry change.
fn getex(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let options = StringOptions::parse(&argv[2..], OptionsFor::Getex)?;
    let key = &argv[1];
    let Some(value) = read_string(ctx, key)? else {
        return Ok(Reply::Null);
    };
    let command = ctx.command;
    let expire_at = options.expire_at_ms(ctx.now_ms(), &command.fullname)?;
    ctx.reply_written();
    let db = ctx.db();
    let absolute = options.has(OPT_EXAT) || options.has(OPT_PXAT);
    match expire_at {
        // An absolute time already past deletes the key, as Redis's checkAlreadyExpired.
        Some(milliseconds) if absolute && ctx.already_expired(milliseconds) => {
            let deleted = ctx.ks.delete(db, key);
            debug_assert!(deleted, "the key was just read");
            ctx.ks.notify(notify::GENERIC, "del", db, key);
            ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
        }
        Some(milliseconds) => {
            ctx.ks.set_expire(db, key, milliseconds as u64);
            ctx.ks.notify(notify::GENERIC, "expire", db, key);
            ctx.propagate(vec![
                Bytes::from_static(b"PEXPIREAT"),
                key.clone(),
                ms_bytes(milliseconds),
            ]);
        }
        None if options.has(OPT_PERSIST) && ctx.ks.persist(db, key) => {
            ctx.ks.notify(notify::GENERIC, "persist", db, key);
            ctx.propagate(vec![Bytes::from_static(b"PERSIST"), key.clone()]);
        }
        None => {}
    }
    Ok(Reply::Bulk(value))
}

/// `GETDEL key`: the string, and the key is deleted (propagated as DEL).
fn getdel(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(value) = read_string(ctx, key)? else {
        return Ok(Reply::Null);
    };
    let db = ctx.db();
    ctx.reply_written();
    if ctx.ks.delete(db, key) {
        ctx.ks.notify(notify::GENERIC, "del", db, key);
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
    }
    Ok(Reply::Bulk(value))
}

/// `GETSET key value`: the old string (or null), then SET without options (TTL cleared).
fn getset(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let old = read_string(ctx, &argv[1])?;
    ctx.reply_written();
    let db = ctx.db();
    ctx.ks.set(db, &argv[1], Value::string(&argv[2]), false);
    ctx.ks.notify(notify::STRING, "set", db, &argv[1]);
    ctx.propagate(vec![
        Bytes::from_static(b"SET"),
        argv[1].clone(),
        argv[2].clone(),
    ]);
    Ok(bulk_or_null(old))
}

/// `MGET key [key ...]`: one reply per key; null for a missing key or a non-string.
fn mget(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let replies = argv[1..]
        .iter()
        .map(|key| match ctx.ks.lookup_read(db, key) {
            Some(entry) => match &entry.value {
                Value::Str(bytes) => Reply::bulk_copy(bytes),
                #[allow(unreachable_patterns)]
                _ => Reply::Null,
            },
            None => Reply::Null,
        })
        .collect();
    Ok(Reply::Array(replies))
}

/// `MSET key value [key value ...]`
fn mset(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    mset_generic(ctx, argv, false)?;
    Ok(Reply::OK)
}

/// `MSETNX key value [key value ...]`: 1 if every key was set, 0 (nothing set) if any existed.
fn msetnx(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(mset_generic(ctx, argv, true)? as i64))
}

fn mset_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], nx: bool) -> Result<bool, Error> {
    if argv.len() % 2 == 0 {
        return Err(Error::Arity(ctx.command.fullname.clone()));
    }
    let db = ctx.db();
    if nx
        && argv[1..]
            .chunks(2)
            .any(|pair| ctx.ks.lookup_meta(db, &pair[0]).is_some())
    {
        return Ok(false);
    }
    for pair in argv[1..].chunks_exact(2) {
        ctx.ks.set(db, &pair[0], Value::string(&pair[1]), false);
        ctx.ks.notify(notify::STRING, "set", db, &pair[0]);
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// `INCR key`
fn incr(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    increment_by(ctx, &argv[1], 1)
}

/// `DECR key`
fn decr(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    increment_by(ctx, &argv[1], -1)
}

/// `INCRBY key increment`
fn incrby(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let increment = args::int(&argv[2])?;
    increment_by(ctx, &argv[1], increment)
}

/// `DECRBY key decrement`
fn decrby(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let decrement = args::int(&argv[2])?;
    // Negating i64::MIN overflows, and Redis says so with its own text.
    let increment = decrement
        .checked_neg()
        .ok_or(Error::from(DECREMENT_OVERFLOW))?;
    increment_by(ctx, &argv[1], increment)
}

/// `value + increment`, or Redis's "increment or decrement would overflow": Redis's explicit
/// LLONG_MIN/LLONG_MAX comparisons accept exactly the sums that fit an i64.
fn add_checked(value: i64, increment: i64) -> Result<i64, Error> {
    value.checked_add(increment).ok_or(Error::Overflow)
}

/// Redis's `incrDecrCommand`: the value must be a canonical 64-bit integer; the TTL is kept.
fn increment_by(ctx: &mut Ctx<'_, '_>, key: &[u8], increment: i64) -> CmdResult {
    let db = ctx.db();
    // Parsed where it lies: the counter is on the hot path and needs no copy.
    let current = match ctx.ks.lookup(db, key) {
        None => 0,
        Some(entry) => match &entry.value {
            Value::Str(bytes) => args::int(bytes)?,
            #[allow(unreachable_patterns)]
            _ => return Err(Error::WrongType),
        },
    };
    let value = add_checked(current, increment)?;
    let mut buffer = itoa::Buffer::new();
    ctx.ks.set(
        db,
        key,
        Value::string(buffer.format(value).as_bytes()),
        true,
    );
    ctx.ks.notify(notify::STRING, "incrby", db, key);
    Ok(Reply::Integer(value))
}

/// `INCRBYFLOAT key increment`: x87 long double arithmetic and `%.17Lf` formatting with
/// trailing zeros trimmed, as Redis on x86-64; propagated as `SET key <result> KEEPTTL`.
fn incrbyfloat(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let current = match write_lookup_string(ctx, key)? {
        Some(bytes) => long_double::parse(&bytes).ok_or(Error::NotFloat)?,
        None => long_double::Parsed::Finite(long_double::Extended::ZERO),
    };
    let increment = long_double::parse(&argv[2]).ok_or(Error::NotFloat)?;
    let sum = match (current, increment) {
        (long_double::Parsed::Finite(a), long_double::Parsed::Finite(b)) => a.checked_add(b),
        _ => None,
    };
    let sum = sum.ok_or(Error::from(FLOAT_NAN_OR_INFINITY))?;
    let text = Bytes::from(sum.to_human_string().into_bytes());
    // Redis stores this with createStringObject, so "3000" is embstr, not int.
    let db = ctx.db();
    ctx.ks.set(db, key, Value::string(&text), true);
    if let Some(entry) = ctx.ks.peek(db, key) {
        entry.flags |= FLAG_EMBSTR;
    }
    ctx.ks.notify(notify::STRING, "incrbyfloat", db, key);
    ctx.propagate(vec![
        Bytes::from_static(b"SET"),
        key.clone(),
        text.clone(),
        Bytes::from_static(b"KEEPTTL"),
    ]);
    Ok(Reply::Bulk(text))
}

// ---------------------------------------------------------------------------------------------
// Byte-range commands
// ---------------------------------------------------------------------------------------------

/// `APPEND key value`: the new length. An existing string becomes `raw`, as in Redis.
fn append(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (key, suffix) = (&argv[1], &argv[2]);
    let limit = proto_max_bulk_len(ctx);
    let db = ctx.db();
    let Some(entry) = ctx.ks.lookup(db, key) else {
        // A new key takes the argument as it is (Redis's tryObjectEncoding, so not raw).
        ctx.ks.set(db, key, Value::string(suffix), false);
        ctx.ks.notify(notify::STRING, "append", db, key);
        return Ok(Reply::Integer(suffix.len() as i64));
    };
    let length = match &mut entry.value {
        Value::Str(bytes) => {
            check_string_length(bytes.len() as u64, suffix.len() as u64, limit)?;
            bytes.append(suffix);
            bytes.len()
        }
        #[allow(unreachable_patterns)]
        _ => return Err(Error::WrongType),
    };
    entry.flags |= FLAG_RAW;
    ctx.ks.signal_modified(db, key);
    ctx.ks.notify(notify::STRING, "append", db, key);
    Ok(Reply::Integer(length as i64))
}

/// `STRLEN key`: the length, 0 for a missing key.
fn strlen(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, &argv[1]) {
        None => Ok(Reply::Integer(0)),
        Some(entry) => match &entry.value {
            Value::Str(bytes) => Ok(Reply::Integer(bytes.len() as i64)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

/// Redis's GETRANGE index rules: negative indexes count from the end, both are clamped, and an
/// empty range is `None`. Returns the inclusive byte range.
fn range_bounds(start: i64, end: i64, length: usize) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let length_signed = length as i64;
    let mut start = if start < 0 {
        length_signed + start
    } else {
        start
    };
    let mut end = if end < 0 { length_signed + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= length_signed {
        end = length_signed - 1;
    }
    if start > end || length == 0 {
        return None;
    }
    debug_assert!(0 <= start && start <= end && end < length_signed);
    Some((start as usize, end as usize))
}

/// `GETRANGE key start end` (and its old name `SUBSTR key start end`).
fn getrange(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let start = args::int(&argv[2])?;
    let end = args::int(&argv[3])?;
    let db = ctx.db();
    let empty = Reply::Bulk(Bytes::new());
    match ctx.ks.lookup_read(db, &argv[1]) {
        None => Ok(empty),
        Some(entry) => match &entry.value {
            Value::Str(bytes) => Ok(match range_bounds(start, end, bytes.len()) {
                Some((first, last)) => Reply::bulk_copy(&bytes[first..=last]),
                None => empty,
            }),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

/// `SETRANGE key offset value`: overwrites from `offset`, zero-padding; the new length.
fn setrange(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (key, patch) = (&argv[1], &argv[3]);
    let offset = args::int(&argv[2])?;
    if offset < 0 {
        return Err(Error::from(OFFSET_OUT_OF_RANGE));
    }
    let offset = offset as u64;
    let limit = proto_max_bulk_len(ctx);
    let db = ctx.db();
    let Some(entry) = ctx.ks.lookup(db, key) else {
        if patch.is_empty() {
            return Ok(Reply::Integer(0));
        }
        check_string_length(offset, patch.len() as u64, limit)?;
        let mut created = vec![0u8; offset as usize + patch.len()];
        created[offset as usize..].copy_from_slice(patch);
        let length = created.len();
        ctx.ks
            .set(db, key, Value::Str(CompactBytes::from_vec(created)), false);
        if let Some(entry) = ctx.ks.peek(db, key) {
            entry.flags |= FLAG_RAW;
        }
        ctx.ks.notify(notify::STRING, "setrange", db, key);
        return Ok(Reply::Integer(length as i64));
    };
    let length = match &mut entry.value {
        Value::Str(bytes) => {
            if patch.is_empty() {
                return Ok(Reply::Integer(bytes.len() as i64));
            }
            check_string_length(offset, patch.len() as u64, limit)?;
            let offset = offset as usize;
            let patched = bytes.to_mut();
            if patched.len() < offset + patch.len() {
                patched.resize(offset + patch.len(), 0);
            }
            patched[offset..offset + patch.len()].copy_from_slice(patch);
            bytes.len()
        }
        #[allow(unreachable_patterns)]
        _ => return Err(Error::WrongType),
    };
    entry.flags |= FLAG_RAW;
    ctx.ks.signal_modified(db, key);
    ctx.ks.notify(notify::STRING, "setrange", db, key);
    Ok(Reply::Integer(length as i64))
}

// ---------------------------------------------------------------------------------------------
// LCS
// ---------------------------------------------------------------------------------------------

/// One matched range of an LCS walk: inclusive byte ranges in each string and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LcsMatch {
    a: (u32, u32),
    b: (u32, u32),
    length: u32,
}

/// The LCS of two strings and, when asked, its matched ranges (from the end, as Redis emits
/// them), filtered by `min_match_length`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LcsResult {
    common: Vec<u8>,
    matches: Vec<LcsMatch>,
}

/// Redis's vanilla dynamic-programming LCS. Cost: a table of (|a|+1)*(|b|+1) u32 cells and as
/// many steps while the shard locks are held; the caller refuses tables larger than
/// proto-max-bulk-len bytes exactly as Redis does (so at most 512MB by default), and nothing
/// smaller. The walk back is a port of Redis's loop, range emission quirks included.
fn lcs_compute(
    a: &[u8],
    b: &[u8],
    min_match_length: u64,
    with_ranges: bool,
) -> Result<LcsResult, Error> {
    let columns = b.len() + 1;
    let cells = (a.len() + 1) * columns;
    // Redis uses ztrymalloc here and answers an error rather than dying when memory is short.
    let mut table: Vec<u32> = Vec::new();
    table
        .try_reserve_exact(cells)
        .map_err(|_| Error::from(LCS_ALLOCATION_FAILED))?;
    table.resize(cells, 0);
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * columns + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * columns + j - 1] + 1
            } else {
                table[(i - 1) * columns + j].max(table[i * columns + j - 1])
            };
        }
    }
    let total = table[a.len() * columns + b.len()] as usize;
    let mut common = vec![0u8; total];
    let mut matches = Vec::new();
    let (mut i, mut j, mut index) = (a.len(), b.len(), total);
    let unset = a.len();
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (unset, 0usize, 0usize, 0usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[index - 1] = a[i - 1];
            if a_start == unset {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            index -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * columns + j] > table[i * columns + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != unset {
                emit = true;
            }
        }
        if emit {
            // Redis computes the length with unsigned wrap-around; a range is always set here.
            let length = a_end.wrapping_sub(a_start).wrapping_add(1) as u32;
            if with_ranges && (min_match_length == 0 || length as u64 >= min_match_length) {
                matches.push(LcsMatch {
                    a: (a_start as u32, a_end as u32),
                    b: (b_start as u32, b_end as u32),
                    length,
                });
            }
            a_start = unset;
        }
    }
    debug_assert_eq!(index, 0, "the walk back fills every byte of the LCS");
    Ok(LcsResult { common, matches })
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]`
fn lcs(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let mut strings = [Bytes::new(), Bytes::new()];
    for (slot, key) in strings.iter_mut().zip(&argv[1..3]) {
        if let Some(entry) = ctx.ks.lookup_read(db, key) {
            match &entry.value {
                Value::Str(bytes) => *slot = Bytes::copy_from_slice(bytes),
                #[allow(unreachable_patterns)]
                _ => return Err(Error::from(LCS_NOT_STRINGS)),
            }
        }
    }
    let (mut want_index, mut want_length, mut with_match_length) = (false, false, false);
    let mut min_match_length = 0i64;
    let mut index = 3;
    while index < argv.len() {
        let option = &argv[index];
        let more = index + 1 < argv.len();
        if args::is(option, "IDX") {
            want_index = true;
        } else if args::is(option, "LEN") {
            want_length = true;
        } else if args::is(option, "WITHMATCHLEN") {
            with_match_length = true;
        } else if args::is(option, "MINMATCHLEN") && more {
            min_match_length = args::int(&argv[index + 1])?.max(0);
            index += 1;
        } else {
            return Err(Error::Syntax);
        }
        index += 1;
    }
    if want_index && want_length {
        return Err(Error::from(LCS_IDX_AND_LEN));
    }
    let [a, b] = strings;
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return Err(Error::from(LCS_TOO_LONG));
    }
    let cells = (a.len() as u128 + 1) * (b.len() as u128 + 1);
    if cells * 4 > proto_max_bulk_len(ctx).max(0) as u128 {
        return Err(Error::from(LCS_TABLE_TOO_BIG));
    }
    let result = lcs_compute(&a, &b, min_match_length as u64, want_index)?;
    if want_index {
        let ranges = result
            .matches
            .iter()
            .map(|found| {
                let mut range = vec![
                    Reply::Array(vec![
                        Reply::Integer(found.a.0 as i64),
                        Reply::Integer(found.a.1 as i64),
                    ]),
                    Reply::Array(vec![
                        Reply::Integer(found.b.0 as i64),
                        Reply::Integer(found.b.1 as i64),
                    ]),
                ];
                if with_match_length {
                    range.push(Reply::Integer(found.length as i64));
                }
                Reply::Array(range)
            })
            .collect();
        return Ok(Reply::Map(vec![
            (Reply::bulk("matches"), Reply::Array(ranges)),
            (
                Reply::bulk("len"),
                Reply::Integer(result.common.len() as i64),
            ),
        ]));
    }
    if want_length {
        return Ok(Reply::Integer(result.common.len() as i64));
    }
    Ok(Reply::Bulk(Bytes::from(result.common)))
}

#[cfg(test)]
mod tests {
    use super::long_double::{parse, Parsed};
    use super::*;
    use crate::testing::words;

    #[test]
    fn set_options_follow_redis_conflict_rules() {
        let parse_set = |line: &str| StringOptions::parse(&words(line), OptionsFor::Set);
        let parse_getex = |line: &str| StringOptions::parse(&words(line), OptionsFor::Getex);
        assert_eq!(
            parse_set("NX GET EX 10").unwrap().flags,
            OPT_NX | OPT_GET | OPT_EX
        );
        assert_eq!(parse_set("nx nx").unwrap().flags, OPT_NX);
        assert_eq!(parse_set("EX 10 EX 20").unwrap().expire.unwrap(), "20");
        for bad in [
            "NX XX",
            "XX NX",
            "EX 1 PX 1",
            "PX 1 EXAT 1",
            "EX 1 KEEPTTL",
            "KEEPTTL PXAT 1",
            "EX",
            "PERSIST",
            "FOO",
        ] {
            assert_eq!(parse_set(bad), Err(Error::Syntax), "{bad}");
        }
        assert_eq!(parse_getex("PERSIST").unwrap().flags, OPT_PERSIST);
        for bad in ["NX", "GET", "KEEPTTL", "PERSIST EX 1", "EX 1 PERSIST", "PX"] {
            assert_eq!(parse_getex(bad), Err(Error::Syntax), "{bad}");
        }
    }

    #[test]
    fn expiry_values_validate_like_redis() {
        let invalid = Err(Error::InvalidExpire("set".into()));
        assert_eq!(expire_at_ms(b"10", true, true, 1000, "set"), Ok(11_000));
        assert_eq!(expire_at_ms(b"10", false, false, 1000, "set"), Ok(10));
        assert_eq!(expire_at_ms(b"0", true, true, 1000, "set"), invalid);
        assert_eq!(expire_at_ms(b"-1", false, true, 1000, "set"), invalid);
        assert_eq!(
            expire_at_ms(b"9223372036854775807", true, false, 0, "set"),
            invalid
        );
        assert_eq!(
            expire_at_ms(b"9223372036854775807", false, true, 1, "set"),
            invalid
        );
        assert_eq!(
            expire_at_ms(b"x", true, true, 0, "set"),
            Err(Error::NotInteger)
        );
    }

    #[test]
    fn getrange_bounds_match_redis() {
        assert_eq!(range_bounds(0, 4, 11), Some((0, 4)));
        assert_eq!(range_bounds(-5, -1, 11), Some((6, 10)));
        assert_eq!(range_bounds(-1, -5, 11), None);
        assert_eq!(range_bounds(-100, -50, 11), Some((0, 0)));
        assert_eq!(range_bounds(5, 3, 11), None);
        assert_eq!(range_bounds(0, 100, 11), Some((0, 10)));
        assert_eq!(range_bounds(0, -1, 0), None);
        assert_eq!(range_bounds(i64::MIN, i64::MAX, 3), Some((0, 2)));
    }

    fn human(text: &str) -> Option<String> {
        match parse(text.as_bytes())? {
            Parsed::Finite(value) => Some(value.to_human_string()),
            Parsed::Infinite => Some("inf".into()),
        }
    }

    fn sum(a: &str, b: &str) -> Option<String> {
        match (parse(a.as_bytes())?, parse(b.as_bytes())?) {
            (Parsed::Finite(a), Parsed::Finite(b)) => Some(a.checked_add(b)?.to_human_string()),
            _ => None,
        }
    }

    #[test]
    fn long_double_parsing_and_printing_match_redis() {
        // Expected strings are real Redis 7.0.15 INCRBYFLOAT replies on x86-64.
        assert_eq!(human("1e20").unwrap(), "100000000000000000000");
        assert_eq!(human("1e-20").unwrap(), "0");
        assert_eq!(human("-0").unwrap(), "0");
        assert_eq!(human("0x10").unwrap(), "16");
        assert_eq!(human("0x1p3").unwrap(), "8");
        assert_eq!(human("5.0e3").unwrap(), "5000");
        assert_eq!(human(".5").unwrap(), "0.5");
        assert_eq!(human("1.").unwrap(), "1");
        assert!(human("1.5e300")
            .unwrap()
            .starts_with("15000000000000000000498001098614721663623792391186739285512197"));
        assert!(human("1e4000")
            .unwrap()
            .starts_with("99999999999999999999654638730996237849324925835069576313015083"));
        for bad in [
            "1e5000", "1e-5000", " 1", "1 ", "1e", ".", "", "nan", "0x", "1_0", "abc",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(human("0e-5000").unwrap(), "0");
        assert_eq!(parse(b"-inf"), Some(Parsed::Infinite));
    }

    #[test]
    fn long_double_addition_matches_redis() {
        assert_eq!(sum("0.1", "0.2").unwrap(), "0.3");
        assert_eq!(sum("10.5", "0.1").unwrap(), "10.6");
        assert_eq!(sum("0.3", "-0.3").unwrap(), "0");
        assert_eq!(sum("1e4932", "1e4932"), None);
        assert_eq!(sum("3", "1.5").unwrap(), "4.5");
    }

    #[test]
    fn lcs_matches_redis_examples() {
        let result = lcs_compute(b"ohmytext", b"mynewtext", 0, true).unwrap();
        assert_eq!(result.common, b"mytext");
        let ranges: Vec<_> = result
            .matches
            .iter()
            .map(|m| (m.a, m.b, m.length))
            .collect();
        assert_eq!(ranges, vec![((4, 7), (5, 8), 4), ((2, 3), (0, 1), 2)]);
        let filtered = lcs_compute(b"ohmytext", b"mynewtext", 4, true).unwrap();
        assert_eq!(filtered.matches.len(), 1);
        assert!(lcs_compute(b"", b"abc", 0, true).unwrap().common.is_empty());
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

    #[test]
    fn effects_are_rewritten_as_redis_propagates_them() {
        let effects = propagated(&[
            "set a 1 ex 100",
            "set b 1 px 100000 nx",
            "set c 1 exat 2000",
            "set d 1 pxat 3000 get",
            "set e 1 keepttl",
            "set e 2 xx get keepttl GET",
            "setex f 100 v",
            "psetex g 100 v",
            "setex h 0 v",
            "set a 1 nx",
            "getex a ex 10",
            "getex a persist",
            "getex a persist",
            "getex a",
            "getex a exat 1",
            "getdel b",
            "getdel b",
            "incrbyfloat i 1.5",
            "getset j 1",
            "setnx k 1",
            "incr k",
            "append k x",
            "setrange k 0 y",
            "set x 1 pxat 1",
            "get x",
            "set y 1 ex 9223372036854775",
            "getex y ex 0",
            "decrby k 9223372036854775808",
        ]);
        let expected = [
            "SELECT 0",
            "SET a 1 PXAT 1100000",
            "SET b 1 PXAT 1100000",
            "SET c 1 PXAT 2000000",
            "SET d 1 PXAT 3000",
            "set e 1 keepttl",
            "set e 2 xx keepttl",
            "SET f v PXAT 1100000",
            "SET g v PXAT 1000100",
            "PEXPIREAT a 1010000",
            "PERSIST a",
            "DEL a",
            "DEL b",
            "SET i 1.5 KEEPTTL",
            "SET j 1",
            "setnx k 1",
            "incr k",
            "append k x",
            "setrange k 0 y",
            "SET x 1 PXAT 1",
            "DEL x",
        ];
        assert_eq!(effects, expected);
    }
}
