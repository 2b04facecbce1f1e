//! The bitmap family: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO, with
//! Redis 7.0.15's replies, error texts, keyspace events and propagation (bitops.c).
//!
//! Bitmaps are plain strings: bit 0 is the most significant bit of the first byte. Writers
//! grow the string with zero bytes up to the highest bit they touch; offsets are limited by
//! `proto-max-bulk-len` (a byte offset at or past it is "bit offset ... out of range"), as
//! Redis's getBitOffsetFromArgument does. Every writer leaves the value `raw`
//! (`dbUnshareStringValue` in Redis), even when it changed nothing. Counting uses u64
//! popcounts; BITOP works on whole slices so the compiler can vectorize the loops.

use super::args;
use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::keyspace::entry::FLAG_RAW;
use crate::keyspace::notify;
use crate::protocol::Reply;
use crate::types::{CompactBytes, Value};
use bytes::Bytes;

const BIT_OFFSET_INVALID: &str = "ERR bit offset is not an integer or out of range";
const BIT_VALUE_INVALID: &str = "ERR bit is not an integer or out of range";
const BITPOS_BIT_INVALID: &str = "ERR The bit argument must be 1 or 0.";
const BITOP_NOT_ARITY: &str = "ERR BITOP NOT must be called with a single source key.";
const BITFIELD_TYPE_INVALID: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const BITFIELD_OVERFLOW_INVALID: &str = "ERR Invalid OVERFLOW type specified";
const BITFIELD_RO_WRITE: &str = "ERR BITFIELD_RO only supports the GET subcommand";

pub static COMMANDS: &[Spec] = &[
    Spec::new("setbit", setbit, Lock::Keys),
    Spec::new("getbit", getbit, Lock::Keys),
    Spec::new("bitcount", bitcount, Lock::Keys),
    Spec::new("bitpos", bitpos, Lock::Keys),
    Spec::new("bitop", bitop, Lock::Keys),
    Spec::new("bitfield", bitfield, Lock::Keys),
    Spec::new("bitfield_ro", bitfield_ro, Lock::Keys),
];

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Redis's getBitOffsetFromArgument: a non-negative integer whose byte (offset / 8) is below
/// proto-max-bulk-len. With `hash_bits`, `#N` means N * bits (BITFIELD).
fn bit_offset(arg: &[u8], hash_bits: Option<u32>, limit_bytes: i64) -> Result<u64, Error> {
    let (digits, multiplier) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], Some(bits)),
        _ => (arg, None),
    };
    let mut offset = args::int(digits).map_err(|_| Error::from(BIT_OFFSET_INVALID))?;
    if let Some(bits) = multiplier {
        // C multiplies a long long without a check; wrapping is what it does in practice.
        offset = offset.wrapping_mul(bits as i64);
    }
    if offset < 0 || (offset >> 3) >= limit_bytes {
        return Err(Error::from(BIT_OFFSET_INVALID));
    }
    Ok(offset as u64)
}

/// The offset limit: `proto-max-bulk-len`, except for the AOF loader (or a primary), which
/// replays what was accepted under whatever limit held then (Redis's mustObeyClient).
fn proto_max_bulk_len(ctx: &Ctx<'_, '_>) -> i64 {
    if ctx.session.obey {
        return i64::MAX;
    }
    crate::config_int!(ctx.server.config, "proto-max-bulk-len")
}

/// Bit `offset` of `bytes` (zero past the end).
fn bit_at(bytes: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    byte < bytes.len() && bytes[byte] & (0x80 >> (offset & 7)) != 0
}

fn set_bit(bytes: &mut [u8], offset: u64, on: bool) {
    let byte = (offset >> 3) as usize;
    let mask = 0x80u8 >> (offset & 7);
    if on {
        bytes[byte] |= mask;
    } else {
        bytes[byte] &= !mask;
    }
}

/// The number of set bits, eight bytes at a time.
pub fn popcount(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut total: u64 = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        total += u64::from_ne_bytes(word).count_ones() as u64;
    }
    total
        + chunks
            .remainder()
            .iter()
            .map(|byte| byte.count_ones() as u64)
            .sum::<u64>()
}

