//! Argument parsing shared by every family, with Redis's error texts.

use crate::error::Error;
use crate::protocol::parser::parse_i64;
use bytes::Bytes;

/// An integer argument (`value is not an integer or out of range` otherwise).
pub fn int(arg: &[u8]) -> Result<i64, Error> {
    parse_i64(arg).ok_or(Error::NotInteger)
}

/// A float argument (`value is not a valid float` otherwise).
pub fn float(arg: &[u8]) -> Result<f64, Error> {
    crate::util::parse_f64(arg).ok_or(Error::NotFloat)
}

/// True when `arg` is `word`, ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// A database index within `databases` (`DB index is out of range` otherwise).
pub fn db_index(arg: &[u8], databases: usize) -> Result<usize, Error> {
    let index = parse_i64(arg).ok_or(Error::NotInteger)?;
    if index < 0 || index as usize >= databases {
        return Err(crate::error::DB_INDEX_OUT_OF_RANGE.into());
    }
    Ok(index as usize)
}

/// The argument as text, for messages.
pub fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// SCAN-family cursors that do not parse.
pub const INVALID_CURSOR: &str = "ERR invalid cursor";

/// Redis's `parseScanCursorOrReply` for SCAN, HSCAN, SSCAN and ZSCAN: `strtoul` semantics
/// (optional sign, a negative value wraps, the empty string is 0), rejecting leading space,
/// trailing bytes and overflow.
pub fn scan_cursor(arg: &[u8]) -> Result<u64, Error> {
    let invalid = || Error::from(INVALID_CURSOR);
    let (negative, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        Some(_) => (false, arg),
        None => return Ok(0),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    for &digit in digits {
        value = value
            .checked_mul(10)
            .and_then(|value| value.checked_add(u64::from(digit - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// COUNT when a SCAN-family command does not give one.
pub const SCAN_COUNT_DEFAULT: usize = 10;

/// The options after a SCAN-family cursor: COUNT, MATCH, and (SCAN only) TYPE.
#[derive(Debug, PartialEq)]
pub struct ScanOptions {
    pub count: usize,
    /// None also for `MATCH *`: Redis skips matching entirely then.
    pub pattern: Option<Bytes>,
    pub type_name: Option<Bytes>,
}

impl ScanOptions {
    /// Redis's option loop in `scanGenericCommand`: later options override earlier ones, a
    /// COUNT below 1 or an unknown or valueless option is a syntax error. TYPE is accepted
    /// only where `allow_type` (SCAN; HSCAN, SSCAN and ZSCAN refuse it).
    pub fn parse(options: &[Bytes], allow_type: bool) -> Result<ScanOptions, Error> {
        let mut parsed = ScanOptions {
            count: SCAN_COUNT_DEFAULT,
            pattern: None,
            type_name: None,
        };
        let mut index = 0;
        while index < options.len() {
            let option = &options[index];
            let Some(value) = options.get(index + 1) else {
                return Err(Error::Syntax);
            };
            if is(option, "count") {
                let count = int(value)?;
                if count < 1 {
                    return Err(Error::Syntax);
                }
                parsed.count = usize::try_from(count).unwrap_or(usize::MAX);
            } else if is(option, "match") {
                parsed.pattern = (&value[..] != b"*").then(|| value.clone());
            } else if allow_type && is(option, "type") {
                parsed.type_name = Some(value.clone());
            } else {
                return Err(Error::Syntax);
            }
            index += 2;
        }
        Ok(parsed)
    }
}

/// C's `strtod` over the whole of `text` (no trailing bytes): decimal, `inf`/`infinity` and
/// hexadecimal (`0x1p4`) forms with an optional sign. Returns the value and whether it
/// overflowed or underflowed to zero (`ERANGE`). NaN is rejected.
pub fn strtod_whole(text: &[u8]) -> Option<(f64, bool)> {
    const TEXT_BYTES_MAX: usize = 5000;
    if text.len() > TEXT_BYTES_MAX {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (magnitude, out_of_range) = if lower == "inf" || lower == "infinity" {
        (f64::INFINITY, false)
    } else if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else {
        let (mantissa, _) = lower.split_once('e').unwrap_or((&lower, ""));
        let valid = lower
            .bytes()
            .all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'e' | b'-' | b'+'))
            && mantissa.bytes().any(|byte| byte.is_ascii_digit())
            && !mantissa.contains(['+', '-']);
        if !valid {
            return None;
        }
        let value: f64 = lower.parse().ok()?;
        let nonzero_digits = mantissa.bytes().any(|byte| matches!(byte, b'1'..=b'9'));
        (
            value,
            value.is_infinite() || (value == 0.0 && nonzero_digits),
        )
    };
    if magnitude.is_nan() {
        return None;
    }
    Some((if negative { -magnitude } else { magnitude }, out_of_range))
}

/// The part of a C hexadecimal float after `0x`: digits, an optional fraction, an optional
/// binary exponent `p[+-]digits`.
fn parse_hex_float(text: &str) -> Option<(f64, bool)> {
    let (digits, exponent) = match text.split_once('p') {
        Some((digits, exponent)) => (digits, exponent.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut value = 0.0f64;
    for digit in whole.chars() {
        value = value * 16.0 + f64::from(digit.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for digit in fraction.chars() {
        value += f64::from(digit.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let result = value * 2f64.powi(exponent);
    Some((
        result,
        result.is_infinite() || (result == 0.0 && value != 0.0),
    ))
}

/// A score argument as Redis's `getDoubleFromObject` reads it (ZADD, ZINCRBY, WEIGHTS): no
/// surrounding space, no overflow, not NaN.
pub fn double(text: &[u8]) -> Option<f64> {
    if text.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    match strtod_whole(text)? {
        (_, true) => None,
        (value, false) => Some(value),
    }
}
