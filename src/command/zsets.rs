//! The sorted-set family: ZADD, ZINCRBY, ZSCORE, ZMSCORE, ZCARD, ZCOUNT, ZLEXCOUNT, ZRANK,
//! ZREVRANK, ZRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX, ZREVRANGE,
//! ZRANGESTORE, ZREM, ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX, ZPOPMIN, ZPOPMAX,
//! ZMPOP, ZRANDMEMBER, ZSCAN, ZUNION, ZINTER, ZDIFF, ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE and
//! ZINTERCARD, with Redis 7.0.15's replies, error texts and check order.
//!
//! Ranges of every kind (rank, score, lex) are turned into a half-open range of ascending
//! ranks first, so one selection routine serves ZRANGE's forms, the legacy commands, the
//! removals and the counts. Scores reply as doubles: `%.17g` bulk strings in RESP2, `,`
//! doubles in RESP3, where WITHSCORES replies nest [member, score] pairs as Redis 7.0 does.
//! ZMPOP propagates as ZPOPMIN/ZPOPMAX with a count, as Redis rewrites it. The set
//! operations (ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD) also take plain sets as
//! inputs, each member with score 1 before its weight, as Redis 7.0 does.

use super::args;
use super::block;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error, NOT_POSITIVE};
use crate::keyspace::notify;
use crate::protocol::Reply;
use crate::types::zset::Limits;
use crate::types::{CompactBytes, Value, ZSet};
use bytes::Bytes;
use rand::Rng;

const XX_AND_NX: &str = "ERR XX and NX options at the same time are not compatible";
const GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
const INCR_SINGLE_PAIR: &str = "ERR INCR option supports a single increment-element pair";
const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
const MIN_MAX_NOT_FLOAT: &str = "ERR min or max is not a float";
const MIN_MAX_NOT_STRING: &str = "ERR min or max not valid string range item";
const LIMIT_NEEDS_BY: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
const WITHSCORES_BYLEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";
const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
const OUT_OF_RANGE: &str = "ERR value is out of range";

pub static COMMANDS: &[Spec] = &[
    Spec::new("zadd", zadd, Lock::Keys),
    Spec::new("zincrby", zincrby, Lock::Keys),
    Spec::new("zscore", zscore, Lock::Keys),
    Spec::new("zmscore", zmscore, Lock::Keys),
    Spec::new("zcard", zcard, Lock::Keys),
    Spec::new("zcount", zcount, Lock::Keys),
    Spec::new("zlexcount", zlexcount, Lock::Keys),
    Spec::new("zrank", zrank, Lock::Keys),
    Spec::new("zrevrank", zrevrank, Lock::Keys),
    Spec::new("zrange", zrange, Lock::Keys),
    Spec::new("zrangebyscore", zrangebyscore, Lock::Keys),
    Spec::new("zrevrangebyscore", zrevrangebyscore, Lock::Keys),
    Spec::new("zrangebylex", zrangebylex, Lock::Keys),
    Spec::new("zrevrangebylex", zrevrangebylex, Lock::Keys),
    Spec::new("zrevrange", zrevrange, Lock::Keys),
    Spec::new("zrangestore", zrangestore, Lock::Keys),
    Spec::new("zrem", zrem, Lock::Keys),
    Spec::new("zremrangebyrank", zremrangebyrank, Lock::Keys),
    Spec::new("zremrangebyscore", zremrangebyscore, Lock::Keys),
    Spec::new("zremrangebylex", zremrangebylex, Lock::Keys),
    Spec::new("zpopmin", zpopmin, Lock::Keys),
    Spec::new("zpopmax", zpopmax, Lock::Keys),
    Spec::new("zmpop", zmpop, Lock::Custom(keys_after_numkeys_at_1)),
    Spec::new("bzpopmin", bzpopmin, Lock::Keys),
    Spec::new("bzpopmax", bzpopmax, Lock::Keys),
    Spec::new("bzmpop", bzmpop, Lock::Custom(keys_after_numkeys_at_2)),
    Spec::new("zrandmember", zrandmember, Lock::Keys),
    Spec::new("zscan", zscan, Lock::Keys),
    Spec::new("zunion", zunion, Lock::Custom(keys_after_numkeys_at_1)),
    Spec::new("zinter", zinter, Lock::Custom(keys_after_numkeys_at_1)),
    Spec::new("zdiff", zdiff, Lock::Custom(keys_after_numkeys_at_1)),
    Spec::new(
        "zintercard",
        zintercard,
        Lock::Custom(keys_after_numkeys_at_1),
    ),
    Spec::new(
        "zunionstore",
        zunionstore,
        Lock::Custom(destination_and_keys),
    ),
    Spec::new(
        "zinterstore",
        zinterstore,
        Lock::Custom(destination_and_keys),
    ),
    Spec::new("zdiffstore", zdiffstore, Lock::Custom(destination_and_keys)),
];

// ---------------------------------------------------------------------------------------------
// Movable keys
// ---------------------------------------------------------------------------------------------

/// The keys after a numkeys argument at `index`, clamped to the arguments present; nothing
/// when numkeys is not a positive integer (the handler then fails before touching a key).
fn keys_after_numkeys(argv: &[Bytes], index: usize) -> Vec<usize> {
    let Some(count) = argv.get(index).and_then(|arg| args::int(arg).ok()) else {
        return Vec::new();
    };
    if count < 1 {
        return Vec::new();
    }
    let first = index + 1;
    let end = first.saturating_add(count as usize).min(argv.len());
    (first..end).collect()
}

/// `ZMPOP numkeys key...`, `ZUNION numkeys key...` and the like.
fn keys_after_numkeys_at_1(argv: &[Bytes]) -> Vec<usize> {
    keys_after_numkeys(argv, 1)
}

/// `ZUNIONSTORE destination numkeys key...` and the like.
fn destination_and_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut positions = vec![1];
    positions.extend(keys_after_numkeys(argv, 2));
    positions
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// The listpack thresholds from the configuration, read at write time as Redis does.
fn limits(ctx: &Ctx<'_, '_>) -> Limits {
    Limits {
        entries_max: usize::try_from(crate::config_int!(
            ctx.server.config,
            "zset-max-listpack-entries"
        ))
        .unwrap_or(0),
        value_bytes_max: usize::try_from(crate::config_int!(
            ctx.server.config,
            "zset-max-listpack-value"
        ))
        .unwrap_or(0),
    }
}

/// Runs `read` on the sorted set at `key` for a read command (counts hits and misses).
fn read<T>(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    read: impl FnOnce(&ZSet) -> T,
) -> Result<Option<T>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, key) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::ZSet(zset) => Ok(Some(read(zset))),
            _ => Err(Error::WrongType),
        },
    }
}

/// Runs `modify` on the sorted set at `key`; it returns its result and how many elements it
/// changed. Deletes the key when the set became empty (a collection is never empty in the
/// keyspace), signals the modification otherwise.
fn modify<T>(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    modify: impl FnOnce(&mut ZSet) -> (T, usize),
) -> Result<Option<T>, Error> {
    let db = ctx.db();
    let Some(entry) = ctx.ks.lookup(db, key) else {
        return Ok(None);
    };
    let Value::ZSet(zset) = &mut entry.value else {
        return Err(Error::WrongType);
    };
    let (result, changed) = modify(zset);
    let empty = zset.is_empty();
    if changed > 0 {
        if empty {
            ctx.ks.delete(db, key);
        } else {
            ctx.ks.signal_modified(db, key);
        }
    }
    debug_assert!(
        changed > 0 || !empty,
        "an untouched set was not empty before"
    );
    Ok(Some(result))
}

