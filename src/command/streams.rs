//! Stream commands (Redis 7.0's t_stream.c): XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM,
//! XREAD, XREADGROUP, XGROUP (CREATE, CREATECONSUMER, DELCONSUMER, DESTROY, SETID, HELP),
//! XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO (STREAM, GROUPS, CONSUMERS, HELP), XSETID.
//!
//! Replies, error texts, keyspace events and propagated effects follow Redis 7.0.15: XADD
//! propagates with the ID it generated and, after an approximate trim, with the exact bound
//! it reached (`MAXLEN = <length>` / `MINID = <first id>`); XREADGROUP, XCLAIM and XAUTOCLAIM
//! propagate their consumer group changes as `XCLAIM ... FORCE JUSTID LASTID` and
//! `XGROUP SETID|CREATECONSUMER` effects, never as themselves.
//!
//! Blocking XREAD/XREADGROUP go through `command::block`: the command re-run for a blocked
//! client is the one it sent with `$` replaced by the concrete last ID it saw (and COUNT set
//! to Redis's default for blocked reads), so a re-run means what the original meant.

use super::block;
use super::exec::{Ctx, Mode};
use super::table::{Lock, Spec};
use crate::command::args;
use crate::error::{CmdResult, Error};
use crate::keyspace::notify;
use crate::protocol::Reply;
use crate::types::stream::{unpack, Entry, Group, NodeLimits, Stream, StreamId, Trim};
use crate::types::{CompactBytes, Value};
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("xadd", xadd, Lock::Keys),
    Spec::new("xrange", xrange, Lock::Keys),
    Spec::new("xrevrange", xrevrange, Lock::Keys),
    Spec::new("xlen", xlen, Lock::Keys),
    Spec::new("xdel", xdel, Lock::Keys),
    Spec::new("xtrim", xtrim, Lock::Keys),
    Spec::new("xread", xread, Lock::Custom(read_keys)),
    Spec::new("xreadgroup", xreadgroup, Lock::Custom(read_keys)),
    Spec::new("xgroup|create", xgroup_create, Lock::Keys),
    Spec::new("xgroup|createconsumer", xgroup_createconsumer, Lock::Keys),
    Spec::new("xgroup|delconsumer", xgroup_delconsumer, Lock::Keys),
    Spec::new("xgroup|destroy", xgroup_destroy, Lock::Keys),
    Spec::new("xgroup|setid", xgroup_setid, Lock::Keys),
    Spec::new("xgroup|help", xgroup_help, Lock::None),
    Spec::new("xack", xack, Lock::Keys),
    Spec::new("xpending", xpending, Lock::Keys),
    Spec::new("xclaim", xclaim, Lock::Keys),
    Spec::new("xautoclaim", xautoclaim, Lock::Keys),
    Spec::new("xinfo|stream", xinfo_stream, Lock::Keys),
    Spec::new("xinfo|groups", xinfo_groups, Lock::Keys),
    Spec::new("xinfo|consumers", xinfo_consumers, Lock::Keys),
    Spec::new("xinfo|help", xinfo_help, Lock::None),
    Spec::new("xsetid", xsetid, Lock::Keys),
];

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const XADD_ID_TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const XADD_ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
const XADD_EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";
const INVALID_START: &str = "ERR invalid start ID for the interval";
const INVALID_END: &str = "ERR invalid end ID for the interval";
const MAXLEN_NEGATIVE: &str = "ERR The MAXLEN argument must be >= 0.";
const LIMIT_NEGATIVE: &str = "ERR The LIMIT argument must be >= 0.";
const MAXLEN_AND_MINID: &str =
    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
const LIMIT_WITHOUT_STRATEGY: &str =
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy";
const LIMIT_WITHOUT_APPROX: &str =
    "ERR syntax error, LIMIT cannot be used without the special ~ option";
const XTRIM_WITHOUT_STRATEGY: &str =
    "ERR syntax error, XTRIM must be called with a trimming strategy";
const UNBALANCED: &str = "ERR Unbalanced XREAD list of streams: for each stream key an ID or \
    '$' must be specified.";
const TIMEOUT_NOT_INTEGER: &str = "ERR timeout is not an integer or out of range";
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
const TIMEOUT_OUT_OF_RANGE: &str = "ERR timeout is out of range";
const GROUP_ONLY_XREADGROUP: &str =
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
const NOACK_ONLY_XREADGROUP: &str =
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.";
const MISSING_GROUP: &str = "ERR Missing GROUP option for XREADGROUP";
const DOLLAR_IN_XREADGROUP: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: \
    you want to read the history of this consumer by specifying a proper ID, or use the > ID \
    to get new messages. The $ ID would just return an empty result set.";
const GREATER_IN_XREAD: &str = "ERR The > ID can be specified only when calling XREADGROUP \
    using the GROUP <group> <consumer> option.";
const BLOCKED_GROUP_GONE: &str =
    "NOGROUP the consumer group this client was blocked on no longer exists";
const BLOCKED_KEY_GONE: &str = "UNBLOCKED the stream key no longer exists";
const XGROUP_NEEDS_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note \
    that for CREATE you may want to use the MKSTREAM option to create an empty stream \
    automatically.";
const BUSYGROUP: &str = "BUSYGROUP Consumer Group name already exists";
const ENTRIESREAD_INVALID: &str = "ERR value for ENTRIESREAD must be positive or -1";
const XSETID_SMALLER_THAN_TOP: &str =
    "ERR The ID specified in XSETID is smaller than the target stream top item";
const XSETID_SMALLER_THAN_PROVIDED: &str =
    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id";
const XSETID_ENTRIES_ADDED_SMALL: &str =
    "ERR The entries_added specified in XSETID is smaller than the target stream length";
const ENTRIES_ADDED_NEGATIVE: &str = "ERR entries_added must be positive";
const XAUTOCLAIM_COUNT: &str = "ERR COUNT must be > 0";

/// Entries a blocked XREAD/XREADGROUP without COUNT receives at most (Redis's
/// XREAD_BLOCKED_DEFAULT_COUNT).
const BLOCKED_READ_COUNT_DEFAULT: u64 = 1000;
/// XAUTOCLAIM scans at most COUNT times this many PEL entries.
const AUTOCLAIM_ATTEMPTS_FACTOR: u64 = 10;

fn bulk_id(id: StreamId) -> Reply {
    Reply::Bulk(id_arg(id))
}

/// `ms-seq` as bytes, written with `itoa`: XADD renders an ID for its reply and its
/// propagated rewrite on every call, and `Display` through `format!` cost more than the rest
/// of the reply.
fn id_arg(id: StreamId) -> Bytes {
    let mut ms = itoa::Buffer::new();
    let mut seq = itoa::Buffer::new();
    let (ms, seq) = (ms.format(id.ms), seq.format(id.seq));
    let mut text = Vec::with_capacity(ms.len() + 1 + seq.len());
    text.extend_from_slice(ms.as_bytes());
    text.push(b'-');
    text.extend_from_slice(seq.as_bytes());
    Bytes::from(text)
}

fn bulk_int(value: i64) -> Bytes {
    Bytes::from(value.to_string())
}

/// `[id, [field, value, ...]]`.
fn entry_reply(id: StreamId, packed: Entry<'_>) -> Reply {
    let mut fields = Vec::new();
    for (field, value) in unpack(packed) {
        fields.push(Reply::bulk_copy(field));
        fields.push(Reply::bulk_copy(value));
    }
    Reply::Array(vec![bulk_id(id), Reply::Array(fields)])
}

fn nogroup(key: &[u8], group: &[u8]) -> Error {
    Error::Text(std::borrow::Cow::Owned(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        args::text(key),
        args::text(group)
    )))
}

fn no_such_group_for_key(key: &[u8], group: &[u8]) -> Error {
    Error::Text(std::borrow::Cow::Owned(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        args::text(group),
        args::text(key)
    )))
}

fn subcommand_syntax(argv: &[Bytes]) -> Error {
    Error::Text(std::borrow::Cow::Owned(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        args::text(&argv[1][..argv[1].len().min(128)]),
        args::text(&argv[0]).to_ascii_uppercase()
    )))
}

// ---------------------------------------------------------------------------------------------
// ID parsing
// ---------------------------------------------------------------------------------------------

/// Redis's string2ull: a canonical non-negative integer, or what C's strtoull accepts whole
/// (leading spaces, a sign, leading zeros; a minus wraps around).
fn parse_unsigned(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    if crate::types::is_canonical_integer(text) {
        let value = crate::protocol::parser::parse_i64(text)?;
        return u64::try_from(value).ok();
    }
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        if !matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            break;
        }
        rest = tail;
    }
    let mut negative = false;
    if let Some((&sign, tail)) = rest.split_first() {
        if sign == b'+' || sign == b'-' {
            negative = sign == b'-';
            rest = tail;
        }
    }
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u64 = 0;
    for digit in rest {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Redis's streamGenericParseIDOrReply. `strict` refuses `-` and `+`; `allow_auto_seq`
/// accepts `<ms>-*` (XADD), reported as a missing sequence.
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_auto_seq: bool,
) -> Result<(StreamId, bool), Error> {
    let invalid = || Error::from(INVALID_ID);
    if arg.len() > 127 {
        return Err(invalid());
    }
    // Redis copies the argument into a C string: anything after a NUL is ignored.
    let arg = match arg.iter().position(|&byte| byte == 0) {
        Some(end) => &arg[..end],
        None => arg,
    };
    if arg == b"-" || arg == b"+" {
        if strict {
            return Err(invalid());
        }
        let id = if arg == b"-" {
            StreamId::MIN
        } else {
            StreamId::MAX
        };
        return Ok((id, true));
    }
    match arg.iter().position(|&byte| byte == b'-') {
        Some(dash) => {
            let ms = parse_unsigned(&arg[..dash]).ok_or_else(invalid)?;
            let seq_text = &arg[dash + 1..];
            if allow_auto_seq && seq_text == b"*" {
                return Ok((StreamId::new(ms, 0), false));
            }
            let seq = parse_unsigned(seq_text).ok_or_else(invalid)?;
            Ok((StreamId::new(ms, seq), true))
        }
        None => {
            let ms = parse_unsigned(arg).ok_or_else(invalid)?;
            Ok((StreamId::new(ms, missing_seq), true))
        }
    }
}

