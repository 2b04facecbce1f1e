//! The geo family: GEOADD, GEODIST, GEOHASH, GEOPOS, GEORADIUS, GEORADIUS_RO,
//! GEORADIUSBYMEMBER, GEORADIUSBYMEMBER_RO, GEOSEARCH and GEOSEARCHSTORE, with Redis 7.0.15's
//! replies, error texts and check order (a port of `geo.c`).
//!
//! A geo key is a sorted set whose scores are 52-bit interleaved geohashes
//! ([`crate::types::geohash`]); every command goes through the public [`ZSet`] API. GEOADD is
//! a ZADD underneath: it raises ZADD's `zadd` event and propagates as
//! `zadd key [options] score member ...`, as Redis rewrites it. The searches visit the centre
//! cell and its neighbours in Redis's order, test each candidate exactly, and sort as Redis
//! does (glibc's stable merge sort for a full sort, Redis's `pqsort` when COUNT cuts the
//! result), so even ties between equal distances come out in Redis's order. Coordinates reply
//! as Redis's "human" long doubles (`%.17Lf` without trailing zeros), distances with four
//! decimals through the fixed-point conversion Redis 7.0.15 uses instead of `%.4f`.

use super::args;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::keyspace::notify;
use crate::protocol::Reply;
use crate::types::geohash::{self, Extent, Shape};
use crate::types::zset::Limits;
use crate::types::{CompactBytes, Value, ZSet};
use bytes::Bytes;
use std::borrow::Cow;
use std::cmp::Ordering;

const UNSUPPORTED_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const NEED_NUMERIC_RADIUS: &str = "ERR need numeric radius";
const NEED_NUMERIC_WIDTH: &str = "ERR need numeric width";
const NEED_NUMERIC_HEIGHT: &str = "ERR need numeric height";
const RADIUS_NEGATIVE: &str = "ERR radius cannot be negative";
const BOX_NEGATIVE: &str = "ERR height or width cannot be negative";
const MEMBER_NOT_DECODED: &str = "ERR could not decode requested zset member";
const COUNT_NOT_POSITIVE: &str = "ERR COUNT must be > 0";
const ANY_NEEDS_COUNT: &str = "ERR the ANY argument requires COUNT argument";

pub static COMMANDS: &[Spec] = &[
    Spec::new("geoadd", geoadd, Lock::Keys),
    Spec::new("geodist", geodist, Lock::Keys),
    Spec::new("geohash", geohash_command, Lock::Keys),
    Spec::new("geopos", geopos, Lock::Keys),
    Spec::new("georadius", georadius, Lock::Custom(georadius_keys)),
    Spec::new("georadius_ro", georadius_ro, Lock::Keys),
    Spec::new(
        "georadiusbymember",
        georadiusbymember,
        Lock::Custom(georadiusbymember_keys),
    ),
    Spec::new("georadiusbymember_ro", georadiusbymember_ro, Lock::Keys),
    Spec::new("geosearch", geosearch, Lock::Keys),
    Spec::new("geosearchstore", geosearchstore, Lock::Keys),
];

/// GEORADIUS's keys: the source and any STORE/STOREDIST destination.
fn georadius_keys(argv: &[Bytes]) -> Vec<usize> {
    radius_keys(argv, 6)
}

/// GEORADIUSBYMEMBER's keys, as [`georadius_keys`] with one argument less before the options.
fn georadiusbymember_keys(argv: &[Bytes]) -> Vec<usize> {
    radius_keys(argv, 5)
}

/// What Redis 7.0's key specs report (COMMAND GETKEYS): the source, then the argument after
/// the first `STORE` and after the first `STOREDIST` from the options on. The destination the
/// command actually writes (the last STORE/STOREDIST, as its option loop reads them) is added
/// when it differs, so the executor always locks it; only argument lists repeating STORE make
/// COMMAND GETKEYS answer more than Redis does.
fn radius_keys(argv: &[Bytes], options_start: usize) -> Vec<usize> {
    let mut keys = vec![1];
    let last = argv.len().saturating_sub(1);
    for keyword in ["store", "storedist"] {
        if let Some(index) = (options_start..last).find(|&index| args::is(&argv[index], keyword)) {
            keys.push(index + 1);
        }
    }
    let mut written = None;
    let mut index = options_start;
    while index < argv.len() {
        let arg = &argv[index];
        let has_value = index + 1 < argv.len();
        if has_value && args::is(arg, "count") {
            index += 2;
        } else if has_value && (args::is(arg, "store") || args::is(arg, "storedist")) {
            written = Some(index + 1);
            index += 2;
        } else {
            index += 1;
        }
    }
    if let Some(written) = written {
        if !keys.contains(&written) {
            keys.push(written);
        }
    }
    keys
}

// ---------------------------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------------------------

/// Redis's `extractLongLatOrReply`: two doubles within the indexable coordinates.
fn parse_long_lat(longitude: &[u8], latitude: &[u8]) -> Result<[f64; 2], Error> {
    let longitude = args::double(longitude).ok_or(Error::NotFloat)?;
    let latitude = args::double(latitude).ok_or(Error::NotFloat)?;
    if !(geohash::LONGITUDE_MIN..=geohash::LONGITUDE_MAX).contains(&longitude)
        || !(geohash::LATITUDE_MIN..=geohash::LATITUDE_MAX).contains(&latitude)
    {
        return Err(Error::Text(Cow::Owned(format!(
            "ERR invalid longitude,latitude pair {longitude:.6},{latitude:.6}"
        ))));
    }
    Ok([longitude, latitude])
}

