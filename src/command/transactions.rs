//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Queueing and EXEC itself live in the executor (`exec.rs`), because EXEC must lock every
//! shard its queued commands and watched keys touch before running any of them: that is what
//! makes it atomic and isolated from every other client. This file holds the commands'
//! handlers and WATCH's bookkeeping.
//!
//! WATCH records each key's version in its shard's watch table; any write, deletion, expiry,
//! FLUSHDB/FLUSHALL or SWAPDB touching the key bumps it, and EXEC aborts (null reply) when a
//! version moved, or when a key expired since it was watched (Redis 7.0's rule).

use super::exec::Ctx;
use super::table::{Lock, Spec};
use crate::error::{CmdResult, Error};
use crate::protocol::Reply;
use crate::server::{Multi, Server, Session, Watched};
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("multi", multi, Lock::None),
    Spec::new("exec", exec, Lock::None),
    Spec::new("discard", discard, Lock::None),
    Spec::new("watch", watch, Lock::Keys),
    Spec::new("unwatch", unwatch, Lock::None),
];

pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
const NESTED_MULTI: &str = "ERR MULTI calls can not be nested";
const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";

/// `MULTI`: start queueing.
fn multi(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    if ctx.session.multi.is_some() {
        return Err(NESTED_MULTI.into());
    }
    ctx.session.multi = Some(Multi::default());
    Ok(Reply::OK)
}

/// `EXEC` reaches a handler only outside MULTI (the executor runs real EXECs).
fn exec(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Err("ERR EXEC without MULTI".into())
}

/// `DISCARD`: drop the queue and every WATCH.
fn discard(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    if ctx.session.multi.take().is_none() {
        return Err("ERR DISCARD without MULTI".into());
    }
    unwatch_all(ctx.server, ctx.session);
    Ok(Reply::OK)
}

/// `WATCH key [key ...]`: EXEC will abort if any of these keys changes before it.
fn watch(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if ctx.session.multi.is_some() {
        return Err(WATCH_IN_MULTI.into());
    }
    let db = ctx.db();
    for key in &argv[1..] {
        let already = ctx
            .session
            .watched
            .iter()
            .any(|watched| watched.db == db && watched.key == key);
        if already {
            continue;
        }
        let expired_at_watch = ctx.ks.is_logically_expired(db, key);
        let version = ctx.ks.watch(db, key);
        ctx.session.watched.push(Watched {
            db,
            key: key.clone(),
            version,
            expired_at_watch,
        });
    }
    Ok(Reply::OK)
}

/// `UNWATCH`.
fn unwatch(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    unwatch_all(ctx.server, ctx.session);
    Ok(Reply::OK)
}

/// Forgets every key the session watches, locking their shards itself (callers hold none).
pub fn unwatch_all(server: &Server, session: &mut Session) {
    if session.watched.is_empty() {
        return;
    }
    let watched = std::mem::take(&mut session.watched);
    let now_ms = server.clock.now_ms();
    let mut locked = server
        .keyspace
        .lock_keys(watched.iter().map(|watched| &watched.key[..]), now_ms);
    for watched in &watched {
        locked.unwatch(watched.db, &watched.key);
    }
}

/// Whether EXEC must abort: a watched key changed, or expired since WATCH. The caller holds
/// the shards of every watched key.
pub fn watches_broken(ks: &mut crate::keyspace::Locked<'_>, watched: &[Watched]) -> bool {
    watched.iter().any(|watched| {
        ks.watch_version(watched.db, &watched.key) != watched.version
            || (!watched.expired_at_watch && ks.is_logically_expired(watched.db, &watched.key))
    })
}

/// Drops the watcher registrations of `watched` while the caller holds their shards.
pub fn release_watches(ks: &mut crate::keyspace::Locked<'_>, watched: &[Watched]) {
    for watched in watched {
        ks.unwatch(watched.db, &watched.key);
    }
}

