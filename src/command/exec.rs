//! The executor: the one path every command takes from an argument vector to a reply.
//!
//! look up (and resolve the subcommand) -> arity -> authentication -> MONITOR feed -> lock the
//! key shards in order -> run the handler with one time snapshot -> propagate the effects
//! (lazily expired keys as DEL, then the command or its rewrite) while the locks are still
//! held, so the log's order is the keyspace's -> release -> statistics and slowlog.

use super::table::{flags, range_iter, table, Command, KeyRange, Lock};
use crate::error::{error_code, CmdResult, Error};
use crate::keyspace::locked::{Located, Prefetched};
use crate::keyspace::Locked;
use crate::protocol::Reply;
use crate::server::{Server, Session};
use crate::types::Value;
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::time::Instant;

/// A command's handler: parses its arguments, runs on the locked keyspace, returns a reply.
pub type Handler = fn(&mut Ctx<'_, '_>, &[Bytes]) -> CmdResult;

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
    /// Nothing to serve yet: block until one of `keys` is ready or the timeout passes, then
    /// re-run `args` (a blocking command). `timeout_reply` answers an expired wait.
    Block {
        args: Vec<Bytes>,
        keys: Vec<Bytes>,
        timeout_ms: Option<u64>,
        timeout_reply: Reply,
    },
}

/// How a command is being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sent by the client.
    Normal,
    /// Inside EXEC: blocking commands do not block.
    Transaction,
    /// Re-run for a blocked client whose key became ready.
    Serving,
}

/// Everything a handler may touch. `'a` is the locks' lifetime, `'s` the session's borrow:
/// apart, so one locked view can serve every command of an EXEC in turn.
pub struct Ctx<'a, 's> {
    pub server: &'a Server,
    pub session: &'s mut Session,
    pub ks: &'s mut Locked<'a>,
    pub command: &'a Command,
    pub mode: Mode,
    /// Replaces the command in the propagation log (EXPIRE as PEXPIREAT, ...). An empty list
    /// propagates nothing.
    rewrite: Option<Vec<Vec<Bytes>>>,
    /// Propagate even though nothing changed (Redis's `forceCommandPropagation`).
    forced: bool,
    /// Whether anything consumes the propagation log, read once as the command starts, so a
    /// log that gains a consumer meanwhile sees all of this command's effects or none.
    propagating: bool,
    pub action: Option<Action>,
    /// How many of `ks.events` were raised before the reply was written (see `reply_written`).
    reply_at: Option<usize>,
}

impl<'a, 's> Ctx<'a, 's> {
    /// The selected database.
    pub fn db(&self) -> usize {
        self.session.db
    }

