//! Property test against a model: any sequence of alloc, alloc_batch, free, drain, trim,
//! remove_pageset (and allocs/frees while a magazine is stopped) from several simulated CPUs
//! keeps every slot in exactly one place, never hands out a cached or live slot, hands out
//! only zeroed slots, and keeps the books: pool assigned == live + cached.
//!
//! Allocation failures are part of the model: an allocation must succeed whenever this CPU's
//! magazine and the pool's free slots can cover it (see [`Model::must_cover`]), and one that
//! fails must report the pool's exhaustion and change nothing. So an `alloc` that fails when
//! it should not (always, say) fails the model.
#![cfg(not(loom))]

use pcpu_cache::{simulate_cpu, CacheConfig, CacheError};
use pcpu_cache::{SlotCache, SlotSource};
use pcpu_testkit::cache_model::CacheModel;
use pcpu_testkit::{HeapSource, HeapSourceError};
use proptest::prelude::*;
use std::collections::HashSet;

const NCPU: usize = 4;
const CELL: usize = 16;
/// The heap source's size: `PAGESETS × PER_PAGESET` slots.
const PAGESETS: usize = 6;
const PER_PAGESET: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize),
    AllocBatch(usize, usize),
    Free(usize, usize),
    Drain(usize),
    DrainAll,
    Trim(usize),
    RemovePageset(usize, usize),
    AllocStopped(usize),
    FreeStopped(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let cpu = 0..NCPU;
    prop_oneof![
        6 => cpu.clone().prop_map(Op::Alloc),
        2 => (cpu.clone(), 0..12usize).prop_map(|(c, n)| Op::AllocBatch(c, n)),
        6 => (cpu.clone(), any::<usize>()).prop_map(|(c, i)| Op::Free(c, i)),
        1 => cpu.clone().prop_map(Op::Drain),
        1 => Just(Op::DrainAll),
        1 => (0..4usize).prop_map(Op::Trim),
        1 => (cpu.clone(), 0..6usize).prop_map(|(c, p)| Op::RemovePageset(c, p)),
        1 => cpu.clone().prop_map(Op::AllocStopped),
        1 => (cpu, any::<usize>()).prop_map(|(c, i)| Op::FreeStopped(c, i)),
    ]
}

struct Model {
    /// The cache and its live slots.
    h: CacheModel<HeapSource>,
    /// Allocations that succeeded and failed, for the end-of-case report.
    allocated: usize,
    failed: usize,
}

impl Model {
    /// Slots the pool can still assign (no pageset is draining between operations).
    fn pool_free(&self) -> usize {
        PAGESETS * PER_PAGESET - self.h.cache.with_pool(|p| p.assigned())
    }

    /// Whether an allocation of `n` slots on `cpu` must succeed: the cache takes what it
    /// needs from `cpu`'s magazine (`from_magazine`: a running one; a stopped one is
    /// bypassed) and asks the pool for the rest in one batch of at least `pool_batch`
    /// slots (a refill asks for a whole batch). A cache that also took from other
    /// magazines or asked for less would succeed more often, never less.
    fn must_cover(&self, cpu: usize, n: usize, from_magazine: bool, pool_batch: usize) -> bool {
        let cached = if from_magazine {
            self.h.cache.stats().cached_per_cpu[cpu]
        } else {
            0
        };
        n <= cached || self.pool_free() >= (n - cached).max(pool_batch)
    }

    /// Checks an allocation's outcome against [`must_cover`](Self::must_cover), computed
    /// before it (`must`); a failure must be the pool's exhaustion.
    fn expect_outcome<T>(
        &mut self,
        what: &str,
        must: bool,
        r: &Result<T, CacheError<HeapSourceError>>,
    ) {
        match r {
            Ok(_) => self.allocated += 1,
            Err(e) => {
                assert!(
                    !must,
                    "{what} failed ({e}) although the magazine and the pool's {} free slots \
                     covered it",
                    self.pool_free()
                );
                assert!(
                    matches!(e, CacheError::Pool(HeapSourceError::Exhausted)),
                    "{what} failed with {e}, not the pool's exhaustion"
                );
                self.failed += 1;
            }
        }
    }

