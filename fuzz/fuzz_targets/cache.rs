//! Random operation sequences on a `pcpu_cache::SlotCache` over a real `pcpu_pageset::Pool`,
//! issued from several simulated CPUs (and sometimes from the real one), checked against a
//! model after every step:
//! - a slot is never lost or duplicated: every assigned slot is either live (held by the
//!   model) or cached in exactly one magazine, and `pool assigned == live + cached`;
//! - a live or cached slot is never handed out again, and handed-out slots read zero on every
//!   CPU (a live slot carries a tag the model checks when it frees it);
//! - cached slots read zero and stay assigned in the pool (listed every fourth step, which
//!   stops every magazine; the counts are checked after every step); drains, trims and
//!   `remove_pageset` return exactly what they say;
//! - at the end everything comes back: the pool has nothing assigned and unmaps everything;
//! - allocation never fails: the pageset pool maps another pageset when it runs out, so every
//!   `alloc` and `alloc_batch` (from a running or a stopped magazine) must succeed, and an
//!   allocator that fails (always, say) fails the target.
//!
//! The same properties as `crates/cache/tests/model.rs`, on the pageset pool instead of
//! the heap source, through the same model (`pcpu_testkit::cache_model`).
#![no_main]

use std::collections::HashSet;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use pcpu_cache::{CacheConfig, SlotCache};
use pcpu_pageset::{PagesetId, Pool, PoolConfig, SizeClass, Slot};
use pcpu_rseq::simulate_cpu;
use pcpu_testkit::cache_model::CacheModel;

/// Operations per input, at most.
const MAX_OPS: usize = 256;

#[derive(Arbitrary, Debug)]
struct RawOp {
    kind: u8,
    cpu: u8,
    a: u16,
}

/// The cache over a pageset pool and what it holds.
struct Harness {
    model: CacheModel<Pool>,
}

impl Harness {
    fn live_in(&self, id: PagesetId) -> usize {
        let cache = &self.model.cache;
        self.model
            .live_slots()
            .filter(|&s| cache.with_pool(|p| p.pageset_of(s)) == Some(id))
            .count()
    }

    /// Everything ([`CacheModel::check`]), and the pool lists exactly the live and cached
    /// slots as its live ones.
    fn check(&self) {
        let seen = self.model.check();
        self.model.cache.with_pool(|p| {
            let listed: HashSet<Slot> = p
                .pagesets()
                .iter()
                .flat_map(|ps| p.live_slots(ps.id))
                .collect();
            assert_eq!(listed, seen, "pool's live slots != live + cached");
        });
    }
}

