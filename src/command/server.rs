//! Server commands: CONFIG, TIME, MONITOR, SLOWLOG, DEBUG, MEMORY, SHUTDOWN.
//!
//! INFO renders in `info.rs`, COMMAND in `introspection.rs`, CLIENT in `client.rs`. These
//! read and change server-wide state (configuration, statistics, the slowlog); only DEBUG
//! OBJECT and MEMORY USAGE look at a key, under its shard's lock.

use super::args;
use super::exec::{Action, Ctx};
use super::info;
use super::table::{Lock, Spec};
use crate::config::{Config, Source};
use crate::error::{CmdResult, Error};
use crate::keyspace::Entry;
use crate::protocol::Reply;
use crate::types::{self, CompactBytes, Value};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub static COMMANDS: &[Spec] = &[
    Spec::new("config|get", config_get, Lock::None),
    Spec::new("config|set", config_set, Lock::None),
    Spec::new("config|resetstat", config_resetstat, Lock::None),
    Spec::new("config|rewrite", config_rewrite, Lock::None),
    Spec::new("config|help", config_help, Lock::None),
    Spec::new("time", time, Lock::None),
    Spec::new("monitor", monitor, Lock::None),
    Spec::new("slowlog|get", slowlog_get, Lock::None),
    Spec::new("slowlog|len", slowlog_len, Lock::None),
    Spec::new("slowlog|reset", slowlog_reset, Lock::None),
    Spec::new("slowlog|help", slowlog_help, Lock::None),
    // Every shard: DEBUG POPULATE writes keys anywhere (DEBUG is rare; the lock is brief).
    Spec::new("debug", debug, Lock::AllNaming(debug_keys)),
    Spec::new("memory|usage", memory_usage, Lock::Keys),
    Spec::new("memory|help", memory_help, Lock::None),
    Spec::new("shutdown", shutdown, Lock::None),
];

const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";
const SLOWLOG_COUNT_RANGE: &str = "ERR count should be greater than or equal to -1";
const SHUTDOWN_FAILED: &str = "ERR Errors trying to SHUTDOWN. Check logs.";
const NO_SHUTDOWN_IN_PROGRESS: &str = "ERR No shutdown in progress.";
const NO_CONFIG_FILE: &str = "ERR The server is running without a config file";
/// SLOWLOG GET's default count.
const SLOWLOG_GET_DEFAULT: i64 = 10;
/// Longest DEBUG SLEEP honoured: beyond it a typo would hold a client for days.
const DEBUG_SLEEP_SECONDS_MAX: f64 = 3600.0;

