//! One simulated run: a seeded workload against the real server code (executor, keyspace,
//! AOF writer, loader, rewrite) on the simulated disk and clock, with crashes, restarts and
//! faults; after every recovery the checker compares what came back with what the fsync
//! policy promised.
//!
//! The model is plain: every write's effect goes, in order, into `history` (the propagation
//! log's bytes, which is what the AOF holds). A recovered server must hold exactly the state
//! of some prefix of `history` that ends on a command boundary (so no transaction is half
//! there), and that prefix must reach everything the policy promised to keep:
//! - `always`: every acknowledged write;
//! - `everysec`: every write acknowledged more than two simulated seconds before the crash
//!   (up to where the disk failed, if it did: no policy survives a dead disk);
//! - `no`: nothing in particular;
//! - and whatever the policy, everything the AOF reported fsynced before the crash.
//!
//! The state of a prefix comes from replaying it into a fresh in-memory server; states are
//! compared by digest. Everything is deterministic: the seed fixes the workload, the clock
//! and every fault, and the run's trace hash proves it.
//!
//! Between crashes the live server is checked against a shadow: a plain in-memory server that
//! replays the history as it grows. A read request gets the same reply from both (so a value
//! read back from the memory tier, or rebuilt from the log, is never wrong), and every few
//! hundred requests both hold the same data, key by key. In tiered runs (see [`crate::tier`])
//! an error reply is accepted only where an injected fault explains it, and a key the tier
//! cannot read back is left out of the comparison only then; a save with such a key must fail
//! rather than lose it (the recovery check would see the loss).

use crate::digest::{digest, key_digests};
use crate::disk::{FaultCounts, Faults, SimDisk};
use crate::tier::{TierCounts, TierSetup};
use crate::workload::{self, Request};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use strata::config::Config;
use strata::io::Clock;
use strata::persist::aof::load::{self, Applied, Replay};
use strata::persist::aof::Fsync;
use strata::protocol::Reply;
use strata::server::clients::Session;
use strata::server::persistence;
use strata::server::state::Server;

/// Unix ms the simulated clock starts at.
const START_MS: u64 = 1_700_000_000_000;
/// Everysec's promise, in simulated ms.
const EVERYSEC_LOSS_MS: u64 = 2_000;
/// Start attempts on a failing disk before the run gives up.
const START_ATTEMPTS_MAX: u32 = 20;
/// The AOF writer thread wakes at least this often; the simulation steps it as often.
const WRITER_WAKE_MS: u64 = 100;
/// Requests between two key-by-key comparisons of the live server with the shadow.
const COMPARE_EVERY_STEPS: usize = 250;
/// Per mille of steps that rot a bit of a segment file, in runs with segment faults.
const ROT_PER_MILLE: u32 = 2;

/// A deliberately broken variant of the server, which the checker must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The AOF acknowledges writes before their fsync.
    Durability,
    /// The memory tier returns records without checking their crc (every run is tiered).
    Checksums,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub steps: usize,
    pub broken: Option<Broken>,
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub trace_hash: u64,
    pub policy: String,
    /// The tier's setup, in tiered runs.
    pub tier: Option<String>,
    pub commands: u64,
    pub acknowledged: u64,
    pub crashes: u64,
    pub rewrites: u64,
    /// Rewrites that failed (on a disk fault, or a record the tier could not read).
    pub rewrites_failed: u64,
    pub faults: u64,
    pub fault_counts: FaultCounts,
    pub tier_counts: TierCounts,
    /// Read replies compared with the shadow's.
    pub reads_compared: u64,
    /// Error replies a tier fault explained.
    pub tier_errors: u64,
    /// Empty when every check passed.
    pub failures: Vec<String>,
}

struct SimClock(AtomicU64);

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Simulated time moves only with the simulation.
    fn sleep(&self, _duration: std::time::Duration) {}
}

/// Records the propagation log's bytes and command boundaries.
#[derive(Default)]
struct History {
    bytes: Vec<u8>,
    /// Offsets in `bytes` where a command's (or transaction's) effects end.
    boundaries: Vec<usize>,
}