/// A strict ID (`-` and `+` refused), the sequence defaulting to `missing_seq`.
fn parse_strict_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Error> {
    parse_id_full(arg, missing_seq, true, false).map(|(id, _)| id)
}

/// An ID where `-` and `+` mean the minimum and maximum.
fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Error> {
    parse_id_full(arg, missing_seq, false, false).map(|(id, _)| id)
}

/// A range bound: an ID, or `(ID` for an exclusive one (Redis's streamParseIntervalIDOrReply).
fn parse_interval(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Error> {
    if arg.len() > 1 && arg[0] == b'(' {
        return Ok((parse_strict_id(&arg[1..], missing_seq)?, true));
    }
    Ok((parse_id(arg, missing_seq)?, false))
}

/// The start of a range: exclusive bounds step to the next ID.
fn range_start(arg: &[u8]) -> Result<StreamId, Error> {
    let (id, exclusive) = parse_interval(arg, 0)?;
    if exclusive {
        return id.next().ok_or(Error::from(INVALID_START));
    }
    Ok(id)
}

/// The end of a range: exclusive bounds step to the previous ID.
fn range_end(arg: &[u8]) -> Result<StreamId, Error> {
    let (id, exclusive) = parse_interval(arg, u64::MAX)?;
    if exclusive {
        return id.previous().ok_or(Error::from(INVALID_END));
    }
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// Key access
// ---------------------------------------------------------------------------------------------

/// The stream at `key` for a write (Redis's lookupKeyWrite), None if missing.
fn stream_write<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'c mut Stream>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup(db, key) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::Stream(stream) => Ok(Some(stream)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

/// The stream at `key` for a read (counts keyspace hits and misses), None if missing.
fn stream_read<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'c mut Stream>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, key) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::Stream(stream) => Ok(Some(stream)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

/// Counts a write that neither wakes blocked clients nor touches WATCH (Redis's bare
/// `server.dirty++`, as for consumer group bookkeeping).
fn count_write(ctx: &mut Ctx<'_, '_>) {
    ctx.ks.dirty += 1;
}

fn node_limits(ctx: &Ctx<'_, '_>) -> NodeLimits {
    NodeLimits {
        bytes_max: crate::config_int!(ctx.server.config, "stream-node-max-bytes").max(0) as usize,
        entries_max: crate::config_int!(ctx.server.config, "stream-node-max-entries").max(0) as u64,
    }
}

// ---------------------------------------------------------------------------------------------
// XADD, XTRIM
// ---------------------------------------------------------------------------------------------

/// What XADD and XTRIM parsed (Redis's streamAddTrimArgs).
struct AddTrimArgs {
    trim: Option<Trim>,
    approx: bool,
    /// Entries an approximate trim may remove at most; 0 for no limit.
    limit: u64,
    /// Where the MAXLEN/MINID value is, for the propagated rewrite.
    strategy_index: usize,
    no_mkstream: bool,
    /// The explicit ID and whether its sequence was given (not `<ms>-*`).
    id: Option<(StreamId, bool)>,
    /// Index of the ID argument (or `*`); XADD's fields follow it.
    id_index: usize,
}

/// Redis's streamParseAddOrTrimArgsOrReply.
fn parse_add_trim(ctx: &Ctx<'_, '_>, argv: &[Bytes], xadd: bool) -> Result<AddTrimArgs, Error> {
    let mut parsed = AddTrimArgs {
        trim: None,
        approx: false,
        limit: 0,
        strategy_index: 0,
        no_mkstream: false,
        id: None,
        id_index: argv.len(),
    };
    let mut limit_given = false;
    let mut index = 2;
    while index < argv.len() {
        let more = argv.len() - 1 - index;
        let option = &argv[index];
        if xadd && &option[..] == b"*" {
            parsed.id_index = index;
            break;
        } else if (args::is(option, "maxlen") || args::is(option, "minid")) && more > 0 {
            if parsed.trim.is_some() {
                return Err(MAXLEN_AND_MINID.into());
            }
            let maxlen = args::is(option, "maxlen");
            parsed.approx = false;
            let next = &argv[index + 1][..];
            if more >= 2 && next == b"~" {
                parsed.approx = true;
                index += 1;
            } else if more >= 2 && next == b"=" {
                index += 1;
            }
            let value = &argv[index + 1];
            if maxlen {
                let length = args::int(value)?;
                if length < 0 {
                    return Err(MAXLEN_NEGATIVE.into());
                }
                parsed.trim = Some(Trim::MaxLen(length as u64));
            } else {
                parsed.trim = Some(Trim::MinId(parse_strict_id(value, 0)?));
            }
            index += 1;
            parsed.strategy_index = index;
        } else if args::is(option, "limit") && more > 0 {
            let limit = args::int(&argv[index + 1])?;
            if limit < 0 {
                return Err(LIMIT_NEGATIVE.into());
            }
            parsed.limit = limit as u64;
            limit_given = true;
            index += 1;
        } else if xadd && args::is(option, "nomkstream") {
            parsed.no_mkstream = true;
        } else if xadd {
            parsed.id = Some(parse_id_full(option, 0, true, true)?);
            parsed.id_index = index;
            break;
        } else {
            return Err(Error::Syntax);
        }
        index += 1;
    }
    if parsed.limit != 0 && parsed.trim.is_none() {
        return Err(LIMIT_WITHOUT_STRATEGY.into());
    }
    if !xadd && parsed.trim.is_none() {
        return Err(XTRIM_WITHOUT_STRATEGY.into());
    }
    if ctx.session.obey {
        // The AOF or a primary: the bound was rewritten to be exact, so no node limit (and
        // `=` with LIMIT, which Redis itself propagates, is accepted).
        parsed.limit = 0;
    } else if limit_given {
        if !parsed.approx {
            return Err(LIMIT_WITHOUT_APPROX.into());
        }
    } else if parsed.approx {
        let entries_max = ctx.server.config.int("stream-node-max-entries");
        let mut limit = entries_max.saturating_mul(100);
        if limit <= 0 {
            limit = 10_000;
        }
        parsed.limit = limit.min(1_000_000) as u64;
    } else {
        parsed.limit = 0;
    }
    Ok(parsed)
}

/// After an approximate trim, the bound actually reached replaces `~ <bound>` in the
/// propagated command (Redis's streamRewriteApproxSpecifier and streamRewriteTrimArgument).
fn rewrite_trim(stream: &Stream, parsed: &AddTrimArgs, rewritten: &mut [Bytes]) {
    debug_assert!(parsed.approx && parsed.strategy_index >= 1);
    rewritten[parsed.strategy_index - 1] = Bytes::from_static(b"=");
    rewritten[parsed.strategy_index] = match parsed.trim {
        Some(Trim::MaxLen(_)) => bulk_int(stream.len() as i64),
        // The first ID in the tree, deleted or not: a node's master entry.
        _ => id_arg(
            stream
                .nodes()
                .keys()
                .next()
                .copied()
                .unwrap_or(StreamId::MAX),
        ),
    };
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value
/// [field value ...]`: the ID of the added entry, or null with NOMKSTREAM on a missing key.
fn xadd(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let parsed = parse_add_trim(ctx, argv, true)?;
    let field_start = parsed.id_index + 1;
    if argv.len() < field_start + 2 || (argv.len() - field_start) % 2 == 1 {
        return Err(Error::Arity("xadd".into()));
    }
    if let Some((id, true)) = parsed.id {
        if id.is_zero() {
            return Err(XADD_ID_ZERO.into());
        }
    }
    let db = ctx.db();
    let key = &argv[1];
    let limits = node_limits(ctx);
    let now_ms = ctx.now_ms();
    let exists = stream_write(ctx, key)?.is_some();
    if !exists {
        if parsed.no_mkstream {
            return Ok(Reply::Null);
        }
        ctx.ks
            .set(db, key, Value::Stream(Box::new(Stream::new())), false);
    }
    let propagating = ctx.propagating();
    let Some(stream) = stream_write(ctx, key)? else {
        return Err(Error::err("internal error: stream vanished"));
    };
    if stream.last_id == StreamId::MAX {
        return Err(XADD_EXHAUSTED.into());
    }
    let id = match parsed.id {
        Some((id, true)) => id,
        Some((id, false)) => {
            if stream.last_id.ms == id.ms {
                if stream.last_id.seq == u64::MAX {
                    return Err(XADD_ID_TOO_SMALL.into());
                }
                StreamId::new(id.ms, stream.last_id.seq + 1)
            } else {
                id
            }
        }
        None => stream.next_id(now_ms).ok_or(Error::from(XADD_EXHAUSTED))?,
    };
    if id <= stream.last_id {
        return Err(XADD_ID_TOO_SMALL.into());
    }
    let pairs: Vec<(&[u8], &[u8])> = argv[field_start..]
        .chunks_exact(2)
        .map(|pair| (&pair[0][..], &pair[1][..]))
        .collect();
    stream.append(id, &pairs, limits);
    let mut rewritten: Option<Vec<Bytes>> = None;
    let mut trimmed = false;
    if let Some(trim) = parsed.trim {
        trimmed = stream.trim(trim, parsed.approx, parsed.limit) > 0;
        if parsed.approx && propagating {
            let mut args = argv.to_vec();
            rewrite_trim(stream, &parsed, &mut args);
            rewritten = Some(args);
        }
    }
    // Rendered once: the reply and the rewrite share the bytes.
    let id_text = id_arg(id);
    if propagating && !matches!(parsed.id, Some((_, true))) {
        rewritten.get_or_insert_with(|| argv.to_vec())[parsed.id_index] = id_text.clone();
    }
    if exists {
        ctx.ks.signal_modified(db, key);
    }
    ctx.ks.notify(notify::STREAM, "xadd", db, key);
    if trimmed {
        ctx.ks.notify(notify::STREAM, "xtrim", db, key);
    }
    if let Some(args) = rewritten {
        ctx.propagate(args);
    }
    Ok(Reply::Bulk(id_text))
}

/// `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`: the number of entries removed.
fn xtrim(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let parsed = parse_add_trim(ctx, argv, false)?;
    let db = ctx.db();
    let key = &argv[1];
    let Some(stream) = stream_write(ctx, key)? else {
        return Ok(Reply::Integer(0));
    };
    let Some(trim) = parsed.trim else {
        return Err(XTRIM_WITHOUT_STRATEGY.into());
    };
    let removed = stream.trim(trim, parsed.approx, parsed.limit);
    if removed > 0 {
        if parsed.approx {
            let mut args = argv.to_vec();
            rewrite_trim(stream, &parsed, &mut args);
            ctx.propagate(args);
        }
        ctx.ks.notify(notify::STREAM, "xtrim", db, key);
        ctx.ks.signal_modified(db, key);
    }
    Ok(Reply::Integer(removed as i64))
}

// ---------------------------------------------------------------------------------------------
// XRANGE, XREVRANGE, XLEN, XDEL
// ---------------------------------------------------------------------------------------------

/// `XRANGE key start end [COUNT count]` and XREVRANGE (`end start`).
fn range_command(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], reverse: bool) -> CmdResult {
    let (start_arg, end_arg) = if reverse {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let start = range_start(start_arg)?;
    let end = range_end(end_arg)?;
    let mut count: Option<u64> = None;
    let mut index = 4;
    while index < argv.len() {
        if args::is(&argv[index], "count") && index + 1 < argv.len() {
            count = Some(args::int(&argv[index + 1])?.max(0) as u64);
            index += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    let Some(stream) = stream_read(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == Some(0) {
        return Ok(Reply::NullArray);
    }
    let limit = count.map_or(usize::MAX, |count| count.min(usize::MAX as u64) as usize);
    let range = stream.range(start, end);
    let entries: Vec<Reply> = if reverse {
        range
            .rev()
            .take(limit)
            .map(|(id, packed)| entry_reply(*id, packed))
            .collect()
    } else {
        range
            .take(limit)
            .map(|(id, packed)| entry_reply(*id, packed))
            .collect()
    };
    Ok(Reply::Array(entries))
}

fn xrange(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    range_command(ctx, argv, false)
}

fn xrevrange(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    range_command(ctx, argv, true)
}

/// `XLEN key`.
fn xlen(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let length = stream_read(ctx, &argv[1])?.map_or(0, |stream| stream.len());
    Ok(Reply::Integer(length as i64))
}

/// `XDEL key id [id ...]`: the number of entries deleted.
fn xdel(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let key = &argv[1];
    let Some(stream) = stream_write(ctx, key)? else {
        return Ok(Reply::Integer(0));
    };
    let ids = argv[2..]
        .iter()
        .map(|arg| parse_strict_id(arg, 0))
        .collect::<Result<Vec<StreamId>, Error>>()?;
    let deleted = ids.into_iter().filter(|id| stream.delete(*id)).count();
    if deleted > 0 {
        ctx.ks.signal_modified(db, key);
        ctx.ks.notify(notify::STREAM, "xdel", db, key);
    }
    Ok(Reply::Integer(deleted as i64))
}

// ---------------------------------------------------------------------------------------------
// XREAD, XREADGROUP
// ---------------------------------------------------------------------------------------------

/// The keys of XREAD/XREADGROUP: the first half of what follows STREAMS.
fn read_keys(argv: &[Bytes]) -> Vec<usize> {
    match streams_position(argv) {
        Some(start) => {
            let count = (argv.len() - start) / 2;
            (start..start + count).collect()
        }
        None => Vec::new(),
    }
}

/// Where the keys start: the argument after STREAMS, skipping the options before it as the
/// parser does.
fn streams_position(argv: &[Bytes]) -> Option<usize> {
    let mut index = 1;
    while index < argv.len() {
        let more = argv.len() - 1 - index;
        let option = &argv[index];
        if (args::is(option, "block") || args::is(option, "count")) && more > 0 {
            index += 2;
        } else if args::is(option, "streams") && more > 0 {
            return Some(index + 1);
        } else if args::is(option, "group") && more >= 2 {
            index += 3;
        } else if args::is(option, "noack") {
            index += 1;
        } else {
            return None;
        }
    }
    None
}

/// Redis's getTimeoutFromObjectOrReply in milliseconds: None for no timeout (0).
fn parse_block_ms(arg: &[u8], now_ms: u64) -> Result<Option<u64>, Error> {
    let milliseconds = args::int(arg).map_err(|_| Error::from(TIMEOUT_NOT_INTEGER))?;
    if milliseconds < 0 {
        return Err(TIMEOUT_NEGATIVE.into());
    }
    if milliseconds == 0 {
        return Ok(None);
    }
    if milliseconds as u64 > i64::MAX as u64 - now_ms.min(i64::MAX as u64) {
        return Err(TIMEOUT_OUT_OF_RANGE.into());
    }
    Ok(Some(milliseconds as u64))
}

/// What XREAD and XREADGROUP parsed.
struct ReadArgs {
    /// Some when BLOCK was given: the wait in ms, None for forever.
    block: Option<Option<u64>>,
    /// 0 for no limit.
    count: u64,
    streams_at: usize,
    streams: usize,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
}

fn parse_read(ctx: &Ctx<'_, '_>, argv: &[Bytes], xreadgroup: bool) -> Result<ReadArgs, Error> {
    let mut parsed = ReadArgs {
        block: None,
        count: 0,
        streams_at: 0,
        streams: 0,
        group: None,
        noack: false,
    };
    let mut index = 1;
    while index < argv.len() {
        let more = argv.len() - 1 - index;
        let option = &argv[index];
        if args::is(option, "block") && more > 0 {
            index += 1;
            parsed.block = Some(parse_block_ms(&argv[index], ctx.now_ms())?);
        } else if args::is(option, "count") && more > 0 {
            index += 1;
            parsed.count = args::int(&argv[index])?.max(0) as u64;
        } else if args::is(option, "streams") && more > 0 {
            parsed.streams_at = index + 1;
            let rest = argv.len() - parsed.streams_at;
            if rest % 2 != 0 {
                return Err(UNBALANCED.into());
            }
            parsed.streams = rest / 2;
            break;
        } else if args::is(option, "group") && more >= 2 {
            if !xreadgroup {
                return Err(GROUP_ONLY_XREADGROUP.into());
            }
            parsed.group = Some((argv[index + 1].clone(), argv[index + 2].clone()));
            index += 2;
        } else if args::is(option, "noack") {
            if !xreadgroup {
                return Err(NOACK_ONLY_XREADGROUP.into());
            }
            parsed.noack = true;
        } else {
            return Err(Error::Syntax);
        }
        index += 1;
    }
    if parsed.streams_at == 0 {
        return Err(Error::Syntax);
    }
    if xreadgroup && parsed.group.is_none() {
        return Err(MISSING_GROUP.into());
    }
    Ok(parsed)
}

/// The ID a read starts after: `>` (new entries of the group) or a concrete one.
#[derive(Clone, Copy)]
enum After {
    New,
    Id(StreamId),
}

fn xread(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    read_command(ctx, argv, false)
}

fn xreadgroup(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    read_command(ctx, argv, true)
}

/// `XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]` and
/// `XREADGROUP GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key
/// [key ...] id [id ...]`.
fn read_command(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], xreadgroup: bool) -> CmdResult {
    let parsed = parse_read(ctx, argv, xreadgroup)?;
    if xreadgroup {
        // Group changes propagate as XCLAIM / XGROUP effects, never as XREADGROUP.
        ctx.propagate_nothing();
    }
    let serving = ctx.mode == Mode::Serving;
    let keys = &argv[parsed.streams_at..parsed.streams_at + parsed.streams];
    let id_args = &argv[parsed.streams_at + parsed.streams..];
    let mut afters = Vec::with_capacity(parsed.streams);
    for (key, id_arg) in keys.iter().zip(id_args) {
        let stream = match stream_read(ctx, key) {
            Ok(stream) => stream,
            Err(Error::WrongType) if serving && xreadgroup => return Err(BLOCKED_KEY_GONE.into()),
            // A blocked XREAD waits on through a key of another type, as in Redis.
            Err(Error::WrongType) if serving => None,
            Err(error) => return Err(error),
        };
        if let Some((group, _)) = &parsed.group {
            let found = stream
                .as_ref()
                .is_some_and(|stream| stream.groups.contains_key(&group[..]));
            if !found {
                // A blocked XREADGROUP whose stream or group went away is told so.
                if serving {
                    return Err(if stream.is_none() {
                        BLOCKED_KEY_GONE.into()
                    } else {
                        BLOCKED_GROUP_GONE.into()
                    });
                }
                return Err(Error::Text(std::borrow::Cow::Owned(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP \
                     option",
                    args::text(key),
                    args::text(group)
                ))));
            }
        }
        let after = match &id_arg[..] {
            b"$" => {
                if xreadgroup {
                    return Err(DOLLAR_IN_XREADGROUP.into());
                }
                After::Id(stream.map_or(StreamId::MIN, |stream| stream.last_id))
            }
            b">" => {
                if !xreadgroup {
                    return Err(GREATER_IN_XREAD.into());
                }
                After::New
            }
            _ => After::Id(parse_strict_id(id_arg, 0)?),
        };
        afters.push(after);
    }
    let mut served: Vec<(Bytes, Reply)> = Vec::new();
    for (key, after) in keys.iter().zip(&afters) {
        let reply = match &parsed.group {
            Some((group, consumer)) => read_group(ctx, key, group, consumer, *after, &parsed)?,
            None => read_plain(ctx, key, *after, parsed.count)?,
        };
        if let Some(reply) = reply {
            served.push((key.clone(), reply));
            // Redis serves a blocked client from the one key that became ready, so its
            // reply names a single stream (and a group reads from that stream only).
            if serving {
                break;
            }
        }
    }
    if !served.is_empty() {
        return Ok(if ctx.session.resp3 {
            Reply::Map(
                served
                    .into_iter()
                    .map(|(key, entries)| (Reply::Bulk(key), entries))
                    .collect(),
            )
        } else {
            Reply::Array(
                served
                    .into_iter()
                    .map(|(key, entries)| Reply::Array(vec![Reply::Bulk(key), entries]))
                    .collect(),
            )
        });
    }
    let Some(timeout_ms) = parsed.block else {
        return Ok(Reply::NullArray);
    };
    let rerun = rerun_argv(argv, &parsed, &afters);
    block::block_on(
        ctx,
        &rerun,
        keys,
        timeout_ms,
        Reply::NullArray,
        Reply::NullArray,
    )
}

/// The command a blocked read re-runs: `$` replaced by the ID it stood for, and Redis's
/// default COUNT for blocked reads when none was given.
fn rerun_argv(argv: &[Bytes], parsed: &ReadArgs, afters: &[After]) -> Vec<Bytes> {
    let ids_at = parsed.streams_at + parsed.streams;
    let mut rerun: Vec<Bytes> = Vec::with_capacity(argv.len() + 2);
    for (index, arg) in argv.iter().enumerate() {
        // Just before STREAMS, so it overrides a COUNT 0 given earlier.
        if index + 1 == parsed.streams_at && parsed.count == 0 {
            rerun.push(Bytes::from_static(b"COUNT"));
            rerun.push(bulk_int(BLOCKED_READ_COUNT_DEFAULT as i64));
        }
        if index >= ids_at && &arg[..] == b"$" {
            if let After::Id(id) = afters[index - ids_at] {
                rerun.push(id_arg(id));
                continue;
            }
        }
        rerun.push(arg.clone());
    }
    rerun
}

/// XREAD on one stream: its entries after `after`, or None when it has nothing newer.
fn read_plain(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    after: After,
    count: u64,
) -> Result<Option<Reply>, Error> {
    let After::Id(after) = after else {
        return Ok(None);
    };
    let serving = ctx.mode == Mode::Serving;
    let stream = match stream_read(ctx, key) {
        Ok(stream) => stream,
        Err(Error::WrongType) if serving => None,
        Err(error) => return Err(error),
    };
    let Some(stream) = stream else {
        return Ok(None);
    };
    let Some(last) = stream.last_entry_id() else {
        return Ok(None);
    };
    if last <= after {
        return Ok(None);
    }
    let Some(start) = after.next() else {
        return Ok(None);
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.min(usize::MAX as u64) as usize
    };
    let entries = stream
        .range(start, StreamId::MAX)
        .take(limit)
        .map(|(id, packed)| entry_reply(*id, packed))
        .collect();
    Ok(Some(Reply::Array(entries)))
}

/// XREADGROUP on one stream: history from the consumer's PEL, or new entries delivered to
/// it; None when nothing new is there.
fn read_group(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    group_name: &Bytes,
    consumer: &Bytes,
    after: After,
    parsed: &ReadArgs,
) -> Result<Option<Reply>, Error> {
    let now_ms = ctx.now_ms();
    let Some(stream) = stream_read(ctx, key)? else {
        return Ok(None);
    };
    let Some(mut group) = stream.groups.remove(&group_name[..]) else {
        return Ok(None);
    };
    let limit = if parsed.count == 0 {
        usize::MAX
    } else {
        parsed.count.min(usize::MAX as u64) as usize
    };
    let start = match after {
        After::Id(id) => Some(id),
        After::New => match stream.last_entry_id() {
            Some(last) if last > group.last_id => Some(group.last_id),
            _ => None,
        },
    };
    // Redis 7.0 looks the consumer up (creating it) only when it serves this stream now.
    let created = start.is_some() && group.create_consumer(consumer, now_ms);
    if let Some(entry) = group
        .consumers
        .get_mut(&consumer[..])
        .filter(|_| start.is_some())
    {
        entry.seen_time_ms = now_ms;
    }
    let mut effects: Vec<Vec<Bytes>> = Vec::new();
    if created && parsed.noack {
        effects.push(vec![
            Bytes::from_static(b"XGROUP"),
            Bytes::from_static(b"CREATECONSUMER"),
            key.clone(),
            group_name.clone(),
            consumer.clone(),
        ]);
    }
    let reply = match (after, start) {
        (After::Id(_), Some(start)) => {
            let start = start.next().unwrap_or(StreamId::MAX);
            Some(read_history(
                stream, &mut group, consumer, start, limit, now_ms,
            ))
        }
        (After::New, Some(start)) => {
            let start = start.next().unwrap_or(StreamId::MAX);
            let ids: Vec<StreamId> = stream
                .range(start, StreamId::MAX)
                .take(limit)
                .map(|(id, _)| *id)
                .collect();
            let mut entries = Vec::with_capacity(ids.len());
            let last_before = group.last_id;
            for id in ids {
                stream.advance_group(&mut group, id);
                if let Some(packed) = stream.get(id) {
                    entries.push(entry_reply(id, packed));
                }
                if !parsed.noack {
                    group.assign(id, consumer, now_ms, 1);
                    effects.push(xclaim_effect(key, group_name, consumer, id, &group));
                }
            }
            if parsed.noack && group.last_id != last_before {
                effects.push(setid_effect(key, group_name, &group));
            }
            Some(Reply::Array(entries))
        }
        (_, None) => None,
    };
    stream.groups.insert(CompactBytes::new(group_name), group);
    let db = ctx.db();
    if created {
        ctx.ks
            .notify(notify::STREAM, "xgroup-createconsumer", db, key);
        count_write(ctx);
    }
    if reply.is_some() {
        count_write(ctx);
    }
    for effect in effects {
        ctx.propagate(effect);
    }
    Ok(reply)
}

/// A consumer's own pending entries from `start` (XREADGROUP with an ID): each delivered
/// again (time and count updated); a deleted entry shows as `[id, nil]`.
fn read_history(
    stream: &Stream,
    group: &mut Group,
    consumer: &[u8],
    start: StreamId,
    limit: usize,
    now_ms: u64,
) -> Reply {
    let ids: Vec<StreamId> = group
        .consumers
        .get(consumer)
        .map(|owner| owner.pending.range(start..).take(limit).copied().collect())
        .unwrap_or_default();
    let mut entries = Vec::with_capacity(ids.len());
    for id in ids {
        match stream.get(id) {
            Some(packed) => {
                entries.push(entry_reply(id, packed));
                if let Some(pending) = group.pending.get_mut(&id) {
                    pending.delivery_time_ms = now_ms;
                    pending.delivery_count += 1;
                }
            }
            None => entries.push(Reply::Array(vec![bulk_id(id), Reply::NullArray])),
        }
    }
    Reply::Array(entries)
}

/// Redis's streamPropagateXCLAIM: `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n
/// FORCE JUSTID LASTID last`, with the pending entry as it now is.
fn xclaim_effect(
    key: &[u8],
    group_name: &[u8],
    consumer: &[u8],
    id: StreamId,
    group: &Group,
) -> Vec<Bytes> {
    xclaim_effect_with_id(key, group_name, consumer, id_arg(id), id, group)
}

fn xclaim_effect_with_id(
    key: &[u8],
    group_name: &[u8],
    consumer: &[u8],
    id_text: Bytes,
    id: StreamId,
    group: &Group,
) -> Vec<Bytes> {
    let (time_ms, count) = group.pending.get(&id).map_or((0, 0), |entry| {
        (entry.delivery_time_ms, entry.delivery_count)
    });
    vec![
        Bytes::from_static(b"XCLAIM"),
        Bytes::copy_from_slice(key),
        Bytes::copy_from_slice(group_name),
        Bytes::copy_from_slice(consumer),
        Bytes::from_static(b"0"),
        id_text,
        Bytes::from_static(b"TIME"),
        bulk_int(time_ms as i64),
        Bytes::from_static(b"RETRYCOUNT"),
        bulk_int(count as i64),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        id_arg(group.last_id),
    ]
}

/// Redis's streamPropagateGroupID: `XGROUP SETID key group last ENTRIESREAD n`.
fn setid_effect(key: &[u8], group_name: &[u8], group: &Group) -> Vec<Bytes> {
    let entries_read = group.entries_read.map_or(-1, |read| read as i64);
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        Bytes::copy_from_slice(key),
        Bytes::copy_from_slice(group_name),
        id_arg(group.last_id),
        Bytes::from_static(b"ENTRIESREAD"),
        bulk_int(entries_read),
    ]
}

// ---------------------------------------------------------------------------------------------
// XGROUP
// ---------------------------------------------------------------------------------------------

/// ENTRIESREAD's value: a count, or -1 for unknown.
fn parse_entries_read(arg: &[u8]) -> Result<Option<u64>, Error> {
    let value = args::int(arg)?;
    if value == -1 {
        return Ok(None);
    }
    if value < 0 {
        return Err(ENTRIESREAD_INVALID.into());
    }
    Ok(Some(value as u64))
}

/// The checks every XGROUP subcommand but HELP makes: the key must be a stream, and SETID,
/// CREATECONSUMER and DELCONSUMER need the group.
fn xgroup_target<'c>(
    ctx: &'c mut Ctx<'_, '_>,
    argv: &[Bytes],
    needs_group: bool,
) -> Result<&'c mut Stream, Error> {
    let Some(stream) = stream_write(ctx, &argv[2])? else {
        return Err(XGROUP_NEEDS_KEY.into());
    };
    if needs_group && !stream.groups.contains_key(&argv[3][..]) {
        return Err(no_such_group_for_key(&argv[2], &argv[3]));
    }
    Ok(stream)
}

/// `XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]`.
fn xgroup_create(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mut mkstream = false;
    let mut entries_read = None;
    let mut index = 5;
    while index < argv.len() {
        if args::is(&argv[index], "mkstream") {
            mkstream = true;
            index += 1;
        } else if args::is(&argv[index], "entriesread") && index + 1 < argv.len() {
            entries_read = parse_entries_read(&argv[index + 1])?;
            index += 2;
        } else {
            return Err(subcommand_syntax(argv));
        }
    }
    let db = ctx.db();
    let key = &argv[2];
    let exists = stream_write(ctx, key)?.is_some();
    if !exists && !mkstream {
        return Err(XGROUP_NEEDS_KEY.into());
    }
    if argv.len() > 8 {
        return Err(subcommand_syntax(argv));
    }
    let id = if &argv[4][..] == b"$" {
        stream_write(ctx, key)?.map_or(StreamId::MIN, |stream| stream.last_id)
    } else {
        parse_strict_id(&argv[4], 0)?
    };
    if !exists {
        ctx.ks
            .set(db, key, Value::Stream(Box::new(Stream::new())), false);
    }
    let Some(stream) = stream_write(ctx, key)? else {
        return Err(Error::err("internal error: stream vanished"));
    };
    if stream.groups.contains_key(&argv[3][..]) {
        return Err(BUSYGROUP.into());
    }
    stream
        .groups
        .insert(CompactBytes::new(&argv[3]), Group::new(id, entries_read));
    count_write(ctx);
    ctx.ks.notify(notify::STREAM, "xgroup-create", db, key);
    Ok(Reply::OK)
}

/// `XGROUP SETID key group id|$ [ENTRIESREAD n]`.
fn xgroup_setid(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mut entries_read = None;
    let mut index = 5;
    while index < argv.len() {
        if args::is(&argv[index], "entriesread") && index + 1 < argv.len() {
            entries_read = parse_entries_read(&argv[index + 1])?;
            index += 2;
        } else {
            return Err(subcommand_syntax(argv));
        }
    }
    let db = ctx.db();
    let stream = xgroup_target(ctx, argv, true)?;
    if argv.len() != 5 && argv.len() != 7 {
        return Err(subcommand_syntax(argv));
    }
    let id = if &argv[4][..] == b"$" {
        stream.last_id
    } else {
        parse_id(&argv[4], 0)?
    };
    let Some(group) = stream.groups.get_mut(&argv[3][..]) else {
        return Err(no_such_group_for_key(&argv[2], &argv[3]));
    };
    group.last_id = id;
    group.entries_read = entries_read;
    count_write(ctx);
    ctx.ks.notify(notify::STREAM, "xgroup-setid", db, &argv[2]);
    Ok(Reply::OK)
}

/// `XGROUP DESTROY key group`: 1 if the group existed. Clients blocked on it are told.
fn xgroup_destroy(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let stream = xgroup_target(ctx, argv, false)?;
    if stream.groups.remove(&argv[3][..]).is_none() {
        return Ok(Reply::Integer(0));
    }
    // Wakes the XREADGROUP clients blocked on this key, which then answer NOGROUP.
    ctx.ks.signal_modified(db, &argv[2]);
    ctx.ks
        .notify(notify::STREAM, "xgroup-destroy", db, &argv[2]);
    Ok(Reply::Integer(1))
}

/// `XGROUP CREATECONSUMER key group consumer`: 1 if created.
fn xgroup_createconsumer(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let now_ms = ctx.now_ms();
    let stream = xgroup_target(ctx, argv, true)?;
    let Some(group) = stream.groups.get_mut(&argv[3][..]) else {
        return Err(no_such_group_for_key(&argv[2], &argv[3]));
    };
    if !group.create_consumer(&argv[4], now_ms) {
        return Ok(Reply::Integer(0));
    }
    count_write(ctx);
    ctx.ks
        .notify(notify::STREAM, "xgroup-createconsumer", db, &argv[2]);
    Ok(Reply::Integer(1))
}

/// `XGROUP DELCONSUMER key group consumer`: the number of entries it had pending.
fn xgroup_delconsumer(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let stream = xgroup_target(ctx, argv, true)?;
    let Some(group) = stream.groups.get_mut(&argv[3][..]) else {
        return Err(no_such_group_for_key(&argv[2], &argv[3]));
    };
    let Some(pending) = group.delete_consumer(&argv[4]) else {
        return Ok(Reply::Integer(0));
    };
    count_write(ctx);
    ctx.ks
        .notify(notify::STREAM, "xgroup-delconsumer", db, &argv[2]);
    Ok(Reply::Integer(pending as i64))
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

fn xgroup_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(super::server::help_reply(XGROUP_HELP))
}

// ---------------------------------------------------------------------------------------------
// XACK, XPENDING, XCLAIM, XAUTOCLAIM
// ---------------------------------------------------------------------------------------------

/// `XACK key group id [id ...]`: the number of entries acknowledged.
fn xack(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let Some(stream) = stream_read(ctx, &argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let Some(group) = stream.groups.get_mut(&argv[2][..]) else {
        return Ok(Reply::Integer(0));
    };
    let ids = argv[3..]
        .iter()
        .map(|arg| parse_strict_id(arg, 0))
        .collect::<Result<Vec<StreamId>, Error>>()?;
    let acknowledged = ids.into_iter().filter(|id| group.acknowledge(*id)).count();
    for _ in 0..acknowledged {
        count_write(ctx);
    }
    Ok(Reply::Integer(acknowledged as i64))
}

/// `XPENDING key group [[IDLE min-idle-time] start end count [consumer]]`: the summary, or
/// the pending entries in the range.
fn xpending(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let summary = argv.len() == 3;
    if !summary && !(6..=9).contains(&argv.len()) {
        return Err(Error::Syntax);
    }
    let mut range = None;
    let mut min_idle_ms = 0i64;
    let mut consumer_name: Option<&Bytes> = None;
    if !summary {
        let mut start_index = 3;
        if args::is(&argv[3], "idle") {
            min_idle_ms = args::int(&argv[4])?;
            if argv.len() < 8 {
                return Err(Error::Syntax);
            }
            start_index += 2;
        }
        let count = args::int(&argv[start_index + 2])?.max(0) as u64;
        let start = range_start(&argv[start_index])?;
        let end = range_end(&argv[start_index + 1])?;
        consumer_name = argv.get(start_index + 3);
        range = Some((start, end, count));
    }
    let now_ms = ctx.now_ms();
    let stream = stream_read(ctx, &argv[1])?;
    let Some(group) = stream.and_then(|stream| stream.groups.get(&argv[2][..])) else {
        return Err(nogroup(&argv[1], &argv[2]));
    };
    let Some((start, end, count)) = range else {
        let (Some(first), Some(last)) = (
            group.pending.keys().next(),
            group.pending.keys().next_back(),
        ) else {
            return Ok(Reply::Array(vec![
                Reply::Integer(0),
                Reply::Null,
                Reply::Null,
                Reply::NullArray,
            ]));
        };
        let consumers = group
            .consumers
            .iter()
            .filter(|(_, consumer)| !consumer.pending.is_empty())
            .map(|(name, consumer)| {
                Reply::Array(vec![
                    Reply::bulk_copy(name.as_slice()),
                    Reply::bulk(bulk_int(consumer.pending.len() as i64)),
                ])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Integer(group.pending.len() as i64),
            bulk_id(*first),
            bulk_id(*last),
            Reply::Array(consumers),
        ]));
    };
    let ids: Vec<StreamId> = match consumer_name {
        Some(name) => match group.consumers.get(&name[..]) {
            Some(consumer) if start <= end => {
                consumer.pending.range(start..=end).copied().collect()
            }
            Some(_) => Vec::new(),
            None => return Ok(Reply::Array(Vec::new())),
        },
        None if start <= end => group
            .pending
            .range(start..=end)
            .map(|(id, _)| *id)
            .collect(),
        None => Vec::new(),
    };
    let mut entries = Vec::new();
    for id in ids {
        if entries.len() as u64 >= count {
            break;
        }
        let Some(pending) = group.pending.get(&id) else {
            continue;
        };
        let idle_ms = now_ms as i64 - pending.delivery_time_ms as i64;
        if min_idle_ms != 0 && idle_ms < min_idle_ms {
            continue;
        }
        entries.push(Reply::Array(vec![
            bulk_id(id),
            Reply::bulk_copy(pending.consumer.as_slice()),
            Reply::Integer(idle_ms.max(0)),
            Reply::Integer(pending.delivery_count as i64),
        ]));
    }
    Ok(Reply::Array(entries))
}

/// What XCLAIM parsed after its IDs.
struct ClaimOptions {
    force: bool,
    just_id: bool,
    /// The delivery time to set (IDLE/TIME), Redis's `deliverytime`; None for now.
    delivery_time_ms: Option<i64>,
    retry_count: Option<i64>,
    last_id: StreamId,
}

fn parse_claim_options(options: &[Bytes], now_ms: u64) -> Result<ClaimOptions, Error> {
    let mut parsed = ClaimOptions {
        force: false,
        just_id: false,
        delivery_time_ms: None,
        retry_count: None,
        last_id: StreamId::MIN,
    };
    let mut index = 0;
    while index < options.len() {
        let more = options.len() - 1 - index;
        let option = &options[index];
        let invalid = |name: &str| {
            Error::Text(std::borrow::Cow::Owned(format!(
                "ERR Invalid {name} option argument for XCLAIM"
            )))
        };
        if args::is(option, "force") {
            parsed.force = true;
        } else if args::is(option, "justid") {
            parsed.just_id = true;
        } else if args::is(option, "idle") && more > 0 {
            index += 1;
            let idle = args::int(&options[index]).map_err(|_| invalid("IDLE"))?;
            parsed.delivery_time_ms = Some((now_ms as i64).wrapping_sub(idle));
        } else if args::is(option, "time") && more > 0 {
            index += 1;
            parsed.delivery_time_ms =
                Some(args::int(&options[index]).map_err(|_| invalid("TIME"))?);
        } else if args::is(option, "retrycount") && more > 0 {
            index += 1;
            parsed.retry_count =
                Some(args::int(&options[index]).map_err(|_| invalid("RETRYCOUNT"))?);
        } else if args::is(option, "lastid") && more > 0 {
            index += 1;
            parsed.last_id = parse_strict_id(&options[index], 0)?;
        } else {
            return Err(Error::Text(std::borrow::Cow::Owned(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                args::text(option)
            ))));
        }
        index += 1;
    }
    Ok(parsed)
}

