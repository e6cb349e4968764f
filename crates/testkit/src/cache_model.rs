//! The model of what a `pcpu_cache::SlotCache` holds, over any `SlotSource`: which slots are
//! live (handed out and not freed), each with a tag written into one of its cells, and the
//! checks that every slot is in exactly one place (live, or in one magazine), that slots
//! handed out and cached slots read zero on every CPU, that live slots keep their tag, and that
//! the pool's books add up (assigned == live + cached). Driven by pcpu-cache's proptest
//! (`crates/cache/tests/model.rs`, on [`HeapSource`](crate::HeapSource)) and the `cache` fuzz
//! target (on the pageset pool), each with its own operations and extra checks.

use pcpu_cache::{SlotCache, SlotSource};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

/// A live slot and where its tag is.
#[derive(Debug, Clone, Copy)]
struct Live<Slot> {
    slot: Slot,
    tag: u64,
    cpu: usize,
    word: usize,
}

/// A cache under test, and the slots the model says are live.
pub struct CacheModel<S: SlotSource> {
    /// The cache under test.
    pub cache: SlotCache<S>,
    ncpu: usize,
    stride: usize,
    words: usize,
    live: Vec<Live<S::Slot>>,
    next_tag: u64,
}

impl<S: SlotSource> CacheModel<S> {
    /// The model of `cache`, which has handed out no slot yet.
    pub fn new(cache: SlotCache<S>) -> Self {
        let (ncpu, stride, cell_bytes) =
            cache.with_pool(|p| (p.ncpu(), p.stride(), p.cell_bytes()));
        CacheModel {
            cache,
            ncpu,
            stride,
            words: cell_bytes / 8,
            live: Vec::new(),
            next_tag: 0,
        }
    }

    /// Number of live slots.
    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    /// The live slots, in the order [`give_back`](Self::give_back) picks from.
    pub fn live_slots(&self) -> impl Iterator<Item = S::Slot> + '_ {
        self.live.iter().map(|l| l.slot)
    }

    /// Word `word` of CPU `cpu`'s cell of `slot`.
    ///
    /// # Safety
    /// `slot` is assigned in the cache's pool (live or cached).
    unsafe fn cell(&self, slot: S::Slot, cpu: usize, word: usize) -> &AtomicU64 {
        assert!(cpu < self.ncpu && word < self.words);
        let addr = S::slot_addr(slot) + cpu * self.stride + word * 8;
        // SAFETY: by `SlotSource`'s contract the cells of an assigned slot (the caller's
        // promise) are valid, 8-aligned memory of `cell_bytes` bytes at `slot_addr + cpu *
        // stride`, and stay mapped while it is assigned; the model's thread is the only one
        // using the cache, and every access here is atomic.
        unsafe { AtomicU64::from_ptr(addr as *mut u64) }
    }

    /// Asserts that every cell of `slot` reads zero.
    ///
    /// # Safety
    /// As for [`cell`](Self::cell).
    unsafe fn assert_zero(&self, slot: S::Slot, what: &str) {
        for cpu in 0..self.ncpu {
            for w in 0..self.words {
                // SAFETY: forwarded from the caller.
                let v = unsafe { self.cell(slot, cpu, w) }.load(Ordering::Relaxed);
                assert_eq!(
                    v, 0,
                    "{what} slot {slot:?} reads {v:#x} on CPU {cpu} word {w}"
                );
            }
        }
    }

    /// Every magazine's slots, CPU by CPU (stops and fences each magazine in turn).
    pub fn cached(&self) -> Vec<Vec<S::Slot>> {
        (0..self.cache.ncpu())
            .map(|cpu| self.cache.with_stopped(cpu, |m| m.slots()).expect("stop"))
            .collect()
    }

    /// Records a slot the cache just handed out: checks it reads zero and is not live, then
    /// writes a fresh tag into one word of CPU `cpu`'s cell (`cpu` taken modulo the pool's
    /// CPU count).
    ///
    /// # Safety
    /// `slot` was just returned by this model's cache (`alloc` or `alloc_batch`), so it is
    /// assigned in its pool.
    pub unsafe fn take(&mut self, slot: S::Slot, cpu: usize) {
        // SAFETY: the slot is assigned (caller).
        unsafe { self.assert_zero(slot, "handed-out") };
        assert!(
            self.live.iter().all(|l| l.slot != slot),
            "slot {slot:?} handed out while live"
        );
        self.next_tag += 1;
        let tag = self.next_tag;
        let (cpu, word) = (cpu % self.ncpu, tag as usize % self.words);
        // SAFETY: as above.
        unsafe { self.cell(slot, cpu, word) }.store(tag, Ordering::Relaxed);
        self.live.push(Live {
            slot,
            tag,
            cpu,
            word,
        });
    }

    /// Takes live slot number `pick` (modulo their number) out of the model, after checking
    /// that its cells hold its tag and nothing else; the caller frees it.
    pub fn give_back(&mut self, pick: usize) -> S::Slot {
        assert!(!self.live.is_empty(), "no live slot to give back");
        let l = self.live.swap_remove(pick % self.live.len());
        for cpu in 0..self.ncpu {
            for w in 0..self.words {
                // SAFETY: a live slot is assigned (it was handed out and not freed).
                let v = unsafe { self.cell(l.slot, cpu, w) }.load(Ordering::Relaxed);
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

    /// The books, from the magazines' occupancy alone (stops no magazine).
    pub fn check_counts(&self) {
        let stats = self.cache.stats();
        assert_eq!(stats.cached, stats.cached_per_cpu.iter().sum::<usize>());
        assert!(stats
            .cached_per_cpu
            .iter()
            .all(|&n| n <= stats.capacity_per_cpu));
        assert_eq!(
            self.cache.with_pool(|p| p.assigned()),
            self.live.len() + stats.cached,
            "pool assigned != live + cached"
        );
    }

    /// Everything: lists every magazine (stopping each) and checks that each slot is in one
    /// place, cached slots read zero, and assigned == live + cached. Returns the slots seen
    /// (live and cached), for the caller's own checks against its pool.
    pub fn check(&self) -> HashSet<S::Slot> {
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
                // SAFETY: a cached slot is assigned in the pool.
                unsafe { self.assert_zero(s, "cached") };
            }
        }
        let total: usize = cached.iter().map(Vec::len).sum();
        assert_eq!(stats.cached, total);
        assert_eq!(
            self.cache.with_pool(|p| p.assigned()),
            self.live.len() + total,
            "pool assigned != live + cached"
        );
        seen
    }

    /// Frees every live slot (on the current CPU), checking each, and returns the cache.
    pub fn free_all(mut self) -> SlotCache<S> {
        while !self.live.is_empty() {
            let s = self.give_back(0);
            // SAFETY: `s` came from the cache, is freed once, and nothing uses it any more.
            unsafe { self.cache.free(s) }.expect("free");
        }
        self.check();
        self.cache
    }
}
