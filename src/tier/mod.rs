//! Memory accounting, eviction and the memory tier.
//!
//! `alloc` counts what the process has allocated (INFO's `used_memory`, what `maxmemory`
//! bounds); `evict` applies Redis's eviction policies under `maxmemory`. The memory tier:
//! `cold` is the pointer a spilled value leaves behind, `segment` the record format, `store`
//! the segment files, `memory` one value out and back, `spill` which values go and when,
//! `compact` the background rewriting of segments whose records died.

pub mod alloc;
pub mod cold;
pub mod compact;
pub mod evict;
pub mod memory;
pub mod segment;
pub mod spill;
pub mod store;

pub use alloc::{used_memory, CountingAllocator};
pub use cold::ColdRef;
