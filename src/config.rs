//! The configuration: one table of every Redis 7.0 directive, plus the values in force.
//!
//! Owns parsing a redis.conf-style file and `--name value` overrides at start-up, and
//! `CONFIG GET/SET` at run time. Every directive Redis 7.0 knows is in [`TABLE`] with its type,
//! range and default, so any existing redis.conf starts and `CONFIG GET *` answers what Redis
//! answers. Directives whose feature Strata does not implement yet are accepted and stored; a
//! file that changes one from its default logs a warning at start-up.
//!
//! Values live in atomics (numbers, booleans, enum indices) or behind a lock (text), so the
//! hot paths read them without contention. The table is sorted by name: look-ups are binary
//! searches, and a test keeps it sorted.

use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::keyspace::notify;
use crate::protocol::parser::split_args;

/// What kind of value a directive takes, with its bounds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Int(i64, i64),
    /// A byte count that accepts `k`, `kb`, `m`, `mb`, `g`, `gb` suffixes.
    Memory(i64, i64),
    Enum(&'static [&'static str]),
    Str,
    Octal,
    /// `dir`: created if missing and reported as an absolute path.
    Dir,
    Bind,
    Save,
    ClientOutputBufferLimit,
    KeyspaceEvents,
    OomScoreAdjValues,
    Percentiles,
    MemoryOrPercent,
    ReplicaOf,
}

pub const NONE: u8 = 0;
/// CONFIG SET refuses it.
pub const IMMUTABLE: u8 = 1;
/// CONFIG SET refuses it unless `enable-protected-configs` allows.
pub const PROTECTED: u8 = 2;
/// Strata acts on it; directives without this flag are stored only.
pub const LIVE: u8 = 4;

#[derive(Debug)]
pub struct Directive {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub flags: u8,
}

const fn d(name: &'static str, kind: Kind, default: &'static str, flags: u8) -> Directive {
    Directive {
        name,
        kind,
        default,
        flags,
    }
}

use Kind::*;

/// Every directive of Redis 7.0.15, sorted by name. Generated from a real server's
/// `CONFIG GET *` and its CONFIG SET error texts, then given Strata's defaults where they
/// differ (`dir` is `data`, `bind` is loopback).
pub static TABLE: &[Directive] = DIRECTIVES;

