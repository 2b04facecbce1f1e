//! INFO: the server's report, in Redis 7.0's sections, field names and order.
//!
//! `INFO [section ...]`: no section means `default`; `all` is every section but module-made
//! ones; `everything` is all of them; names are case-insensitive and unknown ones add nothing.
//! Sections always come out in Redis's order, whatever the order asked. Every value is
//! Strata's own, honestly: a subsystem Strata does not have yet (forks, Lua, replicas) reports
//! Redis's idle values (0, -1, `ok`), and fields Strata cannot measure (allocator internals,
//! latency percentiles) are left out rather than invented.
//!
//! The reply is a bulk string, and a verbatim `txt` string under RESP3, as Redis 7.0 sends it.

use super::exec::Ctx;
use super::table::{table, Lock, Spec};
use crate::error::CmdResult;
use crate::protocol::Reply;
use crate::server::Server;
use crate::tier::alloc::{proc_kilobytes, resident_bytes};
use bytes::Bytes;
use parking_lot::Mutex;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// INFO holds every shard while it renders: its keyspace section counts them, and a handler
/// never locks the keyspace itself (inside EXEC that would deadlock on the held shards).
pub static COMMANDS: &[Spec] = &[Spec::new("info", info, Lock::All)];

/// Every section, in the order Redis prints them: (name asked for, heading).
const SECTIONS: &[(&str, &str)] = &[
    ("server", "Server"),
    ("clients", "Clients"),
    ("memory", "Memory"),
    ("tiering", "Tiering"),
    ("persistence", "Persistence"),
    ("stats", "Stats"),
    ("replication", "Replication"),
    ("cpu", "CPU"),
    ("modules", "Modules"),
    ("commandstats", "Commandstats"),
    ("errorstats", "Errorstats"),
    ("latencystats", "Latencystats"),
    ("cluster", "Cluster"),
    ("keyspace", "Keyspace"),
];

/// What a bare `INFO` (or `INFO default`) prints.
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "tiering",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Sections `all` leaves out (Redis's module-generated sections; Strata has none, but the
/// distinction is kept so `all` and `everything` mean what they mean in Redis).
const ALL_EXCLUDES: &[&str] = &[];

/// Highest `used_memory` seen by INFO, reset by CONFIG RESETSTAT (Redis's stat_peak_memory).
static PEAK_MEMORY_BYTES: AtomicU64 = AtomicU64::new(0);

/// The last sample behind `instantaneous_*`: (unix ms, commands, input bytes, output bytes)
/// and the rates computed from the previous sample.
struct RateSample {
    at_ms: u64,
    commands: u64,
    input_bytes: u64,
    output_bytes: u64,
    ops_per_sec: u64,
    input_kbps: f64,
    output_kbps: f64,
}

static RATES: Mutex<Option<RateSample>> = Mutex::new(None);

/// Shortest interval between two rate samples; shorter gaps reuse the previous rates.
const RATE_INTERVAL_MS_MIN: u64 = 100;

/// `INFO [section ...]`.
fn info(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let names: Vec<String> = argv[1..]
        .iter()
        .map(|arg| String::from_utf8_lossy(arg).to_ascii_lowercase())
        .collect();
    let selected = select_sections(&names);
    let counts = ctx.ks.counts(ctx.server.keyspace.databases());
    let text = render(ctx.server, ctx.now_ms(), &selected, &counts);
    Ok(Reply::Verbatim("txt", Bytes::from(text)))
}

/// The sections `names` ask for, in Redis's order.
pub fn select_sections(names: &[String]) -> Vec<&'static str> {
    let mut everything = false;
    let mut all = false;
    let mut wanted: Vec<&str> = Vec::new();
    if names.is_empty() {
        wanted.extend_from_slice(DEFAULT_SECTIONS);
    }
    for name in names {
        match name.as_str() {
            "everything" => everything = true,
            "all" => all = true,
            "default" => wanted.extend_from_slice(DEFAULT_SECTIONS),
            // Redis 7.0 answers the module list under both names.
            "module_list" => wanted.push("modules"),
            other => wanted.push(other),
        }
    }
    SECTIONS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| everything || (all && !ALL_EXCLUDES.contains(name)) || wanted.contains(name))
        .collect()
}

