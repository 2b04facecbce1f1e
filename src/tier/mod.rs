//! Memory accounting, eviction and the memory tier.
//!
//! `alloc` counts what the process has allocated (INFO's `used_memory`, what `maxmemory`
//! bounds); `evict` applies Redis's eviction policies under `maxmemory`; `cold` is the pointer a
//! spilled value leaves behind.

pub mod alloc;
pub mod cold;
pub mod evict;
pub mod segment;
pub mod store;

pub use alloc::{used_memory, CountingAllocator};
pub use cold::ColdRef;
