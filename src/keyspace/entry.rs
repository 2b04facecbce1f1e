//! One key's metadata and value: what a dict node carries besides the key.
//!
//! The expiry time lives in the database's `expires` dict, as in Redis, so keys without a TTL
//! pay nothing for it; a flag bit says whether to look there. The access field is Redis's
//! 24-bit LRU clock, or in LFU mode its 16-bit decay time and 8-bit logarithmic counter.

use crate::types::Value;
use rand::Rng;

/// The key has an entry in the database's `expires` dict.
pub const FLAG_EXPIRES: u32 = 1 << 0;
/// A string last written by APPEND/SETRANGE-style commands: Redis reports `raw` for these.
pub const FLAG_RAW: u32 = 1 << 1;

/// A string made from a float (INCRBYFLOAT): Redis stores it as `embstr` even when it reads
/// as an integer.
pub const FLAG_EMBSTR: u32 = 1 << 2;

/// Written as one of Redis's shared integer objects (0..9999 while sharing is allowed):
/// OBJECT REFCOUNT reports INT_MAX for it until it is overwritten.
pub const FLAG_SHARED: u32 = 1 << 3;
/// The snapshot parity the entry was last saved under (see `keyspace::snapshot`).
pub const FLAG_SNAPSHOT: u32 = 1 << 4;
/// Read since it was last written (set by read lookups, cleared by a write of the whole
/// value): in LRU mode, spilling takes values nobody has read first, so a burst of writes of
/// new keys does not push out what is being read.
pub const FLAG_READ: u32 = 1 << 5;
/// Read again after `FLAG_READ` was set (cleared with it): in LRU mode, what the memory tier
/// counts as in use, so one pass over every key (a scan, a check) does not make each look as
/// much in use as the values read over and over.
pub const FLAG_READ_AGAIN: u32 = 1 << 6;
/// Redis shares the integers below this (OBJ_SHARED_INTEGERS).
pub const SHARED_INTEGERS: i64 = 10_000;
/// OBJECT REFCOUNT of a shared object (OBJ_SHARED_REFCOUNT).
pub const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// Redis's LRU clock: seconds, 24 bits.
pub const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;
/// A new key's LFU counter (LFU_INIT_VAL).
pub const LFU_INIT: u32 = 5;

#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// LRU clock at last access, or LFU `(minutes << 8) | counter`.
    pub access: u32,
    pub flags: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() <= 32);

/// How access times are kept: `maxmemory-policy` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    Lru,
    Lfu { log_factor: u32, decay_minutes: u32 },
}

impl Entry {
    /// Records a read of the value (`FLAG_READ`, and `FLAG_READ_AGAIN` from the second on).
    pub fn mark_read(&mut self) {
        if self.flags & FLAG_READ != 0 {
            self.flags |= FLAG_READ_AGAIN;
        }
        self.flags |= FLAG_READ;
    }

    pub fn new(value: Value, now_ms: u64, mode: AccessMode) -> Entry {
        let access = match mode {
            AccessMode::Lru => lru_clock(now_ms),
            AccessMode::Lfu { .. } => (lfu_minutes(now_ms) << 8) | LFU_INIT,
        };
        Entry {
            value,
            access,
            flags: 0,
        }
    }

    pub fn has_expire(&self) -> bool {
        self.flags & FLAG_EXPIRES != 0
    }

    /// Records an access, as Redis's `updateLFU`/LRU update on lookup.
    pub fn touch(&mut self, now_ms: u64, mode: AccessMode) {
        match mode {
            AccessMode::Lru => self.access = lru_clock(now_ms),
            AccessMode::Lfu {
                log_factor,
                decay_minutes,
            } => {
                let counter = self.lfu_counter(now_ms, decay_minutes);
                let counter = lfu_log_increment(counter, log_factor);
                self.access = (lfu_minutes(now_ms) << 8) | counter;
            }
        }
    }

    /// Seconds since the last access (OBJECT IDLETIME), in LRU mode.
    pub fn idle_seconds(&self, now_ms: u64) -> u64 {
        let now = lru_clock(now_ms);
        let then = self.access & LRU_CLOCK_MAX;
        if now >= then {
            (now - then) as u64
        } else {
            (now + LRU_CLOCK_MAX - then) as u64
        }
    }

    /// The LFU counter after decay (OBJECT FREQ), in LFU mode.
    pub fn lfu_counter(&self, now_ms: u64, decay_minutes: u32) -> u32 {
        let then = self.access >> 8;
        let counter = self.access & 0xff;
        let now = lfu_minutes(now_ms);
        let elapsed = if now >= then {
            now - then
        } else {
            65535 - then + now
        };
        let periods = elapsed.checked_div(decay_minutes).unwrap_or(0);
        counter.saturating_sub(periods)
    }
}

pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) as u32) & LRU_CLOCK_MAX
}

fn lfu_minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xffff) as u32
}

/// Redis's `LFULogIncr`: the counter grows logarithmically, saturating at 255.
fn lfu_log_increment(counter: u32, log_factor: u32) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let random: f64 = crate::util::random().gen();
    let base = counter.saturating_sub(LFU_INIT) as f64;
    let probability = 1.0 / (base * log_factor as f64 + 1.0);
    if random < probability {
        counter + 1
    } else {
        counter
    }
}
