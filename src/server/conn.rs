//! The connection loop: read, parse, dispatch, encode, write; pipelined and bounded.
//!
//! Reading and writing proceed together, as in Redis: a client may send a whole pipeline
//! before reading any reply, so replies are written while more requests are read. What one
//! client can make the server hold is bounded on both sides: the query buffer grows only with
//! bytes that arrive (`client-query-buffer-limit` closes the client past it, 1 GB by default),
//! and once `OUTPUT_PENDING_MAX` bytes of replies wait for a client that does not read, its
//! requests stop being read until they drain. `client-output-buffer-limit` closes a client
//! whose pending output (replies, and pub/sub messages or MONITOR lines queued in its outbox)
//! passes its class's limit (`pubsub` while subscribed, `normal` otherwise); publishers check
//! it too, so a subscriber that never reads is closed at its limit. No lock is held while
//! waiting on a socket.
//!
//! Ordering of out-of-band messages: what the outbox holds when a command's reply is encoded
//! is written before that reply, so a client that publishes to a channel it listens to (RESP3)
//! sees the message before PUBLISH's reply, as in Redis.

use super::clients::{Outgoing, OutputClass, ReplyMode, Session};
use super::state::{Server, ShutdownRequest};
use crate::command::{
    dispatch, dispatch_resolved, dispatch_run, run_command, Action, Admission, RUN_REQUESTS_MAX,
};
use crate::protocol::parser::{Limits, RequestParser};
use crate::protocol::Reply;
use bytes::{Buf, Bytes, BytesMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How much to read at a time; the buffer grows by this much only when it is full.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Replies waiting for a client beyond this stop the reading of its requests (backpressure).
/// Large enough for a pipeline of a million small replies sent before any is read.
const OUTPUT_PENDING_MAX: usize = 64 * 1024 * 1024;
/// Outbox messages move into the output only while it holds less than this: the rest stay
/// in the outbox, where one published message is shared by all its subscribers instead of
/// copied into each one's output.
const OUTBOX_MOVE_BELOW_BYTES: usize = 64 * 1024;
/// Outbox messages moved into the output per command at most, so a flood of messages
/// cannot hold one command's reply back without bound.
const OUTBOX_DRAIN_MAX: usize = 100_000;

/// What processing a batch of input left to do.
#[derive(Debug, PartialEq, Eq)]
enum Batch {
    /// Every complete request was run; wait for more bytes.
    Drained,
    /// Stopped because replies piled up; run the rest once they drain.
    Deferred,
    /// Send what is pending, then close (QUIT, protocol error).
    Close,
    /// Close now without sending more (SHUTDOWN).
    Abort,
    /// A blocking command is waiting; the rest of the input waits behind it.
    Blocked(BlockedWait),
}

/// A client blocked on keys: its reply arrives through `reply`, or the deadline passes.
struct BlockedWait {
    id: u64,
    reply: tokio::sync::oneshot::Receiver<Reply>,
    deadline: Option<tokio::time::Instant>,
    timeout_reply: Reply,
}

impl std::fmt::Debug for BlockedWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockedWait({})", self.id)
    }
}

impl PartialEq for BlockedWait {
    fn eq(&self, other: &BlockedWait) -> bool {
        self.id == other.id
    }
}

impl Eq for BlockedWait {}

/// A connection's buffers: requests read and not yet parsed (and the parser's place in
/// them), replies encoded and not yet written, and the outbox of messages other clients
/// queued for it (pub/sub, MONITOR, a served blocked command's reply).
struct Wire {
    parser: RequestParser,
    input: BytesMut,
    output: BytesMut,
    outbox: mpsc::UnboundedReceiver<Outgoing>,
}

