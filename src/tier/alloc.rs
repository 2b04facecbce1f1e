//! A global allocator wrapper that counts live bytes, as Redis's zmalloc does.
//!
//! The binary installs it around mimalloc; `used_memory()` is then what INFO reports and what
//! tiering will keep under `maxmemory`. Without it installed (unit tests), the count is 0.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

/// Bytes currently allocated through the counting allocator.
pub fn used_memory() -> usize {
    ALLOCATED.load(Ordering::Relaxed).max(0) as usize
}

pub struct CountingAllocator<A>(pub A);

// SAFETY: every method forwards to the inner allocator with the caller's arguments unchanged;
// the counter is only arithmetic on the layout sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received; the caller upholds `GlobalAlloc::alloc`'s contract.
        let pointer = unsafe { self.0.alloc(layout) };
        if !pointer.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received; `pointer` came from this allocator with `layout`.
        unsafe { self.0.dealloc(pointer, layout) };
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let pointer = unsafe { self.0.alloc_zeroed(layout) };
        if !pointer.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received; the caller upholds `GlobalAlloc::realloc`'s contract.
        let moved = unsafe { self.0.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            ALLOCATED.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        moved
    }
}