/// The help texts, Redis 7.0.15's to the letter.
const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];
const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];
const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];
const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "AOF-FLUSH-SLEEP <microsec>",
    "    Server will sleep before flushing the AOF, this is used for testing.",
    "ASSERT",
    "    Crash by assertion failed.",
    "CHANGE-REPL-ID",
    "    Change the replication IDs of the instance.",
    "    Dangerous: should be used only for testing the replication subsystem.",
    "CONFIG-REWRITE-FORCE-ALL",
    "    Like CONFIG REWRITE but writes all configuration options, including",
    "    keywords not listed in original configuration file or default values.",
    "CRASH-AND-RECOVER [<milliseconds>]",
    "    Hard crash and restart after a <milliseconds> delay (default 0).",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LEAK <string>",
    "    Create a memory leak of the input string.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "HTSTATS <dbid>",
    "    Return hash table statistics of the specified Redis database.",
    "HTSTATS-KEY <key>",
    "    Like HTSTATS but for the hash table stored at <key>'s value.",
    "LOADAOF",
    "    Flush the AOF buffers on disk and reload the AOF in memory.",
    "REPLICATE <string>",
    "    Replicates the provided string to replicas, allowing data divergence.",
    "MALLCTL <key> [<val>]",
    "    Get or set a malloc tuning integer.",
    "MALLCTL-STR <key> [<val>]",
    "    Get or set a malloc tuning string.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "DROP-CLUSTER-PACKET-FILTER <packet-type>",
    "    Drop all packets that match the filtered type. Set to -1 allow all packets.",
    "OOM",
    "    Crash the server simulating an out-of-memory error.",
    "PANIC",
    "    Crash the server simulating a panic.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cluster slots are not respected so keys not belonging to the",
    "    current node can be created in cluster mode.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: conflicting keys will be loaded from RDB.",
    "    * NOFLUSH: the existing database will not be removed before load, but",
    "      conflicting keys will generate an exception and kill the server.",
    "    * NOSAVE: the database will be loaded from an existing RDB file.",
    "    Examples:",
    "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
    "      the database.",
    "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
    "      existing RDB file.",
    "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing RDB",
    "      file to the database.",
    "RESTART [<milliseconds>]",
    "    Graceful restart: save config, db, restart after a <milliseconds> delay (default 0).",
    "SDSLEN <key>",
    "    Show low level SDS string info representing `key` and value.",
    "SEGFAULT",
    "    Crash the server with sigsegv.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "QUICKLIST-PACKED-THRESHOLD <size>",
    "    Sets the threshold for elements to be inserted as plain vs packed nodes",
    "    Default value is 1GB, allows values up to 4GB. Setting to 0 restores to default.",
    "SET-SKIP-CHECKSUM-VALIDATION <0|1>",
    "    Enables or disables checksum checks for RDB files and RESTORE's payload.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "STRINGMATCH-TEST",
    "    Run a fuzz tester against the stringmatchlen() function.",
    "STRUCTSIZE",
    "    Return the size of different Redis core C structures.",
    "LISTPACK <key>",
    "    Show low level info about the listpack encoding of <key>.",
    "QUICKLIST <key> [<0|1>]",
    "    Show low level info about the quicklist encoding of <key>.",
    "    The optional argument (0 by default) sets the level of detail",
    "CLIENT-EVICTION",
    "    Show low level client eviction pools info (maxmemory-clients).",
    "PAUSE-CRON <0|1>",
    "    Stop periodic cron job processing.",
    "REPLYBUFFER PEAK-RESET-TIME <NEVER||RESET|time>",
    "    Sets the time (in milliseconds) to wait between client reply buffer peak resets.",
    "    In case NEVER is provided the last observed peak will never be reset",
    "    In case RESET is provided the peak reset time will be restored to the default value",
    "REPLYBUFFER RESIZING <0|1>",
    "    Enable or disable the reply buffer resize cron job",
    "CLUSTERLINK KILL <to|from|all> <node-id>",
    "    Kills the link based on the direction to/from (both) with the provided node.",
    "HELP",
    "    Prints this help.",
];

/// A help reply: one status line per line, as Redis's `addReplyHelp`.
pub fn help_reply(lines: &[&str]) -> Reply {
    Reply::Array(
        lines
            .iter()
            .map(|line| Reply::Status(line.to_string()))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// CONFIG

/// `CONFIG GET pattern [pattern ...]`: every matching parameter once, as a map. A name
/// without glob characters is looked up directly and answered under the name as given
/// (`CONFIG GET MAXCLIENTS` replies `MAXCLIENTS`), as Redis does.
fn config_get(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let config = &ctx.server.config;
    let mut found: Vec<(String, String)> = Vec::new();
    let seen = |found: &[(String, String)], name: &str| {
        found
            .iter()
            .any(|(seen, _)| seen.eq_ignore_ascii_case(name))
    };
    for pattern in &argv[2..] {
        if !pattern.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
            let name = args::text(pattern);
            if seen(&found, &name) {
                continue;
            }
            if let Some(index) = Config::index(&name) {
                found.push((name, config.render(index)));
            }
            continue;
        }
        for (name, value) in config.matching(pattern) {
            if !seen(&found, name) {
                found.push((name.to_string(), value));
            }
        }
    }
    Ok(Reply::Map(
        found
            .into_iter()
            .map(|(name, value)| (Reply::bulk(name), Reply::bulk(value)))
            .collect(),
    ))
}

/// Why CONFIG SET refused its arguments, rendered as Redis renders it.
#[derive(Debug, PartialEq, Eq)]
pub enum SetError {
    /// `Unknown option or number of arguments for CONFIG SET - 'name'`.
    Unknown(String),
    /// `CONFIG SET failed (possibly related to argument 'name') - reason`.
    Failed(String, String),
}

impl SetError {
    fn into_error(self) -> Error {
        match self {
            SetError::Unknown(name) => Error::err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{name}'"
            )),
            SetError::Failed(name, reason) => Error::err(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - {reason}"
            )),
        }
    }
}

