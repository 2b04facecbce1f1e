//! `Server`: the state every connection shares, and the statistics INFO reports.

use super::clients::{Clients, OutputClass};
use super::monitor::Monitors;
use super::slowlog::SlowLog;
use crate::command::{table, Command};
use crate::config::{Config, OutputBufferLimit};
use crate::error::{error_code, Error};
use crate::io::{Clock, FileSystem};
use crate::keyspace::{AccessMode, Keyspace};
use crate::repl::PropagationLog;
use crate::util::Counter;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Per-command counters for INFO commandstats.
#[derive(Default)]
pub struct CommandStats {
    pub calls: Counter,
    pub usec: Counter,
    pub rejected_calls: Counter,
    pub failed_calls: Counter,
}

/// Server-wide counters for INFO stats.
pub struct ServerStats {
    pub commands: Vec<CommandStats>,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub total_error_replies: Counter,
    pub total_commands_processed: Counter,
    pub total_connections_received: Counter,
    pub rejected_connections: Counter,
    pub net_input_bytes: Counter,
    pub net_output_bytes: Counter,
    /// Writes since the last save (Redis's `server.dirty`).
    pub dirty: Counter,
}

/// Errors raised before a command runs count as rejected; after, as failed.
impl ServerStats {
    fn new(commands: usize) -> ServerStats {
        ServerStats {
            commands: (0..commands).map(|_| CommandStats::default()).collect(),
            errors: Mutex::new(BTreeMap::new()),
            total_error_replies: Counter::new(0),
            total_commands_processed: Counter::new(0),
            total_connections_received: Counter::new(0),
            rejected_connections: Counter::new(0),
            net_input_bytes: Counter::new(0),
            net_output_bytes: Counter::new(0),
            dirty: Counter::new(0),
        }
    }

    pub fn record_call(&self, command: &Command, usec: u64, failed: bool) {
        let stats = &self.commands[command.id];
        let cell = crate::util::counter_cell();
        stats.calls.add_in(cell, 1);
        stats.usec.add_in(cell, usec);
        if failed {
            stats.failed_calls.add_in(cell, 1);
        }
        self.total_commands_processed.add_in(cell, 1);
    }

    /// Counts an error reply; `command` is Some when the command was found but refused before
    /// running (arity is counted as unknown-command-like rejection by Redis too).
    pub fn record_error(&self, error: &Error, rejected: Option<&Command>) {
        let text = error.text();
        *self
            .errors
            .lock()
            .entry(error_code(&text).to_string())
            .or_insert(0) += 1;
        self.total_error_replies.fetch_add(1, Ordering::Relaxed);
        if let Some(command) = rejected {
            self.commands[command.id]
                .rejected_calls
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn add_dirty(&self, writes: u64) {
        if writes > 0 {
            self.dirty.fetch_add(writes, Ordering::Relaxed);
        }
    }
}

/// Why and how the server is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownRequest {
    /// Some(true) to save, Some(false) not to, None for the configured default.
    pub save: Option<bool>,
}

/// Everything shared by the connections.
pub struct Server {
    pub config: Config,
    pub keyspace: Keyspace,
    pub clients: Clients,
    pub log: PropagationLog,
    pub stats: ServerStats,
    pub slowlog: SlowLog,
    pub monitors: Monitors,
    pub blocked: super::blocking::Blocked,
    /// Pub/sub: channel -> subscribers.
    pub pubsub: super::pubsub::Hub,
    /// `client-output-buffer-limit` per class (normal, replica, pubsub), parsed once per
    /// CONFIG SET instead of on every check.
    output_limits: parking_lot::RwLock<[OutputBufferLimit; 3]>,
    pub clock: Arc<dyn Clock>,
    pub fs: Arc<dyn FileSystem>,
    /// The append-only file (always present; on while `appendonly yes`).
    pub aof: crate::persist::aof::Aof,
    /// Whether the AOF is registered with the propagation log yet.
    pub aof_attached: AtomicBool,
    /// RDB saves: in progress, last save, save points' bookkeeping.
    pub rdb: super::persistence::RdbState,
    /// The dataset is loading at start: clients get `-LOADING` for most commands.
    pub loading: super::persistence::LoadingState,
    /// The configuration file's absolute path, empty when started without one.
    pub config_file: String,
    /// Unix ms at start.
    pub start_ms: u64,
    pub started: std::time::Instant,
    /// 40 hex characters, as Redis's run_id.
    pub run_id: String,
    /// The port actually bound (differs from `port` when that is 0).
    pub bound_port: AtomicU64,
    /// Mirrors `requirepass` being non-empty; read on every command.
    auth_required: AtomicBool,
    /// Mirrors `pause` being set, so unpaused servers check one atomic per command.
    pub pause_active: AtomicBool,
    /// `DEBUG SET-ACTIVE-EXPIRE`.
    pub active_expire_enabled: AtomicBool,
    shutdown: Mutex<Option<ShutdownRequest>>,
    shutdown_notify: Notify,
    /// CLIENT PAUSE: until when (unix ms) and whether all commands or only writes pause.
    pub pause: Mutex<Option<(u64, bool)>>,
    pub unpaused: Notify,
    /// The `Arc` this server lives in, for work that outlives a command (BGREWRITEAOF).
    this: std::sync::OnceLock<std::sync::Weak<Server>>,
}

impl Server {
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        fs: Arc<dyn FileSystem>,
        seed: u64,
    ) -> Server {
        let databases = config.int("databases") as usize;
        let start_ms = clock.now_ms();
        let server = Server {
            keyspace: Keyspace::new(databases, seed),
            clients: Clients::default(),
            log: PropagationLog::new(),
            stats: ServerStats::new(table().count()),
            slowlog: SlowLog::default(),
            monitors: Monitors::default(),
            blocked: super::blocking::Blocked::default(),
            aof: crate::persist::aof::Aof::new(fs.clone(), clock.clone()),
            aof_attached: AtomicBool::new(false),
            rdb: super::persistence::RdbState::new(start_ms),
            loading: super::persistence::LoadingState::default(),
            pubsub: super::pubsub::Hub::default(),
            output_limits: parking_lot::RwLock::new([OutputBufferLimit::default(); 3]),
            clock,
            fs,
            config_file: String::new(),
            start_ms,
            started: std::time::Instant::now(),
            run_id: run_id(seed),
            bound_port: AtomicU64::new(0),
            auth_required: AtomicBool::new(false),
            pause_active: AtomicBool::new(false),
            active_expire_enabled: AtomicBool::new(true),
            shutdown: Mutex::new(None),
            shutdown_notify: Notify::new(),
            pause: Mutex::new(None),
            unpaused: Notify::new(),
            this: std::sync::OnceLock::new(),
            config,
        };
        server.apply_config();
        server
    }