    /// The command's time snapshot, unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.ks.now_ms
    }

    /// Whether this command's effects go to the propagation log (an AOF or a replica reads
    /// it): a rewrite only the log would read need not be built when not.
    pub fn propagating(&self) -> bool {
        self.propagating
    }

    /// Propagate `args` instead of the command as received. Call again to add more.
    pub fn propagate(&mut self, args: Vec<Bytes>) {
        self.rewrite.get_or_insert_with(Vec::new).push(args);
    }

    /// Redis's checkAlreadyExpired: an absolute expiry time that has passed deletes the key at
    /// once, except when the AOF loader (or a primary) replays it: then the TTL is set and
    /// the key expires later, exactly as it did the first time.
    pub fn already_expired(&self, when_ms: i64) -> bool {
        when_ms <= self.now_ms() as i64
            && !self.session.obey
            && !self
                .server
                .keyspace
                .loading
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a blocking command may block now (not inside EXEC).
    pub fn may_block(&self) -> bool {
        self.mode != Mode::Transaction
    }

    /// Propagate the command even if it changed nothing (FLUSHDB on an empty database).
    pub fn force_propagate(&mut self) {
        self.forced = true;
    }

    /// Marks where Redis writes this command's reply: keyspace events raised after this call
    /// reach a client listening to its own keyspace after the reply, as Redis's HSET, LPUSH or
    /// EXPIRE reply first and notify after.
    pub fn reply_written(&mut self) {
        self.reply_at = Some(self.ks.events.len());
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
    dispatch_resolved(server, session, args, None)
}

/// [`dispatch`] of a request whose command `run_command` already resolved (`resolved`).
pub fn dispatch_resolved(
    server: &Server,
    session: &mut Session,
    args: Vec<Bytes>,
    resolved: Option<&'static Command>,
) -> (Reply, Option<Action>) {
    debug_assert!(!args.is_empty());
    // Callers other than the connection (tests) do not publish deferred events themselves.
    crate::server::pubsub::publish_deferred(server, session);
    let command = match resolved.map(Ok).unwrap_or_else(|| resolve(&args)) {
        Ok(command) => command,
        Err((error, command)) => return reject(server, session, &args, error, command),
    };
    session.handle.note_command(command.id);
    if server.requires_auth() && !session.authenticated && !command.has(flags::NO_AUTH) {
        let error = Error::from(crate::error::NOAUTH);
        return reject(server, session, &args, error, Some(command));
    }
    if server.loading.is_active() && !session.obey && !command.has(flags::LOADING) {
        let error = Error::from("LOADING Redis is loading the dataset in memory");
        return reject(server, session, &args, error, Some(command));
    }
    // Redis's processCommand: over `maxmemory`, evict first; refuse what may grow memory if
    // that was not enough.
    if !session.obey {
        if let Err(oom) = crate::tier::evict::enforce(server, command.has(flags::DENYOOM)) {
            return reject(server, session, &args, Error::from(oom), Some(command));
        }
    } else {
        // Loading an AOF larger than memory spills as it goes (and never evicts or refuses).
        crate::tier::spill::relieve_if_over(server);
    }
    // Redis's processCommand: after a disk error a primary refuses writes, and PING, until
    // persistence works again; EXEC counts as a write when it holds one.
    let exec_writes = command.fullname == "exec"
        && (session.multi.as_ref())
            .is_some_and(|multi| multi.queued.iter().any(|(c, _)| c.is_write()));
    if command.is_write() || command.fullname == "ping" || exec_writes {
        if let Some(refusal) = crate::server::persistence::write_refusal(server) {
            let error = Error::Text(refusal.into());
            return reject(server, session, &args, error, Some(command));
        }
    }
    if !session.subscriptions.is_empty()
        && !session.resp3
        && !super::pubsub::allowed_while_subscribed(command)
    {
        let error = super::pubsub::not_allowed_while_subscribed(command);
        return reject(server, session, &args, error, Some(command));
    }
    if session.multi.is_some() {
        if !controls_transaction(command) {
            return queue(server, session, command, args);
        }
        if command.fullname == "exec" {
            feed_monitors(server, session, command, &args);
            return exec_transaction(server, session);
        }
    }
    feed_monitors(server, session, command, &args);
    run(server, session, command, &args)
}

fn feed_monitors(server: &Server, session: &Session, command: &Command, args: &[Bytes]) {
    if server.monitors.active() && !command.has(flags::SKIP_MONITOR) && !command.has(flags::ADMIN) {
        server.monitors.feed(server, session, args);
    }
}

/// Commands that act on the transaction itself instead of being queued inside MULTI.
fn controls_transaction(command: &Command) -> bool {
    matches!(
        command.fullname.as_str(),
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Refuses a command before it runs. Inside MULTI the transaction is flagged, and a refused
/// EXEC discards it with the reason, as Redis's rejectCommand/execCommandAbort.
fn reject(
    server: &Server,
    session: &mut Session,
    args: &[Bytes],
    error: Error,
    command: Option<&'static Command>,
) -> (Reply, Option<Action>) {
    server.stats.record_error(&error, command);
    // Also outside MULTI, as Redis's rejectCommand does for any refused EXEC.
    if args[0].eq_ignore_ascii_case(b"exec") {
        session.multi = None;
        super::transactions::unwatch_all(server, session);
        let text = error.text();
        let reason = text.strip_prefix("ERR ").unwrap_or(&text);
        let abort = format!("EXECABORT Transaction discarded because of: {reason}");
        return (Reply::Error(abort), None);
    }
    flag_transaction(session);
    (error.into_reply(), None)
}

/// A refusal while queueing makes EXEC answer EXECABORT (Redis's flagTransaction).
fn flag_transaction(session: &mut Session) {
    if let Some(multi) = session.multi.as_mut() {
        multi.failed = true;
    }
}

/// Queues a command inside MULTI.
fn queue(
    server: &Server,
    session: &mut Session,
    command: &'static Command,
    args: Vec<Bytes>,
) -> (Reply, Option<Action>) {
    let refuse = |session: &mut Session, error: Error| {
        server.stats.record_error(&error, Some(command));
        flag_transaction(session);
        (error.into_reply(), None)
    };
    if command.has(flags::NO_MULTI) {
        return refuse(session, super::transactions::not_allowed_in_multi());
    }
    let bytes: usize = args.iter().map(|arg| arg.len()).sum();
    let limit = crate::config_int!(server.config, "client-query-buffer-limit").max(0) as usize;
    let Some(multi) = session.multi.as_mut() else {
        debug_assert!(false, "queue outside MULTI");
        return (Reply::Null, None);
    };
    // One client must not grow memory without bound: the queue is capped like a query.
    if multi.queued_bytes + bytes > limit {
        return refuse(
            session,
            Error::from("ERR Transaction queue exceeds client-query-buffer-limit"),
        );
    }
    multi.queued_bytes += bytes;
    multi.queued.push((command, args));
    (Reply::Simple("QUEUED"), None)
}

/// Locks the shards `commands` need (every shard if any needs all), plus `extra` keys.
fn lock_for<'a>(
    server: &'a Server,
    commands: &[(&'static Command, &[Bytes])],
    extra: &[&[u8]],
    now_ms: u64,
) -> Locked<'a> {
    let keyspace = &server.keyspace;
    if commands
        .iter()
        .any(|(command, _)| matches!(command.lock, Lock::All | Lock::AllNaming(_)))
    {
        return keyspace.lock_all(now_ms);
    }
    let mut keys: Vec<&[u8]> = extra.to_vec();
    for (command, args) in commands {
        push_keys_to_lock(command, args, &mut keys);
    }
    keyspace.lock_keys(keys, now_ms)
}

/// EXEC: runs the queue atomically, or aborts if a WATCHed key changed.
fn exec_transaction(server: &Server, session: &mut Session) -> (Reply, Option<Action>) {
    let Some(multi) = session.multi.take() else {
        return (Error::from("ERR EXEC without MULTI").into_reply(), None);
    };
    let exec_command = table().get(b"exec");
    if multi.failed {
        super::transactions::unwatch_all(server, session);
        let error = Error::from(super::transactions::EXECABORT);
        server.stats.record_error(&error, exec_command);
        return (error.into_reply(), None);
    }
    let started = Instant::now();
    let now_ms = server.clock.now_ms();
    let watched = std::mem::take(&mut session.watched);
    let plan: Vec<(&'static Command, &[Bytes])> = multi
        .queued
        .iter()
        .map(|(command, args)| (*command, &args[..]))
        .collect();
    let watched_keys: Vec<&[u8]> = watched.iter().map(|watched| &watched.key[..]).collect();
    let mut ks = lock_for(server, &plan, &watched_keys, now_ms);
    if has_cold_keys(server) {
        // The queued commands' cold keys come back with the locks released; one that cannot
        // be read fails its own command inside the transaction (the locked fallback).
        let positions: Vec<(&[Bytes], Vec<usize>)> = plan
            .iter()
            .filter(|(command, _)| !METADATA_ONLY.contains(&command.fullname.as_str()))
            .map(|(command, args)| (*args, read_key_positions(command, args)))
            .collect();
        let keys: Vec<&[u8]> = positions
            .iter()
            .flat_map(|(args, at)| at.iter().filter_map(|&i| args.get(i)).map(|k| &k[..]))
            .collect();
        let relock = || lock_for(server, &plan, &watched_keys, now_ms);
        let mut prefetched = Prefetched::default();
        for (command, args) in &plan {
            let db = session.db;
            ks = prefetch_sort_patterns(server, ks, db, command, args, &mut prefetched, relock)
                .unwrap_or_else(|_| relock());
        }
        ks = warm_keys(server, ks, session.db, &keys, false, relock).unwrap_or_else(|_| relock());
        ks.set_prefetched(prefetched);
    }
    let broken = super::transactions::watches_broken(&mut ks, &watched);
    super::transactions::release_watches(&mut ks, &watched);
    if broken {
        drop(ks);
        if let Some(exec_command) = exec_command {
            server.stats.record_call(exec_command, 0, false);
        }
        return (Reply::NullArray, None);
    }
    let mut replies = Vec::with_capacity(multi.queued.len());
    let mut effects = Vec::new();
    let mut action = None;
    for (command, args) in &multi.queued {
        feed_monitors(server, session, command, args);
        let started_us = server.clock.now_us();
        let outcome = invoke(
            server,
            session,
            command,
            args,
            &mut ks,
            Mode::Transaction,
            started_us,
        );
        effects.extend(outcome.effects);
        if matches!(outcome.action, Some(Action::Shutdown { .. })) {
            action = outcome.action;
        }
        replies.push(outcome.reply);
    }
    if let Some(offset) = publish(server, wrap_in_transaction(effects)) {
        session.write_offset = offset;
    }
    let ready = std::mem::take(&mut ks.ready);
    drop(ks);
    if !ready.is_empty() {
        crate::server::blocking::serve_ready(server, ready);
    }
    if let Some(exec_command) = exec_command {
        server
            .stats
            .record_call(exec_command, started.elapsed().as_micros() as u64, false);
    }
    (Reply::Array(replies), action)
}

/// Effects reach the AOF and replicas as one MULTI/EXEC block when a command (or an EXEC)
/// produced more than one, as Redis 7.0 propagates them: SPOP with a count's SREMs, a lazily
/// expired key's DEL before the write that found it, a transaction's commands.
fn wrap_in_transaction(mut effects: Vec<(usize, Vec<Bytes>)>) -> Vec<(usize, Vec<Bytes>)> {
    if effects.len() <= 1 {
        return effects;
    }
    let db = effects[0].0;
    effects.insert(0, (db, vec![Bytes::from_static(b"MULTI")]));
    let last_db = effects.last().map_or(db, |(db, _)| *db);
    effects.push((last_db, vec![Bytes::from_static(b"EXEC")]));
    effects
}

thread_local! {
    /// The command this thread looked up last. Pipelines, and most workloads, repeat one
    /// name, and comparing it costs less than lower-casing and hashing it (the look-up was 7%
    /// of PUBLISH's server CPU at -P 16).
    static LAST_LOOKED_UP: std::cell::Cell<Option<&'static Command>> =
        const { std::cell::Cell::new(None) };
}

/// `table().get(name)`, remembering the last answer.
fn look_up(name: &[u8]) -> Option<&'static Command> {
    if let Some(command) = LAST_LOOKED_UP.get() {
        // A top-level command's full name is its name.
        if command.fullname.as_bytes().eq_ignore_ascii_case(name) {
            return Some(command);
        }
    }
    let command = table().get(name)?;
    LAST_LOOKED_UP.set(Some(command));
    Some(command)
}

/// Finds the command or subcommand and checks its arity, with Redis's error texts. On error,
/// also the command that refused (for its `rejected_calls`), when one was found.
fn resolve(args: &[Bytes]) -> Result<&'static Command, (Error, Option<&'static Command>)> {
    let Some(command) = look_up(&args[0]) else {
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
    // One clock read is both the command's time snapshot and the start of its duration, as
    // Redis 7.0's call() uses its cached ustime() (a wall-clock duration, like Redis's). The
    // duration (commandstats, slowlog) so includes waiting for the shard locks and reading
    // cold values back: time the client waited on this command.
    let now_us = session.start_us(&*server.clock);
    let now_ms = now_us / 1000;
    let mut ks = lock_command(server, command, args, now_ms);
    if needs_warming(server, command) {
        ks = match warm(server, ks, session.db, command, args, now_ms) {
            Ok(ks) => ks,
            Err(error) => {
                server.stats.record_call(command, 0, true);
                server.stats.record_error(&error, None);
                return (error.into_reply(), None);
            }
        };
    }
    let outcome = invoke_published(server, session, command, args, &mut ks, now_us);
    let ready = std::mem::take(&mut ks.ready);
    drop(ks);
    if !ready.is_empty() {
        crate::server::blocking::serve_ready(server, ready);
    }
    (outcome.reply, outcome.action)
}

/// Locks the shards one command needs.
fn lock_command<'a>(
    server: &'a Server,
    command: &'static Command,
    args: &[Bytes],
    now_ms: u64,
) -> Locked<'a> {
    let keyspace = &server.keyspace;
    match lock_positions(command, args) {
        Some(positions) => keyspace.lock_keys(positions.map(|at| &args[at][..]), now_ms),
        None if matches!(command.lock, Lock::None) => keyspace.lock_none(now_ms),
        None => keyspace.lock_all(now_ms),
    }
}

/// The keys whose shards a command locks, appended to `keys` (nothing for a command that
/// locks all shards or none).
fn push_keys_to_lock<'x>(command: &Command, args: &'x [Bytes], keys: &mut impl Extend<&'x [u8]>) {
    if let Some(positions) = lock_positions(command, args) {
        keys.extend(positions.map(|at| &args[at][..]));
    }
}