/// Redis's redisBitpos: the position of the first bit equal to `bit`; when looking for a 1
/// and there is none, -1; when looking for a 0 and there is none, `bytes.len() * 8` (the
/// string is taken as zero padded on the right).
pub fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0u8 } else { 0xff };
    let mut chunks = bytes.chunks_exact(8);
    let mut skipped_bytes = 0usize;
    let skip_word = u64::from_ne_bytes([skip; 8]);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if u64::from_ne_bytes(word) != skip_word {
            break;
        }
        skipped_bytes += 8;
    }
    for (index, &byte) in bytes[skipped_bytes..].iter().enumerate() {
        if byte != skip {
            let within = if bit {
                byte.leading_zeros()
            } else {
                (!byte).leading_zeros()
            };
            return ((skipped_bytes + index) * 8) as i64 + within as i64;
        }
    }
    if bit {
        -1
    } else {
        (bytes.len() * 8) as i64
    }
}

/// Redis's lookupStringForBitCommand: the string at the command's key, created or zero
/// padded so that bit `max_bit` exists, and always made `raw`, handed to `write` with
/// whether it was created or grew. WRONGTYPE for another type. A key that exists is looked up
/// once (a second look-up was a seventh of SETBIT's CPU): `write` runs inside the borrow.
fn string_for_bits<R>(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    max_bit: u64,
    write: impl FnOnce(&mut Vec<u8>, bool) -> R,
) -> Result<R, Error> {
    let length = (max_bit >> 3) as usize + 1;
    let db = ctx.db();
    fn grow(
        entry: &mut crate::keyspace::Entry,
        created: bool,
        length: usize,
    ) -> Result<(&mut Vec<u8>, bool), Error> {
        let Value::Str(bytes) = &mut entry.value else {
            return Err(Error::WrongType);
        };
        let bytes = bytes.to_mut();
        entry.flags |= FLAG_RAW;
        let mut changed = created;
        if bytes.len() < length {
            bytes.resize(length, 0);
            changed = true;
        }
        debug_assert!(bytes.len() >= length);
        Ok((bytes, changed))
    }
    if let Some(entry) = ctx.ks.lookup(db, key) {
        // The type first: a WRONGTYPE must leave the entry as it was.
        if !matches!(entry.value, Value::Str(_)) {
            return Err(Error::WrongType);
        }
        let (bytes, changed) = grow(entry, false, length)?;
        return Ok(write(bytes, changed));
    }
    ctx.ks.set(
        db,
        key,
        Value::Str(CompactBytes::from_vec(vec![0u8; length])),
        false,
    );
    let Some(entry) = ctx.ks.peek(db, key) else {
        unreachable!("the key was created just above");
    };
    let (bytes, changed) = grow(entry, true, length)?;
    Ok(write(bytes, changed))
}

/// Runs `read` on the string at `key` in place for a read command (counts hits and misses;
/// no copy, as a bitmap may be 512MB). None when the key is missing; WRONGTYPE otherwise.
fn with_string<R>(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
    read: impl FnOnce(&[u8]) -> R,
) -> Result<Option<R>, Error> {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, key) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Str(bytes) => Ok(Some(read(bytes))),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// SETBIT / GETBIT
// ---------------------------------------------------------------------------------------------

/// `SETBIT key offset 0|1`: the bit's previous value. Signals and raises `setbit` only when
/// the key was created, grew, or the bit changed.
fn setbit(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let offset = bit_offset(&argv[2], None, proto_max_bulk_len(ctx))?;
    let on = args::int(&argv[3]).map_err(|_| Error::from(BIT_VALUE_INVALID))?;
    if on & !1 != 0 {
        return Err(Error::from(BIT_VALUE_INVALID));
    }
    let on = on == 1;
    let (previous, changed) = string_for_bits(ctx, key, offset, |bytes, grew| {
        let previous = bit_at(bytes, offset);
        let changed = grew || previous != on;
        if changed {
            set_bit(bytes, offset, on);
        }
        (previous, changed)
    })?;
    if changed {
        let db = ctx.db();
        ctx.ks.signal_modified(db, key);
        ctx.ks.notify(notify::STRING, "setbit", db, key);
    }
    Ok(Reply::Integer(previous as i64))
}

