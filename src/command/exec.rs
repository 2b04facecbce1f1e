//! The executor: the one path every command takes from an argument vector to a reply.
//!
//! look up (and resolve the subcommand) -> arity -> authentication -> MONITOR feed -> lock the
//! key shards in order -> run the handler with one time snapshot -> propagate the effects
//! (lazily expired keys as DEL, then the command or its rewrite) while the locks are still
//! held, so the log's order is the keyspace's -> release -> statistics and slowlog.

use super::table::{flags, range_iter, table, Command, Lock};
use crate::error::{error_code, CmdResult, Error};
use crate::keyspace::Locked;
use crate::protocol::Reply;
use crate::server::{Server, Session};
use bytes::Bytes;
use std::time::Instant;

/// A command's handler: parses its arguments, runs on the locked keyspace, returns a reply.
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult;

/// What a command asks of its connection beyond the reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Close after sending the reply (QUIT).
    Close,
    /// Stop the server (SHUTDOWN), saving or not.
    Shutdown {
        save: Option<bool>,
        now: bool,
        force: bool,
    },
    /// Hold this client before replying (DEBUG SLEEP).
    Sleep(std::time::Duration),
    /// The client became a monitor.
    Monitor,
}

/// Everything a handler may touch.
pub struct Ctx<'a> {
    pub server: &'a Server,
    pub session: &'a mut Session,
    pub ks: Locked<'a>,
    pub command: &'a Command,
    /// Replaces the command in the propagation log (EXPIRE as PEXPIREAT, ...). An empty list
    /// propagates nothing.
    rewrite: Option<Vec<Vec<Bytes>>>,
    /// Propagate even though nothing changed (Redis's `forceCommandPropagation`).
    forced: bool,
    pub action: Option<Action>,
}

impl<'a> Ctx<'a> {
    /// The selected database.
    pub fn db(&self) -> usize {
        self.session.db
    }

    /// The command's time snapshot, unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.ks.now_ms
    }

    /// Propagate `args` instead of the command as received. Call again to add more.
    pub fn propagate(&mut self, args: Vec<Bytes>) {
        self.rewrite.get_or_insert_with(Vec::new).push(args);
    }

    /// Propagate the command even if it changed nothing (FLUSHDB on an empty database).
    pub fn force_propagate(&mut self) {
        self.forced = true;
    }

    /// Propagate nothing for this command, even though it wrote.
    pub fn propagate_nothing(&mut self) {
        self.rewrite = Some(Vec::new());
    }
}

/// Runs one request and returns its reply; `session.action` tells the connection what else
/// to do. Never panics on client input: a handler panic is caught and reported.
pub fn dispatch(
    server: &Server,
    session: &mut Session,
    args: Vec<Bytes>,
) -> (Reply, Option<Action>) {
    debug_assert!(!args.is_empty());
    let command = match resolve(&args) {
        Ok(command) => command,
        Err((error, command)) => {
            server.stats.record_error(&error, command);
            return (error.into_reply(), None);
        }
    };
    session.handle.note_command(command.id);
    if server.requires_auth() && !session.authenticated && !command.has(flags::NO_AUTH) {
        let error = Error::from(crate::error::NOAUTH);
        server.stats.record_error(&error, Some(command));
        return (error.into_reply(), None);
    }
    if server.monitors.active() && !command.has(flags::SKIP_MONITOR) && !command.has(flags::ADMIN) {
        server.monitors.feed(server, session, &args);
    }
    run(server, session, command, &args)
}

/// Finds the command or subcommand and checks its arity, with Redis's error texts. On error,
/// also the command that refused (for its `rejected_calls`), when one was found.
fn resolve(args: &[Bytes]) -> Result<&'static Command, (Error, Option<&'static Command>)> {
    let table = table();
    let Some(command) = table.get(&args[0]) else {
        return Err((unknown_command(args), None));
    };
    let command =
        if !command.subcommands.is_empty() && (args.len() >= 2 || command.handler.is_none()) {
            if args.len() < 2 {
                return Err((Error::Arity(command.fullname.clone()), Some(command)));
            }
            let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
            match command.subcommands.get(&sub) {
                Some(subcommand) => subcommand,
                None => {
                    let text = format!(
                        "ERR unknown subcommand '{}'. Try {} HELP.",
                        truncate_lossy(&args[1], 128),
                        command.fullname.to_ascii_uppercase()
                    );
                    return Err((Error::Text(sanitize(text).into()), None));
                }
            }
        } else {
            command
        };
    let argc = args.len() as i32;
    if (command.arity > 0 && argc != command.arity) || argc < -command.arity {
        return Err((Error::Arity(command.fullname.clone()), Some(command)));
    }
    Ok(command)
}