/// Where those keys are among `args`, without collecting them (`run_command` only counts).
fn lock_positions(command: &Command, args: &[Bytes]) -> Option<LockPositions> {
    match command.lock {
        Lock::None | Lock::All | Lock::AllNaming(_) => None,
        Lock::Keys => Some(LockPositions::Range(range_iter(
            command.first_key,
            command.last_key,
            command.key_step,
            args.len(),
        ))),
        Lock::Custom(find) => Some(LockPositions::Found {
            positions: find(args).into_iter(),
            argc: args.len(),
        }),
    }
}

/// The positions `lock_positions` yields: a command's key range (always within its
/// arguments), or what its key finder computed, kept to the arguments there are.
enum LockPositions {
    Range(KeyRange),
    Found {
        positions: std::vec::IntoIter<usize>,
        argc: usize,
    },
}

impl Iterator for LockPositions {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            LockPositions::Range(range) => range.next(),
            LockPositions::Found { positions, argc } => positions.find(|&at| at < *argc),
        }
    }
}

/// Requests of a pipeline run on one hold of the locks at most (`dispatch_run`): a long
/// pipeline to one key must not keep the other connections out of its shard for long.
pub const RUN_REQUESTS_MAX: usize = 16;
/// Microseconds a run may hold its locks while another thread waits for one of them.
const RUN_CONTENDED_HOLD_US: u64 = 2;

