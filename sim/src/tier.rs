//! The memory tier in the simulation: how a run configures it, the memory figure that drives
//! spilling, the upkeep step, and what the checker accepts from a tier that met faults.
//!
//! Half the runs open the tier with a `maxmemory` far below what the workload keeps (most
//! values spill), small segments (so they seal and get compacted), a random eviction policy
//! and sometimes a `tiering-max-disk` (so the tier fills and the policy applies).
//!
//! Memory: the allocator's count covers the whole process (the simulated disk, the reference
//! servers), so a run installs its own figure on its thread (`strata::tier::alloc::
//! set_thread_gauge`): the heap bytes of the hot values (those large enough to spill) as
//! measured before each request and upkeep step, minus an average hot value for each value
//! spilled or key evicted since, plus the key index (which the limit leaves out). The executor asks for the figure before a command
//! runs (spilling, then evicting, until it is under `maxmemory`), when nothing else has
//! changed since the measure, so that is all it needs to follow. It replays exactly from the
//! seed and takes no lock (a snapshot asks for it with every shard locked). Spilling during a
//! load is not simulated (the figure is 0 until the first measure after it); the first upkeep
//! step after a start spills what the load brought in.
//!
//! The upkeep thread never runs: the run calls its step (`compact::tick`: spill ahead of need,
//! write the tail out, compact one segment) at simulated times, so a seed replays exactly.
//!
//! What a tier error may look like: a command on a key whose record cannot be read fails
//! with an error naming the segment file and the record's offset (a corrupt record, or a read
//! that failed), and only when a logged fault (a failed or flipped read, a bit rotted on the
//! disk) touched that record's bytes.
//! Anything else a tier says in a reply is a finding, as is a caught panic.

use crate::disk::SegmentFault;
use rand::rngs::SmallRng;
use rand::Rng;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use strata::io::FileSystem;
use strata::protocol::reply::Reply;
use strata::server::state::Server;
use strata::tier::store::{segment_file_name, Compression, Store, StoreConfig};
use strata::tier::ColdRef;
use strata::types::Value;

/// Where the simulated server keeps its segments.
pub const TIER_DIR: &str = "/sim/tier";

/// How a tiered run configures the tier.
#[derive(Debug, Clone)]
pub struct TierSetup {
    /// In the gauge's unit: heap bytes of hot values.
    pub maxmemory: u64,
    pub policy: &'static str,
    /// `maxmemory-samples`: small, as the simulated keyspace is (a shard's slice holds a key
    /// or two, and spilling draws up to 128 times this many when it finds few candidates).
    pub samples: u32,
    pub min_value_bytes: u64,
    /// 0: unlimited.
    pub max_disk_bytes: u64,
    pub zstd: bool,
    pub segment_bytes: u32,
}

const POLICIES: [&str; 5] = [
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "volatile-ttl",
    "allkeys-random",
];

impl TierSetup {
    /// A random setup: most values spill, segments seal often.
    pub fn draw(random: &mut SmallRng) -> TierSetup {
        TierSetup {
            maxmemory: random.gen_range(1_000..20_000),
            policy: POLICIES[random.gen_range(0..POLICIES.len())],
            samples: random.gen_range(1..=3),
            min_value_bytes: [0, 1, 16, 64][random.gen_range(0..4)],
            max_disk_bytes: if random.gen_bool(0.3) {
                random.gen_range(30_000..300_000)
            } else {
                0
            },
            zstd: random.gen_bool(0.5),
            segment_bytes: random.gen_range(512..16_384),
        }
    }

    /// The directives, as config-file lines.
    pub fn config_text(&self) -> String {
        format!(
            "maxmemory {}\nmaxmemory-policy {}\nmaxmemory-samples {}\n\
             tiering-min-value-size {}\ntiering-max-disk {}\ntiering-compression {}\n",
            self.maxmemory,
            self.policy,
            self.samples,
            self.min_value_bytes,
            self.max_disk_bytes,
            if self.zstd { "zstd" } else { "none" }
        )
    }

    /// For the summary: `tier 12345/allkeys-lru`.
    pub fn describe(&self) -> String {
        format!("tier {}/{}", self.maxmemory, self.policy)
    }

    /// Opens the store as the server does at start (`tier::memory::open_store`, with small
    /// segments), before the load. Err if it fails or a stale segment file survived it.
    pub fn open(&self, server: &Server, fs: Arc<dyn FileSystem>) -> Result<(), String> {
        let dir = PathBuf::from(TIER_DIR);
        let store = Store::open(
            fs.clone(),
            StoreConfig {
                dir: dir.clone(),
                segment_bytes: self.segment_bytes,
                max_disk_bytes: 0,
                compression: Compression::None,
            },
        )
        .map_err(|err| format!("the tier did not open: {err}"))?;
        let stale = segment_files(fs.as_ref(), &dir);
        if !stale.is_empty() {
            return Err(format!(
                "stale segment files survived the tier's opening: {stale:?}"
            ));
        }
        server.keyspace.tier.install(Some(Arc::new(store)));
        strata::tier::memory::apply_config(server);
        Ok(())
    }
}

