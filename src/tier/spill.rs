//! Which values go to disk, and when (Redis's eviction, with spilling instead of deleting).
//!
//! While the memory in use is over the limit, the coldest values are spilled: candidates are
//! sampled (twice `maxmemory-samples` per database slice) from a few shards at a time, and the
//! coldest of each shard's sample goes. A slice's sample is the next values still in RAM along
//! a cursor that sweeps its table's buckets in memory order (`Dict::sweep_mut`), not random
//! draws: once most values are cold, random draws mostly meet cold ones and cost a cache miss
//! each, while the sweep passes over them in order and never looks at the same value twice in
//! one round (a clock hand). A second pass over the same buckets spills the chosen values in
//! place. "Coldest" is the lowest
//! heat: the decayed LFU counter in LFU mode, a logarithm of the idle time in LRU mode. A
//! burst of writes of new keys therefore does not push out what is read often: in LFU mode a
//! new key starts at Redis's initial counter, below anything read repeatedly; in LRU mode a
//! value not read since it was written has no heat at all (`FLAG_READ`).
//!
//! What the limit bounds (`budgeted_memory`): under tiering with a `maxmemory`, everything
//! allocated except the key index. Keys and their metadata never leave RAM, so counting them
//! would leave a dataset with many keys no room for values at all (2M keys take 155 MB of a
//! 200 MB limit); the process then stays near `maxmemory` plus the index, as DESIGN.md says.
//! Without tiering the limit bounds everything, as in Redis, and so does the automatic limit
//! of `maxmemory 0`, which is there to keep the machine's memory from running out. RSS the
//! allocator keeps beyond what is allocated (pages it cannot give back) is charged to values
//! too, past a slack (`track_resident`).
//!
//! Spilling appends to the store's in-memory tail while the shard is locked (no I/O); the
//! tail is written out after the lock is released.

use super::memory::Tier;
use crate::keyspace::entry::{AccessMode, Entry};
use crate::keyspace::shards::SHARDS;
use crate::server::state::Server;
use crate::types::Value;
use rand::Rng;
use smallvec::SmallVec;
use std::sync::atomic::Ordering;

/// Values spilled per call at most, so one command never spends unbounded time on it.
const SPILLS_PER_CALL_MAX: usize = 4096;
/// Buckets walked per wanted candidate at most (most hold cold values once most are).
const BUCKETS_PER_SAMPLE: usize = 64;
/// Times one call writes the tail out and tries again after the store refused a spill.
const SPILL_RETRIES_MAX: usize = 16;
/// A sample with no value as cold as a new key grows to this many times its size looking
/// for one.
const COLD_SEARCH_FACTOR: usize = 4;
/// Values spilled from one shard's sample before moving on.
const SPILLS_PER_SHARD_MAX: usize = 4;

/// How hot an entry is, 0..=255: what spilling (lowest first) and promotion compare.
pub fn heat(entry: &Entry, now_ms: u64, mode: AccessMode) -> u32 {
    match mode {
        AccessMode::Lfu { decay_minutes, .. } => entry.lfu_counter(now_ms, decay_minutes),
        // Written but not read since: the first to go (a burst of new keys must not push
        // out what is being read).
        AccessMode::Lru if entry.flags & crate::keyspace::entry::FLAG_READ == 0 => 0,
        AccessMode::Lru => {
            let idle = entry.idle_seconds(now_ms);
            // 255 when just used, falling with the logarithm of the idle time.
            255u32.saturating_sub(16 * (64 - idle.leading_zeros()))
        }
    }
}

/// Whether a value of this heat is no warmer than a key just written and never read (LRU:
/// unread since written; LFU: at most a new key's counter).
fn as_cold_as_new(heat: u32, mode: AccessMode) -> bool {
    match mode {
        AccessMode::Lfu { .. } => heat <= crate::keyspace::entry::LFU_INIT,
        AccessMode::Lru => heat == 0,
    }
}