/// Refusal of a command inside MULTI that Redis does not queue.
pub fn not_allowed_in_multi() -> Error {
    "ERR Command not allowed inside a transaction".into()
}

#[cfg(test)]
mod tests {
    use crate::testing::TestServer;

    #[test]
    fn another_clients_write_aborts_exec() {
        let test = TestServer::new();
        let mut watcher = test.session();
        let mut writer = test.session();
        assert_eq!(test.run(&mut watcher, "WATCH k"), "+OK\r\n");
        assert_eq!(test.run(&mut writer, "SET k other"), "+OK\r\n");
        test.run(&mut watcher, "MULTI");
        assert_eq!(test.run(&mut watcher, "SET k mine"), "+QUEUED\r\n");
        assert_eq!(test.run(&mut watcher, "EXEC"), "*-1\r\n");
        assert_eq!(test.run(&mut watcher, "GET k"), "$5\r\nother\r\n");
        // The aborted EXEC released the watch: nothing is watched any more.
        assert_eq!(
            test.server
                .keyspace
                .watching
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn writes_to_other_keys_and_reads_do_not_abort() {
        let test = TestServer::new();
        let mut watcher = test.session();
        let mut other = test.session();
        test.run(&mut watcher, "SET k v");
        test.run(&mut watcher, "WATCH k");
        test.run(&mut other, "GET k");
        test.run(&mut other, "SET unrelated 1");
        test.run(&mut watcher, "MULTI");
        test.run(&mut watcher, "INCR counter");
        assert_eq!(test.run(&mut watcher, "EXEC"), "*1\r\n:1\r\n");
    }

    #[test]
    fn expiry_of_a_watched_key_aborts() {
        let test = TestServer::new();
        let mut client = test.session();
        test.run(&mut client, "SET k v PX 100");
        test.run(&mut client, "WATCH k");
        test.advance_ms(200);
        test.run(&mut client, "MULTI");
        test.run(&mut client, "PING");
        assert_eq!(test.run(&mut client, "EXEC"), "*-1\r\n");
    }

    #[test]
    fn effects_propagate_as_one_multi_exec_block() {
        let test = TestServer::new();
        let mut client = test.session();
        test.run(&mut client, "MULTI");
        test.run(&mut client, "SET a 1");
        test.run(&mut client, "INCR a");
        test.run(&mut client, "GET a");
        test.run(&mut client, "EXEC");
        test.run(&mut client, "MULTI");
        test.run(&mut client, "SET b 1");
        test.run(&mut client, "EXEC");
        assert_eq!(
            test.propagated(),
            vec!["SELECT 0", "MULTI", "SET a 1", "INCR a", "EXEC", "SET b 1"]
        );
    }

    #[test]
    fn one_commands_several_effects_are_wrapped_too() {
        let test = TestServer::new();
        let mut client = test.session();
        test.run(&mut client, "SET k v PX 10");
        test.advance_ms(20);
        test.run(&mut client, "SET k v2");
        test.run(&mut client, "SET j v PX 10");
        test.advance_ms(20);
        test.run(&mut client, "GET j");
        let expected_k = format!("SET k v PXAT {}", crate::testing::START_MS + 10);
        let expected_j = format!("SET j v PXAT {}", crate::testing::START_MS + 30);
        assert_eq!(
            test.propagated(),
            vec![
                "SELECT 0",
                expected_k.as_str(),
                "MULTI",
                "DEL k",
                "SET k v2",
                "EXEC",
                expected_j.as_str(),
                "DEL j",
            ]
        );
    }

    #[test]
    fn disconnect_and_reset_forget_watches() {
        let test = TestServer::new();
        let mut client = test.session();
        test.run(&mut client, "WATCH a b c");
        assert_eq!(
            test.server
                .keyspace
                .watching
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        test.run(&mut client, "RESET");
        assert_eq!(
            test.server
                .keyspace
                .watching
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        test.run(&mut client, "WATCH a");
        super::unwatch_all(&test.server, &mut client);
        assert_eq!(
            test.server
                .keyspace
                .watching
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
