//! Client sessions and the registry CLIENT LIST/KILL read.
//!
//! A connection's task owns its [`Session`] (selected db, protocol, auth, reply mode). What
//! other clients may need to see or do to it lives in its shared [`ClientHandle`]: the fields
//! CLIENT LIST prints, a kill switch, and an outbox for out-of-band messages (MONITOR lines,
//! pub/sub messages). Everything queued for a client counts in its output memory (`omem`), so
//! `client-output-buffer-limit` can close a client that does not read, whoever queued the bytes.

use crate::config::OutputBufferLimit;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// CLIENT REPLY's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply to the next command only.
    SkipNext,
    /// Skipping the current command's reply (SkipNext became this).
    Skip,
}

/// The fields of a client that change as it runs, shown by CLIENT LIST/INFO.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub name: String,
    pub db: usize,
    pub last_interaction_ms: u64,
    pub resp: u8,
    pub monitor: bool,
    pub query_buffer_bytes: usize,
    pub output_buffer_bytes: usize,
    pub no_evict: bool,
    /// Pub/sub subscriptions: channels, patterns, shard channels (`sub=`, `psub=`, `ssub=`).
    pub subscribed_channels: usize,
    pub subscribed_patterns: usize,
    pub subscribed_shard_channels: usize,
}

/// What the outbox carries: bytes written as they are (MONITOR lines), or a pub/sub message
/// encoded as a RESP2 array, which the connection turns into a RESP3 push (`>`) for a RESP3
/// client (the two encodings differ only in the first byte).
#[derive(Debug, Clone)]
pub enum Outgoing {
    Raw(Bytes),
    Push(Bytes),
}

impl Outgoing {
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Raw(bytes) | Outgoing::Push(bytes) => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the message to a connection's output in the client's protocol.
    pub fn write_to(&self, resp3: bool, output: &mut bytes::BytesMut) {
        match self {
            Outgoing::Raw(bytes) => output.extend_from_slice(bytes),
            Outgoing::Push(bytes) if resp3 => {
                debug_assert_eq!(bytes.first(), Some(&b'*'), "a push is a RESP2 array");
                output.extend_from_slice(b">");
                output.extend_from_slice(&bytes[1..]);
            }
            Outgoing::Push(bytes) => output.extend_from_slice(bytes),
        }
    }
}

/// The client classes of `client-output-buffer-limit` (Redis's getClientType for limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputClass {
    Normal = 0,
    Replica = 1,
    PubSub = 2,
}

/// Output Redis keeps in the client's static 16 KB buffer is not counted in `omem` nor
/// checked against the limits; only what overflows into the reply list is.
pub const STATIC_OUTPUT_BYTES: usize = 16 * 1024;

/// What other clients may see of, or do to, one client.
pub struct ClientHandle {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i64,
    pub created_ms: u64,
    pub info: Mutex<ClientInfo>,
    killed: AtomicBool,
    kill_notify: Notify,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Bytes queued in the outbox and not yet moved to the connection's output.
    pub outbox_bytes: AtomicUsize,
    /// Bytes in the connection's output buffer, not yet written to the socket (kept current
    /// by the connection task so publishers can check the limits).
    pub output_bytes: AtomicUsize,
    /// Unix ms when the output first went over the soft limit (0: it is not over).
    soft_limit_since_ms: AtomicU64,
    /// Set once when the client is closed for its output, so the log line is written once.
    closing_for_output: AtomicBool,
    /// Table id + 1 of the last command run (0: none yet); an atomic so the hot path does not
    /// lock `info`.
    last_command: AtomicUsize,
}