/// Stores `elements` at `destination` as a new sorted set, or deletes `destination` when
/// there are none (the STORE commands). Returns the stored cardinality.
/// Raises `event` (the command's name), or `del` when a destination went, after the reply.
fn store(
    ctx: &mut Ctx<'_, '_>,
    destination: &[u8],
    elements: Vec<(f64, CompactBytes)>,
    event: &'static str,
) -> i64 {
    let db = ctx.db();
    let count = elements.len();
    if count == 0 {
        ctx.reply_written();
        if ctx.ks.delete(db, destination) {
            ctx.ks.notify(notify::GENERIC, "del", db, destination);
        }
        return 0;
    }
    let zset = ZSet::from_elements(elements, limits(ctx));
    debug_assert_eq!(zset.len(), count);
    ctx.ks
        .set(db, destination, Value::ZSet(Box::new(zset)), false);
    ctx.reply_written();
    ctx.ks.notify(notify::ZSET, event, db, destination);
    count as i64
}

/// A score as Redis's `strtod`-based range parser reads it: leading whitespace allowed, the
/// empty string is 0, overflow is infinity, NaN rejected.
fn parse_range_score(text: &[u8]) -> Option<f64> {
    let trimmed = text
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .map_or(&text[text.len()..], |start| &text[start..]);
    if trimmed.is_empty() {
        return Some(0.0);
    }
    args::strtod_whole(trimmed).map(|(value, _)| value)
}

/// `min max` of ZRANGEBYSCORE and friends, with `(` for an exclusive bound.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScoreRange {
    min: f64,
    max: f64,
    min_exclusive: bool,
    max_exclusive: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Error> {
        let bound = |text: &[u8]| -> Option<(f64, bool)> {
            match text.first() {
                Some(b'(') => Some((parse_range_score(&text[1..])?, true)),
                _ => Some((parse_range_score(text)?, false)),
            }
        };
        let invalid = || Error::from(MIN_MAX_NOT_FLOAT);
        let (min, min_exclusive) = bound(min).ok_or_else(invalid)?;
        let (max, max_exclusive) = bound(max).ok_or_else(invalid)?;
        Ok(ScoreRange {
            min,
            max,
            min_exclusive,
            max_exclusive,
        })
    }

    /// The ascending ranks `start..end` of the elements in range.
    fn ranks(&self, zset: &ZSet) -> (usize, usize) {
        if self.min > self.max
            || (self.min == self.max && (self.min_exclusive || self.max_exclusive))
        {
            return (0, 0);
        }
        let start = zset.count_score_below(self.min, self.min_exclusive);
        let end = zset.count_score_below(self.max, !self.max_exclusive);
        (start, end.max(start))
    }
}

/// One end of a lex range.
#[derive(Debug, Clone, PartialEq)]
enum LexBound {
    /// `-`: before everything.
    Lowest,
    /// `+`: after everything.
    Highest,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

impl LexBound {
    fn parse(text: &Bytes) -> Result<LexBound, Error> {
        match text.first() {
            Some(b'+') if text.len() == 1 => Ok(LexBound::Highest),
            Some(b'-') if text.len() == 1 => Ok(LexBound::Lowest),
            Some(b'[') => Ok(LexBound::Inclusive(text.slice(1..))),
            Some(b'(') => Ok(LexBound::Exclusive(text.slice(1..))),
            _ => Err(Error::from(MIN_MAX_NOT_STRING)),
        }
    }

    /// Elements before this bound taken as a range's start.
    fn start_rank(&self, zset: &ZSet) -> usize {
        match self {
            LexBound::Lowest => 0,
            LexBound::Highest => zset.len(),
            LexBound::Inclusive(member) => zset.count_member_below(member, false),
            LexBound::Exclusive(member) => zset.count_member_below(member, true),
        }
    }