const DIRECTIVES: &[Directive] = &[
    d(
        "acl-pubsub-default",
        Enum(&["allchannels", "resetchannels"]),
        "resetchannels",
        NONE,
    ),
    d("aclfile", Str, "", IMMUTABLE),
    d("acllog-max-len", Int(0, 9223372036854775807), "128", NONE),
    d("active-defrag-cycle-max", Int(1, 99), "25", NONE),
    d("active-defrag-cycle-min", Int(1, 99), "1", NONE),
    d(
        "active-defrag-ignore-bytes",
        Memory(1, 9223372036854775807),
        "104857600",
        NONE,
    ),
    d(
        "active-defrag-max-scan-fields",
        Int(1, 9223372036854775807),
        "1000",
        NONE,
    ),
    d("active-defrag-threshold-lower", Int(0, 1000), "10", NONE),
    d("active-defrag-threshold-upper", Int(0, 1000), "100", NONE),
    d("active-expire-effort", Int(1, 10), "1", LIVE),
    d("activedefrag", Bool, "no", NONE),
    d("activerehashing", Bool, "yes", LIVE),
    d("always-show-logo", Bool, "no", IMMUTABLE | LIVE),
    d("aof-disable-auto-gc", Bool, "no", LIVE),
    d("aof-load-truncated", Bool, "yes", LIVE),
    d("aof-rewrite-incremental-fsync", Bool, "yes", NONE),
    d("aof-timestamp-enabled", Bool, "no", NONE),
    d("aof-use-rdb-preamble", Bool, "yes", LIVE),
    d("aof_rewrite_cpulist", Str, "", IMMUTABLE),
    d("appenddirname", Str, "appendonlydir", IMMUTABLE | LIVE),
    d("appendfilename", Str, "appendonly.aof", IMMUTABLE | LIVE),
    d(
        "appendfsync",
        Enum(&["everysec", "always", "no"]),
        "everysec",
        LIVE,
    ),
    d("appendonly", Bool, "no", LIVE),
    d(
        "auto-aof-rewrite-min-size",
        Memory(0, 9223372036854775807),
        "67108864",
        LIVE,
    ),
    d(
        "auto-aof-rewrite-percentage",
        Int(0, 2147483647),
        "100",
        LIVE,
    ),
    d("bgsave_cpulist", Str, "", IMMUTABLE),
    d("bind", Bind, "127.0.0.1 -::1", LIVE),
    d("bind-source-addr", Str, "", LIVE),
    d("bio_cpulist", Str, "", IMMUTABLE),
    d(
        "busy-reply-threshold",
        Int(0, 9223372036854775807),
        "5000",
        LIVE,
    ),
    d(
        "client-output-buffer-limit",
        ClientOutputBufferLimit,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        LIVE,
    ),
    d(
        "client-query-buffer-limit",
        Memory(1048576, 9223372036854775807),
        "1073741824",
        LIVE,
    ),
    d("cluster-allow-pubsubshard-when-down", Bool, "yes", NONE),
    d("cluster-allow-reads-when-down", Bool, "no", NONE),
    d("cluster-allow-replica-migration", Bool, "yes", NONE),
    d("cluster-announce-bus-port", Int(0, 65535), "0", NONE),
    d("cluster-announce-hostname", Str, "", NONE),
    d("cluster-announce-ip", Str, "", NONE),
    d("cluster-announce-port", Int(0, 65535), "0", NONE),
    d("cluster-announce-tls-port", Int(0, 65535), "0", NONE),
    d("cluster-config-file", Str, "nodes.conf", IMMUTABLE),
    d("cluster-enabled", Bool, "no", IMMUTABLE),
    d(
        "cluster-link-sendbuf-limit",
        Memory(0, 9223372036854775807),
        "0",
        NONE,
    ),
    d("cluster-migration-barrier", Int(0, 2147483647), "1", NONE),
    d(
        "cluster-node-timeout",
        Int(0, 9223372036854775807),
        "15000",
        NONE,
    ),
    d("cluster-port", Int(0, 65535), "0", IMMUTABLE),
    d(
        "cluster-preferred-endpoint-type",
        Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
        NONE,
    ),
    d("cluster-replica-no-failover", Bool, "no", NONE),
    d(
        "cluster-replica-validity-factor",
        Int(0, 2147483647),
        "10",
        NONE,
    ),
    d("cluster-require-full-coverage", Bool, "yes", NONE),
    d("crash-log-enabled", Bool, "yes", LIVE),
    d("crash-memcheck-enabled", Bool, "yes", LIVE),
    d("daemonize", Bool, "no", IMMUTABLE | LIVE),
    d("databases", Int(1, 2147483647), "16", IMMUTABLE | LIVE),
    d("dbfilename", Str, "dump.rdb", PROTECTED | LIVE),
    d("dir", Dir, "data", PROTECTED | LIVE),
    d("disable-thp", Bool, "yes", IMMUTABLE | LIVE),
    d("dynamic-hz", Bool, "yes", LIVE),
    d(
        "enable-debug-command",
        Enum(&["no", "yes", "local"]),
        "no",
        IMMUTABLE | LIVE,
    ),
    d(
        "enable-module-command",
        Enum(&["no", "yes", "local"]),
        "no",
        IMMUTABLE | LIVE,
    ),
    d(
        "enable-protected-configs",
        Enum(&["no", "yes", "local"]),
        "no",
        IMMUTABLE | LIVE,
    ),
    d(
        "hash-max-listpack-entries",
        Int(0, 9223372036854775807),
        "512",
        LIVE,
    ),
    d(
        "hash-max-listpack-value",
        Memory(0, 9223372036854775807),
        "64",
        LIVE,
    ),
    d(
        "hll-sparse-max-bytes",
        Memory(0, 9223372036854775807),
        "3000",
        LIVE,
    ),
    d("hz", Int(0, 2147483647), "10", LIVE),
    d("ignore-warnings", Str, "", LIVE),
    d("io-threads", Int(1, 128), "1", IMMUTABLE | LIVE),
    d("io-threads-do-reads", Bool, "no", IMMUTABLE),
    d("jemalloc-bg-thread", Bool, "yes", LIVE),
    d(
        "latency-monitor-threshold",
        Int(0, 9223372036854775807),
        "0",
        LIVE,
    ),
    d("latency-tracking", Bool, "yes", LIVE),
    d(
        "latency-tracking-info-percentiles",
        Percentiles,
        "50 99 99.9",
        LIVE,
    ),
    d("lazyfree-lazy-eviction", Bool, "no", NONE),
    d("lazyfree-lazy-expire", Bool, "no", LIVE),
    d("lazyfree-lazy-server-del", Bool, "no", LIVE),
    d("lazyfree-lazy-user-del", Bool, "no", LIVE),
    d("lazyfree-lazy-user-flush", Bool, "no", LIVE),
    d("lfu-decay-time", Int(0, 2147483647), "1", LIVE),
    d("lfu-log-factor", Int(0, 2147483647), "10", LIVE),
    d("list-compress-depth", Int(0, 2147483647), "0", LIVE),
    d(
        "list-max-listpack-size",
        Int(-2147483648, 2147483647),
        "-2",
        LIVE,
    ),
    d("logfile", Str, "", IMMUTABLE | LIVE),
    d(
        "loglevel",
        Enum(&["debug", "verbose", "notice", "warning"]),
        "notice",
        LIVE,
    ),
    d("masterauth", Str, "", NONE),
    d("masteruser", Str, "", NONE),
    d("maxclients", Int(1, 4294967295), "10000", LIVE),
    d("maxmemory", Memory(0, 9223372036854775807), "0", LIVE),
    d("maxmemory-clients", MemoryOrPercent, "0", NONE),
    d("maxmemory-eviction-tenacity", Int(0, 100), "10", NONE),
    d(
        "maxmemory-policy",
        Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        "noeviction",
        LIVE,
    ),
    d("maxmemory-samples", Int(1, 2147483647), "5", LIVE),
    d("min-replicas-max-lag", Int(0, 2147483647), "10", NONE),
    d("min-replicas-to-write", Int(0, 2147483647), "0", NONE),
    d("no-appendfsync-on-rewrite", Bool, "no", NONE),
    d("notify-keyspace-events", KeyspaceEvents, "", LIVE),
    d(
        "oom-score-adj",
        Enum(&["no", "yes", "relative", "absolute"]),
        "no",
        LIVE,
    ),
    d("oom-score-adj-values", OomScoreAdjValues, "0 200 800", LIVE),
    d("pidfile", Str, "", IMMUTABLE | LIVE),
    d("port", Int(0, 65535), "6379", LIVE),
    d(
        "proc-title-template",
        Str,
        "{title} {listen-addr} {server-mode}",
        LIVE,
    ),
    d(
        "propagation-error-behavior",
        Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
        NONE,
    ),
    d("protected-mode", Bool, "yes", LIVE),
    d(
        "proto-max-bulk-len",
        Memory(1048576, 9223372036854775807),
        "536870912",
        LIVE,
    ),
    d("rdb-del-sync-files", Bool, "no", NONE),
    d("rdb-save-incremental-fsync", Bool, "yes", NONE),
    d("rdbchecksum", Bool, "yes", IMMUTABLE | LIVE),
    d("rdbcompression", Bool, "yes", LIVE),
    d(
        "repl-backlog-size",
        Memory(1, 9223372036854775807),
        "1048576",
        NONE,
    ),
    d(
        "repl-backlog-ttl",
        Int(0, 9223372036854775807),
        "3600",
        NONE,
    ),
    d("repl-disable-tcp-nodelay", Bool, "no", NONE),
    d(
        "repl-diskless-load",
        Enum(&["disabled", "on-empty-db", "swapdb"]),
        "disabled",
        NONE,
    ),
    d("repl-diskless-sync", Bool, "yes", NONE),
    d("repl-diskless-sync-delay", Int(0, 2147483647), "5", NONE),
    d(
        "repl-diskless-sync-max-replicas",
        Int(0, 2147483647),
        "0",
        NONE,
    ),
    d("repl-ping-replica-period", Int(1, 2147483647), "10", NONE),
    d("repl-timeout", Int(1, 2147483647), "60", NONE),
    d("replica-announce-ip", Str, "", NONE),
    d("replica-announce-port", Int(0, 65535), "0", NONE),
    d("replica-announced", Bool, "yes", NONE),
    d("replica-ignore-disk-write-errors", Bool, "no", NONE),
    d("replica-ignore-maxmemory", Bool, "yes", NONE),
    d("replica-lazy-flush", Bool, "no", NONE),
    d("replica-priority", Int(0, 2147483647), "100", NONE),
    d("replica-read-only", Bool, "yes", NONE),
    d("replica-serve-stale-data", Bool, "yes", NONE),
    d("replicaof", ReplicaOf, "", IMMUTABLE),
    d("requirepass", Str, "", LIVE),
    d(
        "sanitize-dump-payload",
        Enum(&["no", "yes", "clients"]),
        "no",
        LIVE,
    ),
    d("save", Save, "3600 1 300 100 60 10000", LIVE),
    d("server_cpulist", Str, "", IMMUTABLE),
    d(
        "set-max-intset-entries",
        Int(0, 9223372036854775807),
        "512",
        LIVE,
    ),
    d("set-proc-title", Bool, "yes", IMMUTABLE | LIVE),
    d(
        "shutdown-on-sigint",
        Enum(&["default", "save", "nosave", "now", "force"]),
        "default",
        LIVE,
    ),
    d(
        "shutdown-on-sigterm",
        Enum(&["default", "save", "nosave", "now", "force"]),
        "default",
        LIVE,
    ),
    d("shutdown-timeout", Int(0, 2147483647), "10", LIVE),
    d(
        "slowlog-log-slower-than",
        Int(-1, 9223372036854775807),
        "10000",
        LIVE,
    ),
    d("slowlog-max-len", Int(0, 9223372036854775807), "128", LIVE),
    d("socket-mark-id", Int(0, 4294967295), "0", IMMUTABLE | LIVE),
    d("stop-writes-on-bgsave-error", Bool, "yes", LIVE),
    d(
        "stream-node-max-bytes",
        Memory(0, 9223372036854775807),
        "4096",
        LIVE,
    ),
    d(
        "stream-node-max-entries",
        Int(0, 9223372036854775807),
        "100",
        LIVE,
    ),
    d(
        "supervised",
        Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
        IMMUTABLE | LIVE,
    ),
    d("syslog-enabled", Bool, "no", IMMUTABLE | LIVE),
    d(
        "syslog-facility",
        Enum(&[
            "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
        ]),
        "local0",
        IMMUTABLE | LIVE,
    ),
    d("syslog-ident", Str, "redis", IMMUTABLE | LIVE),
    d("tcp-backlog", Int(0, 2147483647), "511", IMMUTABLE | LIVE),
    d("tcp-keepalive", Int(0, 2147483647), "300", LIVE),
    // Strata's memory tier (not in Redis): see `crate::tier`.
    d("tiering", Bool, "yes", IMMUTABLE | LIVE),
    d(
        "tiering-auto-memory-percent",
        Int(1, 100),
        "80",
        IMMUTABLE | LIVE,
    ),
    d("tiering-compression", Enum(&["none", "zstd"]), "none", LIVE),
    d("tiering-compression-level", Int(1, 22), "1", LIVE),
    d("tiering-dir", Str, "", IMMUTABLE | LIVE),
    d(
        "tiering-max-disk",
        Memory(0, 9223372036854775807),
        "0",
        LIVE,
    ),
    d("tiering-min-value-size", Memory(0, 2147483647), "64", LIVE),
    d("timeout", Int(0, 2147483647), "0", LIVE),
    d(
        "tls-auth-clients",
        Enum(&["no", "yes", "optional"]),
        "yes",
        NONE,
    ),
    d("tls-ca-cert-dir", Str, "", NONE),
    d("tls-ca-cert-file", Str, "", NONE),
    d("tls-cert-file", Str, "", NONE),
    d("tls-ciphers", Str, "", NONE),
    d("tls-ciphersuites", Str, "", NONE),
    d("tls-client-cert-file", Str, "", NONE),
    d("tls-client-key-file", Str, "", NONE),
    d("tls-client-key-file-pass", Str, "", NONE),
    d("tls-cluster", Bool, "no", NONE),
    d("tls-dh-params-file", Str, "", NONE),
    d("tls-key-file", Str, "", NONE),
    d("tls-key-file-pass", Str, "", NONE),
    d("tls-port", Int(0, 65535), "0", NONE),
    d("tls-prefer-server-ciphers", Bool, "no", NONE),
    d("tls-protocols", Str, "", NONE),
    d("tls-replication", Bool, "no", NONE),
    d("tls-session-cache-size", Int(0, 2147483647), "20480", NONE),
    d("tls-session-cache-timeout", Int(0, 2147483647), "300", NONE),
    d("tls-session-caching", Bool, "yes", NONE),
    d(
        "tracking-table-max-keys",
        Int(0, 9223372036854775807),
        "1000000",
        NONE,
    ),
    d("unixsocket", Str, "", IMMUTABLE),
    d("unixsocketperm", Octal, "0", IMMUTABLE | LIVE),
    d(
        "zset-max-listpack-entries",
        Int(0, 9223372036854775807),
        "128",
        LIVE,
    ),
    d(
        "zset-max-listpack-value",
        Memory(0, 9223372036854775807),
        "64",
        LIVE,
    ),
];

