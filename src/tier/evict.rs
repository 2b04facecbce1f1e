//! `maxmemory` with Redis's eviction policies, for cache use (Redis's `performEvictions`).
//!
//! Before a command runs, while the memory in use is over `maxmemory`, keys are evicted by
//! the configured `maxmemory-policy`: `allkeys-*` pick among every key, `volatile-*` among
//! keys with a TTL; `lru` by idle time, `lfu` by the decayed access counter, `ttl` by the
//! nearest expiry, `random` at random. Like Redis, candidates come from sampling
//! (`maxmemory-samples` keys at a time), not from a global order. An evicted key is deleted,
//! counted in `evicted_keys`, raised as the `evicted` keyspace event and propagated as `DEL`.
//!
//! When nothing more can be evicted (`noeviction`, or no key with a TTL for `volatile-*`)
//! and memory is still over the limit, commands that may grow memory (`denyoom`) are refused
//! with Redis's `-OOM`. Eviction locks one shard at a time and never while a command holds
//! its locks. Tiering (spilling cold values to disk instead of dropping them) builds on the
//! same sampling.

use crate::keyspace::entry::AccessMode;
use crate::keyspace::{notify, shards::SHARDS};
use crate::server::state::Server;
use bytes::Bytes;
use rand::Rng;
use std::sync::atomic::Ordering;

/// Redis's OOM refusal.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
/// Keys evicted per call at most, so one command never spends unbounded time evicting
/// (Redis bounds it by time with `maxmemory-eviction-tenacity`).
const EVICTIONS_PER_CALL_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    AllKeys,
    Volatile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Lru,
    Lfu,
    Ttl,
    Random,
}

fn policy(word: &str) -> Option<(Pool, Order)> {
    Some(match word {
        "allkeys-lru" => (Pool::AllKeys, Order::Lru),
        "allkeys-lfu" => (Pool::AllKeys, Order::Lfu),
        "allkeys-random" => (Pool::AllKeys, Order::Random),
        "volatile-lru" => (Pool::Volatile, Order::Lru),
        "volatile-lfu" => (Pool::Volatile, Order::Lfu),
        "volatile-random" => (Pool::Volatile, Order::Random),
        "volatile-ttl" => (Pool::Volatile, Order::Ttl),
        _ => return None,
    })
}

/// Evicts until memory is under `maxmemory` (or nothing more can go); Err with Redis's OOM
/// text when a `denyoom` command must be refused.
pub fn enforce(server: &Server, denyoom: bool) -> Result<(), &'static str> {
    if !super::spill::over_limit(server) {
        return Ok(());
    }
    let limit = super::spill::effective_limit(server);
    // Tiering: spill instead of deleting or refusing; the policy applies only when the disk
    // tier cannot take more.
    if super::spill::relieve(server, limit) {
        return Ok(());
    }
    // With `maxmemory 0`, as in Redis, nothing is ever evicted or refused.
    if crate::config_int!(server.config, "maxmemory") <= 0 {
        return Ok(());
    }
    let chosen = policy(server.config.word("maxmemory-policy"));
    if let Some((pool, order)) = chosen {
        for _ in 0..EVICTIONS_PER_CALL_MAX {
            if super::spill::budgeted_memory(server) <= limit {
                return Ok(());
            }
            if !evict_one(server, pool, order) {
                break;
            }
        }
    }
    if denyoom && super::spill::budgeted_memory(server) > limit {
        return Err(OOM);
    }
    Ok(())
}

