//! Keyspace notifications (`notify-keyspace-events`): the event classes and the events a
//! command raised.
//!
//! Commands record events through [`crate::keyspace::Locked::notify`] while they hold their
//! shards; the recording is skipped entirely (one atomic load) when the class is not enabled,
//! which is the default. The executor hands the recorded events to the pub/sub hub after the
//! command ran, so delivery never happens under a shard lock. The class bits are the ones
//! `config.rs` parses from and renders to Redis's flag letters.

use crate::types::CompactBytes;

/// `K`: publish on `__keyspace@<db>__:<key>` with the event as the message.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>` with the key as the message.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key expired (lazily or by the active cycle).
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key was evicted for `maxmemory`.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: a key was looked up and missed (not part of `A`).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (Strata has no modules; accepted for compatibility).
pub const MODULE: u32 = 1 << 12;
/// `n`: a new key was created (not part of `A`).
pub const NEW: u32 = 1 << 13;
/// `A`: every class but `m` and `n`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// One event raised by a command: published after the command, in the order raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub class: u32,
    /// Redis's event name (`set`, `lpush`, `expired`, ...).
    pub name: &'static str,
    pub db: usize,
    pub key: CompactBytes,
}

/// Whether an event of `class` is published at all under the configured `flags`.
pub fn enabled(flags: u32, class: u32) -> bool {
    flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_needs_a_channel_kind_too() {
        assert!(!enabled(ALL, STRING));
        assert!(enabled(ALL | KEYEVENT, STRING));
        assert!(!enabled(KEYSPACE | LIST, STRING));
        assert_eq!(ALL & (NEW | KEY_MISS), 0);
    }
}
