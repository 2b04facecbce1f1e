//! What the blocking commands of every family share (BLPOP, BLMOVE, BZPOPMIN, ...).
//!
//! Each blocking command first tries its non-blocking form. With nothing to serve it asks its
//! connection to block (`Action::Block`); when a key it waits on changes, the server re-runs it
//! for the client in arrival order (`server::blocking`). Inside EXEC it never blocks. A key
//! turned into another type while a client waits does not wake it with WRONGTYPE: as in Redis,
//! only a value of the awaited type serves it.

use super::exec::{Action, Ctx, Mode};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use bytes::Bytes;

const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
const TIMEOUT_OUT_OF_RANGE: &str = "ERR timeout is out of range";

/// Redis's getTimeoutFromObjectOrReply in seconds: a float, 0 for no timeout. Returns the
/// wait in milliseconds, None for forever.
pub fn parse_timeout(arg: &[u8], now_ms: u64) -> Result<Option<u64>, Error> {
    let seconds = match crate::long_double::parse(arg) {
        Some(crate::long_double::Parsed::Finite(value)) => value.to_f64(),
        Some(crate::long_double::Parsed::Infinite) => f64::INFINITY,
        None => return Err(TIMEOUT_NOT_FLOAT.into()),
    };
    let milliseconds = seconds * 1000.0;
    // Redis truncates toward zero with `(long long)(ftval * 1000.0)`; on x86-64 a value out of
    // range (inf, 1e300) converts to LLONG_MIN, so Redis answers "timeout is negative".
    let milliseconds = if milliseconds >= i64::MIN as f64 && milliseconds < i64::MAX as f64 {
        milliseconds as i64
    } else {
        i64::MIN
    };
    if milliseconds < 0 {
        return Err(TIMEOUT_NEGATIVE.into());
    }
    if milliseconds == 0 {
        return Ok(None);
    }
    if milliseconds as u64 > i64::MAX as u64 - now_ms {
        return Err(TIMEOUT_OUT_OF_RANGE.into());
    }
    Ok(Some(milliseconds as u64))
}

/// Asks the connection to block on `keys` until `timeout_reply` would answer an expired wait.
/// Where blocking is not allowed (inside EXEC) the command answers `now_reply` at once: its
/// non-blocking form's empty reply (a null bulk for BLMOVE, where a timeout gives a null array).
pub fn block_on(
    ctx: &mut Ctx<'_, '_>,
    argv: &[Bytes],
    keys: &[Bytes],
    timeout_ms: Option<u64>,
    timeout_reply: Reply,
    now_reply: Reply,
) -> CmdResult {
    if !ctx.may_block() {
        return Ok(now_reply);
    }
    ctx.action = Some(Action::Block {
        args: argv.to_vec(),
        keys: keys.to_vec(),
        timeout_ms,
        timeout_reply,
    });
    Ok(now_reply)
}

/// While serving a blocked client, a key of another type keeps it waiting instead of failing.
pub fn wrong_type_keeps_waiting(ctx: &Ctx<'_, '_>, error: &Error) -> bool {
    ctx.mode == Mode::Serving && *error == Error::WrongType
}