/// Below this share of the limit (in 1/1000s) a value read from disk comes back into RAM:
/// there is room for it without pushing anything out (the upkeep spills down to 980).
const PROMOTE_FREELY_PERMILLE: usize = 960;
/// Over it, promotions share a budget per upkeep tick of the limit divided by this: the hot
/// set still moves into RAM, at a bounded cost in spills, when it does not fit.
const PROMOTION_BUDGET_DIVISOR: usize = 64;
/// While the spill is taking values in use itself, a promotion costs this many times its
/// bytes of the budget: it pushes out a value read as recently as it was, which gains nothing
/// when the two are read about as often (a hot set larger than the limit, read evenly, spent
/// a tenth of its CPU rewriting itself at the full rate), so only a trickle moves.
const PROMOTION_OVER_IN_USE_COST: i64 = 16;
/// In LRU mode, a value read again within this many seconds counts as in use.
const RECENT_READ_SECONDS: u64 = 60;

/// Whether a value is in use: read more than once, the last time recently (LRU:
/// `FLAG_READ_AGAIN` and idle under a minute), or in LFU mode a counter above a new key's.
/// What promotion lets back into RAM, and what it should not push out for another. One read
/// is not enough: after a pass over every key (a scan, a check of the whole dataset) each
/// would look as much in use as the values read over and over, and for a minute the hot set
/// could come back only at the trickle meant for values no hotter than those they displace.
fn in_use(entry: &Entry, now_ms: u64, mode: AccessMode) -> bool {
    match mode {
        AccessMode::Lfu { decay_minutes, .. } => {
            entry.lfu_counter(now_ms, decay_minutes) > crate::keyspace::entry::LFU_INIT
        }
        AccessMode::Lru => {
            entry.flags & crate::keyspace::entry::FLAG_READ_AGAIN != 0
                && entry.idle_seconds(now_ms) <= RECENT_READ_SECONDS
        }
    }
}

/// Whether a cold value just read for a read-only command stays in RAM (promoted) or is only
/// lent to it (its record stays and the entry points at it again after the command). Reading
/// a cold value must not cost a spill elsewhere each time, or a working set larger than RAM
/// spends its time rewriting itself: with memory full, only values in use come back, within
/// `promotion_budget`, and only a trickle of them while the values the spill takes are in use
/// too (`PROMOTION_OVER_IN_USE_COST`). `entry` is as it was before this read.
pub fn keep_read_value(server: &Server, entry: &Entry, value: &Value) -> bool {
    let tier = &server.keyspace.tier;
    if tier.always_lend.load(Ordering::Relaxed) {
        return false;
    }
    let limit = effective_limit(server);
    let used = spill_pressure(server);
    let bytes = value.heap_bytes();
    if limit == 0 || used + bytes <= limit / 1000 * PROMOTE_FREELY_PERMILLE {
        return true;
    }
    if !in_use(entry, server.clock.now_ms(), server.keyspace.access_mode()) {
        return false;
    }
    let cost = if tier.spilling_in_use.load(Ordering::Relaxed) {
        bytes as i64 * PROMOTION_OVER_IN_USE_COST
    } else {
        bytes as i64
    };
    tier.promotion_budget.fetch_sub(cost, Ordering::Relaxed) >= cost
}

/// Refills the promotion budget (the upkeep, every tick).
pub fn refill_promotion_budget(server: &Server) {
    let per_tick = effective_limit(server) / PROMOTION_BUDGET_DIVISOR;
    server
        .keyspace
        .tier
        .promotion_budget
        .store(per_tick as i64, Ordering::Relaxed);
}

/// Whether a value is worth a pointer: tiny strings stay (the pointer would save little).
fn worth_spilling(value: &Value, min_bytes: usize) -> bool {
    match value {
        Value::Cold(_) => false,
        Value::Str(bytes) => bytes.len() >= min_bytes.max(1),
        _ => true,
    }
}

