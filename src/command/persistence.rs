//! Persistence commands: BGREWRITEAOF (SAVE, BGSAVE and LASTSAVE join it with RDB files).

use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use bytes::Bytes;

const REWRITE_FAILED: &str =
    "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.";

pub static COMMANDS: &[Spec] = &[Spec::new("bgrewriteaof", bgrewriteaof, Lock::All)];

/// BGREWRITEAOF: a new base from memory and a fresh incr file. Today it runs while the
/// command holds every shard (a consistent point, but clients wait); the reply is Redis's.
fn bgrewriteaof(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    match crate::server::persistence::rewrite_locked(ctx.server, &mut ctx.ks) {
        Ok(()) => Ok(Reply::Status(
            "Background append only file rewriting started".into(),
        )),
        Err(_) => Err(Error::from(REWRITE_FAILED)),
    }
}
