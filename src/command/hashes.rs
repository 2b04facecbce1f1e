//! The hash family: HSET, HSETNX, HGET, HMGET, HMSET, HGETALL, HDEL, HLEN, HSTRLEN, HEXISTS,
//! HKEYS, HVALS, HINCRBY, HINCRBYFLOAT, HRANDFIELD and HSCAN, with Redis 7.0.15's replies,
//! error texts and encodings.
//!
//! Handlers parse their arguments first (so a bad number wins over WRONGTYPE, as in Redis),
//! then run one operation on the [`Hash`] through [`modify`] or [`read`], which own the
//! keyspace rules: a missing key reads as empty, a write creates the key only when it stores
//! something, and a hash left empty is deleted. HINCRBYFLOAT computes in x87 long double
//! ([`crate::long_double`], as Redis on x86-64) and propagates as
//! `HSET key field <result>`; HRANDFIELD is a read.

use super::args;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::keyspace::notify;
use crate::long_double::{self, Extended, Parsed};
use crate::protocol::reply::BulkArray;
use crate::protocol::Reply;
use crate::types::hash::{Hash, Limits};
use crate::types::Value;
use bytes::Bytes;
use rand::Rng;

const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
const INCREMENT_NAN_OR_INFINITY: &str = "ERR value is NaN or Infinity";
const RESULT_NAN_OR_INFINITY: &str = "ERR increment would produce NaN or Infinity";
const COUNT_OUT_OF_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
const VALUE_OUT_OF_RANGE: &str = "ERR value is out of range";
const COUNT_TOO_LARGE: &str = "ERR count is too large";

/// HRANDFIELD with a negative count builds its whole reply in memory, where Redis streams it
/// into the output buffer; past this many picks Strata refuses (a deliberate difference, so one
/// command cannot allocate without bound).
const RANDOM_FIELDS_MAX: u64 = 1 << 20;

pub static COMMANDS: &[Spec] = &[
    Spec::new("hset", hset, Lock::Keys),
    Spec::new("hmset", hmset, Lock::Keys),
    Spec::new("hsetnx", hsetnx, Lock::Keys),
    Spec::new("hget", hget, Lock::Keys),
    Spec::new("hmget", hmget, Lock::Keys),
    Spec::new("hgetall", hgetall, Lock::Keys),
    Spec::new("hkeys", hkeys, Lock::Keys),
    Spec::new("hvals", hvals, Lock::Keys),
    Spec::new("hdel", hdel, Lock::Keys),
    Spec::new("hlen", hlen, Lock::Keys),
    Spec::new("hstrlen", hstrlen, Lock::Keys),
    Spec::new("hexists", hexists, Lock::Keys),
    Spec::new("hincrby", hincrby, Lock::Keys),
    Spec::new("hincrbyfloat", hincrbyfloat, Lock::Keys),
    Spec::new("hrandfield", hrandfield, Lock::Keys),
    Spec::new("hscan", hscan, Lock::Keys),
];

// ---------------------------------------------------------------------------------------------
// Keyspace access
// ---------------------------------------------------------------------------------------------

/// The listpack thresholds, read at write time as Redis does.
fn limits(ctx: &Ctx<'_, '_>) -> Limits {
    let config = &ctx.server.config;
    Limits {
        entries_max: usize::try_from(crate::config_int!(config, "hash-max-listpack-entries"))
            .unwrap_or(0),
        value_bytes_max: usize::try_from(crate::config_int!(config, "hash-max-listpack-value"))
            .unwrap_or(0),
    }
}

/// The hash at `key` for a read command (counts keyspace hits and misses); None when missing.
fn read<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'c Hash>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, key) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Hash(hash) => Ok(Some(hash)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

/// Runs `operation` on the hash at `key` for a write command. The operation returns its
/// result and whether it changed the hash. A missing key is an empty hash that is stored only
/// if `create` and the operation left it non-empty; an emptied hash deletes the key.
fn modify<T>(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    create: bool,
    operation: impl FnOnce(&mut Hash) -> Result<(T, bool), Error>,
) -> Result<T, Error> {
    let db = ctx.db();
    let Some(entry) = ctx.ks.lookup(db, key) else {
        let mut hash = Hash::new();
        let (result, changed) = operation(&mut hash)?;
        if create && changed && !hash.is_empty() {
            ctx.ks.set(db, key, Value::Hash(Box::new(hash)), false);
        }
        return Ok(result);
    };
    let hash = match &mut entry.value {
        Value::Hash(hash) => hash,
        #[allow(unreachable_patterns)]
        _ => return Err(Error::WrongType),
    };
    let (result, changed) = operation(hash)?;
    let emptied = hash.is_empty();
    if emptied {
        ctx.ks.delete(db, key);
    } else if changed {
        ctx.ks.signal_modified(db, key);
    }
    Ok(result)
}

