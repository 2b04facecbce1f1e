//! Persistence commands: BGREWRITEAOF (SAVE, BGSAVE and LASTSAVE join it with RDB files).

use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[Spec::new("bgrewriteaof", bgrewriteaof, Lock::None)];

/// BGREWRITEAOF: a new base written from a snapshot on a thread of its own, while clients
/// go on; the reply is Redis's and comes at once.
fn bgrewriteaof(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    crate::server::persistence::start_background_rewrite(ctx.server).map_err(Error::from)?;
    Ok(Reply::Status(
        "Background append only file rewriting started".into(),
    ))
}