impl ClientHandle {
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_notify.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Resolves once the client has been killed.
    pub async fn killed(&self) {
        loop {
            let notified = self.kill_notify.notified();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }

    /// Records the command being run, for CLIENT LIST's `cmd=`.
    pub fn note_command(&self, id: usize) {
        self.last_command.store(id + 1, Ordering::Relaxed);
    }

    /// The last command's full name (`client|list`), or `NULL`.
    pub fn last_command_name(&self) -> String {
        match self.last_command.load(Ordering::Relaxed) {
            0 => "NULL".to_string(),
            id => crate::command::table()
                .by_id(id - 1)
                .map(|command| command.fullname.clone())
                .unwrap_or_else(|| "NULL".to_string()),
        }
    }

    /// Queues already-encoded bytes for the client; false if it has gone.
    pub fn send(&self, bytes: Bytes) -> bool {
        self.queue(Outgoing::Raw(bytes))
    }

    /// Queues a message for the client; false if it has gone.
    pub fn queue(&self, message: Outgoing) -> bool {
        let length = message.len();
        self.outbox_bytes.fetch_add(length, Ordering::Relaxed);
        let sent = self.outbox.send(message).is_ok();
        if !sent {
            self.outbox_bytes.fetch_sub(length, Ordering::Relaxed);
        }
        sent
    }

    /// Redis's getClientOutputBufferMemoryUsage: pending output beyond the static buffer.
    pub fn output_memory(&self) -> usize {
        let pending =
            self.output_bytes.load(Ordering::Relaxed) + self.outbox_bytes.load(Ordering::Relaxed);
        pending.saturating_sub(STATIC_OUTPUT_BYTES)
    }

    /// Redis's checkClientOutputBufferLimits: over the hard limit, or over the soft limit
    /// for more than its seconds (counted in whole seconds of unix time, as Redis does).
    pub fn over_output_limit(&self, limit: &OutputBufferLimit, now_ms: u64) -> bool {
        let used = self.output_memory() as u64;
        if used == 0 {
            return false;
        }
        let hard = limit.hard_bytes > 0 && used >= limit.hard_bytes;
        let mut soft = limit.soft_bytes > 0 && used >= limit.soft_bytes;
        if soft {
            // 0 means "not over", so a first time of 0 ms is stored as 1.
            let since_ms = match self.soft_limit_since_ms.compare_exchange(
                0,
                now_ms.max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => now_ms.max(1),
                Err(since_ms) => since_ms,
            };
            let elapsed_seconds = (now_ms / 1000).saturating_sub(since_ms / 1000);
            soft = elapsed_seconds > limit.soft_seconds;
        } else {
            self.soft_limit_since_ms.store(0, Ordering::Relaxed);
        }
        soft || hard
    }

    /// Closes the client for overcoming its output limit, with Redis's log line, once.
    pub fn close_for_output_limit(&self, now_ms: u64) {
        if self.closing_for_output.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
            self.describe(now_ms)
        );
        self.kill();
    }

    /// CLIENT LIST's line for this client (without the trailing newline).
    pub fn describe(&self, now_ms: u64) -> String {
        let info = self.info.lock().clone();
        let mut flags = String::new();
        if info.monitor {
            flags.push('O');
        }
        let subscriptions =
            info.subscribed_channels + info.subscribed_patterns + info.subscribed_shard_channels;
        if subscriptions > 0 {
            flags.push('P');
        }
        if info.no_evict {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let age = now_ms.saturating_sub(self.created_ms) / 1000;
        let idle = now_ms.saturating_sub(info.last_interaction_ms) / 1000;
        let qbuf = info.query_buffer_bytes;
        let omem = self.output_memory();
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi=-1 qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            info.name,
            age,
            idle,
            flags,
            info.db,
            info.subscribed_channels,
            info.subscribed_patterns,
            info.subscribed_shard_channels,
            qbuf,
            16384usize.saturating_sub(qbuf),
            qbuf.max(1024),
            omem,
            qbuf + omem + 16384,
            self.last_command_name(),
            info.resp
        )
    }
}

/// Every connected client, by id.
#[derive(Default)]
pub struct Clients {
    map: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    next_id: AtomicU64,
}

impl Clients {
    /// Registers a new client; returns its handle and the receiving end of its outbox.
    pub fn register(
        &self,
        addr: String,
        laddr: String,
        fd: i64,
        now_ms: u64,
    ) -> (Arc<ClientHandle>, mpsc::UnboundedReceiver<Outgoing>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (sender, receiver) = mpsc::unbounded_channel();
        let handle = Arc::new(ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created_ms: now_ms,
            info: Mutex::new(ClientInfo {
                name: String::new(),
                db: 0,
                last_interaction_ms: now_ms,
                resp: 2,
                monitor: false,
                query_buffer_bytes: 0,
                output_buffer_bytes: 0,
                no_evict: false,
                subscribed_channels: 0,
                subscribed_patterns: 0,
                subscribed_shard_channels: 0,
            }),
            killed: AtomicBool::new(false),
            kill_notify: Notify::new(),
            outbox: sender,
            outbox_bytes: AtomicUsize::new(0),
            output_bytes: AtomicUsize::new(0),
            soft_limit_since_ms: AtomicU64::new(0),
            closing_for_output: AtomicBool::new(false),
            last_command: AtomicUsize::new(0),
        });
        self.map.lock().insert(id, handle.clone());
        (handle, receiver)
    }

    pub fn unregister(&self, id: u64) {
        self.map.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.map.lock().get(&id).cloned()
    }

    /// A snapshot of every client, in id order.
    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.map.lock().values().cloned().collect()
    }
}

