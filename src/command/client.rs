//! CLIENT: ID, SETNAME, GETNAME, LIST, INFO, KILL, PAUSE, UNPAUSE, REPLY, NO-EVICT, HELP.
//!
//! Each subcommand reads or changes the calling session, or other clients through the
//! registry's [`ClientHandle`]s (kill switch, shown fields). None touches keys.

use super::args;
use super::exec::{Action, Ctx};
use super::server::help_reply;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use crate::server::clients::{ClientHandle, ReplyMode};
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("client|id", client_id, Lock::None),
    Spec::new("client|setname", client_setname, Lock::None),
    Spec::new("client|getname", client_getname, Lock::None),
    Spec::new("client|list", client_list, Lock::None),
    Spec::new("client|info", client_info, Lock::None),
    Spec::new("client|kill", client_kill, Lock::None),
    Spec::new("client|pause", client_pause, Lock::None),
    Spec::new("client|unpause", client_unpause, Lock::None),
    Spec::new("client|reply", client_reply, Lock::None),
    Spec::new("client|no-evict", client_no_evict, Lock::None),
    Spec::new("client|unblock", client_unblock, Lock::None),
    Spec::new("client|help", client_help, Lock::None),
];

const NO_SUCH_CLIENT: &str = "ERR No such client";
const INVALID_CLIENT_ID: &str = "ERR Invalid client ID";
const CLIENT_ID_RANGE: &str = "ERR client-id should be greater than 0";
const TIMEOUT_NOT_INTEGER: &str = "ERR timeout is not an integer or out of range";
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
const TIMEOUT_RANGE: &str = "ERR timeout is out of range";
const PAUSE_MODE: &str = "ERR CLIENT PAUSE mode must be WRITE or ALL";
/// The only user until ACLs exist.
const DEFAULT_USER: &str = "default";

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// Redis refuses names with spaces or newlines (they would break CLIENT LIST).
pub fn validate_name(name: &[u8]) -> Result<(), Error> {
    if name.iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return Err(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        );
    }
    Ok(())
}

/// Redis's client classes, as CLIENT LIST/KILL TYPE name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Normal,
    Replica,
    PubSub,
    Master,
}

/// `getClientTypeByName`: `normal`, `slave`/`replica`, `pubsub`, `master`.
pub fn client_type(name: &[u8]) -> Result<ClientType, Error> {
    let lower = name.to_ascii_lowercase();
    match &lower[..] {
        b"normal" => Ok(ClientType::Normal),
        b"slave" | b"replica" => Ok(ClientType::Replica),
        b"pubsub" => Ok(ClientType::PubSub),
        b"master" => Ok(ClientType::Master),
        _ => Err(Error::err(format!(
            "Unknown client type '{}'",
            args::text(name)
        ))),
    }
}

/// A client's class: `pubsub` while subscribed to anything, else `normal` until replication
/// arrives (a monitor is `normal` in Redis too).
fn type_of(client: &ClientHandle) -> ClientType {
    let info = client.info.lock();
    let subscriptions =
        info.subscribed_channels + info.subscribed_patterns + info.subscribed_shard_channels;
    if subscriptions > 0 {
        ClientType::PubSub
    } else {
        ClientType::Normal
    }
}

fn client_id(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(ctx.session.id as i64))
}

/// `CLIENT SETNAME name`: an empty name removes it.
fn client_setname(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    validate_name(&argv[2])?;
    ctx.session.handle.info.lock().name = args::text(&argv[2]);
    Ok(Reply::OK)
}

fn client_getname(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let name = ctx.session.handle.info.lock().name.clone();
    if name.is_empty() {
        Ok(Reply::Null)
    } else {
        Ok(Reply::bulk(name))
    }
}

/// Which clients CLIENT LIST shows.
#[derive(Debug, PartialEq, Eq)]
pub enum ListFilter {
    All,
    Type(ClientType),
    Ids(Vec<i64>),
}

/// Parses `[TYPE type] | [ID id ...]` as Redis 7.0 does.
pub fn parse_list_filter(words: &[Bytes]) -> Result<ListFilter, Error> {
    match words {
        [] => Ok(ListFilter::All),
        [keyword, kind] if args::is(keyword, "type") => Ok(ListFilter::Type(client_type(kind)?)),
        [keyword, ids @ ..] if args::is(keyword, "id") && !ids.is_empty() => {
            let mut parsed = Vec::with_capacity(ids.len());
            for id in ids {
                // Any integer is accepted; ids below 1 simply match no client.
                match crate::protocol::parser::parse_i64(id) {
                    Some(id) => parsed.push(id),
                    None => return Err(INVALID_CLIENT_ID.into()),
                }
            }
            Ok(ListFilter::Ids(parsed))
        }
        _ => Err(Error::Syntax),
    }
}