struct Recorder(Arc<Mutex<History>>);

impl strata::repl::log::Sink for Recorder {
    fn feed(&mut self, bytes: &[u8], _end_offset: u64) {
        let mut history = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        history.bytes.extend_from_slice(bytes);
        let end = history.bytes.len();
        history.boundaries.push(end);
    }
}

/// One server incarnation on the simulated disk.
struct Incarnation {
    server: Arc<Server>,
    session: Session,
    /// History offset at which this incarnation's log offset 0 lies.
    base: usize,
}

struct Run {
    options: Options,
    random: SmallRng,
    clock: Arc<SimClock>,
    disk: SimDisk,
    policy: Fsync,
    /// Tiered runs: how the tier is set up.
    tier: Option<TierSetup>,
    /// Whether segment faults are injected (bit rot included).
    segment_faults: bool,
    /// The history replayed into a plain server, for comparisons with the live one.
    shadow: Reference,
    /// `aof-use-rdb-preamble`: whether rewrites write an RDB base or commands.
    preamble: bool,
    history: Arc<Mutex<History>>,
    /// History offsets acknowledged, with the simulated time of the acknowledgement.
    acknowledged: Vec<(usize, u64)>,
    /// Writes waiting for their fsync before their reply (`always`): history offsets.
    waiting: Vec<usize>,
    /// Durable history offset when the AOF first failed, if it did.
    failed_at: Option<usize>,
    last_step_ms: u64,
    /// Disk faults injected before the current start attempt, and attempts so far.
    faults_at_start: u64,
    start_attempts: u32,
    trace: DefaultHasher,
    /// `SIM_TRACE=1`: every request and reply on stderr (outside the trace hash).
    verbose: bool,
    outcome: Outcome,
}

pub fn run(options: Options) -> Outcome {
    let mut random = SmallRng::seed_from_u64(options.seed);
    let policy = match random.gen_range(0..3) {
        0 => Fsync::Always,
        1 => Fsync::Everysec,
        _ => Fsync::No,
    };
    let faulty = random.gen_bool(0.5);
    let faults = if faulty {
        Faults {
            sync_failure: random.gen_range(0.0..0.02),
            capacity_bytes: random.gen_range(200_000..2_000_000),
            segment_write_failure: random.gen_range(0.0..0.05),
            segment_read_failure: random.gen_range(0.0..0.01),
            segment_read_flip: random.gen_range(0.0..0.01),
        }
    } else {
        Faults::none()
    };
    let preamble = random.gen_bool(0.5);
    let tiered = random.gen_bool(0.5) || options.broken == Some(Broken::Checksums);
    let tier = tiered.then(|| TierSetup::draw(&mut random));
    let clock = Arc::new(SimClock(AtomicU64::new(START_MS)));
    let shadow = Reference::fresh(&clock, options.seed);
    let run_tier_text = tier.as_ref().map(TierSetup::describe);
    let mut run = Run {
        preamble,
        disk: SimDisk::new(options.seed, faults),
        segment_faults: faulty && tier.is_some(),
        tier,
        shadow,
        options,
        random,
        clock,
        policy,
        history: Arc::new(Mutex::new(History::default())),
        acknowledged: Vec::new(),
        waiting: Vec::new(),
        failed_at: None,
        last_step_ms: START_MS,
        faults_at_start: 0,
        start_attempts: 0,
        trace: DefaultHasher::new(),
        verbose: std::env::var_os("SIM_TRACE").is_some(),
        outcome: Outcome {
            policy: format!(
                "{}, {} base",
                format!("{policy:?}").to_lowercase(),
                if preamble { "rdb" } else { "aof" }
            ),
            tier: run_tier_text,
            ..Outcome::default()
        },
    };
    strata::util::reseed_random(run.options.seed);
    if run.tier.is_some() {
        crate::tier::install_gauge();
    }
    run.body();
    crate::tier::uninstall_gauge();
    run.outcome.fault_counts = run.disk.fault_counts();
    run.outcome.faults = run.outcome.fault_counts.total();
    run.outcome.fault_counts.hash(&mut run.trace);
    run.outcome.tier_counts.hash(&mut run.trace);
    run.outcome.trace_hash = run.trace.finish();
    run.outcome
}