/// Redis's `extractUnitOrReply`: meters per unit.
fn parse_unit(unit: &[u8]) -> Result<f64, Error> {
    if args::is(unit, "m") {
        Ok(1.0)
    } else if args::is(unit, "km") {
        Ok(1000.0)
    } else if args::is(unit, "ft") {
        Ok(0.3048)
    } else if args::is(unit, "mi") {
        Ok(1609.34)
    } else {
        Err(UNSUPPORTED_UNIT.into())
    }
}

/// Redis's `extractDistanceOrReply`: `radius unit` as (meters per unit, radius).
fn parse_radius(radius: &[u8], unit: &[u8]) -> Result<(f64, f64), Error> {
    let radius = args::double(radius).ok_or(Error::from(NEED_NUMERIC_RADIUS))?;
    if radius < 0.0 {
        return Err(RADIUS_NEGATIVE.into());
    }
    Ok((parse_unit(unit)?, radius))
}

/// Redis's `extractBoxOrReply`: `width height unit` as (meters per unit, width, height).
fn parse_box(width: &[u8], height: &[u8], unit: &[u8]) -> Result<(f64, f64, f64), Error> {
    let width = args::double(width).ok_or(Error::from(NEED_NUMERIC_WIDTH))?;
    let height = args::double(height).ok_or(Error::from(NEED_NUMERIC_HEIGHT))?;
    if height < 0.0 || width < 0.0 {
        return Err(BOX_NEGATIVE.into());
    }
    Ok((parse_unit(unit)?, width, height))
}

// ---------------------------------------------------------------------------------------------
// Reply helpers
// ---------------------------------------------------------------------------------------------

/// Redis's `addReplyDoubleDistance`: four decimals in a bulk string, in RESP2 and RESP3 alike.
fn distance_reply(distance: f64) -> Reply {
    Reply::bulk(fixed_point_4(distance))
}

/// Redis 7.0.15's `fixedpoint_d2string(.., 4)`, which it uses instead of `%.4f`: the value
/// times 10^4 rounded by `llrint` (ties to even, on the already rounded product), so a
/// distance just above a tie (42737392.10125000029 ft) prints `.1012` where printf says
/// `.1013`. What `llrint` cannot represent (NaN, when rounding pushes haversine's asin past
/// 1 for nearly antipodal points) becomes x86-64's LLONG_MIN, printed negated as Redis does.
fn fixed_point_4(value: f64) -> String {
    const SCALE: f64 = 10_000.0;
    const FRACTION_DIGITS: usize = 4;
    const TWO_TO_63: f64 = 9223372036854775808.0;
    if value == 0.0 {
        return "0.0000".to_owned();
    }
    let scaled = (value * SCALE).round_ties_even();
    let rounded = if scaled.is_nan() || !(-TWO_TO_63..TWO_TO_63).contains(&scaled) {
        i64::MIN
    } else {
        scaled as i64
    };
    let digits = format!(
        "{:0>width$}",
        rounded.unsigned_abs(),
        width = FRACTION_DIGITS + 1
    );
    let (whole, fraction) = digits.split_at(digits.len() - FRACTION_DIGITS);
    let sign = if rounded < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

/// Redis's `ld2string(.., LD_STR_HUMAN)`: `%.17Lf` of the value without trailing zeros (nor
/// a trailing dot), `-0` as `0`.
fn human_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // A double widened to long double is exact, and Rust prints the exact value rounded to
    // 17 decimals as glibc does.
    let mut text = format!("{value:.17}");
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    if text == "-0" {
        text = "0".to_owned();
    }
    text
}

/// Redis's `addReplyHumanLongDouble`: a bulk string in RESP2, a `,` double in RESP3.
fn coordinate_reply(value: f64, resp3: bool) -> Reply {
    let text = human_double(value);
    if resp3 {
        Reply::Raw(Bytes::from(format!(",{text}\r\n")))
    } else {
        Reply::bulk(text)
    }
}

fn position_reply(position: [f64; 2], resp3: bool) -> Reply {
    Reply::Array(vec![
        coordinate_reply(position[0], resp3),
        coordinate_reply(position[1], resp3),
    ])
}

/// The listpack thresholds from the configuration, read at write time as Redis does.
fn limits(ctx: &Ctx<'_, '_>) -> Limits {
    Limits {
        entries_max: usize::try_from(ctx.server.config.int("zset-max-listpack-entries"))
            .unwrap_or(0),
        value_bytes_max: usize::try_from(ctx.server.config.int("zset-max-listpack-value"))
            .unwrap_or(0),
    }
}

/// The sorted set at `key` for a read (counting hits and misses); WRONGTYPE for another type.
fn read_zset<'k>(ctx: &'k mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'k ZSet>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, key) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::ZSet(zset) => Ok(Some(&**zset)),
            _ => Err(Error::WrongType),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// GEOADD
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    ch: bool,
}

/// Counts of ZADD's outcome.
#[derive(Debug, Default, Clone, Copy)]
struct AddOutcome {
    added: usize,
    updated: usize,
}

/// ZADD's `zsetAdd` for each pair, in order, with GEOADD's options (NX, XX; no GT/LT/INCR).
fn add_pairs(
    zset: &mut ZSet,
    flags: AddFlags,
    pairs: &[(f64, &[u8])],
    limits: Limits,
) -> AddOutcome {
    let mut outcome = AddOutcome::default();
    for &(score, member) in pairs {
        match zset.score(member) {
            Some(current) => {
                if !flags.nx && score != current {
                    zset.update(member, score);
                    outcome.updated += 1;
                }
            }
            None => {
                if !flags.xx {
                    zset.insert(score, member, limits);
                    outcome.added += 1;
                }
            }
        }
    }
    outcome
}

