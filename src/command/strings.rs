//! String commands (being written).

use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use crate::types::Value;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("get", get, Lock::Keys),
    Spec::new("set", set, Lock::Keys),
];

fn get(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    match ctx.ks.lookup_read(db, &argv[1]) {
        None => Ok(Reply::Null),
        Some(entry) => match &entry.value {
            Value::Str(bytes) => Ok(Reply::bulk_copy(bytes)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

fn set(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    ctx.ks.set(db, &argv[1], Value::string(&argv[2]), false);
    Ok(Reply::OK)
}