    /// Elements up to this bound taken as a range's end.
    fn end_rank(&self, zset: &ZSet) -> usize {
        match self {
            LexBound::Lowest => 0,
            LexBound::Highest => zset.len(),
            LexBound::Inclusive(member) => zset.count_member_below(member, true),
            LexBound::Exclusive(member) => zset.count_member_below(member, false),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &Bytes, max: &Bytes) -> Result<LexRange, Error> {
        Ok(LexRange {
            min: LexBound::parse(min)?,
            max: LexBound::parse(max)?,
        })
    }

    fn ranks(&self, zset: &ZSet) -> (usize, usize) {
        let start = self.min.start_rank(zset);
        let end = self.max.end_rank(zset);
        (start, end.max(start))
    }
}

/// Redis's rank clamping (ZRANGE, ZREMRANGEBYRANK): negative counts from the end; returns the
/// ascending ranks `start..end`, empty when out of range.
fn rank_range(start: i64, end: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return (0, 0);
    }
    if end >= len {
        end = len - 1;
    }
    (start as usize, end as usize + 1)
}

/// A list of elements as a reply: members only, or with scores as [member, score] pairs in
/// RESP3 and a flat member, score list in RESP2.
fn render(elements: Vec<(f64, Bytes)>, withscores: bool, resp3: bool) -> Reply {
    if !withscores {
        return Reply::Array(
            elements
                .into_iter()
                .map(|(_, member)| Reply::Bulk(member))
                .collect(),
        );
    }
    if resp3 {
        Reply::Array(
            elements
                .into_iter()
                .map(|(score, member)| {
                    Reply::Array(vec![Reply::Bulk(member), Reply::Double(score)])
                })
                .collect(),
        )
    } else {
        let mut items = Vec::with_capacity(elements.len() * 2);
        for (score, member) in elements {
            items.push(Reply::Bulk(member));
            items.push(Reply::Double(score));
        }
        Reply::Array(items)
    }
}

fn collect(zset: &ZSet, start: usize, end: usize, reverse: bool) -> Vec<(f64, Bytes)> {
    zset.iter_range(start, end, reverse)
        .map(|(score, member)| (score, Bytes::copy_from_slice(member)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// ZADD / ZINCRBY
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What ZADD did, summed over its pairs.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct AddOutcome {
    added: usize,
    updated: usize,
    /// Pairs that were not no-ops (INCR replies null when none).
    processed: usize,
    /// The last pair's resulting score (INCR's reply).
    score: f64,
}

/// Redis's `zsetAdd` for each pair, in order. A NaN sum stops with an error, keeping what
/// earlier pairs did, as Redis does.
fn add_pairs(
    zset: &mut ZSet,
    flags: AddFlags,
    pairs: &[(f64, &[u8])],
    limits: Limits,
) -> (AddOutcome, Option<Error>) {
    let mut outcome = AddOutcome::default();
    for &(score, member) in pairs {
        debug_assert!(!score.is_nan(), "parsing rejects NaN");
        match zset.score(member) {
            Some(current) => {
                if flags.nx {
                    continue;
                }
                let mut score = score;
                if flags.incr {
                    score += current;
                    if score.is_nan() {
                        return (outcome, Some(Error::from(SCORE_NAN)));
                    }
                }
                if (flags.lt && score >= current) || (flags.gt && score <= current) {
                    continue;
                }
                outcome.processed += 1;
                outcome.score = score;
                if score != current {
                    zset.update(member, score);
                    outcome.updated += 1;
                }
            }
            None => {
                if flags.xx {
                    continue;
                }
                zset.insert(score, member, limits);
                outcome.added += 1;
                outcome.processed += 1;
                outcome.score = score;
            }
        }
    }
    (outcome, None)
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
fn zadd(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mut flags = AddFlags::default();
    let mut index = 2;
    while index < argv.len() {
        let option = &argv[index];
        if args::is(option, "nx") {
            flags.nx = true;
        } else if args::is(option, "xx") {
            flags.xx = true;
        } else if args::is(option, "ch") {
            flags.ch = true;
        } else if args::is(option, "incr") {
            flags.incr = true;
        } else if args::is(option, "gt") {
            flags.gt = true;
        } else if args::is(option, "lt") {
            flags.lt = true;
        } else {
            break;
        }
        index += 1;
    }
    add_generic(ctx, &argv[1], flags, &argv[index..])
}

/// `ZINCRBY key increment member`.
fn zincrby(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let flags = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    add_generic(ctx, &argv[1], flags, &argv[2..])
}

/// Redis's `zaddGenericCommand` after the options.
fn add_generic(ctx: &mut Ctx<'_, '_>, key: &Bytes, flags: AddFlags, rest: &[Bytes]) -> CmdResult {
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(Error::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(XX_AND_NX.into());
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err(GT_LT_NX.into());
    }
    if flags.incr && rest.len() > 2 {
        return Err(INCR_SINGLE_PAIR.into());
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks_exact(2) {
        pairs.push((args::double(&pair[0]).ok_or(Error::NotFloat)?, &pair[1][..]));
    }
    let limits = limits(ctx);
    let db = ctx.db();
    let (outcome, error) = match ctx.ks.lookup(db, key) {
        Some(entry) => {
            let Value::ZSet(zset) = &mut entry.value else {
                return Err(Error::WrongType);
            };
            let (outcome, error) = add_pairs(zset, flags, &pairs, limits);
            if outcome.added + outcome.updated > 0 {
                ctx.ks.signal_modified(db, key);
            }
            (outcome, error)
        }
        None if flags.xx => (AddOutcome::default(), None),
        None => {
            let mut zset = ZSet::new();
            let (outcome, error) = add_pairs(&mut zset, flags, &pairs, limits);
            if !zset.is_empty() {
                ctx.ks.set(db, key, Value::ZSet(Box::new(zset)), false);
            }
            (outcome, error)
        }
    };
    if let Some(error) = error {
        return Err(error);
    }
    if outcome.added + outcome.updated > 0 {
        ctx.reply_written();
        let event = if flags.incr { "zincr" } else { "zadd" };
        ctx.ks.notify(notify::ZSET, event, db, key);
    }
    if flags.incr {
        if outcome.processed > 0 {
            Ok(Reply::Double(outcome.score))
        } else {
            Ok(Reply::Null)
        }
    } else if flags.ch {
        Ok(Reply::Integer((outcome.added + outcome.updated) as i64))
    } else {
        Ok(Reply::Integer(outcome.added as i64))
    }
}

// ---------------------------------------------------------------------------------------------
// Point reads
// ---------------------------------------------------------------------------------------------

/// `ZSCORE key member`.
fn zscore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let score = read(ctx, &argv[1], |zset| zset.score(&argv[2]))?.flatten();
    Ok(score.map_or(Reply::Null, Reply::Double))
}

/// `ZMSCORE key member [member ...]`.
fn zmscore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let members = &argv[2..];
    let scores = read(ctx, &argv[1], |zset| {
        members
            .iter()
            .map(|member| zset.score(member))
            .collect::<Vec<_>>()
    })?
    .unwrap_or_else(|| vec![None; members.len()]);
    Ok(Reply::Array(
        scores
            .into_iter()
            .map(|score| score.map_or(Reply::Null, Reply::Double))
            .collect(),
    ))
}

/// `ZCARD key`.
fn zcard(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let len = read(ctx, &argv[1], ZSet::len)?.unwrap_or(0);
    Ok(Reply::Integer(len as i64))
}

/// `ZCOUNT key min max`.
fn zcount(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let range = ScoreRange::parse(&argv[2], &argv[3])?;
    let count = read(ctx, &argv[1], |zset| {
        let (start, end) = range.ranks(zset);
        end - start
    })?;
    Ok(Reply::Integer(count.unwrap_or(0) as i64))
}

/// `ZLEXCOUNT key min max`.
fn zlexcount(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let range = LexRange::parse(&argv[2], &argv[3])?;
    let count = read(ctx, &argv[1], |zset| {
        let (start, end) = range.ranks(zset);
        end - start
    })?;
    Ok(Reply::Integer(count.unwrap_or(0) as i64))
}

/// `ZRANK key member`.
fn zrank(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    rank_generic(ctx, argv, false)
}

/// `ZREVRANK key member`.
fn zrevrank(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    rank_generic(ctx, argv, true)
}

fn rank_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], reverse: bool) -> CmdResult {
    let rank = read(ctx, &argv[1], |zset| {
        zset.rank(&argv[2])
            .map(|rank| if reverse { zset.len() - 1 - rank } else { rank })
    })?
    .flatten();
    Ok(rank.map_or(Reply::Null, |rank| Reply::Integer(rank as i64)))
}

// ---------------------------------------------------------------------------------------------
// ZRANGE and its legacy forms
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// A parsed range request.
#[derive(Debug, Clone, PartialEq)]
enum Bounds {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

#[derive(Debug, Clone, PartialEq)]
struct RangeRequest {
    bounds: Bounds,
    reverse: bool,
    withscores: bool,
    offset: i64,
    /// Negative: no limit.
    limit: i64,
}

impl RangeRequest {
    /// Redis's `zrangeGenericCommand` argument handling. `args` starts at `min`; `kind` and
    /// `reverse` are preset by the legacy commands (which then reject BY*/REV).
    fn parse(
        args: &[Bytes],
        kind: Option<RangeKind>,
        reverse: Option<bool>,
        store: bool,
    ) -> Result<RangeRequest, Error> {
        let (mut kind, mut reverse) = (kind, reverse);
        let mut withscores = false;
        let (mut offset, mut limit) = (0i64, -1i64);
        let mut index = 2;
        while index < args.len() {
            let option = &args[index];
            let remaining = args.len() - index - 1;
            if !store && args::is(option, "withscores") {
                withscores = true;
            } else if args::is(option, "limit") && remaining >= 2 {
                offset = args::int(&args[index + 1])?;
                limit = args::int(&args[index + 2])?;
                index += 2;
            } else if reverse.is_none() && args::is(option, "rev") {
                reverse = Some(true);
            } else if kind.is_none() && args::is(option, "bylex") {
                kind = Some(RangeKind::Lex);
            } else if kind.is_none() && args::is(option, "byscore") {
                kind = Some(RangeKind::Score);
            } else {
                return Err(Error::Syntax);
            }
            index += 1;
        }
        let reverse = reverse.unwrap_or(false);
        let kind = kind.unwrap_or(RangeKind::Rank);
        if limit != -1 && kind == RangeKind::Rank {
            return Err(LIMIT_NEEDS_BY.into());
        }
        if withscores && kind == RangeKind::Lex {
            return Err(WITHSCORES_BYLEX.into());
        }
        // Reversed score and lex ranges are given as max, min.
        let (min, max) = if reverse && kind != RangeKind::Rank {
            (&args[1], &args[0])
        } else {
            (&args[0], &args[1])
        };
        let bounds = match kind {
            RangeKind::Rank => Bounds::Rank(args::int(min)?, args::int(max)?),
            RangeKind::Score => Bounds::Score(ScoreRange::parse(min, max)?),
            RangeKind::Lex => Bounds::Lex(LexRange::parse(min, max)?),
        };
        Ok(RangeRequest {
            bounds,
            reverse,
            withscores,
            offset,
            limit,
        })
    }

    /// The selected elements in reply order.
    fn select(&self, zset: &ZSet) -> Vec<(f64, Bytes)> {
        let len = zset.len();
        let (start, end) = match &self.bounds {
            Bounds::Rank(start, end) => {
                let (start, end) = rank_range(*start, *end, len);
                if self.reverse && start < end {
                    // Ranks count from the highest element.
                    return collect(zset, len - end, len - start, true);
                }
                return collect(zset, start, end, false);
            }
            Bounds::Score(range) => range.ranks(zset),
            Bounds::Lex(range) => range.ranks(zset),
        };
        // A negative offset selects nothing, as Redis's offset loop runs off the end.
        if self.offset < 0 || start >= end {
            return Vec::new();
        }
        let available = (end - start).saturating_sub(self.offset as usize);
        let count = if self.limit < 0 {
            available
        } else {
            available.min(self.limit as usize)
        };
        let skip = (self.offset as usize).min(end - start);
        if self.reverse {
            collect(zset, end - skip - count, end - skip, true)
        } else {
            collect(zset, start + skip, start + skip + count, false)
        }
    }
}

fn range_generic(
    ctx: &mut Ctx<'_, '_>,
    argv: &[Bytes],
    kind: Option<RangeKind>,
    reverse: Option<bool>,
) -> CmdResult {
    let request = RangeRequest::parse(&argv[2..], kind, reverse, false)?;
    let elements = read(ctx, &argv[1], |zset| request.select(zset))?.unwrap_or_default();
    Ok(render(elements, request.withscores, ctx.session.resp3))
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`.
fn zrange(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    range_generic(ctx, argv, None, None)
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`.
fn zrangebyscore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    range_generic(ctx, argv, Some(RangeKind::Score), Some(false))
}

/// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]`.
fn zrevrangebyscore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    range_generic(ctx, argv, Some(RangeKind::Score), Some(true))
}

/// `ZRANGEBYLEX key min max [LIMIT offset count]`.
fn zrangebylex(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    range_generic(ctx, argv, Some(RangeKind::Lex), Some(false))
}

/// `ZREVRANGEBYLEX key max min [LIMIT offset count]`.
fn zrevrangebylex(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    range_generic(ctx, argv, Some(RangeKind::Lex), Some(true))
}

/// `ZREVRANGE key start stop [WITHSCORES]`.
fn zrevrange(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    range_generic(ctx, argv, Some(RangeKind::Rank), Some(true))
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`.
fn zrangestore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let request = RangeRequest::parse(&argv[3..], None, None, true)?;
    let elements = read(ctx, &argv[2], |zset| request.select(zset))?.unwrap_or_default();
    let elements = elements
        .into_iter()
        .map(|(score, member)| (score, CompactBytes::new(&member)))
        .collect();
    Ok(Reply::Integer(store(
        ctx,
        &argv[1],
        elements,
        "zrangestore",
    )))
}

// ---------------------------------------------------------------------------------------------
// Removal
// ---------------------------------------------------------------------------------------------

/// `ZREM key member [member ...]`.
fn zrem(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let removed = modify(ctx, &argv[1], |zset| {
        let mut removed = 0;
        for member in &argv[2..] {
            if zset.remove(member).is_some() {
                removed += 1;
            }
            if zset.is_empty() {
                break;
            }
        }
        (removed, removed)
    })?;
    notify_removal(ctx, &argv[1], "zrem", removed.unwrap_or(0));
    Ok(Reply::Integer(removed.unwrap_or(0) as i64))
}

/// After `removed` members left the sorted set at `key`: `event`, then `del` if it emptied.
fn notify_removal(ctx: &mut Ctx<'_, '_>, key: &[u8], event: &'static str, removed: usize) {
    if removed == 0 {
        return;
    }
    let db = ctx.db();
    ctx.ks.notify(notify::ZSET, event, db, key);
    if !ctx.ks.exists(db, key) {
        ctx.ks.notify(notify::GENERIC, "del", db, key);
    }
}

fn remove_range_generic(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    event: &'static str,
    ranks: impl FnOnce(&ZSet) -> (usize, usize),
) -> CmdResult {
    let removed = modify(ctx, key, |zset| {
        let (start, end) = ranks(zset);
        let removed = zset.remove_range(start, end);
        (removed, removed)
    })?;
    notify_removal(ctx, key, event, removed.unwrap_or(0));
    Ok(Reply::Integer(removed.unwrap_or(0) as i64))
}

/// `ZREMRANGEBYRANK key start stop`.
fn zremrangebyrank(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (start, end) = (args::int(&argv[2])?, args::int(&argv[3])?);
    remove_range_generic(ctx, &argv[1], "zremrangebyrank", |zset| {
        rank_range(start, end, zset.len())
    })
}

/// `ZREMRANGEBYSCORE key min max`.
fn zremrangebyscore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let range = ScoreRange::parse(&argv[2], &argv[3])?;
    remove_range_generic(ctx, &argv[1], "zremrangebyscore", |zset| range.ranks(zset))
}

/// `ZREMRANGEBYLEX key min max`.
fn zremrangebylex(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let range = LexRange::parse(&argv[2], &argv[3])?;
    remove_range_generic(ctx, &argv[1], "zremrangebylex", |zset| range.ranks(zset))
}

// ---------------------------------------------------------------------------------------------
// Popping
// ---------------------------------------------------------------------------------------------

/// Pops up to `count` elements from the lowest (or, with `max`, highest) end of the sorted
/// set at `key`, deleting the key when emptied. `Ok(None)` when the key does not exist.
/// Shared with the blocking forms.
pub(crate) fn pop(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    max: bool,
    count: usize,
) -> Result<Option<Vec<(f64, Bytes)>>, Error> {
    let popped = modify(ctx, key, |zset| {
        let mut popped = Vec::with_capacity(count.min(zset.len()));
        while popped.len() < count {
            let Some((score, member)) = zset.pop(max) else {
                break;
            };
            popped.push((score, Bytes::from(member.into_vec())));
        }
        let changed = popped.len();
        (popped, changed)
    })?;
    // Redis writes this event in the middle of the reply; before it is the closest place.
    if popped.as_ref().is_some_and(|popped| !popped.is_empty()) {
        let db = ctx.db();
        ctx.ks.notify(
            notify::ZSET,
            if max { "zpopmax" } else { "zpopmin" },
            db,
            key,
        );
        ctx.reply_written();
        if !ctx.ks.exists(db, key) {
            ctx.ks.notify(notify::GENERIC, "del", db, key);
        }
    }
    Ok(popped)
}

/// `ZPOPMIN key [count]` / `ZPOPMAX key [count]`.
fn pop_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], max: bool) -> CmdResult {
    if argv.len() > 3 {
        return Err(Error::Syntax);
    }
    let count = match argv.get(2) {
        None => None,
        Some(arg) => {
            let count = args::int(arg).map_err(|_| Error::from(NOT_POSITIVE))?;
            if count < 0 {
                return Err(NOT_POSITIVE.into());
            }
            Some(count as usize)
        }
    };
    if count == Some(0) {
        // Redis checks the key's type before serving a zero count.
        let db = ctx.db();
        if let Some(entry) = ctx.ks.lookup(db, &argv[1]) {
            if !matches!(entry.value, Value::ZSet(_)) {
                return Err(Error::WrongType);
            }
        }
        return Ok(Reply::Array(Vec::new()));
    }
    let popped = pop(ctx, &argv[1], max, count.unwrap_or(1))?.unwrap_or_default();
    // With a count, RESP3 nests [member, score] pairs; without one the reply stays flat.
    let nested = count.is_some() && ctx.session.resp3;
    Ok(render(popped, true, nested))
}

/// `ZPOPMIN key [count]`.
fn zpopmin(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, argv, false)
}

/// `ZPOPMAX key [count]`.
fn zpopmax(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, argv, true)
}

/// ZMPOP/BZMPOP's parsed arguments: the keys' positions, the end, the count.
struct MultiPop {
    keys: std::ops::Range<usize>,
    max: bool,
    count: usize,
}

/// Redis's zmpopGenericCommand parsing with numkeys at `first` (1 for ZMPOP, 2 for BZMPOP).
fn parse_multi_pop(argv: &[Bytes], first: usize) -> Result<MultiPop, Error> {
    let numkeys = args::int(&argv[first]).map_err(|_| Error::from(NUMKEYS_POSITIVE))?;
    if numkeys < 1 {
        return Err(NUMKEYS_POSITIVE.into());
    }
    let where_index = (numkeys as u64).saturating_add(first as u64 + 1);
    if where_index >= argv.len() as u64 {
        return Err(Error::Syntax);
    }
    let where_index = where_index as usize;
    let max = if args::is(&argv[where_index], "min") {
        false
    } else if args::is(&argv[where_index], "max") {
        true
    } else {
        return Err(Error::Syntax);
    };
    let mut count: Option<i64> = None;
    let mut index = where_index + 1;
    while index < argv.len() {
        if count.is_none() && args::is(&argv[index], "count") && index + 1 < argv.len() {
            let value = args::int(&argv[index + 1]).map_err(|_| Error::from(COUNT_POSITIVE))?;
            if value < 1 {
                return Err(COUNT_POSITIVE.into());
            }
            count = Some(value);
            index += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    Ok(MultiPop {
        keys: first + 1..where_index,
        max,
        count: count.unwrap_or(1) as usize,
    })
}

/// Pops for ZMPOP/BZMPOP from the first non-empty sorted set: `[key, [[member, score]...]]`
/// or a null array. Redis replicates it as ZPOPMIN/ZPOPMAX with the number popped.
fn multi_pop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], request: &MultiPop) -> CmdResult {
    for key in &argv[request.keys.clone()] {
        let Some(popped) = pop(ctx, key, request.max, request.count)? else {
            continue;
        };
        debug_assert!(!popped.is_empty(), "a stored sorted set is never empty");
        let command = if request.max { "ZPOPMAX" } else { "ZPOPMIN" };
        ctx.propagate(vec![
            Bytes::from_static(command.as_bytes()),
            key.clone(),
            Bytes::from(popped.len().to_string()),
        ]);
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            render(popped, true, true),
        ]));
    }
    Ok(Reply::NullArray)
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`.
fn zmpop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let request = parse_multi_pop(argv, 1)?;
    multi_pop(ctx, argv, &request)
}

/// `BZPOPMIN key [key ...] timeout` / `BZPOPMAX ...`: `[key, member, score]` from the first
/// non-empty sorted set, propagated as ZPOPMIN/ZPOPMAX key.
fn blocking_pop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], max: bool) -> CmdResult {
    let timeout_ms = block::parse_timeout(&argv[argv.len() - 1], ctx.now_ms())?;
    let keys = &argv[1..argv.len() - 1];
    for key in keys {
        let popped = match pop(ctx, key, max, 1) {
            Ok(popped) => popped,
            Err(error) if block::wrong_type_keeps_waiting(ctx, &error) => break,
            Err(error) => return Err(error),
        };
        let Some((score, member)) = popped.and_then(|mut popped| popped.pop()) else {
            continue;
        };
        let command: &'static [u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        ctx.propagate(vec![Bytes::from_static(command), key.clone()]);
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Bulk(member),
            Reply::Double(score),
        ]));
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