/// The memory limit spilling keeps to: `maxmemory`, or with `maxmemory 0` the automatic
/// share of the machine's memory (0 when there is none: tiering off).
pub fn effective_limit(server: &Server) -> usize {
    let maxmemory = crate::config_int!(server.config, "maxmemory");
    if maxmemory > 0 {
        return maxmemory as usize;
    }
    let tier = &server.keyspace.tier;
    if tier.is_open() {
        tier.auto_limit.load(Ordering::Relaxed)
    } else {
        0
    }
}

/// The memory `effective_limit` bounds: all that is allocated, less the key index when
/// tiering keeps an explicit `maxmemory` (see the module doc).
pub fn budgeted_memory(server: &Server) -> usize {
    let used = super::used_memory();
    if budgets_values(server) {
        used.saturating_sub(server.keyspace.tier.index_bytes())
    } else {
        used
    }
}

/// Whether the limit budgets values (tiering with an explicit `maxmemory`) rather than all
/// the process holds (Redis's meaning, and the automatic limit's).
pub fn budgets_values(server: &Server) -> bool {
    server.keyspace.tier.is_open() && crate::config_int!(server.config, "maxmemory") > 0
}

/// What spilling and promotion hold to the limit: `budgeted_memory` plus the RSS excess
/// (`track_resident`). A soft target: when nothing more can be spilled, eviction and `-OOM`
/// go by `budgeted_memory` alone, so the allocator's slack never refuses a write.
pub fn spill_pressure(server: &Server) -> usize {
    budgeted_memory(server) + server.keyspace.tier.resident_excess.load(Ordering::Relaxed)
}

/// Anonymous RSS may run this share (in 1/1000s) over the limit plus the key index, plus
/// `RESIDENT_SLACK_BYTES` (stacks, the allocator's own tables), before values pay for it.
/// RSS is read once a tick, and a fast load (150 MB/s of values) ran up to 14 MB past the
/// allowance between readings; at 125 that reached the benchmark's bound (limit + index +
/// 20%) in two runs of four.
const RESIDENT_SLACK_PERMILLE: usize = 100;
const RESIDENT_SLACK_BYTES: usize = 8 << 20;
/// At most this share (in 1/1000s) of the limit is taken from values for RSS.
const RESIDENT_EXCESS_MAX_PERMILLE: usize = 250;

/// The upkeep, every tick: charges anonymous RSS (the binary's pages and mapped files are
/// not the allocator's) beyond what the limit allows (the limit plus the key index, plus
/// slack) to the values' budget. The allocator cannot hand back a page while any value on it
/// lives, and spilling frees values all over: at 2M keys under `maxmemory 200mb`, RSS ran
/// 29% over the count (430 MB against 333 MB). The limit is there to bound RSS, so the
/// excess is spilled for; capped, because spilling gives pages back only as they empty.
/// Measured against the limit, not against the bytes allocated now: spilling lowers those at
/// once and RSS only later, so an allowance that followed them grew the excess with every
/// spill, and the spilling ran on until it reached values in use (after a burst of new keys,
/// most of a hot set: `a_burst_of_new_keys_does_not_push_the_hot_set_out`).
/// Not under the simulator's gauge (RSS would not replay).
pub fn track_resident(server: &Server) {
    let excess = if budgets_values(server) && !super::alloc::gauge_active() {
        let limit = effective_limit(server);
        let bound = limit + server.keyspace.tier.index_bytes();
        let allowed = bound + bound / 1000 * RESIDENT_SLACK_PERMILLE + RESIDENT_SLACK_BYTES;
        let cap = limit / 1000 * RESIDENT_EXCESS_MAX_PERMILLE;
        (super::alloc::resident_anonymous_bytes() as usize)
            .saturating_sub(allowed)
            .min(cap)
    } else {
        0
    };
    server
        .keyspace
        .tier
        .resident_excess
        .store(excess, Ordering::Relaxed);
}

