//! The append-only file, Redis 7's multi-part format: `<dir>/<appenddirname>/` holds a base
//! file, incr files and a manifest naming them (see [`manifest`]).
//!
//! Writes reach the AOF as the propagation log's bytes (the deterministic effects, `SELECT`
//! included), fed under the log's lock, so the file has the commit order. A dedicated thread
//! writes them out and fsyncs by `appendfsync`:
//! - `always`: a client's reply leaves only once the bytes of its writes are fsynced; writes
//!   that arrive while an fsync runs share the next one (group commit);
//! - `everysec`: written at once, fsynced about once a second;
//! - `no`: written at once, fsynced when the kernel decides.
//!
//! A failed write or fsync leaves the file in an unknown state: from then on writes are
//! refused with Redis's `-MISCONF Errors writing to the AOF file: ...` and nothing more is
//! acknowledged, until a rewrite has written everything in memory to fresh files.
//! All file access goes through [`crate::io::FileSystem`], so the simulator can fail it.

pub mod checksum;
pub mod load;
pub mod manifest;
pub mod rewrite;

use crate::io::{Clock, FileSystem, WritableFile};
use crate::repl::log::Sink;
use parking_lot::{Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the writer sleeps when idle before checking the everysec deadline again.
const IDLE_WAKE: Duration = Duration::from_millis(100);
/// `everysec`'s fsync interval.
const EVERYSEC_MS: u64 = 1000;

/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    Everysec,
    No,
}

impl Fsync {
    pub fn from_word(word: &str) -> Fsync {
        match word {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::Everysec,
        }
    }

    fn code(self) -> u8 {
        match self {
            Fsync::Always => 0,
            Fsync::Everysec => 1,
            Fsync::No => 2,
        }
    }

    fn from_code(code: u8) -> Fsync {
        match code {
            0 => Fsync::Always,
            2 => Fsync::No,
            _ => Fsync::Everysec,
        }
    }
}

/// Numbers INFO persistence reports.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes of the base file.
    pub base_size: AtomicU64,
    /// Bytes of the incr files the manifest lists after the base.
    pub incr_size: AtomicU64,
    /// Bytes appended to the newest incr file since the last switch.
    incr_since_switch: AtomicU64,
    pub rewrites: AtomicU64,
    pub last_rewrite_ms: AtomicU64,
    /// 1 when the last rewrite failed.
    pub last_rewrite_failed: AtomicBool,
    pub rewrite_in_progress: AtomicBool,
    /// BGREWRITEAOF asked while a save ran: it starts when the save ends.
    pub rewrite_scheduled: AtomicBool,
    pub pending_bytes: AtomicU64,
    /// When the cron last tried a rewrite to recover from a write error (unix ms).
    pub last_recovery_ms: AtomicU64,
}

impl Stats {
    /// INFO's `aof_current_size`: base plus incr files.
    pub fn current_size(&self) -> u64 {
        self.base_size.load(Ordering::Relaxed) + self.incr_size.load(Ordering::Relaxed)
    }
}

struct Pending {
    bytes: Vec<u8>,
    /// Log offset just past `bytes`.
    end: u64,
    stop: bool,
}

struct Shared {
    fs: Arc<dyn FileSystem>,
    clock: Arc<dyn Clock>,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// The open incr file; held by the writer while it writes or syncs, by a rewrite while
    /// it switches files.
    file: Mutex<Option<Box<dyn WritableFile>>>,
    /// The CRC-64 of the incr file's bytes since its last `#CRC64` annotation (held with
    /// `file`).
    checksum: Mutex<checksum::Range>,
    /// Log offset fsynced; clients under `always` wait on it before their replies leave.
    durable: tokio::sync::watch::Sender<u64>,
    /// Log offset written to the file.
    written: AtomicU64,
    synced: AtomicU64,
    last_sync_ms: AtomicU64,
    policy: AtomicU8,
    /// Set while the AOF is on: the sink drops bytes otherwise.
    enabled: AtomicBool,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    stats: Stats,
    /// No writer thread: the owner calls [`Aof::step`] (the simulator, for determinism).
    manual: AtomicBool,
    /// Test-only: acknowledge at write time under `always`, before the fsync (see
    /// [`Aof::break_durability_for_simulation`]).
    broken_ack: AtomicBool,
}