    /// Re-derives state that mirrors configuration (called after CONFIG SET).
    pub fn apply_config(&self) {
        let policy = self.config.word("maxmemory-policy");
        let mode = if policy.ends_with("lfu") {
            AccessMode::Lfu {
                log_factor: self.config.int("lfu-log-factor") as u32,
                decay_minutes: self.config.int("lfu-decay-time") as u32,
            }
        } else {
            AccessMode::Lru
        };
        self.keyspace.set_access_mode(mode);
        let lru_or_lfu = policy.ends_with("lru") || policy.ends_with("lfu");
        self.keyspace
            .set_share_integers(self.config.int("maxmemory") == 0 || !lru_or_lfu);
        self.aof.set_policy(crate::persist::aof::Fsync::from_word(
            self.config.word("appendfsync"),
        ));
        self.keyspace.notify_flags.store(
            self.config.int("notify-keyspace-events") as u32,
            Ordering::Relaxed,
        );
        *self.output_limits.write() = [
            self.config.output_buffer_limit("normal"),
            self.config.output_buffer_limit("slave"),
            self.config.output_buffer_limit("pubsub"),
        ];
        crate::tier::memory::apply_config(self);
        self.auth_required.store(
            !self.config.text("requirepass").is_empty(),
            Ordering::Relaxed,
        );
    }

    /// Puts the server in its `Arc`, which background work (`handle`) holds on to.
    pub fn into_arc(self) -> Arc<Server> {
        let server = Arc::new(self);
        let _ = server.this.set(Arc::downgrade(&server));
        server
    }

    /// The server's `Arc`, when it was made by `into_arc`.
    pub fn handle(&self) -> Option<Arc<Server>> {
        self.this.get().and_then(std::sync::Weak::upgrade)
    }

    /// The `client-output-buffer-limit` of a client class.
    pub fn output_limit(&self, class: OutputClass) -> OutputBufferLimit {
        self.output_limits.read()[class as usize]
    }

    /// CLIENT PAUSE: holds writes (or all commands) until `until_ms`; None lifts the pause.
    pub fn set_pause(&self, pause: Option<(u64, bool)>) {
        *self.pause.lock() = pause;
        self.pause_active.store(pause.is_some(), Ordering::Release);
        if pause.is_none() {
            self.unpaused.notify_waiters();
        }
    }

    /// True when clients must AUTH first (`requirepass` set).
    pub fn requires_auth(&self) -> bool {
        self.auth_required.load(Ordering::Relaxed)
    }

    pub fn request_shutdown(&self, request: ShutdownRequest) {
        *self.shutdown.lock() = Some(request);
        self.shutdown_notify.notify_waiters();
        self.shutdown_notify.notify_one();
    }

    /// Withdraws a shutdown that could not complete (its save failed).
    pub fn clear_shutdown(&self) {
        *self.shutdown.lock() = None;
    }

    pub fn shutdown_requested(&self) -> Option<ShutdownRequest> {
        *self.shutdown.lock()
    }

    /// Resolves when a shutdown has been requested.
    pub async fn shutdown_signal(&self) -> ShutdownRequest {
        loop {
            let notified = self.shutdown_notify.notified();
            if let Some(request) = self.shutdown_requested() {
                return request;
            }
            notified.await;
        }
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

fn run_id(seed: u64) -> String {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0x5eed);
    (0..40)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}