/// `XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]`: the claimed entries (or IDs).
fn xclaim(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (key, group_name, consumer) = (&argv[1], &argv[2], &argv[3]);
    let now_ms = ctx.now_ms();
    {
        let stream = stream_read(ctx, key)?;
        if !stream.is_some_and(|stream| stream.groups.contains_key(&group_name[..])) {
            return Err(nogroup(key, group_name));
        }
    }
    let min_idle_ms = args::int(&argv[4])
        .map_err(|_| Error::from("ERR Invalid min-idle-time argument for XCLAIM"))?
        .max(0);
    let id_count = argv[5..]
        .iter()
        .take_while(|arg| parse_strict_id(arg, 0).is_ok())
        .count();
    let id_args = &argv[5..5 + id_count];
    let options = parse_claim_options(&argv[5 + id_count..], now_ms)?;
    ctx.propagate_nothing();
    let db = ctx.db();
    // Looked up (and counted as a keyspace hit) above already.
    let Some(stream) = stream_write(ctx, key)? else {
        return Err(nogroup(key, group_name));
    };
    let Some(mut group) = stream.groups.remove(&group_name[..]) else {
        return Err(nogroup(key, group_name));
    };
    let mut propagate_last_id = false;
    if options.last_id > group.last_id {
        group.last_id = options.last_id;
        propagate_last_id = true;
    }
    let delivery_time_ms = match options.delivery_time_ms {
        Some(time) if time >= 0 && time <= now_ms as i64 => time as u64,
        _ => now_ms,
    };
    let mut effects = Vec::new();
    let mut replies = Vec::new();
    let mut consumer_created = false;
    let mut consumer_seen = false;
    for id_text in id_args {
        let id = parse_strict_id(id_text, 0)?;
        let exists = stream.contains(id);
        if !exists {
            if let Some(pending) = group.pending.get(&id) {
                let owner = pending.consumer.clone();
                effects.push(xclaim_effect_with_id(
                    key,
                    group_name,
                    owner.as_slice(),
                    id_text.clone(),
                    id,
                    &group,
                ));
                propagate_last_id = false;
                group.acknowledge(id);
            }
            continue;
        }
        let pending = group.pending.get(&id);
        if pending.is_none() && !options.force {
            continue;
        }
        if let Some(pending) = pending {
            let idle_ms = now_ms as i64 - pending.delivery_time_ms as i64;
            if min_idle_ms != 0 && idle_ms < min_idle_ms {
                continue;
            }
        }
        if !consumer_seen {
            consumer_seen = true;
            consumer_created = group.create_consumer(consumer, now_ms);
            if let Some(owner) = group.consumers.get_mut(&consumer[..]) {
                owner.seen_time_ms = now_ms;
            }
        }
        // A pending entry FORCE creates starts delivered once (Redis's streamCreateNACK).
        let previous_count = group
            .pending
            .get(&id)
            .map_or(1, |entry| entry.delivery_count);
        let count = match options.retry_count {
            Some(count) if count >= 0 => count as u64,
            _ if options.just_id => previous_count,
            _ => previous_count + 1,
        };
        group.assign(id, consumer, delivery_time_ms, count);
        replies.push(if options.just_id {
            bulk_id(id)
        } else {
            match stream.get(id) {
                Some(packed) => entry_reply(id, packed),
                None => Reply::NullArray,
            }
        });
        effects.push(xclaim_effect_with_id(
            key,
            group_name,
            consumer,
            id_text.clone(),
            id,
            &group,
        ));
        propagate_last_id = false;
    }
    if propagate_last_id {
        effects.push(setid_effect(key, group_name, &group));
    }
    stream.groups.insert(CompactBytes::new(group_name), group);
    if consumer_created {
        ctx.ks
            .notify(notify::STREAM, "xgroup-createconsumer", db, key);
        count_write(ctx);
    }
    for effect in effects {
        count_write(ctx);
        ctx.propagate(effect);
    }
    Ok(Reply::Array(replies))
}