fn bulk_or_null(value: Option<&[u8]>) -> Reply {
    value.map_or(Reply::Null, Reply::bulk_copy)
}

// ---------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------

/// Sets every `field value` pair of `pairs`; the number of new fields. Arguments too long for
/// a listpack convert the hash before anything is written (`hashTypeTryConversion`).
pub(crate) fn set_pairs(hash: &mut Hash, pairs: &[Bytes], limits: Limits) -> i64 {
    debug_assert!(pairs.len() % 2 == 0);
    hash.fit_lengths(pairs.iter().map(Bytes::len), limits);
    let mut created = 0;
    for pair in pairs.chunks_exact(2) {
        created += i64::from(hash.set(&pair[0], &pair[1], limits));
    }
    created
}

/// `HSET key field value [field value ...]`: the number of fields created.
fn hset(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() % 2 == 1 {
        return Err(Error::Arity("hset".to_string()));
    }
    let limits = limits(ctx);
    let created = modify(ctx, &argv[1], true, |hash| {
        Ok((set_pairs(hash, &argv[2..], limits), true))
    })?;
    ctx.reply_written();
    let db = ctx.db();
    ctx.ks.notify(notify::HASH, "hset", db, &argv[1]);
    Ok(Reply::Integer(created))
}

/// `HMSET key field value [field value ...]`: HSET replying OK (deprecated alias).
fn hmset(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() % 2 == 1 {
        return Err(Error::Arity("hmset".to_string()));
    }
    let limits = limits(ctx);
    modify(ctx, &argv[1], true, |hash| {
        Ok((set_pairs(hash, &argv[2..], limits), true))
    })?;
    ctx.reply_written();
    let db = ctx.db();
    ctx.ks.notify(notify::HASH, "hset", db, &argv[1]);
    Ok(Reply::OK)
}

/// `HSETNX key field value`: 1 when the field was set, 0 when it already existed (and then
/// nothing changes, not even the encoding).
fn hsetnx(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (field, value) = (&argv[2], &argv[3]);
    let limits = limits(ctx);
    let created = modify(ctx, &argv[1], true, |hash| {
        if hash.contains(field) {
            return Ok((false, false));
        }
        Ok((hash.set(field, value, limits), true))
    })?;
    ctx.reply_written();
    if created {
        let db = ctx.db();
        ctx.ks.notify(notify::HASH, "hset", db, &argv[1]);
    }
    Ok(Reply::Integer(i64::from(created)))
}

/// `HDEL key field [field ...]`: the number of fields removed; the last one deletes the key.
fn hdel(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let removed = modify(ctx, &argv[1], false, |hash| {
        let mut removed = 0;
        for field in &argv[2..] {
            if hash.remove(field) {
                removed += 1;
                // Redis stops at the emptied hash: the key is about to go.
                if hash.is_empty() {
                    break;
                }
            }
        }
        Ok((removed, removed > 0))
    })?;
    if removed > 0 {
        let db = ctx.db();
        ctx.ks.notify(notify::HASH, "hdel", db, &argv[1]);
        if !ctx.ks.exists(db, &argv[1]) {
            ctx.ks.notify(notify::GENERIC, "del", db, &argv[1]);
        }
    }
    Ok(Reply::Integer(removed))
}

/// `HINCRBY key field increment`: the new value. Propagated verbatim.
fn hincrby(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let field = &argv[2];
    let increment = args::int(&argv[3])?;
    let limits = limits(ctx);
    let value = modify(ctx, &argv[1], true, |hash| {
        let value = increment_integer(hash.get(field), increment)?;
        hash.set(field, value.to_string().as_bytes(), limits);
        Ok((value, true))
    })?;
    ctx.reply_written();
    let db = ctx.db();
    ctx.ks.notify(notify::HASH, "hincrby", db, &argv[1]);
    Ok(Reply::Integer(value))
}