/// `GEOADD key [NX|XX] [CH] longitude latitude member [longitude latitude member ...]`.
fn geoadd(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mut flags = AddFlags::default();
    let mut first = 2;
    while first < argv.len() {
        let option = &argv[first];
        if args::is(option, "nx") {
            flags.nx = true;
        } else if args::is(option, "xx") {
            flags.xx = true;
        } else if !args::is(option, "ch") {
            break;
        } else {
            flags.ch = true;
        }
        first += 1;
    }
    let triples = &argv[first..];
    if triples.len() % 3 != 0 || (flags.xx && flags.nx) {
        return Err(Error::Syntax);
    }
    let mut scores = Vec::with_capacity(triples.len() / 3);
    for triple in triples.chunks_exact(3) {
        let [longitude, latitude] = parse_long_lat(&triple[0], &triple[1])?;
        let Some(bits) = geohash::encode_score(longitude, latitude) else {
            unreachable!("validated coordinates always encode");
        };
        scores.push(bits);
    }
    // ZADD refuses a call without pairs (GEOADD key CH NX CH).
    if scores.is_empty() {
        return Err(Error::Syntax);
    }
    let pairs: Vec<(f64, &[u8])> = scores
        .iter()
        .zip(triples.chunks_exact(3))
        .map(|(&bits, triple)| (bits as f64, &triple[2][..]))
        .collect();
    let key = &argv[1];
    let limits = limits(ctx);
    let db = ctx.db();
    let outcome = match ctx.ks.lookup(db, key) {
        Some(entry) => {
            let Value::ZSet(zset) = &mut entry.value else {
                return Err(Error::WrongType);
            };
            let outcome = add_pairs(zset, flags, &pairs, limits);
            if outcome.added + outcome.updated > 0 {
                ctx.ks.signal_modified(db, key);
            }
            outcome
        }
        None if flags.xx => AddOutcome::default(),
        None => {
            let mut zset = ZSet::new();
            let outcome = add_pairs(&mut zset, flags, &pairs, limits);
            debug_assert!(!zset.is_empty(), "a new key takes every pair");
            ctx.ks.set(db, key, Value::ZSet(Box::new(zset)), false);
            outcome
        }
    };
    if outcome.added + outcome.updated > 0 {
        ctx.ks.notify(notify::ZSET, "zadd", db, key);
        // Redis runs ZADD with the rewritten arguments, so that is what replicas see.
        let mut rewritten = Vec::with_capacity(first + pairs.len() * 2);
        rewritten.push(Bytes::from_static(b"zadd"));
        rewritten.extend(argv[1..first].iter().cloned());
        for (bits, triple) in scores.iter().zip(triples.chunks_exact(3)) {
            let mut buffer = itoa::Buffer::new();
            rewritten.push(Bytes::copy_from_slice(buffer.format(*bits).as_bytes()));
            rewritten.push(triple[2].clone());
        }
        ctx.propagate(rewritten);
    }
    let reply = if flags.ch {
        outcome.added + outcome.updated
    } else {
        outcome.added
    };
    Ok(Reply::Integer(reply as i64))
}

// ---------------------------------------------------------------------------------------------
// GEOPOS, GEOHASH, GEODIST
// ---------------------------------------------------------------------------------------------

/// `GEOPOS key [member ...]`.
fn geopos(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let resp3 = ctx.session.resp3;
    let zset = read_zset(ctx, &argv[1])?;
    let replies = argv[2..]
        .iter()
        .map(|member| match zset.and_then(|zset| zset.score(member)) {
            Some(score) => position_reply(geohash::decode_score(score), resp3),
            None => Reply::NullArray,
        })
        .collect();
    Ok(Reply::Array(replies))
}

/// `GEOHASH key [member ...]`.
fn geohash_command(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let zset = read_zset(ctx, &argv[1])?;
    let replies = argv[2..]
        .iter()
        .map(|member| match zset.and_then(|zset| zset.score(member)) {
            Some(score) => {
                let text = geohash::geohash_string(geohash::decode_score(score));
                Reply::bulk_copy(&text)
            }
            None => Reply::Null,
        })
        .collect();
    Ok(Reply::Array(replies))
}

/// `GEODIST key member1 member2 [M|KM|FT|MI]`.
fn geodist(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let to_meters = match argv.len() {
        5 => parse_unit(&argv[4])?,
        length if length > 5 => return Err(Error::Syntax),
        _ => 1.0,
    };
    let Some(zset) = read_zset(ctx, &argv[1])? else {
        return Ok(Reply::Null);
    };
    let (Some(first), Some(second)) = (zset.score(&argv[2]), zset.score(&argv[3])) else {
        return Ok(Reply::Null);
    };
    let [lon1, lat1] = geohash::decode_score(first);
    let [lon2, lat2] = geohash::decode_score(second);
    Ok(distance_reply(
        geohash::distance(lon1, lat1, lon2, lat2) / to_meters,
    ))
}

// ---------------------------------------------------------------------------------------------
// The searches
// ---------------------------------------------------------------------------------------------

/// Which command runs the search (Redis's `RADIUS_*`/`GEOSEARCH*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// GEORADIUS: `key longitude latitude radius unit`.
    Coordinates,
    /// GEORADIUSBYMEMBER: `key member radius unit`.
    Member,
    /// GEOSEARCH and GEOSEARCHSTORE: FROMMEMBER/FROMLONLAT and BYRADIUS/BYBOX options.
    Search,
}

#[derive(Debug, Clone, Copy)]
struct Flavor {
    origin: Origin,
    /// The _RO forms refuse STORE and STOREDIST.
    no_store: bool,
    /// GEOSEARCHSTORE: the destination comes first; STOREDIST is a bare flag.
    search_store: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Ascending,
    Descending,
}

