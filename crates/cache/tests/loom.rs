//! Loom models of the magazine protocol (run with
//! `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test -p pcpu-cache --release --test loom`).
//!
//! The pool is the `HeapSource` test double; the cache code under test is the real one.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use pcpu_cache::{simulate_cpu, CacheConfig, SlotCache, SlotSource};
use pcpu_testkit::HeapSource;
use std::collections::HashSet;
use std::num::NonZeroUsize;

type Cache = SlotCache<HeapSource>;

fn cache(slots: usize, capacity: usize, batch: usize) -> Arc<Cache> {
    let config = CacheConfig::new().with_capacity(capacity).with_batch(batch);
    Arc::new(SlotCache::new(HeapSource::new(2, 8, 1, slots), config).unwrap())
}

/// Everything cached, read through stopped magazines (exact).
fn cached(cache: &Cache) -> Vec<NonZeroUsize> {
    let mut all = Vec::new();
    for cpu in 0..cache.ncpu() {
        all.extend(cache.with_stopped(cpu, |m| m.slots()).unwrap());
    }
    all
}

fn assert_accounted(cache: &Cache, live: &[NonZeroUsize]) {
    let cached = cached(cache);
    let mut seen = HashSet::new();
    for s in live.iter().chain(&cached) {
        assert!(seen.insert(*s), "slot {s:#x} in two places");
    }
    assert_eq!(cache.with_pool(|p| p.assigned()), live.len() + cached.len());
}

/// Refill and spill on CPU 0 against a concurrent drain of CPU 0: no slot lost or duplicated.
#[test]
fn refill_spill_vs_drain() {
    loom::model(|| {
        let cache = cache(6, 2, 2);
        let worker = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { simulate_cpu(Some(0)) };
                let x = cache.alloc().unwrap(); // refill: keep one, push one
                let y = cache.alloc().unwrap(); // pop (or refill, if drained)
                let z = cache.alloc().unwrap(); // refill again
                assert!(x != y && y != z && x != z);
                // SAFETY: x and y came from `cache` and are not used any more.
                unsafe {
                    cache.free(x).unwrap();
                    cache.free(y).unwrap(); // full unless drained: spill
                }
                z
            })
        };
        let drainer = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                cache.drain_cpu(0).unwrap();
            })
        };
        drainer.join().unwrap();
        let z = worker.join().unwrap();
        assert_accounted(&cache, &[z]);
        // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
        // model), so no rseq thread updates this model's memory.
        unsafe { simulate_cpu(Some(1)) };
        // SAFETY: z came from `cache`.
        unsafe { cache.free(z).unwrap() };
        cache.drain_all().unwrap();
        assert_eq!(cache.with_pool(|p| p.assigned()), 0);
    });
}

/// Stop, fence and restart: while CPU 0's magazine is stopped, CPU 0's allocs and frees go to
/// the pool and leave the magazine unchanged; after the restart the fast path works again.
#[test]
fn stop_fence_restart() {
    loom::model(|| {
        let cache = cache(6, 4, 2);
        // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
        // model), so no rseq thread updates this model's memory.
        unsafe { simulate_cpu(Some(0)) };
        // Seed CPU 0's magazine: alloc refills (keeps 1, pushes 1), free pushes.
        let seed = cache.alloc().unwrap();
        // SAFETY: `seed` came from `cache`.
        unsafe { cache.free(seed).unwrap() };
        let stopped_seen = Arc::new(AtomicBool::new(false));
        let worker = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { simulate_cpu(Some(0)) };
                let a = cache.alloc().unwrap();
                // SAFETY: `a` came from `cache`.
                unsafe { cache.free(a).unwrap() };
            })
        };
        let stopper = {
            let cache = Arc::clone(&cache);
            let seen = Arc::clone(&stopped_seen);
            thread::spawn(move || {
                cache
                    .with_stopped(0, |m| {
                        let before = m.slots();
                        thread::yield_now();
                        let after = m.slots();
                        assert_eq!(before, after, "stopped magazine modified");
                        seen.store(true, Ordering::Relaxed);
                    })
                    .unwrap();
            })
        };
        worker.join().unwrap();
        stopper.join().unwrap();
        assert!(stopped_seen.load(Ordering::Relaxed));
        assert_accounted(&cache, &[]);
        // After the restart, a free and an alloc on CPU 0 are pure fast path.
        let before = cache.stats();
        let s = cache.alloc().unwrap();
        // SAFETY: `s` came from `cache`.
        unsafe { cache.free(s).unwrap() };
        let after = cache.stats();
        assert_eq!(before.cached, after.cached);
        assert_eq!(
            (
                before.counters.refills,
                before.counters.slow_allocs,
                before.counters.slow_frees,
                before.counters.spills
            ),
            (
                after.counters.refills,
                after.counters.slow_allocs,
                after.counters.slow_frees,
                after.counters.spills
            ),
            "fast path not used after restart"
        );
    });
}