fn bzpopmin(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, argv, false)
}

fn bzpopmax(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, argv, true)
}

fn keys_after_numkeys_at_2(argv: &[Bytes]) -> Vec<usize> {
    keys_after_numkeys(argv, 2)
}

/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`.
fn bzmpop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let timeout_ms = block::parse_timeout(&argv[1], ctx.now_ms())?;
    let request = parse_multi_pop(argv, 2)?;
    let keys = argv[request.keys.clone()].to_vec();
    match multi_pop(ctx, argv, &request) {
        Ok(Reply::NullArray) => block::block_on(
            ctx,
            argv,
            &keys,
            timeout_ms,
            Reply::NullArray,
            Reply::NullArray,
        ),
        Err(error) if block::wrong_type_keeps_waiting(ctx, &error) => block::block_on(
            ctx,
            argv,
            &keys,
            timeout_ms,
            Reply::NullArray,
            Reply::NullArray,
        ),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// ZRANDMEMBER / ZSCAN
// ---------------------------------------------------------------------------------------------

/// `ZRANDMEMBER key [count [WITHSCORES]]`.
fn zrandmember(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let resp3 = ctx.session.resp3;
    if argv.len() < 3 {
        let member = read(ctx, &argv[1], |zset| {
            let rank = crate::util::random().gen_range(0..zset.len());
            zset.get(rank)
                .map(|(_, member)| Bytes::copy_from_slice(member))
        })?
        .flatten();
        return Ok(member.map_or(Reply::Null, Reply::Bulk));
    }
    let count = args::int(&argv[2])?;
    if count == i64::MIN {
        return Err(Error::err(format!(
            "value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )));
    }
    if argv.len() > 4 || (argv.len() == 4 && !args::is(&argv[3], "withscores")) {
        return Err(Error::Syntax);
    }
    let withscores = argv.len() == 4;
    if withscores && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Err(OUT_OF_RANGE.into());
    }
    let elements = read(ctx, &argv[1], |zset| random_elements(zset, count))?.unwrap_or_default();
    Ok(render(elements, withscores, resp3))
}

/// Redis's cases: a negative count picks with repetition; a count covering the set returns
/// it all; otherwise distinct random elements.
fn random_elements(zset: &ZSet, count: i64) -> Vec<(f64, Bytes)> {
    let len = zset.len();
    let mut rng = crate::util::random();
    let element = |rank: usize| {
        let (score, member) = zset.get(rank).expect("rank below len");
        (score, Bytes::copy_from_slice(member))
    };
    if count < 0 {
        let wanted = count.unsigned_abs() as usize;
        return (0..wanted)
            .map(|_| element(rng.gen_range(0..len)))
            .collect();
    }
    let wanted = count as usize;
    if wanted >= len {
        // Redis walks the whole set from its tail here.
        return collect(zset, 0, len, true);
    }
    let mut ranks = rand::seq::index::sample(&mut rng, len, wanted).into_vec();
    ranks.sort_unstable();
    ranks.into_iter().map(element).collect()
}

/// A score as a listpack stores it (Redis's `d2string`), which ZSCAN returns verbatim: an
/// integral value strictly inside the `long long` range prints as an integer, anything else
/// as `%.17g`.
fn listpack_score_text(score: f64) -> String {
    const LONG_LONG_BOUND: f64 = 9_223_372_036_854_775_808.0;
    if score.fract() == 0.0 && score > -LONG_LONG_BOUND && score < LONG_LONG_BOUND {
        (score as i64).to_string()
    } else {
        crate::protocol::reply::format_double(score)
    }
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`.
fn zscan(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let cursor = args::scan_cursor(&argv[2])?;
    let db = ctx.db();
    let empty = || Reply::Array(vec![Reply::bulk(&b"0"[..]), Reply::Array(Vec::new())]);
    let zset = match ctx.ks.lookup_read(db, &argv[1]) {
        None => return Ok(empty()),
        Some(entry) => match &entry.value {
            Value::ZSet(zset) => zset,
            _ => return Err(Error::WrongType),
        },
    };
    // Options are read only once the key exists, as Redis does.
    let options = args::ScanOptions::parse(&argv[3..], false)?;
    let (count, pattern) = (options.count, options.pattern.as_ref());
    let listpack = zset.encoding() == "listpack";
    let mut items = Vec::new();
    let next = zset.scan(cursor, count, |member, score| {
        if pattern.is_some_and(|pattern| !crate::util::glob_match(pattern, member, false)) {
            return;
        }
        items.push(Reply::bulk_copy(member));
        let text = if listpack {
            listpack_score_text(score)
        } else {
            crate::protocol::reply::format_double(score)
        };
        items.push(Reply::bulk(text));
    });
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(items),
    ]))
}

