//! The active expiry cycle: Redis's `activeExpireCycle`, one shard at a time.
//!
//! Lazy expiry alone leaves keys that are never touched again in memory forever. Each cron
//! tick walks every shard's `expires` dicts from where the last tick stopped, deleting what is
//! due, and keeps going on a database while more than `10% - effort` of what it samples is
//! expired, within a time budget. Deletions are propagated as DEL, and raise the `expired`
//! keyspace notification, while the shard is locked.

use crate::server::Server;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::shards::SHARDS;

/// Keys examined per database per round (ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).
const KEYS_PER_ROUND: usize = 20;
/// Buckets the scan may visit per round, so empty stretches do not run long.
const BUCKETS_PER_ROUND: usize = 400;
/// Rounds per database per shard per tick; the budget usually stops it sooner.
const ROUNDS_MAX: usize = 1000;

/// Runs one cycle over every shard within `budget`. Returns the number of keys deleted.
pub fn active_cycle(server: &Server, budget: Duration, effort: u64) -> u64 {
    let started = Instant::now();
    let keys_per_round = KEYS_PER_ROUND + KEYS_PER_ROUND / 4 * (effort as usize - 1);
    let acceptable_stale_percent = 10u64.saturating_sub(effort - 1);
    let mut deleted_total = 0u64;
    for shard_index in 0..SHARDS {
        if started.elapsed() > budget {
            break;
        }
        let now_ms = server.clock.now_ms();
        let mut locked = server.keyspace.lock_shard(shard_index, now_ms);
        let mut effects: Vec<(usize, Vec<Bytes>)> = Vec::new();
        let databases = server.keyspace.databases();
        for db in 0..databases {
            for _ in 0..ROUNDS_MAX {
                let slice = locked.slices(db).next().expect("one shard is locked");
                if slice.expires.is_empty() {
                    break;
                }
                let mut sampled = 0usize;
                let mut due = Vec::new();
                let mut cursor = slice.expire_cursor;
                for _ in 0..BUCKETS_PER_ROUND {
                    cursor = slice.expires.scan(cursor, |key, when| {
                        sampled += 1;
                        if *when < now_ms {
                            due.push(key.clone());
                        }
                    });
                    if cursor == 0 || sampled >= keys_per_round {
                        break;
                    }
                }
                slice.expire_cursor = cursor;
                for key in &due {
                    locked.db(db, key).remove(key);
                    // An expired key counts as modified for WATCH, as Redis's signalModifiedKey.
                    locked.touch_watched(db, key);
                    locked.notify(super::notify::EXPIRED, "expired", db, key);
                    effects.push((
                        db,
                        vec![Bytes::from_static(b"DEL"), Bytes::copy_from_slice(key)],
                    ));
                }
                deleted_total += due.len() as u64;
                let stale_percent = if sampled == 0 {
                    0
                } else {
                    due.len() as u64 * 100 / sampled as u64
                };
                if stale_percent <= acceptable_stale_percent || started.elapsed() > budget {
                    break;
                }
            }
        }
        if !effects.is_empty() {
            server
                .keyspace
                .stats
                .expired_keys
                .fetch_add(effects.len() as u64, Ordering::Relaxed);
            server.log.append(&effects);
        }
        if !locked.events.is_empty() {
            server
                .pubsub
                .notify(server, &std::mem::take(&mut locked.events));
        }
        drop(locked);
    }
    server
        .keyspace
        .stats
        .expire_cycle_time_used_ms
        .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    deleted_total
}
