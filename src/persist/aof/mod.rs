//! The append-only file, Redis 7's multi-part format: `<dir>/<appenddirname>/` holds a base
//! file, incr files and a manifest naming them (see [`manifest`]).
//!
//! Writes reach the AOF as the propagation log's bytes (the deterministic effects, `SELECT`
//! included), fed under the log's lock, so the file has the commit order. A dedicated thread
//! writes them out and fsyncs by `appendfsync`:
//! - `always`: a client's reply leaves only once the bytes of its writes are fsynced; writes
//!   that arrive while an fsync runs share the next one (group commit);
//! - `everysec`: written within 10 ms (or once 512 KiB wait), fsynced about once a second;
//! - `no`: written as `everysec`, fsynced when the kernel decides.
//!
//! A failed write or fsync leaves the file in an unknown state: from then on writes (and an
//! EXEC holding one, and PING) are refused with Redis's `-MISCONF Errors writing to the AOF
//! file: ...` and nothing more is acknowledged, until a rewrite has written everything in
//! memory to fresh files (the cron tries one a second). Changes no client write causes go
//! on meanwhile (expired and evicted keys' DELs): those fed before the rewrite's instant are
//! dropped, its base holds their effect; those fed after it are held and written to the new
//! incr file when the rewrite ends (see [`handoff`]). A failure of the new incr file during
//! the rewrite outlives it. Redis 7.0 instead keeps its buffer and retries the write until
//! one succeeds (and exits under `always`); both refuse writes while the file is in doubt.
//! All file access goes through [`crate::io::FileSystem`], so the simulator can fail it.

pub mod checksum;
pub mod handoff;
pub mod load;
pub mod manifest;
pub mod rewrite;

use crate::io::{Clock, FileSystem, WritableFile};
use crate::repl::log::Sink;
use handoff::Handoff;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Under `always` the connection threads nudge the writer at the end of each turn of their
/// event loops ([`Aof::turn_ends`]); it looks this often for bytes no turn nudged (fed by the
/// cron or a replica link, or by a thread that has not parked for long) while any are
/// pending, and takes those that waited a whole period...
const ALWAYS_WAKE: Duration = Duration::from_millis(2);
/// ...and this often while none are (an idle server's writer wakes 50 times a second; at
/// [`ALWAYS_WAKE`] it took 2% of a core).
const ALWAYS_IDLE_WAKE: Duration = Duration::from_millis(20);
/// Under `everysec` and `no` feeds do not wake the writer (a futex wake-up and a write per
/// client write cost more than the write): it writes what is pending this often, or once
/// [`LAZY_WAKE_BYTES`] are pending. A process crash loses at most this much more than
/// the bytes still in the kernel; `everysec` promises about two seconds.
const LAZY_WRITE_INTERVAL: Duration = Duration::from_millis(10);
/// Pending bytes that wake the writer whatever the policy (bounds what waits).
const LAZY_WAKE_BYTES: u64 = 512 * 1024;
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

/// The open incr file and the checksum of its bytes since its last `#CRC64` annotation: what
/// the hand-off's writer writes to.
struct IncrFile {
    file: Box<dyn WritableFile>,
    checksum: checksum::Range,
}

impl handoff::Output for IncrFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<u64> {
        self.file.write_all(bytes)?;
        let mut appended = bytes.len() as u64;
        if let Some(line) = self.checksum.add(bytes) {
            self.file.write_all(&line)?;
            appended += line.len() as u64;
        }
        Ok(appended)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync()
    }
}

struct Shared {
    fs: Arc<dyn FileSystem>,
    clock: Arc<dyn Clock>,
    /// The group commit: pending bytes, the open file, written/synced/durable offsets, the
    /// failure state.
    handoff: Handoff<IncrFile>,
    last_sync_ms: AtomicU64,
    policy: AtomicU8,
    stats: Stats,
    /// No writer thread: the owner calls [`Aof::step`] (the simulator, for determinism).
    manual: AtomicBool,
}