    /// A slot just handed out on `cpu`: also not cached (the model lists every magazine).
    fn take(&mut self, slot: std::num::NonZeroUsize, cpu: usize) {
        assert!(
            !self.h.cached().iter().flatten().any(|&c| c == slot),
            "slot {slot:#x} handed out while cached"
        );
        // SAFETY: the slot was just handed out by the cache.
        unsafe { self.h.take(slot, cpu) };
    }
}

fn run(ops: Vec<Op>, capacity: usize, batch: usize, max_cached: usize) {
    let config = CacheConfig::new()
        .with_capacity(capacity)
        .with_batch(batch)
        .with_max_cached(max_cached);
    let cache = SlotCache::new(HeapSource::new(NCPU, CELL, PAGESETS, PER_PAGESET), config).unwrap();
    let mut m = Model {
        h: CacheModel::new(cache),
        allocated: 0,
        failed: 0,
    };
    let mut last = m.h.cache.stats();
    for op in ops {
        match op {
            Op::Alloc(cpu) => {
                // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
                // touches its magazines or slots.
                unsafe { simulate_cpu(Some(cpu)) };
                let must = m.must_cover(cpu, 1, true, batch);
                let r = m.h.cache.alloc();
                m.expect_outcome("alloc", must, &r);
                if let Ok(s) = r {
                    m.take(s, cpu);
                }
            }
            Op::AllocBatch(cpu, n) => {
                // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
                // touches its magazines or slots.
                unsafe { simulate_cpu(Some(cpu)) };
                let must = m.must_cover(cpu, n, true, 0);
                let mut out = Vec::new();
                let r = m.h.cache.alloc_batch(n, &mut out);
                m.expect_outcome("alloc_batch", must, &r);
                match r {
                    Ok(()) => {
                        assert_eq!(out.len(), n);
                        for s in out {
                            m.take(s, cpu);
                        }
                    }
                    Err(_) => assert!(out.is_empty()),
                }
            }
            Op::Free(cpu, i) if m.h.live_len() > 0 => {
                // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
                // touches its magazines or slots.
                unsafe { simulate_cpu(Some(cpu)) };
                let s = m.h.give_back(i);
                // SAFETY: `s` came from the cache and is no longer used.
                unsafe { m.h.cache.free(s).unwrap() };
            }
            Op::Free(..) => {}
            Op::Drain(cpu) => {
                let before = m.h.cache.stats().cached_per_cpu[cpu];
                assert_eq!(m.h.cache.drain_cpu(cpu).unwrap(), before);
                assert_eq!(m.h.cache.stats().cached_per_cpu[cpu], 0);
            }
            Op::DrainAll => {
                m.h.cache.drain_all().unwrap();
                assert_eq!(m.h.cache.stats().cached, 0);
            }
            Op::Trim(keep) => {
                m.h.cache.trim(keep).unwrap();
                assert!(m.h.cache.stats().cached_per_cpu.iter().all(|&n| n <= keep));
            }
            Op::RemovePageset(cpu, ps) => {
                // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
                // touches its magazines or slots.
                unsafe { simulate_cpu(Some(cpu)) };
                // SAFETY: marking a pageset draining touches no slot.
                unsafe { m.h.cache.with_pool_mut(|p| p.set_draining(ps, true)) };
                m.h.cache.remove_pageset(ps).unwrap();
                let live_in_ps =
                    m.h.live_slots()
                        .filter(|&s| m.h.cache.with_pool(|p| p.pageset_of(s)) == Some(ps))
                        .count();
                assert_eq!(m.h.cache.with_pool(|p| p.assigned_in(ps)), live_in_ps);
                // SAFETY: marking a pageset draining touches no slot.
                unsafe { m.h.cache.with_pool_mut(|p| p.set_draining(ps, false)) };
            }
            Op::AllocStopped(cpu) => {
                // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
                // touches its magazines or slots.
                unsafe { simulate_cpu(Some(cpu)) };
                let must = m.must_cover(cpu, 1, false, 1);
                let r = m.h.cache.with_stopped(cpu, |_| m.h.cache.alloc()).unwrap();
                m.expect_outcome("alloc (magazine stopped)", must, &r);
                if let Ok(s) = r {
                    m.take(s, cpu);
                }
                assert!(
                    m.h.cache.stats().counters.slow_allocs > last.counters.slow_allocs
                        || r.is_err()
                );
            }
            Op::FreeStopped(..) if m.h.live_len() == 0 => {}
            Op::FreeStopped(cpu, i) => {
                // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
                // touches its magazines or slots.
                unsafe { simulate_cpu(Some(cpu)) };
                let s = m.h.give_back(i);
                m.h.cache
                    .with_stopped(cpu, |mag| {
                        let before = mag.slots();
                        // SAFETY: `s` came from the cache and is no longer used.
                        unsafe { m.h.cache.free(s).unwrap() };
                        assert_eq!(mag.slots(), before, "stopped magazine modified");
                    })
                    .unwrap();
                assert_eq!(
                    m.h.cache.stats().counters.slow_frees,
                    last.counters.slow_frees + 1
                );
            }
        }
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { simulate_cpu(None) };
        m.h.check();
        let now = m.h.cache.stats();
        assert!(
            now.counters.refills >= last.counters.refills
                && now.counters.spills >= last.counters.spills
        );
        last = now;
    }
    // Allocations were asked for and, where the model says they had to, made.
    let asked = m.allocated + m.failed;
    assert!(
        asked == 0 || m.allocated > 0,
        "{asked} allocations, none succeeded"
    );
    // Everything back: free all, drain, and the pool is empty.
    // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread touches its
    // magazines or slots.
    unsafe { simulate_cpu(Some(0)) };
    let cache = m.h.free_all();
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { simulate_cpu(None) };
    cache.drain_all().unwrap();
    assert_eq!(cache.with_pool(|p| p.assigned()), 0);
    let (pool, drained) = cache.into_pool();
    assert_eq!(drained.unwrap(), 0);
    assert_eq!(pool.assigned(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(pcpu_testkit::stress::proptest_cases(128))
    })]

    #[test]
    fn model(
        ops in proptest::collection::vec(op(), 1..120),
        capacity in 1..6usize,
        batch in 1..5usize,
        max_cached in 4..24usize,
    ) {
        run(ops, capacity, batch, max_cached);
    }
}

