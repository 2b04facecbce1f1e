//! The tier's background upkeep: writing the spill tail out, spilling ahead of need, and
//! compacting segments whose records have mostly died.
//!
//! One thread per server (`start`) wakes every `TICK`. Compaction moves a segment's live
//! records to the active segment and deletes the file: each record is read with no lock held,
//! then its owner is checked under the owner's shard lock (the entry must still hold exactly
//! that pointer) and repointed. A record whose owner is gone is dead and simply left behind.
//! The copying is paced (`COMPACT_BYTES_PER_SECOND`) so compaction never takes the disk from
//! the commands. Segments are never deleted while a snapshot runs: its walk may still read
//! records that writers have since replaced.

use super::memory::Tier;
use super::store::{RecordInfo, Store};
use crate::server::state::Server;
use crate::types::Value;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the upkeep runs.
const TICK: Duration = Duration::from_millis(100);
/// Compaction's copying rate at most.
const COMPACT_BYTES_PER_SECOND: u64 = 64 << 20;
/// Spilling ahead of need: while memory is over this share of the limit (in 1/1000s), the
/// upkeep spills down to it, so commands rarely have to.
const HEADROOM_PERMILLE: usize = 980;

/// Starts the upkeep thread for `server` (it ends when the server is dropped).
pub fn start(server: &Arc<Server>) {
    if !server.keyspace.tier.is_open() {
        return;
    }
    let weak = Arc::downgrade(server);
    let spawned = std::thread::Builder::new()
        .name("strata-tier".into())
        .spawn(move || run(weak));
    if let Err(err) = spawned {
        tracing::warn!("tiering: can't start the upkeep thread: {err}");
    }
}

fn run(server: Weak<Server>) {
    loop {
        std::thread::sleep(TICK);
        let Some(server) = server.upgrade() else {
            return;
        };
        tick(&server);
    }
}

/// One round of upkeep.
pub fn tick(server: &Server) {
    let tier = &*server.keyspace.tier;
    let Some(store) = tier.store() else {
        return;
    };
    let limit = super::spill::effective_limit(server);
    super::spill::refill_promotion_budget(server);
    super::spill::track_resident(server);
    if limit > 0 && super::spill::spill_pressure(server) > limit / 1000 * HEADROOM_PERMILLE {
        super::spill::relieve(server, limit / 1000 * HEADROOM_PERMILLE);
    }
    // The tail reaches the disk even when little is spilled.
    if store.stats().buffered_bytes > 0 {
        if let Err(err) = store.flush() {
            tracing::warn!("tiering: writing spilled values failed: {err}");
        }
    }
    compact_once(server, tier, &store);
}

/// Compacts one segment if one qualifies; true if a segment was retired.
pub fn compact_once(server: &Server, tier: &Tier, store: &Store) -> bool {
    if server.keyspace.snapshot.is_active() {
        return false;
    }
    let Some(segment) = store.compaction_candidate() else {
        return false;
    };
    let records = match store.records(segment) {
        Ok(records) => records,
        Err(err) => {
            tracing::warn!("tiering: can't compact segment {segment}: {err}");
            return false;
        }
    };
    let started_us = server.clock.now_us();
    let mut copied = 0u64;
    let mut complete = true;
    for info in &records {
        match relocate(server, store, info) {
            Ok(bytes) => copied += bytes,
            Err(err) => {
                tracing::warn!("tiering: compaction of segment {segment} stopped: {err}");
                complete = false;
                break;
            }
        }
        tier.flush_if_needed();
        pace(&*server.clock, started_us, copied);
    }
    if let Err(err) = store.flush() {
        tracing::warn!("tiering: compaction of segment {segment} stopped: {err}");
        complete = false;
    }
    // A snapshot that started meanwhile may read the old records: the next round retires.
    if !complete || server.keyspace.snapshot.is_active() {
        return false;
    }
    // A corrupt live record stays where its key points: then the segment stays too.
    store.retire(segment)
}

/// Sleeps as needed to keep the copying under `COMPACT_BYTES_PER_SECOND` (on the server's
/// clock: a simulated one does not wait).
fn pace(clock: &dyn crate::io::Clock, started_us: u64, copied: u64) {
    let due = Duration::from_secs_f64(copied as f64 / COMPACT_BYTES_PER_SECOND as f64);
    let elapsed = Duration::from_micros(clock.now_us().saturating_sub(started_us));
    if let Some(ahead) = due.checked_sub(elapsed) {
        clock.sleep(ahead.min(Duration::from_millis(100)));
    }
}

/// Moves one record if its owner still points at it; the bytes copied. The owner is found
/// by the record's database and key, or in any database (SWAPDB moves whole databases).
fn relocate(server: &Server, store: &Store, info: &RecordInfo) -> Result<u64, String> {
    let raw = match store.read_raw(info.cold) {
        Ok(raw) => raw,
        // Unreadable: the owner's own read reports it; nothing here can repair it.
        Err(err) => {
            tracing::warn!("tiering: compaction skips a record: {err}");
            return Err(err.to_string());
        }
    };
    let now_ms = server.clock.now_ms();
    let mut ks = server.keyspace.lock_keys([&info.key[..]], now_ms);
    let databases = server.keyspace.databases();
    let named = info.db as usize;
    let candidates = std::iter::once(named).chain((0..databases).filter(|db| *db != named));
    for db in candidates.filter(|db| *db < databases) {
        let Some(entry) = ks.db(db, &info.key).keys.get_mut(&info.key[..]) else {
            continue;
        };
        if entry.value != Value::Cold(info.cold) {
            continue;
        }
        let moved = store.append_raw(&raw).map_err(|err| err.to_string())?;
        entry.value = Value::Cold(moved);
        store.free(info.cold);
        return Ok(raw.len() as u64);
    }
    Ok(0)
}