/// `CLIENT LIST [TYPE type] [ID id ...]`: one line per client.
fn client_list(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let filter = parse_list_filter(&argv[2..])?;
    let now_ms = ctx.now_ms();
    let mut text = String::new();
    for client in ctx.server.clients.all() {
        let shown = match &filter {
            ListFilter::All => true,
            ListFilter::Type(kind) => type_of(&client) == *kind,
            ListFilter::Ids(ids) => ids.contains(&(client.id as i64)),
        };
        if shown {
            text.push_str(&client.describe(now_ms));
            text.push('\n');
        }
    }
    Ok(Reply::Verbatim("txt", Bytes::from(text)))
}

/// `CLIENT INFO`: the caller's CLIENT LIST line.
fn client_info(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let mut text = ctx.session.handle.describe(ctx.now_ms());
    text.push('\n');
    Ok(Reply::Verbatim("txt", Bytes::from(text)))
}

/// CLIENT KILL's filters; every one given must match.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KillFilter {
    /// The old form `CLIENT KILL addr`: replies OK or an error instead of a count.
    pub old_form: bool,
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub kind: Option<ClientType>,
    pub skip_me: bool,
}

/// Parses `CLIENT KILL addr` or `CLIENT KILL <filter> <value> ...` (Redis 7.0's filters:
/// ID, TYPE, ADDR, LADDR, USER, SKIPME).
pub fn parse_kill(words: &[Bytes]) -> Result<KillFilter, Error> {
    if let [addr] = words {
        return Ok(KillFilter {
            old_form: true,
            addr: Some(args::text(addr)),
            skip_me: false,
            ..KillFilter::default()
        });
    }
    let mut filter = KillFilter {
        skip_me: true,
        ..KillFilter::default()
    };
    let mut index = 0;
    while index < words.len() {
        let option = &words[index];
        let Some(value) = words.get(index + 1) else {
            return Err(Error::Syntax);
        };
        if args::is(option, "id") {
            match crate::protocol::parser::parse_i64(value) {
                Some(id) if id >= 1 => filter.id = Some(id as u64),
                _ => return Err(CLIENT_ID_RANGE.into()),
            }
        } else if args::is(option, "type") {
            filter.kind = Some(client_type(value)?);
        } else if args::is(option, "addr") {
            filter.addr = Some(args::text(value));
        } else if args::is(option, "laddr") {
            filter.laddr = Some(args::text(value));
        } else if args::is(option, "user") {
            if value.as_ref() != DEFAULT_USER.as_bytes() {
                return Err(Error::err(format!("No such user '{}'", args::text(value))));
            }
        } else if args::is(option, "skipme") {
            filter.skip_me = if args::is(value, "yes") {
                true
            } else if args::is(value, "no") {
                false
            } else {
                return Err(Error::Syntax);
            };
        } else {
            return Err(Error::Syntax);
        }
        index += 2;
    }
    Ok(filter)
}

impl KillFilter {
    fn matches(&self, client: &ClientHandle, caller_id: u64) -> bool {
        if self.addr.as_ref().is_some_and(|addr| *addr != client.addr)
            || self
                .laddr
                .as_ref()
                .is_some_and(|laddr| *laddr != client.laddr)
            || self.kind.is_some_and(|kind| kind != type_of(client))
            || self.id.is_some_and(|id| id != client.id)
        {
            return false;
        }
        !(self.skip_me && client.id == caller_id)
    }
}

/// `CLIENT KILL ...`: the caller, if it matches, is closed after its reply.
fn client_kill(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let filter = parse_kill(&argv[2..])?;
    let caller_id = ctx.session.id;
    let mut killed = 0;
    for client in ctx.server.clients.all() {
        if !filter.matches(&client, caller_id) {
            continue;
        }
        if client.id == caller_id {
            ctx.action = Some(Action::Close);
        } else {
            client.kill();
        }
        killed += 1;
    }
    if filter.old_form {
        if killed == 0 {
            return Err(NO_SUCH_CLIENT.into());
        }
        return Ok(Reply::OK);
    }
    Ok(Reply::Integer(killed))
}

/// `CLIENT PAUSE timeout-ms [WRITE|ALL]`: a pause in force is only ever extended, and
/// widened from WRITE to ALL, as Redis's `pauseClients` does.
fn client_pause(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let timeout_ms =
        crate::protocol::parser::parse_i64(&argv[2]).ok_or(Error::from(TIMEOUT_NOT_INTEGER))?;
    if timeout_ms < 0 {
        return Err(TIMEOUT_NEGATIVE.into());
    }
    let now_ms = ctx.now_ms();
    let until_ms = (now_ms as i64)
        .checked_add(timeout_ms)
        .ok_or(Error::from(TIMEOUT_RANGE))? as u64;
    let mut all = true;
    if argv.len() == 4 {
        if args::is(&argv[3], "write") {
            all = false;
        } else if !args::is(&argv[3], "all") {
            return Err(PAUSE_MODE.into());
        }
    }
    let current = *ctx.server.pause.lock();
    let (until_ms, all) = match current {
        Some((current_until, current_all)) if current_until > now_ms => {
            (current_until.max(until_ms), current_all || all)
        }
        _ => (until_ms, all),
    };
    ctx.server.set_pause(Some((until_ms, all)));
    Ok(Reply::OK)
}