impl Run {
    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn config(&self) -> Config {
        let config = Config::default();
        let policy = match self.policy {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        };
        let preamble = if self.preamble { "yes" } else { "no" };
        let mut text = format!(
            "dir /sim\nappendonly yes\nappendfsync {policy}\naof-load-truncated yes\n\
             auto-aof-rewrite-percentage 0\naof-use-rdb-preamble {preamble}\n"
        );
        if let Some(tier) = &self.tier {
            text.push_str(&tier.config_text());
        }
        if let Err(report) = config.load_text(&text) {
            panic!("simulation config: {report}");
        }
        config
    }

    /// Starts a server on the disk and loads what it holds; None (with a failure recorded)
    /// when the load fails.
    fn start(&mut self, base: usize) -> Option<Incarnation> {
        let server = Server::into_arc(Server::new(
            self.config(),
            self.clock.clone(),
            Arc::new(self.disk.clone()),
            self.options.seed,
        ));
        server.aof.set_manual();
        if self.options.broken == Some(Broken::Durability) {
            server.aof.break_durability_for_simulation();
        }
        // The segment files of an earlier server are not this one's: faults logged on them
        // explain nothing now. Its memory figure is not this one's either.
        self.disk.forget_segment_faults();
        crate::tier::reset_gauge();
        if let Some(tier) = &self.tier {
            if let Err(err) = tier.open(&server, Arc::new(self.disk.clone())) {
                self.fail(format!("start: {err}"));
                return None;
            }
            if self.options.broken == Some(Broken::Checksums) {
                if let Some(store) = server.keyspace.tier.store() {
                    store.skip_checksums_for_simulation();
                }
            }
        }
        if let Err(err) = persistence::load_at_start(&server) {
            // A start that fails on an injected disk fault is what a real server does on a
            // failing disk; the operator tries again. A load that fails on the files'
            // contents is a finding.
            let faults = self.disk.faults_injected();
            if faults > self.faults_at_start && self.start_attempts < START_ATTEMPTS_MAX {
                self.faults_at_start = faults;
                self.start_attempts += 1;
                ("start retried", &err).hash(&mut self.trace);
                return self.start(base);
            }
            self.fail(format!("the load failed: {err}"));
            return None;
        }
        self.start_attempts = 0;
        self.faults_at_start = self.disk.faults_injected();
        server
            .log
            .add_sink(Box::new(Recorder(self.history.clone())));
        let (handle, _outbox) =
            server
                .clients
                .register("sim".into(), "sim".into(), -1, self.clock.now_ms());
        let session = Session::new(handle, true);
        Some(Incarnation {
            server,
            session,
            base,
        })
    }

    fn fail(&mut self, failure: String) {
        failure.hash(&mut self.trace);
        self.outcome.failures.push(failure);
    }

    fn body(&mut self) {
        let Some(mut current) = self.start(0) else {
            return;
        };
        for step in 0..self.options.steps {
            if !self.outcome.failures.is_empty() {
                return self.retire(&current);
            }
            self.clock
                .0
                .fetch_add(self.random.gen_range(0..30), Ordering::Relaxed);
            let roll = self.random.gen_range(0..1000);
            if roll < 4 {
                self.crash_and_recover(&mut current, step);
            } else if roll < 8 {
                self.rewrite(&current);
            } else if roll < 8 + ROT_PER_MILLE && self.segment_faults {
                let rotted = self.disk.rot_segment();
                ("rot", rotted).hash(&mut self.trace);
            } else {
                self.request(&mut current);
            }
            let now = self.clock.now_ms();
            if self.random.gen_bool(0.5) || now >= self.last_step_ms + WRITER_WAKE_MS {
                self.writer_step(&current);
                if self.tier.is_some() {
                    let (hot, cold) = crate::tier::upkeep(&current.server);
                    self.outcome.tier_counts.hot_values += hot;
                    self.outcome.tier_counts.cold_values += cold;
                }
            }
            if step % COMPARE_EVERY_STEPS == COMPARE_EVERY_STEPS - 1 {
                self.compare_with_shadow(&current, &format!("step {step}"));
            }
        }
        self.compare_with_shadow(&current, "the end");
        // A clean stop, then a restart that must bring back exactly everything.
        self.disk.heal();
        self.writer_step(&current);
        current.server.aof.close();
        let end = self.history().bytes.len();
        self.retire(&current);
        drop(current);
        let durable_end = if self.failed_at.is_some() { 0 } else { end };
        if let Some(restarted) = self.start(end) {
            self.check(&restarted, durable_end, "clean restart");
            self.retire(&restarted);
        }
    }