// ---------------------------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF and their STORE forms, ZINTERCARD
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Redis's `zunionInterAggregate`: a NaN sum (inf + -inf, or a NaN weighted score from
    /// ZINTER's later inputs) becomes 0; MIN and MAX keep the target unless `value` compares
    /// strictly below or above it, so a NaN value or a zero of the other sign changes nothing.
    fn apply(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if value < *target {
                    *target = value;
                }
            }
            Aggregate::Max => {
                if value > *target {
                    *target = value;
                }
            }
        }
        debug_assert!(!target.is_nan(), "an aggregate never stores NaN");
    }
}

/// One input: its elements in set order (None for a missing key) and its weight.
struct Source {
    elements: Option<Vec<(f64, CompactBytes)>>,
    weight: f64,
}

impl Source {
    fn len(&self) -> usize {
        self.elements.as_ref().map_or(0, Vec::len)
    }
}

/// Reads the input keys of a set operation (Redis's `zunionInterDiffGenericCommand`): a
/// sorted set gives its elements, a plain set its members with score 1 (Redis 7.0 accepts
/// sets there), a missing key is an empty input, any other type is WRONGTYPE. Every key is
/// read before any option is parsed, so WRONGTYPE wins over a syntax error as in Redis.
fn read_sources(ctx: &mut Ctx<'_, '_>, keys: &[Bytes]) -> Result<Vec<Source>, Error> {
    let db = ctx.db();
    let mut sources = Vec::with_capacity(keys.len());
    for key in keys {
        let elements = match ctx.ks.lookup_read(db, key) {
            None => None,
            Some(entry) => match &entry.value {
                Value::ZSet(zset) => Some(
                    zset.iter_range(0, zset.len(), false)
                        .map(|(score, member)| (score, CompactBytes::new(member)))
                        .collect(),
                ),
                Value::Set(set) => {
                    let mut members = Vec::with_capacity(set.len());
                    set.for_each(|member| {
                        member.with_bytes(|bytes| members.push((1.0, CompactBytes::new(bytes))))
                    });
                    debug_assert_eq!(members.len(), set.len());
                    Some(members)
                }
                _ => return Err(Error::WrongType),
            },
        };
        sources.push(Source {
            elements,
            weight: 1.0,
        });
    }
    debug_assert_eq!(sources.len(), keys.len());
    Ok(sources)
}

