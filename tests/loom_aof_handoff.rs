//! loom: the AOF's group commit (`src/persist/aof/handoff.rs`) under every interleaving of
//! clients feeding writes, the writer thread, a rewrite's flush and a close.
//!
//! The hand-off's file is compiled here as it is, against loom's locks: `sync` below gives
//! it `Mutex`/`Condvar` with `parking_lot`'s API (the crate's own `parking_lot_api!`) and
//! loom's atomics. The crate's durable-offset `Watch` is tokio's watch channel, which tokio
//! checks with loom itself; here it is a mutex and a condition variable with the same
//! contract (every send wakes every waiter, a waiter looks at the value before it sleeps),
//! waited on by blocking instead of `.await`. The writer's idle time-out is ignored, so a
//! lost wake-up shows as a deadlock.
//!
//! Checked: an acknowledged offset is never above what the disk has written and synced; a
//! failed fsync publishes nothing, acknowledges nothing after it and wakes every waiter; a
//! flush returns only once everything fed before it is synced; turning the AOF off wakes
//! every waiter; every thread finishes (no lost wake-up); after a failure, what is fed
//! after a recovering rewrite's switch of files is held, then written to the new file when
//! the rewrite ends (the writer woken for it); with the writer woken by the connection
//! threads' nudges instead of by feeds (`always`), every client is still answered. A planted bug (acknowledging at write time)
//! is caught, so the checks can fail.
//!
//! `cargo test --release --test loom_aof_handoff`. Each model explores every interleaving
//! with at most 2 preemptions; `LOOM_MAX_PREEMPTIONS=3` searches deeper (much longer).

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

#[allow(dead_code)]
mod sync {
    strata::parking_lot_api!(loom);
    pub use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// tokio's `watch::Sender` as the hand-off uses it, on loom's primitives.
    pub struct Watch<T> {
        value: loom::sync::Mutex<T>,
        changed: loom::sync::Condvar,
    }

    /// A borrowed value: the watch is locked meanwhile, as tokio's `Ref` holds its read lock.
    pub struct Ref<'a, T>(loom::sync::MutexGuard<'a, T>);

    impl<T> std::ops::Deref for Ref<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T: Copy> Watch<T> {
        pub fn new(value: T) -> Watch<T> {
            Watch {
                value: loom::sync::Mutex::new(value),
                changed: loom::sync::Condvar::new(),
            }
        }

        pub fn borrow(&self) -> Ref<'_, T> {
            Ref(self.value.lock().unwrap())
        }

        pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
            let modified = modify(&mut self.value.lock().unwrap());
            if modified {
                self.changed.notify_all();
            }
            modified
        }

        pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
            modify(&mut self.value.lock().unwrap());
            self.changed.notify_all();
        }

        pub fn send_replace(&self, value: T) -> T {
            let old = std::mem::replace(&mut *self.value.lock().unwrap(), value);
            self.changed.notify_all();
            old
        }

        /// `watch::Receiver::wait_for`, blocking: the value once `ready` holds for it.
        pub fn wait_for(&self, mut ready: impl FnMut(&T) -> bool) -> T {
            let mut value = self.value.lock().unwrap();
            while !ready(&value) {
                value = self.changed.wait(value).unwrap();
            }
            *value
        }
    }
}

#[allow(dead_code)]
#[path = "../src/persist/aof/handoff.rs"]
mod handoff;

use handoff::{Handoff, Output};

/// What the model's disk holds: one byte per log offset, so lengths are offsets.
#[derive(Default)]
struct Disk {
    written: AtomicU64,
    synced: AtomicU64,
    /// Fsyncs that succeed before every later one fails; `u64::MAX` for none failing.
    good_syncs: AtomicU64,
}

struct File(Arc<Disk>);