/// The AOF of one server. Always present; `enabled` while `appendonly` is on.
pub struct Aof {
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The directory (`<dir>/<appenddirname>`) and file prefix (`appendfilename`) in use.
    location: Mutex<Option<(PathBuf, String)>>,
    /// The manifest as last persisted.
    manifest: Mutex<manifest::Manifest>,
}

impl Aof {
    pub fn new(fs: Arc<dyn FileSystem>, clock: Arc<dyn Clock>) -> Aof {
        let (durable, _) = tokio::sync::watch::channel(0);
        Aof {
            shared: Arc::new(Shared {
                fs,
                clock,
                pending: Mutex::new(Pending {
                    bytes: Vec::new(),
                    end: 0,
                    stop: false,
                }),
                wake: Condvar::new(),
                file: Mutex::new(None),
                checksum: Mutex::new(checksum::Range::new()),
                durable,
                written: AtomicU64::new(0),
                synced: AtomicU64::new(0),
                last_sync_ms: AtomicU64::new(0),
                policy: AtomicU8::new(Fsync::Everysec.code()),
                enabled: AtomicBool::new(false),
                failed: AtomicBool::new(false),
                failure: Mutex::new(None),
                stats: Stats::default(),
                manual: AtomicBool::new(false),
                broken_ack: AtomicBool::new(false),
            }),
            writer: Mutex::new(None),
            location: Mutex::new(None),
            manifest: Mutex::new(manifest::Manifest::default()),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn set_policy(&self, policy: Fsync) {
        self.shared.policy.store(policy.code(), Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    pub fn policy(&self) -> Fsync {
        Fsync::from_code(self.shared.policy.load(Ordering::Relaxed))
    }

    /// Whether replies must wait for [`Aof::wait_durable`] (`always` while on).
    pub fn replies_wait(&self) -> bool {
        self.is_enabled() && self.policy() == Fsync::Always
    }

    /// The error writes are refused with, when a write or fsync failed.
    pub fn write_error(&self) -> Option<String> {
        if !self.shared.failed.load(Ordering::Acquire) {
            return None;
        }
        self.shared.failure.lock().clone()
    }

    /// Waits until the log's bytes up to `offset` are durable; false if they never will be
    /// (the AOF failed or was turned off first): the caller must not acknowledge them.
    pub async fn wait_durable(&self, offset: u64) -> bool {
        let mut receiver = self.shared.durable.subscribe();
        let shared = &self.shared;
        let outcome = receiver
            .wait_for(|&durable| {
                durable >= offset
                    || shared.failed.load(Ordering::Acquire)
                    || !shared.enabled.load(Ordering::Acquire)
            })
            .await
            .map(|durable| *durable >= offset);
        matches!(outcome, Ok(true)) && !shared.failed.load(Ordering::Acquire)
    }

    /// The sink to register with the propagation log.
    pub fn sink(&self) -> Box<dyn Sink> {
        Box::new(AofSink(self.shared.clone()))
    }

    /// The AOF directory and prefix once opened.
    pub fn location(&self) -> Option<(PathBuf, String)> {
        self.location.lock().clone()
    }

    pub fn manifest(&self) -> manifest::Manifest {
        self.manifest.lock().clone()
    }

    /// Covers the commands after the last checksum annotation with one more, so a file closed
    /// cleanly is checked to its end on the next load.
    fn annotate_tail(&self) {
        let mut guard = self.shared.file.lock();
        let Some(file) = guard.as_mut() else {
            return;
        };
        if self.shared.failed.load(Ordering::Acquire) {
            return;
        }
        let line = {
            let mut range = self.shared.checksum.lock();
            if range.is_empty() {
                return;
            }
            range.annotation()
        };
        if let Err(err) = file.write_all(&line).and_then(|()| file.sync()) {
            tracing::warn!("Error writing to the AOF file: {err}");
        }
    }

    /// The last incr file `manifest` names, opened for appending.
    fn open_last_incr(
        &self,
        dir: &Path,
        manifest: &manifest::Manifest,
    ) -> Result<Box<dyn WritableFile>, String> {
        let incr = manifest
            .incr
            .last()
            .ok_or("the AOF manifest names no incr file")?;
        let path = dir.join(&incr.name);
        self.shared
            .fs
            .append(&path)
            .map_err(|err| format!("Can't open the append-only file {}: {err}", path.display()))
    }

    /// Starts appending to `incr` (the last incr file of `manifest`) from log offset
    /// `offset`, and starts the writer thread if it is not running.
    pub fn open(
        &self,
        dir: &Path,
        prefix: &str,
        manifest: manifest::Manifest,
        offset: u64,
    ) -> Result<(), String> {
        let mut file = self.open_last_incr(dir, &manifest)?;
        // What the file holds was just loaded and accepted; checksums start over from here.
        // A full or failing disk does not stop the start (Redis starts too): the AOF is then
        // failed at once, so writes are refused until a rewrite, and nothing is appended
        // after a range the next load could not check.
        let marked = file.write_all(checksum::RESET);
        *self.shared.checksum.lock() = checksum::Range::new();
        let incr_size: u64 = manifest
            .incr
            .iter()
            .filter_map(|info| self.shared.fs.read(&dir.join(&info.name)).ok())
            .map(|bytes| bytes.len() as u64)
            .sum();
        let base_size = manifest
            .base
            .as_ref()
            .and_then(|info| self.shared.fs.read(&dir.join(&info.name)).ok())
            .map(|bytes| bytes.len() as u64)
            .unwrap_or(0);
        let stats = &self.shared.stats;
        stats.incr_size.store(incr_size, Ordering::Relaxed);
        stats.incr_since_switch.store(0, Ordering::Relaxed);
        stats.base_size.store(base_size, Ordering::Relaxed);
        *self.shared.file.lock() = Some(file);
        {
            let mut pending = self.shared.pending.lock();
            pending.bytes.clear();
            pending.end = offset;
            pending.stop = false;
        }
        self.shared.written.store(offset, Ordering::Release);
        self.shared.synced.store(offset, Ordering::Release);
        self.shared.durable.send_replace(offset);
        self.shared
            .last_sync_ms
            .store(self.shared.clock.now_ms(), Ordering::Relaxed);
        *self.location.lock() = Some((dir.to_path_buf(), prefix.to_string()));
        *self.manifest.lock() = manifest;
        self.shared.failed.store(false, Ordering::Release);
        *self.shared.failure.lock() = None;
        if let Err(err) = marked {
            fail(
                &self.shared,
                format!("Error writing to the AOF file: {err}"),
            );
        }
        self.shared.enabled.store(true, Ordering::Release);
        let mut writer = self.writer.lock();
        if writer.is_none() && !self.shared.manual.load(Ordering::Relaxed) {
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name("aof-writer".into())
                .spawn(move || write_loop(&shared))
                .map_err(|err| format!("Can't start the AOF writer: {err}"))?;
            *writer = Some(handle);
        }
        Ok(())
    }

    /// Runs without a writer thread: [`Aof::step`] does its work when the owner says so.
    /// The simulator drives the AOF this way, so a seed replays exactly.
    pub fn set_manual(&self) {
        self.shared.manual.store(true, Ordering::Relaxed);
    }

    /// One round of the writer (manual mode): write what is pending, fsync if due.
    pub fn step(&self) {
        write_once(&self.shared);
    }

    /// The log offset fsynced so far.
    pub fn durable_offset(&self) -> u64 {
        *self.shared.durable.borrow()
    }

    /// A deliberately broken variant for the simulator's self-test: under `always`, bytes
    /// count as durable once written, before their fsync. Never used outside that test.
    pub fn break_durability_for_simulation(&self) {
        self.shared.broken_ack.store(true, Ordering::Relaxed);
    }

    /// Writes and fsyncs everything fed so far, waiting for it (rewrites, shutdown). The
    /// caller holds whatever stops new writes when it needs a quiet point.
    pub fn flush_and_sync(&self) -> Result<(), String> {
        // File, then pending: the writer's lock order.
        let mut file = self.shared.file.lock();
        let (bytes, end) = {
            let mut pending = self.shared.pending.lock();
            (std::mem::take(&mut pending.bytes), pending.end)
        };
        let Some(file) = file.as_mut() else {
            return Ok(());
        };
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.write_error().unwrap_or_default());
        }
        if let Err(err) = write_and_count(&self.shared, file.as_mut(), &bytes, end) {
            return Err(fail(
                &self.shared,
                format!("Error writing to the AOF file: {err}"),
            ));
        }
        if let Err(err) = file.sync() {
            return Err(fail(
                &self.shared,
                format!("Fail to fsync the AOF file: {err}"),
            ));
        }
        mark_synced(&self.shared, end);
        Ok(())
    }

    /// Switches appending to a new incr file, at a rewrite's instant (the caller holds every
    /// shard, so no write is fed meanwhile); `manifest` already lists the new file.
    pub fn switch(&self, dir: &Path, manifest: manifest::Manifest) -> Result<(), String> {
        let file = self.open_last_incr(dir, &manifest)?;
        *self.shared.file.lock() = Some(file);
        *self.shared.checksum.lock() = checksum::Range::new();
        *self.manifest.lock() = manifest;
        self.shared
            .stats
            .incr_since_switch
            .store(0, Ordering::Relaxed);
        Ok(())
    }

    /// A rewrite finished: `manifest` names the new base and incr file. Everything in memory
    /// at its instant is in the base, so an earlier write failure is behind us.
    pub fn rewritten(&self, manifest: manifest::Manifest, base_size: u64) {
        *self.manifest.lock() = manifest;
        let stats = &self.shared.stats;
        stats.base_size.store(base_size, Ordering::Relaxed);
        stats.incr_size.store(
            stats.incr_since_switch.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.shared.failed.store(false, Ordering::Release);
        *self.shared.failure.lock() = None;
    }

    /// Stops appending (`appendonly no`, shutdown): flushes and fsyncs what is pending.
    pub fn close(&self) {
        if !self.is_enabled() {
            return;
        }
        if let Err(err) = self.flush_and_sync() {
            tracing::warn!("{err}");
        }
        self.annotate_tail();
        self.shared.enabled.store(false, Ordering::Release);
        {
            let mut pending = self.shared.pending.lock();
            pending.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
        *self.shared.file.lock() = None;
        // Wake anyone waiting: nothing more becomes durable.
        self.shared.durable.send_modify(|_| {});
    }
}

impl Drop for Aof {
    fn drop(&mut self) {
        self.shared.pending.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

struct AofSink(Arc<Shared>);

impl Sink for AofSink {
    fn feed(&mut self, bytes: &[u8], end_offset: u64) {
        if !self.0.enabled.load(Ordering::Acquire) {
            return;
        }
        let mut pending = self.0.pending.lock();
        pending.bytes.extend_from_slice(bytes);
        pending.end = end_offset;
        self.0
            .stats
            .pending_bytes
            .store(pending.bytes.len() as u64, Ordering::Relaxed);
        drop(pending);
        self.0.wake.notify_one();
    }
}

/// Records the failure (once) and returns its text.
fn fail(shared: &Shared, text: String) -> String {
    if !shared.failed.swap(true, Ordering::AcqRel) {
        tracing::warn!("{text}");
    }
    let mut failure = shared.failure.lock();
    let message = format!(
        "MISCONF Errors writing to the AOF file: {}",
        text.rsplit(": ").next().unwrap_or(&text)
    );
    *failure = Some(message);
    // Waiters must learn that their bytes will not become durable.
    shared.durable.send_modify(|_| {});
    text
}

fn write_and_count(
    shared: &Shared,
    file: &mut dyn WritableFile,
    bytes: &[u8],
    end: u64,
) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    file.write_all(bytes)?;
    shared.written.store(end, Ordering::Release);
    let mut written = bytes.len() as u64;
    let annotation = shared.checksum.lock().add(bytes);
    if let Some(line) = annotation {
        file.write_all(&line)?;
        written += line.len() as u64;
    }
    let stats = &shared.stats;
    stats.incr_size.fetch_add(written, Ordering::Relaxed);
    stats
        .incr_since_switch
        .fetch_add(written, Ordering::Relaxed);
    Ok(())
}

fn mark_synced(shared: &Shared, end: u64) {
    shared.synced.fetch_max(end, Ordering::AcqRel);
    shared
        .last_sync_ms
        .store(shared.clock.now_ms(), Ordering::Relaxed);
    shared.durable.send_if_modified(|durable| {
        if *durable < end {
            *durable = end;
            true
        } else {
            false
        }
    });
}

/// The writer thread: drains what the sink fed, writes it, fsyncs by policy.
///
/// Lock order is file, then pending: bytes are taken from `pending` only while the file
/// lock is held, so a rewrite that holds the file lock while it switches files can never
/// see bytes fed before the switch land in the new file.
fn write_loop(shared: &Shared) {
    loop {
        {
            let mut pending = shared.pending.lock();
            if pending.bytes.is_empty() && !pending.stop {
                shared.wake.wait_for(&mut pending, IDLE_WAKE);
            }
        }
        if write_once(shared) {
            return;
        }
    }
}

/// One round of the writer: takes what is pending, writes it, fsyncs when the policy says
/// so. True when the writer is to stop.
fn write_once(shared: &Shared) -> bool {
    let mut guard = shared.file.lock();
    let (bytes, end, stop) = {
        let mut pending = shared.pending.lock();
        let bytes = std::mem::take(&mut pending.bytes);
        shared.stats.pending_bytes.store(0, Ordering::Relaxed);
        (bytes, pending.end, pending.stop)
    };
    let Some(file) = guard.as_mut() else {
        return stop;
    };
    if shared.failed.load(Ordering::Acquire) {
        // The file's state is unknown: nothing more goes to it until a rewrite.
        return stop;
    }
    if let Err(err) = write_and_count(shared, file.as_mut(), &bytes, end) {
        fail(shared, format!("Error writing to the AOF file: {err}"));
        return stop;
    }
    let policy = Fsync::from_code(shared.policy.load(Ordering::Relaxed));
    let written = shared.written.load(Ordering::Acquire);
    if shared.broken_ack.load(Ordering::Relaxed) {
        // The deliberately broken variant: acknowledges what is only written.
        mark_synced(shared, written);
    }
    let unsynced = written > shared.synced.load(Ordering::Acquire);
    let due = match policy {
        Fsync::Always => unsynced,
        Fsync::Everysec => {
            unsynced
                && shared.clock.now_ms()
                    >= shared.last_sync_ms.load(Ordering::Relaxed) + EVERYSEC_MS
        }
        Fsync::No => false,
    };
    if due || (stop && unsynced) {
        if let Err(err) = file.sync() {
            fail(shared, format!("Fail to fsync the AOF file: {err}"));
            return stop;
        }
        mark_synced(shared, written);
    }
    stop
}