/// Reads the inputs of `op` (Redis's `zunionInterDiffGenericCommand`), parses the options
/// after them, and computes the result. `numkeys_index` is where numkeys sits.
/// Returns the result elements (unordered) and whether WITHSCORES was given.
fn set_operation(
    ctx: &mut Ctx<'_, '_>,
    argv: &[Bytes],
    numkeys_index: usize,
    op: SetOp,
    store: bool,
) -> Result<(Vec<(f64, CompactBytes)>, bool), Error> {
    let numkeys = args::int(&argv[numkeys_index])?;
    if numkeys < 1 {
        return Err(Error::err(format!(
            "at least 1 input key is needed for '{}' command",
            ctx.command.fullname
        )));
    }
    let first_key = numkeys_index + 1;
    if numkeys as u64 > (argv.len() - first_key) as u64 {
        return Err(Error::Syntax);
    }
    let numkeys = numkeys as usize;
    let mut sources = read_sources(ctx, &argv[first_key..first_key + numkeys])?;
    let mut aggregate = Aggregate::Sum;
    let mut withscores = false;
    let mut index = first_key + numkeys;
    while index < argv.len() {
        let remaining = argv.len() - index;
        let option = &argv[index];
        if op != SetOp::Diff && remaining > numkeys && args::is(option, "weights") {
            for (offset, source) in sources.iter_mut().enumerate() {
                source.weight = args::double(&argv[index + 1 + offset])
                    .ok_or_else(|| Error::from(WEIGHT_NOT_FLOAT))?;
            }
            index += 1 + numkeys;
        } else if op != SetOp::Diff && remaining >= 2 && args::is(option, "aggregate") {
            let value = &argv[index + 1];
            aggregate = if args::is(value, "sum") {
                Aggregate::Sum
            } else if args::is(value, "min") {
                Aggregate::Min
            } else if args::is(value, "max") {
                Aggregate::Max
            } else {
                return Err(Error::Syntax);
            };
            index += 2;
        } else if !store && args::is(option, "withscores") {
            withscores = true;
            index += 1;
        } else {
            return Err(Error::Syntax);
        }
    }
    Ok((combine(&sources, op, aggregate), withscores))
}

/// A weighted score; NaN (0 * inf) becomes 0 as in Redis.
fn weighted(score: f64, weight: f64) -> f64 {
    let value = score * weight;
    if value.is_nan() {
        0.0
    } else {
        value
    }
}

