//! The keyspace: databases split into shards by key hash, each shard behind its own lock.
//!
//! Only this module mutates data. A command gets a [`Locked`] view holding the locks of the
//! shards its keys live in (taken in shard order, so no two commands deadlock), and every read
//! and write goes through it: lazy expiry, access tracking and the dirty counter live in one
//! place. The executor reads a command's cold values before it locks for it (the keys it
//! names, SORT's pattern keys, a served waiter's); a value it could not read ahead (a key that
//! changed in between, counted in `tiering_locked_reads`) is the only disk read made while a
//! `Locked` is held.

pub mod db;
pub mod dict;
pub mod entry;
pub mod expire;
pub mod locked;
pub mod notify;
pub mod shards;
pub mod snapshot;

pub use db::Db;
pub use dict::Dict;
pub use entry::{AccessMode, Entry};
pub use locked::Locked;
pub use shards::{Keyspace, Shard, Stats};