/// Validates `name value` pairs as Redis's `configSetCommand` does, in its order: every
/// name must exist (the first unknown one is reported), mutable, and not repeated; then every
/// value must parse. Returns the pairs to apply.
pub fn check_config_set(
    config: &Config,
    pairs: &[(String, String)],
    local_client: bool,
) -> Result<(), SetError> {
    let protected_allowed = match config.word("enable-protected-configs") {
        "yes" => true,
        "local" => local_client,
        _ => false,
    };
    let mut unknown: Option<&str> = None;
    let mut seen: Vec<String> = Vec::with_capacity(pairs.len());
    for (name, _) in pairs {
        let lower = name.to_ascii_lowercase();
        let Some(index) = Config::index(&lower) else {
            unknown.get_or_insert(name);
            continue;
        };
        let directive = &crate::config::TABLE[index];
        let refused = if directive.flags & crate::config::IMMUTABLE != 0 {
            Some("can't set immutable config")
        } else if directive.flags & crate::config::PROTECTED != 0 && !protected_allowed {
            Some("can't set protected config")
        } else if seen.contains(&lower) {
            Some("duplicate parameter")
        } else {
            None
        };
        if let Some(reason) = refused {
            return Err(match unknown {
                Some(unknown) => SetError::Unknown(unknown.to_string()),
                None => SetError::Failed(name.clone(), reason.to_string()),
            });
        }
        seen.push(lower);
    }
    if let Some(unknown) = unknown {
        return Err(SetError::Unknown(unknown.to_string()));
    }
    for (name, value) in pairs {
        config
            .check(name, &[value.as_str()], Source::ConfigSet)
            .map_err(|reason| SetError::Failed(name.clone(), reason))?;
    }
    Ok(())
}

/// `CONFIG SET parameter value [parameter value ...]`: all or nothing.
fn config_set(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() % 2 != 0 {
        return Err(Error::Syntax);
    }
    let pairs: Vec<(String, String)> = argv[2..]
        .chunks(2)
        .map(|pair| (args::text(&pair[0]), args::text(&pair[1])))
        .collect();
    let config = &ctx.server.config;
    check_config_set(config, &pairs, is_local(ctx)).map_err(SetError::into_error)?;
    // Every value was checked above, so a failure here is a race with another CONFIG SET;
    // restore what was set so far to keep the command atomic.
    let mut previous: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (name, value) in &pairs {
        let index = Config::index(name).expect("checked above");
        let before = config.render(index);
        if let Err(reason) = config.set(name, &[value.as_str()], Source::ConfigSet) {
            for (name, value) in previous.iter().rev() {
                let _ = config.set(name, &[value.as_str()], Source::ConfigSet);
            }
            return Err(SetError::Failed(name.clone(), reason).into_error());
        }
        previous.push((name.clone(), before));
    }
    ctx.server.apply_config();
    Ok(Reply::OK)
}

/// `CONFIG RESETSTAT`.
fn config_resetstat(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    info::reset_stats(ctx.server);
    Ok(Reply::OK)
}

/// `CONFIG REWRITE`: rewrites the file given at start so it holds the values in force.
///
/// As Redis does: a directive's first line in the file is replaced by its value in force
/// (further lines of the same directive are dropped), directives the file lacks are appended
/// when their value differs from the default, and comments and other lines stay as they are.
fn config_rewrite(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let path = ctx.server.config_file.clone();
    if path.is_empty() {
        return Err(NO_CONFIG_FILE.into());
    }
    let fs = &ctx.server.fs;
    let path = std::path::PathBuf::from(path);
    let original = fs
        .read(&path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let text = rewrite_config_text(&ctx.server.config, &original);
    // Written whole to a temporary file, synced, then renamed over the original, so a crash
    // leaves either the old file or the new one.
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = fs
        .create(&temporary)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync()
        })
        .and_then(|()| fs.rename(&temporary, &path))
        .and_then(|()| match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => fs.sync_dir(dir),
            _ => Ok(()),
        });
    match written {
        Ok(()) => {
            tracing::info!("CONFIG REWRITE executed with success.");
            Ok(Reply::OK)
        }
        Err(error) => {
            let _ = fs.remove(&temporary);
            tracing::warn!("CONFIG REWRITE failed: {error}");
            Err(Error::err(format!("Rewriting config file: {error}")))
        }
    }
}

/// The rewritten file for `original` under the values in `config`.
pub fn rewrite_config_text(config: &Config, original: &str) -> String {
    let defaults = Config::default();
    let mut out = String::with_capacity(original.len() + 256);
    let mut written: Vec<usize> = Vec::new();
    for line in original.lines() {
        let trimmed = line.trim();
        let name = trimmed.split_whitespace().next().unwrap_or("");
        let index = if trimmed.starts_with('#') || name.is_empty() {
            None
        } else {
            Config::index(name)
        };
        let Some(index) = index else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        if written.contains(&index) {
            // Redis blanks the repeated line rather than deleting it.
            out.push('\n');
            continue;
        }
        written.push(index);
        out.push_str(&directive_line(config, index));
        out.push('\n');
    }
    let mut header = false;
    for index in 0..crate::config::TABLE.len() {
        if written.contains(&index) || config.render(index) == defaults.render(index) {
            continue;
        }
        if !header {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str("# Generated by CONFIG REWRITE\n");
            header = true;
        }
        out.push_str(&directive_line(config, index));
        out.push('\n');
    }
    out
}