/// Computes `op` over `sources` as Redis does, including the order in which scores are
/// aggregated (floating-point sums depend on it): UNION and INTER visit the inputs from the
/// smallest to the largest (Redis's qsort by cardinality, stable in glibc for equal sizes);
/// DIFF keeps the first input first. Returns the elements unordered.
fn combine(sources: &[Source], op: SetOp, aggregate: Aggregate) -> Vec<(f64, CompactBytes)> {
    use std::collections::{HashMap, HashSet};
    assert!(!sources.is_empty(), "numkeys is checked to be at least 1");
    let mut order: Vec<usize> = (0..sources.len()).collect();
    if op != SetOp::Diff {
        order.sort_by_key(|&index| sources[index].len());
    }
    match op {
        SetOp::Union => {
            let mut positions: HashMap<CompactBytes, usize> = HashMap::new();
            let mut result: Vec<(f64, CompactBytes)> = Vec::new();
            for &index in &order {
                let source = &sources[index];
                for (score, member) in source.elements.iter().flatten() {
                    let value = weighted(*score, source.weight);
                    match positions.get(member) {
                        Some(&position) => aggregate.apply(&mut result[position].0, value),
                        None => {
                            positions.insert(member.clone(), result.len());
                            result.push((value, member.clone()));
                        }
                    }
                }
            }
            debug_assert_eq!(positions.len(), result.len());
            result
        }
        SetOp::Inter => {
            // Walk the smallest input; an empty or missing input empties the result.
            let Some(elements) = sources[order[0]].elements.as_ref() else {
                return Vec::new();
            };
            let lookups: Vec<HashMap<&[u8], f64>> = order[1..]
                .iter()
                .map(|&index| {
                    sources[index]
                        .elements
                        .iter()
                        .flatten()
                        .map(|(score, member)| (member.as_slice(), *score))
                        .collect()
                })
                .collect();
            let mut result = Vec::new();
            'members: for (score, member) in elements {
                // Redis turns a NaN product into 0 for the first input only; the later
                // products reach the aggregate raw (a NaN sum then becomes 0, MIN/MAX ignore it).
                let mut value = weighted(*score, sources[order[0]].weight);
                for (lookup, &index) in lookups.iter().zip(&order[1..]) {
                    let Some(other) = lookup.get(member.as_slice()) else {
                        continue 'members;
                    };
                    aggregate.apply(&mut value, *other * sources[index].weight);
                }
                result.push((value, member.clone()));
            }
            result
        }
        SetOp::Diff => {
            let Some(elements) = sources[0].elements.as_ref() else {
                return Vec::new();
            };
            let others: HashSet<&[u8]> = sources[1..]
                .iter()
                .flat_map(|source| source.elements.iter().flatten())
                .map(|(_, member)| member.as_slice())
                .collect();
            elements
                .iter()
                .filter(|(_, member)| !others.contains(member.as_slice()))
                .cloned()
                .collect()
        }
    }
}

fn set_operation_reply(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], op: SetOp) -> CmdResult {
    let (mut elements, withscores) = set_operation(ctx, argv, 1, op, false)?;
    elements.sort_by(|(score_a, member_a), (score_b, member_b)| {
        crate::types::zset::compare(*score_a, member_a, *score_b, member_b)
    });
    let elements = elements
        .into_iter()
        .map(|(score, member)| (score, Bytes::from(member.into_vec())))
        .collect();
    Ok(render(elements, withscores, ctx.session.resp3))
}

fn set_operation_store(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], op: SetOp) -> CmdResult {
    let (elements, _) = set_operation(ctx, argv, 2, op, true)?;
    let event = match op {
        SetOp::Union => "zunionstore",
        SetOp::Inter => "zinterstore",
        SetOp::Diff => "zdiffstore",
    };
    Ok(Reply::Integer(store(ctx, &argv[1], elements, event)))
}

/// `ZUNION numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`.
fn zunion(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    set_operation_reply(ctx, argv, SetOp::Union)
}

/// `ZINTER numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`.
fn zinter(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    set_operation_reply(ctx, argv, SetOp::Inter)
}

/// `ZDIFF numkeys key [key ...] [WITHSCORES]`.
fn zdiff(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    set_operation_reply(ctx, argv, SetOp::Diff)
}

/// `ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]`.
fn zunionstore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    set_operation_store(ctx, argv, SetOp::Union)
}

/// `ZINTERSTORE destination numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]`.
fn zinterstore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    set_operation_store(ctx, argv, SetOp::Inter)
}

/// `ZDIFFSTORE destination numkeys key [key ...]`.
fn zdiffstore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    set_operation_store(ctx, argv, SetOp::Diff)
}