/// The command `args` names if it may join a run of pipelined requests (`dispatch_run`): one
/// naming keys that `dispatch` would run straight away, while nothing needs each reply
/// before the next command runs (keyspace notifications, which Redis raises around each
/// reply). One-key commands join too: with 256 shards another thread rarely wants a shard a
/// run holds, and a run prefetches its keys' entries ahead of the commands (at -P 16 with
/// runs of one-key commands, server CPU per request: LPUSH 1.72 -> 1.27 us, LPOP 1.80 ->
/// 1.30, INCR 1.78 -> 1.45, SADD 1.90 -> 1.65; with 32 shards and no prefetch, runs had made
/// SADD and HSET a third slower). Commands without keys run one by one.
pub fn run_command(server: &Server, session: &Session, args: &[Bytes]) -> Admission {
    let Ok(command) = resolve(args) else {
        return Admission::Alone(None);
    };
    let notifying = server
        .keyspace
        .notify_flags
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0;
    let names_keys =
        lock_positions(command, args).is_some_and(|mut positions| positions.next().is_some());
    if !notifying && names_keys && runs_straight_away(server, session, command) {
        Admission::Run(command)
    } else {
        Admission::Alone(Some(command))
    }
}

/// What `run_command` decided for a request.
pub enum Admission {
    /// It joins a run, as this command.
    Run(&'static Command),
    /// It goes through `dispatch_resolved` on its own: the command it names if it was
    /// found with the right arity (`dispatch` need not look it up again), None if not
    /// (`dispatch` finds the error to reply).
    Alone(Option<&'static Command>),
}

/// Runs pipelined requests that `run_command` admitted (each with its command) on one hold
/// of the shard locks of all their keys, and returns their replies in order. It may stop
/// early: after a command that readied blocked clients (served, with the locks released,
/// before anything else runs, as Redis serves them) or asked the connection for something
/// (an `Action`); the caller dispatches the rest again.
///
/// Why: a command naming many keys locks many shards, and pipelined from many clients
/// (redis-benchmark's MSET of 10 keys) kept two runtime threads taking overlapping sets of
/// shard locks, once per command, the one that lost sleeping in the kernel: MSET at `-P 16`
/// used 19.6 µs of CPU per request (Redis 9.6-10.9) and 11.3-11.6 µs with runs, at twice
/// the throughput. Only the commands run under the hold: parsing before it and encoding
/// replies after it stay parallel.
///
/// Each command keeps its own time snapshot, effects, statistics and slowlog entry.
pub fn dispatch_run(
    server: &Server,
    session: &mut Session,
    requests: &[(&'static Command, Vec<Bytes>)],
) -> Vec<(Reply, Option<Action>)> {
    debug_assert!(requests.len() <= RUN_REQUESTS_MAX);
    let mut replies = Vec::with_capacity(requests.len());
    // Every command's keys, and where each command's keys start (and the last ones end).
    let mut keys: SmallVec<[&[u8]; 4 * RUN_REQUESTS_MAX]> = SmallVec::new();
    let mut bounds: SmallVec<[usize; RUN_REQUESTS_MAX + 1]> = smallvec::smallvec![0];
    for (command, args) in requests {
        push_keys_to_lock(command, args, &mut keys);
        bounds.push(keys.len());
    }
    let held_since_us = session.start_us(&*server.clock);
    let mut ks = server
        .keyspace
        .lock_keys(keys.iter().copied(), held_since_us / 1000);
    let db = session.db;
    let mut prefetch = RunPrefetch {
        keys: &keys,
        bounds: &bounds,
        located: SmallVec::new(),
        located_of: SmallVec::new(),
        repeats: SmallVec::new(),
    };
    prefetch.slots(&ks, db, 0);
    prefetch.slots(&ks, db, 1);
    prefetch.nodes(&ks, db, 0);
    for (index, (command, args)) in requests.iter().enumerate() {
        let now_us = session.start_us(&*server.clock);
        // Another thread waits for a shard of this run (many clients on one key): after a
        // short hold the run gives way, and the rest of it goes again. A run of sixteen
        // sorted-set inserts held the lock so long that the waiter left its core idle (ZADD
        // and HSET on one key at -P 16: a tenth slower with whole runs).
        if index > 0
            && now_us.saturating_sub(held_since_us) >= RUN_CONTENDED_HOLD_US
            && ks.contended()
        {
            return replies;
        }
        session.handle.note_command(command.id);
        ks.next_command(now_us / 1000);
        prefetch.slots(&ks, db, index + 2);
        prefetch.nodes(&ks, db, index + 1);
        ks.set_hints(prefetch.located(index));
        let outcome = invoke_published(server, session, command, args, &mut ks, now_us);
        ks.clear_hints();
        let ready = std::mem::take(&mut ks.ready);
        let stop = !ready.is_empty() || outcome.action.is_some();
        replies.push((outcome.reply, outcome.action));
        if stop {
            drop(ks);
            if !ready.is_empty() {
                crate::server::blocking::serve_ready(server, ready);
            }
            return replies;
        }
    }
    replies
}

/// A run's prefetching (`Locked::prefetch_slots`): each command's keys are located (shard
/// guard and table hash) once, when their first stage is issued, and no earlier, so a run
/// that gives way after a few commands has not paid for the rest. Commands are located in
/// order, one after another.
struct RunPrefetch<'r> {
    /// Every key of the run; command `i`'s are `keys[bounds[i]..bounds[i + 1]]`.
    keys: &'r [&'r [u8]],
    bounds: &'r [usize],
    located: SmallVec<[Located; 4 * RUN_REQUESTS_MAX]>,
    /// Command `i`'s keys in `located`.
    located_of: SmallVec<[std::ops::Range<usize>; RUN_REQUESTS_MAX]>,
    /// Whether command `i` names the same keys as the one before it (located and fetched
    /// already).
    repeats: SmallVec<[bool; RUN_REQUESTS_MAX]>,
}

impl RunPrefetch<'_> {
    /// Locates command `index`'s keys and starts fetching their bucket slots.
    fn slots(&mut self, ks: &Locked<'_>, db: usize, index: usize) {
        let (Some(&start), Some(&end)) = (self.bounds.get(index), self.bounds.get(index + 1))
        else {
            return;
        };
        debug_assert_eq!(
            self.located_of.len(),
            index,
            "commands are located in order"
        );
        // A run of commands on one key (LPUSH, SADD, HSET on one collection) locates it
        // once: each command's hints still name its own argument's slice.
        let keys = &self.keys[start..end];
        let first = self.located.len();
        if let Some(previous) = index.checked_sub(1) {
            let range = self.located_of[previous].clone();
            // Every key of the command before was located (no gaps), so they pair up.
            if self.keys[self.bounds[previous]..start] == *keys && range.len() == keys.len() {
                for (at, key) in range.zip(keys) {
                    let mut located = self.located[at];
                    located.rebind(key);
                    self.located.push(located);
                }
                self.located_of.push(first..self.located.len());
                self.repeats.push(true);
                return;
            }
        }
        self.located
            .extend(keys.iter().filter_map(|key| ks.locate(db, key)));
        self.located_of.push(first..self.located.len());
        self.repeats.push(false);
        ks.prefetch_slots(db, &self.located[first..]);
    }

    /// Starts fetching the nodes of command `index`'s keys (located by `slots` before), unless
    /// the command before it named the same keys.
    fn nodes(&self, ks: &Locked<'_>, db: usize, index: usize) {
        if let (Some(range), Some(false)) = (self.located_of.get(index), self.repeats.get(index)) {
            ks.prefetch_nodes(db, &self.located[range.clone()]);
        }
    }

    /// Command `index`'s keys, located (by `slots`, which a run calls ahead of each command).
    fn located(&self, index: usize) -> &[Located] {
        self.located_of
            .get(index)
            .map_or(&[], |range| &self.located[range.clone()])
    }
}

/// Whether `dispatch` would run `command` straight away, with no check refusing it and no
/// other work first, so a run may take it (`run_command`). Anything that may evict or spill
/// (which locks shards), read the disk tier, feed a monitor, queue in MULTI or refuse the
/// command goes through `dispatch`.
fn runs_straight_away(server: &Server, session: &Session, command: &Command) -> bool {
    command.handler.is_some()
        && !session.obey
        && session.multi.is_none()
        && session.subscriptions.is_empty()
        && (session.authenticated || !server.requires_auth())
        && !server.loading.is_active()
        && !server.monitors.active()
        && !has_cold_keys(server)
        && !crate::tier::spill::over_limit(server)
        && !(command.is_write() && crate::server::persistence::write_refusal(server).is_some())
}

/// Commands that look only at keys' metadata: a cold value stays on disk for them.
const METADATA_ONLY: &[&str] = &[
    "del",
    "unlink",
    "exists",
    "type",
    "ttl",
    "pttl",
    "expiretime",
    "pexpiretime",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "persist",
    "touch",
    "object|freq",
    "object|idletime",
    "memory|usage",
];

/// Whether any value is on disk now: one atomic load.
fn has_cold_keys(server: &Server) -> bool {
    server
        .keyspace
        .tier
        .stats
        .cold_keys
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
}

/// The positions of the keys whose old value `command` may read: every key but those its key
/// specs say it only overwrites or deletes (SET without GET, MSET, RENAME's and COPY's
/// destinations, RESTORE, the STORE commands' destinations). Those are not brought back
/// from the disk tier: a record that cannot be read must not stop a write that replaces it,
/// and reading a value only to drop it is wasted I/O. A key named at a read position too
/// (BITOP's destination among its sources) is still read.
fn read_key_positions(command: &Command, args: &[Bytes]) -> Vec<usize> {
    let mut positions = command.key_positions(args);
    let unread = command.unread_key_positions(args);
    if !unread.is_empty() {
        positions.retain(|position| !unread.contains(position));
    }
    positions
}

/// Reads attempts per command before leaving a cold key to the locked fallback.
const WARM_ATTEMPTS: usize = 3;

/// Brings the command's cold keys back into RAM with the locks released: no disk read happens
/// while a shard is held. A record that fails its checks fails the command, before it ran,
/// with the reason. Keys the command only overwrites or deletes stay cold
/// (`read_key_positions`): the command drops their records without reading them.
fn warm<'a>(
    server: &'a Server,
    ks: Locked<'a>,
    db: usize,
    command: &'static Command,
    args: &[Bytes],
    now_ms: u64,
) -> Result<Locked<'a>, Error> {
    if !needs_warming(server, command) {
        return Ok(ks);
    }
    let positions = read_key_positions(command, args);
    let keys: SmallVec<[&[u8]; 4]> = positions
        .iter()
        .filter_map(|&i| args.get(i))
        .map(|k| &k[..])
        .collect();
    // A read-only command borrows cold values unless the policy brings them back.
    let lend = command.has(super::table::flags::READONLY);
    let relock = || lock_command(server, command, args, now_ms);
    // SORT's pattern keys first: what the named keys lend lives only while the locks are
    // held, and reading ahead releases them.
    let mut prefetched = Prefetched::default();
    let ks = prefetch_sort_patterns(server, ks, db, command, args, &mut prefetched, relock)?;
    let mut ks = warm_keys(server, ks, db, &keys, lend, relock)?;
    ks.set_prefetched(prefetched);
    Ok(ks)
}

