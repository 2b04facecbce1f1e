//! Blocked clients: BLPOP, BRPOP, BLMOVE, BZPOPMIN and the other blocking commands.
//!
//! A blocking command that finds nothing asks its connection to block (`Action::Block`). The
//! connection registers a [`Waiter`] here and queues its id on each key in the key's shard
//! (`Shard::blocked`), in arrival order. Any change to a key with waiters puts it on the
//! command's ready list (`Locked::signal_modified`); once that command has released its
//! locks, [`serve_ready`] walks each ready key's queue from the front and re-runs the first
//! waiter's command for it, under that command's own locks, exactly as if the client had sent
//! it again without blocking. If it gets something, its reply goes to the waiting connection
//! and the next waiter is tried; if not, it keeps its place and the key is done.
//!
//! So clients are served first-come first-served, an element is never handed to two
//! clients, and a served command propagates as its non-blocking form (BLPOP as LPOP).

use super::clients::{ClientHandle, Session};
use super::state::Server;
use crate::protocol::Reply;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Rounds of serving per call: a served command may ready further keys (BLMOVE pushes to its
/// destination), but never forever.
const SERVE_ROUNDS_MAX: usize = 10_000;

/// A client blocked on keys.
pub struct Waiter {
    pub client: Arc<ClientHandle>,
    pub db: usize,
    pub resp3: bool,
    /// The blocking command as the client sent it; re-run when a key is ready.
    pub args: Vec<Bytes>,
    pub keys: Vec<Bytes>,
    /// What an expired wait answers (a null of the command's shape).
    pub timeout_reply: Reply,
    reply: oneshot::Sender<Reply>,
}

/// Every blocked client, by waiter id.
#[derive(Default)]
pub struct Blocked {
    waiters: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
}

impl Blocked {
    pub fn len(&self) -> usize {
        self.waiters.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The waiter id of a blocked client (CLIENT UNBLOCK).
    pub fn waiter_of(&self, client_id: u64) -> Option<u64> {
        self.waiters
            .lock()
            .iter()
            .find(|(_, waiter)| waiter.client.id == client_id)
            .map(|(id, _)| *id)
    }
}

/// Blocks a client: registers it and queues it on each of its keys. Returns the waiter id and
/// the receiver its reply will come through.
pub fn block(
    server: &Server,
    session: &Session,
    args: Vec<Bytes>,
    keys: Vec<Bytes>,
    timeout_reply: Reply,
) -> (u64, oneshot::Receiver<Reply>) {
    let id = server.blocked.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let (sender, receiver) = oneshot::channel();
    let now_ms = server.clock.now_ms();
    // A write between the command's empty look and this registration readied no one: once
    // queued, the client's keys are served as if they had just been written.
    let ready: Vec<_> = keys
        .iter()
        .map(|key| (session.db, crate::types::CompactBytes::new(key)))
        .collect();
    {
        let mut locked = server
            .keyspace
            .lock_keys(keys.iter().map(|key| &key[..]), now_ms);
        for key in &keys {
            locked.block_on(session.db, key, id);
        }
        server.blocked.waiters.lock().insert(
            id,
            Waiter {
                client: session.handle.clone(),
                db: session.db,
                resp3: session.resp3,
                args,
                keys,
                timeout_reply,
                reply: sender,
            },
        );
    }
    serve_ready(server, ready);
    (id, receiver)
}

/// Unregisters a waiter (timeout, disconnect, CLIENT UNBLOCK); None if it was already served.
pub fn unblock(server: &Server, id: u64) -> Option<Waiter> {
    let waiter = server.blocked.waiters.lock().remove(&id)?;
    let now_ms = server.clock.now_ms();
    let mut locked = server
        .keyspace
        .lock_keys(waiter.keys.iter().map(|key| &key[..]), now_ms);
    for key in &waiter.keys {
        locked.unblock_from(waiter.db, key, id);
    }
    Some(waiter)
}

/// Ends a wait early (CLIENT UNBLOCK) with `error`, or as a timeout when None; false if the
/// client was not blocked.
pub fn unblock_with(server: &Server, client_id: u64, error: Option<Reply>) -> bool {
    let Some(id) = server.blocked.waiter_of(client_id) else {
        return false;
    };
    match unblock(server, id) {
        Some(waiter) => {
            let reply = error.unwrap_or_else(|| waiter.timeout_reply.clone());
            let _ = waiter.reply.send(reply);
            true
        }
        None => false,
    }
}

/// Serves the clients blocked on `ready` keys, first-come first-served. Called with no lock
/// held, after the command that readied the keys.
pub fn serve_ready(server: &Server, ready: Vec<(usize, crate::types::CompactBytes)>) {
    let mut queue: std::collections::VecDeque<(usize, crate::types::CompactBytes)> = ready.into();
    for _ in 0..SERVE_ROUNDS_MAX {
        let Some((db, key)) = queue.pop_front() else {
            return;
        };
        loop {
            let first = {
                let now_ms = server.clock.now_ms();
                let mut locked = server.keyspace.lock_keys([key.as_slice()], now_ms);
                locked.first_waiter(db, &key)
            };
            let Some(id) = first else {
                break;
            };
            // Take the waiter out of the registry while its command runs: a concurrent timeout
            // then finds nothing to unregister and waits for this reply instead.
            let Some(waiter) = server.blocked.waiters.lock().remove(&id) else {
                // It timed out between the two looks; its unblock removes it from the queue.
                break;
            };
            let (reply, still_blocked, more_ready) =
                crate::command::exec::serve_waiter(server, &waiter);
            if still_blocked {
                server.blocked.waiters.lock().insert(id, waiter);
                break;
            }
            let now_ms = server.clock.now_ms();
            {
                let mut locked = server
                    .keyspace
                    .lock_keys(waiter.keys.iter().map(|key| &key[..]), now_ms);
                for waited in &waiter.keys {
                    locked.unblock_from(waiter.db, waited, id);
                }
            }
            let _ = waiter.reply.send(reply);
            queue.extend(more_ready);
        }
    }
    tracing::warn!("serving blocked clients stopped after {SERVE_ROUNDS_MAX} rounds");
}
