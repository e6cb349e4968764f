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
//! the heap source.
#![no_main]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use pcpu_cache::{CacheConfig, SlotCache};
use pcpu_pageset::{PagesetId, Pool, PoolConfig, SizeClass, Slot};
use pcpu_rseq::simulate_cpu;

/// Operations per input, at most.
const MAX_OPS: usize = 256;

#[derive(Arbitrary, Debug)]
struct RawOp {
    kind: u8,
    cpu: u8,
    a: u16,
}

struct Live {
    slot: Slot,
    tag: u64,
    cpu: usize,
    word: usize,
}

struct Harness {
    cache: SlotCache<Pool>,
    ncpu: usize,
    stride: usize,
    words: usize,
    live: Vec<Live>,
    next_tag: u64,
}

impl Harness {
    fn cell(&self, slot: Slot, cpu: usize, word: usize) -> &AtomicU64 {
        assert!(cpu < self.ncpu && word < self.words);
        let addr = slot.addr() + cpu * self.stride + word * 8;
        // SAFETY: callers pass slots that are assigned in the pool (live or cached), so the
        // cell is mapped; it is in bounds (checked above) and 8-aligned; this thread is the
        // only one touching the cache, and all accesses here are atomic.
        unsafe { AtomicU64::from_ptr(addr as *mut u64) }
    }

    fn assert_zero(&self, slot: Slot, what: &str) {
        for cpu in 0..self.ncpu {
            for w in 0..self.words {
                let v = self.cell(slot, cpu, w).load(Ordering::Relaxed);
                assert_eq!(
                    v, 0,
                    "{what} slot {slot:?} reads {v:#x} on CPU {cpu} word {w}"
                );
            }
        }
    }

    /// Every magazine's slots, CPU by CPU.
    fn cached(&self) -> Vec<Vec<Slot>> {
        (0..self.ncpu)
            .map(|cpu| self.cache.with_stopped(cpu, |m| m.slots()).expect("stop"))
            .collect()
    }

    /// A slot just handed out on `cpu`: zeroed, not live; then tag one of its cells.
    fn take(&mut self, slot: Slot, cpu: usize) {
        self.assert_zero(slot, "handed-out");
        assert!(
            self.live.iter().all(|l| l.slot != slot),
            "slot {slot:?} handed out while live"
        );
        self.next_tag += 1;
        let tag = self.next_tag;
        let word = (tag as usize) % self.words;
        self.cell(slot, cpu, word).store(tag, Ordering::Relaxed);
        self.live.push(Live {
            slot,
            tag,
            cpu,
            word,
        });
    }

    /// Removes live slot number `pick` from the model, checking its cells first.
    fn give_back(&mut self, pick: usize) -> Slot {
        let l = self.live.swap_remove(pick % self.live.len());
        for cpu in 0..self.ncpu {
            for w in 0..self.words {
                let v = self.cell(l.slot, cpu, w).load(Ordering::Relaxed);
                let want = if (cpu, w) == (l.cpu, l.word) {
                    l.tag
                } else {
                    0
                };
                assert_eq!(v, want, "live slot {:?} CPU {cpu} word {w}", l.slot);
            }
        }
        l.slot
    }

    fn live_in(&self, id: PagesetId) -> usize {
        self.live
            .iter()
            .filter(|l| self.cache.with_pool(|p| p.pageset_of(l.slot)) == Some(id))
            .count()
    }

    /// The books, from the magazines' occupancy alone (no magazine is stopped).
    fn check_counts(&self) {
        let stats = self.cache.stats();
        assert_eq!(stats.cached, stats.cached_per_cpu.iter().sum::<usize>());
        assert!(stats
            .cached_per_cpu
            .iter()
            .all(|&n| n <= stats.capacity_per_cpu));
        let assigned = self.cache.with_pool(|p| p.stats().assigned);
        assert_eq!(
            assigned,
            self.live.len() + stats.cached,
            "pool assigned != live + cached"
        );
    }