/// `name value` as a config file line, formatted as Redis's rewrite does: strings quoted,
/// byte counts in the largest exact unit (`1mb`), word lists as they are.
fn directive_line(config: &Config, index: usize) -> String {
    use crate::config::Kind;
    let directive = &crate::config::TABLE[index];
    let value = config.render(index);
    match directive.kind {
        Kind::Str | Kind::Dir => format!("{} {}", directive.name, quote(&value)),
        Kind::Memory(..) => format!(
            "{} {}",
            directive.name,
            memory_text(config.int(directive.name))
        ),
        _ if value.is_empty() => format!("{} \"\"", directive.name),
        _ => format!("{} {value}", directive.name),
    }
}

/// Redis's `rewriteConfigFormatMemory`: `gb`, `mb` or `kb` when the value is a whole multiple.
fn memory_text(bytes: i64) -> String {
    const GB: i64 = 1 << 30;
    const MB: i64 = 1 << 20;
    const KB: i64 = 1 << 10;
    if bytes != 0 && bytes % GB == 0 {
        format!("{}gb", bytes / GB)
    } else if bytes != 0 && bytes % MB == 0 {
        format!("{}mb", bytes / MB)
    } else if bytes != 0 && bytes % KB == 0 {
        format!("{}kb", bytes / KB)
    } else {
        bytes.to_string()
    }
}

fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn config_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(CONFIG_HELP))
}

// ---------------------------------------------------------------------------------------------
// TIME, MONITOR

/// `TIME`: unix seconds and microseconds, as two bulk strings.
fn time(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    let now_us = ctx.server.clock.now_us();
    Ok(Reply::Array(vec![
        Reply::bulk_int((now_us / 1_000_000) as i64),
        Reply::bulk_int((now_us % 1_000_000) as i64),
    ]))
}

/// `MONITOR`: the connection starts receiving every command. A client already monitoring
/// gets no reply at all, as in Redis.
fn monitor(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    if ctx.session.handle.info.lock().monitor {
        return Ok(Reply::Raw(Bytes::new()));
    }
    ctx.action = Some(Action::Monitor);
    Ok(Reply::OK)
}

// ---------------------------------------------------------------------------------------------
// SLOWLOG

/// `SLOWLOG GET [count]`: newest first; -1 for all.
fn slowlog_get(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 3 {
        return Err(Error::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            args::text(&argv[1])
        )));
    }
    let count = match argv.get(2) {
        None => SLOWLOG_GET_DEFAULT,
        Some(arg) => match crate::protocol::parser::parse_i64(arg) {
            Some(count) if count >= -1 => count,
            _ => return Err(SLOWLOG_COUNT_RANGE.into()),
        },
    };
    Ok(ctx.server.slowlog.reply(count))
}

fn slowlog_len(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(ctx.server.slowlog.len() as i64))
}

fn slowlog_reset(ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    ctx.server.slowlog.reset();
    Ok(Reply::OK)
}

fn slowlog_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(SLOWLOG_HELP))
}

// ---------------------------------------------------------------------------------------------
// DEBUG

/// DEBUG OBJECT locks its key; the other DEBUG subcommands touch none.
fn debug_keys(argv: &[Bytes]) -> Vec<usize> {
    match argv.get(1) {
        Some(sub) if args::is(sub, "object") && argv.len() == 3 => vec![2],
        _ => Vec::new(),
    }
}

/// `DEBUG SPILL [key ...]` (Strata): moves the named keys' values of the current database
/// (without names: every value of every database) to the disk tier now; replies with how
/// many went. For tests and experiments.
fn debug_spill(ctx: &mut Ctx<'_, '_>, keys: &[Bytes]) -> CmdResult {
    let tier = ctx.server.keyspace.tier.clone();
    if !tier.is_open() {
        return Err(Error::err("tiering is off"));
    }
    let mut targets: Vec<(usize, Vec<u8>)> = Vec::new();
    if keys.is_empty() {
        for db in 0..ctx.server.keyspace.databases() {
            for slice in ctx.ks.slices(db) {
                slice
                    .keys
                    .for_each_mut(|key, _| targets.push((db, key.as_slice().to_vec())));
            }
        }
    } else {
        let db = ctx.db();
        targets.extend(keys.iter().map(|key| (db, key.to_vec())));
    }
    let mut spilled = 0;
    for (db, key) in targets {
        let mut outcome = crate::tier::spill::spill_key(&tier, ctx.ks, db, &key);
        if outcome.is_err() {
            // The tail is at its bound: a debugging command may write it out with the locks
            // held (nothing else does), then try once more.
            if let Some(store) = tier.store() {
                store.flush().map_err(|err| Error::err(err.to_string()))?;
            }
            outcome = crate::tier::spill::spill_key(&tier, ctx.ks, db, &key);
        }
        if outcome.map_err(Error::err)? {
            spilled += 1;
        }
    }
    Ok(Reply::Integer(spilled))
}