    /// Adds what a server's tier did to the outcome (at its end).
    fn retire(&mut self, incarnation: &Incarnation) {
        let counts = TierCounts::of(&incarnation.server);
        self.outcome.tier_counts.add(&counts);
    }

    fn request(&mut self, current: &mut Incarnation) {
        let now = self.clock.now_ms();
        if self.tier.is_some() {
            crate::tier::measure(&current.server);
        }
        let request = workload::request(&mut self.random, now);
        let (commands, read) = match request {
            Request::Command(argv) => (vec![argv], false),
            Request::Read(argv) => (vec![argv], true),
            Request::Transaction(mut commands) => {
                commands.insert(0, vec![b"MULTI".to_vec()]);
                commands.push(vec![b"EXEC".to_vec()]);
                (commands, false)
            }
        };
        let offset_before = current.session.write_offset;
        let mut last_reply = None;
        for argv in commands {
            let argv: Vec<Bytes> = argv.into_iter().map(Bytes::from).collect();
            argv.hash(&mut self.trace);
            let (reply, _action) =
                strata::command::dispatch(&current.server, &mut current.session, argv.clone());
            reply.to_bytes(false).hash(&mut self.trace);
            if self.verbose {
                eprintln!(
                    "{now} db{} {} -> {}",
                    current.session.db,
                    shown(&argv),
                    shown(&[reply.to_bytes(false)])
                );
            }
            self.outcome.commands += 1;
            self.check_errors(current, &reply);
            last_reply = Some((argv, reply));
        }
        // The shadow learns what the request changed (and what eviction or expiry did first).
        let history = std::mem::take(&mut *self.history());
        if self.verbose && history.bytes.len() > self.shadow.position {
            let fresh = &history.bytes[self.shadow.position..];
            eprintln!(
                "  history {}..{}: {}",
                self.shadow.position,
                history.bytes.len(),
                String::from_utf8_lossy(&fresh[..fresh.len().min(300)]).replace("\r\n", " ")
            );
        }
        let replayed = self.shadow.catch_up(&history.bytes);
        *self.history() = history;
        if let Err(err) = replayed {
            self.fail(format!("the shadow cannot replay the history: {err}"));
        }
        if let (true, Some((argv, reply))) = (read, last_reply) {
            self.compare_read(current, argv, &reply);
        }
        if current.session.write_offset != offset_before {
            let offset = current.base + current.session.write_offset as usize;
            match self.policy {
                // The reply waits for the fsync: acknowledged at a later writer step.
                Fsync::Always => self.waiting.push(offset),
                _ => self.acknowledge(offset),
            }
        }
    }

    fn acknowledge(&mut self, offset: usize) {
        let now = self.clock.now_ms();
        self.acknowledged.push((offset, now));
        self.outcome.acknowledged += 1;
    }