/// Old names Redis still accepts; CONFIG GET answers under both.
pub static ALIASES: &[(&str, &str)] = &[
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
    (
        "cluster-slave-validity-factor",
        "cluster-replica-validity-factor",
    ),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("lua-time-limit", "busy-reply-threshold"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("slave-announce-port", "replica-announce-port"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("slave-priority", "replica-priority"),
    ("slave-read-only", "replica-read-only"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slaveof", "replicaof"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
];

/// Directive name to table index, built once.
/// The table position of the directive named exactly `name`; evaluated at compile time by
/// [`crate::config_int`], where a misspelt name fails the build.
pub const fn position(name: &str) -> usize {
    let mut index = 0;
    while index < DIRECTIVES.len() {
        if same_bytes(DIRECTIVES[index].name.as_bytes(), name.as_bytes()) {
            return index;
        }
        index += 1;
    }
    panic!("no such directive");
}

const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut index = 0;
    while index < a.len() {
        if a[index] != b[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// `config_int!(config, "name")`: an integer directive, its position resolved at compile
/// time. For per-command paths; elsewhere `config.int("name")` reads better.
#[macro_export]
macro_rules! config_int {
    ($config:expr, $name:literal) => {
        $config.int_at(const { $crate::config::position($name) })
    };
}

fn exact_names() -> &'static std::collections::HashMap<&'static str, usize, ahash::RandomState> {
    static NAMES: std::sync::OnceLock<
        std::collections::HashMap<&'static str, usize, ahash::RandomState>,
    > = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names =
            std::collections::HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4));
        for (index, directive) in TABLE.iter().enumerate() {
            names.insert(directive.name, index);
        }
        for (alias, canonical) in ALIASES {
            if let Some(&index) = names.get(canonical) {
                names.insert(*alias, index);
            }
        }
        names
    })
}

/// Keyspace notification classes, in the order Redis prints them.
const EVENT_FLAGS: &[(char, i64)] = &[
    ('g', notify::GENERIC as i64),
    ('$', notify::STRING as i64),
    ('l', notify::LIST as i64),
    ('s', notify::SET as i64),
    ('h', notify::HASH as i64),
    ('z', notify::ZSET as i64),
    ('x', notify::EXPIRED as i64),
    ('e', notify::EVICTED as i64),
    ('t', notify::STREAM as i64),
    ('d', notify::MODULE as i64),
    ('n', notify::NEW as i64),
];
pub const NOTIFY_KEYSPACE: i64 = notify::KEYSPACE as i64;
pub const NOTIFY_KEYEVENT: i64 = notify::KEYEVENT as i64;
pub const NOTIFY_KEY_MISS: i64 = notify::KEY_MISS as i64;
/// `A`: every class but `n` and `m`.
pub const NOTIFY_ALL: i64 = notify::ALL as i64;
const NOTIFY_NEW: i64 = notify::NEW as i64;

/// One directive's current value: numbers in the atomic, text behind the lock.
struct Slot {
    number: AtomicI64,
    text: RwLock<String>,
    /// Whether the file or the command line gave it (defaults some directives take from the
    /// machine apply only when they did not: `io-threads`).
    given: AtomicBool,
}

/// The values in force. Shared by every connection; reads are lock-free for numbers.
pub struct Config {
    slots: Vec<Slot>,
}

/// Where a value comes from: the file and command line may set what CONFIG SET may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Startup,
    ConfigSet,
}