/// The pure step of HINCRBY: `current + increment` with Redis's errors.
fn increment_integer(current: Option<&[u8]>, increment: i64) -> Result<i64, Error> {
    let current = match current {
        Some(text) => {
            crate::protocol::parser::parse_i64(text).ok_or(Error::from(HASH_NOT_INTEGER))?
        }
        None => 0,
    };
    current.checked_add(increment).ok_or(Error::Overflow)
}

/// `HINCRBYFLOAT key field increment`: the new value as text, computed in x87 long double as
/// Redis does on x86-64; propagated as `HSET key field <result>` so replicas do not redo the
/// float arithmetic.
fn hincrbyfloat(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (key, field) = (&argv[1], &argv[2]);
    let increment = match long_double::parse(&argv[3]).ok_or(Error::NotFloat)? {
        Parsed::Finite(increment) => increment,
        Parsed::Infinite => return Err(Error::from(INCREMENT_NAN_OR_INFINITY)),
    };
    let limits = limits(ctx);
    let text = modify(ctx, key, true, |hash| {
        let text = increment_float(hash.get(field), increment)?;
        hash.set(field, text.as_bytes(), limits);
        Ok((text, true))
    })?;
    ctx.reply_written();
    let db = ctx.db();
    ctx.ks.notify(notify::HASH, "hincrbyfloat", db, key);
    let text = Bytes::from(text.into_bytes());
    ctx.propagate(vec![
        Bytes::from_static(b"HSET"),
        key.clone(),
        field.clone(),
        text.clone(),
    ]);
    Ok(Reply::Bulk(text))
}

/// The pure step of HINCRBYFLOAT: `current + increment` (`string2ld` on the stored value,
/// one long double addition) printed as `ld2string(LD_STR_HUMAN)`.
fn increment_float(current: Option<&[u8]>, increment: Extended) -> Result<String, Error> {
    let current = match current {
        Some(text) => long_double::parse(text).ok_or(Error::from(HASH_NOT_FLOAT))?,
        None => Parsed::Finite(Extended::ZERO),
    };
    // A stored "inf" parses (strtold reads it), and then the sum is infinite.
    let sum = match current {
        Parsed::Finite(current) => current.checked_add(increment),
        Parsed::Infinite => None,
    };
    let sum = sum.ok_or(Error::from(RESULT_NAN_OR_INFINITY))?;
    Ok(sum.to_human_string())
}

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

/// `HGET key field`: the value or null.
fn hget(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let hash = read(ctx, &argv[1])?;
    Ok(bulk_or_null(hash.and_then(|hash| hash.get(&argv[2]))))
}

/// `HMGET key field [field ...]`: one value or null per field.
fn hmget(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let hash = read(ctx, &argv[1])?;
    let values = argv[2..]
        .iter()
        .map(|field| bulk_or_null(hash.and_then(|hash| hash.get(field))))
        .collect();
    Ok(Reply::Array(values))
}

/// `HLEN key`: the number of fields.
fn hlen(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let hash = read(ctx, &argv[1])?;
    Ok(Reply::Integer(hash.map_or(0, |hash| hash.len() as i64)))
}

/// `HSTRLEN key field`: the value's length, 0 when missing.
fn hstrlen(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let hash = read(ctx, &argv[1])?;
    let length = hash
        .and_then(|hash| hash.get(&argv[2]))
        .map_or(0, <[u8]>::len);
    Ok(Reply::Integer(length as i64))
}

/// `HEXISTS key field`: 1 or 0.
fn hexists(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let hash = read(ctx, &argv[1])?;
    let exists = hash.is_some_and(|hash| hash.contains(&argv[2]));
    Ok(Reply::Integer(i64::from(exists)))
}