/// Redis's `islocalClient`: the peer is a loopback address.
fn is_local(ctx: &Ctx<'_, '_>) -> bool {
    ctx.session
        .handle
        .addr
        .parse::<std::net::SocketAddr>()
        .map(|addr| addr.ip().is_loopback())
        .unwrap_or(false)
}

/// True when the client may run DEBUG (`enable-debug-command` yes, or local and a loopback
/// peer).
fn debug_allowed(ctx: &Ctx<'_, '_>) -> bool {
    match ctx.server.config.word("enable-debug-command") {
        "yes" => true,
        "local" => is_local(ctx),
        _ => false,
    }
}

/// `DEBUG <subcommand> ...`: HELP, SLEEP, SET-ACTIVE-EXPIRE, OBJECT.
fn debug(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    if !debug_allowed(ctx) {
        return Err(DEBUG_NOT_ALLOWED.into());
    }
    let sub = &argv[1];
    match argv.len() {
        2 if args::is(sub, "help") => Ok(help_reply(DEBUG_HELP)),
        3 if args::is(sub, "sleep") => {
            // Redis reads the seconds with atof: what does not parse sleeps 0.
            let seconds = crate::util::parse_f64(&argv[2]).unwrap_or(0.0);
            let seconds = if seconds.is_finite() { seconds } else { 0.0 };
            let seconds = seconds.clamp(0.0, DEBUG_SLEEP_SECONDS_MAX);
            ctx.action = Some(Action::Sleep(Duration::from_secs_f64(seconds)));
            Ok(Reply::OK)
        }
        3 if args::is(sub, "set-active-expire") => {
            // Redis reads the flag with atoi: anything but a leading non-zero number is 0.
            let enabled = leading_integer(&argv[2]) != 0;
            ctx.server
                .active_expire_enabled
                .store(enabled, Ordering::Relaxed);
            Ok(Reply::OK)
        }
        3 if args::is(sub, "object") => debug_object(ctx, &argv[2]),
        3 if args::is(sub, "protocol") => debug_protocol(ctx.session.resp3, &argv[2]),
        3..=5 if args::is(sub, "populate") => debug_populate(ctx, &argv[2..]),
        _ if args::is(sub, "spill") => debug_spill(ctx, &argv[2..]),
        // Strata: every cold value a read-only command reads is lent, never promoted, as
        // when memory is full (so tests meet that path on small datasets).
        3 if args::is(sub, "set-tiering-lend") => {
            let always = leading_integer(&argv[2]) != 0;
            ctx.server
                .keyspace
                .tier
                .always_lend
                .store(always, Ordering::Relaxed);
            Ok(Reply::OK)
        }
        3 if args::is(sub, "log") => {
            tracing::warn!("DEBUG LOG: {}", args::text(&argv[2]));
            Ok(Reply::OK)
        }
        _ => Err(Error::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            args::text(sub)
        ))),
    }
}

/// `DEBUG POPULATE count [prefix] [size]`: keys `prefix:N` (default `key`) holding
/// `value:N`, cut or zero-padded to `size` bytes when given; existing keys are left alone.
fn debug_populate(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    const POSITIVE: &str = "ERR value is out of range, must be positive";
    let count = args::int(&args[0]).map_err(|_| Error::from(POSITIVE))?;
    if count < 0 {
        return Err(POSITIVE.into());
    }
    let prefix = args.get(1).map_or(&b"key"[..], |prefix| &prefix[..]);
    let size = match args.get(2) {
        Some(size) => {
            let size = args::int(size).map_err(|_| Error::from(POSITIVE))?;
            if size < 0 {
                return Err(POSITIVE.into());
            }
            Some(size as usize)
        }
        None => None,
    };
    let db = ctx.db();
    let mut key = Vec::with_capacity(prefix.len() + 21);
    for index in 0..count as u64 {
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        key.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
        if ctx.ks.exists(db, &key) {
            continue;
        }
        let mut value = format!("value:{index}").into_bytes();
        if let Some(size) = size {
            value.resize(size, 0);
        }
        ctx.ks
            .set(db, &key, Value::Str(CompactBytes::from_vec(value)), false);
    }
    Ok(Reply::OK)
}