/// `remove_pageset` (retain on stopped magazines) against frees on CPU 0 and an alloc/free on
/// CPU 1: no slot lost or duplicated, and once nothing runs, a second pass leaves no slot of
/// the pageset assigned.
#[test]
fn remove_pageset_vs_frees() {
    loom::model(|| {
        let config = CacheConfig::new().with_capacity(4).with_batch(2);
        let cache = Arc::new(SlotCache::new(HeapSource::new(2, 8, 3, 2), config).unwrap());
        // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
        // model), so no rseq thread updates this model's memory.
        unsafe { simulate_cpu(Some(0)) };
        let held: Vec<NonZeroUsize> = (0..3).map(|_| cache.alloc().unwrap()).collect();
        let freer = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { simulate_cpu(Some(0)) };
                for s in held {
                    // SAFETY: `s` came from `cache` and is not used any more.
                    unsafe { cache.free(s).unwrap() };
                }
            })
        };
        let other = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { simulate_cpu(Some(1)) };
                let s = cache.alloc().unwrap();
                // SAFETY: as above.
                unsafe { cache.free(s).unwrap() };
            })
        };
        // SAFETY: marking a pageset draining touches no slot.
        unsafe { cache.with_pool_mut(|p| p.set_draining(0, true)) };
        cache.remove_pageset(0).unwrap();
        freer.join().unwrap();
        other.join().unwrap();
        assert_accounted(&cache, &[]);
        cache.remove_pageset(0).unwrap();
        assert_eq!(cache.with_pool(|p| p.assigned_in(0)), 0);
        assert!(cached(&cache)
            .iter()
            .all(|s| cache.with_pool(|p| p.pageset_of(*s)) != Some(0)));
    });
}

/// Two threads on the same CPU (one magazine: the try-lock makes one of them take the slow
/// path) and a slot that migrates from CPU 0 to CPU 1 between alloc and free, against a
/// concurrent `drain_all`.
#[test]
fn shared_cpu_and_migration_vs_drain_all() {
    loom::model(|| {
        let cache = cache(8, 2, 2);
        let holders = Arc::new(loom::sync::Mutex::new(HashSet::new()));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (cache, holders) = (Arc::clone(&cache), Arc::clone(&holders));
                thread::spawn(move || {
                    // SAFETY: under loom every thread runs the portable backend (no rseq section
                    // runs in a model), so no rseq thread updates this model's memory.
                    unsafe { simulate_cpu(Some(0)) };
                    let s = cache.alloc().unwrap();
                    assert!(holders.lock().unwrap().insert(s), "slot handed out twice");
                    // SAFETY: under loom every thread runs the portable backend (no rseq section
                    // runs in a model), so no rseq thread updates this model's memory.
                    unsafe { simulate_cpu(Some(1)) }; // "migrated"
                    holders.lock().unwrap().remove(&s);
                    // SAFETY: `s` came from `cache` and is not used any more.
                    unsafe { cache.free(s).unwrap() };
                })
            })
            .collect();
        cache.drain_all().unwrap();
        for w in workers {
            w.join().unwrap();
        }
        assert_accounted(&cache, &[]);
    });
}
