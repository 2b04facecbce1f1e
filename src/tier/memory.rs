//! The memory tier as the keyspace sees it: one value out to the segment store and back.
//!
//! `Tier` owns the open store (none while `tiering no`), the counters INFO's `# Tiering`
//! reports, and the two conversions: `spill` encodes a value with the one value codec (RDB's,
//! as DUMP uses) and appends it; `read` fetches a record and decodes it. Which values go and
//! when is `spill`'s business (the policy module); a cold value's bookkeeping ends in `release`,
//! which every path that drops an entry's value calls.

use super::store::{Store, TierError};
use super::ColdRef;
use crate::persist::rdb::{decode, encode};
use crate::types::Value;
use crate::util::Counter;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A cold value could not be read while a command held its locks: unwinds to the executor,
/// which replies with this text (the command has changed nothing yet: the value is read
/// before it is used).
pub struct ReadFault(pub String);

/// Whether a panic's payload is the tier's unwind to the executor (`ReadFault`): control
/// flow, not a crash, so panic hooks do not report it.
pub fn is_tier_unwind(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<ReadFault>()
}

#[derive(Default)]
pub struct TierStats {
    /// Values moved to the disk tier.
    pub spills: Counter,
    /// Cold values brought back into RAM.
    pub promotions: Counter,
    /// Reads made while a shard lock was held (the fallback when a command reached a key its
    /// executor could not warm first).
    pub locked_reads: Counter,
    /// Spills refused because the disk tier failed or was full.
    pub spill_failures: Counter,
    /// Records that failed their checksum or format check.
    pub read_errors: Counter,
    /// Keys whose value is on disk now.
    pub cold_keys: AtomicI64,
}

pub struct Tier {
    store: RwLock<Option<Arc<Store>>>,
    /// Fast check for the hot paths: a store is open.
    open: AtomicBool,
    pub stats: TierStats,
    /// `tiering-min-value-size`: smaller values stay in RAM (a pointer would save little).
    pub min_value_bytes: AtomicUsize,
    /// The limit used when `maxmemory` is 0: a share of the machine's (or cgroup's) memory.
    pub auto_limit: AtomicUsize,
    /// Bytes of cold values that may still come back into RAM this upkeep tick while memory
    /// is full (each pushes another value out): `spill::keep_read_value`'s budget.
    pub promotion_budget: AtomicI64,
    /// `DEBUG SET-TIERING-LEND 1`: read-only commands never promote (tests).
    pub always_lend: AtomicBool,
    /// Bytes of the key index (the keyspace tables: nodes, buckets, long keys), kept by
    /// `keyspace::Db`; signed deltas added with wrapping, read as their sum.
    index_bytes: Counter,
    /// How far RSS ran over the limit plus the key index plus slack at the last upkeep tick:
    /// charged to the values' budget (`spill::track_resident`).
    pub resident_excess: AtomicUsize,
    /// The last spill round found no value as cold as a new key in any shard: the next ones
    /// spill the coldest values in use without looking for one first (`spill::relieve`),
    /// until a sample holds one again.
    pub none_as_cold_as_new: AtomicBool,
    /// The last values spilled were in use (`spill::in_use`): a promotion now pushes out a
    /// value read about as recently, and costs more of the budget for it.
    pub spilling_in_use: AtomicBool,
}

impl Default for Tier {
    fn default() -> Tier {
        Tier {
            store: RwLock::new(None),
            open: AtomicBool::new(false),
            stats: TierStats::default(),
            min_value_bytes: AtomicUsize::new(64),
            auto_limit: AtomicUsize::new(0),
            promotion_budget: AtomicI64::new(0),
            always_lend: AtomicBool::new(false),
            index_bytes: Counter::default(),
            resident_excess: AtomicUsize::new(0),
            none_as_cold_as_new: AtomicBool::new(false),
            spilling_in_use: AtomicBool::new(false),
        }
    }
}

/// Spilled values are encoded without RDB's LZF: the store compresses (zstd) if configured.
const ENCODE: encode::EncodeOptions = encode::EncodeOptions {
    compression: false,
    list_fill: -2,
};

impl Tier {
    /// Adds a change in the key index's size (negative when it shrinks).
    pub fn add_index_bytes(&self, delta: i64) {
        self.index_bytes.fetch_add(delta as u64, Ordering::Relaxed);
    }

    /// Bytes of the key index: what stays in RAM whatever is spilled.
    pub fn index_bytes(&self) -> usize {
        (self.index_bytes.load(Ordering::Relaxed) as i64).max(0) as usize
    }