/// A point found inside the shape (Redis's `geoPoint`).
#[derive(Debug, Clone)]
struct Point {
    position: [f64; 2],
    /// Meters until the reply converts it to the unit.
    distance: f64,
    score: f64,
    member: CompactBytes,
}

/// Everything the options asked for.
struct Request<'a> {
    shape: Shape,
    with_distance: bool,
    with_hash: bool,
    with_coordinates: bool,
    sort: Sort,
    any: bool,
    /// 0 for no limit.
    count: usize,
    store: Option<&'a Bytes>,
    store_distance: bool,
}

/// The position of `member` in `zset` (Redis's `longLatFromMember`).
fn member_position(zset: &ZSet, member: &[u8]) -> Result<[f64; 2], Error> {
    zset.score(member)
        .map(geohash::decode_score)
        .ok_or(Error::from(MEMBER_NOT_DECODED))
}

/// Redis's argument handling in `georadiusGeneric`, in its order (errors included). `zset`
/// is the source, None when the key does not exist.
fn parse_request<'a>(
    argv: &'a [Bytes],
    flavor: Flavor,
    zset: Option<&ZSet>,
) -> Result<Request<'a>, Error> {
    let mut request = Request {
        shape: Shape {
            center: [0.0, 0.0],
            conversion: 0.0,
            extent: Extent::Radius(0.0),
        },
        with_distance: false,
        with_hash: false,
        with_coordinates: false,
        sort: Sort::None,
        any: false,
        count: 0,
        store: None,
        store_distance: false,
    };
    let base = match flavor.origin {
        Origin::Coordinates => {
            request.shape.center = parse_long_lat(&argv[2], &argv[3])?;
            let (conversion, radius) = parse_radius(&argv[4], &argv[5])?;
            request.shape.conversion = conversion;
            request.shape.extent = Extent::Radius(radius);
            6
        }
        Origin::Member => {
            // Without a source the reply is empty whatever the radius; only the options
            // are still checked, to know which empty reply to give.
            if let Some(zset) = zset {
                request.shape.center = member_position(zset, &argv[2])?;
                let (conversion, radius) = parse_radius(&argv[3], &argv[4])?;
                request.shape.conversion = conversion;
                request.shape.extent = Extent::Radius(radius);
            }
            5
        }
        Origin::Search if flavor.search_store => {
            request.store = Some(&argv[1]);
            3
        }
        Origin::Search => 2,
    };
    let search = flavor.origin == Origin::Search;
    let (mut from_member, mut from_coordinates, mut by_radius, mut by_box) =
        (false, false, false, false);
    let options = argv.get(base..).unwrap_or_default();
    let remaining = options.len();
    let mut index = 0;
    while index < remaining {
        let arg = &options[index];
        if args::is(arg, "withdist") {
            request.with_distance = true;
        } else if args::is(arg, "withhash") {
            request.with_hash = true;
        } else if args::is(arg, "withcoord") {
            request.with_coordinates = true;
        } else if args::is(arg, "any") {
            request.any = true;
        } else if args::is(arg, "asc") {
            request.sort = Sort::Ascending;
        } else if args::is(arg, "desc") {
            request.sort = Sort::Descending;
        } else if args::is(arg, "count") && index + 1 < remaining {
            let count = args::int(&options[index + 1])?;
            if count <= 0 {
                return Err(COUNT_NOT_POSITIVE.into());
            }
            request.count = usize::try_from(count).unwrap_or(usize::MAX);
            index += 1;
        } else if (args::is(arg, "store") || args::is(arg, "storedist"))
            && index + 1 < remaining
            && !flavor.no_store
            && !search
        {
            request.store = Some(&options[index + 1]);
            request.store_distance = args::is(arg, "storedist");
            index += 1;
        } else if args::is(arg, "storedist") && search && flavor.search_store {
            request.store_distance = true;
        } else if args::is(arg, "frommember")
            && index + 1 < remaining
            && search
            && !from_coordinates
        {
            if let Some(zset) = zset {
                request.shape.center = member_position(zset, &options[index + 1])?;
            }
            from_member = true;
            index += 1;
        } else if args::is(arg, "fromlonlat") && index + 2 < remaining && search && !from_member {
            request.shape.center = parse_long_lat(&options[index + 1], &options[index + 2])?;
            from_coordinates = true;
            index += 2;
        } else if args::is(arg, "byradius") && index + 2 < remaining && search && !by_box {
            let (conversion, radius) = parse_radius(&options[index + 1], &options[index + 2])?;
            request.shape.conversion = conversion;
            request.shape.extent = Extent::Radius(radius);
            by_radius = true;
            index += 2;
        } else if args::is(arg, "bybox") && index + 3 < remaining && search && !by_radius {
            let (conversion, width, height) = parse_box(
                &options[index + 1],
                &options[index + 2],
                &options[index + 3],
            )?;
            request.shape.conversion = conversion;
            request.shape.extent = Extent::Box { width, height };
            by_box = true;
            index += 3;
        } else {
            return Err(Error::Syntax);
        }
        index += 1;
    }

    if request.store.is_some()
        && (request.with_distance || request.with_hash || request.with_coordinates)
    {
        let what = if flavor.search_store {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(Error::Text(Cow::Owned(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        ))));
    }
    // Redis names the command as the client spelled it.
    let name = args::text(&argv[0]);
    if search && !(from_member || from_coordinates) {
        return Err(Error::Text(Cow::Owned(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        ))));
    }
    if search && !(by_radius || by_box) {
        return Err(Error::Text(Cow::Owned(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        ))));
    }
    if request.any && request.count == 0 {
        return Err(ANY_NEEDS_COUNT.into());
    }
    Ok(request)
}

