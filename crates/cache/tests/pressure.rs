//! Allocation under memory pressure: while free slots exist anywhere (parked in another CPU's
//! magazine, or fewer in the pool than a full refill batch), `alloc` and `alloc_batch` find
//! them; they report an error only when there are none.
//!
//! Runs on simulated CPUs (the portable backend), one thread per cache.

use pcpu_cache::{simulate_cpu, CacheConfig, CacheError, SlotCache, SlotSource};
use pcpu_testkit::{HeapSource, HeapSourceError};

/// A cache over 8 slots in total, refilling 4 at a time, each magazine able to hold all 8.
fn cache_of_eight() -> SlotCache<HeapSource> {
    let mut src = HeapSource::new(2, 8, 1, 8);
    src.set_limit(8);
    SlotCache::new(src, CacheConfig::new().with_batch(4).with_capacity(16)).unwrap()
}

fn is_exhausted<T: std::fmt::Debug>(r: Result<T, CacheError<HeapSourceError>>) -> bool {
    matches!(r, Err(CacheError::Pool(HeapSourceError::Exhausted)))
}

/// Every slot is freed on CPU 1 and parked in its magazine; CPU 0 then allocates them all.
/// (Before, CPU 0's refill failed at once: the pool had nothing left to assign.)
#[test]
fn alloc_reclaims_slots_parked_on_another_cpu() {
    let cache = cache_of_eight();
    // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread touches its
    // magazines or slots.
    unsafe { simulate_cpu(Some(1)) };
    let slots: Vec<_> = (0..8).map(|_| cache.alloc().unwrap()).collect();
    assert!(is_exhausted(cache.alloc()), "8 slots in all");
    for s in slots {
        // SAFETY: each slot came from this cache, is freed once, and nothing uses it.
        unsafe { cache.free(s) }.unwrap();
    }
    assert_eq!(cache.stats().cached_per_cpu[1], 8, "parked on CPU 1");
    // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread touches its
    // magazines or slots.
    unsafe { simulate_cpu(Some(0)) };
    let again: Vec<_> = (0..8).map(|_| cache.alloc().unwrap()).collect();
    assert!(is_exhausted(cache.alloc()), "and still no more than 8");
    assert_eq!(cache.with_pool(|p| p.assigned()), 8);
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { simulate_cpu(None) };
    drop(again);
}

/// The same for `alloc_batch`: all-or-nothing, but it looks in the magazines too.
#[test]
fn alloc_batch_reclaims_slots_parked_on_another_cpu() {
    let cache = cache_of_eight();
    // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread touches its
    // magazines or slots.
    unsafe { simulate_cpu(Some(1)) };
    let mut out = Vec::new();
    cache.alloc_batch(8, &mut out).unwrap();
    for s in out.drain(..) {
        // SAFETY: as above.
        unsafe { cache.free(s) }.unwrap();
    }
    // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread touches its
    // magazines or slots.
    unsafe { simulate_cpu(Some(0)) };
    cache.alloc_batch(8, &mut out).unwrap();
    assert_eq!(out.len(), 8);
    assert!(is_exhausted(cache.alloc_batch(1, &mut out)));
    assert_eq!(out.len(), 8, "a failed batch appends nothing");
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { simulate_cpu(None) };
}

/// Three slots left in the pool and a refill batch of four: the refill takes fewer rather
/// than none. (Before, the all-or-nothing batch of four failed.)
#[test]
fn refill_falls_back_to_smaller_batches() {
    let mut src = HeapSource::new(2, 8, 1, 8);
    src.set_limit(3);
    let cache = SlotCache::new(src, CacheConfig::new().with_batch(4)).unwrap();
    // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread touches its
    // magazines or slots.
    unsafe { simulate_cpu(Some(0)) };
    let held: Vec<_> = (0..3).map(|_| cache.alloc().unwrap()).collect();
    assert!(is_exhausted(cache.alloc()));
    assert_eq!(
        held.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { simulate_cpu(None) };
}