/// The segment files in `dir`.
pub fn segment_files(fs: &dyn FileSystem, dir: &Path) -> Vec<String> {
    fs.list(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
        .filter(|name| name.starts_with("segment-"))
        .collect()
}

/// The memory figure of this thread's run.
#[derive(Default)]
struct Gauge {
    /// Heap bytes of the hot values at the last measure.
    hot_bytes: u64,
    /// Bytes of one hot value on average, then.
    hot_value_bytes: u64,
    /// Values spilled and keys evicted (the tier's and the keyspace's counters) then.
    gone: u64,
    server: Option<Arc<Server>>,
}

thread_local! {
    static GAUGE: RefCell<Gauge> = RefCell::new(Gauge::default());
}

fn gauge() -> usize {
    GAUGE.with(|gauge| {
        let gauge = gauge.borrow();
        let Some(server) = &gauge.server else {
            return 0;
        };
        let gone = gone(server).saturating_sub(gauge.gone);
        // The key index is what the real count holds besides the values; under tiering the
        // limit leaves it out (`strata::tier::spill::budgeted_memory`), so the figure must
        // hold it for that subtraction to leave the hot values.
        gauge.hot_bytes.saturating_sub(gone * gauge.hot_value_bytes) as usize
            + server.keyspace.tier.index_bytes()
    })
}

/// Values spilled plus keys evicted so far: what takes a value out of RAM before a command.
fn gone(server: &Server) -> u64 {
    server.keyspace.tier.stats.spills.load(Relaxed)
        + server.keyspace.stats.evicted_keys.load(Relaxed)
}

/// Makes `used_memory` on this thread the run's figure, 0 until the first `measure`.
pub fn install_gauge() {
    GAUGE.with(|gauge| *gauge.borrow_mut() = Gauge::default());
    strata::tier::alloc::set_thread_gauge(Some(gauge));
}

/// Back to the allocator's count; the gauge lets go of its server.
pub fn uninstall_gauge() {
    strata::tier::alloc::set_thread_gauge(None);
    GAUGE.with(|gauge| *gauge.borrow_mut() = Gauge::default());
}

/// The figure is 0 until the next `measure` (a new server loading).
pub fn reset_gauge() {
    GAUGE.with(|gauge| *gauge.borrow_mut() = Gauge::default());
}

/// Measures the hot values of `server` (no lock may be held by the caller); how many values
/// are hot and how many cold.
pub fn measure(server: &Arc<Server>) -> (u64, u64) {
    let now_ms = server.clock.now_ms();
    let min_bytes = (server.keyspace.tier.min_value_bytes).load(Relaxed).max(1);
    let (mut hot_bytes, mut hot_values, mut cold_values) = (0u64, 0u64, 0u64);
    {
        let mut ks = server.keyspace.lock_all(now_ms);
        for db in 0..server.keyspace.databases() {
            for slice in ks.slices(db) {
                slice.keys.for_each(|_, entry| match &entry.value {
                    Value::Cold(_) => cold_values += 1,
                    // Too small to spill (`tiering-min-value-size`): not counted, or the
                    // limit could be out of reach with nothing left to spill.
                    Value::Str(bytes) if bytes.len() < min_bytes => {}
                    value => {
                        hot_bytes += value.heap_bytes() as u64;
                        hot_values += 1;
                    }
                });
            }
        }
    }
    let measured = Gauge {
        hot_bytes,
        hot_value_bytes: hot_bytes.div_ceil(hot_values.max(1)),
        gone: gone(server),
        server: Some(server.clone()),
    };
    GAUGE.with(|gauge| *gauge.borrow_mut() = measured);
    (hot_values, cold_values)
}

/// One round of the tier's upkeep, as its thread would run it; then the store's invariants.
/// How many values are hot and how many cold after it.
pub fn upkeep(server: &Arc<Server>) -> (u64, u64) {
    measure(server);
    strata::tier::compact::tick(server);
    if let Some(store) = server.keyspace.tier.store() {
        store.check_invariants();
    }
    measure(server)
}

counters! {
    /// What the tier did in one server's life.
    pub struct TierCounts {
        /// Values found hot and cold after the upkeep steps, summed over them.
        pub hot_values,
        pub cold_values,
        pub spills,
        pub promotions,
        pub cold_reads,
        pub compactions,
        pub spill_failures,
        pub disk_errors,
        pub corrupt_reads,
    }
}

impl TierCounts {
    pub fn of(server: &Server) -> TierCounts {
        let tier = &server.keyspace.tier;
        let store = tier.store().map(|store| store.stats()).unwrap_or_default();
        TierCounts {
            hot_values: 0,
            cold_values: 0,
            spills: tier.stats.spills.load(Relaxed),
            promotions: tier.stats.promotions.load(Relaxed),
            cold_reads: store.cold_reads,
            compactions: store.compactions,
            spill_failures: tier.stats.spill_failures.load(Relaxed),
            disk_errors: store.disk_errors,
            corrupt_reads: store.corrupt_records,
        }
    }
}

/// Whether a logged fault touched the bytes of record `cold`.
pub fn explained(cold: ColdRef, faults: &[SegmentFault]) -> bool {
    let file = segment_file_name(cold.segment);
    let start = u64::from(cold.offset);
    let end = start + u64::from(cold.length);
    faults
        .iter()
        .any(|fault| fault.file == file && fault.start < end && fault.end > start)
}

/// The error texts in a reply (an EXEC's array holds one per failed command).
pub fn errors(reply: &Reply, found: &mut Vec<String>) {
    match reply {
        Reply::Error(text) => found.push(text.clone()),
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            for item in items {
                errors(item, found);
            }
        }
        Reply::Map(pairs) => {
            for (key, value) in pairs {
                errors(key, found);
                errors(value, found);
            }
        }
        _ => {}
    }
}

