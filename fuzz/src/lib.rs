//! Shared by the fuzz targets: the `command_sequence` target's reference model
//! ([`command_sequence`]), and an allocator that records the peak of live bytes, so every
//! target can check that a decoder allocates no more than a bound proportional to its input.
//!
//! Each target is a thin `fuzz_target!` around one entry point of the strata library (which
//! must never panic) wrapped in [`bounded`]. The same entry points run over the checked-in
//! corpus in the main crate's `tests/fuzz_corpus.rs`, without this allocator.

pub mod command_sequence;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes any run may use whatever its input: buffers reserved up front (an RDB writer reserves
/// 64 KiB), a default configuration, the test's own bookkeeping.
pub const FIXED_BYTES_MAX: usize = 1 << 20;

/// Bytes a run may use per input byte. LZF lets one byte stand for 88, and a decoded element
/// (a list node, a hash table slot) costs tens of bytes more than its encoding; a decoder that
/// allocates from a length it read, rather than from bytes it saw, goes far past this.
pub const BYTES_PER_INPUT_BYTE_MAX: usize = 4096;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak.
pub struct PeakAllocator;

fn grow(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrink(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counters are only arithmetic on the layout sizes.
unsafe impl GlobalAlloc for PeakAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received; the caller upholds `GlobalAlloc::alloc`'s contract.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grow(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grow(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received; `pointer` came from this allocator with `layout`.
        unsafe { System.dealloc(pointer, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received; the caller upholds `GlobalAlloc::realloc`'s contract.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            // Count the new block before releasing the old one: during the move both exist.
            grow(new_size);
            shrink(layout.size());
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: PeakAllocator = PeakAllocator;

/// Runs `entry` on `input` and fails (which libFuzzer reports as a crash) when the peak of
/// live bytes during the run exceeded the bound for the input's length.
pub fn bounded(input: &[u8], entry: fn(&[u8])) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    entry(input);
    let used = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let bound = FIXED_BYTES_MAX + BYTES_PER_INPUT_BYTE_MAX * input.len();
    assert!(
        used <= bound,
        "{used} bytes allocated at the peak for a {}-byte input (bound {bound})",
        input.len()
    );
}
