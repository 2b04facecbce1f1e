//! Key commands (being written).

use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::CmdResult;
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("del", del, Lock::Keys),
    Spec::new("dbsize", dbsize, Lock::All),
];

fn del(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let removed = argv[1..]
        .iter()
        .filter(|key| ctx.ks.delete(db, key))
        .count();
    Ok(Reply::Integer(removed as i64))
}

fn dbsize(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    Ok(Reply::Integer(ctx.ks.len(db) as i64))
}