    /// Everything: stops every magazine to list its slots.
    fn check(&self) {
        let cached = self.cached();
        let stats = self.cache.stats();
        let mut seen = HashSet::new();
        for l in &self.live {
            assert!(seen.insert(l.slot), "slot {:?} live twice", l.slot);
        }
        for (cpu, mag) in cached.iter().enumerate() {
            assert_eq!(stats.cached_per_cpu[cpu], mag.len(), "CPU {cpu} occupancy");
            assert!(
                mag.len() <= stats.capacity_per_cpu,
                "CPU {cpu} over capacity"
            );
            for &s in mag {
                assert!(
                    seen.insert(s),
                    "slot {s:?} in two places (CPU {cpu} magazine)"
                );
                self.assert_zero(s, "cached");
            }
        }
        let total: usize = cached.iter().map(Vec::len).sum();
        assert_eq!(stats.cached, total);
        self.cache.with_pool(|p| {
            assert_eq!(
                p.stats().assigned,
                self.live.len() + total,
                "pool assigned != live + cached"
            );
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
    let stride = pool.stride();
    let cache = SlotCache::new(pool, config).expect("cache config");
    let mut h = Harness {
        cache,
        ncpu,
        stride,
        words: class.bytes() / 8,
        live: Vec::new(),
        next_tag: 0,
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
        simulate_cpu(sim);
        match op.kind % 16 {
            0..=3 => {
                let s = h.cache.alloc().expect("alloc (the pool can grow)");
                h.take(s, cpu);
            }
            4 => {
                let n = a % 40;
                let mut out = Vec::new();
                h.cache
                    .alloc_batch(n, &mut out)
                    .expect("alloc_batch (the pool can grow)");
                assert_eq!(out.len(), n, "alloc_batch count");
                for s in out {
                    h.take(s, cpu);
                }
            }
            5..=7 if !h.live.is_empty() => {
                let s = h.give_back(a);
                // SAFETY: `s` came from the cache, is freed once, and nothing uses it now.
                unsafe { h.cache.free(s) }.expect("free");
            }
            8 if !h.live.is_empty() => {
                let n = 1 + a % h.live.len().min(8);
                let batch: Vec<Slot> = (0..n).map(|i| h.give_back(a.wrapping_add(i))).collect();
                // SAFETY: as for `free`, for each slot (all distinct: taken out of `live`).
                unsafe { h.cache.free_batch(batch) }.expect("free_batch");
            }
            9 => {
                let target = a % ncpu;
                let before = h.cache.stats().cached_per_cpu[target];
                assert_eq!(h.cache.drain_cpu(target).expect("drain_cpu"), before);
                assert_eq!(h.cache.stats().cached_per_cpu[target], 0);
            }
            10 => {
                let before = h.cache.stats().cached;
                assert_eq!(h.cache.drain_all().expect("drain_all"), before);
                assert_eq!(h.cache.stats().cached, 0);
            }
            11 => {
                let keep = a % 8;
                let before = h.cache.stats().cached_per_cpu;
                let n = h.cache.trim(keep).expect("trim");
                let after = h.cache.stats().cached_per_cpu;
                let want: usize = before.iter().map(|&b| b.saturating_sub(keep)).sum();
                assert_eq!(n, want, "trim count");
                assert!(after.iter().zip(&before).all(|(&x, &b)| x == b.min(keep)));
            }
            12 => {
                let ids: Vec<PagesetId> = h
                    .cache
                    .with_pool(|p| p.pagesets().iter().map(|s| s.id).collect());
                let Some(&id) = ids.get(a % ids.len().max(1)) else {
                    simulate_cpu(None);
                    continue;
                };
                let in_id: usize = h
                    .cached()
                    .iter()
                    .flatten()
                    .filter(|&&s| h.cache.with_pool(|p| p.pageset_of(s)) == Some(id))
                    .count();
                h.cache
                    .with_pool(|p| p.set_draining(id, true))
                    .expect("set_draining");
                assert_eq!(h.cache.remove_pageset(id).expect("remove_pageset"), in_id);
                let assigned = h
                    .cache
                    .with_pool(|p| p.pageset_stats(id).map(|s| s.assigned));
                assert_eq!(
                    assigned,
                    Some(h.live_in(id)),
                    "pageset keeps only live slots"
                );
                h.cache
                    .with_pool(|p| p.set_draining(id, false))
                    .expect("set_draining");
            }
            13 => {
                let before = h.cache.stats().counters.slow_allocs;
                let s = h
                    .cache
                    .with_stopped(cpu, |_| h.cache.alloc())
                    .expect("stop")
                    .expect("alloc from a stopped magazine (the pool can grow)");
                h.take(s, cpu);
                if sim.is_some() {
                    assert_eq!(h.cache.stats().counters.slow_allocs, before + 1, "slow alloc");
                }
            }
            14 if !h.live.is_empty() => {
                let s = h.give_back(a);
                h.cache
                    .with_stopped(cpu, |mag| {
                        let before = mag.slots();
                        // SAFETY: as for `free`.
                        unsafe { h.cache.free(s) }.expect("free");
                        assert_eq!(mag.slots(), before, "stopped magazine modified");
                    })
                    .expect("stop");
            }
            15 => {
                h.cache.with_pool(|p| p.release());
            }
            _ => {}
        }
        simulate_cpu(None);
        // Listing the magazines stops (fences) every CPU: do it on every fourth step.
        if steps % 4 == 0 {
            h.check();
        } else {
            h.check_counts();
        }
    }
    finish(h);
});

/// Frees everything, drains, and checks the pool is empty and gives all memory back.
fn finish(mut h: Harness) {
    simulate_cpu(Some(0));
    while !h.live.is_empty() {
        let s = h.give_back(0);
        // SAFETY: as for `free`.
        unsafe { h.cache.free(s) }.expect("free");
    }
    simulate_cpu(None);
    h.check();
    h.cache.drain_all().expect("drain_all");
    assert_eq!(h.cache.stats().cached, 0);
    let (mut pool, drained) = h.cache.into_pool();
    assert_eq!(drained.expect("into_pool"), 0);
    assert_eq!(pool.stats().assigned, 0);
    pool.release();
    assert_eq!(
        pool.stats().pagesets_mapped,
        0,
        "empty pool still maps pagesets"
    );
}