/// Whether a search limited to `limit` points (0: unlimited) has enough.
fn enough(points: &[Point], limit: usize) -> bool {
    !points.is_empty() && limit != 0 && points.len() >= limit
}

/// Redis's `geoGetPointsInRange`: the members scored in `[min, max)` that lie in the shape.
fn points_in_range(
    zset: &ZSet,
    min: f64,
    max: f64,
    shape: &Shape,
    points: &mut Vec<Point>,
    limit: usize,
) {
    let start = zset.count_score_below(min, false);
    let end = zset.count_score_below(max, false);
    for (score, member) in zset.iter_range(start, end, false) {
        let position = geohash::decode_score(score);
        if let Some(distance) = geohash::distance_if_in_shape(shape, position) {
            points.push(Point {
                position,
                distance,
                score,
                member: CompactBytes::new(member),
            });
        }
        if enough(points, limit) {
            break;
        }
    }
}

/// Redis's `membersOfAllNeighbors`: the points of the shape in the cells that cover it.
fn points_in_shape(zset: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let cells = geohash::areas_by_shape(shape).cells();
    let mut points = Vec::new();
    // Index 0 doubles as "none yet", as in Redis: a neighbour equal to the centre cell is
    // visited again (only huge radii make cells repeat).
    let mut last_processed = 0;
    for (index, cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        if last_processed != 0 && *cell == cells[last_processed] {
            continue;
        }
        if enough(&points, limit) {
            break;
        }
        let (min, max) = cell.score_range();
        points_in_range(zset, min as f64, max as f64, shape, &mut points, limit);
        last_processed = index;
    }
    points
}

/// Redis's `sort_gp_asc`, NaN included (a NaN compares as smaller).
fn compare_ascending(a: &Point, b: &Point) -> Ordering {
    if a.distance > b.distance {
        Ordering::Greater
    } else if a.distance == b.distance {
        Ordering::Equal
    } else {
        Ordering::Less
    }
}

fn compare_descending(a: &Point, b: &Point) -> Ordering {
    compare_ascending(a, b).reverse()
}

/// glibc's `qsort` (2.36, what Redis 7.0.15 runs on): a top-down merge sort, stable, taking
/// from the left run on ties.
fn merge_sort(points: &mut [Point], compare: fn(&Point, &Point) -> Ordering) {
    fn sort(
        items: &mut [Point],
        scratch: &mut Vec<Point>,
        compare: fn(&Point, &Point) -> Ordering,
    ) {
        let length = items.len();
        if length <= 1 {
            return;
        }
        let half = length / 2;
        let (left, right) = items.split_at_mut(half);
        sort(left, scratch, compare);
        sort(right, scratch, compare);
        scratch.clear();
        let (mut i, mut j) = (0, 0);
        while i < left.len() && j < right.len() {
            if compare(&left[i], &right[j]) != Ordering::Greater {
                scratch.push(left[i].clone());
                i += 1;
            } else {
                scratch.push(right[j].clone());
                j += 1;
            }
        }
        scratch.extend(left[i..].iter().cloned());
        scratch.extend(right[j..].iter().cloned());
        debug_assert_eq!(scratch.len(), length);
        items.clone_from_slice(scratch);
    }
    let mut scratch = Vec::with_capacity(points.len());
    sort(points, &mut scratch, compare);
}

/// Redis 7.0's `pqsort` (NetBSD's Bentley-McIlroy quicksort that skips partitions outside
/// `[left, right]`): the elements of ranks `left..=right` end up sorted and in place. (Later
/// Redis versions fall back to insertion sort when a partition swapped nothing; 7.0 does not,
/// and the order of equal distances shows it.)
fn partial_sort(
    points: &mut [Point],
    compare: fn(&Point, &Point) -> Ordering,
    left: usize,
    right: usize,
) {
    let less = |a: &Point, b: &Point| compare(a, b) == Ordering::Less;
    let greater = |a: &Point, b: &Point| compare(a, b) == Ordering::Greater;
    let median_of_three = |items: &[Point], a: usize, b: usize, c: usize| {
        if less(&items[a], &items[b]) {
            if less(&items[b], &items[c]) {
                b
            } else if less(&items[a], &items[c]) {
                c
            } else {
                a
            }
        } else if greater(&items[b], &items[c]) {
            b
        } else if less(&items[a], &items[c]) {
            a
        } else {
            c
        }
    };
    let insertion_sort = |items: &mut [Point], start: usize, count: usize| {
        for m in start + 1..start + count {
            let mut l = m;
            while l > start && greater(&items[l - 1], &items[l]) {
                items.swap(l, l - 1);
                l -= 1;
            }
        }
    };
    let vector_swap = |items: &mut [Point], a: usize, b: usize, count: usize| {
        for offset in 0..count {
            items.swap(a + offset, b + offset);
        }
    };
    // Whether the subarray `[start, start + count)` lies wholly outside the wanted ranks.
    let outside = |start: usize, count: usize| {
        (left < start && right < start) || (left >= start + count && right >= start + count)
    };

    // Explicit stack instead of C's recursion: (start, count).
    let mut pending: Vec<(usize, usize)> = vec![(0, points.len())];
    while let Some((mut a, mut n)) = pending.pop() {
        loop {
            if n < 7 {
                insertion_sort(points, a, n);
                break;
            }
            let mut pm = a + n / 2;
            if n > 7 {
                let mut pl = a;
                let mut pn = a + n - 1;
                if n > 40 {
                    let d = n / 8;
                    pl = median_of_three(points, pl, pl + d, pl + 2 * d);
                    pm = median_of_three(points, pm - d, pm, pm + d);
                    pn = median_of_three(points, pn - 2 * d, pn - d, pn);
                }
                pm = median_of_three(points, pl, pm, pn);
            }
            points.swap(a, pm);
            let mut pa = a + 1;
            let mut pb = a + 1;
            // C's pointers may step one below `a + 1`; signed indices keep that expressible.
            let mut pc = (a + n - 1) as isize;
            let mut pd = (a + n - 1) as isize;
            loop {
                while pb as isize <= pc {
                    let order = compare(&points[pb], &points[a]);
                    if order == Ordering::Greater {
                        break;
                    }
                    if order == Ordering::Equal {
                        points.swap(pa, pb);
                        pa += 1;
                    }
                    pb += 1;
                }
                while pb as isize <= pc {
                    let order = compare(&points[pc as usize], &points[a]);
                    if order == Ordering::Less {
                        break;
                    }
                    if order == Ordering::Equal {
                        points.swap(pc as usize, pd as usize);
                        pd -= 1;
                    }
                    pc -= 1;
                }
                if pb as isize > pc {
                    break;
                }
                points.swap(pb, pc as usize);
                pb += 1;
                pc -= 1;
            }
            let pn = a + n;
            let pc = pc as usize;
            let pd = pd as usize;
            let r = (pa - a).min(pb - pa);
            vector_swap(points, a, pb - r, r);
            let r = (pd - pc).min(pn - pd - 1);
            vector_swap(points, pb, pn - r, r);
            let low = pb - pa;
            if low > 1 && !outside(a, low) {
                pending.push((a, low));
            }
            let high = pd - pc;
            if high > 1 {
                a = pn - high;
                n = high;
                if !outside(a, n) {
                    continue;
                }
            }
            break;
        }
    }
}