impl Output for File {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<u64> {
        self.0
            .written
            .fetch_add(bytes.len() as u64, Ordering::Release);
        Ok(bytes.len() as u64)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.0.good_syncs.load(Ordering::Acquire) == 0 {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        self.0.good_syncs.fetch_sub(1, Ordering::AcqRel);
        let written = self.0.written.load(Ordering::Acquire);
        self.0.synced.store(written, Ordering::Release);
        Ok(())
    }
}

/// A hand-off with the model's file open at offset 0, and what the test needs around it.
struct Setup {
    handoff: Arc<Handoff<File>>,
    disk: Arc<Disk>,
    /// The propagation log's lock, under which writes get their offsets and are fed.
    log: Arc<loom::sync::Mutex<u64>>,
}

fn setup(good_syncs: u64) -> Setup {
    let disk = Arc::new(Disk::default());
    disk.good_syncs.store(good_syncs, Ordering::Release);
    let handoff = Arc::new(Handoff::new());
    *handoff.file() = Some(File(disk.clone()));
    handoff.reset(0);
    handoff.set_enabled(true);
    Setup {
        handoff,
        disk,
        log: Arc::new(loom::sync::Mutex::new(0)),
    }
}

/// A client's write: one byte fed under the log's lock; returns its end offset.
fn write(log: &loom::sync::Mutex<u64>, handoff: &Handoff<File>) -> u64 {
    let mut end = log.lock().unwrap();
    *end += 1;
    handoff.feed(b"x", *end);
    *end
}

/// A client waiting for its reply under `appendfsync always`: true when acknowledged.
fn wait_durable(handoff: &Handoff<File>, offset: u64) -> bool {
    let durable = handoff
        .durable()
        .wait_for(|&durable| handoff.settled(durable, offset));
    handoff.verdict(durable, offset)
}

/// The writer thread's loop, under `always` (the production loop with `sync_due` true).
/// `nudged`: as it runs now, feeds do not wake it (the wake-up mark is far off), the
/// connection threads' turns nudge it, and it does no round without work; its idle look for
/// bytes no turn nudged is left out, so a nudge that is lost shows as a deadlock.
fn spawn_writer(handoff: Arc<Handoff<File>>, nudged: bool) -> thread::JoinHandle<()> {
    if nudged {
        handoff.set_wake_after(1 << 20);
    }
    thread::spawn(move || loop {
        let work = handoff.wait_for_work(std::time::Duration::from_millis(100));
        if nudged && !work {
            continue;
        }
        if handoff.round(|| true).stop {
            return;
        }
    })
}

/// A client on a connection thread under a nudged writer: its thread's turn ends after the
/// write, nudging the writer, and ends again (nudging again) each time a publication wakes
/// the thread while the write is not yet durable. True when acknowledged.
fn wait_durable_nudging(handoff: &Handoff<File>, offset: u64) -> bool {
    let durable = loop {
        let seen = handoff.durable_offset();
        if handoff.settled(seen, offset) {
            break seen;
        }
        handoff.nudge();
        handoff
            .durable()
            .wait_for(|&durable| durable != seen || handoff.settled(durable, offset));
    };
    handoff.verdict(durable, offset)
}

/// A client thread: writes once, waits, and checks what an acknowledgement promises.
fn spawn_client(setup: &Setup) -> thread::JoinHandle<bool> {
    spawn_client_waiting(setup, wait_durable)
}

/// A client thread that waits for its write with `wait`.
fn spawn_client_waiting(
    setup: &Setup,
    wait: fn(&Handoff<File>, u64) -> bool,
) -> thread::JoinHandle<bool> {
    let handoff = setup.handoff.clone();
    let disk = setup.disk.clone();
    let log = setup.log.clone();
    thread::spawn(move || {
        let offset = write(&log, &handoff);
        let acknowledged = wait(&handoff, offset);
        if acknowledged {
            let synced = disk.synced.load(Ordering::Acquire);
            assert!(
                synced >= offset,
                "offset {offset} acknowledged with {synced} synced"
            );
        }
        acknowledged
    })
}

/// Preemptions per execution unless `LOOM_MAX_PREEMPTIONS` says otherwise: loom explores
/// every interleaving with at most this many forced switches (tokio's CI uses 2).
const PREEMPTIONS_DEFAULT: usize = 2;

/// Explores `model` under every interleaving loom generates and prints how many there were
/// (`--nocapture` shows it).
fn check(name: &str, model: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(PREEMPTIONS_DEFAULT);
    }
    // A plain counter, outside the model: loom does not see it.
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    });
    eprintln!(
        "{name}: {} interleavings",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Two clients' writes on a healthy disk: both synced and acknowledged, neither waits
/// forever. `nudged`: with the writer woken by the connection threads' turns instead of by
/// each feed (`always` as it runs now; a nudge spent before an fsync's publication is renewed
/// by the turn that publication wakes).
fn every_client_is_answered(nudged: bool) {
    let setup = setup(u64::MAX);
    let writer = spawn_writer(setup.handoff.clone(), nudged);
    let wait = if nudged {
        wait_durable_nudging
    } else {
        wait_durable
    };
    let clients = [
        spawn_client_waiting(&setup, wait),
        spawn_client_waiting(&setup, wait),
    ];
    for client in clients {
        assert!(client.join().unwrap(), "a healthy disk acknowledges");
    }
    setup.handoff.stop_writer();
    writer.join().unwrap();
    assert_eq!(setup.handoff.durable_offset(), 2);
    assert_eq!(setup.disk.synced.load(Ordering::Acquire), 2);
}

#[test]
fn acknowledged_writes_are_synced_and_every_client_is_answered() {
    check(
        "acknowledged_writes_are_synced_and_every_client_is_answered",
        || every_client_is_answered(false),
    );
}

#[test]
fn nudged_turns_are_synced_and_every_client_is_answered() {
    check(
        "nudged_turns_are_synced_and_every_client_is_answered",
        || every_client_is_answered(true),
    );
}

#[test]
fn a_failed_fsync_publishes_nothing_and_wakes_every_waiter() {
    // The first fsync succeeds, every later one fails: depending on how the writes group,
    // both, one or none are acknowledged, and only synced ones.
    check(
        "a_failed_fsync_publishes_nothing_and_wakes_every_waiter",
        || {
            let setup = setup(1);
            let writer = spawn_writer(setup.handoff.clone(), false);
            let clients = [spawn_client(&setup), spawn_client(&setup)];
            let acknowledged: Vec<bool> = clients.map(|client| client.join().unwrap()).into();
            setup.handoff.stop_writer();
            writer.join().unwrap();
            let synced = setup.disk.synced.load(Ordering::Acquire);
            let durable = setup.handoff.durable_offset();
            assert!(durable <= synced, "durable {durable} above synced {synced}");
            if acknowledged.iter().any(|ok| !ok) {
                assert!(setup.handoff.write_error().is_some());
            }
        },
    );
}

#[test]
fn after_a_failure_nothing_more_is_written_or_acknowledged() {
    check(
        "after_a_failure_nothing_more_is_written_or_acknowledged",
        || {
            let setup = setup(0);
            let writer = spawn_writer(setup.handoff.clone(), false);
            let first = spawn_client(&setup);
            assert!(!first.join().unwrap(), "its only fsync failed");
            assert!(setup.handoff.write_error().is_some());
            let written = setup.disk.written.load(Ordering::Acquire);
            // A write after the failure: refused, never written.
            let second = spawn_client(&setup);
            assert!(!second.join().unwrap());
            setup.handoff.stop_writer();
            writer.join().unwrap();
            assert_eq!(setup.disk.written.load(Ordering::Acquire), written);
            assert_eq!(setup.handoff.durable_offset(), 0);
        },
    );
}

#[test]
fn a_flush_syncs_everything_fed_before_it_while_the_writer_runs() {
    check(
        "a_flush_syncs_everything_fed_before_it_while_the_writer_runs",
        || {
            let setup = setup(u64::MAX);
            let writer = spawn_writer(setup.handoff.clone(), false);
            let client = spawn_client(&setup);
            // The rewrite's side: a write of its own, then a flush at a quiet point.
            let offset = write(&setup.log, &setup.handoff);
            setup.handoff.flush().expect("a healthy disk");
            assert!(setup.disk.synced.load(Ordering::Acquire) >= offset);
            assert!(setup.handoff.durable_offset() >= offset);
            assert!(client.join().unwrap());
            setup.handoff.stop_writer();
            writer.join().unwrap();
        },
    );
}

#[test]
fn what_is_fed_after_a_recovering_switch_reaches_the_new_file() {
    check(
        "what_is_fed_after_a_recovering_switch_reaches_the_new_file",
        || {
            let setup = setup(0);
            let writer = spawn_writer(setup.handoff.clone(), false);
            assert!(!spawn_client(&setup).join().unwrap(), "its fsync failed");
            // The rewrite's instant (nothing fed meanwhile): appending moves to a new file.
            let fresh = Arc::new(Disk::default());
            fresh.good_syncs.store(u64::MAX, Ordering::Release);
            setup.handoff.switch_file(File(fresh.clone()));
            // An expired key's DEL (no MISCONF stops it), fed as the rewrite ends.
            let feeder = {
                let (log, handoff) = (setup.log.clone(), setup.handoff.clone());
                thread::spawn(move || write(&log, &handoff))
            };
            assert!(setup.handoff.recovered(), "the new file never failed");
            let offset = feeder.join().unwrap();
            // Written to the new file and synced, by a writer that was not left asleep.
            assert!(wait_durable(&setup.handoff, offset));
            assert_eq!(fresh.synced.load(Ordering::Acquire), 1);
            setup.handoff.stop_writer();
            writer.join().unwrap();
        },
    );
}

#[test]
fn turning_the_aof_off_wakes_every_waiter() {
    check("turning_the_aof_off_wakes_every_waiter", || {
        // No writer thread: only the close can end the client's wait.
        let setup = setup(u64::MAX);
        let client = spawn_client(&setup);
        let closer = {
            let handoff = setup.handoff.clone();
            thread::spawn(move || {
                handoff.set_enabled(false);
                handoff.wake_waiters();
            })
        };
        closer.join().unwrap();
        // Fed before the close or dropped after it: never acknowledged, nothing durable.
        assert!(!client.join().unwrap());
        assert_eq!(setup.handoff.durable_offset(), 0);
    });
}

#[test]
fn the_model_catches_acknowledging_before_fsync() {
    let caught = std::panic::catch_unwind(|| {
        check("the_model_catches_acknowledging_before_fsync", || {
            let setup = setup(u64::MAX);
            setup.handoff.break_durability();
            let writer = spawn_writer(setup.handoff.clone(), false);
            let client = spawn_client(&setup);
            let _ = client.join();
            setup.handoff.stop_writer();
            writer.join().unwrap();
        });
    });
    assert!(caught.is_err(), "the broken variant went unnoticed");
}