/// Whether `warm` has anything to do for `command`. Nothing cold (the common case): no key
/// positions computed, nothing allocated, and the caller's view stays where it is (moving a
/// `Locked` in and out of `warm` was a measurable copy per command). SORT locks the whole
/// keyspace (its patterns can name any key), yet names its source.
fn needs_warming(server: &Server, command: &Command) -> bool {
    has_cold_keys(server)
        && (is_sort(command) || matches!(command.lock, Lock::Keys | Lock::Custom(_)))
        && !METADATA_ONLY.contains(&command.fullname.as_str())
}

fn is_sort(command: &Command) -> bool {
    matches!(command.fullname.as_str(), "sort" | "sort_ro")
}

/// Elements of a SORT's source whose pattern keys are looked at per hold of the locks.
const SORT_PREFETCH_ELEMENTS: usize = 4096;
/// What a SORT may hold read ahead (keys, fields, parts). Past it, the rest of its cold
/// pattern keys are read with the keyspace locked: a bound for a sort far larger than its
/// reply (BY over millions of cold keys with a small LIMIT) rather than a common case.
const SORT_PREFETCH_BYTES_MAX: usize = 256 << 20;

/// The hash fields SORT's patterns take from one key (None: the key's string itself).
type PatternFields<'p> = SmallVec<[Option<&'p [u8]>; 1]>;