/// `GETBIT key offset`: the bit, 0 past the end or for a missing key.
fn getbit(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&argv[2], None, proto_max_bulk_len(ctx))?;
    let db = ctx.db();
    match ctx.ks.lookup_read(db, &argv[1]) {
        None => Ok(Reply::Integer(0)),
        Some(entry) => match &entry.value {
            Value::Str(bytes) => Ok(Reply::Integer(bit_at(bytes, offset) as i64)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// BITCOUNT / BITPOS
// ---------------------------------------------------------------------------------------------

/// `BYTE` or `BIT` (case-insensitive); syntax error otherwise. True for BIT.
fn unit_is_bit(arg: &[u8]) -> Result<bool, Error> {
    if args::is(arg, "bit") {
        Ok(true)
    } else if args::is(arg, "byte") {
        Ok(false)
    } else {
        Err(Error::Syntax)
    }
}

/// A byte range with, for BIT units, masks of the bits outside the range in its first and
/// last bytes (Redis's first_byte_neg_mask / last_byte_neg_mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BitRange {
    start: i64,
    end: i64,
    first_mask: u8,
    last_mask: u8,
}

/// Redis's index normalisation for BITCOUNT/BITPOS: negative indexes count from the end of
/// `total` (bytes or bits), both are clamped, and bit ranges become byte ranges with edge
/// masks. `start > end` means empty.
fn normalize(mut start: i64, mut end: i64, length: usize, is_bit: bool) -> BitRange {
    let mut total = length as i64;
    if is_bit {
        total <<= 3;
    }
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    let mut range = BitRange {
        start,
        end,
        first_mask: 0,
        last_mask: 0,
    };
    if is_bit && start <= end {
        range.first_mask = !((1u32 << (8 - (start & 7))) - 1) as u8;
        range.last_mask = ((1u32 << (7 - (end & 7))) - 1) as u8;
        range.start >>= 3;
        range.end >>= 3;
    }
    range
}

/// `BITCOUNT key [start end [BYTE|BIT]]`.
fn bitcount(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    // A missing key answers 0 before the arguments are even looked at, as in Redis.
    with_string(ctx, &argv[1], |bytes| bitcount_of(bytes, argv))?.unwrap_or(Ok(Reply::Integer(0)))
}

/// BITCOUNT of an existing string: parses the range (after the type check, as Redis does).
fn bitcount_of(bytes: &[u8], argv: &[Bytes]) -> CmdResult {
    let range = match argv.len() {
        2 => BitRange {
            start: 0,
            end: bytes.len() as i64 - 1,
            first_mask: 0,
            last_mask: 0,
        },
        4 | 5 => {
            let start = args::int(&argv[2])?;
            let end = args::int(&argv[3])?;
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Integer(0));
            }
            let is_bit = match argv.get(4) {
                Some(unit) => unit_is_bit(unit)?,
                None => false,
            };
            normalize(start, end, bytes.len(), is_bit)
        }
        _ => return Err(Error::Syntax),
    };
    if range.start > range.end {
        return Ok(Reply::Integer(0));
    }
    let (start, end) = (range.start as usize, range.end as usize);
    let mut count = popcount(&bytes[start..=end]);
    // Subtract the bits of the edge bytes that lie outside a BIT range.
    count -= (bytes[start] & range.first_mask).count_ones() as u64;
    count -= (bytes[end] & range.last_mask).count_ones() as u64;
    Ok(Reply::Integer(count as i64))
}

/// `BITPOS key bit [start [end [BYTE|BIT]]]`: the first position of `bit`. Without an end,
/// the string counts as zero padded (looking for 0 in all ones answers the length in bits);
/// with an explicit end it does not (-1).
fn bitpos(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let bit = args::int(&argv[2])?;
    if bit != 0 && bit != 1 {
        return Err(Error::from(BITPOS_BIT_INVALID));
    }
    let bit = bit == 1;
    with_string(ctx, &argv[1], |bytes| bitpos_of(bytes, bit, argv))?
        .unwrap_or(Ok(Reply::Integer(if bit { -1 } else { 0 })))
}

/// BITPOS of an existing string: parses the range (after the type check, as Redis does).
fn bitpos_of(bytes: &[u8], bit: bool, argv: &[Bytes]) -> CmdResult {
    let mut end_given = false;
    let range = match argv.len() {
        3 => BitRange {
            start: 0,
            end: bytes.len() as i64 - 1,
            first_mask: 0,
            last_mask: 0,
        },
        4..=6 => {
            let start = args::int(&argv[3])?;
            let is_bit = match argv.get(5) {
                Some(unit) => unit_is_bit(unit)?,
                None => false,
            };
            let end = match argv.get(4) {
                Some(end) => {
                    end_given = true;
                    args::int(end)?
                }
                None if is_bit => ((bytes.len() as i64) << 3) + 7,
                None => bytes.len() as i64 - 1,
            };
            normalize(start, end, bytes.len(), is_bit)
        }
        _ => return Err(Error::Syntax),
    };
    if range.start > range.end {
        return Ok(Reply::Integer(-1));
    }
    Ok(Reply::Integer(bitpos_in_range(
        bytes, bit, range, end_given,
    )))
}