impl Default for Config {
    fn default() -> Config {
        let config = Config {
            slots: TABLE
                .iter()
                .map(|_| Slot {
                    number: AtomicI64::new(0),
                    text: RwLock::new(String::new()),
                    given: AtomicBool::new(false),
                })
                .collect(),
        };
        for (index, directive) in TABLE.iter().enumerate() {
            let value = parse_value(directive, &default_args(directive))
                .unwrap_or_else(|err| panic!("default of {} is invalid: {err}", directive.name));
            config.store(index, value);
        }
        config
    }
}

/// A parsed value, ready to store.
enum Parsed {
    Number(i64),
    Text(String),
}

impl Config {
    /// Index of a directive or alias in [`TABLE`], case-insensitively.
    pub fn index(name: &str) -> Option<usize> {
        // Hot paths ask by exact lower-case name: one hash look-up, no allocation.
        if let Some(&index) = exact_names().get(name) {
            return Some(index);
        }
        let lower = name.to_ascii_lowercase();
        if let Some(&index) = exact_names().get(lower.as_str()) {
            return Some(index);
        }
        let canonical = ALIASES
            .iter()
            .find(|(alias, _)| *alias == lower)
            .map(|(_, canonical)| *canonical)?;
        exact_names().get(canonical).copied()
    }