/// Reads ahead, with the locks released, the cold keys a SORT's BY and GET patterns name
/// for the elements of its source as they are now (which its arguments do not name), keeping
/// only the part each pattern takes (`sort::part`) in `prefetched`. A cold source is read for
/// its elements here too. A key that changes before the sort runs is no longer cold at the
/// pointer read, and the sort reads it under the lock (the fallback). No-op for other
/// commands.
fn prefetch_sort_patterns<'a>(
    server: &'a Server,
    mut ks: Locked<'a>,
    db: usize,
    command: &Command,
    args: &[Bytes],
    prefetched: &mut Prefetched,
    relock: impl Fn() -> Locked<'a>,
) -> Result<Locked<'a>, Error> {
    if !is_sort(command) || args.len() <= 2 {
        return Ok(ks);
    }
    let readonly = command.has(super::table::flags::READONLY);
    let Some(patterns) = super::sort::patterns(args, readonly) else {
        return Ok(ks);
    };
    let tier = &server.keyspace.tier;
    let source = match ks.peek_meta(db, &args[1]) {
        None => return Ok(ks),
        Some(entry) => match &entry.value {
            Value::Cold(cold) => Err(*cold),
            value => Ok(super::sort::elements(value)),
        },
    };
    let elements = match source {
        Ok(elements) => elements,
        Err(cold) => {
            drop(ks);
            let read = tier.read(cold);
            ks = relock();
            match read {
                Ok(value) => super::sort::elements(&value),
                // Warming the source, next, reports a bad record; a compacted one is read
                // again there.
                Err(_) => return Ok(ks),
            }
        }
    };
    if patterns.is_empty() || elements.is_empty() {
        return Ok(ks);
    }
    for chunk in elements.chunks(SORT_PREFETCH_ELEMENTS) {
        if prefetched.bytes() > SORT_PREFETCH_BYTES_MAX {
            break;
        }
        let mut fields: HashMap<Vec<u8>, PatternFields<'_>> = HashMap::new();
        for element in chunk {
            for pattern in &patterns {
                if let Some((key, field)) = super::sort::target(pattern, element) {
                    let wanted = fields.entry(key).or_default();
                    if !wanted.contains(&field) {
                        wanted.push(field);
                    }
                }
            }
        }
        let cold: Vec<(Vec<u8>, crate::tier::ColdRef)> = ks
            .cold_refs(db, fields.keys().map(|key| &key[..]))
            .into_iter()
            .map(|(key, cold)| (key.to_vec(), cold))
            .collect();
        if cold.is_empty() {
            continue;
        }
        drop(ks);
        for (key, pointer) in cold {
            let value = match tier.read(pointer) {
                Ok(value) => value,
                // Compacted meanwhile: the sort reads it under the lock.
                Err(crate::tier::store::TierError::Gone) => continue,
                Err(err) => return Err(tier_read_error(&key, err)),
            };
            for &field in fields.get(&key).into_iter().flatten() {
                let part = super::sort::part(&value, field);
                prefetched.insert(db, &key, field, pointer, part);
            }
        }
        ks = relock();
    }
    Ok(ks)
}