/// Redis's text: `unknown command 'x', with args beginning with: 'a' 'b' `.
fn unknown_command(args: &[Bytes]) -> Error {
    let mut listed = String::new();
    for arg in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        listed.push_str(&format!("'{}' ", truncate_lossy(arg, room)));
    }
    let text = format!(
        "ERR unknown command '{}', with args beginning with: {}",
        truncate_lossy(&args[0], 128),
        listed
    );
    Error::Text(sanitize(text).into())
}

fn truncate_lossy(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

/// Redis replaces newlines in error texts so they cannot break the protocol.
fn sanitize(text: String) -> String {
    text.replace(['\r', '\n'], " ")
}

fn run(
    server: &Server,
    session: &mut Session,
    command: &'static Command,
    args: &[Bytes],
) -> (Reply, Option<Action>) {
    let Some(handler) = command.handler else {
        return (Error::Arity(command.fullname.clone()).into_reply(), None);
    };
    let now_ms = server.clock.now_ms();
    let keyspace = &server.keyspace;
    let ks = match command.lock {
        Lock::None => keyspace.lock_none(now_ms),
        Lock::All => keyspace.lock_all(now_ms),
        Lock::Keys => {
            let keys = range_iter(
                command.first_key,
                command.last_key,
                command.key_step,
                args.len(),
            )
            .filter_map(|i| args.get(i))
            .map(|k| &k[..]);
            keyspace.lock_keys(keys, now_ms)
        }
        Lock::Custom(find) => {
            let positions = find(args);
            let keys = positions
                .iter()
                .filter_map(|&i| args.get(i))
                .map(|k| &k[..]);
            keyspace.lock_keys(keys, now_ms)
        }
    };
    let started = Instant::now();
    let db = session.db;
    let mut ctx = Ctx {
        server,
        session,
        ks,
        command,
        rewrite: None,
        forced: false,
        action: None,
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&mut ctx, args)));
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(command = %command.fullname, "command panicked: {what}");
            Err(Error::err(format!(
                "internal error in '{}': {what}",
                command.fullname
            )))
        }
    };
    propagate(server, &mut ctx, db, args);
    let elapsed_us = started.elapsed().as_micros() as u64;
    server
        .slowlog
        .record(server, ctx.session, args, now_ms, elapsed_us);
    let action = ctx.action.take();
    drop(ctx);
    server
        .stats
        .record_call(command, elapsed_us, result.is_err());
    match result {
        Ok(reply) => (reply, action),
        Err(error) => {
            // Already counted as a failed call; `rejected` is for refusals before running.
            server.stats.record_error(&error, None);
            (error.into_reply(), action)
        }
    }
}

/// Appends the command's effects to the propagation log, locks still held.
fn propagate(server: &Server, ctx: &mut Ctx<'_>, db_at_start: usize, args: &[Bytes]) {
    server.stats.add_dirty(ctx.ks.dirty);
    let wrote = ctx.command.is_write() && (ctx.ks.dirty > 0 || ctx.forced);
    if !server.log.is_active() || (ctx.ks.expired.is_empty() && !wrote) {
        return;
    }
    let mut effects: Vec<(usize, Vec<Bytes>)> = Vec::new();
    for (db, key) in ctx.ks.expired.iter() {
        effects.push((
            *db,
            vec![Bytes::from_static(b"DEL"), Bytes::copy_from_slice(key)],
        ));
    }
    if wrote {
        match ctx.rewrite.take() {
            Some(rewritten) => {
                effects.extend(rewritten.into_iter().map(|argv| (db_at_start, argv)))
            }
            None => effects.push((db_at_start, args.to_vec())),
        }
    }
    if !effects.is_empty() {
        server.log.append(&effects);
    }
}

/// An error's code for INFO errorstats.
pub fn code_of(reply: &Reply) -> Option<&str> {
    match reply {
        Reply::Error(text) => Some(error_code(text)),
        _ => None,
    }
}
