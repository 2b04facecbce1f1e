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
//! - `no`: nothing in particular.
//!
//! The state of a prefix comes from replaying it into a fresh in-memory server; states are
//! compared by digest. Everything is deterministic: the seed fixes the workload, the clock
//! and every fault, and the run's trace hash proves it.

use crate::digest::digest;
use crate::disk::{Faults, SimDisk};
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

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub steps: usize,
    /// Run the deliberately broken AOF variant (the checker must catch it).
    pub broken: bool,
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub trace_hash: u64,
    pub policy: String,
    pub commands: u64,
    pub acknowledged: u64,
    pub crashes: u64,
    pub rewrites: u64,
    pub faults: u64,
    /// Empty when every check passed.
    pub failures: Vec<String>,
}

struct SimClock(AtomicU64);

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
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
    outcome: Outcome,
}

pub fn run(options: Options) -> Outcome {
    let mut random = SmallRng::seed_from_u64(options.seed);
    let policy = match random.gen_range(0..3) {
        0 => Fsync::Always,
        1 => Fsync::Everysec,
        _ => Fsync::No,
    };
    let faults = if random.gen_bool(0.5) {
        Faults {
            sync_failure: 0.0,
            capacity_bytes: usize::MAX,
        }
    } else {
        Faults {
            sync_failure: random.gen_range(0.0..0.02),
            capacity_bytes: random.gen_range(200_000..2_000_000),
        }
    };
    let preamble = random.gen_bool(0.5);
    let clock = Arc::new(SimClock(AtomicU64::new(START_MS)));
    let mut run = Run {
        preamble,
        disk: SimDisk::new(options.seed, faults),
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
        outcome: Outcome {
            policy: format!(
                "{}, {} base",
                format!("{policy:?}").to_lowercase(),
                if preamble { "rdb" } else { "aof" }
            ),
            ..Outcome::default()
        },
    };
    strata::util::reseed_random(run.options.seed);
    run.body();
    run.outcome.faults = run.disk.faults_injected();
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
        let text = format!(
            "dir /sim\nappendonly yes\nappendfsync {policy}\naof-load-truncated yes\n\
             auto-aof-rewrite-percentage 0\naof-use-rdb-preamble {preamble}\n"
        );
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
        if self.options.broken {
            server.aof.break_durability_for_simulation();
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
                return;
            }
            self.clock
                .0
                .fetch_add(self.random.gen_range(0..30), Ordering::Relaxed);
            let roll = self.random.gen_range(0..1000);
            if roll < 4 {
                self.crash_and_recover(&mut current, step);
            } else if roll < 8 {
                self.rewrite(&current);
            } else {
                self.request(&mut current);
            }
            let now = self.clock.now_ms();
            if self.random.gen_bool(0.5) || now >= self.last_step_ms + WRITER_WAKE_MS {
                self.writer_step(&current);
            }
        }
        // A clean stop, then a restart that must bring back exactly everything.
        self.disk.heal();
        self.writer_step(&current);
        current.server.aof.close();
        let end = self.history().bytes.len();
        drop(current);
        let durable_end = if self.failed_at.is_some() { 0 } else { end };
        if let Some(restarted) = self.start(end) {
            self.check(&restarted, durable_end, "clean restart");
        }
    }

    fn request(&mut self, current: &mut Incarnation) {
        let now = self.clock.now_ms();
        let request = workload::request(&mut self.random, now);
        let commands = match request {
            Request::Command(argv) => vec![argv],
            Request::Transaction(mut commands) => {
                commands.insert(0, vec![b"MULTI".to_vec()]);
                commands.push(vec![b"EXEC".to_vec()]);
                commands
            }
        };
        let offset_before = current.session.write_offset;
        for argv in commands {
            let argv: Vec<Bytes> = argv.into_iter().map(Bytes::from).collect();
            argv.hash(&mut self.trace);
            let (reply, _action) =
                strata::command::dispatch(&current.server, &mut current.session, argv);
            reply.to_bytes(false).hash(&mut self.trace);
            self.outcome.commands += 1;
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
        }
        if failed {
            // Never acknowledged: their connections are closed without a reply.
            self.waiting.clear();
            return;
        }
        let (done, still): (Vec<usize>, Vec<usize>) =
            self.waiting.iter().partition(|&&offset| offset <= durable);
        self.waiting = still;
        for offset in done {
            self.acknowledge(offset);
        }
    }

    fn rewrite(&mut self, current: &Incarnation) {
        let outcome = persistence::rewrite(&current.server);
        outcome.is_ok().hash(&mut self.trace);
        if outcome.is_ok() {
            self.outcome.rewrites += 1;
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
        let required = self.required(crash_ms);
        ("crash", step).hash(&mut self.trace);
        self.outcome.crashes += 1;
        self.disk.crash();
        self.waiting.clear();
        let Some(recovered) = self.start(0) else {
            return;
        };
        let Some(matched) = self.check(&recovered, required, &format!("crash at step {step}"))
        else {
            return;
        };
        // The recovered state is the history up to `matched`: the rest never happened.
        let mut history = self.history();
        history.bytes.truncate(matched);
        history.boundaries.retain(|&boundary| boundary <= matched);
        drop(history);
        self.acknowledged.retain(|(offset, _)| *offset <= matched);
        self.failed_at = None;
        *current = Incarnation {
            base: matched,
            ..recovered
        };
    }

    /// Finds the history prefix (ending on a command boundary, at or past `required`) whose
    /// state the recovered server holds; records a failure when there is none.
    fn check(&mut self, recovered: &Incarnation, required: usize, when: &str) -> Option<usize> {
        let now = self.clock.now_ms();
        let (wanted, keys) = digest(&recovered.server.keyspace, now);
        (wanted, keys).hash(&mut self.trace);
        let history = std::mem::take(&mut *self.history());
        let reference = Server::into_arc(Server::new(
            Config::default(),
            self.clock.clone(),
            Arc::new(SimDisk::new(
                0,
                Faults {
                    sync_failure: 0.0,
                    capacity_bytes: usize::MAX,
                },
            )),
            self.options.seed,
        ));
        let mut replay = Reference::new(&reference, now);
        let mut found = None;
        let mut position = 0;
        let candidates: Vec<usize> = std::iter::once(0)
            .chain(history.boundaries.iter().copied())
            .collect();
        for boundary in candidates {
            if boundary > position {
                if let Err(err) = replay.replay(&history.bytes[position..boundary]) {
                    self.fail(format!(
                        "{when}: the reference cannot replay the history: {err}"
                    ));
                    break;
                }
                position = boundary;
            }
            if boundary >= required && digest(&reference.keyspace, now).0 == wanted {
                found = Some(boundary);
                break;
            }
        }
        // SIM_DEBUG=1 explains a mismatch key by key (on stderr, outside the trace).
        if found.is_none() && std::env::var("SIM_DEBUG").is_ok() {
            let mine = crate::digest::per_key(&recovered.server.keyspace, now);
            let theirs = crate::digest::per_key(&reference.keyspace, now);
            let mut shown = 0;
            for (key, (digest, text)) in &mine {
                if theirs.get(key).map(|(d, _)| d) != Some(digest) && shown < 5 {
                    shown += 1;
                    eprintln!(
                        "recovered {key:?}: {text}\n  reference: {:?}",
                        theirs.get(key).map(|(_, t)| t)
                    );
                }
            }
            for key in theirs.keys() {
                if !mine.contains_key(key) && shown < 8 {
                    shown += 1;
                    eprintln!("missing from recovered: {key:?}");
                }
            }
        }
        *self.history() = history;
        if found.is_none() {
            self.fail(format!(
                "{when}: the recovered state ({keys} keys) is no prefix of the history that \
                 reaches the {required} bytes the {:?} policy promised",
                self.policy
            ));
        }
        found.hash(&mut self.trace);
        found
    }
}

/// Replays history bytes into the reference server, as the AOF loader would.
struct Reference<'a> {
    server: &'a Server,
    session: Session,
}

impl<'a> Reference<'a> {
    fn new(server: &'a Server, now_ms: u64) -> Reference<'a> {
        let (handle, _outbox) =
            server
                .clients
                .register("reference".into(), String::new(), -1, now_ms);
        let mut session = Session::new(handle, true);
        session.obey = true;
        Reference { server, session }
    }

    fn replay(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.server.keyspace.loading.store(true, Ordering::Relaxed);
        let outcome = load::replay_bytes(bytes, self);
        self.server.keyspace.loading.store(false, Ordering::Relaxed);
        outcome
    }
}

impl Replay for Reference<'_> {
    fn apply(&mut self, argv: Vec<Bytes>) -> Applied {
        if strata::command::table().get(&argv[0]).is_none() {
            return Applied::Unknown;
        }
        let _ = strata::command::dispatch(self.server, &mut self.session, argv);
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