/// A MULTI block being queued.
#[derive(Default)]
pub struct Multi {
    pub queued: Vec<(&'static crate::command::Command, Vec<Bytes>)>,
    /// Bytes of the queued arguments, bounded by `client-query-buffer-limit`.
    pub queued_bytes: usize,
    /// A command was refused while queueing: EXEC must answer EXECABORT.
    pub failed: bool,
}

/// A key this client WATCHes: the version it saw, and whether it was already expired then.
#[derive(Debug, Clone)]
pub struct Watched {
    pub db: usize,
    pub key: Bytes,
    pub version: u64,
    pub expired_at_watch: bool,
}

/// A connection's own state, owned by its task.
pub struct Session {
    pub id: u64,
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    pub reply_mode: ReplyMode,
    pub handle: Arc<ClientHandle>,
    /// Some while inside MULTI.
    pub multi: Option<Multi>,
    pub watched: Vec<Watched>,
    /// Propagation log offset just past this client's last write: under `appendfsync
    /// always` its replies wait until the AOF has fsynced this far.
    pub write_offset: u64,
    /// Redis's mustObeyClient: the AOF loader (and later a primary), whose commands are
    /// replayed as recorded rather than checked as a user's.
    pub obey: bool,
    /// Pub/sub subscriptions; the hub holds the other direction (channel -> clients).
    pub subscriptions: crate::server::pubsub::Subscriptions,
    /// Keyspace events the last command raised after writing its reply, published by the
    /// connection once the reply is encoded.
    pub deferred_events: Vec<crate::keyspace::notify::Event>,
    /// Clock readings shared by the requests the connection runs back to back.
    clock_chain: ClockChain,
}

/// While a connection runs the requests it has read without waiting in between
/// (`conn::run_requests`), the reading that ends one command's duration is the next
/// command's time snapshot and start: one clock read per pipelined request instead of two.
/// Off everywhere else (tests advance a manual clock between commands).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ClockChain {
    #[default]
    Off,
    /// On; the reading that ended the last command, if it has not been used yet.
    On(Option<u64>),
}

impl Session {
    /// Starts (`true`) or ends a run of back-to-back requests (see `ClockChain`).
    pub fn chain_clock(&mut self, on: bool) {
        self.clock_chain = if on {
            ClockChain::On(None)
        } else {
            ClockChain::Off
        };
    }

    /// A command's start: the reading that ended the previous one in a chain, else the clock.
    pub fn start_us(&mut self, clock: &dyn crate::io::Clock) -> u64 {
        match self.clock_chain {
            ClockChain::On(Some(ended_us)) => {
                self.clock_chain = ClockChain::On(None);
                ended_us
            }
            _ => clock.now_us(),
        }
    }

    /// A command's end, read from the clock; kept for the next command in a chain.
    pub fn end_us(&mut self, clock: &dyn crate::io::Clock) -> u64 {
        let ended_us = clock.now_us();
        if let ClockChain::On(_) = self.clock_chain {
            self.clock_chain = ClockChain::On(Some(ended_us));
        }
        ended_us
    }

    pub fn new(handle: Arc<ClientHandle>, authenticated: bool) -> Session {
        Session {
            id: handle.id,
            db: 0,
            resp3: false,
            authenticated,
            reply_mode: ReplyMode::On,
            handle,
            multi: None,
            watched: Vec::new(),
            write_offset: 0,
            obey: false,
            subscriptions: Default::default(),
            deferred_events: Vec::new(),
            clock_chain: ClockChain::Off,
        }
    }

    /// Returns the session to its state after connecting (RESET).
    pub fn reset(&mut self, authenticated: bool) {
        self.db = 0;
        self.resp3 = false;
        self.authenticated = authenticated;
        self.reply_mode = ReplyMode::On;
        self.multi = None;
        debug_assert!(self.watched.is_empty(), "unwatch before reset");
        debug_assert!(self.subscriptions.is_empty(), "unsubscribe before reset");
        let mut info = self.handle.info.lock();
        info.name.clear();
        info.db = 0;
        info.resp = 2;
        info.monitor = false;
        info.no_evict = false;
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestServer, START_MS};

    #[test]
    fn a_clock_chain_reuses_the_reading_that_ended_the_last_command_once() {
        let test = TestServer::new();
        let mut session = test.session();
        let clock = &*test.server.clock;
        let at = |ms: u64| (START_MS + ms) * 1000;
        // Off: every start reads the clock, nothing is kept.
        assert_eq!(session.end_us(clock), at(0));
        test.advance_ms(1);
        assert_eq!(session.start_us(clock), at(1));
        session.chain_clock(true);
        assert_eq!(session.start_us(clock), at(1), "nothing ended yet");
        test.advance_ms(1);
        assert_eq!(session.end_us(clock), at(2));
        test.advance_ms(1);
        assert_eq!(
            session.start_us(clock),
            at(2),
            "the reading that ended the last"
        );
        assert_eq!(session.start_us(clock), at(3), "used once");
        assert_eq!(session.end_us(clock), at(3));
        session.chain_clock(false);
        test.advance_ms(1);
        assert_eq!(
            session.start_us(clock),
            at(4),
            "forgotten when the chain ends"
        );
    }
}