/// Serves one client until it quits, is killed, errs, or the server stops.
pub async fn serve<S>(
    server: Arc<Server>,
    stream: S,
    mut session: Session,
    outbox: mpsc::UnboundedReceiver<Outgoing>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut wire = Wire {
        parser: RequestParser::new(),
        input: BytesMut::with_capacity(READ_CHUNK_BYTES),
        output: BytesMut::new(),
        outbox,
    };
    let handle = session.handle.clone();
    let mut closing = false;
    let mut deferred = false;
    let mut blocked: Option<BlockedWait> = None;
    // One registration for the whole connection: a fresh `killed()` per turn of the loop
    // locks the notifier's waiter list twice per turn, several turns per request.
    let killed = handle.killed();
    tokio::pin!(killed);
    loop {
        super::threads::tick();
        if closing && wire.output.is_empty() {
            break;
        }
        handle
            .output_bytes
            .store(wire.output.len(), Ordering::Relaxed);
        if over_output_limit(&server, &session) {
            handle.close_for_output_limit(server.clock.now_ms());
            break;
        }
        let room = wire.output.len() < OUTPUT_PENDING_MAX;
        if deferred && room && !closing && blocked.is_none() {
            match process_input(&server, &mut session, &mut wire).await {
                Batch::Drained => deferred = false,
                Batch::Deferred => {}
                Batch::Close => closing = true,
                Batch::Abort => break,
                Batch::Blocked(wait) => blocked = Some(wait),
            }
            continue;
        }
        let reading = room && !closing && !deferred;
        if reading {
            wire.input.reserve(READ_CHUNK_BYTES);
        }
        let blocked_deadline = blocked.as_ref().and_then(|wait| wait.deadline);
        tokio::select! {
            _ = &mut killed => break,
            reply = async { (&mut blocked.as_mut().expect("guarded").reply).await }, if blocked.is_some() => {
                blocked = None;
                if let Ok(reply) = reply {
                    // It was served by another client's write: its own effects are in the log
                    // by now, so waiting for the log's end covers them.
                    if server.aof.replies_wait() {
                        session.write_offset = server.log.offset();
                    }
                    if !wait_durable(&server, &session).await {
                        break;
                    }
                    reply.encode(session.resp3, &mut wire.output);
                }
                // Requests that arrived while blocked run now.
                deferred = true;
            }
            _ = async { tokio::time::sleep_until(blocked_deadline.expect("guarded")).await }, if blocked_deadline.is_some() => {
                if let Some(wait) = blocked.take() {
                    if super::blocking::unblock(&server, wait.id).is_some() {
                        wait.timeout_reply.encode(session.resp3, &mut wire.output);
                    } else {
                        // Served at this very moment: its reply is on the way.
                        if let Ok(reply) = wait.reply.await {
                            reply.encode(session.resp3, &mut wire.output);
                        }
                    }
                }
                deferred = true;
            }
            message = wire.outbox.recv(), if !closing && wire.output.len() < OUTBOX_MOVE_BELOW_BYTES => {
                let Some(message) = message else { break };
                handle.outbox_bytes.fetch_sub(message.len(), Ordering::Relaxed);
                message.write_to(session.resp3, &mut wire.output);
            }
            written = writer.write(&wire.output), if !wire.output.is_empty() => {
                match written {
                    Ok(0) | Err(_) => break,
                    Ok(written) => sent(&server, &mut wire.output, written),
                }
            }
            read = reader.read_buf(&mut wire.input), if reading => {
                let read = match read {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
                if blocked.is_some() {
                    // Buffered until the blocking command returns, as Redis does.
                    deferred = true;
                } else {
                    match process_input(&server, &mut session, &mut wire).await {
                        Batch::Drained => {}
                        Batch::Deferred => deferred = true,
                        Batch::Close => closing = true,
                        Batch::Abort => break,
                        Batch::Blocked(wait) => blocked = Some(wait),
                    }
                    // The replies leave at the end of the thread's turn, once every other
                    // connection with requests waiting has run (`turn_end`), as Redis writes
                    // them all before it next waits for events.
                    if !wire.output.is_empty() {
                        super::threads::turn_end().await;
                    }
                    if !wire.output.is_empty() && !write_now(&mut writer, &mut wire.output, &server) {
                        break;
                    }
                }
                let limit = crate::config_int!(server.config, "client-query-buffer-limit").max(0) as usize;
                if wire.input.len() > limit {
                    tracing::warn!(client = %handle.addr, "closing client that reached max query buffer length");
                    break;
                }
                let mut info = handle.info.lock();
                info.query_buffer_bytes = wire.input.len();
                info.output_buffer_bytes = wire.output.len();
            }
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    if let Some(wait) = blocked {
        super::blocking::unblock(&server, wait.id);
    }
    crate::command::transactions::unwatch_all(&server, &mut session);
    super::pubsub::unsubscribe_all(&server, &mut session);
    server.monitors.remove(session.id);
    server.clients.unregister(session.id);
}

/// Writes what the socket takes right now, without waiting: a reply leaves in the turn that
/// read its request, instead of in a turn of its own. False when the connection is gone.
/// Whatever the socket does not take is written by the loop once the socket is writable.
///
/// The loop calls it at the end of the thread's turn (`threads::turn_end`), once the other
/// ready connections have run: a client such as redis-benchmark, one thread driving 50
/// connections, then finds a burst of replies when it wakes, instead of being woken by each
/// reply in turn (a cross-CPU interrupt each). Written as soon as each request had run, SADD
/// at `-P 16` made it sleep and wake 22,000-30,000 times per million requests (Redis:
/// 2,200-3,500), and the wake-ups were a quarter of the server's CPU time; MSET at `-P 1`
/// woke the client 167 times per 1,000 requests, against Redis's 47 and 43 now.
fn write_now<W: AsyncWrite + Unpin>(
    writer: &mut W,
    output: &mut BytesMut,
    server: &Server,
) -> bool {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(writer).poll_write(&mut context, output) {
        std::task::Poll::Ready(Ok(0)) | std::task::Poll::Ready(Err(_)) => false,
        std::task::Poll::Ready(Ok(written)) => {
            sent(server, output, written);
            true
        }
        std::task::Poll::Pending => true,
    }
}

/// `written` bytes of `output` went to the socket.
fn sent(server: &Server, output: &mut BytesMut, written: usize) {
    server
        .stats
        .net_output_bytes
        .fetch_add(written as u64, Ordering::Relaxed);
    output.advance(written);
}

/// Redis's checkClientOutputBufferLimits for this client's class: true when it must go.
fn over_output_limit(server: &Server, session: &Session) -> bool {
    let handle = &session.handle;
    if handle.output_memory() == 0 {
        return false;
    }
    // A MONITOR client counts as normal, as in Redis's getClientType.
    let class = if session.subscriptions.is_empty() {
        OutputClass::Normal
    } else {
        OutputClass::PubSub
    };
    handle.over_output_limit(&server.output_limit(class), server.clock.now_ms())
}

/// Moves what the outbox holds into the output, ahead of the reply about to be encoded.
fn drain_outbox(
    session: &Session,
    outbox: &mut mpsc::UnboundedReceiver<Outgoing>,
    output: &mut BytesMut,
) {
    // Most replies find the outbox empty, and asking the channel for that costs more than
    // the counter senders raise before they send (a message queued by this very thread, the
    // one whose order matters, is always counted by now).
    if session.handle.outbox_bytes.load(Ordering::Relaxed) == 0 {
        return;
    }
    for _ in 0..OUTBOX_DRAIN_MAX {
        let Ok(message) = outbox.try_recv() else {
            return;
        };
        session
            .handle
            .outbox_bytes
            .fetch_sub(message.len(), Ordering::Relaxed);
        message.write_to(session.resp3, output);
    }
}

/// Runs complete requests from `input` until it has none left or replies pile up; under
/// `appendfsync always` the replies wait until the AOF has fsynced the batch's writes, and
/// if it never will (a disk error), none of them is sent and the client is closed.
async fn process_input(server: &Server, session: &mut Session, wire: &mut Wire) -> Batch {
    let batch = process_requests(server, session, wire).await;
    if !wait_durable(server, session).await {
        wire.output.clear();
        return Batch::Abort;
    }
    batch
}

/// Waits until this client's writes are as durable as `appendfsync always` promises; false
/// when they never will be. Free when the policy is not `always`.
async fn wait_durable(server: &Server, session: &Session) -> bool {
    if session.write_offset == 0 || !server.aof.replies_wait() {
        return true;
    }
    server.aof.wait_durable(session.write_offset).await
}

/// Runs complete requests from `input` until it has none left or replies pile up. The
/// requests run in `run_requests`, which waits for nothing; a request that must wait first
/// (CLIENT PAUSE, a save over its allowance) or after (DEBUG SLEEP) comes back here for it.
async fn process_requests(server: &Server, session: &mut Session, wire: &mut Wire) -> Batch {
    loop {
        let (reply, action) = match run_requests(server, session, wire) {
            Step::Done(batch) => return batch,
            Step::Wait(args) => {
                wait_if_paused(server, &args).await;
                wait_for_snapshot(server, &args).await;
                dispatch(server, session, args)
            }
            Step::Sleep(reply, action) => (reply, action),
        };
        if let Some(Action::Sleep(duration)) = &action {
            tokio::time::sleep(*duration).await;
        }
        if let Some(batch) = finish_request(server, session, wire, reply, action) {
            return batch;
        }
    }
}

/// Where `run_requests` stopped.
enum Step {
    /// The batch is over.
    Done(Batch),
    /// This request must wait for a pause or a save to end before it runs.
    Wait(Vec<Bytes>),
    /// This request ran and asked to sleep before its reply (DEBUG SLEEP).
    Sleep(Reply, Option<Action>),
}

/// Runs complete requests from `input` while none has to wait. Successive requests that may
/// run together (`run_command`: commands naming keys, nothing special about the client)
/// run on one hold of their shards' locks (`dispatch_run`), up to `RUN_REQUESTS_MAX`
/// at a time; the others one by one. Nothing here waits, so one command's closing clock
/// reading can open the next (`Session::chain_clock`).
fn run_requests(server: &Server, session: &mut Session, wire: &mut Wire) -> Step {
    session.chain_clock(true);
    let step = run_requests_chained(server, session, wire);
    session.chain_clock(false);
    step
}

fn run_requests_chained(server: &Server, session: &mut Session, wire: &mut Wire) -> Step {
    loop {
        if wire.output.len() >= OUTPUT_PENDING_MAX {
            note_activity(server, session);
            return Step::Done(Batch::Deferred);
        }
        let limits = Limits {
            bulk_bytes_max: crate::config_int!(server.config, "proto-max-bulk-len"),
            authenticated: session.authenticated || !server.requires_auth(),
        };
        let args = match wire.parser.parse(&mut wire.input, limits) {
            Ok(Some(args)) => args,
            Ok(None) => {
                note_activity(server, session);
                return Step::Done(Batch::Drained);
            }
            Err(error) => {
                tracing::debug!(client = %session.handle.addr, "{}", error.0);
                Reply::Error(format!("ERR {}", error.0)).encode(session.resp3, &mut wire.output);
                return Step::Done(Batch::Close);
            }
        };
        let must_wait = || {
            server.pause_active.load(Ordering::Acquire) || server.keyspace.snapshot.over_allowance()
        };
        if must_wait() {
            return Step::Wait(args);
        }
        let (args, resolved) = match run_command(server, session, &args) {
            Admission::Run(command) => {
                let mut run = vec![(command, args)];
                while run.len() < RUN_REQUESTS_MAX {
                    match wire.parser.parse(&mut wire.input, limits) {
                        // A pause or a snapshot's allowance stops the run where it begins:
                        // the request goes round again and waits.
                        Ok(Some(next)) => match run_command(server, session, &next) {
                            Admission::Run(command) if !must_wait() => run.push((command, next)),
                            _ => {
                                wire.parser.unread(next);
                                break;
                            }
                        },
                        Ok(None) => break,
                        // The requests before it run first.
                        Err(error) => {
                            wire.parser.unread_error(error);
                            break;
                        }
                    }
                }
                if run.len() == 1 {
                    let Some((command, args)) = run.pop() else {
                        continue;
                    };
                    (args, Some(command))
                } else {
                    let replies = dispatch_run(server, session, &run);
                    let ran = replies.len();
                    // Stopped early (blocked clients served, or an action): the rest go again.
                    for (_, args) in run.drain(ran..).rev() {
                        wire.parser.unread(args);
                    }
                    for (reply, action) in replies {
                        if let Some(batch) = finish_request(server, session, wire, reply, action) {
                            return Step::Done(batch);
                        }
                    }
                    continue;
                }
            }
            Admission::Alone(resolved) => (args, resolved),
        };
        let (reply, action) = dispatch_resolved(server, session, args, resolved);
        if matches!(action, Some(Action::Sleep(_))) {
            return Step::Sleep(reply, action);
        }
        if let Some(batch) = finish_request(server, session, wire, reply, action) {
            return Step::Done(batch);
        }
    }
}

/// Everything after a request ran: its reply (after what the outbox holds for this client),
/// the events Redis raises after the reply, the output limit, and what the command asked of
/// the connection. Some when the batch ends here.
fn finish_request(
    server: &Server,
    session: &mut Session,
    wire: &mut Wire,
    reply: Reply,
    action: Option<Action>,
) -> Option<Batch> {
    let Wire { output, outbox, .. } = wire;
    let blocks = matches!(action, Some(Action::Block { .. }));
    // Messages the command caused for this very client (a RESP3 client publishing to
    // itself, its own keyspace notifications) go before its reply.
    drain_outbox(session, outbox, output);
    match session.reply_mode {
        // A blocked command's reply comes later, when it is served or times out.
        _ if blocks => {}
        ReplyMode::On => reply.encode(session.resp3, output),
        ReplyMode::Off => {}
        ReplyMode::Skip => session.reply_mode = ReplyMode::On,
        ReplyMode::SkipNext => session.reply_mode = ReplyMode::Skip,
    }
    // Keyspace events Redis raises after writing the reply (HSET, LPUSH, EXPIRE, ...).
    if !session.deferred_events.is_empty() {
        super::pubsub::publish_deferred(server, session);
        drain_outbox(session, outbox, output);
    }
    // Checked after every reply, as Redis does when it adds one, so a pipeline cannot
    // pile up far past the limit before the connection loop looks.
    session
        .handle
        .output_bytes
        .store(output.len(), Ordering::Relaxed);
    if over_output_limit(server, session) {
        session.handle.close_for_output_limit(server.clock.now_ms());
        output.clear();
        return Some(Batch::Abort);
    }
    match action {
        Some(Action::Close) => return Some(Batch::Close),
        Some(Action::Shutdown { save, .. }) => {
            server.request_shutdown(ShutdownRequest { save });
            output.clear();
            return Some(Batch::Abort);
        }
        Some(Action::Monitor) => {
            session.handle.info.lock().monitor = true;
            server.monitors.add(session.handle.clone());
        }
        Some(Action::Block {
            args,
            keys,
            timeout_ms,
            timeout_reply,
        }) => {
            let (id, reply) =
                super::blocking::block(server, session, args, keys, timeout_reply.clone());
            let deadline = timeout_ms
                .map(|ms| tokio::time::Instant::now() + std::time::Duration::from_millis(ms));
            return Some(Batch::Blocked(BlockedWait {
                id,
                reply,
                deadline,
                timeout_reply,
            }));
        }
        _ => {}
    }
    None
}

/// Records what CLIENT LIST shows, once per batch of pipelined commands.
fn note_activity(server: &Server, session: &Session) {
    let mut info = session.handle.info.lock();
    info.last_interaction_ms = server.clock.now_ms();
    info.db = session.db;
    info.resp = if session.resp3 { 3 } else { 2 };
}

/// A save in progress has more set aside than it allows: writes (and EXEC) wait for the saver
/// to catch up, without holding a runtime thread, and for at most about a second.
async fn wait_for_snapshot(server: &Server, args: &[Bytes]) {
    const PAUSE: std::time::Duration = std::time::Duration::from_micros(500);
    const PAUSES_MAX: u32 = 2_000;
    let snapshot = &server.keyspace.snapshot;
    if !snapshot.over_allowance() {
        return;
    }
    let writes = args[0].eq_ignore_ascii_case(b"exec")
        || crate::command::table()
            .get(&args[0])
            .is_some_and(|command| command.is_write());
    if !writes {
        return;
    }
    for _ in 0..PAUSES_MAX {
        if !snapshot.over_allowance() {
            return;
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// CLIENT PAUSE: holds the client while a pause is in force (for writes only, or all).
async fn wait_if_paused(server: &Server, args: &[Bytes]) {
    if !server.pause_active.load(Ordering::Acquire) {
        return;
    }
    loop {
        let Some((until_ms, all)) = *server.pause.lock() else {
            return;
        };
        let now_ms = server.clock.now_ms();
        if now_ms >= until_ms {
            server.set_pause(None);
            return;
        }
        if !all {
            let is_write = crate::command::table()
                .get(&args[0])
                .map(|command| {
                    command.is_write() || command.has(crate::command::table::flags::MAY_REPLICATE)
                })
                .unwrap_or(false);
            if !is_write {
                return;
            }
        }
        let wait = std::time::Duration::from_millis((until_ms - now_ms).min(100));
        tokio::select! {
            _ = server.unpaused.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