/// Reads the cold values among `keys` with the locks released, relocks with `relock`, and
/// installs each value whose entry still holds the pointer it was read from (records are
/// never reused: an equal pointer means no change meanwhile); a key that changed is looked at
/// again, a few times at most (after that the locked fallback reads it). With `lend` (a
/// read-only command) a value stays in RAM only if `spill::keep_read_value` says so, and is
/// otherwise lent for the command's run.
fn warm_keys<'a>(
    server: &'a Server,
    mut ks: Locked<'a>,
    db: usize,
    keys: &[&[u8]],
    lend: bool,
    relock: impl Fn() -> Locked<'a>,
) -> Result<Locked<'a>, Error> {
    let tier = &server.keyspace.tier;
    let mut cold = ks.cold_refs(db, keys.iter().copied());
    for _ in 0..WARM_ATTEMPTS {
        if cold.is_empty() {
            return Ok(ks);
        }
        drop(ks);
        let read: SmallVec<[_; 2]> = cold
            .into_iter()
            .map(|(key, pointer)| (key, pointer, tier.read(pointer)))
            .collect();
        ks = relock();
        for (key, pointer, value) in read {
            match value {
                Ok(value) => {
                    ks.install_warm(db, key, pointer, value, |entry, value| {
                        !lend || crate::tier::spill::keep_read_value(server, entry, value)
                    });
                }
                // Compacted meanwhile: the entry holds a newer pointer; the next round reads it.
                Err(crate::tier::store::TierError::Gone) => {}
                Err(err) => return Err(tier_read_error(key, err)),
            }
        }
        cold = ks.cold_refs(db, keys.iter().copied());
        if !cold.is_empty() {
            // A key changed meanwhile: the next round reads it, and what this one lent (the
            // locks are released in between, and lent values only live under them).
            drop(ks.return_lent());
            cold = ks.cold_refs(db, keys.iter().copied());
        }
    }
    Ok(ks)
}

/// The error a command gets when one of its cold values cannot be read.
fn tier_read_error(key: &[u8], err: crate::tier::store::TierError) -> Error {
    Error::err(format!(
        "can't read the value of '{}' from the disk tier: {err}",
        String::from_utf8_lossy(key)
    ))
}

/// Re-runs a blocked client's command for it; returns the reply, whether it must keep
/// waiting, and the keys its run readied in turn (BLMOVE's destination).
pub fn serve_waiter(
    server: &Server,
    waiter: &crate::server::blocking::Waiter,
) -> (Reply, bool, Vec<(usize, crate::types::CompactBytes)>) {
    let Ok(command) = resolve(&waiter.args).map_err(|_| ()) else {
        return (Reply::NullArray, false, Vec::new());
    };
    let mut session = Session::new(waiter.client.clone(), true);
    session.db = waiter.db;
    session.resp3 = waiter.resp3;
    let now_us = server.clock.now_us();
    let now_ms = now_us / 1000;
    let ks = lock_for(server, &[(command, &waiter.args[..])], &[], now_ms);
    // A key written for the waiter may have been spilled since (never read: the first to go):
    // read with the locks released, as for any command. Another client may run in between;
    // it then simply came first, and the waiter finds what is left.
    let mut ks = match warm(server, ks, waiter.db, command, &waiter.args, now_ms) {
        Ok(ks) => ks,
        Err(error) => return (error.into_reply(), false, Vec::new()),
    };
    let mut outcome = invoke(
        server,
        &mut session,
        command,
        &waiter.args,
        &mut ks,
        Mode::Serving,
        now_us,
    );
    let still_blocked = matches!(outcome.action, Some(Action::Block { .. }));
    publish(
        server,
        wrap_in_transaction(std::mem::take(&mut outcome.effects)),
    );
    let ready = std::mem::take(&mut ks.ready);
    drop(ks);
    (outcome.reply, still_blocked, ready)
}

