//! Command errors: one enum, Redis 7.0's texts, rendered in one place.
//!
//! A command error becomes a `-<CODE> <text>` reply and the connection carries on. Texts are
//! Redis's to the letter because clients and test suites match on them; golden tests on the
//! bytes live in the families that raise them.

use crate::protocol::Reply;
use std::borrow::Cow;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    WrongType,
    NotInteger,
    NotFloat,
    Syntax,
    Overflow,
    NoSuchKey,
    /// `wrong number of arguments for '<name>' command`.
    Arity(String),
    /// `invalid expire time in '<name>' command`.
    InvalidExpire(String),
    /// Any other text, complete with its code (`ERR ...`, `NOPERM ...`).
    Text(Cow<'static, str>),
}

pub type CmdResult = Result<Reply, Error>;

impl Error {
    /// An `ERR`-coded error with a run-time text.
    pub fn err(text: impl std::fmt::Display) -> Error {
        Error::Text(Cow::Owned(format!("ERR {text}")))
    }

    pub fn text(&self) -> Cow<'static, str> {
        match self {
            Error::WrongType => Cow::Borrowed(WRONGTYPE),
            Error::NotInteger => Cow::Borrowed(NOT_INTEGER),
            Error::NotFloat => Cow::Borrowed(NOT_FLOAT),
            Error::Syntax => Cow::Borrowed(SYNTAX),
            Error::Overflow => Cow::Borrowed(OVERFLOW),
            Error::NoSuchKey => Cow::Borrowed(NO_SUCH_KEY),
            Error::Arity(name) => Cow::Owned(format!(
                "ERR wrong number of arguments for '{name}' command"
            )),
            Error::InvalidExpire(name) => {
                Cow::Owned(format!("ERR invalid expire time in '{name}' command"))
            }
            Error::Text(text) => text.clone(),
        }
    }

    pub fn into_reply(self) -> Reply {
        Reply::Error(self.text().into_owned())
    }
}

impl From<&'static str> for Error {
    fn from(text: &'static str) -> Error {
        Error::Text(Cow::Borrowed(text))
    }
}

/// The error code (`ERR`, `WRONGTYPE`) of an error reply's text, for INFO errorstats.
pub fn error_code(text: &str) -> &str {
    text.split(' ').next().unwrap_or("ERR")
}