/// Samples keys and evicts the best candidate; false when there is none.
fn evict_one(server: &Server, pool: Pool, order: Order) -> bool {
    let samples = server.config.int("maxmemory-samples").clamp(1, 64) as usize;
    let databases = server.keyspace.databases();
    let now_ms = server.clock.now_ms();
    let mut rng = crate::util::random();
    let decay = match server.keyspace.access_mode() {
        AccessMode::Lfu { decay_minutes, .. } => decay_minutes,
        AccessMode::Lru => 1,
    };
    // The best candidate: (score, db, shard, key); a higher score goes first.
    let mut best: Option<(u64, usize, usize, Vec<u8>)> = None;
    // Look in a few shards, each from a random starting point, so one empty shard does not
    // end the search.
    let start = rng.gen_range(0..SHARDS);
    let mut shards_seen = 0;
    for step in 0..SHARDS {
        if best.is_some() && shards_seen >= 4 {
            break;
        }
        let shard = (start + step) % SHARDS;
        let mut ks = server.keyspace.lock_shard(shard, now_ms);
        let mut found_here = false;
        for db in 0..databases {
            let Some(slice) = ks.slices(db).next() else {
                continue;
            };
            let candidates = match pool {
                Pool::AllKeys => slice.keys.len(),
                Pool::Volatile => slice.expires.len(),
            };
            if candidates == 0 {
                continue;
            }
            found_here = true;
            for _ in 0..samples {
                let picked = match pool {
                    Pool::AllKeys => slice.keys.random(&mut rng).map(|(key, entry)| {
                        (
                            key.to_vec(),
                            entry.idle_seconds(now_ms),
                            entry.lfu_counter(now_ms, decay),
                        )
                    }),
                    Pool::Volatile => slice.expires.random(&mut rng).and_then(|(key, _)| {
                        slice.keys.get(key.as_slice()).map(|entry| {
                            (
                                key.to_vec(),
                                entry.idle_seconds(now_ms),
                                entry.lfu_counter(now_ms, decay),
                            )
                        })
                    }),
                };
                let Some((key, idle, counter)) = picked else {
                    continue;
                };
                let score = match order {
                    Order::Lru => idle,
                    Order::Lfu => 255u64.saturating_sub(u64::from(counter)),
                    Order::Ttl => {
                        let when = slice
                            .expires
                            .get(key.as_slice())
                            .copied()
                            .unwrap_or(u64::MAX);
                        u64::MAX - when
                    }
                    Order::Random => rng.gen(),
                };
                if best.as_ref().is_none_or(|(top, ..)| score > *top) {
                    best = Some((score, db, shard, key));
                }
            }
        }
        if found_here {
            shards_seen += 1;
        }
    }
    let Some((_, db, shard, key)) = best else {
        return false;
    };
    let mut ks = server.keyspace.lock_shard(shard, now_ms);
    let deleted = ks.delete(db, &key);
    // A sampled key past its time was reclaimed as expired instead: its DEL is propagated
    // as the executor propagates expiries (the AOF and replicas must see it go).
    let mut effects: Vec<(usize, Vec<Bytes>)> = (ks.expired.drain(..))
        .map(|(db, key)| {
            (
                db,
                vec![Bytes::from_static(b"DEL"), Bytes::from(key.into_vec())],
            )
        })
        .collect();
    if deleted {
        ks.notify(notify::EVICTED, "evicted", db, &key);
        effects.push((db, vec![Bytes::from_static(b"DEL"), Bytes::from(key)]));
    }
    // Propagated while the shard is held, so the log's order is the keyspace's.
    if !effects.is_empty() {
        server.log.append(&effects);
    }
    let events = std::mem::take(&mut ks.events);
    let ready = std::mem::take(&mut ks.ready);
    drop(ks);
    if !deleted {
        // Gone meanwhile (or expired): memory may have dropped anyway; try again.
        if !events.is_empty() {
            server.pubsub.notify(server, &events);
        }
        return true;
    }
    server
        .keyspace
        .stats
        .evicted_keys
        .fetch_add(1, Ordering::Relaxed);
    if !events.is_empty() {
        server.pubsub.notify(server, &events);
    }
    if !ready.is_empty() {
        crate::server::blocking::serve_ready(server, ready);
    }
    true
}