/// What running one command on a locked view produced.
struct Outcome {
    reply: Reply,
    action: Option<Action>,
    effects: Vec<(usize, Vec<Bytes>)>,
}

/// Runs a command's handler on an already locked view: statistics, slowlog, effects. Its
/// duration runs from `started_us` (unix microseconds, read by the caller). The view stays
/// the caller's and the handler's `Ctx` borrows it: moving a `Locked` (a few hundred bytes)
/// into the `Ctx` and back out, per command, was 8% of PUBLISH's CPU at -P 16 in `memcpy`.
fn invoke<'a>(
    server: &'a Server,
    session: &mut Session,
    command: &'static Command,
    args: &[Bytes],
    ks: &mut Locked<'a>,
    mode: Mode,
    started_us: u64,
) -> Outcome {
    let Some(handler) = command.handler else {
        return Outcome {
            reply: Error::Arity(command.fullname.clone()).into_reply(),
            action: None,
            effects: Vec::new(),
        };
    };
    let now_ms = ks.now_ms;
    let db = session.db;
    let dirty_before = ks.dirty;
    // A read command never changes an entry: a snapshot need not copy what it looks at.
    ks.writing = command.is_write();
    let mut ctx = Ctx {
        server,
        session,
        ks,
        command,
        mode,
        rewrite: None,
        forced: false,
        propagating: server.log.is_active(),
        action: None,
        reply_at: None,
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&mut ctx, args)));
    let result = match outcome {
        Ok(result) => result,
        Err(panic) if panic.is::<crate::tier::memory::ReadFault>() => {
            let fault = panic.downcast_ref::<crate::tier::memory::ReadFault>();
            Err(Error::err(
                fault.map(|fault| fault.0.clone()).unwrap_or_default(),
            ))
        }
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
    // Keyspace notifications reach subscribers before the reply, and while the keys are
    // still locked, so they arrive in the order the keyspace changed.
    if !ctx.ks.events.is_empty() {
        let split = ctx.reply_at.unwrap_or(usize::MAX).min(ctx.ks.events.len());
        let after = ctx.ks.events.split_off(split);
        server
            .pubsub
            .notify(server, &std::mem::take(&mut ctx.ks.events));
        // Events Redis raises after writing the reply: the connection publishes them once it
        // has encoded the reply. Inside EXEC or for a served waiter there is no such moment.
        match mode {
            Mode::Normal => ctx.session.deferred_events.extend(after),
            Mode::Transaction | Mode::Serving => server.pubsub.notify(server, &after),
        }
    }
    let effects = collect_effects(server, &mut ctx, db, args, dirty_before);
    let elapsed_us = ctx
        .session
        .end_us(&*server.clock)
        .saturating_sub(started_us);
    server
        .slowlog
        .record(server, ctx.session, args, now_ms, elapsed_us);
    let Ctx { action, .. } = ctx;
    server
        .stats
        .record_call(command, elapsed_us, result.is_err());
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => {
            // Already counted as a failed call; `rejected` is for refusals before running.
            server.stats.record_error(&error, None);
            error.into_reply()
        }
    };
    Outcome {
        reply,
        action,
        effects,
    }
}

/// [`invoke`] for a client's own command, its effects appended to the propagation log while
/// the shards are still locked (so the log's order is the keyspace's), and the client's
/// write offset moved past them.
fn invoke_published<'a>(
    server: &'a Server,
    session: &mut Session,
    command: &'static Command,
    args: &[Bytes],
    ks: &mut Locked<'a>,
    started_us: u64,
) -> Outcome {
    let mut outcome = invoke(server, session, command, args, ks, Mode::Normal, started_us);
    if let Some(offset) = publish(
        server,
        wrap_in_transaction(std::mem::take(&mut outcome.effects)),
    ) {
        session.write_offset = offset;
    }
    outcome
}

/// Appends the effects to the propagation log; the log offset after them, if any.
fn publish(server: &Server, effects: Vec<(usize, Vec<Bytes>)>) -> Option<u64> {
    if effects.is_empty() {
        return None;
    }
    Some(server.log.append(&effects))
}

/// The command's effects for the propagation log: lazily expired keys as DEL, then the
/// command (or its rewrite) if it wrote. Empty while nothing consumes the log.
fn collect_effects(
    server: &Server,
    ctx: &mut Ctx<'_, '_>,
    db_at_start: usize,
    args: &[Bytes],
    dirty_before: u64,
) -> Vec<(usize, Vec<Bytes>)> {
    let dirty = ctx.ks.dirty - dirty_before;
    server.stats.add_dirty(dirty);
    // `forced` also covers a read-only command whose change Redis propagates (PFCOUNT
    // writing its cached cardinality back: Redis propagates any command that dirtied).
    let wrote = (ctx.command.is_write() && dirty > 0) || ctx.forced;
    if !ctx.propagating || (ctx.ks.expired.is_empty() && !wrote) {
        ctx.ks.expired.clear();
        return Vec::new();
    }
    let mut effects: Vec<(usize, Vec<Bytes>)> = Vec::new();
    for (db, key) in ctx.ks.expired.drain(..) {
        effects.push((
            db,
            vec![Bytes::from_static(b"DEL"), Bytes::from(key.into_vec())],
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
    effects
}

/// An error's code for INFO errorstats.
pub fn code_of(reply: &Reply) -> Option<&str> {
    match reply {
        Reply::Error(text) => Some(error_code(text)),
        _ => None,
    }
}
