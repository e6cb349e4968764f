//! Dropping a counter never calls the allocator (issue 12: no `free()` per counter), neither
//! for a counter whose header a compaction moved (its drop first fixes its state word up
//! through the forward table, which only a compaction gives back), nor when the drop spills a
//! full magazine to the pool (which used a fresh `Vec` per spill, two calls every 16th drop,
//! until the pool kept its working space). A counting global allocator, on for this test's
//! thread only while the counters are dropped.
#![cfg(not(loom))]

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CALLS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Counting on this thread (const, no destructor: usable inside the allocator).
    static ON: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if ON.try_with(Cell::get).unwrap_or(false) {
        CALLS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to `System` unchanged; only counts them.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Drops every counter of `counters` with counting on; the allocator calls they made.
fn calls_dropping(counters: Vec<PercpuCounter>) -> usize {
    // Dropped in place: the vector's buffer is freed after counting stops.
    let mut counters = std::mem::ManuallyDrop::new(counters);
    let before = CALLS.load(Ordering::Relaxed);
    ON.with(|on| on.set(true));
    for c in counters.iter_mut() {
        // SAFETY: each element is dropped once here, and the vector is used again only to
        // free its buffer, with a length of 0.
        unsafe { std::ptr::drop_in_place(c) };
    }
    ON.with(|on| on.set(false));
    let calls = CALLS.load(Ordering::Relaxed) - before;
    // SAFETY: every element was dropped above.
    unsafe { counters.set_len(0) };
    // SAFETY: dropped once, and not used after.
    unsafe { std::mem::ManuallyDrop::drop(&mut counters) };
    calls
}

#[test]
fn dropping_counters_moved_or_not_calls_no_allocator() {
    // 4 CPUs: below the pool's pagemap probe; 16: with it (its mask is working space too).
    for ncpu in [4, 16] {
        let domain = Domain::builder()
            .ncpu(ncpu)
            .mode(CounterMode::PerCpu)
            .build()
            .unwrap();
        let all = PercpuCounter::new_many_in(domain, 60_000, 0).unwrap();
        for c in &all {
            c.inc();
        }
        let mut kept = Vec::with_capacity(all.len() / 10 + 1);
        let mut dropped = Vec::with_capacity(all.len());
        for (i, c) in all.into_iter().enumerate() {
            if i % 10 == 0 {
                kept.push(c);
            } else {
                dropped.push(c);
            }
        }
        // The first spills of each pool size its working space: not counted.
        let warm = dropped.split_off(dropped.len() / 2);
        drop(warm);
        let n = dropped.len();
        assert_eq!(
            calls_dropping(dropped),
            0,
            "ncpu {ncpu}: {n} drops called the allocator"
        );
        domain.compact().unwrap();
        let moved = domain.stats().totals.headers_moved;
        assert!(moved > 0, "nothing moved");
        let n = kept.len();
        assert_eq!(
            calls_dropping(kept),
            0,
            "ncpu {ncpu}: dropping {n} counters ({moved} moved headers) called the allocator"
        );
    }
}