/// Successive shards whose samples held nothing as cold as a new key before values in use
/// may go: keys are spread evenly over the shards, so 32 in a row say as much as all 256
/// would, at an eighth of the cost (each is locked and sampled). Whether anything at all can
/// go still takes every shard (a few keys sit in a few shards).
const DRY_ROUND_SHARDS: usize = if SHARDS < 32 { SHARDS } else { 32 };

/// Spills if memory is over the limit (loading, the cron); true when under it afterwards.
pub fn relieve_if_over(server: &Server) -> bool {
    !over_limit(server) || relieve(server, effective_limit(server))
}

/// Whether memory is over the limit (spilling and eviction have work to do).
pub fn over_limit(server: &Server) -> bool {
    let limit = effective_limit(server);
    limit != 0 && spill_pressure(server) > limit
}

/// Spills until memory is at most `limit`, or a call's worth of values went; false when
/// nothing more could go or the disk tier refused (the eviction policy applies then).
pub fn relieve(server: &Server, limit: usize) -> bool {
    let tier = &*server.keyspace.tier;
    if !tier.is_open() {
        return false;
    }
    let mut spilled = 0;
    let mut dry_shards = 0;
    // Once a round found nothing as cold as a new key, the rounds after it do not look
    // again first: a RAM full of values in use (every key read) would pay for a fruitless
    // round over every shard on every call.
    let mut warm_too = tier.none_as_cold_as_new.load(Ordering::Relaxed);
    let mut retries = 0;
    let mut rng = crate::util::random();
    let mut shard = rng.gen_range(0..SHARDS);
    let outcome = loop {
        if spill_pressure(server) <= limit {
            break true;
        }
        // Enough work for one call: the command goes ahead and the next one continues.
        if spilled >= SPILLS_PER_CALL_MAX {
            break true;
        }
        // Only a round over every shard proves nothing at all can go.
        if dry_shards >= if warm_too { SHARDS } else { DRY_ROUND_SHARDS } {
            if warm_too {
                break false;
            }
            // Nothing as cold as a new key in any shard's sample: values in use go now.
            warm_too = true;
            tier.none_as_cold_as_new.store(true, Ordering::Relaxed);
            dry_shards = 0;
        }
        match spill_from_shard(server, tier, shard, warm_too) {
            Ok(0) => dry_shards += 1,
            Ok(count) => {
                dry_shards = 0;
                spilled += count;
            }
            // The tail may be at its bound, filled by spills on other threads while one flush
            // runs: write it out (no lock held here: the writer waits, as for a slow disk) and
            // try again. A failing disk fails the flush; a full tier fails every retry.
            Err(())
                if retries < SPILL_RETRIES_MAX
                    && tier.store().is_some_and(|store| store.flush().is_ok()) =>
            {
                retries += 1;
                continue;
            }
            Err(()) => break false,
        }
        shard = (shard + 1) % SHARDS;
        // The tail is written with no shard held.
        tier.flush_if_needed();
    };
    tier.flush_if_needed();
    outcome
}

