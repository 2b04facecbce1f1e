//! SORT and SORT_RO, with Redis 7.0.15's replies, error texts and effects (`sort.c`).
//!
//! `SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC|DESC]
//! [ALPHA] [STORE destination]`; SORT_RO takes every option but STORE.
//!
//! The elements of a list, set or sorted set are loaded, weighted (the element itself, or the
//! value named by the BY pattern), sorted, cut to the LIMIT window and rendered, either
//! as-is or through GET patterns. A BY pattern without `*` means "do not sort": lists and
//! sorted sets keep their order (DESC walks them backwards), sets their iteration order,
//! except that SORT ... STORE of a set sorts ALPHA anyway so the stored list is deterministic.
//!
//! Patterns: `#` is the element itself; otherwise the first `*` is replaced by the element to
//! name a string key, or, when `->field` follows the `*`, a field of a hash key. A pattern is
//! read as a C string, as Redis reads it (the search for `*` and `->` stops at a NUL byte).
//!
//! Order: a whole sort is stable (Redis's glibc qsort is a merge sort); BY with a LIMIT
//! window uses a port of Redis's partial quicksort, so ALPHA ties come out in Redis's order.
//! A sorted set is converted to the skiplist encoding first, as Redis does (OBJECT ENCODING
//! shows it). Not reproduced: Redis never clears `errno` before `strtod`, so after an
//! out-of-range weight a later numeric SORT may fail spuriously there; Strata does not.
//!
//! Locking: BY and GET patterns can name any key, so both commands lock the whole keyspace
//! (`Lock::All`): that keeps the loaded elements, the weights and the GET values one atomic
//! snapshot. SORT ... STORE propagates verbatim (Redis 7.0 does; the set case is made
//! deterministic by the forced ALPHA sort above).

use super::args;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::keyspace::notify;
use crate::protocol::Reply;
use crate::types::list::List;
use crate::types::zset::{Limits, ZSet};
use crate::types::{CompactBytes, Value};
use bytes::Bytes;
use std::cmp::Ordering;

const SCORES_NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";
/// Recursion depth of the partial quicksort before it sorts a partition directly.
const PARTIAL_SORT_DEPTH_MAX: usize = 256;

pub static COMMANDS: &[Spec] = &[
    Spec::new("sort", sort, Lock::AllNaming(sort_keys)),
    Spec::new("sort_ro", sort_ro, Lock::AllNaming(sort_keys)),
];

/// Redis's `sortGetKeys`: the sorted key, and the last STORE's destination. LIMIT's two
/// arguments and BY's and GET's one are skipped so a key named "store" is not mistaken.
fn sort_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut destination = None;
    let mut index = 2;
    while index < argv.len() {
        let skip = if args::is(&argv[index], "limit") {
            2
        } else if args::is(&argv[index], "get") || args::is(&argv[index], "by") {
            1
        } else if args::is(&argv[index], "store") {
            destination = (index + 1 < argv.len()).then_some(index + 1);
            1
        } else {
            0
        };
        index += 1 + skip;
    }
    keys.extend(destination);
    keys
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination]
fn sort(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    sort_generic(ctx, argv, false)
}

/// SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
fn sort_ro(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    sort_generic(ctx, argv, true)
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// The parsed options, in Redis's terms.
#[derive(Debug, Default)]
struct Options {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    /// Negative means "to the end".
    limit_count: i64,
    /// The BY pattern, only when it contains `*` (a constant pattern sets `dont_sort`).
    by: Option<Bytes>,
    dont_sort: bool,
    gets: Vec<Bytes>,
    store: Option<Bytes>,
}

/// Parses the options after the key, left to right; later ASC/DESC and BY win, as in Redis.
fn parse(argv: &[Bytes], readonly: bool) -> Result<Options, Error> {
    assert!(argv.len() >= 2, "the table's arity guarantees the key");
    let mut options = Options {
        limit_count: -1,
        ..Options::default()
    };
    let mut index = 2;
    while index < argv.len() {
        let left = argv.len() - index - 1;
        let word = &argv[index];
        if args::is(word, "asc") {
            options.desc = false;
        } else if args::is(word, "desc") {
            options.desc = true;
        } else if args::is(word, "alpha") {
            options.alpha = true;
        } else if args::is(word, "limit") && left >= 2 {
            options.limit_start = args::int(&argv[index + 1])?;
            options.limit_count = args::int(&argv[index + 2])?;
            index += 2;
        } else if !readonly && args::is(word, "store") && left >= 1 {
            options.store = Some(argv[index + 1].clone());
            index += 1;
        } else if args::is(word, "by") && left >= 1 {
            let pattern = &argv[index + 1];
            // Redis keeps the last BY; a constant one turns sorting off for good.
            if c_string(pattern).contains(&b'*') {
                options.by = Some(pattern.clone());
            } else {
                options.by = None;
                options.dont_sort = true;
            }
            index += 1;
        } else if args::is(word, "get") && left >= 1 {
            options.gets.push(argv[index + 1].clone());
            index += 1;
        } else {
            return Err(Error::Syntax);
        }
        index += 1;
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------------

/// What a pattern names for one element.
#[derive(Debug, PartialEq)]
enum Target<'p> {
    /// `#`: the element itself.
    Itself,
    /// A string key.
    Key(Vec<u8>),
    /// A field of a hash key.
    Field(Vec<u8>, &'p [u8]),
    /// No `*`: a constant pattern names nothing.
    Nothing,
}

/// The bytes before the first NUL: the part of an argument C's string functions see.
fn c_string(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(bytes.len());
    &bytes[..end]
}

/// Redis's `lookupKeyByPattern` name building: the first `*` becomes `element`; a `->`
/// after it with at least one byte following splits off the hash field.
fn substitute<'p>(pattern: &'p [u8], element: &[u8]) -> Target<'p> {
    let visible = c_string(pattern);
    if visible == b"#" {
        return Target::Itself;
    }
    let Some(star) = visible.iter().position(|&byte| byte == b'*') else {
        return Target::Nothing;
    };
    let after = &visible[star + 1..];
    let arrow = after
        .windows(2)
        .position(|pair| pair == b"->")
        .map(|offset| star + 1 + offset)
        .filter(|&arrow| arrow + 2 < visible.len());
    // The field and the postfix lengths come from the whole argument, NUL bytes included.
    let postfix_end = arrow.unwrap_or(pattern.len());
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(&pattern[star + 1..postfix_end]);
    match arrow {
        Some(arrow) => Target::Field(key, &pattern[arrow + 2..]),
        None => Target::Key(key),
    }
}

/// The value a pattern names for `element`: a string key's value or a hash field's; `None`
/// when the key is missing or of another type, or the pattern has no `*`. A cold key's part
/// read ahead by the executor (`Prefetched`) is used as it is; others are looked up.
fn fetch(ctx: &mut Ctx<'_, '_>, pattern: &[u8], element: &Bytes) -> Option<Bytes> {
    let db = ctx.db();
    let (key, field) = match substitute(pattern, element) {
        Target::Itself => return Some(element.clone()),
        Target::Nothing => return None,
        Target::Key(key) => (key, None),
        Target::Field(key, field) => (key, Some(field)),
    };
    if let Some(part) = ctx.ks.lookup_prefetched(db, &key, field) {
        return part;
    }
    part(&ctx.ks.lookup_read(db, &key)?.value, field)
}

/// What a pattern takes from the value it names: the string itself (`field` None) or one
/// field of a hash; None for another type or a missing field.
pub fn part(value: &Value, field: Option<&[u8]>) -> Option<Bytes> {
    match (value, field) {
        (Value::Str(value), None) => Some(Bytes::copy_from_slice(value)),
        (Value::Hash(hash), Some(field)) => hash.get(field).map(Bytes::copy_from_slice),
        _ => None,
    }
}

/// The BY and GET patterns of a SORT, for the executor to read the keys they name ahead
/// with the locks released, so SORT does not read them from the disk tier with the whole
/// keyspace locked. None when the arguments do not parse (SORT then fails by itself).
pub fn patterns(argv: &[Bytes], readonly: bool) -> Option<Vec<Bytes>> {
    let options = parse(argv, readonly).ok()?;
    Some(options.by.into_iter().chain(options.gets).collect())
}

/// The elements SORT would load from `value` (a copy, as SORT's own sort vector is); empty
/// for a type SORT refuses.
pub fn elements(value: &Value) -> Vec<Bytes> {
    match value {
        Value::List(list) => list.iter().map(Bytes::copy_from_slice).collect(),
        Value::Set(set) => set.members(),
        Value::ZSet(zset) => zset
            .iter_range(0, zset.len(), false)
            .map(|(_, member)| Bytes::copy_from_slice(member))
            .collect(),
        _ => Vec::new(),
    }
}

/// The key `pattern` names for `element`, and the hash field when it names one; None for
/// `#` and patterns without `*`.
pub fn target<'p>(pattern: &'p [u8], element: &[u8]) -> Option<(Vec<u8>, Option<&'p [u8]>)> {
    match substitute(pattern, element) {
        Target::Key(key) => Some((key, None)),
        Target::Field(key, field) => Some((key, Some(field))),
        Target::Itself | Target::Nothing => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Weights and comparison
// ---------------------------------------------------------------------------------------------

/// Is `text` a whole double as Redis's `strtod(text, &end)` check accepts it: the C string
/// must be consumed entirely (an empty one is 0), without overflow, underflow or NaN.
fn parse_weight(text: &[u8]) -> Option<f64> {
    let visible = c_string(text);
    if visible.is_empty() {
        return Some(0.0);
    }
    let (value, consumed) = strtod(visible)?;
    if consumed != visible.len() || value.is_nan() {
        return None;
    }
    Some(value)
}

/// glibc `strtod` on a C string: the value and the bytes consumed, or `None` when nothing
/// converts or the result is out of range (ERANGE: overflow, or an underflow to zero or a
/// subnormal).
fn strtod(text: &[u8]) -> Option<(f64, usize)> {
    let mut position = text
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let number_start = position;
    let negative = text[position] == b'-';
    if matches!(text[position], b'+' | b'-') {
        position += 1;
    }
    let rest = &text[position..];
    let lower: Vec<u8> = rest.iter().take(8).map(u8::to_ascii_lowercase).collect();
    let sign = if negative { -1.0 } else { 1.0 };
    if lower.starts_with(b"nan") {
        return Some((f64::NAN, position + 3));
    }
    if lower.starts_with(b"infinity") {
        return Some((sign * f64::INFINITY, position + 8));
    }
    if lower.starts_with(b"inf") {
        return Some((sign * f64::INFINITY, position + 3));
    }
    if lower.starts_with(b"0x") {
        if let Some((magnitude, length)) = hex_float(&rest[2..]) {
            return range_checked(sign * magnitude, position + 2 + length, magnitude != 0.0);
        }
    }
    let digits = |from: usize| {
        text[from..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count()
    };
    let integer_digits = digits(position);
    position += integer_digits;
    let mut fraction_digits = 0;
    if text.get(position) == Some(&b'.') {
        fraction_digits = digits(position + 1);
        if integer_digits + fraction_digits > 0 {
            position += 1 + fraction_digits;
        }
    }
    if integer_digits + fraction_digits == 0 {
        return None;
    }
    if matches!(text.get(position), Some(b'e' | b'E')) {
        let mut exponent = position + 1;
        if matches!(text.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        let exponent_digits = digits(exponent);
        if exponent_digits > 0 {
            position = exponent + exponent_digits;
        }
    }
    let literal = std::str::from_utf8(&text[number_start..position]).ok()?;
    let value: f64 = literal.parse().ok()?;
    let nonzero = text[number_start..position]
        .iter()
        .take_while(|byte| !matches!(byte, b'e' | b'E'))
        .any(|byte| (b'1'..=b'9').contains(byte));
    range_checked(value, position, nonzero)
}

/// ERANGE as glibc reports it: an infinite result, or a nonzero input that became zero or
/// subnormal.
fn range_checked(value: f64, consumed: usize, nonzero: bool) -> Option<(f64, usize)> {
    let underflow = nonzero && value.abs() < f64::MIN_POSITIVE;
    if value.is_infinite() || underflow {
        return None;
    }
    Some((value, consumed))
}

/// A hexadecimal float body after `0x` (`1.8p3`): the magnitude and the bytes consumed, or
/// `None` when no hex digit follows (then strtod converts just the `0`).
fn hex_float(text: &[u8]) -> Option<(f64, usize)> {
    let mut mantissa = 0.0f64;
    let mut position = 0;
    let mut seen = false;
    while let Some(digit) = text
        .get(position)
        .and_then(|byte| (*byte as char).to_digit(16))
    {
        mantissa = mantissa * 16.0 + f64::from(digit);
        position += 1;
        seen = true;
    }
    let mut scale = 0i32;
    if text.get(position) == Some(&b'.') {
        let mut fraction = position + 1;
        while let Some(digit) = text
            .get(fraction)
            .and_then(|byte| (*byte as char).to_digit(16))
        {
            mantissa = mantissa * 16.0 + f64::from(digit);
            scale = scale.saturating_sub(4);
            fraction += 1;
            seen = true;
        }
        if seen {
            position = fraction;
        }
    }
    if !seen {
        return None;
    }
    if matches!(text.get(position), Some(b'p' | b'P')) {
        let mut exponent_at = position + 1;
        let negative = text.get(exponent_at) == Some(&b'-');
        if matches!(text.get(exponent_at), Some(b'+' | b'-')) {
            exponent_at += 1;
        }
        let exponent_digits = text[exponent_at.min(text.len())..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if exponent_digits > 0 {
            let digits = &text[exponent_at..exponent_at + exponent_digits];
            let exponent = digits.iter().fold(0i32, |total, digit| {
                total
                    .saturating_mul(10)
                    .saturating_add(i32::from(digit - b'0'))
            });
            scale = scale.saturating_add(if negative { -exponent } else { exponent });
            position = exponent_at + exponent_digits;
        }
    }
    Some((mantissa * 2f64.powi(scale), position))
}

/// What an element sorts by.
#[derive(Debug, Clone)]
enum Weight {
    /// Numeric sorting: the parsed weight (0 when the BY key is missing).
    Score(f64),
    /// ALPHA with BY: the BY value, missing first.
    Text(Option<Bytes>),
    /// ALPHA without BY: the element itself.
    Element,
}

/// How ALPHA compares strings: STORE compares binary (memcmp, shorter first), a reply
/// collates (`strcoll`; under the C and C.UTF-8 locales that is `strcmp`, which stops at
/// a NUL byte).
fn compare_text(a: &[u8], b: &[u8], store: bool) -> Ordering {
    if store {
        a.cmp(b)
    } else {
        c_string(a).cmp(c_string(b))
    }
}

/// Redis's `sortCompare`, ascending.
fn compare(a: (&Bytes, &Weight), b: (&Bytes, &Weight), store: bool) -> Ordering {
    match (a.1, b.1) {
        (Weight::Score(score_a), Weight::Score(score_b)) => {
            if score_a > score_b {
                Ordering::Greater
            } else if score_a < score_b {
                Ordering::Less
            } else {
                // Equal scores fall back to the elements so the result is deterministic.
                a.0.as_ref().cmp(b.0.as_ref())
            }
        }
        (Weight::Text(text_a), Weight::Text(text_b)) => match (text_a, text_b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(text_a), Some(text_b)) => compare_text(text_a, text_b, store),
        },
        _ => compare_text(a.0, b.0, store),
    }
}

// ---------------------------------------------------------------------------------------------
// Redis's partial quicksort (pqsort.c: NetBSD's qsort, Bentley & McIlroy)
// ---------------------------------------------------------------------------------------------

/// Sorts `items[first..first + count]` as Redis's `pqsort` does: a quicksort that skips the
/// partitions lying wholly outside the window `left..=right` (indices into `items`), and
/// whose treatment of ties is reproduced step for step, since it decides their order.
fn partial_sort<T>(
    items: &mut [T],
    mut first: usize,
    mut count: usize,
    left: i64,
    right: i64,
    order: &impl Fn(&T, &T) -> Ordering,
    depth: usize,
) {
    if depth >= PARTIAL_SORT_DEPTH_MAX {
        // Not Redis's: a quicksort-killer input would recurse as deep as the list is long;
        // past this depth the partition is sorted whole (ties may then order differently).
        items[first..first + count].sort_by(order);
        return;
    }
    // Each pass either returns or continues on a strictly smaller partition.
    loop {
        assert!(first + count <= items.len());
        if count < 7 {
            insertion_sort(items, first, count, order);
            return;
        }
        let mut middle = first + count / 2;
        if count > 7 {
            let mut low = first;
            let mut high = first + count - 1;
            if count > 40 {
                let step = count / 8;
                low = median_of_three(items, low, low + step, low + 2 * step, order);
                middle = median_of_three(items, middle - step, middle, middle + step, order);
                high = median_of_three(items, high - 2 * step, high - step, high, order);
            }
            middle = median_of_three(items, low, middle, high, order);
        }
        items.swap(first, middle);
        // [first+1, equal_low): equal to the pivot; [equal_low, below): less;
        // (above, equal_high]: greater; (equal_high, end): equal.
        let (mut equal_low, mut below) = (first + 1, first + 1);
        let (mut above, mut equal_high) = (first + count - 1, first + count - 1);
        let mut swapped = false;
        loop {
            while below <= above {
                let result = order(&items[below], &items[first]);
                if result == Ordering::Greater {
                    break;
                }
                if result == Ordering::Equal {
                    swapped = true;
                    items.swap(equal_low, below);
                    equal_low += 1;
                }
                below += 1;
            }
            while below <= above {
                let result = order(&items[above], &items[first]);
                if result == Ordering::Less {
                    break;
                }
                if result == Ordering::Equal {
                    swapped = true;
                    items.swap(above, equal_high);
                    equal_high -= 1;
                }
                above -= 1;
            }
            if below > above {
                break;
            }
            items.swap(below, above);
            swapped = true;
            below += 1;
            above -= 1;
        }
        if !swapped {
            insertion_sort(items, first, count, order);
            return;
        }
        let end = first + count;
        let moved = (equal_low - first).min(below - equal_low);
        swap_runs(items, first, below - moved, moved);
        let moved = (equal_high - above).min(end - equal_high - 1);
        swap_runs(items, below, end - moved, moved);
        let outside = |low: usize, length: usize| {
            let (low, high) = (low as i64, (low + length) as i64 - 1);
            (left < low && right < low) || (left > high && right > high)
        };
        let smaller = below - equal_low;
        if smaller > 1 && !outside(first, smaller) {
            partial_sort(items, first, smaller, left, right, order, depth + 1);
        }
        let larger = equal_high - above;
        if larger <= 1 || outside(end - larger, larger) {
            return;
        }
        first = end - larger;
        count = larger;
    }
}

fn insertion_sort<T>(
    items: &mut [T],
    first: usize,
    count: usize,
    order: &impl Fn(&T, &T) -> Ordering,
) {
    for current in first + 1..first + count {
        let mut position = current;
        while position > first && order(&items[position - 1], &items[position]).is_gt() {
            items.swap(position - 1, position);
            position -= 1;
        }
    }
}

fn median_of_three<T>(
    items: &[T],
    a: usize,
    b: usize,
    c: usize,
    order: &impl Fn(&T, &T) -> Ordering,
) -> usize {
    if order(&items[a], &items[b]).is_lt() {
        if order(&items[b], &items[c]).is_lt() {
            b
        } else if order(&items[a], &items[c]).is_lt() {
            c
        } else {
            a
        }
    } else if order(&items[b], &items[c]).is_gt() {
        b
    } else if order(&items[a], &items[c]).is_lt() {
        a
    } else {
        c
    }
}

/// `vecswap`: swaps `items[a + i]` with `items[b + i]` for `i` in `0..count`, in order.
fn swap_runs<T>(items: &mut [T], a: usize, b: usize, count: usize) {
    for offset in 0..count {
        items.swap(a + offset, b + offset);
    }
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

/// The LIMIT window over `length` elements as Redis clamps it: inclusive `(start, end)`,
/// empty when `end < start`.
fn window(limit_start: i64, limit_count: i64, length: i64) -> (i64, i64) {
    debug_assert!(length >= 0);
    let mut start = limit_start.clamp(0, length);
    let count = limit_count.max(-1).min(length);
    let mut end = if count < 0 {
        length - 1
    } else {
        start + count - 1
    };
    if start >= length {
        start = length - 1;
        end = length - 2;
    }
    end = end.min(length - 1);
    (start, end)
}

/// The elements to sort (or, when not sorting a list or sorted set, already the window)
/// and the inclusive window over them.
struct Loaded {
    elements: Vec<Bytes>,
    start: i64,
    end: i64,
}

/// Loads the key's elements as `sortCommandGeneric` does; `None` for another type.
fn load(value: &mut Value, options: &mut Options) -> Option<Loaded> {
    if let Value::Set(_) = value {
        if options.dont_sort && options.store.is_some() {
            // Redis sorts a set for STORE anyway, so the stored list does not leak the
            // set's internal order into the AOF and replicas.
            options.dont_sort = false;
            options.alpha = true;
            options.by = None;
        }
    }
    if let Value::ZSet(zset) = value {
        // Redis converts a listpack sorted set to a skiplist before sorting it.
        if zset.encoding() == "listpack" {
            let elements = zset
                .iter_range(0, zset.len(), false)
                .map(|(score, member)| (score, CompactBytes::new(member)))
                .collect();
            let skiplist = Limits {
                entries_max: 0,
                value_bytes_max: 0,
            };
            **zset = ZSet::from_elements(elements, skiplist);
        }
    }
    let length = match value {
        Value::List(list) => list.len(),
        Value::Set(set) => set.len(),
        Value::ZSet(zset) => zset.len(),
        _ => return None,
    };
    let length_signed = i64::try_from(length).unwrap_or(i64::MAX);
    let (start, end) = window(options.limit_start, options.limit_count, length_signed);
    let desc = options.desc;
    // The first element of the window and its size, for the direct loads.
    let first = usize::try_from(start).unwrap_or(0);
    let count = usize::try_from(end - start + 1).unwrap_or(0);
    let direct = |elements: Vec<Bytes>| {
        debug_assert!(elements.len() == count);
        Loaded {
            elements,
            start: 0,
            end: count as i64 - 1,
        }
    };
    let loaded = match value {
        Value::List(list) if options.dont_sort => {
            let elements: Vec<Bytes> = if desc {
                list.iter()
                    .rev()
                    .skip(first)
                    .take(count)
                    .map(Bytes::copy_from_slice)
                    .collect()
            } else {
                list.iter()
                    .skip(first)
                    .take(count)
                    .map(Bytes::copy_from_slice)
                    .collect()
            };
            direct(elements)
        }
        Value::ZSet(zset) if options.dont_sort => {
            let elements: Vec<Bytes> = if desc {
                let last = length - first;
                zset.iter_range(last - count, last, true)
                    .map(|(_, member)| Bytes::copy_from_slice(member))
                    .collect()
            } else {
                zset.iter_range(first, first + count, false)
                    .map(|(_, member)| Bytes::copy_from_slice(member))
                    .collect()
            };
            direct(elements)
        }
        Value::List(_) | Value::Set(_) | Value::ZSet(_) => Loaded {
            elements: elements(value),
            start,
            end,
        },
        _ => return None,
    };
    Some(loaded)
}

fn sort_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], readonly: bool) -> CmdResult {
    let mut options = parse(argv, readonly)?;
    let db = ctx.db();
    let loaded = match ctx.ks.lookup_read(db, &argv[1]) {
        // A missing key sorts as an empty list.
        None => Some(Loaded {
            elements: Vec::new(),
            start: -1,
            end: -2,
        }),
        Some(entry) => load(&mut entry.value, &mut options),
    };
    let Some(Loaded {
        mut elements,
        start,
        end,
    }) = loaded
    else {
        return Err(Error::WrongType);
    };

    if !options.dont_sort {
        let mut weights = Vec::with_capacity(elements.len());
        let mut convertible = true;
        for element in &elements {
            let by_value = match &options.by {
                Some(pattern) => fetch(ctx, pattern, element),
                None => Some(element.clone()),
            };
            let weight = if options.alpha {
                if options.by.is_some() {
                    Weight::Text(by_value)
                } else {
                    Weight::Element
                }
            } else {
                match by_value {
                    None => Weight::Score(0.0),
                    Some(text) => Weight::Score(parse_weight(&text).unwrap_or_else(|| {
                        convertible = false;
                        0.0
                    })),
                }
            };
            weights.push(weight);
        }
        if !convertible {
            return Err(Error::from(SCORES_NOT_DOUBLE));
        }
        let store = options.store.is_some();
        let desc = options.desc;
        let mut pairs: Vec<(Bytes, Weight)> = elements.into_iter().zip(weights).collect();
        let order = |a: &(Bytes, Weight), b: &(Bytes, Weight)| {
            let order = compare((&a.0, &a.1), (&b.0, &b.1), store);
            if desc {
                order.reverse()
            } else {
                order
            }
        };
        let whole = start == 0 && end == pairs.len() as i64 - 1;
        if options.by.is_some() && !whole {
            // Redis sorts only the window's neighbourhood with its partial quicksort, which
            // is not stable: ties (ALPHA BY) come out in its order, so use the same one.
            let length = pairs.len();
            partial_sort(&mut pairs, 0, length, start, end, &order, 0);
        } else {
            // glibc's qsort is a stable merge sort for Redis's 16-byte sort objects.
            pairs.sort_by(order);
        }
        elements = pairs.into_iter().map(|(element, _)| element).collect();
    }

    let window: &[Bytes] = if end >= start && start >= 0 {
        &elements[start as usize..=end as usize]
    } else {
        &[]
    };
    let mut output = Vec::with_capacity(window.len() * options.gets.len().max(1));
    for element in window {
        if options.gets.is_empty() {
            output.push(Some(element.clone()));
        }
        for pattern in &options.gets {
            output.push(fetch(ctx, pattern, element));
        }
    }
    match options.store {
        None => Ok(Reply::Array(
            output
                .into_iter()
                .map(|value| value.map_or(Reply::Null, Reply::bulk))
                .collect(),
        )),
        Some(destination) => store(ctx, &destination, output),
    }
}

/// STORE: the result becomes a list at `destination` (a missing GET value stored as an empty
/// string); an empty result deletes it. Counts one write per stored element, as Redis does.
fn store(ctx: &mut Ctx<'_, '_>, destination: &[u8], output: Vec<Option<Bytes>>) -> CmdResult {
    let db = ctx.db();
    let count = output.len();
    if count == 0 {
        if ctx.ks.delete(db, destination) {
            ctx.ks.notify(notify::GENERIC, "del", db, destination);
        }
        return Ok(Reply::Integer(0));
    }
    let list: List = output
        .iter()
        .map(|value| value.as_deref().unwrap_or(b""))
        .collect();
    debug_assert_eq!(list.len(), count);
    ctx.ks
        .set(db, destination, Value::List(Box::new(list)), false);
    ctx.ks.dirty = ctx.ks.dirty.saturating_add(count as u64 - 1);
    ctx.ks.notify(notify::LIST, "sortstore", db, destination);
    Ok(Reply::Integer(i64::try_from(count).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestServer;

    #[test]
    fn substitution_replaces_the_first_star() {
        assert_eq!(substitute(b"#", b"x"), Target::Itself);
        assert_eq!(substitute(b"nostar", b"x"), Target::Nothing);
        assert_eq!(substitute(b"w_*", b"x"), Target::Key(b"w_x".to_vec()));
        assert_eq!(substitute(b"*_*", b"x"), Target::Key(b"x_*".to_vec()));
        assert_eq!(
            substitute(b"h_*->f", b"x"),
            Target::Field(b"h_x".to_vec(), b"f")
        );
        // A bare trailing arrow is part of the key name.
        assert_eq!(substitute(b"h_*->", b"x"), Target::Key(b"h_x->".to_vec()));
        // The arrow must follow the star.
        assert_eq!(substitute(b"a->b*", b"x"), Target::Key(b"a->bx".to_vec()));
        assert_eq!(
            substitute(b"*->a->b", b"x"),
            Target::Field(b"x".to_vec(), b"a->b")
        );
        // C-string reading: nothing past a NUL is searched.
        assert_eq!(substitute(b"#\0z", b"x"), Target::Itself);
        assert_eq!(substitute(b"a\0*", b"x"), Target::Nothing);
    }

    #[test]
    fn weights_parse_as_strtod() {
        for (text, expected) in [
            ("", Some(0.0)),
            (" 5", Some(5.0)),
            ("5.", Some(5.0)),
            (".5", Some(0.5)),
            ("-Infinity", Some(f64::NEG_INFINITY)),
            ("inf", Some(f64::INFINITY)),
            ("0x10", Some(16.0)),
            ("0x1p3", Some(8.0)),
            ("1e3", Some(1000.0)),
            ("2.2250738585072014e-308", Some(2.2250738585072014e-308)),
            ("0e-999", Some(0.0)),
            ("5 ", None),
            ("  ", None),
            ("-", None),
            ("nan", None),
            ("1e", None),
            ("1e+", None),
            ("0x", None),
            ("1_0", None),
            ("+.e1", None),
            ("1e400", None),
            ("1e-310", None),
            ("abc", None),
        ] {
            assert_eq!(parse_weight(text.as_bytes()), expected, "{text:?}");
        }
        assert_eq!(parse_weight(b"7\0junk"), Some(7.0));
    }

    #[test]
    fn comparison_matches_sort_compare() {
        let (one, two) = (Bytes::from("b"), Bytes::from("a"));
        let equal = Weight::Score(1.0);
        assert_eq!(
            compare((&one, &equal), (&two, &equal), false),
            Ordering::Greater
        );
        let (missing, present) = (Weight::Text(None), Weight::Text(Some(Bytes::from("z"))));
        assert_eq!(
            compare((&one, &missing), (&two, &present), false),
            Ordering::Less
        );
        assert_eq!(
            compare((&one, &missing), (&two, &missing), false),
            Ordering::Equal
        );
        let (with_nul, plain) = (Bytes::from("a\0b"), Bytes::from("a\0c"));
        let element = Weight::Element;
        assert_eq!(
            compare((&with_nul, &element), (&plain, &element), false),
            Ordering::Equal
        );
        assert_eq!(
            compare((&with_nul, &element), (&plain, &element), true),
            Ordering::Less
        );
    }

    #[test]
    fn partial_sort_orders_the_window() {
        for length in [0usize, 1, 6, 7, 8, 40, 41, 200] {
            let original: Vec<u64> = (0..length as u64)
                .map(|index| index.wrapping_mul(2_654_435_761) % 97)
                .collect();
            let mut expected = original.clone();
            expected.sort();
            for (left, right) in [(0i64, 0i64), (3, 9), (length as i64 / 2, length as i64 - 1)] {
                let mut items = original.clone();
                partial_sort(&mut items, 0, length, left, right, &|a, b| a.cmp(b), 0);
                let mut sorted_copy = items.clone();
                sorted_copy.sort();
                assert_eq!(sorted_copy, expected, "a permutation");
                for index in left.max(0)..=right.min(length as i64 - 1) {
                    let index = index as usize;
                    assert_eq!(items[index], expected[index], "{length} {left}..={right}");
                }
            }
            let mut items = original.clone();
            let whole = length as i64 - 1;
            partial_sort(&mut items, 0, length, 0, whole, &|a, b| a.cmp(b), 0);
            assert_eq!(items, expected);
        }
    }

    #[test]
    fn window_clamps_as_redis() {
        assert_eq!(window(0, -1, 5), (0, 4));
        assert_eq!(window(-3, 2, 5), (0, 1));
        assert_eq!(window(3, 100, 5), (3, 4));
        assert_eq!(window(5, 1, 5), (4, 3));
        assert_eq!(window(1, 0, 5), (1, 0));
        assert_eq!(window(i64::MAX, i64::MAX, 5), (4, 3));
        assert_eq!(window(0, 0, 0), (-1, -2));
    }

    #[test]
    fn sorts_and_stores() {
        let server = TestServer::new();
        let mut session = server.session();
        server.run(&mut session, "RPUSH l 3 1 2");
        server.run(&mut session, "SET w_1 30");
        server.run(&mut session, "SET w_2 20");
        server.run(&mut session, "SET w_3 10");
        assert_eq!(
            server.run(&mut session, "SORT l"),
            "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
        );
        assert_eq!(
            server.run(&mut session, "SORT l BY w_* GET # GET w_*"),
            "*6\r\n$1\r\n3\r\n$2\r\n10\r\n$1\r\n2\r\n$2\r\n20\r\n$1\r\n1\r\n$2\r\n30\r\n"
        );
        assert_eq!(server.run(&mut session, "SORT l DESC STORE d"), ":3\r\n");
        assert_eq!(
            server.run(&mut session, "LRANGE d 0 -1"),
            "*3\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n1\r\n"
        );
        assert_eq!(
            server.run(&mut session, "SORT l LIMIT 5 1 STORE d"),
            ":0\r\n"
        );
        assert_eq!(server.run(&mut session, "EXISTS d"), ":0\r\n");
        assert_eq!(
            server.run(&mut session, "SORT_RO l STORE d"),
            "-ERR syntax error\r\n"
        );
    }

    #[test]
    fn store_propagates_verbatim_and_reads_propagate_nothing() {
        let server = TestServer::new();
        let mut session = server.session();
        server.run(&mut session, "RPUSH l 2 1");
        server.run(&mut session, "SORT l");
        server.run(&mut session, "SORT_RO l");
        server.run(&mut session, "SORT l STORE d");
        // Nothing to delete: no write, nothing propagated.
        server.run(&mut session, "SORT missing STORE e");
        server.run(&mut session, "SORT missing STORE d");
        let propagated = server.propagated();
        let sorts: Vec<&String> = propagated
            .iter()
            .filter(|command| command.to_lowercase().starts_with("sort"))
            .collect();
        assert_eq!(sorts, ["SORT l STORE d", "SORT missing STORE d"]);
    }

    #[test]
    fn sorting_a_sorted_set_converts_it_to_a_skiplist() {
        let server = TestServer::new();
        let mut session = server.session();
        server.run(&mut session, "ZADD z 2 b 1 a");
        assert_eq!(
            server.run(&mut session, "SORT z BY nosort DESC"),
            "*2\r\n$1\r\nb\r\n$1\r\na\r\n"
        );
        assert_eq!(
            server.run(&mut session, "OBJECT ENCODING z"),
            "$8\r\nskiplist\r\n"
        );
        assert_eq!(
            server.run(&mut session, "ZRANGE z 0 -1 WITHSCORES"),
            "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
        );
    }
}
