//! The AOF's group commit: the hand-off from the clients' writes to the writer that writes and
//! fsyncs them, and back to the clients waiting to be acknowledged. The file itself is an
//! [`Output`]; everything here is the protocol, kept apart so loom checks this very code
//! (`tests/loom_aof_handoff.rs` compiles the file against loom's locks; it names nothing of
//! the crate but `crate::sync`).
//!
//! - The propagation log [`Handoff::feed`]s each write's bytes with the log offset just past
//!   them, under its own lock, so offsets only rise. The bytes wait in `pending`. A feed wakes
//!   the writer at once by default; after [`Handoff::set_wake_after`] only once that many
//!   bytes are pending, the writer otherwise coming round on its idle time-out (`everysec` and
//!   `no`, where a wake-up per write cost more than the write itself), or on a
//!   [`Handoff::nudge`]: under `always` each connection thread nudges it when its event
//!   loop's turn ends, so one fsync covers the turn's writes, as Redis fsyncs once per turn
//!   in `beforeSleep`. A nudge from before an fsync's publication is spent by it: the next
//!   batch waits for a turn that ran after it, which holds the requests its clients sent next
//!   (and a thread with a client still waiting is woken by that publication, so it comes
//!   round).
//! - The writer takes everything pending while it holds the file ([`Handoff::round`]), writes
//!   it and records `written`; when the policy says so it fsyncs, records `synced` and
//!   publishes that offset as `durable`. Writes fed while an fsync runs share the next one.
//! - A client under `appendfsync always` waits for `durable` to reach its offset
//!   ([`Handoff::settled`]) and is acknowledged only if it did and nothing failed
//!   ([`Handoff::verdict`]).
//! - A failed write or fsync sets `failed` and wakes every waiter; nothing more is written
//!   until [`Handoff::reset`] (a new file) or [`Handoff::recovered`] (a rewrite). What is fed
//!   meanwhile (no client write gets through, but expired and evicted keys' DELs do) is
//!   dropped: the recovering rewrite's base holds its effect. Except once that rewrite's
//!   instant has switched files ([`Handoff::switch_file`]): what is fed after it is in no
//!   base, so it is held in `pending` and written to the new file when the rewrite ends. A
//!   failure after the switch (of the new file) is not one the rewrite covers: its end does
//!   not clear it.
//!
//! Invariants: `durable <= synced <= written <= end of what was fed`; `durable` moves only
//! after an fsync that succeeded (but in the simulator's deliberately broken variant); a
//! writer waits for work only while less than its wake-up mark is pending (one byte unless
//! set) and no nudge is, and the feed that reaches the mark or the nudge wakes it, so
//! neither can be missed.
//!
//! Lock order: file, then pending. Bytes leave `pending` only while the file is held, so
//! whoever holds the file (a rewrite switching files) sees every byte fed before it either
//! written or still pending, never in flight.

use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, Watch};
use std::time::Duration;