/// The whole report for the chosen sections.
/// `counts`: keys and keys-with-expiry per database.
pub fn render(
    server: &Server,
    now_ms: u64,
    sections: &[&str],
    counts: &[(usize, usize)],
) -> String {
    let mut out = String::new();
    for (index, name) in sections.iter().enumerate() {
        if index > 0 {
            out.push_str("\r\n");
        }
        let heading = SECTIONS
            .iter()
            .find(|(section, _)| section == name)
            .map(|(_, heading)| *heading)
            .unwrap_or("Unknown");
        let _ = write!(out, "# {heading}\r\n");
        let fields = match *name {
            "server" => server_section(server, now_ms),
            "clients" => clients_section(server),
            "memory" => memory_section(server),
            "tiering" => tiering_section(server, counts),
            "persistence" => persistence_section(server),
            "stats" => stats_section(server, now_ms),
            "replication" => replication_section(server),
            "cpu" => cpu_section(),
            "commandstats" => commandstats_section(server),
            "errorstats" => errorstats_section(server),
            "cluster" => vec![("cluster_enabled".into(), "0".into())],
            "keyspace" => keyspace_section(counts),
            _ => Vec::new(),
        };
        for (field, value) in fields {
            let _ = write!(out, "{field}:{value}\r\n");
        }
    }
    out
}

type Fields = Vec<(String, String)>;

/// Builds a field list from `name => value` pairs.
macro_rules! fields {
    ($($name:expr => $value:expr),* $(,)?) => {
        vec![$(($name.to_string(), $value.to_string())),*]
    };
}

fn server_section(server: &Server, now_ms: u64) -> Fields {
    let uptime_s = server.uptime_seconds();
    let now_us = server.clock.now_us().max(now_ms * 1000);
    fields![
        "redis_version" => crate::REDIS_VERSION,
        "strata_version" => env!("CARGO_PKG_VERSION"),
        "redis_git_sha1" => "00000000",
        "redis_git_dirty" => 0,
        "redis_build_id" => build_id(),
        "redis_mode" => "standalone",
        "os" => os_name(),
        "arch_bits" => usize::BITS,
        "monotonic_clock" => "POSIX clock_gettime",
        "multiplexing_api" => "epoll",
        "atomicvar_api" => "c11-builtin",
        "gcc_version" => "0.0.0",
        "process_id" => std::process::id(),
        "process_supervised" => server.config.word("supervised"),
        "run_id" => server.run_id,
        "tcp_port" => server.bound_port.load(Ordering::Relaxed),
        "server_time_usec" => now_us,
        "uptime_in_seconds" => uptime_s,
        "uptime_in_days" => uptime_s / 86400,
        "hz" => server.config.int("hz"),
        "configured_hz" => server.config.int("hz"),
        "lru_clock" => crate::keyspace::entry::lru_clock(now_ms),
        "executable" => executable(),
        "config_file" => server.config_file,
        "io_threads_active" => u8::from(server.config.int("io-threads") > 1),
    ]
}

/// Redis's build id is a hash of its build; Strata's is derived from its version.
fn build_id() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in env!("CARGO_PKG_VERSION").bytes() {
        hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:015x}", hash & 0x0fff_ffff_ffff_ffff)
}

/// `uname -s -r -m`, read from /proc (what Redis prints from `uname(2)`).
fn os_name() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .unwrap_or_default()
    };
    let system = match read("/proc/sys/kernel/ostype") {
        name if name.is_empty() => std::env::consts::OS.to_string(),
        name => name,
    };
    format!(
        "{system} {} {}",
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH
    )
}

fn executable() -> String {
    // Linux appends " (deleted)" once the binary has been replaced on disk.
    std::env::current_exe()
        .map(|path| {
            let text = path.to_string_lossy();
            text.strip_suffix(" (deleted)").unwrap_or(&text).to_string()
        })
        .unwrap_or_default()
}