/// The double DEBUG PROTOCOL replies with (Redis's `3.141`).
const DEBUG_PROTOCOL_DOUBLE: f64 = 3141.0 / 1000.0;

/// `DEBUG PROTOCOL <type>`: one reply of each RESP type, for client tests.
fn debug_protocol(resp3: bool, kind: &[u8]) -> CmdResult {
    const BIGNUM: &str = "1234567999999999999999999999999999999";
    let raw = |replies: &[Reply]| {
        let mut out = bytes::BytesMut::new();
        for reply in replies {
            reply.encode(resp3, &mut out);
        }
        Reply::Raw(out.freeze())
    };
    let name = String::from_utf8_lossy(kind).to_ascii_lowercase();
    Ok(match name.as_str() {
        "string" => Reply::bulk("Hello World"),
        "integer" => Reply::Integer(12345),
        // Redis's literal, not an approximation of pi.
        "double" => Reply::Double(DEBUG_PROTOCOL_DOUBLE),
        "bignum" if resp3 => Reply::Raw(Bytes::from(format!("({BIGNUM}\r\n"))),
        "bignum" => Reply::bulk(BIGNUM),
        "null" => Reply::Null,
        "array" => Reply::Array((0..3).map(Reply::Integer).collect()),
        "set" => Reply::Set((0..3).map(Reply::Integer).collect()),
        "map" => Reply::Map(
            (0..3)
                .map(|index| (Reply::Integer(index), Reply::Bool(index == 1)))
                .collect(),
        ),
        "attrib" if resp3 => {
            let mut out = bytes::BytesMut::from(&b"|1\r\n"[..]);
            Reply::bulk("key-popularity").encode(true, &mut out);
            Reply::Array(vec![Reply::bulk("key:123"), Reply::Integer(90)]).encode(true, &mut out);
            Reply::bulk("Some real reply following the attribute").encode(true, &mut out);
            Reply::Raw(out.freeze())
        }
        "attrib" => Reply::bulk("Some real reply following the attribute"),
        "push" if resp3 => raw(&[
            Reply::Push(vec![Reply::bulk("server-cpu-usage"), Reply::Integer(42)]),
            Reply::bulk("Some real reply following the push reply"),
        ]),
        "push" => return Err(Error::err("RESP2 is not supported by this command")),
        "verbatim" => Reply::Verbatim("txt", Bytes::from_static(b"This is a verbatim\nstring")),
        "true" => Reply::Bool(true),
        "false" => Reply::Bool(false),
        _ => return Err(Error::err(
            "Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        )),
    })
}

/// C's `atoi`: the leading decimal integer, 0 if none.
fn leading_integer(bytes: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits: String = digits
        .chars()
        .take_while(char::is_ascii_digit)
        .take(18)
        .collect();
    sign * digits.parse::<i64>().unwrap_or(0)
}

/// Bytes an RDB length prefix takes (`rdbSaveLen`).
fn rdb_length_bytes(length: usize) -> usize {
    match length {
        0..=63 => 1,
        64..=16383 => 2,
        16384..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// The length of a string as RDB saves it (`rdbSavedObjectLen` for strings): integers that
/// fit 8, 16 or 32 bits take 2, 3 or 5 bytes, others a length prefix and the bytes. Redis
/// also LZF-compresses strings over 20 bytes; Strata does not yet, so those report their
/// uncompressed size.
pub fn rdb_string_length(bytes: &[u8]) -> usize {
    if bytes.len() <= 11 && types::is_canonical_integer(bytes) {
        if let Some(value) = crate::protocol::parser::parse_i64(bytes) {
            if i8::try_from(value).is_ok() {
                return 2;
            }
            if i16::try_from(value).is_ok() {
                return 3;
            }
            if i32::try_from(value).is_ok() {
                return 5;
            }
        }
    }
    rdb_length_bytes(bytes.len()) + bytes.len()
}

/// `DEBUG OBJECT key`.
fn debug_object(ctx: &mut Ctx<'_, '_>, key: &[u8]) -> CmdResult {
    let db = ctx.db();
    let now_ms = ctx.now_ms();
    // Redis reads the dict directly: no expiry, no access update, no hit/miss count.
    let Some(entry) = ctx.ks.db(db, key).keys.get(key) else {
        return Err(Error::NoSuchKey);
    };
    let address = entry as *const Entry as usize;
    let encoding = entry.value.encoding(entry.flags);
    let shared = entry.flags & crate::keyspace::entry::FLAG_SHARED != 0 && encoding == "int";
    let refcount = if shared {
        crate::keyspace::entry::SHARED_REFCOUNT
    } else {
        1
    };
    let serialized = match &entry.value {
        Value::Str(bytes) => rdb_string_length(bytes),
        // Collections' RDB lengths come with the RDB codec; until then the in-memory size.
        other => other.heap_bytes(),
    };
    Ok(Reply::Status(format!(
        "Value at:{address:#x} refcount:{refcount} encoding:{encoding} serializedlength:{serialized} lru:{} lru_seconds_idle:{}",
        entry.access & crate::keyspace::entry::LRU_CLOCK_MAX,
        entry.idle_seconds(now_ms)
    )))
}

// ---------------------------------------------------------------------------------------------
// MEMORY

/// `MEMORY USAGE key [SAMPLES count]`: the bytes the key costs, estimated as
///
/// ```text
///   dict node        = next pointer + key (CompactBytes) + Entry, boxed
///   + bucket slot    = one pointer (the table keeps about one bucket per key)
///   + key heap bytes (keys over 22 bytes live on the heap)
///   + value heap bytes
///   + with a TTL: the `expires` node (next pointer + key + u64), its bucket slot and its
///     own copy of the key's heap bytes
/// ```
///
/// SAMPLES matters only for collections (none yet) and is validated as Redis does.
fn memory_usage(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let mut index = 3;
    while index < argv.len() {
        if args::is(&argv[index], "samples") && index + 1 < argv.len() {
            let samples = args::int(&argv[index + 1])?;
            if samples < 0 {
                return Err(Error::Syntax);
            }
            index += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    let db = ctx.db();
    // Redis reads the dict directly: no expiry, no access update, no hit/miss count.
    let Some(entry) = ctx.ks.db(db, &argv[2]).keys.get(&argv[2]) else {
        return Ok(Reply::Null);
    };
    Ok(Reply::Integer(
        entry_memory_bytes(argv[2].len(), entry) as i64
    ))
}

/// The estimate documented on [`memory_usage`].
pub fn entry_memory_bytes(key_bytes: usize, entry: &Entry) -> usize {
    let pointer = std::mem::size_of::<usize>();
    let key_heap = if key_bytes > types::compact::INLINE_BYTES_MAX {
        key_bytes
    } else {
        0
    };
    let node = pointer + std::mem::size_of::<CompactBytes>() + std::mem::size_of::<Entry>();
    let mut total = node + pointer + key_heap + entry.value.heap_bytes();
    if entry.has_expire() {
        let expires_node =
            pointer + std::mem::size_of::<CompactBytes>() + std::mem::size_of::<u64>();
        total += expires_node + pointer + key_heap;
    }
    total
}

fn memory_help(_ctx: &mut Ctx<'_, '_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(MEMORY_HELP))
}

// ---------------------------------------------------------------------------------------------
// SHUTDOWN

/// SHUTDOWN's options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShutdownOptions {
    pub save: Option<bool>,
    pub now: bool,
    pub force: bool,
    pub abort: bool,
}

/// Parses `[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]` with Redis's rules: any other word, SAVE
/// with NOSAVE, or ABORT with anything is a syntax error.
pub fn parse_shutdown(words: &[Bytes]) -> Result<ShutdownOptions, Error> {
    let mut options = ShutdownOptions::default();
    let mut nosave = false;
    let mut save = false;
    for word in words {
        if args::is(word, "nosave") {
            nosave = true;
        } else if args::is(word, "save") {
            save = true;
        } else if args::is(word, "now") {
            options.now = true;
        } else if args::is(word, "force") {
            options.force = true;
        } else if args::is(word, "abort") {
            options.abort = true;
        } else {
            return Err(Error::Syntax);
        }
    }
    let flagged = nosave || save || options.now || options.force;
    if (options.abort && flagged) || (nosave && save) {
        return Err(Error::Syntax);
    }
    options.save = match (save, nosave) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    Ok(options)
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`.
fn shutdown(ctx: &mut Ctx<'_, '_>, argv: &[Bytes]) -> CmdResult {
    let options = parse_shutdown(&argv[1..])?;
    if options.abort {
        // Strata stops at once, so there is never a shutdown in progress to abort.
        return Err(NO_SHUTDOWN_IN_PROGRESS.into());
    }
    // Redis's prepareForShutdown: save when asked, or by default when save points are
    // configured; a failed save stops the shutdown unless FORCE.
    let server = ctx.server;
    let wanted = options
        .save
        .unwrap_or_else(|| crate::server::persistence::save_points_configured(server));
    if wanted {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        if let Err(err) = crate::server::persistence::save(server) {
            if !options.force {
                tracing::warn!("Error trying to save the DB, can't exit. ({err})");
                return Err(SHUTDOWN_FAILED.into());
            }
            tracing::warn!("Error trying to save the DB, exiting anyway (FORCE). ({err})");
        }
    }
    ctx.action = Some(Action::Shutdown {
        // Saved already (or not wanted): the shutdown itself saves nothing more.
        save: Some(false),
        now: options.now,
        force: options.force,
    });
    Ok(Reply::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(words: &[(&str, &str)]) -> Vec<(String, String)> {
        words
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn config_set_checks_in_redis_order() {
        let config = Config::default();
        assert_eq!(
            check_config_set(&config, &pairs(&[("hz", "20")]), true),
            Ok(())
        );
        assert_eq!(
            check_config_set(
                &config,
                &pairs(&[("maxclients", "1"), ("bogus", "1")]),
                true
            ),
            Err(SetError::Unknown("bogus".into()))
        );
        assert_eq!(
            check_config_set(
                &config,
                &pairs(&[("bogus", "1"), ("daemonize", "yes")]),
                true
            ),
            Err(SetError::Unknown("bogus".into()))
        );
        assert_eq!(
            check_config_set(&config, &pairs(&[("hz", "1"), ("HZ", "2")]), true),
            Err(SetError::Failed("HZ".into(), "duplicate parameter".into()))
        );
        assert_eq!(
            check_config_set(&config, &pairs(&[("daemonize", "yes")]), true),
            Err(SetError::Failed(
                "daemonize".into(),
                "can't set immutable config".into()
            ))
        );
        assert_eq!(
            check_config_set(&config, &pairs(&[("hz", "1"), ("maxclients", "x")]), true),
            Err(SetError::Failed(
                "maxclients".into(),
                "argument couldn't be parsed into an integer".into()
            ))
        );
        assert_eq!(config.int("hz"), 10, "checking sets nothing");
    }

    #[test]
    fn shutdown_options() {
        let words = |list: &[&str]| -> Vec<Bytes> {
            list.iter().map(|w| Bytes::from(w.to_string())).collect()
        };
        assert_eq!(parse_shutdown(&words(&[])), Ok(ShutdownOptions::default()));
        let parsed = parse_shutdown(&words(&["NOSAVE", "now"])).unwrap();
        assert_eq!(parsed.save, Some(false));
        assert!(parsed.now);
        assert_eq!(
            parse_shutdown(&words(&["save", "nosave"])),
            Err(Error::Syntax)
        );
        assert_eq!(
            parse_shutdown(&words(&["abort", "now"])),
            Err(Error::Syntax)
        );
        assert_eq!(parse_shutdown(&words(&["later"])), Err(Error::Syntax));
        assert!(parse_shutdown(&words(&["abort"])).unwrap().abort);
    }

    #[test]
    fn rdb_lengths() {
        assert_eq!(rdb_string_length(b"12"), 2);
        assert_eq!(rdb_string_length(b"b"), 2);
        assert_eq!(rdb_string_length(b"1000"), 3);
        assert_eq!(rdb_string_length(b"100000"), 5);
        assert_eq!(rdb_string_length(b"012"), 4);
        assert_eq!(rdb_string_length(&[b'a'; 64]), 66);
    }

    #[test]
    fn rewrite_keeps_comments_and_replaces_values() {
        let config = Config::default();
        config.set("hz", &["20"], Source::ConfigSet).unwrap();
        config
            .set("maxclients", &["77"], Source::ConfigSet)
            .unwrap();
        let text = rewrite_config_text(&config, "# mine\nhz 10\nport 7000\nhz 11\n");
        assert_eq!(
            text,
            "# mine\nhz 20\nport 6379\n\n# Generated by CONFIG REWRITE\nmaxclients 77\n"
        );
    }

    #[test]
    fn atoi_like_redis() {
        assert_eq!(leading_integer(b"2"), 2);
        assert_eq!(leading_integer(b"abc"), 0);
        assert_eq!(leading_integer(b"-3x"), -3);
        assert_eq!(memory_text(1 << 20), "1mb");
        assert_eq!(memory_text(3 << 30), "3gb");
        assert_eq!(memory_text(1000), "1000");
    }
}
