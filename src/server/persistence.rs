//! The server's side of persistence: loading the AOF at start, turning the AOF on and off
//! at run time, rewriting it, and refusing writes after a disk error.
//!
//! The file formats and the writer live in [`crate::persist`]; this module decides when they
//! run and connects them to the keyspace, the executor and the propagation log.
//!
//! A rewrite writes its base from a keyspace snapshot ([`crate::keyspace::snapshot`]): a
//! consistent point in time while clients go on writing.

use super::clients::Session;
use super::state::Server;
use crate::keyspace::Locked;
use crate::persist::aof::{load, manifest, rewrite};
use bytes::{Bytes, BytesMut};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The base file is written in pieces of about this size.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Start-up loading, for INFO's `loading*` fields and the `-LOADING` refusal.
#[derive(Debug, Default)]
pub struct LoadingState {
    pub active: AtomicBool,
    /// Unix seconds the load started.
    pub start_s: AtomicU64,
    pub total_bytes: AtomicU64,
    pub loaded_bytes: AtomicU64,
}

impl LoadingState {
    pub fn begin(&self, now_ms: u64, total_bytes: u64) {
        self.start_s.store(now_ms / 1000, Ordering::Relaxed);
        self.total_bytes.store(total_bytes, Ordering::Relaxed);
        self.loaded_bytes.store(0, Ordering::Relaxed);
        self.active.store(true, Ordering::Release);
    }