/// `HKEYS key`: every field, in the encoding's order.
fn hkeys(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let Some(hash) = read(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let mut fields = BulkArray::new(hash.len());
    hash.for_each(|field, _| fields.push(field.as_slice()));
    Ok(fields.finish())
}

/// `HVALS key`: every value, in the encoding's order.
fn hvals(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let Some(hash) = read(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let mut values = BulkArray::new(hash.len());
    hash.for_each(|_, value| values.push(value.as_slice()));
    Ok(values.finish())
}

/// `HGETALL key`: a map of fields to values (a flat array in RESP2).
fn hgetall(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mut pairs = Vec::new();
    if let Some(hash) = read(ctx, &argv[1])? {
        pairs.reserve(hash.len());
        hash.for_each(|field, value| {
            pairs.push((
                Reply::bulk_copy(field.as_slice()),
                Reply::bulk_copy(value.as_slice()),
            ))
        });
    }
    Ok(Reply::Map(pairs))
}

// ---------------------------------------------------------------------------------------------
// HRANDFIELD
// ---------------------------------------------------------------------------------------------

/// `HRANDFIELD key [count [WITHVALUES]]`: one random field (null when the key is missing), or
/// with a count: distinct fields (positive), or fields that may repeat (negative).
fn hrandfield(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() < 3 {
        let mut rng = crate::util::random();
        let hash = read(ctx, &argv[1])?;
        let field = hash
            .and_then(|hash| hash.random(&mut rng))
            .map(|(field, _)| field);
        return Ok(bulk_or_null(field));
    }
    let count = args::int(&argv[2])?;
    if count == i64::MIN {
        return Err(Error::from(COUNT_OUT_OF_RANGE));
    }
    let with_values = match argv.len() {
        3 => false,
        4 if args::is(&argv[3], "withvalues") => true,
        _ => return Err(Error::Syntax),
    };
    // RESP2's flat reply holds two entries per pick, which Redis keeps within a long.
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(Error::from(VALUE_OUT_OF_RANGE));
    }
    let resp3 = ctx.session.resp3;
    let Some(hash) = read(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picks = random_pairs(hash, count, &mut crate::util::random())?;
    Ok(render_pairs(picks, with_values, resp3))
}

/// The pure part of HRANDFIELD with a count, following Redis's cases: a negative count picks
/// with repeats; a count at least the size returns the whole hash in order; otherwise distinct
/// random fields.
pub(crate) fn random_pairs(
    hash: &Hash,
    count: i64,
    rng: &mut impl Rng,
) -> Result<Vec<(Bytes, Bytes)>, Error> {
    let size = hash.len();
    assert!(size > 0, "the keyspace holds no empty hash");
    let copy = |(field, value): (&[u8], &[u8])| {
        (Bytes::copy_from_slice(field), Bytes::copy_from_slice(value))
    };
    if count == 0 {
        return Ok(Vec::new());
    }
    if count < 0 || count == 1 {
        let picks = count.unsigned_abs();
        if picks > RANDOM_FIELDS_MAX {
            return Err(Error::from(COUNT_TOO_LARGE));
        }
        let mut pairs = Vec::with_capacity(picks as usize);
        for _ in 0..picks {
            let pair = hash.random(rng).ok_or(Error::NoSuchKey)?;
            pairs.push(copy(pair));
        }
        return Ok(pairs);
    }
    let mut all = Vec::with_capacity(size);
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count >= size || count.saturating_mul(3) > size || hash.is_listpack() {
        hash.for_each(|field, value| all.push(copy((field.as_slice(), value.as_slice()))));
        if count >= size {
            return Ok(all);
        }
        let chosen = rand::seq::index::sample(rng, size, count);
        return Ok(chosen.into_iter().map(|index| all[index].clone()).collect());
    }
    // A small sample of a large table: random picks until enough distinct fields, as Redis's
    // CASE 4. Each try succeeds with probability >= 2/3, so the bound is never reached in
    // practice; past it the remaining fields come from a full copy.
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut pairs = Vec::with_capacity(count);
    let tries_max = count.saturating_mul(64);
    for _ in 0..tries_max {
        if pairs.len() == count {
            break;
        }
        let (field, value) = hash.random(rng).ok_or(Error::NoSuchKey)?;
        if seen.insert(field.to_vec()) {
            pairs.push(copy((field, value)));
        }
    }
    if pairs.len() < count {
        hash.for_each(|field, value| {
            if pairs.len() < count && seen.insert(field.to_vec()) {
                pairs.push(copy((field.as_slice(), value.as_slice())));
            }
        });
    }
    debug_assert_eq!(pairs.len(), count);
    Ok(pairs)
}

/// HRANDFIELD's reply: fields only; or with values, flat in RESP2 and pairs in RESP3.
fn render_pairs(pairs: Vec<(Bytes, Bytes)>, with_values: bool, resp3: bool) -> Reply {
    let mut items = Vec::with_capacity(pairs.len() * if with_values { 2 } else { 1 });
    for (field, value) in pairs {
        match (with_values, resp3) {
            (false, _) => items.push(Reply::Bulk(field)),
            (true, false) => {
                items.push(Reply::Bulk(field));
                items.push(Reply::Bulk(value));
            }
            (true, true) => items.push(Reply::Array(vec![Reply::Bulk(field), Reply::Bulk(value)])),
        }
    }
    Reply::Array(items)
}

// ---------------------------------------------------------------------------------------------
// HSCAN
// ---------------------------------------------------------------------------------------------

/// HSCAN's options: COUNT and MATCH (no TYPE).
fn parse_scan_options(options: &[Bytes]) -> Result<(usize, Option<Bytes>), Error> {
    args::ScanOptions::parse(options, false).map(|parsed| (parsed.count, parsed.pattern))
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: the next cursor and a flat list of
/// field, value pairs. A listpack returns everything with cursor 0 whatever the cursor was.
fn hscan(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let cursor = args::scan_cursor(&argv[2])?;
    let Some(hash) = read(ctx, &argv[1])? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let (count, pattern) = parse_scan_options(&argv[3..])?;
    let (next, pairs) = scan_pairs(hash, cursor, count);
    let mut items = Vec::with_capacity(pairs.len() * 2);
    for (field, value) in pairs {
        if let Some(pattern) = &pattern {
            if !crate::util::glob_match(pattern, &field, false) {
                continue;
            }
        }
        items.push(Reply::Bulk(field));
        items.push(Reply::Bulk(value));
    }
    Ok(scan_reply(next, items))
}

/// Redis's step 2 of `scanGenericCommand` for a hash: dict steps until `count` pairs are
/// gathered, the walk ends, or `20 * count` steps are spent (Redis doubles COUNT for hashes).
fn scan_pairs(hash: &Hash, mut cursor: u64, count: usize) -> (u64, Vec<(Bytes, Bytes)>) {
    let mut pairs = Vec::new();
    let steps_max = count.saturating_mul(20).max(1);
    for _ in 0..steps_max {
        cursor = hash.scan(cursor, |field, value| {
            pairs.push((
                Bytes::copy_from_slice(field.as_slice()),
                Bytes::copy_from_slice(value.as_slice()),
            ));
        });
        // A listpack's scan is complete in one call and always answers 0.
        if cursor == 0 || pairs.len() >= count {
            break;
        }
    }
    debug_assert!(!hash.is_listpack() || cursor == 0);
    (cursor, pairs)
}

fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::bulk(cursor.to_string()), Reply::Array(items)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::words;
    use rand::SeedableRng;

    #[test]
    fn integer_increments_follow_redis_errors() {
        assert_eq!(increment_integer(None, 5), Ok(5));
        assert_eq!(increment_integer(Some(b"-3"), 5), Ok(2));
        for bad in [&b"abc"[..], b"1.5", b" 1", b"01", b"", b"-0"] {
            assert_eq!(
                increment_integer(Some(bad), 1),
                Err(Error::from(HASH_NOT_INTEGER))
            );
        }
        assert_eq!(
            increment_integer(Some(b"9223372036854775807"), 1),
            Err(Error::Overflow)
        );
        assert_eq!(
            increment_integer(Some(b"-9223372036854775808"), -1),
            Err(Error::Overflow)
        );
    }

    fn float(text: &str) -> Extended {
        match long_double::parse(text.as_bytes()) {
            Some(Parsed::Finite(value)) => value,
            other => panic!("{text} is not finite: {other:?}"),
        }
    }

    #[test]
    fn float_increments_match_redis_long_double() {
        // Expected strings are real Redis 7.0.15 HINCRBYFLOAT replies on x86-64.
        let add = |current: Option<&str>, increment: &str| {
            increment_float(current.map(str::as_bytes), float(increment))
        };
        assert_eq!(add(None, "10.5").as_deref(), Ok("10.5"));
        assert_eq!(add(Some("10.5"), "0.1").as_deref(), Ok("10.6"));
        assert_eq!(add(Some("0.1"), "0.2").as_deref(), Ok("0.3"));
        assert_eq!(add(Some("1.5"), "-1.5").as_deref(), Ok("0"));
        assert_eq!(add(Some("0x20"), "1").as_deref(), Ok("33"));
        assert_eq!(add(Some("abc"), "1"), Err(Error::from(HASH_NOT_FLOAT)));
        assert_eq!(add(Some("1 "), "1"), Err(Error::from(HASH_NOT_FLOAT)));
        assert_eq!(
            add(Some("inf"), "1"),
            Err(Error::from(RESULT_NAN_OR_INFINITY))
        );
        assert_eq!(
            add(Some("1e4932"), "1e4932"),
            Err(Error::from(RESULT_NAN_OR_INFINITY))
        );
    }

    #[test]
    fn scan_options_and_cursor_parse_like_redis() {
        assert_eq!(parse_scan_options(&words("")), Ok((10, None)));
        assert_eq!(
            parse_scan_options(&words("COUNT 5 match a* count 7")),
            Ok((7, Some(Bytes::from_static(b"a*"))))
        );
        assert_eq!(parse_scan_options(&words("MATCH *")), Ok((10, None)));
        for bad in [
            "COUNT 0",
            "COUNT -1",
            "TYPE hash",
            "MATCH",
            "COUNT 1 MATCH",
            "x y",
        ] {
            assert!(parse_scan_options(&words(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            parse_scan_options(&words("COUNT x")),
            Err(Error::NotInteger)
        );
        assert_eq!(args::scan_cursor(b"0"), Ok(0));
        assert_eq!(args::scan_cursor(b"-1"), Ok(u64::MAX));
        assert!(args::scan_cursor(b"18446744073709551616").is_err());
        assert!(args::scan_cursor(b"1x").is_err());
    }

    #[test]
    fn random_pairs_follow_redis_cases() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut hash = Hash::new();
        for field in ["a", "b", "c", "d", "e", "f"] {
            hash.set(field.as_bytes(), b"v", Limits::HASH_DEFAULT);
        }
        assert!(random_pairs(&hash, 0, &mut rng).unwrap().is_empty());
        let whole: Vec<Bytes> = random_pairs(&hash, 100, &mut rng)
            .unwrap()
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(whole, ["a", "b", "c", "d", "e", "f"], "insertion order");
        let repeated = random_pairs(&hash, -50, &mut rng).unwrap();
        assert_eq!(repeated.len(), 50);
        for count in 1..6 {
            let mut distinct: Vec<Bytes> = random_pairs(&hash, count, &mut rng)
                .unwrap()
                .into_iter()
                .map(|(field, _)| field)
                .collect();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), count as usize);
        }
        assert_eq!(
            random_pairs(&hash, -(RANDOM_FIELDS_MAX as i64) - 1, &mut rng),
            Err(Error::from(COUNT_TOO_LARGE))
        );
        // A small sample of a large hashtable takes the random-pick path.
        let limits = Limits {
            entries_max: 4,
            value_bytes_max: 64,
        };
        let mut table = Hash::new();
        for index in 0..300 {
            table.set(format!("f{index}").as_bytes(), b"v", limits);
        }
        let mut sample: Vec<Bytes> = random_pairs(&table, 20, &mut rng)
            .unwrap()
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        sample.sort();
        sample.dedup();
        assert_eq!(sample.len(), 20);
    }

    /// Runs `lines` on a fresh server; each propagated command as space-joined words.
    fn propagated(lines: &[&str]) -> Vec<String> {
        let test = crate::testing::TestServer::new();
        let mut session = test.session();
        for line in lines {
            test.reply(&mut session, line);
        }
        test.propagated()
    }

    #[test]
    fn effects_propagate_as_redis_writes_them() {
        // The expected stream is real Redis 7.0.15's AOF for the same commands.
        let effects = propagated(&[
            "hset h a 1",
            "hset h a 1",
            "hsetnx h a 2",
            "hsetnx h b 2",
            "hdel h zz",
            "hdel h b",
            "hincrbyfloat h f 1.5",
            "hincrby h i 3",
            "hmset h a 5",
            "hincrby h i abc",
            "hget h a",
            "hrandfield h 2",
            "hdel h a f i",
        ]);
        assert_eq!(
            effects,
            [
                "SELECT 0",
                "hset h a 1",
                "hset h a 1",
                "hsetnx h b 2",
                "hdel h b",
                "HSET h f 1.5",
                "hincrby h i 3",
                "hmset h a 5",
                "hdel h a f i",
            ]
        );
    }
}