    pub fn install(&self, store: Option<Arc<Store>>) {
        self.open.store(store.is_some(), Ordering::Release);
        *self.store.write() = store;
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub fn store(&self) -> Option<Arc<Store>> {
        self.store.read().clone()
    }

    /// Moves `value` into the store's tail (no I/O: callable under a shard lock); the pointer
    /// to keep instead. The caller replaces the value and counts nothing else.
    pub fn spill(&self, db: usize, key: &[u8], value: &Value) -> Result<ColdRef, TierError> {
        debug_assert!(!value.is_cold());
        let store = self.store().ok_or(TierError::Io("tiering is off".into()))?;
        let mut payload = Vec::with_capacity(value.heap_bytes() + 16);
        encode::encode_value(&mut payload, value, &ENCODE)
            .map_err(|err| TierError::Io(format!("can't encode the value: {}", err.reason)))?;
        match store.append(db as u32, key, value.kind() as u8, &payload) {
            Ok(cold) => {
                self.stats.spills.incr();
                self.stats.cold_keys.fetch_add(1, Ordering::Relaxed);
                Ok(cold)
            }
            Err(err) => {
                self.stats.spill_failures.incr();
                Err(err)
            }
        }
    }

    /// The value a record holds, checked and decoded. Does not free the record.
    pub fn read(&self, cold: ColdRef) -> Result<Value, TierError> {
        let store = self.store().ok_or(TierError::Gone)?;
        let payload = store.read(cold).inspect_err(|err| {
            if matches!(err, TierError::Corrupt { .. }) {
                self.stats.read_errors.incr();
                tracing::error!("tiering: {err}");
            }
        })?;
        let decoded = decode::decode_value_exact(&payload);
        match decoded {
            Ok((value, used)) if used == payload.len() && !value.is_cold() => Ok(value),
            _ => {
                self.stats.read_errors.incr();
                let err = TierError::Corrupt {
                    segment: cold.segment,
                    offset: cold.offset,
                    reason: "the value does not decode".into(),
                };
                tracing::error!("tiering: {err}");
                Err(err)
            }
        }
    }

    /// A value is leaving the keyspace (deleted, overwritten, brought back): if it was a
    /// pointer, its record is dead.
    pub fn release(&self, value: &Value) {
        if let Value::Cold(cold) = value {
            self.release_cold(*cold);
        }
    }

    pub fn release_cold(&self, cold: ColdRef) {
        if let Some(store) = self.store() {
            store.free(cold);
        }
        self.stats.cold_keys.fetch_sub(1, Ordering::Relaxed);
    }

    /// Writes the store's buffered tail if it asks for it. Call with no shard lock held.
    pub fn flush_if_needed(&self) {
        if let Some(store) = self.store() {
            if store.needs_flush() {
                if let Err(err) = store.flush() {
                    tracing::warn!("tiering: writing spilled values failed: {err}");
                }
            }
        }
    }
}

/// The memory this process may use: the machine's, or its cgroup's limit if lower.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total_kb: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let mut total = total_kb * 1024;
    for path in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Some(limit) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
        {
            total = total.min(limit);
        }
    }
    Some(total)
}

/// Opens the disk tier at start-up (`tiering yes`): its directory is emptied of a previous
/// run's segments (they are a memory tier, not data: the AOF/RDB brings the data back), and
/// the automatic limit is set from the machine's memory.
pub fn open_store(server: &crate::server::state::Server) -> Result<(), String> {
    let config = &server.config;
    if !config.bool("tiering") {
        return Ok(());
    }
    let dir = match config.text("tiering-dir") {
        dir if dir.is_empty() => std::path::PathBuf::from(config.text("dir")).join("tier"),
        dir => std::path::PathBuf::from(dir),
    };
    let store = Store::open(
        server.fs.clone(),
        super::store::StoreConfig {
            dir: dir.clone(),
            segment_bytes: SEGMENT_BYTES,
            max_disk_bytes: config.int("tiering-max-disk").max(0) as u64,
            compression: compression(config),
        },
    )
    .map_err(|err| {
        format!(
            "Can't open the tiering directory '{}': {err}",
            dir.display()
        )
    })?;
    let tier = &server.keyspace.tier;
    tier.install(Some(Arc::new(store)));
    if let Some(memory) = available_memory() {
        let percent = config.int("tiering-auto-memory-percent").clamp(1, 100) as u64;
        tier.auto_limit
            .store((memory / 100 * percent) as usize, Ordering::Relaxed);
    }
    apply_config(server);
    Ok(())
}

/// Capacity of one segment file.
pub const SEGMENT_BYTES: u32 = 64 << 20;

fn compression(config: &crate::config::Config) -> super::store::Compression {
    match config.word("tiering-compression") {
        "zstd" => super::store::Compression::Zstd(config.int("tiering-compression-level") as i32),
        _ => super::store::Compression::None,
    }
}

/// Re-reads the live tiering directives (after CONFIG SET).
pub fn apply_config(server: &crate::server::state::Server) {
    let config = &server.config;
    let tier = &server.keyspace.tier;
    tier.min_value_bytes.store(
        config.int("tiering-min-value-size").max(0) as usize,
        Ordering::Relaxed,
    );
    if let Some(store) = tier.store() {
        store.set_max_disk_bytes(config.int("tiering-max-disk").max(0) as u64);
        store.set_compression(compression(config));
    }
}