fn clients_section(server: &Server) -> Fields {
    let clients = server.clients.all();
    let mut input_max = 0;
    let mut output_max = 0;
    for client in &clients {
        let info = client.info.lock();
        input_max = input_max.max(info.query_buffer_bytes);
        output_max = output_max.max(client.output_memory());
    }
    fields![
        "connected_clients" => clients.len(),
        "cluster_connections" => 0,
        "maxclients" => server.config.int("maxclients"),
        "client_recent_max_input_buffer" => input_max,
        "client_recent_max_output_buffer" => output_max,
        "blocked_clients" => server.blocked.len(),
        "tracking_clients" => 0,
        "clients_in_timeout_table" => 0,
    ]
}

/// Redis's `bytesToHuman`.
pub fn bytes_to_human(bytes: u64) -> String {
    const UNITS: &[(f64, &str)] = &[
        (1024.0, "K"),
        (1024.0 * 1024.0, "M"),
        (1024.0 * 1024.0 * 1024.0, "G"),
        (1024.0 * 1024.0 * 1024.0 * 1024.0, "T"),
        (1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0, "P"),
    ];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let value = bytes as f64;
    for (index, (scale, unit)) in UNITS.iter().enumerate() {
        let next = UNITS.get(index + 1).map(|(next, _)| *next);
        if next.is_none_or(|next| value < next) {
            return format!("{:.2}{unit}", value / scale);
        }
    }
    format!("{bytes}B")
}

/// `used_memory` now, folding it into the peak.
pub fn used_memory_sampled() -> u64 {
    let used = crate::tier::used_memory() as u64;
    PEAK_MEMORY_BYTES.fetch_max(used, Ordering::Relaxed);
    used
}

fn memory_section(server: &Server) -> Fields {
    let used = used_memory_sampled();
    let peak = PEAK_MEMORY_BYTES.load(Ordering::Relaxed).max(used);
    let rss = resident_bytes();
    let system = proc_kilobytes("/proc/meminfo", "MemTotal:");
    let maxmemory = server.config.int("maxmemory").max(0) as u64;
    let clients_normal: u64 = server
        .clients
        .all()
        .iter()
        .map(|client| {
            let info = client.info.lock();
            (info.query_buffer_bytes + client.output_memory()) as u64
        })
        .sum();
    let ratio = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    fields![
        "used_memory" => used,
        "used_memory_human" => bytes_to_human(used),
        "used_memory_rss" => rss,
        "used_memory_rss_human" => bytes_to_human(rss),
        "used_memory_peak" => peak,
        "used_memory_peak_human" => bytes_to_human(peak),
        "used_memory_peak_perc" => format!("{:.2}%", 100.0 * ratio(used, peak)),
        "total_system_memory" => system,
        "total_system_memory_human" => bytes_to_human(system),
        "used_memory_lua" => 0,
        "used_memory_vm_eval" => 0,
        "used_memory_lua_human" => "0B",
        "used_memory_scripts_eval" => 0,
        "number_of_cached_scripts" => 0,
        "number_of_functions" => 0,
        "number_of_libraries" => 0,
        "used_memory_vm_functions" => 0,
        "used_memory_vm_total" => 0,
        "used_memory_vm_total_human" => "0B",
        "used_memory_functions" => 0,
        "used_memory_scripts" => 0,
        "used_memory_scripts_human" => "0B",
        "maxmemory" => maxmemory,
        "maxmemory_human" => bytes_to_human(maxmemory),
        "maxmemory_policy" => server.config.word("maxmemory-policy"),
        "mem_fragmentation_ratio" => format!("{:.2}", ratio(rss, used)),
        "mem_fragmentation_bytes" => rss as i64 - used as i64,
        "mem_not_counted_for_evict" => 0,
        "mem_replication_backlog" => 0,
        "mem_total_replication_buffers" => 0,
        "mem_clients_slaves" => 0,
        "mem_clients_normal" => clients_normal,
        "mem_cluster_links" => 0,
        "mem_aof_buffer" => 0,
        "mem_allocator" => "mimalloc",
        "active_defrag_running" => 0,
        "lazyfree_pending_objects" => 0,
        "lazyfreed_objects" => 0,
    ]
}