/// The body of Redis's bitposCommand once the range is known (start <= end).
fn bitpos_in_range(bytes: &[u8], bit: bool, range: BitRange, end_given: bool) -> i64 {
    let BitRange {
        mut start,
        end,
        first_mask,
        last_mask,
    } = range;
    let mut count = end - start + 1;
    let position = 'search: {
        if first_mask != 0 {
            let mut edge = if bit {
                bytes[start as usize] & !first_mask
            } else {
                bytes[start as usize] | first_mask
            };
            // A range within one byte masks both edges.
            if last_mask != 0 && count == 1 {
                edge = if bit {
                    edge & !last_mask
                } else {
                    edge | last_mask
                };
            }
            let found = first_bit(&[edge], bit);
            if count == 1 || (found != -1 && found != 8) {
                break 'search found;
            }
            start += 1;
            count -= 1;
        }
        // The last byte is handled apart when it has bits outside the range.
        let middle = count - if last_mask != 0 { 1 } else { 0 };
        if middle > 0 {
            let slice = &bytes[start as usize..(start + middle) as usize];
            let found = first_bit(slice, bit);
            if count == middle || (found != -1 && found != middle << 3) {
                break 'search found;
            }
            start += middle;
            count -= middle;
        }
        let edge = if bit {
            bytes[end as usize] & !last_mask
        } else {
            bytes[end as usize] | last_mask
        };
        first_bit(&[edge], bit)
    };
    if end_given && !bit && position == count << 3 {
        return -1;
    }
    if position != -1 {
        position + (start << 3)
    } else {
        position
    }
}

// ---------------------------------------------------------------------------------------------
// BITOP
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOperation {
    And,
    Or,
    Xor,
    Not,
}

/// Folds source number `index` (missing keys are empty) into `result`, which is as long as
/// the longest source: shorter sources count as zero padded. The first source initialises it.
fn bitop_apply(operation: BitOperation, index: usize, result: &mut [u8], source: &[u8]) {
    debug_assert!(source.len() <= result.len());
    if index == 0 {
        result[..source.len()].copy_from_slice(source);
        if operation == BitOperation::Not {
            result.iter_mut().for_each(|byte| *byte = !*byte);
        }
        return;
    }
    let pairs = result.iter_mut().zip(source.iter());
    match operation {
        BitOperation::And => {
            pairs.for_each(|(r, s)| *r &= s);
            result[source.len()..].iter_mut().for_each(|byte| *byte = 0);
        }
        BitOperation::Or => pairs.for_each(|(r, s)| *r |= s),
        BitOperation::Xor => pairs.for_each(|(r, s)| *r ^= s),
        BitOperation::Not => unreachable!("NOT has a single source"),
    }
}

/// `BITOP AND|OR|XOR|NOT destkey key [key ...]`: the length of the result. An empty result
/// deletes the destination (event `del`), otherwise it is overwritten (event `set`).
fn bitop(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let operation = if args::is(&argv[1], "and") {
        BitOperation::And
    } else if args::is(&argv[1], "or") {
        BitOperation::Or
    } else if args::is(&argv[1], "xor") {
        BitOperation::Xor
    } else if args::is(&argv[1], "not") {
        BitOperation::Not
    } else {
        return Err(Error::Syntax);
    };
    if operation == BitOperation::Not && argv.len() != 4 {
        return Err(Error::from(BITOP_NOT_ARITY));
    }
    let destination = &argv[2];
    // First every lookup (types checked before anything is computed, hits counted once),
    // then the sources are folded in place, without copying them.
    let mut length = 0;
    for key in &argv[3..] {
        length = length.max(with_string(ctx, key, |bytes| bytes.len())?.unwrap_or(0));
    }
    let mut result = vec![0u8; length];
    let db = ctx.db();
    for (index, key) in argv[3..].iter().enumerate() {
        let source: &[u8] = match ctx.ks.peek(db, key).map(|entry| &entry.value) {
            Some(Value::Str(bytes)) => bytes,
            _ => &[],
        };
        bitop_apply(operation, index, &mut result, source);
    }
    if length > 0 {
        ctx.ks.set(
            db,
            destination,
            Value::Str(CompactBytes::from_vec(result)),
            false,
        );
        // Redis stores the result with createObject, never embstr or int.
        if let Some(entry) = ctx.ks.peek(db, destination) {
            entry.flags |= FLAG_RAW;
        }
        ctx.ks.notify(notify::STRING, "set", db, destination);
    } else if ctx.ks.delete(db, destination) {
        ctx.ks.notify(notify::GENERIC, "del", db, destination);
    }
    Ok(Reply::Integer(length as i64))
}

