//! Argument parsing shared by every family, with Redis's error texts.

use crate::error::Error;
use crate::protocol::parser::parse_i64;

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