/// `ZINTERCARD numkeys key [key ...] [LIMIT limit]`.
fn zintercard(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let numkeys = args::int(&argv[1])?;
    if numkeys < 1 {
        return Err(Error::err(format!(
            "at least 1 input key is needed for '{}' command",
            ctx.command.fullname
        )));
    }
    if numkeys as u64 > (argv.len() - 2) as u64 {
        return Err(Error::Syntax);
    }
    let numkeys = numkeys as usize;
    let sources = read_sources(ctx, &argv[2..2 + numkeys])?;
    let mut limit = 0usize;
    let mut index = 2 + numkeys;
    while index < argv.len() {
        if argv.len() - index >= 2 && args::is(&argv[index], "limit") {
            let value = args::int(&argv[index + 1]).map_err(|_| Error::from(LIMIT_NEGATIVE))?;
            if value < 0 {
                return Err(LIMIT_NEGATIVE.into());
            }
            limit = value as usize;
            index += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    let count = combine(&sources, SetOp::Inter, Aggregate::Sum).len();
    let count = if limit > 0 { count.min(limit) } else { count };
    Ok(Reply::Integer(count as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zset_of(pairs: &[(f64, &str)]) -> ZSet {
        let mut zset = ZSet::new();
        for (score, member) in pairs {
            zset.insert(*score, member.as_bytes(), Limits::ZSET_DEFAULT);
        }
        zset
    }

    fn names(elements: &[(f64, Bytes)]) -> Vec<&[u8]> {
        elements.iter().map(|(_, member)| &member[..]).collect()
    }

    fn request(
        words: &[&str],
        kind: Option<RangeKind>,
        reverse: Option<bool>,
    ) -> Result<RangeRequest, Error> {
        let args: Vec<Bytes> = words
            .iter()
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect();
        RangeRequest::parse(&args, kind, reverse, false)
    }

    /// Runs `commands` on a fresh server; returns the propagated commands, one per line,
    /// without SELECT.
    fn propagated(commands: &[&[&str]]) -> Vec<String> {
        let test = crate::testing::TestServer::new();
        let mut session = test.session();
        for argv in commands {
            test.command(&mut session, argv);
        }
        test.propagated()
            .into_iter()
            .filter(|line| !line.starts_with("SELECT"))
            .collect()
    }

    /// Checked against a real Redis 7.0.15's AOF for the same commands.
    #[test]
    fn propagation_matches_redis() {
        let lines = propagated(&[
            &["zadd", "a", "1", "x", "2", "y"],
            &["zmpop", "1", "a", "min", "count", "5"],
            &["zadd", "b", "1", "x"],
            &["zmpop", "1", "b", "max"],
            &["zadd", "c", "1", "x"],
            &["zpopmin", "c", "0"],
            &["zpopmin", "nokey", "3"],
            &["zadd", "c", "GT", "0", "x"],
            &["zrangestore", "d", "nokey", "0", "-1"],
            &["zunionstore", "d", "1", "nokey"],
            &["zincrby", "c", "1", "x"],
        ]);
        assert_eq!(
            lines,
            [
                "zadd a 1 x 2 y",
                "ZPOPMIN a 2",
                "zadd b 1 x",
                "ZPOPMAX b 1",
                "zadd c 1 x",
                "zincrby c 1 x",
            ]
        );
    }

    #[test]
    fn rank_clamping_matches_redis() {
        assert_eq!(rank_range(0, -1, 3), (0, 3));
        assert_eq!(rank_range(-100, 100, 3), (0, 3));
        assert_eq!(rank_range(2, 1, 3), (0, 0));
        assert_eq!(rank_range(3, 5, 3), (0, 0));
        assert_eq!(rank_range(-1, -1, 3), (2, 3));
    }

    #[test]
    fn score_and_lex_ranges_select_in_both_directions() {
        let zset = zset_of(&[(1.0, "a"), (2.0, "b"), (3.0, "c"), (4.0, "d")]);
        let forward = request(&["(1", "3", "byscore"], None, None).expect("valid");
        assert_eq!(names(&forward.select(&zset)), vec![&b"b"[..], b"c"]);
        let reverse = request(
            &["+inf", "-inf", "byscore", "rev", "limit", "1", "2"],
            None,
            None,
        )
        .expect("valid");
        assert_eq!(names(&reverse.select(&zset)), vec![&b"c"[..], b"b"]);
        let same = zset_of(&[(0.0, "a"), (0.0, "b"), (0.0, "c")]);
        let lex = request(&["[b", "+"], Some(RangeKind::Lex), Some(false)).expect("valid");
        assert_eq!(names(&lex.select(&same)), vec![&b"b"[..], b"c"]);
        let empty = request(&["+", "-"], Some(RangeKind::Lex), Some(false)).expect("valid");
        assert!(empty.select(&same).is_empty());
    }

    #[test]
    fn option_conflicts_use_redis_texts() {
        assert_eq!(
            request(&["0", "1", "limit", "0", "1"], None, None),
            Err(Error::from(LIMIT_NEEDS_BY))
        );
        assert_eq!(
            request(&["-", "+", "bylex", "withscores"], None, None),
            Err(Error::from(WITHSCORES_BYLEX))
        );
        assert_eq!(
            request(&["a", "1", "byscore"], None, None),
            Err(Error::from(MIN_MAX_NOT_FLOAT))
        );
        assert_eq!(
            request(&["a", "+", "bylex"], None, None),
            Err(Error::from(MIN_MAX_NOT_STRING))
        );
        assert_eq!(
            request(&["0", "1", "bylex"], Some(RangeKind::Score), None),
            Err(Error::Syntax)
        );
    }

    #[test]
    fn zadd_flags_follow_zset_add() {
        let mut zset = zset_of(&[(1.0, "a")]);
        let gt = AddFlags {
            gt: true,
            ..AddFlags::default()
        };
        let (outcome, error) = add_pairs(
            &mut zset,
            gt,
            &[(0.5, b"a"), (2.0, b"b")],
            Limits::ZSET_DEFAULT,
        );
        assert!(error.is_none());
        assert_eq!((outcome.added, outcome.updated), (1, 0));
        let incr = AddFlags {
            incr: true,
            ..AddFlags::default()
        };
        zset.update(b"a", f64::INFINITY);
        let (_, error) = add_pairs(
            &mut zset,
            incr,
            &[(f64::NEG_INFINITY, b"a")],
            Limits::ZSET_DEFAULT,
        );
        assert_eq!(error, Some(Error::from(SCORE_NAN)));
    }

    #[test]
    fn scores_parse_like_strtod() {
        assert_eq!(args::double(b"0x10"), Some(16.0));
        assert_eq!(args::double(b"-0x1.8p1"), Some(-3.0));
        assert_eq!(args::double(b"1e400"), None);
        assert_eq!(args::double(b"1e-400"), None);
        assert_eq!(args::double(b" 1"), None);
        assert_eq!(args::double(b"nan"), None);
        assert_eq!(args::double(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(args::double(b".5"), Some(0.5));
        assert_eq!(args::double(b"1e"), None);
        assert_eq!(parse_range_score(b" 1"), Some(1.0));
        assert_eq!(parse_range_score(b""), Some(0.0));
        assert_eq!(parse_range_score(b"1e400"), Some(f64::INFINITY));
    }

    #[test]
    fn listpack_scores_print_like_d2string() {
        assert_eq!(listpack_score_text(1e18), "1000000000000000000");
        assert_eq!(
            listpack_score_text(-(2f64.powi(63))),
            "-9.2233720368547758e+18"
        );
        assert_eq!(listpack_score_text(2.5), "2.5");
        assert_eq!(listpack_score_text(f64::INFINITY), "inf");
        assert_eq!(listpack_score_text(-0.0), "0");
    }

    #[test]
    fn aggregates_turn_nan_into_zero() {
        let mut value = f64::INFINITY;
        Aggregate::Sum.apply(&mut value, f64::NEG_INFINITY);
        assert_eq!(value, 0.0);
        assert_eq!(weighted(f64::INFINITY, 0.0), 0.0);
    }

    /// Redis compares strictly: a NaN value or a zero of the other sign leaves MIN and MAX
    /// alone (checked against Redis 7.0.15 with -0 weights).
    #[test]
    fn min_and_max_keep_the_target_on_ties_and_nan() {
        let mut value = 0.0f64;
        Aggregate::Min.apply(&mut value, -0.0);
        assert!(value.is_sign_positive());
        Aggregate::Max.apply(&mut value, f64::NAN);
        assert_eq!(value, 0.0);
        let mut value = -0.0f64;
        Aggregate::Max.apply(&mut value, 0.0);
        assert!(value.is_sign_negative());
        let mut value = 1.0;
        Aggregate::Sum.apply(&mut value, f64::INFINITY * 0.0);
        assert_eq!(value, 0.0, "ZINTER's later NaN products make a sum of 0");
    }

    #[test]
    fn plain_sets_are_inputs_with_score_one() {
        let server = crate::testing::TestServer::new();
        let mut session = server.session();
        for line in ["SADD ints 3 1 2", "SADD words a b", "ZADD z 5 a 0.5 1"] {
            server.run(&mut session, line);
        }
        assert_eq!(
            server.run(&mut session, "ZUNION 2 ints z WEIGHTS 2 1 WITHSCORES"),
            "*8\r\n$1\r\n2\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n2\r\n\
             $1\r\n1\r\n$3\r\n2.5\r\n$1\r\na\r\n$1\r\n5\r\n"
        );
        assert_eq!(
            server.run(&mut session, "ZINTER 2 words z AGGREGATE MIN"),
            "*1\r\n$1\r\na\r\n"
        );
        assert_eq!(
            server.run(&mut session, "ZDIFF 2 ints z"),
            "*2\r\n$1\r\n2\r\n$1\r\n3\r\n"
        );
        assert_eq!(server.run(&mut session, "ZINTERCARD 2 ints z"), ":1\r\n");
        assert_eq!(
            server.run(&mut session, "ZUNIONSTORE out 2 ints words"),
            ":5\r\n"
        );
        assert_eq!(
            server.run(&mut session, "OBJECT ENCODING out"),
            "$8\r\nlistpack\r\n"
        );
        server.run(&mut session, "RPUSH list x");
        assert!(server
            .run(&mut session, "ZUNION 2 ints list")
            .starts_with("-WRONGTYPE"));
    }

    #[test]
    fn movable_keys_are_clamped() {
        let argv: Vec<Bytes> = ["zunion", "5", "a", "b"]
            .iter()
            .map(|w| Bytes::from_static(w.as_bytes()))
            .collect();
        assert_eq!(keys_after_numkeys_at_1(&argv), vec![2, 3]);
        let argv: Vec<Bytes> = ["zunionstore", "d", "x", "a"]
            .iter()
            .map(|w| Bytes::from_static(w.as_bytes()))
            .collect();
        assert_eq!(destination_and_keys(&argv), vec![1]);
    }
}