// ---------------------------------------------------------------------------------------------
// BITFIELD
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldOperation {
    Get,
    Set,
    IncrBy,
}

/// One parsed BITFIELD operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FieldOp {
    operation: FieldOperation,
    offset: u64,
    bits: u32,
    signed: bool,
    /// SET value or INCRBY increment.
    value: i64,
    overflow: Overflow,
}

/// `i1`..`i64` or `u1`..`u63`.
fn field_type(arg: &[u8]) -> Result<(bool, u32), Error> {
    let invalid = || Error::from(BITFIELD_TYPE_INVALID);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(invalid()),
    };
    // Redis parses the C string, so it stops at an embedded NUL.
    let digits = &arg[1..];
    let digits = match digits.iter().position(|&byte| byte == 0) {
        Some(nul) => &digits[..nul],
        None => digits,
    };
    let bits = args::int(digits).map_err(|_| invalid())?;
    let bits_max = if signed { 64 } else { 63 };
    if !(1..=bits_max).contains(&bits) {
        return Err(invalid());
    }
    Ok((signed, bits as u32))
}

/// Parses the operations after the key, in Redis's order (each error as soon as met).
fn parse_field_ops(argv: &[Bytes], limit_bytes: i64) -> Result<Vec<FieldOp>, Error> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut index = 2;
    while index < argv.len() {
        let remaining = argv.len() - index - 1;
        let name = &argv[index];
        let operation = if args::is(name, "get") && remaining >= 2 {
            FieldOperation::Get
        } else if args::is(name, "set") && remaining >= 3 {
            FieldOperation::Set
        } else if args::is(name, "incrby") && remaining >= 3 {
            FieldOperation::IncrBy
        } else if args::is(name, "overflow") && remaining >= 1 {
            let kind = &argv[index + 1];
            overflow = if args::is(kind, "wrap") {
                Overflow::Wrap
            } else if args::is(kind, "sat") {
                Overflow::Sat
            } else if args::is(kind, "fail") {
                Overflow::Fail
            } else {
                return Err(Error::from(BITFIELD_OVERFLOW_INVALID));
            };
            index += 2;
            continue;
        } else {
            return Err(Error::Syntax);
        };
        let (signed, bits) = field_type(&argv[index + 1])?;
        let offset = bit_offset(&argv[index + 2], Some(bits), limit_bytes)?;
        let value = if operation == FieldOperation::Get {
            0
        } else {
            args::int(&argv[index + 3])?
        };
        ops.push(FieldOp {
            operation,
            offset,
            bits,
            signed,
            value,
            overflow,
        });
        index += if operation == FieldOperation::Get {
            3
        } else {
            4
        };
    }
    Ok(ops)
}

/// Redis's getUnsignedBitfield: `bits` bits from bit `offset`, most significant first.
/// Bytes past the end read as zero.
fn get_unsigned(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    debug_assert!((1..=64).contains(&bits));
    let mut value: u64 = 0;
    for position in offset..offset + bits as u64 {
        value = (value << 1) | bit_at(bytes, position) as u64;
    }
    value
}

/// Redis's getSignedBitfield: two's complement of width `bits`.
fn get_signed(bytes: &[u8], offset: u64, bits: u32) -> i64 {
    let value = get_unsigned(bytes, offset, bits);
    if bits < 64 && value & (1u64 << (bits - 1)) != 0 {
        (value | (u64::MAX << bits)) as i64
    } else {
        value as i64
    }
}

/// Redis's setUnsignedBitfield: the low `bits` bits of `value` at bit `offset` (the string
/// already holds them).
fn set_field(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for step in 0..bits as u64 {
        let on = value & (1u64 << (bits as u64 - 1 - step)) != 0;
        set_bit(bytes, offset + step, on);
    }
}

