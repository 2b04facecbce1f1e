//! The seam through which all time and disk I/O pass.
//!
//! Production uses the system clock and std files; the simulator (`sim/`) implements the same
//! traits with a seeded clock and a disk that loses unsynced writes, tears writes at sector
//! boundaries, fails fsync and fills up. Nothing outside this module calls `SystemTime::now`
//! or `std::fs` for data: keyspace time comes from [`Clock`], persistence files from
//! [`FileSystem`].

pub mod fs;

pub use fs::{FileBytes, FileSystem, SegmentFile, StdFileSystem, WritableFile};

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time as the keyspace sees it (expiry, LRU, INFO).
pub trait Clock: Send + Sync {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> u64;
    /// Unix time in microseconds.
    fn now_us(&self) -> u64 {
        self.now_ms() * 1000
    }
    /// Waits (background pacing: compaction keeps to its rate). A simulated clock returns at
    /// once: its time moves only when the simulation moves it.
    fn sleep(&self, duration: std::time::Duration) {
        std::thread::sleep(duration);
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0)
    }

    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_micros() as u64)
            .unwrap_or(0)
    }
}