    fn writer_step(&mut self, current: &Incarnation) {
        current.server.aof.step();
        self.last_step_ms = self.clock.now_ms();
        let durable = current.base + current.server.aof.durable_offset() as usize;
        let failed = current.server.aof.write_error().is_some();
        if failed && self.failed_at.is_none() {
            self.failed_at = Some(durable);
            "aof failed".hash(&mut self.trace);
            if self.verbose {
                eprintln!("{} aof failed, durable to {durable}", self.clock.now_ms());
            }
        }
        if failed {
            // Never acknowledged: their connections are closed without a reply.
            self.waiting.clear();
            return;
        }
        let (done, still): (Vec<usize>, Vec<usize>) =
            self.waiting.iter().partition(|&&offset| offset <= durable);
        self.waiting = still;
        if self.verbose && !done.is_empty() {
            eprintln!("{} acknowledged up to {durable}", self.clock.now_ms());
        }
        for offset in done {
            self.acknowledge(offset);
        }
    }

    fn rewrite(&mut self, current: &Incarnation) {
        let outcome = persistence::rewrite(&current.server);
        outcome.is_ok().hash(&mut self.trace);
        if self.verbose {
            eprintln!("{} rewrite: {outcome:?}", self.clock.now_ms());
        }
        match outcome {
            Ok(()) => self.outcome.rewrites += 1,
            Err(_) => self.outcome.rewrites_failed += 1,
        }
    }

    /// What the policy promised to keep, as a history offset.
    fn required(&self, crash_ms: u64) -> usize {
        let required = match self.policy {
            Fsync::Always => self.acknowledged.iter().map(|(offset, _)| *offset).max(),
            Fsync::Everysec => self
                .acknowledged
                .iter()
                .filter(|(_, at)| *at + EVERYSEC_LOSS_MS <= crash_ms)
                .map(|(offset, _)| *offset)
                .max(),
            Fsync::No => None,
        }
        .unwrap_or(0);
        match (self.policy, self.failed_at) {
            (Fsync::Always, _) => required,
            (_, Some(failed)) => required.min(failed),
            _ => required,
        }
    }

    fn crash_and_recover(&mut self, current: &mut Incarnation, step: usize) {
        let crash_ms = self.clock.now_ms();
        // Whatever the policy, what was fsynced before the crash is there after it.
        let synced = current.base + current.server.aof.durable_offset() as usize;
        let required = self.required(crash_ms).max(synced);
        ("crash", step).hash(&mut self.trace);
        if self.verbose {
            eprintln!("{crash_ms} crash: required {required}, synced {synced}");
        }
        self.outcome.crashes += 1;
        self.retire(current);
        if self.verbose {
            eprint!("before the crash:\n{}", self.disk.describe());
        }
        self.disk.crash();
        if self.verbose {
            eprint!("after the crash:\n{}", self.disk.describe());
        }
        self.waiting.clear();
        let Some(recovered) = self.start(0) else {
            return;
        };
        let Some((matched, reference)) =
            self.check(&recovered, required, &format!("crash at step {step}"))
        else {
            return;
        };
        // The recovered state is the history up to `matched`: the rest never happened. The
        // reference holds exactly that state: it is the shadow from now on.
        let mut history = self.history();
        history.bytes.truncate(matched);
        history.boundaries.retain(|&boundary| boundary <= matched);
        drop(history);
        self.shadow = reference;
        self.acknowledged.retain(|(offset, _)| *offset <= matched);
        self.failed_at = None;
        *current = Incarnation {
            base: matched,
            ..recovered
        };
    }

