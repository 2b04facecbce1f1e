//! Persistence commands: SAVE, BGSAVE, LASTSAVE and BGREWRITEAOF.

use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("bgrewriteaof", bgrewriteaof, Lock::None),
    Spec::new("save", save, Lock::None),
    Spec::new("bgsave", bgsave, Lock::None),
    Spec::new("lastsave", lastsave, Lock::None),
];

/// SAVE: writes the RDB before replying (from a snapshot, so other clients go on).
fn save(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    if ctx
        .server
        .rdb
        .in_progress
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return Err(Error::from("ERR Background save already in progress"));
    }
    // Redis answers a failed SAVE with a bare `-ERR` (its shared.err); the log says why.
    crate::server::persistence::save(ctx.server).map_err(|_| Error::from("ERR"))?;
    Ok(Reply::OK)
}

/// BGSAVE [SCHEDULE]: the save on a thread of its own; inside EXEC it is scheduled.
fn bgsave(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let schedule = match argv.get(1) {
        None => false,
        Some(word) if argv.len() == 2 && super::args::is(word, "schedule") => true,
        Some(_) => return Err(Error::Syntax),
    };
    let in_exec = ctx.mode == super::exec::Mode::Transaction;
    let status = crate::server::persistence::start_background_save(ctx.server, schedule || in_exec)
        .map_err(Error::from)?;
    Ok(Reply::Status(status.into()))
}

/// LASTSAVE: unix time of the last successful save.
fn lastsave(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(
        ctx.server
            .rdb
            .last_save_s
            .load(std::sync::atomic::Ordering::Relaxed) as i64,
    ))
}

/// BGREWRITEAOF: a new base written from a snapshot on a thread of its own, while clients
/// go on; the reply is Redis's and comes at once.
fn bgrewriteaof(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let status =
        crate::server::persistence::start_background_rewrite(ctx.server).map_err(Error::from)?;
    Ok(Reply::Status(status.into()))
}