/// How a segment file's name starts (`store::segment_file_name`).
const SEGMENT_PREFIX: &str = "segment-";
/// What the executor says before the tier's error.
const CANT_READ: &str = "can't read the value of '";

/// Checks one error reply of the live server: Ok when it is no tier error, or a tier error
/// that names the segment and offset of a record a logged fault touched.
pub fn check_error(server: &Server, text: &str, faults: &[SegmentFault]) -> Result<(), String> {
    if text.contains("internal error") {
        return Err(format!("a command panicked: {text}"));
    }
    if !text.contains("tier") {
        return Ok(());
    }
    let named = parse_segment_offset(text)
        .ok_or_else(|| format!("a tier error that names no segment and offset: {text}"))?;
    let (segment, offset) = named;
    // The key still holds the pointer (the command changed nothing): its length bounds the
    // record. Inside a transaction a later command may have dropped it; then any fault at or
    // after the offset in that file will do.
    let cold = text
        .strip_prefix("ERR ")
        .unwrap_or(text)
        .strip_prefix(CANT_READ)
        .and_then(|rest| rest.split_once("' from the disk tier"))
        .and_then(|(key, _)| cold_ref_of(server, key.as_bytes(), segment, offset));
    let file = segment_file_name(segment);
    let ok = match cold {
        Some(cold) => explained(cold, faults),
        None => faults
            .iter()
            .any(|fault| fault.file == file && fault.end > u64::from(offset)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a tier error no injected fault explains: {text} (faults: {faults:?})"
        ))
    }
}

/// `(segment, offset)` from a tier error's text: a corrupt record's (`... tier segment file
/// segment-N.tier at offset O: ...`) or a failed read's (`reading <dir>/segment-N.tier at
/// offset O: ...`).
fn parse_segment_offset(text: &str) -> Option<(u32, u32)> {
    let rest = &text[text.find(SEGMENT_PREFIX)? + SEGMENT_PREFIX.len()..];
    let (digits, rest) = rest.split_once(".tier at offset ")?;
    let segment = digits.parse().ok()?;
    let offset: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((segment, offset.parse().ok()?))
}

/// The pointer some database's `key` holds, if it is the record at `segment:offset`.
fn cold_ref_of(server: &Server, key: &[u8], segment: u32, offset: u32) -> Option<ColdRef> {
    let now_ms = server.clock.now_ms();
    let mut ks = server.keyspace.lock_keys([key], now_ms);
    (0..server.keyspace.databases()).find_map(|db| match ks.db(db, key).keys.get(key) {
        Some(entry) => match entry.value {
            Value::Cold(cold) if cold.segment == segment && cold.offset == offset => Some(cold),
            _ => None,
        },
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_record_error_names_segment_and_offset() {
        let text = "ERR can't read the value of 's3' from the disk tier: corrupt record in tier \
                    segment file segment-0000000012.tier at offset 4096: crc32 mismatch";
        assert_eq!(parse_segment_offset(text), Some((12, 4096)));
        let text = "ERR can't read the value of 's3' from the disk tier: disk tier I/O error: \
                    reading /sim/tier/segment-0000000002.tier at offset 80: Input/output error";
        assert_eq!(parse_segment_offset(text), Some((2, 80)));
        assert_eq!(parse_segment_offset("ERR no such key"), None);
    }

    #[test]
    fn a_fault_explains_only_the_record_it_touched() {
        let cold = ColdRef {
            segment: 3,
            offset: 100,
            length: 50,
            kind: 0,
        };
        let fault = |start, end| SegmentFault {
            file: segment_file_name(3),
            start,
            end,
        };
        assert!(explained(cold, &[fault(120, 121)]));
        assert!(explained(cold, &[fault(90, 101)]));
        assert!(!explained(cold, &[fault(150, 151)]));
        assert!(!explained(cold, &[fault(10, 100)]));
        let other = SegmentFault {
            file: segment_file_name(4),
            start: 120,
            end: 121,
        };
        assert!(!explained(cold, &[other]));
    }
}