    fn advance(&self, bytes: u64) {
        self.loaded_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn end(&self) {
        self.active.store(false, Ordering::Release);
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
}

/// Redis's `disable-thp yes` (the default), before the load builds the dataset: no
/// transparent huge pages for this process. The allocator asks for them, and each first
/// touch of one zeroes 2 MB: loading an RDB spent about a third of its CPU time there
/// (`perf`: `clear_page_erms` under `do_huge_pmd_anonymous_page`), Redis none. Linux only;
/// a refusal is logged, not fatal.
#[allow(unsafe_code)]
fn disable_transparent_huge_pages(server: &Server) {
    if !server.config.bool("disable-thp") {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integers only; it sets a flag of this process.
        let status = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if status != 0 {
            tracing::warn!(
                "Failed to disable transparent huge pages: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// `<dir>/<appenddirname>` and the file prefix (`appendfilename`).
pub fn aof_location(server: &Server) -> (PathBuf, String) {
    let dir = PathBuf::from(server.config.text("dir")).join(server.config.text("appenddirname"));
    (dir, server.config.text("appendfilename"))
}

/// Loads what the configuration says to load before clients are served: the AOF when
/// `appendonly yes` (creating it when missing), and opens it for appending.
pub fn load_at_start(server: &Server) -> Result<(), String> {
    disable_transparent_huge_pages(server);
    if !server.config.bool("appendonly") {
        return load_rdb_at_start(server);
    }
    let (dir, prefix) = aof_location(server);
    let fs = server.fs.as_ref();
    let started = std::time::Instant::now();
    match load::read_manifest(fs, &dir, &prefix)? {
        Some(manifest) => {
            let total: u64 = manifest
                .replay_order()
                .filter_map(|info| fs.read(&dir.join(&info.name)).ok())
                .map(|bytes| bytes.len() as u64)
                .sum();
            server.loading.begin(server.clock.now_ms(), total);
            let mut replay = ServerReplay::new(server);
            server.keyspace.loading.store(true, Ordering::Release);
            let report = load::load(
                fs,
                &dir,
                &manifest,
                server.config.bool("aof-load-truncated"),
                &mut replay,
            );
            server.keyspace.loading.store(false, Ordering::Release);
            replay.finish();
            server.loading.advance(total);
            server.loading.end();
            let report = report?;
            tracing::info!(
                "DB loaded from append only file: {:.3} seconds ({} commands)",
                started.elapsed().as_secs_f64(),
                report.commands
            );
            attach(server);
            server
                .aof
                .open(&dir, &prefix, manifest, server.log.offset())?;
        }
        None => {
            attach(server);
            // Not counted as a rewrite in INFO, as Redis's start-up base is not.
            rewrite_inner(server)?;
            tracing::info!("Creating AOF base file on server start");
        }
    }
    Ok(())
}

/// Registers the AOF with the propagation log (once: the sink drops bytes while off).
fn attach(server: &Server) {
    if !server.aof_attached.swap(true, Ordering::AcqRel) {
        server.log.add_sink(server.aof.sink());
    }
}

/// Brings the AOF in line with `appendonly` after CONFIG SET (run from the cron, outside any
/// command): turning it on writes a base by a rewrite, as Redis's startAppendOnly does.
pub fn apply_appendonly(server: &Server) {
    let wanted = server.config.bool("appendonly");
    if wanted == server.aof.is_enabled() {
        return;
    }
    if wanted {
        attach(server);
        if let Err(err) = rewrite(server) {
            tracing::warn!("Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error. ({err})");
        }
    } else {
        server.aof.close();
    }
}

/// Starts BGREWRITEAOF on its own thread; the error text when one cannot start now.
pub fn start_background_rewrite(server: &Server) -> Result<&'static str, &'static str> {
    const CANNOT_START: &str = "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.";
    let Some(server) = server.handle() else {
        return Err(CANNOT_START);
    };
    // A save holds the one snapshot: the rewrite follows it, as Redis schedules it after a
    // running BGSAVE child.
    if server.rdb.in_progress.load(Ordering::Acquire)
        && !server
            .aof
            .stats()
            .rewrite_in_progress
            .load(Ordering::Acquire)
    {
        server
            .aof
            .stats()
            .rewrite_scheduled
            .store(true, Ordering::Release);
        return Ok("Background append only file rewriting scheduled");
    }
    if server
        .aof
        .stats()
        .rewrite_in_progress
        .swap(true, Ordering::AcqRel)
    {
        return Err("ERR Background append only file rewriting already in progress");
    }
    let owner = server.clone();
    let spawned = std::thread::Builder::new()
        .name("aof-rewrite".into())
        .spawn(move || {
            let _ = rewrite_claimed(&owner);
        });
    spawned
        .map(|_| "Background append only file rewriting started")
        .map_err(|_| {
            server
                .aof
                .stats()
                .rewrite_in_progress
                .store(false, Ordering::Release);
            CANNOT_START
        })
}

/// The AOF rewrite, as Redis 7 does it with a fork but on a snapshot: at one instant the AOF
/// switches to a new incr file (listed in the manifest at once, so a crash mid-rewrite loses
/// nothing); the base is written from the snapshot while clients go on; then the manifest
/// names the new base and the new incr file only, and the old files go.
pub fn rewrite(server: &Server) -> Result<(), String> {
    if server
        .aof
        .stats()
        .rewrite_in_progress
        .swap(true, Ordering::AcqRel)
    {
        return Err("Background append only file rewriting already in progress".into());
    }
    rewrite_claimed(server)
}

/// `rewrite` once this caller has set `rewrite_in_progress`; clears it when done.
fn rewrite_claimed(server: &Server) -> Result<(), String> {
    let stats = server.aof.stats();
    let started = std::time::Instant::now();
    let outcome = rewrite_inner(server);
    stats.rewrite_in_progress.store(false, Ordering::Release);
    stats
        .last_rewrite_ms
        .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    stats
        .last_rewrite_failed
        .store(outcome.is_err(), Ordering::Relaxed);
    match &outcome {
        Ok(()) => {
            stats.rewrites.fetch_add(1, Ordering::Relaxed);
            tracing::info!("Background AOF rewrite terminated with success");
        }
        Err(err) => tracing::warn!("Background AOF rewrite failed: {err}"),
    }
    outcome
}

fn rewrite_inner(server: &Server) -> Result<(), String> {
    let fs = server.fs.as_ref();
    let (dir, prefix) = aof_location(server);
    fs.create_dir_all(&dir)
        .map_err(|err| format!("Can't create the AOF directory {}: {err}", dir.display()))?;
    let previous = match server.aof.location() {
        Some(_) => server.aof.manifest(),
        None => load::read_manifest(fs, &dir, &prefix)
            .ok()
            .flatten()
            .unwrap_or_default(),
    };
    let enabled = server.config.bool("appendonly");
    let base_seq = previous.base_seq + 1;
    let incr_seq = previous.incr_seq + 1;
    let incr_name = manifest::incr_name(&prefix, incr_seq);
    let temp_path = dir.join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let file = fs.create(&temp_path).map_err(|err| {
        format!("Opening the temp file for AOF rewrite in rewriteAppendOnlyFile(): {err}")
    })?;
    // `aof-use-rdb-preamble yes` (the default): the base is an RDB file, as Redis 7 writes it.
    let preamble = server.config.bool("aof-use-rdb-preamble");
    let mut sink: Box<dyn FileSink> = if preamble {
        Box::new(RdbSink::new(server, file, &[("aof-base", "1")]))
    } else {
        Box::new(BaseSink {
            file,
            out: BytesMut::with_capacity(WRITE_CHUNK_BYTES),
            db: None,
            size: 0,
            failure: None,
        })
    };
    // Before the instant, with no lock held: the new incr file exists, fsynced, and while
    // the old files are sound the manifest already lists it after them, so a crash before
    // the rewrite ends loses nothing written from the instant on. (Listed early it only adds
    // an empty file to a load.) If the AOF has failed, the old files end in an unknown state
    // and stay last in the chain a crash would load; nothing is acknowledged meanwhile.
    let during = if enabled {
        let mut incr = fs
            .create(&dir.join(&incr_name))
            .map_err(|err| format!("Can't open the append-only file {incr_name}: {err}"))?;
        incr.sync()
            .map_err(|err| format!("Fail to fsync the AOF file {incr_name}: {err}"))?;
        tracing::info!("Creating AOF incr file {incr_name} on background rewrite");
        let mut during = previous.clone();
        during.incr.push(manifest::FileInfo {
            name: incr_name.clone(),
            seq: incr_seq,
            kind: manifest::FileKind::Incr,
        });
        during.incr_seq = incr_seq;
        if server.aof.write_error().is_none() {
            persist_manifest(server, &dir, &prefix, &during)?;
        }
        Some(during)
    } else {
        None
    };
    // The instant of the snapshot, every shard held: writes before it are in the base (and
    // flushed to the old file), writes after it go to the new file. A flush that fails here
    // leaves the AOF failed, so nothing reaches the new file, and a load accepts a torn old
    // file followed only by files without commands.
    let (switch_dir, switch_prefix) = (dir.clone(), prefix.clone());
    let switch = move |_ks: &mut Locked<'_>| -> Result<(), String> {
        let (dir, prefix) = (switch_dir, switch_prefix);
        let Some(during) = during else {
            return Ok(());
        };
        if server.aof.is_enabled() {
            if let Err(err) = server.aof.flush_and_sync() {
                tracing::warn!("{err}");
            }
        }
        // The new incr file must start by selecting its database, as Redis's does.
        server.log.forget_selected_db();
        if server.aof.is_enabled() {
            server.aof.switch(&dir, during)
        } else {
            server.aof.open(&dir, &prefix, during, server.log.offset())
        }
    };
    let snapshot = crate::keyspace::snapshot::run(
        &server.keyspace,
        server.clock.now_ms(),
        switch,
        &mut [sink.as_sink()],
    );
    let base_size = match snapshot.and_then(|()| sink.finish(server.config.bool("rdbchecksum"))) {
        Ok(size) => size,
        Err(err) => {
            let _ = fs.remove(&temp_path);
            return Err(err);
        }
    };
    let base_name = manifest::base_name(&prefix, base_seq, preamble);
    fs.rename(&temp_path, &dir.join(&base_name))
        .map_err(|err| {
            format!("Error moving temp append only file on the final destination: {err}")
        })?;
    let mut next = manifest::Manifest {
        base: Some(manifest::FileInfo {
            name: base_name,
            seq: base_seq,
            kind: manifest::FileKind::Base,
        }),
        base_seq,
        incr_seq,
        ..manifest::Manifest::default()
    };
    if enabled {
        next.incr.push(manifest::FileInfo {
            name: incr_name,
            seq: incr_seq,
            kind: manifest::FileKind::Incr,
        });
    }
    let history: Vec<manifest::FileInfo> = previous
        .replay_order()
        .chain(previous.history.iter())
        .cloned()
        .collect();
    persist_manifest(server, &dir, &prefix, &next)?;
    if enabled {
        server.aof.rewritten(next, base_size);
    }
    if !server.config.bool("aof-disable-auto-gc") {
        for info in history {
            let _ = fs.remove(&dir.join(&info.name));
        }
    }
    Ok(())
}

/// Writes the snapshot as commands into the temp base file, a chunk at a time.
struct BaseSink {
    file: Box<dyn crate::io::WritableFile>,
    out: BytesMut,
    db: Option<usize>,
    size: u64,
    failure: Option<String>,
}

impl crate::keyspace::snapshot::Sink for BaseSink {
    fn entry(
        &mut self,
        db: usize,
        key: &[u8],
        value: &crate::types::Value,
        expire_ms: Option<u64>,
    ) {
        if self.failure.is_some() {
            return;
        }
        if self.db != Some(db) {
            rewrite::select(&mut self.out, db);
            self.db = Some(db);
        }
        if let Err(err) = rewrite::emit_key(&mut self.out, key, value, expire_ms) {
            self.failure = Some(err);
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        if self.out.len() < WRITE_CHUNK_BYTES {
            return Ok(());
        }
        self.write_out()
    }
}

impl BaseSink {
    /// Writes the buffered commands and a checksum annotation covering them.
    fn write_out(&mut self) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut range = crate::persist::aof::checksum::Range::new();
        // `add` hands back the annotation itself once the range is long enough.
        let line = range.add(&self.out).unwrap_or_else(|| range.annotation());
        self.out.extend_from_slice(&line);
        self.file
            .write_all(&self.out)
            .map_err(|err| format!("Write error writing append only file on disk: {err}"))?;
        self.size += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }
}

impl FileSink for BaseSink {
    fn finish(&mut self, _checksum: bool) -> Result<u64, String> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        self.write_out()?;
        self.file
            .sync()
            .map_err(|err| format!("Write error writing append only file on disk: {err}"))?;
        Ok(self.size)
    }

    fn as_sink(&mut self) -> &mut (dyn crate::keyspace::snapshot::Sink + Send) {
        self
    }
}

/// Writes the manifest through a temp file, fsync, rename, directory fsync: a crash leaves
/// either the old manifest or the new one.
fn persist_manifest(
    server: &Server,
    dir: &std::path::Path,
    prefix: &str,
    manifest: &manifest::Manifest,
) -> Result<(), String> {
    let fs = server.fs.as_ref();
    let name = manifest::manifest_name(prefix);
    let temp = dir.join(format!("temp-{name}"));
    let mut file = fs
        .create(&temp)
        .map_err(|err| format!("Can't open the AOF manifest file {}: {err}", temp.display()))?;
    file.write_all(manifest.render().as_bytes())
        .map_err(|err| {
            format!(
                "Error trying to write the temporary AOF manifest file {}: {err}",
                temp.display()
            )
        })?;
    file.sync()
        .map_err(|err| format!("Fail to fsync the temp AOF file {}: {err}", temp.display()))?;
    drop(file);
    fs.rename(&temp, &dir.join(&name)).map_err(|err| {
        format!(
            "Error trying to rename the temporary AOF manifest file {} into {name}: {err}",
            temp.display()
        )
    })?;
    fs.sync_dir(dir)
        .map_err(|err| format!("Fail to fsync AOF directory {}: {err}", dir.display()))
}

/// The automatic rewrite of `auto-aof-rewrite-percentage` / `auto-aof-rewrite-min-size`:
/// true when the AOF grew enough since its base to be worth rewriting.
pub fn rewrite_due(server: &Server) -> bool {
    if !server.aof.is_enabled() {
        return false;
    }
    let percentage = server.config.int("auto-aof-rewrite-percentage");
    if percentage <= 0 {
        return false;
    }
    let stats = server.aof.stats();
    let size = stats.current_size();
    let base = stats.base_size.load(Ordering::Relaxed).max(1);
    let min_size = server.config.int("auto-aof-rewrite-min-size").max(0) as u64;
    size >= min_size && size.saturating_sub(base) * 100 / base >= percentage as u64
}

/// The error write commands get after the AOF failed (Redis's `-MISCONF`).
pub fn write_refusal(server: &Server) -> Option<String> {
    if let Some(refusal) = bgsave_refusal(server) {
        return Some(refusal.to_string());
    }
    if !server.aof.is_enabled() {
        return None;
    }
    server.aof.write_error()
}

/// Replays AOF commands as Redis's fake AOF client: a session nobody sees, every command
/// through the executor so it behaves exactly as when it first ran.
struct ServerReplay<'a> {
    server: &'a Server,
    session: Session,
}

impl<'a> ServerReplay<'a> {
    fn new(server: &'a Server) -> ServerReplay<'a> {
        let (handle, _outbox) = server.clients.register(
            "AOF-loading-client".into(),
            String::new(),
            -1,
            server.clock.now_ms(),
        );
        let mut session = Session::new(handle, true);
        session.obey = true;
        ServerReplay { server, session }
    }

    fn finish(self) {
        self.server.clients.unregister(self.session.id);
    }
}

impl load::Replay for ServerReplay<'_> {
    fn apply(&mut self, argv: Vec<Bytes>) -> load::Applied {
        if crate::command::table().get(&argv[0]).is_none() {
            return load::Applied::Unknown;
        }
        let _ = crate::command::dispatch(self.server, &mut self.session, argv);
        load::Applied::Ok
    }

    fn load_rdb(&mut self, bytes: &[u8], name: &str, done: &dyn Fn(usize)) -> Result<(), String> {
        load_rdb_bytes(self.server, bytes, name, true, done)
    }
}

// ---------------------------------------------------------------------------------------------
// RDB: SAVE, BGSAVE, save points, loading at start
// ---------------------------------------------------------------------------------------------

/// `MISCONF` for writes after a failed background save (`stop-writes-on-bgsave-error`).
const BGSAVE_MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
/// Redis's CONFIG_BGSAVE_RETRY_DELAY: after a failed save, save points wait this long.
const BGSAVE_RETRY_DELAY_MS: u64 = 5_000;

/// RDB state for INFO persistence, LASTSAVE and the save points.
#[derive(Debug, Default)]
pub struct RdbState {
    pub in_progress: AtomicBool,
    /// Unix seconds of the last successful save (the start time until the first save).
    pub last_save_s: AtomicU64,
    pub last_bgsave_failed: AtomicBool,
    /// Duration of the last background save in ms, or u64::MAX before the first.
    pub last_bgsave_ms: AtomicU64,
    /// Unix ms the running save started (0 when none runs).
    pub current_start_ms: AtomicU64,
    pub saves: AtomicU64,
    /// `server.stats.dirty` when the last successful save started.
    pub dirty_at_save: AtomicU64,
    /// Unix ms of the last save attempt (for the retry delay after a failure).
    pub last_attempt_ms: AtomicU64,
    /// BGSAVE SCHEDULE (or a BGSAVE inside EXEC) waits for the running snapshot to end.
    pub scheduled: AtomicBool,
    pub last_load_keys: AtomicU64,
    pub last_load_expired: AtomicU64,
}

impl RdbState {
    pub fn new(now_ms: u64) -> RdbState {
        let state = RdbState::default();
        state.last_save_s.store(now_ms / 1000, Ordering::Relaxed);
        state.last_bgsave_ms.store(u64::MAX, Ordering::Relaxed);
        state
    }

    /// INFO's `rdb_changes_since_last_save`.
    pub fn changes_since_save(&self, dirty: u64) -> u64 {
        dirty.saturating_sub(self.dirty_at_save.load(Ordering::Relaxed))
    }
}

/// The RDB file path (`dir`/`dbfilename`).
pub fn rdb_path(server: &Server) -> PathBuf {
    PathBuf::from(server.config.text("dir")).join(server.config.text("dbfilename"))
}

/// Whether any `save` point is configured.
pub fn save_points_configured(server: &Server) -> bool {
    !server.config.text("save").trim().is_empty()
}

/// The refusal writes get after a failed background save, as Redis's processCommand.
pub fn bgsave_refusal(server: &Server) -> Option<&'static str> {
    let failed = server.rdb.last_bgsave_failed.load(Ordering::Relaxed);
    (failed && save_points_configured(server) && server.config.bool("stop-writes-on-bgsave-error"))
        .then_some(BGSAVE_MISCONF)
}

/// Writes the dataset to `dbfilename` from a snapshot, through a temp file, fsync and a
/// rename: a crash leaves the old file or the new one. SAVE and SHUTDOWN, whose caller
/// waits for it: it encodes on every core ([`workers`]); BGSAVE's thread encodes on one, as
/// Redis's child does, leaving the other cores to the clients.
pub fn save(server: &Server) -> Result<(), String> {
    if server.rdb.in_progress.swap(true, Ordering::AcqRel) {
        return Err("Background save already in progress".into());
    }
    save_claimed(server, workers(server))
}

/// `save` once this caller has set `in_progress` (BGSAVE sets it before its thread starts, so
/// INFO never shows a started save as not running); clears it when done.
fn save_claimed(server: &Server, walkers: usize) -> Result<(), String> {
    let state = &server.rdb;
    let started_ms = server.clock.now_ms();
    state.current_start_ms.store(started_ms, Ordering::Relaxed);
    state.last_attempt_ms.store(started_ms, Ordering::Relaxed);
    let outcome = save_inner(server, walkers);
    let elapsed_ms = server.clock.now_ms().saturating_sub(started_ms);
    state.current_start_ms.store(0, Ordering::Relaxed);
    state.last_bgsave_ms.store(elapsed_ms, Ordering::Relaxed);
    state
        .last_bgsave_failed
        .store(outcome.is_err(), Ordering::Relaxed);
    match &outcome {
        Ok(dirty) => {
            state.dirty_at_save.store(*dirty, Ordering::Relaxed);
            state
                .last_save_s
                .store(started_ms / 1000, Ordering::Relaxed);
            state.saves.fetch_add(1, Ordering::Relaxed);
            tracing::info!("DB saved on disk");
        }
        Err(err) => tracing::warn!("Failed saving the DB: {err}"),
    }
    state.in_progress.store(false, Ordering::Release);
    outcome.map(|_| ())
}

/// The save itself, on `walkers` threads; the dirty counter at the snapshot's instant.
fn save_inner(server: &Server, walkers: usize) -> Result<u64, String> {
    let fs = server.fs.as_ref();
    let dir = PathBuf::from(server.config.text("dir"));
    let path = rdb_path(server);
    let temp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let file = fs.create(&temp).map_err(|err| {
        format!(
            "Failed opening the temp RDB file {} (in server root dir {}) for saving: {err}",
            temp.display(),
            dir.display()
        )
    })?;
    let mut sink = RdbSink::new(server, file, &[]);
    let mut helpers: Vec<RdbSink> = (1..walkers).map(|_| sink.helper()).collect();
    let mut sinks: Vec<&mut (dyn crate::keyspace::snapshot::Sink + Send)> = vec![&mut sink];
    sinks.extend(
        helpers
            .iter_mut()
            .map(|helper| helper as &mut (dyn crate::keyspace::snapshot::Sink + Send)),
    );
    let mut dirty = 0;
    let snapshot = crate::keyspace::snapshot::run(
        &server.keyspace,
        server.clock.now_ms(),
        |_| {
            dirty = server.stats.dirty.load(Ordering::Relaxed);
            Ok(())
        },
        &mut sinks,
    );
    drop(sinks);
    let finished = snapshot.and_then(|()| sink.finish(server.config.bool("rdbchecksum")));
    if let Err(err) = finished {
        let _ = fs.remove(&temp);
        return Err(err);
    }
    fs.rename(&temp, &path).map_err(|err| {
        format!(
            "Error moving temp DB file {} on the final destination {}: {err}",
            temp.display(),
            path.display()
        )
    })?;
    fs.sync_dir(&dir)
        .map_err(|err| format!("Failed to fsync directory {}: {err}", dir.display()))?;
    Ok(dirty)
}

/// BGSAVE: a save on a thread of its own. The reply text, or the error, as Redis's.
pub fn start_background_save(
    server: &Server,
    schedule: bool,
) -> Result<&'static str, &'static str> {
    if server.rdb.in_progress.load(Ordering::Acquire) {
        return Err("ERR Background save already in progress");
    }
    if server.keyspace.snapshot.is_active()
        || server
            .aof
            .stats()
            .rewrite_in_progress
            .load(Ordering::Acquire)
    {
        if schedule {
            server.rdb.scheduled.store(true, Ordering::Release);
            return Ok("Background saving scheduled");
        }
        return Err("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.");
    }
    let Some(owner) = server.handle() else {
        return Err("ERR Background saving could not start");
    };
    if server.rdb.in_progress.swap(true, Ordering::AcqRel) {
        return Err("ERR Background save already in progress");
    }
    let spawned = std::thread::Builder::new()
        .name("rdb-save".into())
        .spawn(move || {
            let _ = save_claimed(&owner, 1);
        });
    if spawned.is_err() {
        server.rdb.in_progress.store(false, Ordering::Release);
        return Err("ERR Background saving could not start");
    }
    Ok("Background saving started")
}

/// The cron's part: a scheduled BGSAVE once nothing else snapshots, and the save points.
pub fn save_upkeep(server: &Server) {
    let state = &server.rdb;
    if state.in_progress.load(Ordering::Acquire) || server.keyspace.snapshot.is_active() {
        return;
    }
    if server
        .aof
        .stats()
        .rewrite_scheduled
        .swap(false, Ordering::AcqRel)
    {
        let _ = start_background_rewrite(server);
        return;
    }
    if state.scheduled.swap(false, Ordering::AcqRel) {
        let _ = start_background_save(server, false);
        return;
    }
    let now_ms = server.clock.now_ms();
    let failed = state.last_bgsave_failed.load(Ordering::Relaxed);
    if failed && now_ms < state.last_attempt_ms.load(Ordering::Relaxed) + BGSAVE_RETRY_DELAY_MS {
        return;
    }
    let changes = state.changes_since_save(server.stats.dirty.load(Ordering::Relaxed));
    let since_s = (now_ms / 1000).saturating_sub(state.last_save_s.load(Ordering::Relaxed));
    let text = server.config.text("save");
    let words: Vec<u64> = text
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    for point in words.chunks(2) {
        let [seconds, writes] = point else { continue };
        if changes >= *writes && since_s >= *seconds {
            tracing::info!("{writes} changes in {seconds} seconds. Saving...");
            let _ = start_background_save(server, false);
            return;
        }
    }
}

/// A loader lets the pages of a mapped file behind it go this often.
pub const RELEASE_EVERY: usize = 8 << 20;

/// Loads `dbfilename` at start when the AOF is off (Redis's loadDataFromDisk).
pub fn load_rdb_at_start(server: &Server) -> Result<(), String> {
    let path = rdb_path(server);
    if !server.fs.exists(&path) {
        return Ok(());
    }
    let name = path.display().to_string();
    let bytes = server
        .fs
        .read_whole(&path)
        .map_err(|err| format!("Fatal error loading the DB {name}: {err}. Exiting."))?;
    let started = std::time::Instant::now();
    server
        .loading
        .begin(server.clock.now_ms(), bytes.len() as u64);
    let loaded = load_rdb_bytes(server, &bytes, &name, false, &|offset| {
        bytes.release_before(offset)
    });
    server.loading.advance(bytes.len() as u64);
    server.loading.end();
    loaded?;
    tracing::info!(
        "DB loaded from disk: {:.3} seconds",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Threads that decode an RDB while it loads, or encode one for SAVE: the cores there are,
/// but one in the simulator (whose manual AOF says it wants every step deterministic: keys
/// would otherwise reach the keyspace, or the file, in a different order from run to run).
fn workers(server: &Server) -> usize {
    if server.aof.is_manual() {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

/// A shard's share of `keys` keys spread by hash, with room for the unevenness (four
/// standard deviations: a share just under a power of two still fits its table).
fn shard_share(keys: usize) -> usize {
    let share = keys.div_ceil(crate::keyspace::shards::SHARDS);
    share + 4 * share.isqrt()
}

/// Loads an RDB's keys into the keyspace, decoding on [`workers`] threads (keys reach
/// the keyspace in no particular order). `preamble`: an AOF base, whose keys past their
/// time are kept (the AOF after it may still touch them), as Redis does. `done` is told, now
/// and then, the offset before which the bytes are not needed again.
pub fn load_rdb_bytes(
    server: &Server,
    bytes: &[u8],
    name: &str,
    preamble: bool,
    done: &dyn Fn(usize),
) -> Result<(), String> {
    let options = crate::persist::rdb::DecodeOptions::from_config(
        &server.config,
        server.config.word("sanitize-dump-payload") == "yes",
    );
    let now_ms = server.clock.now_ms();
    let expired = AtomicU64::new(0);
    let loaded_keys = AtomicU64::new(0);
    let released = AtomicU64::new(0);
    let was_loading = server.keyspace.loading.swap(true, Ordering::AcqRel);
    crate::persist::rdb::parallel::KEEP_FREED_PAGES.store(
        !crate::tier::spill::budgets_values(server),
        Ordering::Relaxed,
    );
    let outcome = crate::persist::rdb::parallel::load(
        bytes,
        &options,
        server.keyspace.databases(),
        server.config.bool("rdbchecksum"),
        workers(server),
        &|key| {
            if !preamble && key.expire_ms.is_some_and(|at| at < now_ms) {
                expired.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let mut ks = server.keyspace.lock_keys([key.key], now_ms);
            if !ks.insert_loaded(key.db, key.key, key.value, key.expire_ms) {
                return Err(format!(
                    "RDB has duplicated key '{}' in DB {}",
                    String::from_utf8_lossy(key.key),
                    key.db
                ));
            }
            drop(ks);
            // A dataset larger than memory spills as it loads.
            if (loaded_keys.fetch_add(1, Ordering::Relaxed) + 1) % 256 == 0 {
                crate::tier::spill::relieve_if_over(server);
            }
            Ok(())
        },
        &|offset| {
            let offset = offset as u64;
            if offset >= released.load(Ordering::Relaxed) + RELEASE_EVERY as u64 {
                released.store(offset, Ordering::Relaxed);
                done(offset as usize);
            }
        },
        // RESIZEDB: each shard's tables sized for its share, so they never rehash.
        &mut |size| {
            let mut ks = server.keyspace.lock_all(now_ms);
            for slice in ks.slices(size.db) {
                slice.reserve(shard_share(size.keys), shard_share(size.expires));
            }
        },
    );
    server
        .keyspace
        .loading
        .store(was_loading, Ordering::Release);
    let loaded = outcome.map_err(|err| {
        format!(
            "Short read or corrupt RDB file {name} at offset {}: {}",
            err.offset, err.reason
        )
    })?;
    server
        .rdb
        .last_load_keys
        .store(loaded.keys, Ordering::Relaxed);
    server
        .rdb
        .last_load_expired
        .store(expired.load(Ordering::Relaxed), Ordering::Relaxed);
    let expired = expired.into_inner();
    if expired > 0 {
        tracing::info!(
            "Done loading RDB, keys loaded: {}, keys expired: {expired}.",
            loaded.keys
        );
    }
    Ok(())
}

/// The file end of an RDB save: the [`RdbSink`]s of the snapshot's walkers append their
/// pieces here, in the order they come, through the file's one `Writer`.
struct RdbFile {
    file: Box<dyn crate::io::WritableFile>,
    writer: Option<crate::persist::rdb::file::Writer>,
    size: u64,
}

impl RdbFile {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.file
            .write_all(bytes)
            .map_err(|err| format!("Write error saving DB on disk: {err}"))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn append(&mut self, pieces: Vec<crate::persist::rdb::file::Piece>) -> Result<(), String> {
        for piece in pieces {
            let Some(writer) = self.writer.as_mut() else {
                return Err("the RDB file was already finished".into());
            };
            let before = writer.append(&piece);
            self.write(&before)?;
            self.write(&piece.bytes)?;
        }
        Ok(())
    }
}

/// One snapshot walker's part of an RDB save: encodes its entries and appends them to the
/// shared file a chunk at a time (`helper` makes one more walker's sink for the same file).
struct RdbSink {
    encoder: crate::persist::rdb::file::Encoder,
    file: std::sync::Arc<parking_lot::Mutex<RdbFile>>,
    failure: Option<String>,
}

impl RdbSink {
    fn new(
        server: &Server,
        file: Box<dyn crate::io::WritableFile>,
        aux: &[(&str, &str)],
    ) -> RdbSink {
        let options = crate::persist::rdb::EncodeOptions::from_config(&server.config);
        let mut writer = crate::persist::rdb::file::Writer::new(
            options,
            server.clock.now_ms(),
            crate::tier::used_memory() as u64,
            aux,
        );
        // RESIZEDB's sizes, from just before the snapshot's instant: a loader's hint.
        let mut ks = server.keyspace.lock_all(server.clock.now_ms());
        let sizes = (0..server.keyspace.databases())
            .map(|db| {
                ks.slices(db).fold((0, 0), |(keys, expires), slice| {
                    (
                        keys + slice.len() as u64,
                        expires + slice.expires.len() as u64,
                    )
                })
            })
            .collect();
        drop(ks);
        writer.set_sizes(sizes);
        RdbSink {
            encoder: crate::persist::rdb::file::Encoder::new(options),
            file: std::sync::Arc::new(parking_lot::Mutex::new(RdbFile {
                file,
                writer: Some(writer),
                size: 0,
            })),
            failure: None,
        }
    }

    fn helper(&self) -> RdbSink {
        RdbSink {
            encoder: self.encoder.sibling(),
            file: self.file.clone(),
            failure: None,
        }
    }

    /// Appends everything encoded so far to the file.
    fn write_out(&mut self) -> Result<(), String> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        let pieces = self.encoder.take();
        if pieces.is_empty() {
            return Ok(());
        }
        self.file.lock().append(pieces)
    }
}

impl crate::keyspace::snapshot::Sink for RdbSink {
    fn entry(
        &mut self,
        db: usize,
        key: &[u8],
        value: &crate::types::Value,
        expire_ms: Option<u64>,
    ) {
        if self.failure.is_some() {
            return;
        }
        if let Err(err) = self.encoder.entry(db, key, value, expire_ms) {
            self.failure = Some(format!(
                "can't save key '{}': {err}",
                String::from_utf8_lossy(key)
            ));
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.failure.is_none() && self.encoder.buffered() < WRITE_CHUNK_BYTES {
            return Ok(());
        }
        self.write_out()
    }

    fn walked(&mut self) -> Result<(), String> {
        self.write_out()
    }
}

impl FileSink for RdbSink {
    fn finish(&mut self, checksum: bool) -> Result<u64, String> {
        self.write_out()?;
        let mut file = self.file.lock();
        let Some(writer) = file.writer.take() else {
            return Ok(file.size);
        };
        let bytes = writer.finish(checksum);
        file.write(&bytes)?;
        file.file
            .sync()
            .map_err(|err| format!("Write error saving DB on disk: {err}"))?;
        Ok(file.size)
    }

    fn as_sink(&mut self) -> &mut (dyn crate::keyspace::snapshot::Sink + Send) {
        self
    }
}

/// A snapshot sink that ends as a file: its size once complete and fsynced.
trait FileSink: crate::keyspace::snapshot::Sink + Send {
    fn finish(&mut self, checksum: bool) -> Result<u64, String>;
    fn as_sink(&mut self) -> &mut (dyn crate::keyspace::snapshot::Sink + Send);
}