fn persistence_section(server: &Server) -> Fields {
    let aof = server.aof.stats();
    let rdb = &server.rdb;
    let now_ms = server.clock.now_ms();
    let last_rewrite_seconds = if aof.rewrites.load(Ordering::Relaxed) == 0 {
        -1
    } else {
        (aof.last_rewrite_ms.load(Ordering::Relaxed) / 1000) as i64
    };
    let mut fields = fields![
        "loading" => i64::from(server.loading.is_active()),
        "async_loading" => 0,
        "current_cow_peak" => 0,
        "current_cow_size" => 0,
        "current_cow_size_age" => 0,
        "current_fork_perc" => "0.00",
        "current_save_keys_processed" => 0,
        "current_save_keys_total" => 0,
        "rdb_changes_since_last_save" => rdb.changes_since_save(server.stats.dirty.load(Ordering::Relaxed)),
        "rdb_bgsave_in_progress" => i64::from(rdb.in_progress.load(Ordering::Relaxed)),
        "rdb_last_save_time" => rdb.last_save_s.load(Ordering::Relaxed),
        "rdb_last_bgsave_status" => if rdb.last_bgsave_failed.load(Ordering::Relaxed) { "err" } else { "ok" },
        "rdb_last_bgsave_time_sec" => match rdb.last_bgsave_ms.load(Ordering::Relaxed) {
            u64::MAX => -1,
            ms => (ms / 1000) as i64,
        },
        "rdb_current_bgsave_time_sec" => match rdb.current_start_ms.load(Ordering::Relaxed) {
            0 => -1,
            start => (now_ms.saturating_sub(start) / 1000) as i64,
        },
        "rdb_saves" => rdb.saves.load(Ordering::Relaxed),
        "rdb_last_cow_size" => 0,
        "rdb_last_load_keys_expired" => rdb.last_load_expired.load(Ordering::Relaxed),
        "rdb_last_load_keys_loaded" => rdb.last_load_keys.load(Ordering::Relaxed),
        "aof_enabled" => i64::from(server.aof.is_enabled()),
        "aof_rewrite_in_progress" => i64::from(aof.rewrite_in_progress.load(Ordering::Relaxed)),
        "aof_rewrite_scheduled" => i64::from(aof.rewrite_scheduled.load(Ordering::Relaxed)),
        "aof_last_rewrite_time_sec" => last_rewrite_seconds,
        "aof_current_rewrite_time_sec" => -1,
        "aof_last_bgrewrite_status" => if aof.last_rewrite_failed.load(Ordering::Relaxed) { "err" } else { "ok" },
        "aof_rewrites" => aof.rewrites.load(Ordering::Relaxed),
        "aof_rewrites_consecutive_failures" => 0,
        "aof_last_write_status" => if server.aof.write_error().is_some() { "err" } else { "ok" },
        "aof_last_cow_size" => 0,
        "module_fork_in_progress" => 0,
        "module_fork_last_cow_size" => 0,
    ];

    if server.aof.is_enabled() {
        // Redis lists these only while the AOF is on.
        fields.extend(fields![
            "aof_current_size" => aof.current_size(),
            "aof_base_size" => aof.base_size.load(Ordering::Relaxed),
            "aof_pending_rewrite" => 0,
            "aof_buffer_length" => aof.pending_bytes.load(Ordering::Relaxed),
            "aof_pending_bio_fsync" => 0,
            "aof_delayed_fsync" => 0,
        ]);
    }
    if server.loading.is_active() {
        // Redis lists these last, while a load runs.
        let loading = &server.loading;
        let total = loading.total_bytes.load(Ordering::Relaxed);
        let loaded = loading.loaded_bytes.load(Ordering::Relaxed);
        let start = loading.start_s.load(Ordering::Relaxed);
        let elapsed = (now_ms / 1000).saturating_sub(start);
        let perc = if total == 0 {
            0.0
        } else {
            loaded as f64 * 100.0 / total as f64
        };
        let eta = if loaded == 0 {
            1
        } else {
            (total.saturating_sub(loaded)) * elapsed / loaded.max(1)
        };
        let extra = fields![
            "loading_start_time" => start,
            "loading_total_bytes" => total,
            "loading_rdb_used_mem" => 0,
            "loading_loaded_bytes" => loaded,
            "loading_loaded_perc" => format!("{perc:.2}"),
            "loading_eta_seconds" => eta,
        ];
        fields.extend(extra);
    }
    fields
}