/// Sorts as Redis does: all of them (glibc qsort), or just the first `returned` (pqsort).
fn sort_points(points: &mut [Point], sort: Sort, returned: usize) {
    let compare = match sort {
        Sort::None => return,
        Sort::Ascending => compare_ascending,
        Sort::Descending => compare_descending,
    };
    if returned == points.len() {
        merge_sort(points, compare);
    } else if returned > 0 {
        partial_sort(points, compare, 0, returned - 1);
    }
}

/// Redis's `georadiusGeneric`: `source_index` is the source key's position.
fn search_generic(
    ctx: &mut Ctx<'_, '_>,
    argv: &[Bytes],
    source_index: usize,
    flavor: Flavor,
) -> CmdResult {
    let resp3 = ctx.session.resp3;
    let db = ctx.db();
    let limits = limits(ctx);
    let zset = read_zset(ctx, &argv[source_index])?;
    let mut request = parse_request(argv, flavor, zset)?;
    let Some(zset) = zset else {
        return match request.store {
            Some(destination) => {
                if ctx.ks.delete(db, destination) {
                    ctx.ks.notify(notify::GENERIC, "del", db, destination);
                }
                Ok(Reply::Integer(0))
            }
            None => Ok(Reply::Array(Vec::new())),
        };
    };
    // COUNT means the closest ones unless ANY says any will do.
    if request.count != 0 && request.sort == Sort::None && !request.any {
        request.sort = Sort::Ascending;
    }
    let limit = if request.any { request.count } else { 0 };
    let mut points = points_in_shape(zset, &request.shape, limit);
    if points.is_empty() && request.store.is_none() {
        return Ok(Reply::Array(Vec::new()));
    }
    let returned = if request.count == 0 {
        points.len()
    } else {
        points.len().min(request.count)
    };
    sort_points(&mut points, request.sort, returned);
    points.truncate(returned);
    let conversion = request.shape.conversion;
    for point in &mut points {
        point.distance /= conversion;
    }

    let Some(destination) = request.store else {
        let reply = points
            .into_iter()
            .map(|point| {
                let member = Reply::bulk_copy(point.member.as_slice());
                if !(request.with_distance || request.with_hash || request.with_coordinates) {
                    return member;
                }
                let mut fields = vec![member];
                if request.with_distance {
                    fields.push(distance_reply(point.distance));
                }
                if request.with_hash {
                    // C converts the score to long long; within a search cell it fits.
                    fields.push(Reply::Integer(point.score as i64));
                }
                if request.with_coordinates {
                    fields.push(position_reply(point.position, resp3));
                }
                Reply::Array(fields)
            })
            .collect();
        return Ok(Reply::Array(reply));
    };

    let stored = points.len();
    if stored == 0 {
        if ctx.ks.delete(db, destination) {
            ctx.ks.notify(notify::GENERIC, "del", db, destination);
        }
        return Ok(Reply::Integer(0));
    }
    let elements: Vec<(f64, CompactBytes)> = points
        .into_iter()
        .map(|point| {
            let score = if request.store_distance {
                // A NaN distance (see `fixed_point_4`) would trip Redis's own assertion in
                // zslInsert; a sorted set cannot hold it, so it is stored as 0.
                if point.distance.is_nan() {
                    0.0
                } else {
                    point.distance
                }
            } else {
                point.score
            };
            (score, point.member)
        })
        .collect();
    let zset = ZSet::from_elements(elements, limits);
    debug_assert_eq!(zset.len(), stored);
    ctx.ks
        .set(db, destination, Value::ZSet(Box::new(zset)), false);
    let event = if flavor.origin == Origin::Search {
        "geosearchstore"
    } else {
        "georadiusstore"
    };
    ctx.ks.notify(notify::ZSET, event, db, destination);
    Ok(Reply::Integer(stored as i64))
}