    /// An integer directive by its table position (`config::position`), for hot paths that
    /// would otherwise hash the name on every command.
    pub fn int_at(&self, index: usize) -> i64 {
        self.slots[index].number.load(Ordering::Relaxed)
    }

    fn slot(&self, name: &str) -> &Slot {
        let index = Config::index(name).unwrap_or_else(|| panic!("no directive named {name}"));
        &self.slots[index]
    }

    /// An integer, memory, boolean (0/1), enum-index or octal directive.
    pub fn int(&self, name: &str) -> i64 {
        self.slot(name).number.load(Ordering::Relaxed)
    }

    pub fn bool(&self, name: &str) -> bool {
        self.int(name) != 0
    }

    /// The chosen word of an enum directive.
    pub fn word(&self, name: &str) -> &'static str {
        let index = Config::index(name).expect("known directive");
        match TABLE[index].kind {
            Enum(options) => options[self.slots[index].number.load(Ordering::Relaxed) as usize],
            _ => panic!("{name} is not an enum directive"),
        }
    }

    /// A text directive as stored (`dir` is absolute once the server has started).
    pub fn text(&self, name: &str) -> String {
        self.slot(name).text.read().clone()
    }

    /// Sets a directive from its arguments, validating as Redis does. The error is Redis's
    /// reason text ("argument must be 'yes' or 'no'").
    pub fn set(&self, name: &str, args: &[&str], source: Source) -> Result<(), String> {
        let index = Config::index(name).ok_or_else(|| "Bad directive".to_string())?;
        let directive = &TABLE[index];
        if source == Source::ConfigSet {
            if directive.flags & IMMUTABLE != 0 {
                return Err("can't set immutable config".into());
            }
            if directive.flags & PROTECTED != 0 && self.int("enable-protected-configs") == 0 {
                return Err("can't set protected config".into());
            }
        }
        let value = parse_value(directive, args)?;
        self.store(index, value);
        if source == Source::Startup {
            self.slots[index].given.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether the file or the command line set the directive.
    pub fn given(&self, name: &str) -> bool {
        self.slot(name).given.load(Ordering::Relaxed)
    }

    /// Validates without storing (CONFIG SET checks every parameter before applying any).
    pub fn check(&self, name: &str, args: &[&str], source: Source) -> Result<(), String> {
        let index = Config::index(name).ok_or_else(|| "Bad directive".to_string())?;
        let directive = &TABLE[index];
        if source == Source::ConfigSet && directive.flags & IMMUTABLE != 0 {
            return Err("can't set immutable config".into());
        }
        if source == Source::ConfigSet
            && directive.flags & PROTECTED != 0
            && self.int("enable-protected-configs") == 0
        {
            return Err("can't set protected config".into());
        }
        parse_value(directive, args).map(|_| ())
    }

    fn store(&self, index: usize, value: Parsed) {
        let slot = &self.slots[index];
        match value {
            Parsed::Number(number) => slot.number.store(number, Ordering::Relaxed),
            Parsed::Text(text) => *slot.text.write() = text,
        }
    }

    /// The value as CONFIG GET prints it.
    pub fn render(&self, index: usize) -> String {
        let directive = &TABLE[index];
        let slot = &self.slots[index];
        let number = slot.number.load(Ordering::Relaxed);
        match directive.kind {
            Bool => if number != 0 { "yes" } else { "no" }.to_string(),
            Int(..) | Memory(..) => number.to_string(),
            Enum(options) => options[number as usize].to_string(),
            Octal => format!("{number:o}"),
            KeyspaceEvents => render_events(number),
            _ => slot.text.read().clone(),
        }
    }

    /// `(name, value)` for every directive and alias whose name matches the glob `pattern`.
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        for (index, directive) in TABLE.iter().enumerate() {
            if crate::util::glob_match(pattern, directive.name.as_bytes(), true) {
                found.push((directive.name, self.render(index)));
            }
        }
        for (alias, canonical) in ALIASES {
            if crate::util::glob_match(pattern, alias.as_bytes(), true) {
                let index = Config::index(canonical).expect("aliases name real directives");
                found.push((*alias, self.render(index)));
            }
        }
        found
    }

    /// Loads a redis.conf-style text (the file, then the command-line options as lines).
    /// On error returns Redis's fatal-error report naming the line.
    pub fn load_text(&self, text: &str) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fail = |reason: &str| {
                format!(
                    "\n*** FATAL CONFIG FILE ERROR (Strata {}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}",
                    env!("CARGO_PKG_VERSION"),
                    number + 1,
                    trimmed,
                    reason
                )
            };
            let Some(words) = split_args(trimmed.as_bytes()) else {
                return Err(fail("Unbalanced quotes in configuration line"));
            };
            let words: Vec<String> = words
                .into_iter()
                .map(|word| String::from_utf8_lossy(&word).into_owned())
                .collect();
            let Some((name, args)) = words.split_first() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if matches!(
                name.as_str(),
                "include" | "rename-command" | "user" | "loadmodule"
            ) {
                warnings.push(format!(
                    "'{name}' is not supported yet; line {} ignored",
                    number + 1
                ));
                continue;
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let Some(index) = Config::index(&name) else {
                return Err(fail("Bad directive or wrong number of arguments"));
            };
            if let Err(reason) = self.set(&name, &args, Source::Startup) {
                return Err(fail(&reason));
            }
            let directive = &TABLE[index];
            if directive.flags & LIVE == 0 && self.render(index) != self.default_rendering(index) {
                warnings.push(format!(
                    "'{}' is accepted but not acted on yet (line {})",
                    directive.name,
                    number + 1
                ));
            }
        }
        Ok(warnings)
    }

    fn default_rendering(&self, index: usize) -> String {
        let scratch = Config::default();
        scratch.render(index)
    }
}