/// Redis's checkUnsignedBitfieldOverflow: `Some(result)` on overflow (the wrapped or
/// saturated value; meaningless for FAIL), None when `value + increment` fits.
fn unsigned_overflow(value: u64, increment: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let increment_max = max.wrapping_sub(value) as i64;
    let increment_min = value.wrapping_neg() as i64;
    let wrap = || {
        let mask = u64::MAX.checked_shl(bits).unwrap_or(0);
        value.wrapping_add(increment as u64) & !mask
    };
    if value > max || (increment > 0 && increment > increment_max) {
        Some(match overflow {
            Overflow::Wrap => wrap(),
            _ => max,
        })
    } else if increment < 0 && increment < increment_min {
        Some(match overflow {
            Overflow::Wrap => wrap(),
            _ => 0,
        })
    } else {
        None
    }
}

/// Redis's checkSignedBitfieldOverflow, same contract as [`unsigned_overflow`].
fn signed_overflow(value: i64, increment: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let increment_max = (max as u64).wrapping_sub(value as u64) as i64;
    let increment_min = min.wrapping_sub(value);
    let wrap = || {
        let mut sum = (value as u64).wrapping_add(increment as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if sum & (1u64 << (bits - 1)) != 0 {
                sum |= mask;
            } else {
                sum &= !mask;
            }
        }
        sum as i64
    };
    if value > max
        || (bits != 64 && increment > increment_max)
        || (value >= 0 && increment > 0 && increment > increment_max)
    {
        Some(match overflow {
            Overflow::Wrap => wrap(),
            _ => max,
        })
    } else if value < min
        || (bits != 64 && increment < increment_min)
        || (value < 0 && increment < 0 && increment < increment_min)
    {
        Some(match overflow {
            Overflow::Wrap => wrap(),
            _ => min,
        })
    } else {
        None
    }
}

/// Applies one SET or INCRBY to `bytes`: the reply and whether the field changed.
fn apply_write(bytes: &mut [u8], op: &FieldOp) -> (Reply, bool) {
    let FieldOp {
        offset,
        bits,
        value,
        overflow,
        ..
    } = *op;
    let increment = op.operation == FieldOperation::IncrBy;
    if op.signed {
        let old = get_signed(bytes, offset, bits);
        let (new, overflowed) = if increment {
            match signed_overflow(old, value, bits, overflow) {
                Some(limited) => (limited, true),
                None => (old.wrapping_add(value), false),
            }
        } else {
            match signed_overflow(value, 0, bits, overflow) {
                Some(limited) => (limited, true),
                None => (value, false),
            }
        };
        if overflowed && overflow == Overflow::Fail {
            return (Reply::Null, false);
        }
        set_field(bytes, offset, bits, new as u64);
        let reply = if increment { new } else { old };
        (Reply::Integer(reply), old != new)
    } else {
        let old = get_unsigned(bytes, offset, bits);
        let (new, overflowed) = if increment {
            match unsigned_overflow(old, value, bits, overflow) {
                Some(limited) => (limited, true),
                None => (old.wrapping_add(value as u64), false),
            }
        } else {
            match unsigned_overflow(value as u64, 0, bits, overflow) {
                Some(limited) => (limited, true),
                None => (value as u64, false),
            }
        };
        if overflowed && overflow == Overflow::Fail {
            return (Reply::Null, false);
        }
        set_field(bytes, offset, bits, new);
        let reply = if increment { new } else { old };
        (Reply::Integer(reply as i64), old != new)
    }
}

/// A GET on `bytes` (None: a missing key, all zeros).
fn apply_get(bytes: &[u8], op: &FieldOp) -> Reply {
    if op.signed {
        Reply::Integer(get_signed(bytes, op.offset, op.bits))
    } else {
        Reply::Integer(get_unsigned(bytes, op.offset, op.bits) as i64)
    }
}

/// `BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
/// [OVERFLOW WRAP|SAT|FAIL] ...`.
fn bitfield(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, argv, false)
}

/// `BITFIELD_RO key [GET type offset] ...`.
fn bitfield_ro(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, argv, true)
}

