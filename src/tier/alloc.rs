//! A global allocator wrapper that counts live bytes, as Redis's zmalloc does.
//!
//! The binary installs it around mimalloc; `used_memory()` is then what INFO reports and what
//! tiering will keep under `maxmemory`. Without it installed (unit tests), the count is 0.
//!
//! Every command allocates, on every worker thread, so one shared counter would bounce its
//! cache line between cores on each allocation. Each thread keeps a local delta and folds it
//! into the shared total once it passes `FLUSH_BYTES`: the total is exact to within that much
//! per thread.
//!
//! `resident_bytes` is the other side of the same question: what the system sees (RSS), which
//! the allocator's page reuse keeps above the count.
//!
//! The simulator replaces the figure on its thread with its own (`set_thread_gauge`): the
//! allocator's count covers the whole process (the simulated disk, other runs' threads), so
//! it would neither mean the server's memory nor replay the same from a seed.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

/// A thread's unflushed delta is folded into `ALLOCATED` once it reaches this size.
const FLUSH_BYTES: isize = 64 * 1024;

thread_local! {
    // `const` and destructor-free: safe to touch from inside the allocator.
    static LOCAL_DELTA: Cell<isize> = const { Cell::new(0) };
    // What `used_memory` returns on this thread instead of the count (the simulator's gauge).
    static GAUGE: Cell<Option<fn() -> usize>> = const { Cell::new(None) };
}

/// Makes `used_memory` on the calling thread return `gauge()` (None: the count again).
pub fn set_thread_gauge(gauge: Option<fn() -> usize>) {
    GAUGE.with(|cell| cell.set(gauge));
}

fn account(delta: isize) {
    let flushed = LOCAL_DELTA.try_with(|local| {
        let pending = local.get() + delta;
        if pending.abs() >= FLUSH_BYTES {
            local.set(0);
            pending
        } else {
            local.set(pending);
            0
        }
    });
    match flushed {
        Ok(0) => {}
        Ok(pending) => {
            ALLOCATED.fetch_add(pending, Ordering::Relaxed);
        }
        // The thread is being torn down: count directly.
        Err(_) => {
            ALLOCATED.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

/// Whether the calling thread's figure is a gauge (the simulator's), not the count: then
/// nothing else about the process's memory means anything either (RSS included).
pub fn gauge_active() -> bool {
    GAUGE.with(Cell::get).is_some()
}

/// Resident set size from /proc/self/status (`VmRSS`, in kB), 0 where unavailable.
pub fn resident_bytes() -> u64 {
    proc_kilobytes("/proc/self/status", "VmRSS:")
}

/// The anonymous part of the resident set (`RssAnon`: the heap, stacks; not the binary's
/// pages or mapped files), 0 where unavailable.
pub fn resident_anonymous_bytes() -> u64 {
    proc_kilobytes("/proc/self/status", "RssAnon:")
}

/// A `name: N kB` field of a /proc file, in bytes; 0 where unavailable.
pub fn proc_kilobytes(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|number| number.parse::<u64>().ok())
        })
        .map(|kilobytes| kilobytes * 1024)
        .unwrap_or(0)
}

/// Bytes currently allocated through the counting allocator (or the thread's gauge, if set).
pub fn used_memory() -> usize {
    if let Some(gauge) = GAUGE.with(Cell::get) {
        return gauge();
    }
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
            account(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received; `pointer` came from this allocator with `layout`.
        unsafe { self.0.dealloc(pointer, layout) };
        account(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let pointer = unsafe { self.0.alloc_zeroed(layout) };
        if !pointer.is_null() {
            account(layout.size() as isize);
        }
        pointer
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received; the caller upholds `GlobalAlloc::realloc`'s contract.
        let moved = unsafe { self.0.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        moved
    }
}