impl Shared {
    /// After a writer round or a flush: the file's growth and the time of a sync.
    fn account(&self, appended: u64, synced: bool) {
        if appended > 0 {
            self.stats.incr_size.fetch_add(appended, Ordering::Relaxed);
            self.stats
                .incr_since_switch
                .fetch_add(appended, Ordering::Relaxed);
        }
        if synced {
            self.last_sync_ms
                .store(self.clock.now_ms(), Ordering::Relaxed);
        }
    }
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
        let aof = Aof {
            shared: Arc::new(Shared {
                fs,
                clock,
                handoff: Handoff::new(),
                last_sync_ms: AtomicU64::new(0),
                policy: AtomicU8::new(Fsync::Everysec.code()),
                stats: Stats::default(),
                manual: AtomicBool::new(false),
            }),
            writer: Mutex::new(None),
            location: Mutex::new(None),
            manifest: Mutex::new(manifest::Manifest::default()),
        };
        aof.set_policy(Fsync::Everysec);
        aof
    }

    pub fn is_enabled(&self) -> bool {
        self.shared.handoff.is_enabled()
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn set_policy(&self, policy: Fsync) {
        self.shared.policy.store(policy.code(), Ordering::Relaxed);
        // Under every policy a feed wakes the writer only once this much is pending: under
        // `always` the connection threads' turns nudge it, otherwise its interval brings it.
        self.shared.handoff.set_wake_after(LAZY_WAKE_BYTES);
        // The writer looks at the new policy now rather than at its next idle wake.
        self.shared.handoff.wake_writer();
    }

    pub fn policy(&self) -> Fsync {
        Fsync::from_code(self.shared.policy.load(Ordering::Relaxed))
    }

    /// Whether replies must wait for [`Aof::wait_durable`] (`always` while on).
    pub fn replies_wait(&self) -> bool {
        self.is_enabled() && self.policy() == Fsync::Always
    }

    /// A connection thread ran everything ready and is about to wait for more (where Redis's
    /// `beforeSleep` fsyncs): under `always`, the writer is told to write and fsync what is
    /// pending, so one fsync covers the turn's writes. The thread goes on meanwhile (Redis
    /// waits for its fsync): the clients whose writes are not in it are served.
    pub fn turn_ends(&self) {
        if !self.shared.has_pending() || !self.replies_wait() || self.is_manual() {
            return;
        }
        self.shared.handoff.nudge();
    }

    /// The error writes are refused with, when a write or fsync failed.
    pub fn write_error(&self) -> Option<String> {
        self.shared.handoff.write_error()
    }

    /// Waits until the log's bytes up to `offset` are durable; false if they never will be
    /// (the AOF failed or was turned off first): the caller must not acknowledge them.
    pub async fn wait_durable(&self, offset: u64) -> bool {
        let handoff = &self.shared.handoff;
        let mut receiver = local_durable(&self.shared);
        // The relay may not have passed the latest publication on yet: the handoff's own
        // offset is read too, so a client never waits for what is already durable.
        let current = |relayed: u64| relayed.max(handoff.durable_offset());
        let outcome = receiver
            .wait_for(|&relayed| handoff.settled(current(relayed), offset))
            .await
            .map(|relayed| current(*relayed));
        matches!(outcome, Ok(durable) if handoff.verdict(durable, offset))
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
        let mut guard = self.shared.handoff.file();
        let Some(incr) = guard.as_mut() else {
            return;
        };
        if self.shared.handoff.is_failed() || incr.checksum.is_empty() {
            return;
        }
        let line = incr.checksum.annotation();
        if let Err(err) = incr.file.write_all(&line).and_then(|()| incr.file.sync()) {
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
        let handoff = &self.shared.handoff;
        *handoff.file() = Some(IncrFile {
            file,
            checksum: checksum::Range::new(),
        });
        handoff.reset(offset);
        self.shared
            .last_sync_ms
            .store(self.shared.clock.now_ms(), Ordering::Relaxed);
        *self.location.lock() = Some((dir.to_path_buf(), prefix.to_string()));
        *self.manifest.lock() = manifest;
        if let Err(err) = marked {
            handoff.fail(format!("Error writing to the AOF file: {err}"));
        }
        handoff.set_enabled(true);
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

    /// Whether the owner drives the AOF by hand (the simulator): it wants every step
    /// deterministic, so loading runs on one thread too.
    pub fn is_manual(&self) -> bool {
        self.shared.manual.load(Ordering::Relaxed)
    }

    /// One round of the writer (manual mode): write what is pending, fsync if due.
    pub fn step(&self) {
        write_once(&self.shared);
    }

    /// The log offset fsynced so far.
    pub fn durable_offset(&self) -> u64 {
        self.shared.handoff.durable_offset()
    }

    /// A deliberately broken variant for the simulator's self-test: under `always`, bytes
    /// count as durable once written, before their fsync. Never used outside that test.
    pub fn break_durability_for_simulation(&self) {
        self.shared.handoff.break_durability();
    }

    /// Writes and fsyncs everything fed so far, waiting for it (rewrites, shutdown). The
    /// caller holds whatever stops new writes when it needs a quiet point.
    pub fn flush_and_sync(&self) -> Result<(), String> {
        let round = self.shared.handoff.flush()?;
        self.shared.account(round.appended, round.synced);
        Ok(())
    }

    /// Switches appending to a new incr file, at a rewrite's instant (the caller holds every
    /// shard, so no write is fed meanwhile); `manifest` already lists the new file.
    pub fn switch(&self, dir: &Path, manifest: manifest::Manifest) -> Result<(), String> {
        let file = self.open_last_incr(dir, &manifest)?;
        self.shared.handoff.switch_file(IncrFile {
            file,
            checksum: checksum::Range::new(),
        });
        *self.manifest.lock() = manifest;
        self.shared
            .stats
            .incr_since_switch
            .store(0, Ordering::Relaxed);
        Ok(())
    }

    /// A rewrite finished: `manifest` names the new base and incr file. Everything in memory
    /// at its instant is in the base, so a write failure from before it is behind us (one of
    /// the new incr file since is not: writes stay refused until the next rewrite).
    pub fn rewritten(&self, manifest: manifest::Manifest, base_size: u64) {
        *self.manifest.lock() = manifest;
        let stats = &self.shared.stats;
        stats.base_size.store(base_size, Ordering::Relaxed);
        stats.incr_size.store(
            stats.incr_since_switch.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        if !self.shared.handoff.recovered() {
            tracing::warn!(
                "The new AOF incr file failed during the rewrite: writes stay refused until \
                 the next rewrite"
            );
        }
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
        let handoff = &self.shared.handoff;
        handoff.set_enabled(false);
        handoff.stop_writer();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
        *handoff.file() = None;
        // Wake anyone waiting: nothing more becomes durable.
        handoff.wake_waiters();
    }
}

impl Drop for Aof {
    fn drop(&mut self) {
        self.shared.handoff.stop_writer();
    }
}

thread_local! {
    /// This thread's relay of the durable offset: which AOF it relays, and where.
    static DURABLE_RELAY: std::cell::RefCell<Option<(std::sync::Weak<Shared>, tokio::sync::watch::Receiver<u64>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Where a client on this thread waits for the durable offset. One task per thread (a relay)
/// waits on the handoff and passes each publication on to the thread's waiting clients: a
/// publication then wakes each connection thread once, from the writer, and the clients from
/// their own thread. (A client waiting on the handoff itself is woken from the writer thread,
/// and a single-threaded event loop is woken through its eventfd for every such task: a
/// write per client per fsync.)
fn local_durable(shared: &Arc<Shared>) -> tokio::sync::watch::Receiver<u64> {
    DURABLE_RELAY.with(|relay| {
        let mut relay = relay.borrow_mut();
        if let Some((relayed, receiver)) = relay.as_ref() {
            // A relay ends with the event loop that ran it (a runtime may end before the
            // thread does); then a new one starts.
            let alive = receiver.has_changed().is_ok();
            if alive && std::ptr::eq(relayed.as_ptr(), Arc::as_ptr(shared)) {
                return receiver.clone();
            }
        }
        let handoff = &shared.handoff;
        let mut source = handoff.durable().subscribe();
        let (sender, receiver) = tokio::sync::watch::channel(*source.borrow_and_update());
        tokio::spawn(async move {
            // Ends with the AOF (its handoff's sender dropped) or once no receiver is left.
            while source.changed().await.is_ok() {
                let durable = *source.borrow_and_update();
                // Every publication is passed on, also one that leaves the offset as it was
                // (a failure, the AOF turned off): the waiters look again.
                sender.send_modify(|relayed| *relayed = durable);
                if sender.is_closed() {
                    return;
                }
            }
        });
        *relay = Some((Arc::downgrade(shared), receiver.clone()));
        receiver
    })
}

impl Shared {
    /// Whether bytes may be pending, read without the hand-off's lock: the count is raised
    /// after every feed and zeroed only before the writer takes what is pending, so it is
    /// never zero while bytes wait (at worst it is stale the other way, and a round finds
    /// nothing to do).
    fn has_pending(&self) -> bool {
        self.stats.pending_bytes.load(Ordering::Relaxed) > 0
    }
}

struct AofSink(Arc<Shared>);

impl Sink for AofSink {
    fn feed(&mut self, bytes: &[u8], end_offset: u64) {
        if let Some(pending) = self.0.handoff.feed(bytes, end_offset) {
            self.0
                .stats
                .pending_bytes
                .store(pending as u64, Ordering::Relaxed);
        }
    }
}

/// The writer thread: drains what the sink fed, writes it, fsyncs by policy.
fn write_loop(shared: &Shared) {
    // Under `always`: the written offset when the writer last found bytes pending that no
    // turn had nudged.
    let mut unnudged_at = None;
    loop {
        let policy = Fsync::from_code(shared.policy.load(Ordering::Relaxed));
        let idle = match policy {
            Fsync::Always if unnudged_at.is_some() => ALWAYS_WAKE,
            Fsync::Always => ALWAYS_IDLE_WAKE,
            Fsync::Everysec | Fsync::No => LAZY_WRITE_INTERVAL,
        };
        let work = shared.handoff.wait_for_work(idle);
        if policy == Fsync::Always && !work {
            // The connection threads' turns nudge the writer (Aof::turn_ends). Bytes no turn
            // nudged (fed by the cron or a replica link, or by a thread busy for long) are
            // taken once they have waited a whole idle period, and not before: a turn in
            // progress is not split in two fsyncs.
            let written = shared.handoff.written_offset();
            let pending = shared.has_pending();
            if !pending || unnudged_at != Some(written) {
                unnudged_at = pending.then_some(written);
                continue;
            }
        }
        unnudged_at = None;
        if write_once(shared) {
            return;
        }
    }
}

/// One round of the writer: takes what is pending, writes it, fsyncs when the policy says
/// so. True when the writer is to stop.
fn write_once(shared: &Shared) -> bool {
    // Whatever is pending is taken now.
    shared.stats.pending_bytes.store(0, Ordering::Relaxed);
    let round =
        shared.handoff.round(
            || match Fsync::from_code(shared.policy.load(Ordering::Relaxed)) {
                Fsync::Always => true,
                Fsync::Everysec => {
                    shared.clock.now_ms()
                        >= shared.last_sync_ms.load(Ordering::Relaxed) + EVERYSEC_MS
                }
                Fsync::No => false,
            },
        );
    shared.account(round.appended, round.synced);
    round.stop
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::fs::SegmentFile;
    use std::collections::BTreeMap;
    use std::io;

    /// An in-memory file system whose writes and fsyncs fail while `failing` is set (a write
    /// then stores half its bytes, as a full disk does).
    /// A file's bytes, shared by its handles.
    type Contents = Arc<Mutex<Vec<u8>>>;

    #[derive(Clone, Default)]
    struct FlakyFs {
        files: Arc<Mutex<BTreeMap<PathBuf, Contents>>>,
        failing: Arc<AtomicBool>,
    }

    struct FlakyFile {
        bytes: Contents,
        failing: Arc<AtomicBool>,
    }

    impl WritableFile for FlakyFile {
        fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
            if self.failing.load(Ordering::Relaxed) {
                self.bytes
                    .lock()
                    .extend_from_slice(&bytes[..bytes.len() / 2]);
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "No space left on device",
                ));
            }
            self.bytes.lock().extend_from_slice(bytes);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            if self.failing.load(Ordering::Relaxed) {
                return Err(io::Error::other("Input/output error"));
            }
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.bytes.lock().len() as u64)
        }
    }

    impl FlakyFs {
        fn open(&self, path: &Path, truncate: bool) -> Box<dyn WritableFile> {
            let mut files = self.files.lock();
            let bytes = files.entry(path.to_path_buf()).or_default().clone();
            if truncate {
                bytes.lock().clear();
            }
            Box::new(FlakyFile {
                bytes,
                failing: self.failing.clone(),
            })
        }

        fn contents(&self, path: &Path) -> Vec<u8> {
            self.files
                .lock()
                .get(path)
                .map(|bytes| bytes.lock().clone())
                .unwrap_or_default()
        }
    }

    impl FileSystem for FlakyFs {
        fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
            Ok(())
        }
        fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
            Ok(self.open(path, true))
        }
        fn append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
            Ok(self.open(path, false))
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            Ok(self.contents(path))
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            let mut files = self.files.lock();
            let file = files.remove(from).ok_or(io::ErrorKind::NotFound)?;
            files.insert(to.to_path_buf(), file);
            Ok(())
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            self.files.lock().remove(path);
            Ok(())
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.lock().contains_key(path)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
            let files = self.files.lock();
            Ok(files
                .keys()
                .filter(|path| path.parent() == Some(dir))
                .cloned()
                .collect())
        }
        fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
            if let Some(bytes) = self.files.lock().get(path) {
                bytes.lock().truncate(len as usize);
            }
            Ok(())
        }
        fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }
        fn create_segment(&self, _path: &Path, _capacity: u64) -> io::Result<Arc<dyn SegmentFile>> {
            Err(io::Error::other("no segments here"))
        }
    }

    const PREFIX: &str = "appendonly.aof";

    fn dir() -> PathBuf {
        PathBuf::from("/data/appendonlydir")
    }

    fn incr(seq: u64) -> manifest::FileInfo {
        manifest::FileInfo {
            name: manifest::incr_name(PREFIX, seq),
            seq,
            kind: manifest::FileKind::Incr,
        }
    }

    /// An AOF appending to incr file 1 under `always`, stepped by hand.
    fn opened() -> (FlakyFs, Aof, Box<dyn Sink>) {
        opened_with(Fsync::Always, true)
    }

    /// An AOF appending to incr file 1 under `policy`, stepped by hand when `manual`, else
    /// by its writer thread.
    fn opened_with(policy: Fsync, manual: bool) -> (FlakyFs, Aof, Box<dyn Sink>) {
        let fs = FlakyFs::default();
        let aof = Aof::new(Arc::new(fs.clone()), Arc::new(crate::io::SystemClock));
        if manual {
            aof.set_manual();
        }
        aof.set_policy(policy);
        let manifest = manifest::Manifest {
            incr: vec![incr(1)],
            incr_seq: 1,
            ..manifest::Manifest::default()
        };
        aof.open(&dir(), PREFIX, manifest, 0).expect("open");
        let sink = aof.sink();
        (fs, aof, sink)
    }

    /// A rewrite's instant as `rewrite_inner` runs it: the new incr file exists, what was fed
    /// is flushed (or was dropped by the failure), appending switches to the new file.
    fn switch_to_incr_2(fs: &FlakyFs, aof: &Aof) {
        let path = dir().join(manifest::incr_name(PREFIX, 2));
        drop(fs.create(&path).expect("create"));
        let mut during = aof.manifest();
        during.incr.push(incr(2));
        during.incr_seq = 2;
        let _ = aof.flush_and_sync();
        aof.switch(&dir(), during).expect("switch");
    }

    /// The rewrite's end: the new base and incr file 2 are the AOF.
    fn finish_rewrite(aof: &Aof) {
        let next = manifest::Manifest {
            incr: vec![incr(2)],
            incr_seq: 2,
            base_seq: 1,
            ..manifest::Manifest::default()
        };
        aof.rewritten(next, 0);
    }

    fn incr_file(fs: &FlakyFs, seq: u64) -> Vec<u8> {
        fs.contents(&dir().join(manifest::incr_name(PREFIX, seq)))
    }

    /// Under `everysec` a feed does not wake the writer: it comes round on its own within
    /// its interval and writes what waits; a close still writes and fsyncs everything.
    #[test]
    fn everysec_writes_what_is_fed_without_a_wake_up_per_feed() {
        let (fs, aof, mut sink) = opened_with(Fsync::Everysec, false);
        sink.feed(b"SET a 1;", 8);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !incr_file(&fs, 1).ends_with(b"SET a 1;") {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer came round"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        sink.feed(b"SET b 1;", 16);
        aof.close();
        assert_eq!(aof.durable_offset(), 16);
        assert!(incr_file(&fs, 1)
            .windows(8)
            .any(|bytes| bytes == b"SET b 1;"));
    }

    /// Under `always` the writer waits for a connection thread's turn to end (a nudge) before
    /// it takes what is pending, so one fsync covers the turn; bytes no turn nudges (the
    /// cron's DELs) it takes on its own after a whole idle period. Clients waiting for them
    /// are answered from their own thread's relay.
    #[test]
    fn always_takes_a_turn_when_nudged_and_what_no_turn_nudges_on_its_own() {
        let (fs, aof, mut sink) = opened_with(Fsync::Always, false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            // Nudged: the turn's two writes are synced together, and both waiters answered.
            sink.feed(b"SET a 1;", 8);
            sink.feed(b"SET b 1;", 16);
            aof.turn_ends();
            let started = std::time::Instant::now();
            assert!(aof.wait_durable(8).await);
            assert!(aof.wait_durable(16).await);
            assert!(started.elapsed() < Duration::from_secs(5));
            assert!(incr_file(&fs, 1).ends_with(b"SET a 1;SET b 1;"));
            // Not nudged: taken after the writer has seen it wait a whole idle period.
            sink.feed(b"DEL c;", 22);
            let started = std::time::Instant::now();
            assert!(aof.wait_durable(22).await);
            assert!(started.elapsed() >= ALWAYS_WAKE);
            assert_eq!(aof.durable_offset(), 22);
        });
        aof.close();
    }

    /// Effects fed while the AOF is failed but after a rewrite's instant (an expired or
    /// evicted key's DEL: no client write, so no MISCONF stops it) are in neither the
    /// rewrite's base nor the old file: they must reach the new incr file.
    #[test]
    fn what_is_fed_after_the_switch_of_a_recovering_rewrite_reaches_the_new_file() {
        let (fs, aof, mut sink) = opened();
        sink.feed(b"SET a 1;", 8);
        aof.step();
        assert_eq!(aof.durable_offset(), 8);
        fs.failing.store(true, Ordering::Relaxed);
        sink.feed(b"DEL b;", 14);
        aof.step();
        assert!(aof.write_error().is_some(), "the write failed");
        fs.failing.store(false, Ordering::Relaxed);
        // Dropped while failed: the rewrite's base holds its effect.
        sink.feed(b"DEL c;", 20);
        aof.step();
        switch_to_incr_2(&fs, &aof);
        // After the instant: not in the base.
        sink.feed(b"DEL d;", 26);
        aof.step();
        assert!(
            aof.write_error().is_some(),
            "writes stay refused until the end"
        );
        assert_eq!(aof.durable_offset(), 8, "nothing acknowledged meanwhile");
        finish_rewrite(&aof);
        assert!(aof.write_error().is_none());
        aof.step();
        sink.feed(b"SET e 1;", 34);
        aof.step();
        assert_eq!(incr_file(&fs, 2), b"DEL d;SET e 1;");
        assert_eq!(aof.durable_offset(), 34);
    }

    /// A failure of the new incr file while the base is written is not the failure the base
    /// covers: the rewrite's end does not clear it.
    #[test]
    fn a_failure_after_the_switch_outlives_the_rewrite() {
        let (fs, aof, mut sink) = opened();
        sink.feed(b"SET a 1;", 8);
        aof.step();
        switch_to_incr_2(&fs, &aof);
        fs.failing.store(true, Ordering::Relaxed);
        sink.feed(b"SET b 1;", 16);
        aof.step();
        assert!(aof.write_error().is_some());
        fs.failing.store(false, Ordering::Relaxed);
        finish_rewrite(&aof);
        assert!(
            aof.write_error().is_some(),
            "incr file 2 lost a write: writes stay refused until the next rewrite"
        );
        sink.feed(b"DEL c;", 22);
        aof.step();
        assert_eq!(incr_file(&fs, 2), b"SET ");
        assert_eq!(aof.durable_offset(), 8);
    }
}