/// Where the writer puts the bytes: the AOF's incr file (with its checksum annotations), or
/// a model's file in the loom tests.
pub trait Output {
    /// Appends `bytes`; returns how many bytes the file grew by.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<u64>;
    /// Makes everything appended durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

/// Fed bytes the writer has not taken yet.
struct Pending {
    bytes: Vec<u8>,
    /// Log offset just past `bytes`.
    end: u64,
    stop: bool,
    /// A connection thread's turn ended with bytes pending: they are work whatever their size.
    nudged: bool,
}

/// What one round of the writer did.
#[derive(Debug, Default)]
pub struct Round {
    /// The writer is to stop.
    pub stop: bool,
    /// Bytes the file grew by.
    pub appended: u64,
    /// An fsync succeeded.
    pub synced: bool,
}

/// The shared state of the group commit, with `F` the open file.
pub struct Handoff<F> {
    /// The open file; held by the writer while it writes or syncs, by a rewrite while it
    /// switches files.
    file: Mutex<Option<F>>,
    pending: Mutex<Pending>,
    /// Wakes the writer: something was fed, or it is to stop.
    wake: Condvar,
    /// Log offset written to the file.
    written: AtomicU64,
    /// Log offset fsynced.
    synced: AtomicU64,
    /// Log offset acknowledged as durable; clients under `always` wait on it.
    durable: Watch<u64>,
    /// Set while the AOF is on: bytes fed otherwise are dropped.
    enabled: AtomicBool,
    failed: AtomicBool,
    /// The failure predates the open file: a rewrite's instant switched to it since, so what
    /// was dropped is in that rewrite's base, and what is fed now is held for the new file.
    covered: AtomicBool,
    /// The reply writes are refused with once `failed` is set.
    failure: Mutex<Option<String>>,
    /// Pending bytes from which a feed wakes the writer; 0 wakes it on every feed.
    wake_after_bytes: AtomicU64,
    /// Test-only: publishes what is written as durable before its fsync (the simulator's
    /// self-test of its checker).
    acknowledge_unsynced: AtomicBool,
}

impl<F: Output> Handoff<F> {
    pub fn new() -> Handoff<F> {
        Handoff {
            file: Mutex::new(None),
            pending: Mutex::new(Pending {
                bytes: Vec::new(),
                end: 0,
                stop: false,
                nudged: false,
            }),
            wake: Condvar::new(),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            durable: Watch::new(0),
            enabled: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            covered: AtomicBool::new(false),
            failure: Mutex::new(None),
            wake_after_bytes: AtomicU64::new(0),
            acknowledge_unsynced: AtomicBool::new(false),
        }
    }

    /// The file slot. Taking it stops the writer between rounds; take `pending` only after.
    pub fn file(&self) -> MutexGuard<'_, Option<F>> {
        self.file.lock()
    }

    /// Starts over at log offset `offset` (a file was just opened and everything up to
    /// `offset` is in it, synced): nothing pending, nothing failed.
    pub fn reset(&self, offset: u64) {
        {
            let mut pending = self.pending.lock();
            pending.bytes.clear();
            pending.end = offset;
            pending.stop = false;
        }
        self.written.store(offset, Ordering::Release);
        self.synced.store(offset, Ordering::Release);
        self.durable.send_replace(offset);
        *self.failure.lock() = None;
        self.covered.store(false, Ordering::Release);
        self.failed.store(false, Ordering::Release);
    }

    /// A rewrite's instant (no write is fed meanwhile): appending goes on in `output`, a new
    /// file. After a failure, everything fed so far is in the rewrite's base: what is still
    /// pending is dropped, and what is fed from now on is held until [`Handoff::recovered`].
    pub fn switch_file(&self, output: F) {
        let mut file = self.file.lock();
        *file = Some(output);
        if self.is_failed() {
            self.pending.lock().bytes.clear();
            self.covered.store(true, Ordering::Release);
        }
    }