/// A pool limited to 4 slots, refilled 2 at a time from one CPU: exactly 4 allocations, then
/// the pool's error (not a panic, not a short count), and allocation works again once a slot
/// is back. (A limit that is not a multiple of the batch leaves slots a whole-batch refill
/// cannot take: issue 14, item 5.)
#[test]
fn exhausted_pool_is_an_error_not_a_panic() {
    let mut src = HeapSource::new(2, 8, 1, 4);
    src.set_limit(4);
    let cache = SlotCache::new(src, CacheConfig::new().with_batch(2)).unwrap();
    // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread touches its
    // magazines or slots.
    unsafe { simulate_cpu(Some(0)) };
    let mut held = Vec::new();
    let err = loop {
        match cache.alloc() {
            Ok(s) => held.push(s),
            Err(e) => break e,
        }
        assert!(held.len() <= 4, "more slots than the pool's limit");
    };
    assert_eq!(held.len(), 4, "every slot within the limit is handed out");
    assert!(
        matches!(err, CacheError::Pool(HeapSourceError::Exhausted)),
        "{err}"
    );
    assert!(matches!(
        cache.alloc(),
        Err(CacheError::Pool(HeapSourceError::Exhausted))
    ));
    let mut out = Vec::new();
    assert!(cache.alloc_batch(5, &mut out).is_err());
    assert!(out.is_empty());
    assert_eq!(
        cache.with_pool(|p| p.assigned()),
        4,
        "a failure assigns nothing"
    );
    // SAFETY: the slot came from `cache` and is not used any more.
    unsafe { cache.free(held.pop().unwrap()) }.unwrap();
    held.push(cache.alloc().expect("a freed slot can be allocated again"));
    let mut out = Vec::new();
    cache.alloc_batch(0, &mut out).unwrap();
    assert!(out.is_empty());
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { simulate_cpu(None) };
}