    /// Finds the history prefix (ending on a command boundary, at or past `required`) whose
    /// state the recovered server holds, and the reference server replayed up to it; records
    /// a failure when there is none.
    fn check(
        &mut self,
        recovered: &Incarnation,
        required: usize,
        when: &str,
    ) -> Option<(usize, Reference)> {
        let now = self.clock.now_ms();
        let (wanted, keys) = match digest(&recovered.server.keyspace, now) {
            Ok(digest) => digest,
            Err(err) => {
                self.fail(format!("{when}: the recovered server: {err}"));
                return None;
            }
        };
        (wanted, keys).hash(&mut self.trace);
        let history = std::mem::take(&mut *self.history());
        let mut reference = Reference::fresh(&self.clock, self.options.seed);
        let mut found = None;
        let candidates: Vec<usize> = std::iter::once(0)
            .chain(history.boundaries.iter().copied())
            .collect();
        for boundary in candidates {
            if let Err(err) = reference.catch_up(&history.bytes[..boundary]) {
                self.fail(format!(
                    "{when}: the reference cannot replay the history: {err}"
                ));
                break;
            }
            // Counting the keys is cheap; only a prefix with as many keys is digested.
            let matches = boundary >= required
                && crate::digest::key_count(&reference.server.keyspace, now) == keys
                && digest(&reference.server.keyspace, now)
                    .is_ok_and(|(digest, _)| digest == wanted);
            if matches {
                found = Some(boundary);
                break;
            }
        }
        // SIM_DEBUG=1 explains a mismatch key by key (on stderr, outside the trace).
        if found.is_none() && std::env::var("SIM_DEBUG").is_ok() {
            explain(&recovered.server, &reference.server, now);
        }
        *self.history() = history;
        if found.is_none() {
            self.fail(format!(
                "{when}: the recovered state ({keys} keys) is no prefix of the history that \
                 reaches the {required} bytes promised (what the {:?} policy promised, and all \
                 the AOF reported fsynced)",
                self.policy
            ));
        }
        found.hash(&mut self.trace);
        found.map(|boundary| (boundary, reference))
    }

    /// Checks the error replies of a live request: a panic is a finding, and a tier error
    /// must name a record an injected fault touched.
    fn check_errors(&mut self, current: &Incarnation, reply: &Reply) {
        let mut texts = Vec::new();
        crate::tier::errors(reply, &mut texts);
        if texts.is_empty() {
            return;
        }
        let faults = self.disk.segment_faults();
        for text in texts {
            match crate::tier::check_error(&current.server, &text, &faults) {
                Ok(()) if text.contains("tier") => self.outcome.tier_errors += 1,
                Ok(()) => {}
                Err(failure) => self.fail(failure),
            }
        }
    }

    /// A read's reply from the live server must be the shadow's (which holds the same
    /// history), unless the tier explained an error.
    fn compare_read(&mut self, current: &Incarnation, argv: Vec<Bytes>, live: &Reply) {
        let mut texts = Vec::new();
        crate::tier::errors(live, &mut texts);
        if texts.iter().any(|text| text.contains("tier")) {
            return; // checked by check_errors
        }
        // The replay's database is the log's last SELECT: the read's is put back after it.
        let replay_db = std::mem::replace(&mut self.shadow.session.db, current.session.db);
        let shadow = self.shadow.dispatch(argv.clone());
        self.shadow.session.db = replay_db;
        self.outcome.reads_compared += 1;
        if shadow.to_bytes(false) != live.to_bytes(false) {
            let command: Vec<String> = argv
                .iter()
                .map(|word| String::from_utf8_lossy(word).into_owned())
                .collect();
            self.fail(format!(
                "the read {command:?} in db {} replied {:?}; the shadow, which replayed the same \
                 history, replied {:?}",
                current.session.db,
                String::from_utf8_lossy(&live.to_bytes(false)),
                String::from_utf8_lossy(&shadow.to_bytes(false)),
            ));
        }
    }

    /// The live server holds the shadow's data, key by key; a key whose cold value does not
    /// read back is left out only where an injected fault touched its record.
    fn compare_with_shadow(&mut self, current: &Incarnation, when: &str) {
        let now = self.clock.now_ms();
        let live = key_digests(&current.server.keyspace, now);
        let shadow = key_digests(&self.shadow.server.keyspace, now);
        let faults = self.disk.segment_faults();
        let mut differences = Vec::new();
        let mut unreadable = 0u64;
        for (name, digest) in &live {
            let key = String::from_utf8_lossy(&name.1);
            match (digest, shadow.get(name)) {
                (Err(err), Some(_)) if crate::tier::explained(err.cold, &faults) => {
                    unreadable += 1;
                }
                (Err(err), _) => differences.push(format!(
                    "{key:?} (db {}) does not read back and no fault explains it: {}",
                    name.0, err.error
                )),
                (Ok(_), None) => differences.push(format!("{key:?} (db {}) is extra", name.0)),
                (Ok(mine), Some(Ok(theirs))) if mine == theirs => {}
                (Ok(_), Some(_)) => {
                    differences.push(format!("{key:?} (db {}) holds other data", name.0))
                }
            }
        }
        for name in shadow.keys().filter(|name| !live.contains_key(*name)) {
            let key = String::from_utf8_lossy(&name.1);
            differences.push(format!("{key:?} (db {}) is missing", name.0));
        }
        (when, live.len(), unreadable).hash(&mut self.trace);
        if let Some(first) = differences.first() {
            if std::env::var("SIM_DEBUG").is_ok() {
                explain(&current.server, &self.shadow.server, now);
            }
            self.fail(format!(
                "{when}: the live server and the shadow differ in {} keys: {first}",
                differences.len()
            ));
        }
    }
}

