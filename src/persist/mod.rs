//! Persistence: the bytes Strata writes to disk and to other servers.
//!
//! Owns the RDB value codec (`rdb`), which is the ONE serialization of a value: RDB files,
//! DUMP/RESTORE payloads, the AOF preamble and the tier's cold records all use it, so a
//! value written by any of them reads back through the same decoder. Only `persist` and
//! `tier` touch files.

pub mod rdb;

pub use rdb::fuzz_restore_payload;
