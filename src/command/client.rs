//! CLIENT: ID, SETNAME, GETNAME, LIST, INFO, KILL, PAUSE, UNPAUSE, REPLY, NO-EVICT.

use super::exec::Ctx;
use super::table::Spec;
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[];

/// Redis refuses names with spaces or newlines (they would break CLIENT LIST).
pub fn validate_name(name: &[u8]) -> Result<(), Error> {
    if name.iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return Err(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        );
    }
    Ok(())
}

#[allow(dead_code)]
fn placeholder(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::OK)
}