/// `None` (the real CPU) for one value in `ncpu + 1`, else a simulated CPU.
fn decode_cpu(raw: u8, ncpu: usize) -> Option<usize> {
    let c = raw as usize % (ncpu + 1);
    (c < ncpu).then_some(c)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((class, ncpu, capacity, batch, max_cached)) = <(u8, u8, u8, u8, u8)>::arbitrary(&mut u)
    else {
        return;
    };
    // The per-CPU classes (8..64 bytes; the harness models up to 8 words per CPU).
    let class = SizeClass::ALL[class as usize % 4];
    let ncpu = 1 + ncpu as usize % 4;
    let config = CacheConfig::new()
        .with_capacity(1 + capacity as usize % 12)
        .with_batch(1 + batch as usize % 8)
        .with_max_cached(ncpu + max_cached as usize % 48);
    let pool = Pool::new(
        PoolConfig::new(class)
            .with_ncpu(ncpu)
            .with_unit_bytes(pcpu_pageset::page_size()),
    )
    .expect("pool config");
    let cache = SlotCache::new(pool, config).expect("cache config");
    let mut h = Harness {
        model: CacheModel::new(cache),
    };
    let mut steps = 0;
    // `arbitrary` pads exhausted input with zeros instead of failing: stop at the end.
    while !u.is_empty() && steps < MAX_OPS {
        let Ok(op) = RawOp::arbitrary(&mut u) else {
            break;
        };
        steps += 1;
        let sim = decode_cpu(op.cpu, ncpu);
        // The CPU whose cell gets the tag, and whose magazine `*Stopped` ops stop.
        let cpu = sim.unwrap_or(op.cpu as usize % ncpu);
        let a = op.a as usize;
        // SAFETY: the target runs on one thread, and the cache it updates is its own harness's: no
        // rseq thread touches it.
        unsafe { simulate_cpu(sim) };
        match op.kind % 16 {
            0..=3 => {
                let s = h.model.cache.alloc().expect("alloc (the pool can grow)");
                // SAFETY: `s` was just handed out by the cache.
                unsafe { h.model.take(s, cpu) };
            }
            4 => {
                let n = a % 40;
                let mut out = Vec::new();
                h.model
                    .cache
                    .alloc_batch(n, &mut out)
                    .expect("alloc_batch (the pool can grow)");
                assert_eq!(out.len(), n, "alloc_batch count");
                for s in out {
                    // SAFETY: `s` was just handed out by the cache.
                    unsafe { h.model.take(s, cpu) };
                }
            }
            5..=7 if h.model.live_len() > 0 => {
                let s = h.model.give_back(a);
                // SAFETY: `s` came from the cache, is freed once, and nothing uses it now.
                unsafe { h.model.cache.free(s) }.expect("free");
            }
            8 if h.model.live_len() > 0 => {
                let n = 1 + a % h.model.live_len().min(8);
                let batch: Vec<Slot> = (0..n)
                    .map(|i| h.model.give_back(a.wrapping_add(i)))
                    .collect();
                // SAFETY: as for `free`, for each slot (all distinct: taken out of `live`).
                unsafe { h.model.cache.free_batch(batch) }.expect("free_batch");
            }
            9 => {
                let target = a % ncpu;
                let before = h.model.cache.stats().cached_per_cpu[target];
                assert_eq!(h.model.cache.drain_cpu(target).expect("drain_cpu"), before);
                assert_eq!(h.model.cache.stats().cached_per_cpu[target], 0);
            }
            10 => {
                let before = h.model.cache.stats().cached;
                assert_eq!(h.model.cache.drain_all().expect("drain_all"), before);
                assert_eq!(h.model.cache.stats().cached, 0);
            }
            11 => {
                let keep = a % 8;
                let before = h.model.cache.stats().cached_per_cpu;
                let n = h.model.cache.trim(keep).expect("trim");
                let after = h.model.cache.stats().cached_per_cpu;
                let want: usize = before.iter().map(|&b| b.saturating_sub(keep)).sum();
                assert_eq!(n, want, "trim count");
                assert!(after.iter().zip(&before).all(|(&x, &b)| x == b.min(keep)));
            }
            12 => {
                let ids: Vec<PagesetId> = h
                    .model
                    .cache
                    .with_pool(|p| p.pagesets().iter().map(|s| s.id).collect());
                let Some(&id) = ids.get(a % ids.len().max(1)) else {
                    // SAFETY: `None` only ends the simulation: this thread goes back to the
                    // process's backend.
                    unsafe { simulate_cpu(None) };
                    continue;
                };
                let in_id: usize = h
                    .model
                    .cached()
                    .iter()
                    .flatten()
                    .filter(|&&s| h.model.cache.with_pool(|p| p.pageset_of(s)) == Some(id))
                    .count();
                // SAFETY: marking a pageset draining touches no slot.
                unsafe { h.model.cache.with_pool_mut(|p| p.set_draining(id, true)) }
                    .expect("set_draining");
                assert_eq!(
                    h.model.cache.remove_pageset(id).expect("remove_pageset"),
                    in_id
                );
                let assigned = h
                    .model
                    .cache
                    .with_pool(|p| p.pageset_stats(id).map(|s| s.assigned));
                assert_eq!(
                    assigned,
                    Some(h.live_in(id)),
                    "pageset keeps only live slots"
                );
                // SAFETY: as above.
                unsafe { h.model.cache.with_pool_mut(|p| p.set_draining(id, false)) }
                    .expect("set_draining");
            }
            13 => {
                let before = h.model.cache.stats().counters.slow_allocs;
                let s = h
                    .model
                    .cache
                    .with_stopped(cpu, |_| h.model.cache.alloc())
                    .expect("stop")
                    .expect("alloc from a stopped magazine (the pool can grow)");
                // SAFETY: `s` was just handed out by the cache.
                unsafe { h.model.take(s, cpu) };
                if sim.is_some() {
                    assert_eq!(
                        h.model.cache.stats().counters.slow_allocs,
                        before + 1,
                        "slow alloc"
                    );
                }
            }
            14 if h.model.live_len() > 0 => {
                let s = h.model.give_back(a);
                h.model
                    .cache
                    .with_stopped(cpu, |mag| {
                        let before = mag.slots();
                        // SAFETY: as for `free`.
                        unsafe { h.model.cache.free(s) }.expect("free");
                        assert_eq!(mag.slots(), before, "stopped magazine modified");
                    })
                    .expect("stop");
            }
            15 => {
                // SAFETY: release frees empty memory only.
                unsafe { h.model.cache.with_pool_mut(|p| p.release()) };
            }
            _ => {}
        }
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { simulate_cpu(None) };
        // Listing the magazines stops (fences) every CPU: do it on every fourth step.
        if steps % 4 == 0 {
            h.check();
        } else {
            h.model.check_counts();
        }
    }
    finish(h);
});

/// Frees everything, drains, and checks the pool is empty and gives all memory back.
fn finish(h: Harness) {
    h.check();
    // SAFETY: the target runs on one thread, and the cache it updates is its own harness's: no
    // rseq thread touches it.
    unsafe { simulate_cpu(Some(0)) };
    let cache = h.model.free_all();
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { simulate_cpu(None) };
    cache.drain_all().expect("drain_all");
    assert_eq!(cache.stats().cached, 0);
    let (mut pool, drained) = cache.into_pool();
    assert_eq!(drained.expect("into_pool"), 0);
    assert_eq!(pool.stats().assigned, 0);
    pool.release();
    assert_eq!(
        pool.stats().pagesets_mapped,
        0,
        "empty pool still maps pagesets"
    );
}