    /// Whether fed bytes wait for the recovering rewrite's end instead of being written or
    /// dropped. Read with the file held.
    fn holding(&self) -> bool {
        self.is_failed() && self.covered.load(Ordering::Acquire)
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Release);
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// From now on a feed wakes the writer only once `bytes` are pending (0: on every feed).
    /// The writer then also sleeps until that many are pending or its idle time-out passes.
    pub fn set_wake_after(&self, bytes: u64) {
        self.wake_after_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Pending bytes that make work for the writer: at least one.
    fn work_bytes(&self) -> usize {
        self.wake_after_bytes.load(Ordering::Relaxed).max(1) as usize
    }

    /// The propagation log's bytes up to log offset `end`, fed under the log's lock. Returns
    /// the bytes now pending, or `None` when the AOF is off and the bytes were dropped.
    pub fn feed(&self, bytes: &[u8], end: u64) -> Option<usize> {
        if !self.is_enabled() {
            return None;
        }
        let work_bytes = self.work_bytes();
        let mut pending = self.pending.lock();
        let before = pending.bytes.len();
        pending.bytes.extend_from_slice(bytes);
        pending.end = end;
        let pending_bytes = pending.bytes.len();
        drop(pending);
        // Only the feed that makes the work wakes the writer: a writer that looked before it
        // saw too little and sleeps (it looks under `pending`), one that looks after sees it.
        if before < work_bytes && pending_bytes >= work_bytes {
            self.wake.notify_one();
        }
        Some(pending_bytes)
    }

    /// The writer's wait between rounds: returns once there is work pending (see
    /// [`Handoff::set_wake_after`]) or the writer is to stop, or after `idle` (for the
    /// everysec deadline, and the bytes short of the wake-up mark). True when it returns
    /// for work (a nudge, the mark reached, a stop), false when `idle` passed without.
    pub fn wait_for_work(&self, idle: Duration) -> bool {
        let work_bytes = self.work_bytes();
        let mut pending = self.pending.lock();
        let work = |pending: &Pending| {
            (pending.bytes.len() >= work_bytes || pending.nudged) && !self.holding() || pending.stop
        };
        // Held bytes are no work until the rewrite ends, which wakes the writer; looked at
        // under `pending`, which the end takes before its wake-up, so it cannot be missed.
        if !work(&pending) {
            self.wake.wait_for(&mut pending, idle);
        }
        work(&pending)
    }

    /// Wakes the writer to look at its policy again (it changed).
    pub fn wake_writer(&self) {
        self.wake.notify_one();
    }

    /// Makes whatever is pending work for the writer now, whatever its size, and wakes it.
    pub fn nudge(&self) {
        let mut pending = self.pending.lock();
        if pending.bytes.is_empty() || pending.nudged {
            return;
        }
        pending.nudged = true;
        drop(pending);
        self.wake.notify_one();
    }

    /// Tells the writer to stop after one last round.
    pub fn stop_writer(&self) {
        self.pending.lock().stop = true;
        self.wake.notify_one();
    }

    /// One round of the writer: takes what is pending, writes it, and fsyncs when anything
    /// written is unsynced and `sync_due` says so (or the writer is stopping). A failure
    /// fails the hand-off (see [`Handoff::fail`]) and the round ends there.
    pub fn round(&self, sync_due: impl FnOnce() -> bool) -> Round {
        let mut file = self.file.lock();
        let holding = self.holding();
        let (bytes, end, stop) = {
            let mut pending = self.pending.lock();
            let bytes = if holding {
                Vec::new()
            } else {
                pending.nudged = false;
                std::mem::take(&mut pending.bytes)
            };
            (bytes, pending.end, pending.stop)
        };
        let mut round = Round {
            stop,
            ..Round::default()
        };
        let Some(output) = file.as_mut() else {
            return round;
        };
        if self.is_failed() {
            // The file's state is unknown: nothing more goes to it until a rewrite, and what
            // was taken is left to that rewrite's base (held bytes were not taken).
            return round;
        }
        if !bytes.is_empty() {
            match output.write(&bytes) {
                Ok(appended) => round.appended = appended,
                Err(err) => {
                    self.fail(format!("Error writing to the AOF file: {err}"));
                    return round;
                }
            }
            self.written.store(end, Ordering::Release);
        }
        let written = self.written.load(Ordering::Acquire);
        if self.acknowledge_unsynced.load(Ordering::Relaxed) {
            // The deliberately broken variant: counts what is only written as synced, so it
            // is acknowledged at once and its fsync is left to a later policy's whim.
            self.mark_synced(written);
            round.synced = true;
        }
        let unsynced = written > self.synced.load(Ordering::Acquire);
        if unsynced && (stop || sync_due()) {
            if let Err(err) = output.sync() {
                self.fail(format!("Fail to fsync the AOF file: {err}"));
                return round;
            }
            // Nudges from before this fsync's publication are spent: the next batch waits
            // for a turn that ran after it, so it holds the requests its clients sent next.
            self.pending.lock().nudged = false;
            self.mark_synced(written);
            round.synced = true;
        }
        round
    }

    /// Writes and fsyncs everything fed so far, waiting for the writer's round in progress
    /// (rewrites, shutdown). Without a file there is nothing to do.
    pub fn flush(&self) -> Result<Round, String> {
        let mut file = self.file.lock();
        let holding = self.holding();
        let (bytes, end) = {
            let mut pending = self.pending.lock();
            let bytes = if holding {
                Vec::new()
            } else {
                std::mem::take(&mut pending.bytes)
            };
            (bytes, pending.end)
        };
        let mut round = Round::default();
        let Some(output) = file.as_mut() else {
            return Ok(round);
        };
        if self.is_failed() {
            return Err(self.write_error().unwrap_or_default());
        }
        if !bytes.is_empty() {
            round.appended = output
                .write(&bytes)
                .map_err(|err| self.fail(format!("Error writing to the AOF file: {err}")))?;
        }
        // With the file held, every byte taken before was written, or dropped while the
        // hand-off was failed (a rewrite has since put the state in a fresh base).
        self.written.fetch_max(end, Ordering::AcqRel);
        output
            .sync()
            .map_err(|err| self.fail(format!("Fail to fsync the AOF file: {err}")))?;
        self.mark_synced(end);
        round.synced = true;
        Ok(round)
    }

    /// Records a write or fsync failure: from now on nothing is written or acknowledged, and
    /// every waiter learns it. Returns `text`; it is logged the first time only.
    pub fn fail(&self, text: String) -> String {
        *self.failure.lock() = Some(format!(
            "MISCONF Errors writing to the AOF file: {}",
            text.rsplit(": ").next().unwrap_or(&text)
        ));
        // A failure of the open file: no rewrite in progress covers it.
        self.covered.store(false, Ordering::Release);
        if !self.failed.swap(true, Ordering::AcqRel) {
            tracing::warn!("{text}");
        }
        // Waiters must learn that their bytes will not become durable.
        self.wake_waiters();
        text
    }

    /// A rewrite put everything in memory at its instant in a new base, and the new file
    /// (switched in at that instant) is sound: a failure from before the switch is behind
    /// us, and the held bytes go to the new file. False, the failure kept, when the new file
    /// failed since.
    pub fn recovered(&self) -> bool {
        let file = self.file.lock();
        if !self.is_failed() {
            return true;
        }
        if !self.covered.load(Ordering::Acquire) {
            return false;
        }
        *self.failure.lock() = None;
        self.covered.store(false, Ordering::Release);
        self.failed.store(false, Ordering::Release);
        // A writer that saw the bytes held is asleep by the time this lock is ours.
        drop(self.pending.lock());
        drop(file);
        self.wake.notify_one();
        true
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The error writes are refused with, when a write or fsync failed.
    pub fn write_error(&self) -> Option<String> {
        if !self.is_failed() {
            return None;
        }
        self.failure.lock().clone()
    }

    /// Wakes every client waiting on `durable` to look again (a failure, the AOF turned off).
    pub fn wake_waiters(&self) {
        self.durable.send_modify(|_| {});
    }

    /// Where `durable` is published; a waiter subscribes and waits until [`Handoff::settled`].
    pub fn durable(&self) -> &Watch<u64> {
        &self.durable
    }

    /// Log offset written to the file so far.
    pub fn written_offset(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    pub fn durable_offset(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Whether a client waiting for `offset` is done waiting, `durable` being the published
    /// offset: it was reached, or it never will be.
    pub fn settled(&self, durable: u64, offset: u64) -> bool {
        durable >= offset || self.is_failed() || !self.is_enabled()
    }

    /// Whether a client whose wait for `offset` settled at `durable` may be acknowledged.
    pub fn verdict(&self, durable: u64, offset: u64) -> bool {
        durable >= offset && !self.is_failed()
    }

    /// The simulator's self-test: under `always`, acknowledges bytes once written, before
    /// their fsync.
    pub fn break_durability(&self) {
        self.acknowledge_unsynced.store(true, Ordering::Relaxed);
    }

    fn mark_synced(&self, end: u64) {
        debug_assert!(end <= self.written.load(Ordering::Acquire));
        self.synced.fetch_max(end, Ordering::AcqRel);
        self.publish(end);
    }

    /// Raises `durable` to `end` (never lowers it).
    fn publish(&self, end: u64) {
        self.durable.send_if_modified(|durable| {
            if *durable < end {
                *durable = end;
                true
            } else {
                false
            }
        });
    }
}

impl<F: Output> Default for Handoff<F> {
    fn default() -> Handoff<F> {
        Handoff::new()
    }
}