/// A directive's default as the argument list a file line would give.
fn default_args(directive: &Directive) -> Vec<&'static str> {
    if matches!(directive.kind, ReplicaOf) && directive.default.is_empty() {
        return Vec::new();
    }
    vec![directive.default]
}

/// Parses Redis's memory notation: `100`, `1k` (1000), `1kb` (1024), `m`, `mb`, `g`, `gb`.
pub fn parse_memory(text: &str) -> Option<i64> {
    let lower = text.to_ascii_lowercase();
    let (digits, multiplier) = [
        ("gb", 1i64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1_000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, multiplier)| lower.strip_suffix(suffix).map(|d| (d, *multiplier)))
    .unwrap_or((lower.as_str(), 1));
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(multiplier)
}

fn parse_value(directive: &Directive, args: &[&str]) -> Result<Parsed, String> {
    let single = || -> Result<&str, String> {
        match args {
            [one] => Ok(*one),
            _ => Err("wrong number of arguments".to_string()),
        }
    };
    match directive.kind {
        Bool => match single()?.to_ascii_lowercase().as_str() {
            "yes" => Ok(Parsed::Number(1)),
            "no" => Ok(Parsed::Number(0)),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Int(min, max) => {
            let value: i64 = crate::protocol::parser::parse_i64(single()?.as_bytes())
                .ok_or("argument couldn't be parsed into an integer")?;
            check_range(value, min, max)
        }
        Memory(min, max) => {
            let value = parse_memory(single()?).ok_or("argument must be a memory value")?;
            check_range(value, min, max)
        }
        Enum(options) => {
            let word = single()?.to_ascii_lowercase();
            options
                .iter()
                .position(|option| *option == word)
                .map(|index| Parsed::Number(index as i64))
                .ok_or_else(|| {
                    format!(
                        "argument(s) must be one of the following: {}",
                        options.join(", ")
                    )
                })
        }
        Octal => i64::from_str_radix(single()?, 8)
            .map(Parsed::Number)
            .map_err(|_| "argument couldn't be parsed into an integer".into()),
        Str | Dir => Ok(Parsed::Text(single()?.to_string())),
        MemoryOrPercent => {
            let word = single()?;
            let valid = match word.strip_suffix('%') {
                Some(percent) => percent.parse::<u64>().is_ok(),
                None => parse_memory(word).is_some(),
            };
            if valid {
                Ok(Parsed::Text(word.to_string()))
            } else {
                Err("argument must be a memory or percent value".into())
            }
        }
        Bind => {
            let words: Vec<&str> = args.iter().flat_map(|arg| arg.split_whitespace()).collect();
            if words.is_empty() || words.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            Ok(Parsed::Text(words.join(" ")))
        }
        Save => {
            let words: Vec<&str> = args.iter().flat_map(|arg| arg.split_whitespace()).collect();
            if words.len() % 2 != 0 || words.iter().any(|w| w.parse::<u64>().is_err()) {
                return Err("Invalid save parameters".into());
            }
            Ok(Parsed::Text(words.join(" ")))
        }
        ClientOutputBufferLimit => parse_output_buffer_limits(args),
        KeyspaceEvents => {
            let flags = parse_events(single()?)
                .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?;
            Ok(Parsed::Number(flags))
        }
        OomScoreAdjValues => {
            let words: Vec<&str> = args.iter().flat_map(|arg| arg.split_whitespace()).collect();
            if words.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            for word in &words {
                match word.parse::<i64>() {
                    Ok(value) if (-2000..=2000).contains(&value) => {}
                    _ => return Err(
                        "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
                            .into(),
                    ),
                }
            }
            Ok(Parsed::Text(words.join(" ")))
        }
        Percentiles => {
            let words: Vec<&str> = args.iter().flat_map(|arg| arg.split_whitespace()).collect();
            for word in &words {
                match word.parse::<f64>() {
                    Ok(value) if (0.0..=100.0).contains(&value) => {}
                    _ => return Err("latency-tracking-info-percentiles parameter should be between 0.0 and 100.0".into()),
                }
            }
            Ok(Parsed::Text(words.join(" ")))
        }
        ReplicaOf => match args {
            [] => Ok(Parsed::Text(String::new())),
            [host, port] if host.eq_ignore_ascii_case("no") && port.eq_ignore_ascii_case("one") => {
                Ok(Parsed::Text(String::new()))
            }
            [host, port] if port.parse::<u16>().is_ok() => {
                Ok(Parsed::Text(format!("{host} {port}")))
            }
            [_, _] => Err("Invalid master port".into()),
            _ => Err("wrong number of arguments".into()),
        },
    }
}

fn check_range(value: i64, min: i64, max: i64) -> Result<Parsed, String> {
    if value < min || value > max {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(Parsed::Number(value))
}

fn parse_events(text: &str) -> Option<i64> {
    let mut flags = 0;
    for c in text.chars() {
        flags |= match c {
            'A' => NOTIFY_ALL,
            'K' => NOTIFY_KEYSPACE,
            'E' => NOTIFY_KEYEVENT,
            'm' => NOTIFY_KEY_MISS,
            other => EVENT_FLAGS.iter().find(|(flag, _)| *flag == other)?.1,
        };
    }
    Some(flags)
}

fn render_events(flags: i64) -> String {
    let mut out = String::new();
    if flags & NOTIFY_ALL == NOTIFY_ALL {
        out.push('A');
        if flags & NOTIFY_NEW != 0 {
            out.push('n');
        }
    } else {
        for (flag, bit) in EVENT_FLAGS {
            if flags & bit != 0 {
                out.push(*flag);
            }
        }
    }
    for (flag, bit) in [
        ('K', NOTIFY_KEYSPACE),
        ('E', NOTIFY_KEYEVENT),
        ('m', NOTIFY_KEY_MISS),
    ] {
        if flags & bit != 0 {
            out.push(flag);
        }
    }
    out
}

/// One class of `client-output-buffer-limit`, in bytes and seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputBufferLimit {
    pub hard_bytes: u64,
    pub soft_bytes: u64,
    pub soft_seconds: u64,
}

/// The three classes Redis knows, in its order.
pub const OUTPUT_BUFFER_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

fn parse_output_buffer_limits(args: &[&str]) -> Result<Parsed, String> {
    let words: Vec<&str> = args.iter().flat_map(|arg| arg.split_whitespace()).collect();
    if words.is_empty() || words.len() % 4 != 0 {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut limits = [
        OutputBufferLimit::default(),
        OutputBufferLimit {
            hard_bytes: 256 << 20,
            soft_bytes: 64 << 20,
            soft_seconds: 60,
        },
        OutputBufferLimit {
            hard_bytes: 32 << 20,
            soft_bytes: 8 << 20,
            soft_seconds: 60,
        },
    ];
    for group in words.chunks(4) {
        let class = match group[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let hard = parse_memory(group[1]);
        let soft = parse_memory(group[2]);
        let seconds = group[3].parse::<u64>().ok();
        match (hard, soft, seconds) {
            (Some(hard), Some(soft), Some(seconds)) => {
                limits[class] = OutputBufferLimit {
                    hard_bytes: hard as u64,
                    soft_bytes: soft as u64,
                    soft_seconds: seconds,
                };
            }
            _ => {
                return Err(
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .into(),
                )
            }
        }
    }
    Ok(Parsed::Text(render_output_buffer_limits(&limits)))
}

fn render_output_buffer_limits(limits: &[OutputBufferLimit; 3]) -> String {
    OUTPUT_BUFFER_CLASSES
        .iter()
        .zip(limits)
        .map(|(class, limit)| {
            format!(
                "{class} {} {} {}",
                limit.hard_bytes, limit.soft_bytes, limit.soft_seconds
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Config {
    /// The limits of one client class (`normal`, `slave`, `pubsub`).
    pub fn output_buffer_limit(&self, class: &str) -> OutputBufferLimit {
        let text = self.text("client-output-buffer-limit");
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .chunks(4)
            .find(|group| group[0] == class)
            .map(|group| OutputBufferLimit {
                hard_bytes: group[1].parse().unwrap_or(0),
                soft_bytes: group[2].parse().unwrap_or(0),
                soft_seconds: group[3].parse().unwrap_or(0),
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_defaults_parse() {
        assert!(TABLE.windows(2).all(|pair| pair[0].name < pair[1].name));
        let config = Config::default();
        assert_eq!(config.int("port"), 6379);
        assert_eq!(config.int("proto-max-bulk-len"), 512 << 20);
        assert_eq!(config.int("client-query-buffer-limit"), 1 << 30);
        assert_eq!(config.int("maxclients"), 10000);
        assert_eq!(config.word("appendfsync"), "everysec");
        assert_eq!(config.text("save"), "3600 1 300 100 60 10000");
        for (alias, canonical) in ALIASES {
            assert!(Config::index(alias).is_some() && Config::index(canonical).is_some());
        }
    }

    #[test]
    fn validation_texts_match_redis() {
        let config = Config::default();
        let set = |name, value| config.set(name, &[value], Source::ConfigSet);
        assert_eq!(
            set("maxclients", "abc").unwrap_err(),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            set("maxclients", "0").unwrap_err(),
            "argument must be between 1 and 4294967295 inclusive"
        );
        assert_eq!(
            set("activerehashing", "maybe").unwrap_err(),
            "argument must be 'yes' or 'no'"
        );
        assert_eq!(
            set("maxmemory", "-1").unwrap_err(),
            "argument must be a memory value"
        );
        assert_eq!(
            set("databases", "4").unwrap_err(),
            "can't set immutable config"
        );
        assert_eq!(
            set("dir", "/tmp").unwrap_err(),
            "can't set protected config"
        );
        assert_eq!(
            set("loglevel", "loud").unwrap_err(),
            "argument(s) must be one of the following: debug, verbose, notice, warning"
        );
        set("maxmemory", "1mb").unwrap();
        assert_eq!(config.int("maxmemory"), 1 << 20);
        set("notify-keyspace-events", "KEA").unwrap();
        assert_eq!(
            config.render(Config::index("notify-keyspace-events").unwrap()),
            "AKE"
        );
        set("slave-read-only", "no").unwrap();
        assert!(!config.bool("replica-read-only"));
    }

    #[test]
    fn file_errors_name_the_line() {
        let config = Config::default();
        let err = config
            .load_text("port 7000\n\nmaxclients lots\n")
            .unwrap_err();
        assert!(err.contains("at line 3"), "{err}");
        assert!(err.contains(">>> 'maxclients lots'"), "{err}");
        assert!(
            err.ends_with("argument couldn't be parsed into an integer"),
            "{err}"
        );
        let err = config.load_text("no-such-thing 1\n").unwrap_err();
        assert!(
            err.ends_with("Bad directive or wrong number of arguments"),
            "{err}"
        );
        assert!(config.load_text("save 900 1\nappendonly yes\n").is_ok());
        assert_eq!(config.int("port"), 7000);
    }
}
