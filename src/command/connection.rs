//! Connection commands: PING, ECHO, SELECT, QUIT, HELLO, AUTH, RESET.
//!
//! CLIENT lives in `client.rs`. These touch only the session, never keys.

use super::args;
use super::exec::{Action, Ctx};
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("ping", ping, Lock::None),
    Spec::new("echo", echo, Lock::None),
    Spec::new("select", select, Lock::None),
    Spec::new("quit", quit, Lock::None),
    Spec::new("hello", hello, Lock::None),
    Spec::new("auth", auth, Lock::None),
    Spec::new("reset", reset, Lock::None),
];

/// `PING [message]`: PONG, or the message as a bulk string.
fn ping(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if !ctx.session.subscriptions.is_empty() && !ctx.session.resp3 {
        return super::pubsub::subscribed_ping(ctx, argv);
    }
    match argv {
        [_] => Ok(Reply::Simple("PONG")),
        [_, message] => Ok(Reply::Bulk(message.clone())),
        _ => Err(Error::Arity(ctx.command.fullname.clone())),
    }
}

/// `ECHO message`.
fn echo(_ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(argv[1].clone()))
}

/// `SELECT index`.
fn select(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let index = args::int(&argv[1])?;
    if index < 0 || index as usize >= ctx.server.keyspace.databases() {
        return Err(crate::error::DB_INDEX_OUT_OF_RANGE.into());
    }
    ctx.session.db = index as usize;
    Ok(Reply::OK)
}

/// `QUIT`: OK, then the connection closes.
fn quit(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    ctx.action = Some(Action::Close);
    Ok(Reply::OK)
}

/// Checks a username and password against the default user (`requirepass`).
fn check_password(ctx: &Ctx<'_, '_>, user: &[u8], password: &[u8]) -> Result<(), Error> {
    let required = ctx.server.config.text("requirepass");
    let user_ok = user == b"default";
    let password_ok = required.is_empty() || required.as_bytes() == password;
    if user_ok && password_ok {
        Ok(())
    } else {
        Err(crate::error::WRONGPASS.into())
    }
}

/// `AUTH [username] password`.
fn auth(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let (user, password): (&[u8], &[u8]) = match argv {
        [_, password] => {
            if ctx.server.config.text("requirepass").is_empty() {
                return Err(Error::from(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            (b"default", password)
        }
        [_, user, password] => (user, password),
        _ => return Err(Error::Syntax),
    };
    check_password(ctx, user, password)?;
    ctx.session.authenticated = true;
    Ok(Reply::OK)
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
fn hello(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mut protocol = None;
    let mut index = 1;
    if argv.len() > 1 {
        let version = args::int(&argv[1])
            .map_err(|_| Error::from("ERR Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&version) {
            return Err("NOPROTO unsupported protocol version".into());
        }
        protocol = Some(version);
        index = 2;
    }
    let mut credentials = None;
    let mut name = None;
    while index < argv.len() {
        let remaining = argv.len() - index - 1;
        if args::is(&argv[index], "AUTH") && remaining >= 2 {
            credentials = Some((argv[index + 1].clone(), argv[index + 2].clone()));
            index += 3;
        } else if args::is(&argv[index], "SETNAME") && remaining >= 1 {
            name = Some(argv[index + 1].clone());
            index += 2;
        } else {
            return Err(Error::err(format!(
                "Syntax error in HELLO option '{}'",
                args::text(&argv[index])
            )));
        }
    }
    if let Some((user, password)) = &credentials {
        check_password(ctx, user, password)?;
        ctx.session.authenticated = true;
    }
    if !ctx.session.authenticated {
        return Err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    if let Some(name) = name {
        super::client::validate_name(&name)?;
        ctx.session.handle.info.lock().name = args::text(&name);
    }
    if let Some(version) = protocol {
        ctx.session.resp3 = version == 3;
    }
    Ok(Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(crate::REDIS_VERSION)),
        (
            Reply::bulk("proto"),
            Reply::Integer(if ctx.session.resp3 { 3 } else { 2 }),
        ),
        (Reply::bulk("id"), Reply::Integer(ctx.session.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ]))
}

/// `RESET`: back to a fresh connection's state.
fn reset(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let authenticated = !ctx.server.requires_auth();
    super::transactions::unwatch_all(ctx.server, ctx.session);
    crate::server::pubsub::unsubscribe_all(ctx.server, ctx.session);
    ctx.session.reset(authenticated);
    ctx.server.monitors.remove(ctx.session.id);
    Ok(Reply::Simple("RESET"))
}