/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]`: the next
/// cursor, the claimed entries (or IDs), and the IDs dropped because their entry is gone.
fn xautoclaim(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (key, group_name, consumer) = (&argv[1], &argv[2], &argv[3]);
    let now_ms = ctx.now_ms();
    let min_idle_ms = args::int(&argv[4])
        .map_err(|_| Error::from("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = range_start(&argv[5])?;
    let mut count: u64 = 100;
    let mut just_id = false;
    let mut index = 6;
    while index < argv.len() {
        let more = argv.len() - 1 - index;
        if args::is(&argv[index], "count") && more > 0 {
            let count_max = i64::MAX / 16;
            let value = args::int(&argv[index + 1]).map_err(|_| Error::from(XAUTOCLAIM_COUNT))?;
            if !(1..=count_max).contains(&value) {
                return Err(XAUTOCLAIM_COUNT.into());
            }
            count = value as u64;
            index += 1;
        } else if args::is(&argv[index], "justid") {
            just_id = true;
        } else {
            return Err(Error::Syntax);
        }
        index += 1;
    }
    let db = ctx.db();
    let Some(stream) = stream_read(ctx, key)? else {
        return Err(nogroup(key, group_name));
    };
    let Some(mut group) = stream.groups.remove(&group_name[..]) else {
        return Err(nogroup(key, group_name));
    };
    let mut attempts = count.saturating_mul(AUTOCLAIM_ATTEMPTS_FACTOR);
    let mut remaining = count;
    let mut effects = Vec::new();
    let mut replies = Vec::new();
    let mut deleted = Vec::new();
    let mut consumer_created = false;
    let mut consumer_seen = false;
    let candidates: Vec<StreamId> = group.pending.range(start..).map(|(id, _)| *id).collect();
    let mut position = 0;
    while attempts > 0 && remaining > 0 && position < candidates.len() {
        attempts -= 1;
        let id = candidates[position];
        position += 1;
        let Some(pending) = group.pending.get(&id) else {
            continue;
        };
        if !stream.contains(id) {
            let owner = pending.consumer.clone();
            effects.push(xclaim_effect(key, group_name, owner.as_slice(), id, &group));
            group.acknowledge(id);
            deleted.push(bulk_id(id));
            remaining -= 1;
            continue;
        }
        let idle_ms = now_ms as i64 - pending.delivery_time_ms as i64;
        if min_idle_ms != 0 && idle_ms < min_idle_ms {
            continue;
        }
        let delivery_count = pending.delivery_count + u64::from(!just_id);
        if !consumer_seen {
            consumer_seen = true;
            consumer_created = group.create_consumer(consumer, now_ms);
            if let Some(owner) = group.consumers.get_mut(&consumer[..]) {
                owner.seen_time_ms = now_ms;
            }
        }
        group.assign(id, consumer, now_ms, delivery_count);
        replies.push(if just_id {
            bulk_id(id)
        } else {
            match stream.get(id) {
                Some(packed) => entry_reply(id, packed),
                None => Reply::NullArray,
            }
        });
        remaining -= 1;
        effects.push(xclaim_effect(key, group_name, consumer, id, &group));
    }
    // The cursor: the next pending entry after the scan, 0-0 when the PEL was walked to its end.
    let cursor = candidates[position..]
        .iter()
        .copied()
        .find(|id| group.pending.contains_key(id))
        .unwrap_or(StreamId::MIN);
    stream.groups.insert(CompactBytes::new(group_name), group);
    ctx.propagate_nothing();
    if consumer_created {
        ctx.ks
            .notify(notify::STREAM, "xgroup-createconsumer", db, key);
        count_write(ctx);
    }
    for effect in effects {
        count_write(ctx);
        ctx.propagate(effect);
    }
    Ok(Reply::Array(vec![
        bulk_id(cursor),
        Reply::Array(replies),
        Reply::Array(deleted),
    ]))
}

// ---------------------------------------------------------------------------------------------
// XINFO, XSETID
// ---------------------------------------------------------------------------------------------

fn field(name: &'static str) -> Reply {
    Reply::bulk(Bytes::from_static(name.as_bytes()))
}

fn stream_for_info<'c>(ctx: &'c mut Ctx<'_, '_>, key: &[u8]) -> Result<&'c mut Stream, Error> {
    stream_read(ctx, key)?.ok_or(Error::NoSuchKey)
}

fn lag_reply(stream: &Stream, group: &Group) -> Reply {
    match stream.lag(group) {
        Some(lag) => Reply::Integer(lag),
        None => Reply::Null,
    }
}

fn entries_read_reply(group: &Group) -> Reply {
    match group.entries_read {
        Some(read) => Reply::Integer(read as i64),
        None => Reply::Null,
    }
}

/// `XINFO STREAM key [FULL [COUNT count]]`.
fn xinfo_stream(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let options = &argv[3..];
    let mut full = false;
    let mut count: u64 = 10;
    if !options.is_empty() {
        if options.len() != 1 && options.len() != 3 {
            return Err(subcommand_syntax(argv));
        }
        if !args::is(&options[0], "full") {
            return Err(subcommand_syntax(argv));
        }
        full = true;
        if options.len() == 3 {
            if !args::is(&options[1], "count") {
                return Err(subcommand_syntax(argv));
            }
            let value = args::int(&options[2])?;
            count = if value < 0 { 10 } else { value as u64 };
        }
    }
    let stream = stream_for_info(ctx, &argv[2])?;
    let mut map = vec![
        (field("length"), Reply::Integer(stream.len() as i64)),
        (
            field("radix-tree-keys"),
            Reply::Integer(stream.tree_keys() as i64),
        ),
        (
            field("radix-tree-nodes"),
            Reply::Integer(stream.tree_nodes() as i64),
        ),
        (field("last-generated-id"), bulk_id(stream.last_id)),
        (
            field("max-deleted-entry-id"),
            bulk_id(stream.max_deleted_entry_id),
        ),
        (
            field("entries-added"),
            Reply::Integer(stream.entries_added as i64),
        ),
        (field("recorded-first-entry-id"), bulk_id(stream.first_id)),
    ];
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.min(usize::MAX as u64) as usize
    };
    if !full {
        map.push((field("groups"), Reply::Integer(stream.groups.len() as i64)));
        let first = stream
            .entries()
            .next()
            .map(|(id, packed)| entry_reply(*id, packed));
        let last = stream
            .entries()
            .next_back()
            .map(|(id, packed)| entry_reply(*id, packed));
        map.push((field("first-entry"), first.unwrap_or(Reply::Null)));
        map.push((field("last-entry"), last.unwrap_or(Reply::Null)));
        return Ok(Reply::Map(map));
    }
    let entries = stream
        .entries()
        .take(limit)
        .map(|(id, packed)| entry_reply(*id, packed))
        .collect();
    map.push((field("entries"), Reply::Array(entries)));
    let mut groups = Vec::new();
    for (name, group) in &stream.groups {
        let pending = group
            .pending
            .iter()
            .take(limit)
            .map(|(id, entry)| {
                Reply::Array(vec![
                    bulk_id(*id),
                    Reply::bulk_copy(entry.consumer.as_slice()),
                    Reply::Integer(entry.delivery_time_ms as i64),
                    Reply::Integer(entry.delivery_count as i64),
                ])
            })
            .collect();
        let consumers = group
            .consumers
            .iter()
            .map(|(consumer_name, consumer)| {
                let pending = consumer
                    .pending
                    .iter()
                    .take(limit)
                    .map(|id| {
                        let (time_ms, delivered) = group.pending.get(id).map_or((0, 0), |entry| {
                            (entry.delivery_time_ms, entry.delivery_count)
                        });
                        Reply::Array(vec![
                            bulk_id(*id),
                            Reply::Integer(time_ms as i64),
                            Reply::Integer(delivered as i64),
                        ])
                    })
                    .collect();
                Reply::Map(vec![
                    (field("name"), Reply::bulk_copy(consumer_name.as_slice())),
                    (
                        field("seen-time"),
                        Reply::Integer(consumer.seen_time_ms as i64),
                    ),
                    (
                        field("pel-count"),
                        Reply::Integer(consumer.pending.len() as i64),
                    ),
                    (field("pending"), Reply::Array(pending)),
                ])
            })
            .collect();
        groups.push(Reply::Map(vec![
            (field("name"), Reply::bulk_copy(name.as_slice())),
            (field("last-delivered-id"), bulk_id(group.last_id)),
            (field("entries-read"), entries_read_reply(group)),
            (field("lag"), lag_reply(stream, group)),
            (
                field("pel-count"),
                Reply::Integer(group.pending.len() as i64),
            ),
            (field("pending"), Reply::Array(pending)),
            (field("consumers"), Reply::Array(consumers)),
        ]));
    }
    map.push((field("groups"), Reply::Array(groups)));
    Ok(Reply::Map(map))
}

/// `XINFO GROUPS key`.
fn xinfo_groups(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let stream = stream_for_info(ctx, &argv[2])?;
    let groups = stream
        .groups
        .iter()
        .map(|(name, group)| {
            Reply::Map(vec![
                (field("name"), Reply::bulk_copy(name.as_slice())),
                (
                    field("consumers"),
                    Reply::Integer(group.consumers.len() as i64),
                ),
                (field("pending"), Reply::Integer(group.pending.len() as i64)),
                (field("last-delivered-id"), bulk_id(group.last_id)),
                (field("entries-read"), entries_read_reply(group)),
                (field("lag"), lag_reply(stream, group)),
            ])
        })
        .collect();
    Ok(Reply::Array(groups))
}

/// `XINFO CONSUMERS key group`.
fn xinfo_consumers(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let now_ms = ctx.now_ms();
    let stream = stream_for_info(ctx, &argv[2])?;
    let Some(group) = stream.groups.get(&argv[3][..]) else {
        return Err(no_such_group_for_key(&argv[2], &argv[3]));
    };
    let consumers = group
        .consumers
        .iter()
        .map(|(name, consumer)| {
            let idle_ms = (now_ms as i64 - consumer.seen_time_ms as i64).max(0);
            Reply::Map(vec![
                (field("name"), Reply::bulk_copy(name.as_slice())),
                (
                    field("pending"),
                    Reply::Integer(consumer.pending.len() as i64),
                ),
                (field("idle"), Reply::Integer(idle_ms)),
            ])
        })
        .collect();
    Ok(Reply::Array(consumers))
}

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn xinfo_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(super::server::help_reply(XINFO_HELP))
}

/// `XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]`.
fn xsetid(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let id = parse_strict_id(&argv[2], 0)?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::MIN;
    let mut index = 3;
    while index < argv.len() {
        let more = argv.len() - 1 - index;
        if args::is(&argv[index], "entriesadded") && more > 0 {
            let value = args::int(&argv[index + 1])?;
            if value < 0 {
                return Err(ENTRIES_ADDED_NEGATIVE.into());
            }
            entries_added = Some(value as u64);
            index += 2;
        } else if args::is(&argv[index], "maxdeletedid") && more > 0 {
            max_deleted = parse_strict_id(&argv[index + 1], 0)?;
            if id < max_deleted {
                return Err(XSETID_SMALLER_THAN_PROVIDED.into());
            }
            index += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    let db = ctx.db();
    let Some(stream) = stream_write(ctx, &argv[1])? else {
        return Err(Error::NoSuchKey);
    };
    if let Some(top) = stream.last_entry_id() {
        if id < top {
            return Err(XSETID_SMALLER_THAN_TOP.into());
        }
        if entries_added.is_some_and(|added| (stream.len() as u64) > added) {
            return Err(XSETID_ENTRIES_ADDED_SMALL.into());
        }
    }
    let entries_added = entries_added.unwrap_or(stream.entries_added);
    let max_deleted = if max_deleted.is_zero() {
        stream.max_deleted_entry_id
    } else {
        max_deleted
    };
    stream.set_id(id, entries_added, max_deleted);
    count_write(ctx);
    ctx.ks.notify(notify::STREAM, "xsetid", db, &argv[1]);
    Ok(Reply::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestServer;

    #[test]
    fn ids_parse_as_redis() {
        assert_eq!(parse_strict_id(b"5", 0).ok(), Some(StreamId::new(5, 0)));
        assert_eq!(
            parse_id(b"5", u64::MAX).ok(),
            Some(StreamId::new(5, u64::MAX))
        );
        assert_eq!(parse_id(b"+", 0).ok(), Some(StreamId::MAX));
        assert!(parse_strict_id(b"-", 0).is_err());
        assert!(parse_strict_id(b"1-", 0).is_err());
        assert!(parse_strict_id(b"-1", 0).is_err());
        assert!(parse_strict_id(b"1-x", 0).is_err());
        assert_eq!(
            parse_id_full(b"7-*", 0, true, true).ok(),
            Some((StreamId::new(7, 0), false))
        );
        assert!(parse_strict_id(b"7-*", 0).is_err());
        assert_eq!(parse_unsigned(b" +007"), Some(7));
        assert_eq!(parse_unsigned(b"18446744073709551616"), None);
    }

    #[test]
    fn xadd_propagates_the_generated_id_and_exact_trim() {
        let test = TestServer::new();
        let mut session = test.session();
        for ms in 1..=150 {
            test.run(&mut session, &format!("XADD s {ms}-0 f v"));
        }
        let reply = test.run(&mut session, "XADD s MAXLEN ~ 10 * a b");
        assert!(reply.starts_with("$"), "{reply}");
        let propagated = test.propagated();
        let last = propagated.last().cloned().unwrap_or_default();
        assert!(last.contains("MAXLEN = 51"), "{last}");
        assert!(!last.contains(" * "), "{last}");
    }

    #[test]
    fn xreadgroup_propagates_xclaim_effects() {
        let test = TestServer::new();
        let mut session = test.session();
        test.run(&mut session, "XADD s 1-1 f v");
        test.run(&mut session, "XGROUP CREATE s g 0");
        let reply = test.run(&mut session, "XREADGROUP GROUP g c STREAMS s >");
        assert!(reply.contains("1-1"), "{reply}");
        let propagated = test.propagated().join("\n");
        assert!(
            propagated.contains("XCLAIM s g c 0 1-1 TIME"),
            "{propagated}"
        );
        assert!(
            propagated.contains("FORCE JUSTID LASTID 1-1"),
            "{propagated}"
        );
        assert!(!propagated.contains("XREADGROUP"), "{propagated}");
    }

    #[test]
    fn blocked_read_rerun_names_the_concrete_id() {
        let argv = crate::testing::words("XREAD BLOCK 0 STREAMS a b $ 5-5");
        let parsed = ReadArgs {
            block: Some(None),
            count: 0,
            streams_at: 4,
            streams: 2,
            group: None,
            noack: false,
        };
        let afters = [
            After::Id(StreamId::new(9, 1)),
            After::Id(StreamId::new(5, 5)),
        ];
        let rerun: Vec<String> = rerun_argv(&argv, &parsed, &afters)
            .iter()
            .map(|arg| args::text(arg))
            .collect();
        assert_eq!(
            rerun.join(" "),
            "XREAD BLOCK 0 COUNT 1000 STREAMS a b 9-1 5-5"
        );
        assert_eq!(read_keys(&argv), vec![4, 5]);
    }
}

#[cfg(test)]
mod propagation_tests {
    use crate::testing::TestServer;

    /// The effects real Redis 7.0.15 wrote to its AOF for the same commands (times replaced
    /// by `T`; its incr file, checked by hand).
    const SCRIPT: &str = "XADD s 1-1 f v
XADD s 2-1 f v
XADD s 3-1 f v
XADD s 4-* f v
XADD s MAXLEN ~ 1 5-1 f v
XADD s MINID ~ 2 6-1 f v
XTRIM s MAXLEN ~ 2
XTRIM s MAXLEN 3
XGROUP CREATE s g 0
XREADGROUP GROUP g alice COUNT 1 STREAMS s >
XREADGROUP GROUP g bob NOACK COUNT 1 STREAMS s >
XREADGROUP GROUP g bob NOACK COUNT 1 STREAMS s >
XREADGROUP GROUP g carol STREAMS s 0
XREADGROUP GROUP g alice STREAMS s 0
XCLAIM s g dave 0 4-1 5-1 FORCE
XCLAIM s g dave 0 4 RETRYCOUNT 5 IDLE 10
XCLAIM s g dave 0 9-9 LASTID 9-0
XDEL s 4-1
XCLAIM s g erin 0 4-1
XAUTOCLAIM s g erin 0 0
XACK s g 5-1
XACK s g 5-1
XGROUP CREATECONSUMER s g zed
XGROUP DELCONSUMER s g zed
XGROUP SETID s g 0 ENTRIESREAD 0
XSETID s 100-0
XGROUP DESTROY s g
XGROUP CREATE m g $ MKSTREAM
XDEL s 1-1 2-1";

    const EXPECTED: &str = "XADD s 1-1 f v
XADD s 2-1 f v
XADD s 3-1 f v
XADD s 4-0 f v
XADD s MAXLEN = 5 5-1 f v
XADD s MINID = 1-1 6-1 f v
XTRIM s MAXLEN 3
XGROUP CREATE s g 0
XCLAIM s g alice 0 4-0 TIME T RETRYCOUNT 1 FORCE JUSTID LASTID 4-0
MULTI
XGROUP CREATECONSUMER s g bob
XGROUP SETID s g 5-1 ENTRIESREAD 5
EXEC
XGROUP SETID s g 6-1 ENTRIESREAD 6
XCLAIM s g dave 0 5-1 TIME T RETRYCOUNT 2 FORCE JUSTID LASTID 6-1
XCLAIM s g dave 0 4 TIME T RETRYCOUNT 5 FORCE JUSTID LASTID 6-1
XGROUP SETID s g 9-0 ENTRIESREAD 6
MULTI
XCLAIM s g erin 0 4-0 TIME T RETRYCOUNT 6 FORCE JUSTID LASTID 9-0
XCLAIM s g erin 0 5-1 TIME T RETRYCOUNT 3 FORCE JUSTID LASTID 9-0
EXEC
XACK s g 5-1
XGROUP CREATECONSUMER s g zed
XGROUP DELCONSUMER s g zed
XGROUP SETID s g 0 ENTRIESREAD 0
XSETID s 100-0
XGROUP DESTROY s g
XGROUP CREATE m g $ MKSTREAM";

    #[test]
    fn effects_match_redis_aof() {
        let test = TestServer::new();
        let mut session = test.session();
        for line in SCRIPT.lines() {
            test.run(&mut session, line);
        }
        let got: Vec<String> = test
            .propagated()
            .into_iter()
            .filter(|line| !line.starts_with("SELECT"))
            .map(|line| {
                let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
                for index in 1..words.len() {
                    if words[index - 1] == "TIME" {
                        words[index] = "T".into();
                    }
                }
                words.join(" ")
            })
            .collect();
        let expected: Vec<&str> = EXPECTED.lines().collect();
        assert_eq!(got, expected);
    }
}

/// Propagation fuzzing against real Redis by hand: runs the commands of the file named by
/// `STREAMS_PROPAGATION_INPUT` and writes the propagated effects (XCLAIM times as `T`) to
/// `STREAMS_PROPAGATION_OUTPUT`, to compare with a real Redis AOF of the same commands.
#[cfg(test)]
#[test]
#[ignore]
fn dump_propagation() {
    let (Ok(input), Ok(output)) = (
        std::env::var("STREAMS_PROPAGATION_INPUT"),
        std::env::var("STREAMS_PROPAGATION_OUTPUT"),
    ) else {
        return;
    };
    let test = crate::testing::TestServer::new();
    let mut session = test.session();
    let script = std::fs::read_to_string(input).expect("input");
    for line in script.lines() {
        test.run(&mut session, line);
    }
    let lines: Vec<String> = test
        .propagated()
        .into_iter()
        .map(|line| {
            let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
            for index in 1..words.len() {
                if words[index - 1] == "TIME" {
                    words[index] = "T".into();
                }
            }
            words.join(" ")
        })
        .collect();
    std::fs::write(output, lines.join("\n") + "\n").expect("output");
}