fn bitfield_generic(ctx: &mut Ctx<'_, '_>, argv: &[Bytes], read_only: bool) -> CmdResult {
    let key = &argv[1];
    let ops = parse_field_ops(argv, proto_max_bulk_len(ctx))?;
    let writes = ops.iter().any(|op| op.operation != FieldOperation::Get);
    if !writes {
        let replies = |bytes: &[u8]| ops.iter().map(|op| apply_get(bytes, op)).collect();
        let replies = with_string(ctx, key, replies)?.unwrap_or_else(|| replies(&[]));
        return Ok(Reply::Array(replies));
    }
    if read_only {
        return Err(Error::from(BITFIELD_RO_WRITE));
    }
    let highest_bit = ops
        .iter()
        .filter(|op| op.operation != FieldOperation::Get)
        .map(|op| op.offset + op.bits as u64 - 1)
        .max()
        .unwrap_or(0);
    let (replies, changes) = string_for_bits(ctx, key, highest_bit, |bytes, grew| {
        let mut replies = Vec::with_capacity(ops.len());
        let mut changes = 0usize;
        for op in &ops {
            if op.operation == FieldOperation::Get {
                replies.push(apply_get(bytes, op));
                continue;
            }
            let (reply, changed) = apply_write(bytes, op);
            // A FAIL that wrote nothing does not count, even on a string that grew.
            if !matches!(reply, Reply::Null) && (grew || changed) {
                changes += 1;
            }
            replies.push(reply);
        }
        (replies, changes)
    })?;
    if changes > 0 {
        let db = ctx.db();
        ctx.ks.signal_modified(db, key);
        ctx.ks.notify(notify::STRING, "setbit", db, key);
    } else {
        // Redis counts only the fields that changed: a BITFIELD whose writes all failed
        // propagates nothing, even when it created or grew the string.
        ctx.propagate_nothing();
    }
    Ok(Reply::Array(replies))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestServer;
    use proptest::prelude::*;

    fn naive_first_bit(bytes: &[u8], bit: bool) -> i64 {
        for position in 0..bytes.len() as u64 * 8 {
            if bit_at(bytes, position) == bit {
                return position as i64;
            }
        }
        if bit {
            -1
        } else {
            bytes.len() as i64 * 8
        }
    }

    proptest! {
        #[test]
        fn first_bit_matches_a_bit_walk(bytes in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(0xffu8), any::<u8>()], 0..40), bit in any::<bool>()) {
            prop_assert_eq!(first_bit(&bytes, bit), naive_first_bit(&bytes, bit));
        }

        #[test]
        fn popcount_matches_a_bit_walk(bytes in proptest::collection::vec(any::<u8>(), 0..70)) {
            let naive = (0..bytes.len() as u64 * 8).filter(|&p| bit_at(&bytes, p)).count();
            prop_assert_eq!(popcount(&bytes), naive as u64);
        }

        #[test]
        fn fields_round_trip(offset in 0u64..100, bits in 1u32..=64, value in any::<u64>()) {
            let mut bytes = vec![0u8; 30];
            set_field(&mut bytes, offset, bits, value);
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            prop_assert_eq!(get_unsigned(&bytes, offset, bits), value & mask);
        }
    }

    /// Redis's BITCOUNT/BITPOS range semantics on single bits: the normalised inclusive bit
    /// range, or None when empty (BYTE ranges cover whole bytes).
    fn naive_bit_range(length: usize, start: i64, end: i64, is_bit: bool) -> Option<(i64, i64)> {
        let range = normalize(start, end, length, is_bit);
        if range.start > range.end {
            return None;
        }
        if is_bit {
            let (mut first, mut last) = (start, end);
            let total = length as i64 * 8;
            if first < 0 {
                first += total;
            }
            if last < 0 {
                last += total;
            }
            Some((first.max(0), last.max(0).min(total - 1)))
        } else {
            Some((range.start * 8, range.end * 8 + 7))
        }
    }

    fn argv_of(words: &[String]) -> Vec<Bytes> {
        words.iter().map(|word| Bytes::from(word.clone())).collect()
    }

    proptest! {
        #[test]
        fn bitcount_and_bitpos_match_a_bit_walk(
            bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(0xffu8), any::<u8>()], 1..24),
            start in -200i64..200,
            end in -200i64..200,
            is_bit in any::<bool>(),
            bit in any::<bool>(),
            end_given in any::<bool>(),
        ) {
            let unit = if is_bit { "BIT" } else { "BYTE" };
            let count_argv = argv_of(&["BITCOUNT".into(), "k".into(), start.to_string(), end.to_string(), unit.into()]);
            let expected_count = if start < 0 && end < 0 && start > end {
                0
            } else {
                naive_bit_range(bytes.len(), start, end, is_bit)
                    .map(|(first, last)| (first..=last).filter(|&p| bit_at(&bytes, p as u64)).count())
                    .unwrap_or(0)
            };
            prop_assert_eq!(bitcount_of(&bytes, &count_argv), Ok(Reply::Integer(expected_count as i64)));

            let bit_word = if bit { "1" } else { "0" };
            let mut words: Vec<String> = vec!["BITPOS".into(), "k".into(), bit_word.into(), start.to_string()];
            let default_end = if is_bit { bytes.len() as i64 * 8 + 7 } else { bytes.len() as i64 - 1 };
            let effective_end = if end_given { end } else { default_end };
            if end_given || is_bit {
                words.push(effective_end.to_string());
            }
            if is_bit {
                words.push(unit.into());
            }
            // Passing the default end explicitly is the same as omitting it, except for the
            // end-given rule, which the model follows from `words.len()`.
            let explicit_end = words.len() >= 5;
            let expected = match naive_bit_range(bytes.len(), start, effective_end, is_bit) {
                None => -1,
                Some((first, last)) => match (first..=last).find(|&p| bit_at(&bytes, p as u64) == bit) {
                    Some(position) => position,
                    None if bit || explicit_end => -1,
                    None => last + 1,
                },
            };
            prop_assert_eq!(bitpos_of(&bytes, bit, &argv_of(&words)), Ok(Reply::Integer(expected)));
        }
    }

    #[test]
    fn overflow_rules() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), Some(4));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), Some(255));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), Some(0));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Wrap), Some(251));
        assert_eq!(unsigned_overflow(5, 10, 8, Overflow::Wrap), None);
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Wrap), Some(-126));
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Sat), Some(127));
        assert_eq!(signed_overflow(-120, -10, 8, Overflow::Sat), Some(-128));
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            Some(i64::MIN)
        );
        assert_eq!(signed_overflow(0, 5, 64, Overflow::Wrap), None);
    }

    #[test]
    fn bit_offsets() {
        let limit = 512 << 20;
        assert_eq!(bit_offset(b"7", None, limit), Ok(7));
        assert_eq!(bit_offset(b"#3", Some(8), limit), Ok(24));
        assert!(bit_offset(b"#3", None, limit).is_err());
        assert!(bit_offset(b"-1", None, limit).is_err());
        assert!(bit_offset(b"4294967296", None, limit).is_err());
        assert_eq!(bit_offset(b"4294967295", None, limit), Ok(4294967295));
    }

    #[test]
    fn commands_and_propagation() {
        let server = TestServer::new();
        let mut session = server.session();
        assert_eq!(server.run(&mut session, "SETBIT k 7 1"), ":0\r\n");
        assert_eq!(server.run(&mut session, "SETBIT k 7 1"), ":1\r\n");
        assert_eq!(server.run(&mut session, "GET k"), "$1\r\n\x01\r\n");
        assert_eq!(
            server.run(&mut session, "OBJECT ENCODING k"),
            "$3\r\nraw\r\n"
        );
        assert_eq!(server.run(&mut session, "BITCOUNT k"), ":1\r\n");
        assert_eq!(server.run(&mut session, "BITPOS k 1"), ":7\r\n");
        assert_eq!(
            server.run(&mut session, "BITFIELD k SET u8 0 255 GET i8 0"),
            "*2\r\n:1\r\n:-1\r\n"
        );
        assert_eq!(server.run(&mut session, "BITOP NOT d k"), ":1\r\n");
        assert_eq!(server.run(&mut session, "GET d"), "$1\r\n\x00\r\n");
        // Only what changed is propagated, as Redis 7.0.15 writes its AOF.
        let server = TestServer::new();
        let mut session = server.session();
        let propagated = server.propagated();
        for line in [
            "SETBIT k 1 1",
            "SETBIT k 1 1",
            "SETBIT k 2 0",
            "SETBIT k 20 0",
            "BITFIELD k GET u8 0",
            "BITFIELD k SET u8 0 64",
            "BITFIELD k OVERFLOW FAIL INCRBY u2 0 9",
            "BITFIELD k2 OVERFLOW FAIL SET u2 0 9",
            "BITFIELD_RO k GET u8 0",
            "BITOP AND d k",
            "BITOP AND d nokey",
            "BITOP AND d nokey",
        ] {
            server.run(&mut session, line);
        }
        let tail: Vec<String> = server.propagated()[propagated.len()..].to_vec();
        assert_eq!(
            tail,
            [
                "SELECT 0",
                "SETBIT k 1 1",
                "SETBIT k 20 0",
                "BITOP AND d k",
                "BITOP AND d nokey"
            ],
        );
    }
}
