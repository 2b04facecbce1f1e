//! The server cron: what Redis's `serverCron` does that Strata needs, `hz` times a second.
//!
//! Today: the active expiry cycle, dict upkeep (`activerehashing`), and closing idle clients
//! past `timeout`.

use super::state::Server;
use crate::keyspace::expire;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Buckets moved per table per tick: about what Redis moves in its 1 ms of active rehashing.
const REHASH_STEPS_PER_TICK: usize = 1000;

pub async fn run(server: Arc<Server>) {
    loop {
        let hz = server.config.int("hz").clamp(1, 500) as u64;
        tokio::time::sleep(Duration::from_millis(1000 / hz)).await;
        if server.shutdown_requested().is_some() {
            // Stopping: nothing more to do (a shutdown whose save fails is withdrawn).
            continue;
        }
        if server.active_expire_enabled.load(Ordering::Relaxed) {
            let effort = server.config.int("active-expire-effort").clamp(1, 10) as u64;
            // Redis spends up to 25% of a cron period (plus effort) expiring keys.
            let budget = Duration::from_micros(1_000_000 / hz * (25 + 2 * (effort - 1)) / 100);
            expire::active_cycle(&server, budget, effort);
        }
        if server.config.bool("activerehashing") {
            server.keyspace.maintain(REHASH_STEPS_PER_TICK);
        }
        close_idle_clients(&server);
        persistence_upkeep(&server).await;
    }
}

/// Turns the AOF on or off after CONFIG SET, and starts the automatic rewrite when due. Both
/// hold the whole keyspace, so they run on a blocking thread, not on the cron's worker.
async fn persistence_upkeep(server: &Arc<Server>) {
    super::persistence::save_upkeep(server);
    if server.config.bool("appendonly") != server.aof.is_enabled() {
        let owner = server.clone();
        let _ = tokio::task::spawn_blocking(move || {
            super::persistence::apply_appendonly(&owner);
        })
        .await;
        return;
    }
    let now_ms = server.clock.now_ms();
    // After a write or fsync error the AOF refuses writes until everything in memory is in
    // fresh files: try a rewrite once a second (Redis retries its writes as often).
    let recover = server.aof.is_enabled()
        && server.aof.write_error().is_some()
        && now_ms
            >= server.aof.stats().last_recovery_ms.load(Ordering::Relaxed) + RECOVERY_INTERVAL_MS;
    let grown = super::persistence::rewrite_due(server);
    if !recover && !grown {
        return;
    }
    if recover {
        server
            .aof
            .stats()
            .last_recovery_ms
            .store(now_ms, Ordering::Relaxed);
        tracing::warn!("Rewriting the AOF to recover from the last write error");
    } else {
        tracing::info!(
            "Starting automatic rewriting of AOF on {}% growth",
            server.config.int("auto-aof-rewrite-percentage")
        );
    }
    // In the background: the cron goes on (a rewrite already running makes this a no-op).
    let _ = super::persistence::start_background_rewrite(server);
}

/// How often a failed AOF is retried.
const RECOVERY_INTERVAL_MS: u64 = 1_000;

fn close_idle_clients(server: &Server) {
    let timeout_s = server.config.int("timeout");
    if timeout_s <= 0 {
        return;
    }
    let now_ms = server.clock.now_ms();
    for client in server.clients.all() {
        let info = client.info.lock();
        let idle_ms = now_ms.saturating_sub(info.last_interaction_ms);
        if !info.monitor && idle_ms > timeout_s as u64 * 1000 {
            drop(info);
            client.kill();
        }
    }
}
