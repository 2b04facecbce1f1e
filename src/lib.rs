//! Strata: a Redis-compatible data store whose dataset may be larger than its memory.
//!
//! The map of the code is `../shared/DESIGN.md`; each module's doc says what it owns.

pub mod command;
pub mod config;
pub mod error;
pub mod io;
pub mod keyspace;
pub mod long_double;
pub mod persist;
pub mod protocol;
pub mod repl;
pub mod server;
pub mod sync;
#[cfg(test)]
pub mod testing;
pub mod tier;
pub mod types;
pub mod util;

/// The Redis version Strata answers as (INFO `redis_version`, HELLO): clients pick features
/// by it, and Strata implements Redis 7.0's.
pub const REDIS_VERSION: &str = "7.0.15";