/// Per-second rates since the previous sample at least `RATE_INTERVAL_MS_MIN` old.
fn rates(server: &Server, now_ms: u64) -> (u64, f64, f64) {
    let commands = server
        .stats
        .total_commands_processed
        .load(Ordering::Relaxed);
    let input_bytes = server.stats.net_input_bytes.load(Ordering::Relaxed);
    let output_bytes = server.stats.net_output_bytes.load(Ordering::Relaxed);
    let mut guard = RATES.lock();
    let sample = guard.get_or_insert(RateSample {
        at_ms: now_ms,
        commands,
        input_bytes,
        output_bytes,
        ops_per_sec: 0,
        input_kbps: 0.0,
        output_kbps: 0.0,
    });
    let elapsed_ms = now_ms.saturating_sub(sample.at_ms);
    if elapsed_ms >= RATE_INTERVAL_MS_MIN {
        let per_second =
            |now: u64, then: u64| now.saturating_sub(then) as f64 * 1000.0 / elapsed_ms as f64;
        sample.ops_per_sec = per_second(commands, sample.commands) as u64;
        sample.input_kbps = per_second(input_bytes, sample.input_bytes) / 1024.0;
        sample.output_kbps = per_second(output_bytes, sample.output_bytes) / 1024.0;
        sample.at_ms = now_ms;
        sample.commands = commands;
        sample.input_bytes = input_bytes;
        sample.output_bytes = output_bytes;
    }
    (sample.ops_per_sec, sample.input_kbps, sample.output_kbps)
}

fn stats_section(server: &Server, now_ms: u64) -> Fields {
    let stats = &server.stats;
    let keyspace = &server.keyspace.stats;
    let load = |counter: &crate::util::Counter| counter.load(Ordering::Relaxed);
    let (ops_per_sec, input_kbps, output_kbps) = rates(server, now_ms);
    fields![
        "total_connections_received" => load(&stats.total_connections_received),
        "total_commands_processed" => load(&stats.total_commands_processed),
        "instantaneous_ops_per_sec" => ops_per_sec,
        "total_net_input_bytes" => load(&stats.net_input_bytes),
        "total_net_output_bytes" => load(&stats.net_output_bytes),
        "total_net_repl_input_bytes" => 0,
        "total_net_repl_output_bytes" => 0,
        "instantaneous_input_kbps" => format!("{input_kbps:.2}"),
        "instantaneous_output_kbps" => format!("{output_kbps:.2}"),
        "instantaneous_input_repl_kbps" => "0.00",
        "instantaneous_output_repl_kbps" => "0.00",
        "rejected_connections" => load(&stats.rejected_connections),
        "sync_full" => 0,
        "sync_partial_ok" => 0,
        "sync_partial_err" => 0,
        "expired_keys" => load(&keyspace.expired_keys),
        "expired_stale_perc" => format!("{:.2}", load(&keyspace.expired_stale_perc_x100) as f64 / 100.0),
        "expired_time_cap_reached_count" => 0,
        "expire_cycle_cpu_milliseconds" => load(&keyspace.expire_cycle_time_used_ms),
        "evicted_keys" => load(&keyspace.evicted_keys),
        "evicted_clients" => 0,
        "total_eviction_exceeded_time" => 0,
        "current_eviction_exceeded_time" => 0,
        "keyspace_hits" => load(&keyspace.keyspace_hits),
        "keyspace_misses" => load(&keyspace.keyspace_misses),
        "pubsub_channels" => server.pubsub.count(crate::server::pubsub::Kind::Channel),
        "pubsub_patterns" => server.pubsub.count(crate::server::pubsub::Kind::Pattern),
        "pubsubshard_channels" => server.pubsub.count(crate::server::pubsub::Kind::Shard),
        "latest_fork_usec" => 0,
        "total_forks" => 0,
        "migrate_cached_sockets" => 0,
        "slave_expires_tracked_keys" => 0,
        "active_defrag_hits" => 0,
        "active_defrag_misses" => 0,
        "active_defrag_key_hits" => 0,
        "active_defrag_key_misses" => 0,
        "total_active_defrag_time" => 0,
        "current_active_defrag_time" => 0,
        "tracking_total_keys" => 0,
        "tracking_total_items" => 0,
        "tracking_total_prefixes" => 0,
        "unexpected_error_replies" => 0,
        "total_error_replies" => load(&stats.total_error_replies),
        "dump_payload_sanitizations" => 0,
        "io_threaded_reads_processed" => 0,
        "io_threaded_writes_processed" => 0,
    ]
}