/// Samples one shard and spills its coldest values; how many, or Err when the tier refused.
/// Unless `warm_too`, only values as cold as a new key (looking a few samples further for
/// one): a sample without one spills nothing.
fn spill_from_shard(
    server: &Server,
    tier: &Tier,
    shard: usize,
    warm_too: bool,
) -> Result<usize, ()> {
    let samples =
        (crate::config_int!(server.config, "maxmemory-samples").clamp(1, 64) as usize) * 2;
    let min_bytes = tier.min_value_bytes.load(Ordering::Relaxed);
    let now_ms = server.clock.now_ms();
    let mode = server.keyspace.access_mode();
    let mut ks = server.keyspace.lock_shard(shard, now_ms);
    let mut spilled = 0;
    for db in 0..server.keyspace.databases() {
        let Some(slice) = ks.slices(db).next() else {
            continue;
        };
        if slice.keys.is_empty() {
            continue;
        }
        // First pass: the heats of the next `samples` values still in RAM along the sweep,
        // and on until one is as cold as a new key (up to `COLD_SEARCH_FACTOR` times as many
        // values): what is read stays in RAM while something written and never read can go
        // instead, and a RAM full of values in use costs a few times the walk, not more.
        let start = slice.spill_cursor;
        let mut heats: SmallVec<[u32; 128]> = SmallVec::new();
        let mut position = start;
        let mut walked = 0;
        let mut found_cold = false;
        let wanted = |heats: usize, found_cold: bool| {
            heats < samples || (!found_cold && !warm_too && heats < samples * COLD_SEARCH_FACTOR)
        };
        while wanted(heats.len(), found_cold) && walked < samples * BUCKETS_PER_SAMPLE {
            position = slice.keys.sweep_mut(position, 1, |_, entry| {
                if worth_spilling(&entry.value, min_bytes) {
                    let heat = heat(entry, now_ms, mode);
                    found_cold |= as_cold_as_new(heat, mode);
                    heats.push(heat);
                }
                true
            });
            walked += 1;
            if position == 0 {
                break;
            }
        }
        slice.spill_cursor = position;
        // Without a value as cold as a new key, what is in use waits for a round in which no
        // shard has one (`relieve`).
        if heats.is_empty() || (!found_cold && !warm_too) {
            continue;
        }
        if found_cold && warm_too {
            // New keys are being written again: the next rounds look for them first.
            tier.none_as_cold_as_new.store(false, Ordering::Relaxed);
        }
        heats.sort_unstable();
        // The values as cold as the coldest: all of them when that is no heat at all
        // (written, never read: nothing is colder, and the walk that found them is the
        // expensive part), else a few. Never one hotter: taking the coldest few whatever their
        // heat spilled values in use whenever a sample held fewer cold ones than that.
        let threshold = heats[0];
        let tied = heats.iter().take_while(|&&heat| heat == threshold).count();
        let take = if threshold == 0 {
            tied
        } else {
            tied.min(SPILLS_PER_SHARD_MAX)
        };
        // Second pass over the same buckets (still in cache, the table unchanged under the
        // lock): spill the chosen ones in place, with no lookup by key.
        let mut taken = 0;
        let mut took_in_use = false;
        let mut refused = None;
        slice.keys.sweep_mut(start, walked, |key, entry| {
            if worth_spilling(&entry.value, min_bytes) && heat(entry, now_ms, mode) <= threshold {
                match tier.spill(db, key.as_slice(), &entry.value) {
                    Ok(cold) => {
                        took_in_use |= in_use(entry, now_ms, mode);
                        entry.value = Value::Cold(cold);
                        taken += 1;
                    }
                    Err(err) => refused = Some(err),
                }
            }
            taken < take && refused.is_none()
        });
        spilled += taken;
        if taken > 0 {
            tier.spilling_in_use.store(took_in_use, Ordering::Relaxed);
        }
        if let Some(err) = refused {
            tracing::debug!("tiering: spill refused: {err}");
            return Err(());
        }
    }
    Ok(spilled)
}

/// Spills one named key now (DEBUG SPILL, tests); false if it is absent or already cold.
pub fn spill_key(
    tier: &Tier,
    ks: &mut crate::keyspace::Locked<'_>,
    db: usize,
    key: &[u8],
) -> Result<bool, String> {
    let Some(entry) = ks.peek_meta(db, key) else {
        return Ok(false);
    };
    if entry.value.is_cold() {
        return Ok(false);
    }
    let cold = tier
        .spill(db, key, &entry.value)
        .map_err(|err| err.to_string())?;
    entry.value = Value::Cold(cold);
    Ok(true)
}