/// `GEORADIUS key longitude latitude radius M|KM|FT|MI [WITHCOORD] [WITHDIST] [WITHHASH]
/// [COUNT count [ANY]] [ASC|DESC] [STORE key] [STOREDIST key]`.
fn georadius(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let flavor = Flavor {
        origin: Origin::Coordinates,
        no_store: false,
        search_store: false,
    };
    search_generic(ctx, argv, 1, flavor)
}

/// `GEORADIUS_RO key longitude latitude radius unit [options without STORE]`.
fn georadius_ro(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let flavor = Flavor {
        origin: Origin::Coordinates,
        no_store: true,
        search_store: false,
    };
    search_generic(ctx, argv, 1, flavor)
}

/// `GEORADIUSBYMEMBER key member radius M|KM|FT|MI [options as GEORADIUS]`.
fn georadiusbymember(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let flavor = Flavor {
        origin: Origin::Member,
        no_store: false,
        search_store: false,
    };
    search_generic(ctx, argv, 1, flavor)
}

/// `GEORADIUSBYMEMBER_RO key member radius unit [options without STORE]`.
fn georadiusbymember_ro(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let flavor = Flavor {
        origin: Origin::Member,
        no_store: true,
        search_store: false,
    };
    search_generic(ctx, argv, 1, flavor)
}

/// `GEOSEARCH key FROMMEMBER member|FROMLONLAT longitude latitude BYRADIUS radius unit|BYBOX
/// width height unit [ASC|DESC] [COUNT count [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]`.
fn geosearch(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let flavor = Flavor {
        origin: Origin::Search,
        no_store: false,
        search_store: false,
    };
    search_generic(ctx, argv, 1, flavor)
}