/// This server's replication id. Until replication owns one, it is drawn once per process
/// (Redis also draws a fresh one at every start).
pub fn master_replid() -> &'static str {
    static REPLID: OnceLock<String> = OnceLock::new();
    REPLID.get_or_init(|| {
        use rand::Rng;
        let mut rng = crate::util::random();
        (0..40)
            .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
            .collect()
    })
}

fn replication_section(server: &Server) -> Fields {
    fields![
        "role" => "master",
        "connected_slaves" => 0,
        "master_failover_state" => "no-failover",
        "master_replid" => master_replid(),
        "master_replid2" => "0".repeat(40),
        "master_repl_offset" => server.log.offset(),
        "second_repl_offset" => -1,
        "repl_backlog_active" => 0,
        "repl_backlog_size" => server.config.int("repl-backlog-size"),
        "repl_backlog_first_byte_offset" => 0,
        "repl_backlog_histlen" => 0,
    ]
}

/// CPU seconds (system, user) from `getrusage(who)`.
#[allow(unsafe_code)]
fn cpu_seconds(who: libc::c_int) -> (f64, f64) {
    let mut usage: libc::rusage = unsafe {
        // SAFETY: rusage is plain old data; all-zero is a valid value for every field.
        std::mem::zeroed()
    };
    // SAFETY: `usage` is a valid, writable rusage for the duration of the call.
    let status = unsafe { libc::getrusage(who, &mut usage) };
    if status != 0 {
        return (0.0, 0.0);
    }
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1_000_000.0;
    (seconds(usage.ru_stime), seconds(usage.ru_utime))
}

fn cpu_section() -> Fields {
    let (system, user) = cpu_seconds(libc::RUSAGE_SELF);
    let (children_system, children_user) = cpu_seconds(libc::RUSAGE_CHILDREN);
    // Strata has no single main thread: these are the thread that runs this INFO.
    let (thread_system, thread_user) = cpu_seconds(libc::RUSAGE_THREAD);
    fields![
        "used_cpu_sys" => format!("{system:.6}"),
        "used_cpu_user" => format!("{user:.6}"),
        "used_cpu_sys_children" => format!("{children_system:.6}"),
        "used_cpu_user_children" => format!("{children_user:.6}"),
        "used_cpu_sys_main_thread" => format!("{thread_system:.6}"),
        "used_cpu_user_main_thread" => format!("{thread_user:.6}"),
    ]
}

fn commandstats_section(server: &Server) -> Fields {
    let mut fields = Vec::new();
    for command in table().all() {
        let stats = &server.stats.commands[command.id];
        let calls = stats.calls.load(Ordering::Relaxed);
        let usec = stats.usec.load(Ordering::Relaxed);
        let rejected = stats.rejected_calls.load(Ordering::Relaxed);
        let failed = stats.failed_calls.load(Ordering::Relaxed);
        if calls == 0 && rejected == 0 && failed == 0 {
            continue;
        }
        let per_call = if calls == 0 {
            0.0
        } else {
            usec as f64 / calls as f64
        };
        fields.push((
            format!("cmdstat_{}", command.fullname),
            format!(
                "calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}"
            ),
        ));
    }
    fields
}