fn client_unpause(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    ctx.server.set_pause(None);
    Ok(Reply::OK)
}

/// `CLIENT REPLY ON|OFF|SKIP`: OFF and SKIP send no reply themselves.
fn client_reply(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mode = &argv[2];
    if args::is(mode, "on") {
        ctx.session.reply_mode = ReplyMode::On;
        Ok(Reply::OK)
    } else if args::is(mode, "off") {
        ctx.session.reply_mode = ReplyMode::Off;
        Ok(Reply::Raw(Bytes::new()))
    } else if args::is(mode, "skip") {
        if ctx.session.reply_mode != ReplyMode::Off {
            ctx.session.reply_mode = ReplyMode::SkipNext;
        }
        Ok(Reply::Raw(Bytes::new()))
    } else {
        Err(Error::Syntax)
    }
}

/// `CLIENT NO-EVICT ON|OFF`.
fn client_no_evict(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let enabled = if args::is(&argv[2], "on") {
        true
    } else if args::is(&argv[2], "off") {
        false
    } else {
        return Err(Error::Syntax);
    };
    ctx.session.handle.info.lock().no_evict = enabled;
    Ok(Reply::OK)
}

/// `CLIENT UNBLOCK client-id [TIMEOUT|ERROR]`: ends a blocking command's wait early, as if it
/// timed out or with an UNBLOCKED error; 1 if the client was blocked, else 0.
fn client_unblock(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let id = args::int(&argv[2])?;
    let as_error = match argv.get(3) {
        None => false,
        Some(mode) if args::is(mode, "timeout") => false,
        Some(mode) if args::is(mode, "error") => true,
        Some(_) => return Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into()),
    };
    if argv.len() > 4 {
        return Err(Error::Syntax);
    }
    let error = as_error.then(|| Reply::error("UNBLOCKED client unblocked via CLIENT UNBLOCK"));
    let unblocked = id >= 0 && crate::server::blocking::unblock_with(ctx.server, id as u64, error);
    Ok(Reply::Integer(unblocked as i64))
}

fn client_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(CLIENT_HELP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::argv as words;

    #[test]
    fn names() {
        assert!(validate_name(b"conn-1").is_ok());
        assert!(validate_name(b"").is_ok());
        assert!(validate_name(b"a b").is_err());
        assert!(validate_name(b"a\nb").is_err());
    }

    #[test]
    fn list_filters() {
        assert_eq!(parse_list_filter(&[]), Ok(ListFilter::All));
        assert_eq!(
            parse_list_filter(&words(&["TYPE", "replica"])),
            Ok(ListFilter::Type(ClientType::Replica))
        );
        assert_eq!(
            parse_list_filter(&words(&["type", "foo"])),
            Err(Error::err("Unknown client type 'foo'"))
        );
        assert_eq!(
            parse_list_filter(&words(&["id", "1", "2"])),
            Ok(ListFilter::Ids(vec![1, 2]))
        );
        assert_eq!(
            parse_list_filter(&words(&["id", "1", "x"])),
            Err(Error::from(INVALID_CLIENT_ID))
        );
        assert_eq!(parse_list_filter(&words(&["id"])), Err(Error::Syntax));
    }

    #[test]
    fn kill_forms() {
        let old = parse_kill(&words(&["1.2.3.4:5"])).unwrap();
        assert!(old.old_form && !old.skip_me);
        let new = parse_kill(&words(&["id", "7", "skipme", "no"])).unwrap();
        assert_eq!(new.id, Some(7));
        assert!(!new.skip_me && !new.old_form);
        assert_eq!(
            parse_kill(&words(&["id", "0"])),
            Err(Error::from(CLIENT_ID_RANGE))
        );
        assert_eq!(parse_kill(&words(&["maxage", "10"])), Err(Error::Syntax));
        assert_eq!(parse_kill(&words(&["skipme", "maybe"])), Err(Error::Syntax));
        assert_eq!(parse_kill(&words(&["id", "1", "type"])), Err(Error::Syntax));
        assert_eq!(
            parse_kill(&words(&["user", "bob"])),
            Err(Error::err("No such user 'bob'"))
        );
    }
}
