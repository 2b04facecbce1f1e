//! Memory accounting, the base of tiering: how many bytes the process has allocated.
//!
//! The spill/promote policy and segment files arrive with the tiering work; what exists now is
//! the honest number they will steer by (INFO's `used_memory`) and Redis's eviction policies
//! under `maxmemory` (`evict`), whose sampling the spilling will share.

pub mod alloc;
pub mod evict;

pub use alloc::{used_memory, CountingAllocator};
