//! Persistence in Redis's own formats: the bytes Strata writes to disk and to other servers.
//!
//! - `rdb`: the RDB value codec, the ONE serialization of a value: RDB files, DUMP/RESTORE
//!   payloads, the AOF preamble and the tier's cold records all use it, so a value written
//!   by any of them reads back through the same decoder.
//! - `aof`: the multi-part AOF (manifest, writer with its fsync policies, loader, rewrite).
//!
//! Every byte goes through [`crate::io::FileSystem`], so the simulator can crash, tear and
//! fail it, and the same code runs in production and under simulation.

pub mod aof;
pub mod rdb;

pub use rdb::fuzz_restore_payload;