/// `GEOSEARCHSTORE destination source FROMMEMBER|FROMLONLAT ... BYRADIUS|BYBOX ... [ASC|DESC]
/// [COUNT count [ANY]] [STOREDIST]`.
fn geosearchstore(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let flavor = Flavor {
        origin: Origin::Search,
        no_store: false,
        search_store: true,
    };
    search_generic(ctx, argv, 2, flavor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestServer;

    fn point(distance: f64, name: &str) -> Point {
        Point {
            position: [0.0, 0.0],
            distance,
            score: 0.0,
            member: CompactBytes::new(name.as_bytes()),
        }
    }

    fn names(points: &[Point]) -> Vec<String> {
        points
            .iter()
            .map(|point| String::from_utf8_lossy(point.member.as_slice()).into_owned())
            .collect()
    }

    #[test]
    fn human_doubles_as_redis_prints_them() {
        assert_eq!(human_double(13.361389338970184), "13.36138933897018433");
        assert_eq!(human_double(180.0), "180");
        assert_eq!(human_double(-0.0), "0");
        assert_eq!(human_double(85.05112878), "85.0511287799999991");
        assert_eq!(human_double(0.5), "0.5");
    }

    #[test]
    fn distances_print_as_redis_fixedpoint() {
        assert_eq!(fixed_point_4(0.0), "0.0000");
        assert_eq!(fixed_point_4(-0.0), "0.0000");
        assert_eq!(fixed_point_4(56.441257870158), "56.4413");
        assert_eq!(fixed_point_4(166274.15156960033), "166274.1516");
        assert_eq!(fixed_point_4(0.00004), "0.0000");
        assert_eq!(fixed_point_4(0.0005), "0.0005");
        assert_eq!(fixed_point_4(0.00025), "0.0002");
        // Redis 7.0.15 answers .1012 here (printf would round the exact value up).
        assert_eq!(fixed_point_4(42737392.10125), "42737392.1012");
        assert_eq!(fixed_point_4(f64::NAN), "-922337203685477.5808");
    }

    #[test]
    fn full_sort_is_stable() {
        let mut points: Vec<Point> = [3.0, 1.0, 2.0, 1.0, 3.0, 1.0]
            .iter()
            .enumerate()
            .map(|(index, &distance)| point(distance, &index.to_string()))
            .collect();
        sort_points(&mut points, Sort::Ascending, 6);
        assert_eq!(names(&points), ["1", "3", "5", "2", "0", "4"]);
        sort_points(&mut points, Sort::Descending, 6);
        assert_eq!(names(&points), ["0", "4", "2", "1", "3", "5"]);
    }

    /// Permutations from Redis 7.0's pqsort.c compiled as is (the 8-point case is also what
    /// Redis 7.0.15 answers for GEORADIUSBYMEMBER ... COUNT 5 over those distances).
    #[test]
    fn partial_sort_permutes_as_redis_pqsort() {
        let cases: [(&[f64], usize, &[usize]); 4] = [
            (
                &[70.0, 0.0, 0.0, 0.0, 0.0, 0.0, 121.0, 6095.0],
                5,
                &[5, 1, 2, 3, 4, 0, 6, 7],
            ),
            (&[0.0; 10], 3, &[9, 1, 2, 3, 4, 5, 6, 7, 8, 0]),
            (
                &[3.0, 1.0, 2.0, 1.0, 3.0, 1.0, 0.0, 0.0, 2.0, 5.0, 1.0, 0.0],
                5,
                &[11, 6, 7, 1, 3, 5, 10, 2, 8, 9, 0, 4],
            ),
            (
                &[
                    3.0, 6.0, 4.0, 6.0, 6.0, 3.0, 3.0, 4.0, 6.0, 4.0, 1.0, 1.0, 6.0, 4.0, 3.0, 5.0,
                    4.0, 6.0, 1.0, 0.0, 3.0, 2.0, 1.0, 0.0, 4.0, 6.0, 5.0, 5.0, 0.0, 4.0, 3.0, 3.0,
                    5.0, 5.0, 4.0, 5.0, 1.0, 4.0, 0.0, 6.0, 4.0, 0.0, 0.0, 0.0, 1.0, 1.0, 4.0, 0.0,
                    6.0, 3.0,
                ],
                7,
                &[
                    23, 19, 43, 47, 42, 41, 38, 28, 22, 21, 18, 44, 10, 11, 45, 36, 49, 5, 6, 14,
                    20, 30, 31, 0, 24, 25, 26, 27, 13, 29, 1, 48, 32, 33, 34, 35, 12, 37, 9, 39,
                    40, 8, 7, 4, 3, 2, 46, 17, 16, 15,
                ],
            ),
        ];
        for (distances, returned, expected) in cases {
            let mut points: Vec<Point> = distances
                .iter()
                .enumerate()
                .map(|(index, &distance)| point(distance, &index.to_string()))
                .collect();
            sort_points(&mut points, Sort::Ascending, returned);
            let order: Vec<usize> = points
                .iter()
                .map(|point| {
                    names(std::slice::from_ref(point))[0]
                        .parse()
                        .unwrap_or(usize::MAX)
                })
                .collect();
            assert_eq!(order, expected);
        }
    }

    #[test]
    fn partial_sort_orders_the_prefix() {
        // Deterministic pseudo-random distances with many ties, several sizes.
        let mut seed: u64 = 7;
        for length in [1usize, 5, 7, 8, 41, 100, 300] {
            let mut points: Vec<Point> = (0..length)
                .map(|index| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    point(((seed >> 33) % 20) as f64, &index.to_string())
                })
                .collect();
            let mut expected: Vec<f64> = points.iter().map(|point| point.distance).collect();
            expected.sort_by(f64::total_cmp);
            for returned in [1, length / 2 + 1, length] {
                let mut sorted = points.clone();
                partial_sort(&mut sorted, compare_ascending, 0, returned - 1);
                let prefix: Vec<f64> = sorted[..returned]
                    .iter()
                    .map(|point| point.distance)
                    .collect();
                assert_eq!(
                    prefix,
                    expected[..returned],
                    "length {length} returned {returned}"
                );
            }
            points.clear();
        }
    }

    #[test]
    fn georadius_keys_follow_redis() {
        let keys = |line: &str| {
            let argv = crate::testing::words(line);
            if args::is(&argv[0], "georadius") {
                georadius_keys(&argv)
            } else {
                georadiusbymember_keys(&argv)
            }
        };
        // Redis 7.0's COMMAND GETKEYS answers.
        assert_eq!(
            keys("GEORADIUS src 1 2 3 km STORE a STOREDIST b"),
            vec![1, 7, 9]
        );
        assert_eq!(keys("GEORADIUS src 1 2 3 km COUNT 5 STORE a"), vec![1, 9]);
        assert_eq!(keys("GEORADIUSBYMEMBER src m 3 km STORE a"), vec![1, 6]);
        assert_eq!(keys("GEORADIUSBYMEMBER src m 3 km store"), vec![1]);
        assert_eq!(keys("GEORADIUS src 1 2 3 km"), vec![1]);
        // The written destination (the last one) is always locked.
        assert_eq!(
            keys("GEORADIUS src 1 2 3 km STORE a STORE b"),
            vec![1, 7, 9]
        );
    }

    #[test]
    fn geoadd_propagates_as_zadd() {
        let server = TestServer::new();
        let mut session = server.session();
        let reply = server.run(
            &mut session,
            "GEOADD Sicily CH 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        );
        assert_eq!(reply, ":2\r\n");
        assert_eq!(
            server.run(&mut session, "GEOADD Sicily 13.361389 38.115556 Palermo"),
            ":0\r\n"
        );
        assert_eq!(
            server.run(&mut session, "ZSCORE Sicily Palermo"),
            "$16\r\n3479099956230698\r\n"
        );
        // What Redis 7.0.15 writes to its AOF for the same commands: GEOADD as the ZADD it
        // runs, the searches verbatim and only when they wrote.
        for line in [
            "GEORADIUS Sicily 15 37 200 km",
            "GEORADIUS Sicily 15 37 200 km STORE dst",
            "GEOSEARCHSTORE dst2 Sicily FROMLONLAT 15 37 BYBOX 400 400 km STOREDIST",
            "GEORADIUS nokey 15 37 200 km STORE dst",
            "GEORADIUS nokey 15 37 200 km STORE dst",
        ] {
            server.run(&mut session, line);
        }
        let propagated = server.propagated();
        let tail: Vec<&str> = propagated.iter().map(String::as_str).skip(1).collect();
        assert_eq!(
            tail,
            [
                "zadd Sicily CH 3479099956230698 Palermo 3479447370796909 Catania",
                "GEORADIUS Sicily 15 37 200 km STORE dst",
                "GEOSEARCHSTORE dst2 Sicily FROMLONLAT 15 37 BYBOX 400 400 km STOREDIST",
                "GEORADIUS nokey 15 37 200 km STORE dst",
            ]
        );
    }

    #[test]
    fn searches_match_redis() {
        let server = TestServer::new();
        let mut session = server.session();
        server.run(
            &mut session,
            "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        );
        assert_eq!(
            server.run(&mut session, "GEORADIUS Sicily 15 37 200 km WITHDIST ASC"),
            "*2\r\n*2\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n*2\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n"
        );
        assert_eq!(
            server.run(
                &mut session,
                "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYBOX 400 400 km"
            ),
            ":2\r\n"
        );
        assert_eq!(
            server.run(&mut session, "GEOPOS Sicily Palermo"),
            "*1\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n"
        );
    }
}
