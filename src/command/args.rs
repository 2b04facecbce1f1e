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
