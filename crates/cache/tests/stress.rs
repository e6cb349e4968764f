//! Stress on the real backend (rseq where available): 64 threads on whatever cores there are
//! allocate and free slots of a real pageset pool (random batch sizes, random yields) while one
//! thread sends them SIGUSR1 at a high rate (aborting rseq critical sections) and another
//! drains, trims and removes pagesets from the caches in a loop. At the end every slot is
//! accounted for.
//!
//! `PCPU_STRESS_SCALE` (a float, default 1.0) scales the work per thread, e.g. `0.01` under
//! valgrind.
// The signal storm needs Unix signals.
#![cfg(all(unix, not(loom)))]

use pcpu_cache::{CacheConfig, PagesetCache, SlotCache};
use pcpu_pageset::{Pool, PoolConfig, SizeClass};
use pcpu_testkit::signals::with_signal_storm;
use pcpu_testkit::stress::scaled;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const THREADS: usize = 64;

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn alloc_free_under_signals_and_drains() {
    let iters = scaled(10_000);
    let pool = Pool::new(PoolConfig::new(SizeClass::B8)).expect("pool");
    let cache: PagesetCache =
        SlotCache::new(pool, CacheConfig::new().with_capacity(32).with_batch(8)).unwrap();
    let stop = AtomicBool::new(false);
    let drains = AtomicU64::new(0);
    let ncpu = cache.ncpu();

    let (aborts, signals) = std::thread::scope(|s| {
        // The drainer.
        s.spawn(|| {
            let mut rng = fastrand::Rng::with_seed(7);
            while !stop.load(Ordering::Acquire) {
                match rng.u8(..4) {
                    0 => cache.drain_cpu(rng.usize(..ncpu)).map(drop).unwrap(),
                    1 => cache.trim(rng.usize(..4)).map(drop).unwrap(),
                    2 => cache.drain_all().map(drop).unwrap(),
                    _ => {
                        // What the compactor does: pull one pageset's free slots out.
                        let ids: Vec<_> =
                            cache.with_pool(|p| p.pagesets().iter().map(|ps| ps.id).collect());
                        if !ids.is_empty() {
                            let id = ids[rng.usize(..ids.len())];
                            // SAFETY: marking a pageset draining touches no slot.
                            unsafe { cache.with_pool_mut(|p| p.set_draining(id, true)) }.unwrap();
                            cache.remove_pageset(id).unwrap();
                            // SAFETY: marking a pageset draining touches no slot.
                            unsafe { cache.with_pool_mut(|p| p.set_draining(id, false)) }.unwrap();
                        }
                    }
                }
                drains.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
        });
        // Stops the drainer when the workers are done, or one of them panicked.
        let _stop_drainer = SetOnDrop(&stop);
        with_signal_storm(THREADS, |t| {
            let mut rng = fastrand::Rng::with_seed(t as u64);
            let mut held = Vec::new();
            let mut tag = (t as u64 + 1) << 32;
            for _ in 0..iters {
                let n = rng.usize(1..=8);
                if rng.bool() {
                    cache.alloc_batch(n, &mut held).unwrap();
                } else {
                    for _ in 0..n {
                        held.push(cache.alloc().unwrap());
                    }
                }
                for slot in &held {
                    let cell = slot.addr() as *mut u64;
                    // SAFETY: CPU 0's cell of a slot we hold: valid, 8-aligned, ours.
                    unsafe {
                        assert_eq!(*cell, 0, "slot handed out dirty (or twice)");
                        tag += 1;
                        *cell = tag;
                    }
                }
                if rng.u8(..4) == 0 {
                    std::thread::yield_now();
                }
                let first = tag - held.len() as u64 + 1;
                for (i, slot) in held.drain(..).enumerate() {
                    // SAFETY: as above.
                    let v = unsafe { *(slot.addr() as *const u64) };
                    assert_eq!(v, first + i as u64, "slot shared with another holder");
                    // SAFETY: the slot came from `cache` and we are done with it.
                    unsafe { cache.free(slot).unwrap() };
                }
            }
            pcpu_rseq::aborts_on_this_thread()
        })
    });
    let aborts: u64 = aborts.into_iter().sum();

    let stats = cache.stats();
    let assigned = cache.with_pool(|p| p.stats().assigned);
    assert_eq!(
        assigned, stats.cached,
        "pool assigned != cached with no live slots"
    );
    cache.drain_all().unwrap();
    assert_eq!(cache.with_pool(|p| p.stats().assigned), 0);
    eprintln!(
        "stress: mode {:?}, {THREADS} threads x {iters} rounds, {} signals, {} aborts, {} drain loops, {:?}",
        pcpu_rseq::mode(),
        signals,
        aborts,
        drains.load(Ordering::Relaxed),
        cache.stats()
    );
}