#[test]
fn bad_configs_are_errors() {
    use pcpu_cache::{CacheError, ConfigError};
    let new = |c: CacheConfig| SlotCache::new(HeapSource::new(4, 8, 1, 4), c).map(|_| ());
    assert!(matches!(
        new(CacheConfig::new().with_capacity(0)),
        Err(CacheError::Config(ConfigError::ZeroCapacity))
    ));
    assert!(matches!(
        new(CacheConfig::new().with_batch(0)),
        Err(CacheError::Config(ConfigError::ZeroBatch))
    ));
    assert!(matches!(
        new(CacheConfig::new().with_max_cached(3)),
        Err(CacheError::Config(ConfigError::CapBelowNcpu { .. }))
    ));
    let cache = SlotCache::new(HeapSource::new(4, 8, 1, 4), CacheConfig::new()).unwrap();
    assert!(matches!(
        cache.drain_cpu(4),
        Err(CacheError::CpuOutOfRange { cpu: 4, ncpu: 4 })
    ));
}

/// The same books with the real pageset pool (4 configured CPUs, 8-byte cells).
#[test]
fn pageset_pool_round_trip() {
    use pcpu_pageset::{Pool, PoolConfig, SizeClass};
    let pool = Pool::new(PoolConfig::new(SizeClass::B8).with_ncpu(NCPU)).unwrap();
    let cache = SlotCache::new(pool, CacheConfig::new().with_capacity(16).with_batch(8)).unwrap();
    let stride = cache.with_pool(|p| p.stride());
    let mut held = Vec::new();
    for round in 0..3u64 {
        for cpu in 0..NCPU {
            // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
            // touches its magazines or slots.
            unsafe { simulate_cpu(Some(cpu)) };
            for _ in 0..20 {
                let s = cache.alloc().unwrap();
                for c in 0..NCPU {
                    // SAFETY: `s` is ours; its cells are `s.addr() + c * stride`.
                    let v = unsafe { *((s.addr() + c * stride) as *const u64) };
                    assert_eq!(v, 0, "dirty slot");
                }
                // SAFETY: as above.
                unsafe { *((s.addr() + cpu * stride) as *mut u64) = round + 1 };
                held.push(s);
            }
        }
        let distinct: HashSet<_> = held.iter().collect();
        assert_eq!(distinct.len(), held.len());
        for (i, s) in held.drain(..).enumerate() {
            // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
            // touches its magazines or slots.
            unsafe { simulate_cpu(Some(i % NCPU)) };
            // SAFETY: `s` came from `cache` and is no longer used.
            unsafe { cache.free(s).unwrap() };
        }
        let stats = cache.stats();
        assert_eq!(cache.with_pool(|p| p.stats().assigned), stats.cached);
    }
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { simulate_cpu(None) };
    let ids: Vec<_> = cache.with_pool(|p| p.pagesets().iter().map(|ps| ps.id).collect());
    for id in ids {
        // SAFETY: marking a pageset draining touches no slot.
        unsafe { cache.with_pool_mut(|p| p.set_draining(id, true)) }.unwrap();
        cache.remove_pageset(id).unwrap();
    }
    assert_eq!(cache.stats().cached, 0);
    assert_eq!(cache.with_pool(|p| p.stats().assigned), 0);
}