fn errorstats_section(server: &Server) -> Fields {
    server
        .stats
        .errors
        .lock()
        .iter()
        .map(|(code, count)| (format!("errorstat_{code}"), format!("count={count}")))
        .collect()
}

fn keyspace_section(counts: &[(usize, usize)]) -> Fields {
    counts
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, (keys, _))| *keys > 0)
        .map(|(db, (keys, expires))| {
            (
                format!("db{db}"),
                format!("keys={keys},expires={expires},avg_ttl=0"),
            )
        })
        .collect()
}

/// CONFIG RESETSTAT: the counters Redis's `resetServerStats`, `resetCommandTableStats` and
/// `resetErrorTableStats` clear. `rdb_changes_since_last_save` is not a statistic and stays.
pub fn reset_stats(server: &Server) {
    let stats = &server.stats;
    for command in &stats.commands {
        command.calls.store(0, Ordering::Relaxed);
        command.usec.store(0, Ordering::Relaxed);
        command.rejected_calls.store(0, Ordering::Relaxed);
        command.failed_calls.store(0, Ordering::Relaxed);
    }
    stats.errors.lock().clear();
    for counter in [
        &stats.total_error_replies,
        &stats.total_commands_processed,
        &stats.total_connections_received,
        &stats.rejected_connections,
        &stats.net_input_bytes,
        &stats.net_output_bytes,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    let keyspace = &server.keyspace.stats;
    for counter in [
        &keyspace.expired_keys,
        &keyspace.expired_stale_perc_x100,
        &keyspace.expire_cycle_time_used_ms,
        &keyspace.keyspace_hits,
        &keyspace.keyspace_misses,
        &keyspace.evicted_keys,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    PEAK_MEMORY_BYTES.store(0, Ordering::Relaxed);
    *RATES.lock() = None;
}

/// Strata's memory tier: where the values are, and what moved.
fn tiering_section(server: &Server, counts: &[(usize, usize)]) -> Fields {
    let tier = &server.keyspace.tier;
    let store = tier.store().map(|store| store.stats()).unwrap_or_default();
    let keys: u64 = counts.iter().map(|(keys, _)| *keys as u64).sum();
    let cold = tier.stats.cold_keys.load(Ordering::Relaxed).max(0) as u64;
    let stats = &tier.stats;
    let load = |counter: &crate::util::Counter| counter.load(Ordering::Relaxed);
    fields![
        "tiering_enabled" => u8::from(tier.is_open()),
        "tiering_effective_maxmemory" => crate::tier::spill::effective_limit(server),
        "tiering_hot_keys" => keys.saturating_sub(cold),
        "tiering_cold_keys" => cold,
        "tiering_ram_bytes" => crate::tier::used_memory(),
        "tiering_index_bytes" => tier.index_bytes(),
        "tiering_budgeted_bytes" => crate::tier::spill::budgeted_memory(server),
        "tiering_resident_excess_bytes" => tier.resident_excess.load(Ordering::Relaxed),
        "tiering_disk_bytes" => store.disk_bytes,
        "tiering_live_bytes" => store.live_bytes,
        "tiering_buffered_bytes" => store.buffered_bytes,
        "tiering_segments" => store.segments,
        "tiering_spills" => load(&stats.spills),
        "tiering_promotions" => load(&stats.promotions),
        "tiering_cold_reads" => store.cold_reads,
        "tiering_locked_reads" => load(&stats.locked_reads),
        "tiering_compactions" => store.compactions,
        "tiering_spill_failures" => load(&stats.spill_failures),
        "tiering_disk_errors" => store.disk_errors,
        "tiering_read_errors" => load(&stats.read_errors),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn default_all_and_everything() {
        assert_eq!(select_sections(&[]), DEFAULT_SECTIONS.to_vec());
        assert_eq!(
            select_sections(&names(&["default"])),
            DEFAULT_SECTIONS.to_vec()
        );
        let all = select_sections(&names(&["all"]));
        assert!(all.contains(&"commandstats") && all.contains(&"latencystats"));
        assert_eq!(all.len(), SECTIONS.len());
        assert_eq!(
            select_sections(&names(&["everything"])).len(),
            SECTIONS.len()
        );
    }

    #[test]
    fn sections_come_in_redis_order_and_unknown_ones_add_nothing() {
        assert_eq!(
            select_sections(&names(&["cpu", "clients", "nosuch"])),
            vec!["clients", "cpu"]
        );
        assert!(select_sections(&names(&["nosuch"])).is_empty());
        assert_eq!(select_sections(&names(&["module_list"])), vec!["modules"]);
        assert_eq!(
            select_sections(&names(&["keyspace", "default"])),
            DEFAULT_SECTIONS.to_vec()
        );
    }

    #[test]
    fn human_sizes_match_redis() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(916304), "894.83K");
        assert_eq!(bytes_to_human(6660096), "6.35M");
        assert_eq!(bytes_to_human(25276514304), "23.54G");
    }

    /// Runs `commands` through the executor on a fresh server; returns the last reply's text.
    fn run(commands: &[&[&str]]) -> String {
        let test = crate::testing::TestServer::new();
        let mut session = test.session();
        let mut last = String::new();
        for argv in commands {
            last = String::from_utf8_lossy(&test.command(&mut session, argv).to_bytes(false))
                .into_owned();
        }
        last
    }

    #[test]
    fn sections_are_separated_like_redis() {
        let text = run(&[&["INFO", "cpu", "clients"]]);
        let body = text.split_once("\r\n").map(|(_, body)| body).unwrap_or("");
        assert!(
            body.starts_with("# Clients\r\nconnected_clients:1\r\n"),
            "{text}"
        );
        assert!(body.contains("\r\n\r\n# CPU\r\nused_cpu_sys:"), "{text}");
        assert!(body.ends_with("\r\n\r\n") && !body.ends_with("\r\n\r\n\r\n"));
        assert_eq!(run(&[&["INFO", "nosuch"]]), "$0\r\n\r\n");
    }

    #[test]
    fn statistics_sections_report_calls_errors_and_keys() {
        let text = run(&[
            &["SET", "k", "v"],
            &["GET", "k"],
            &["CONFIG", "SET", "hz", "x"],
            &["INFO", "commandstats", "errorstats", "keyspace"],
        ]);
        assert!(text.contains("cmdstat_set:calls=1,"), "{text}");
        assert!(text.contains("cmdstat_config|set:calls=1,"), "{text}");
        assert!(text.contains("failed_calls=1\r\n"), "{text}");
        assert!(text.contains("errorstat_ERR:count=1\r\n"), "{text}");
        assert!(
            text.contains("db0:keys=1,expires=0,avg_ttl=0\r\n"),
            "{text}"
        );
        let reset = run(&[
            &["SET", "k", "v"],
            &["CONFIG", "RESETSTAT"],
            &["INFO", "commandstats"],
        ]);
        assert!(!reset.contains("cmdstat_set"), "{reset}");
    }

    #[test]
    fn config_set_is_all_or_nothing() {
        assert_eq!(
            run(&[
                &["CONFIG", "SET", "hz", "20", "maxclients", "x"],
                &["CONFIG", "GET", "hz"]
            ]),
            "*2\r\n$2\r\nhz\r\n$2\r\n10\r\n"
        );
        assert_eq!(
            run(&[
                &["CONFIG", "SET", "hz", "20", "maxclients", "9"],
                &["CONFIG", "GET", "maxclients"]
            ]),
            "*2\r\n$10\r\nmaxclients\r\n$1\r\n9\r\n"
        );
    }

    #[test]
    fn client_name_round_trip() {
        assert_eq!(
            run(&[&["CLIENT", "SETNAME", "x"], &["CLIENT", "GETNAME"]]),
            "$1\r\nx\r\n"
        );
        assert_eq!(
            run(&[
                &["CLIENT", "SETNAME", "x"],
                &["CLIENT", "SETNAME", ""],
                &["CLIENT", "GETNAME"]
            ]),
            "$-1\r\n"
        );
        let list = run(&[&["CLIENT", "SETNAME", "me"], &["CLIENT", "LIST"]]);
        assert!(
            list.contains(" name=me ") && list.contains(" cmd=client|list "),
            "{list}"
        );
    }
}