/// Words for a trace line, each cut to 40 bytes.
fn shown(words: &[Bytes]) -> String {
    let words: Vec<String> = words
        .iter()
        .map(|word| {
            let text = String::from_utf8_lossy(&word[..word.len().min(40)]);
            text.replace("\r\n", " ")
        })
        .collect();
    words.join(" ")
}

/// Prints, on stderr, the first keys two servers disagree on.
fn explain(mine: &Server, reference: &Server, now_ms: u64) {
    let mine = crate::digest::per_key(&mine.keyspace, now_ms);
    let theirs = crate::digest::per_key(&reference.keyspace, now_ms);
    let mut shown = 0;
    for (key, (digest, text)) in &mine {
        if theirs.get(key).map(|(d, _)| d) != Some(digest) && shown < 5 {
            shown += 1;
            eprintln!(
                "server {key:?}: {text}\n  reference: {:?}",
                theirs.get(key).map(|(_, t)| t)
            );
        }
    }
    for key in theirs.keys() {
        if !mine.contains_key(key) && shown < 8 {
            shown += 1;
            eprintln!("missing from the server: {key:?}");
        }
    }
}

/// A plain in-memory server that replays history bytes as the AOF loader would: the
/// reference of a recovery check, and the shadow the live server is compared with.
struct Reference {
    server: Arc<Server>,
    session: Session,
    /// History bytes replayed so far.
    position: usize,
}

impl Reference {
    fn fresh(clock: &Arc<SimClock>, seed: u64) -> Reference {
        let server = Server::into_arc(Server::new(
            Config::default(),
            clock.clone(),
            Arc::new(SimDisk::new(0, Faults::none())),
            seed,
        ));
        let (handle, _outbox) =
            server
                .clients
                .register("reference".into(), String::new(), -1, clock.now_ms());
        let mut session = Session::new(handle, true);
        session.obey = true;
        Reference {
            server,
            session,
            position: 0,
        }
    }

    /// Replays `history[position..]`.
    fn catch_up(&mut self, history: &[u8]) -> Result<(), String> {
        if history.len() <= self.position {
            return Ok(());
        }
        let fresh = &history[self.position..];
        self.server.keyspace.loading.store(true, Ordering::Relaxed);
        let outcome = load::replay_bytes(fresh, &mut Replayer(self));
        self.server.keyspace.loading.store(false, Ordering::Relaxed);
        self.position = history.len();
        outcome
    }

    /// Runs a command as a client would (a read, for comparison).
    fn dispatch(&mut self, argv: Vec<Bytes>) -> Reply {
        strata::command::dispatch(&self.server, &mut self.session, argv).0
    }
}

struct Replayer<'a>(&'a mut Reference);

impl Replay for Replayer<'_> {
    fn apply(&mut self, argv: Vec<Bytes>) -> Applied {
        if strata::command::table().get(&argv[0]).is_none() {
            return Applied::Unknown;
        }
        let reference = &mut *self.0;
        let _ = strata::command::dispatch(&reference.server, &mut reference.session, argv);
        Applied::Ok
    }

    fn load_rdb(
        &mut self,
        _bytes: &[u8],
        _name: &str,
        _done: &dyn Fn(usize),
    ) -> Result<(), String> {
        Err("no RDB in a history".into())
    }
}
