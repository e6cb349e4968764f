//! A cache over a pool of one lane with one magazine per CPU (`CacheConfig::magazines`): the
//! layout of pcpu-counter's header storage. Slots come back zeroed on their one lane, the
//! cache keeps a magazine per CPU, and everything freed goes back to the pool on a drain.
#![cfg(not(loom))]

use pcpu_cache::{CacheConfig, SlotCache, SlotSource};
use pcpu_pageset::{Pool, PoolConfig, SizeClass};

#[test]
fn one_lane_pool_with_a_magazine_per_cpu() {
    let cpus = pcpu_rseq::possible_cpus().max(2);
    let pool = Pool::new(PoolConfig::new(SizeClass::B128).with_ncpu(1)).unwrap();
    let cache = SlotCache::new(pool, CacheConfig::new().with_magazines(cpus)).unwrap();
    assert_eq!(cache.ncpu(), cpus);
    let mut slots = Vec::new();
    // Fewer under Miri, which interprets every instruction.
    let n = if cfg!(miri) { 100 } else { 1000 };
    for i in 0..n {
        let slot = cache.alloc().unwrap();
        let addr = <Pool as SlotSource>::slot_addr(slot);
        assert_eq!(addr % 128, 0, "slots of the 128-byte class are 128-aligned");
        // SAFETY: the slot is ours; its one lane holds 128 writable bytes.
        let words = unsafe { std::slice::from_raw_parts_mut(addr as *mut u64, 16) };
        assert!(words.iter().all(|&w| w == 0), "a fresh slot is zeroed");
        words.iter_mut().for_each(|w| *w = i + 1);
        slots.push(slot);
    }
    for slot in slots {
        // SAFETY: each slot came from `cache` and nothing uses it any more.
        unsafe { cache.free(slot) }.unwrap();
    }
    // Reused slots are zeroed again.
    let again = cache.alloc().unwrap();
    let addr = <Pool as SlotSource>::slot_addr(again);
    // SAFETY: as above.
    let words = unsafe { std::slice::from_raw_parts(addr as *const u64, 16) };
    assert!(words.iter().all(|&w| w == 0));
    // SAFETY: as above.
    unsafe { cache.free(again) }.unwrap();
    cache.drain_all().unwrap();
    assert_eq!(cache.with_pool(SlotSource::assigned), 0);
}

#[test]
fn zero_magazines_is_a_config_error() {
    let pool = Pool::new(PoolConfig::new(SizeClass::B8).with_ncpu(1)).unwrap();
    assert!(SlotCache::new(pool, CacheConfig::new().with_magazines(0)).is_err());
}

/// Draining a cache of 256 magazines of which only 2 hold slots stops (and fences for) those 2,
/// not 256: the cost of a drain follows the magazines in use (with lanes by `mm_cid`, the ids
/// the process uses). Before empty magazines were skipped, `drains` read 256.
#[test]
fn drain_all_stops_only_the_magazines_in_use() {
    let pool = Pool::new(PoolConfig::new(SizeClass::B64).with_ncpu(1)).unwrap();
    let cache = SlotCache::new(pool, CacheConfig::new().with_magazines(256)).unwrap();
    // Slots parked in magazines 3 and 200 (simulated CPUs: this thread alone uses the cache).
    for cpu in [3, 200] {
        // SAFETY: this single-threaded test alone uses the cache it built: no rseq thread
        // touches its magazines or slots.
        unsafe { pcpu_cache::simulate_cpu(Some(cpu)) };
        let slots: Vec<_> = (0..4).map(|_| cache.alloc().unwrap()).collect();
        for slot in slots {
            // SAFETY: each slot came from `cache` and nothing uses it.
            unsafe { cache.free(slot) }.unwrap();
        }
    }
    // SAFETY: ends the simulation.
    unsafe { pcpu_cache::simulate_cpu(None) };
    let parked = cache.stats().cached;
    assert!(parked > 0, "frees parked slots in the magazines");
    let before = cache.stats().counters.drains;
    assert_eq!(cache.drain_all().unwrap(), parked);
    assert_eq!(
        cache.stats().counters.drains - before,
        2,
        "only the magazines that hold slots are stopped"
    );
    assert_eq!(cache.stats().cached, 0);
    assert_eq!(cache.with_pool(SlotSource::assigned), 0);
}

/// `free_home(slot, _, Some(lane))` puts the slot on `lane`'s magazine only while this thread runs
/// on `lane` (simulated CPUs here, on a cache of this test's own): on another lane the slot
/// goes to the pool (the magazine's count does not change, the pool's assigned count drops,
/// the free is counted as slow) and comes back zeroed when the pool hands it out again.
/// `free_to_pool` sends it to the pool from any lane.
#[test]
fn free_home_gives_a_slot_from_elsewhere_to_the_pool() {
    let pool = Pool::new(PoolConfig::new(SizeClass::B8).with_ncpu(2)).unwrap();
    let cache = SlotCache::new(pool, CacheConfig::new()).unwrap();
    // SAFETY: this thread alone uses `cache`, its own: no rseq thread touches its magazines
    // or slots while it runs the portable backend.
    unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
    let a = cache.alloc().unwrap();
    let b = cache.alloc().unwrap();
    let c = cache.alloc().unwrap();
    let addr = <Pool as SlotSource>::slot_addr(a);
    // SAFETY: the slot is ours; lane 0's cell is 8 writable bytes at its address.
    unsafe { (addr as *mut u64).write(7) };
    let cached = cache.stats().cached_per_cpu.clone();
    let assigned = cache.with_pool(SlotSource::assigned);
    let slow = cache.stats().counters.slow_frees;
    // From lane 1's magazine (say), freed on lane 0: to the pool.
    // SAFETY: `a` came from `cache` and nothing uses it any more.
    unsafe { cache.free_home(a, usize::MAX, Some(1)) }.unwrap();
    assert_eq!(cache.stats().cached_per_cpu, cached, "in no magazine");
    assert_eq!(cache.with_pool(SlotSource::assigned), assigned - 1);
    assert_eq!(cache.stats().counters.slow_frees, slow + 1);
    // From lane 0's, freed on lane 0: back on its magazine.
    // SAFETY: as above, for `b`.
    unsafe { cache.free_home(b, usize::MAX, Some(0)) }.unwrap();
    assert_eq!(cache.stats().cached_per_cpu[0], cached[0] + 1, "home again");
    assert_eq!(cache.with_pool(SlotSource::assigned), assigned - 1);
    // Of unknown home: to the pool, even on the lane it came from.
    // SAFETY: as above, for `c`.
    unsafe { cache.free_to_pool(c, usize::MAX) }.unwrap();
    assert_eq!(
        cache.stats().cached_per_cpu[0],
        cached[0] + 1,
        "not on this magazine"
    );
    assert_eq!(cache.with_pool(SlotSource::assigned), assigned - 2);
    assert_eq!(cache.stats().counters.slow_frees, slow + 2);
    // Whoever gets `a`'s cells next finds them zeroed.
    cache.drain_all().unwrap();
    let mut again = Vec::new();
    let mut found = false;
    while !found && again.len() < 1 << 20 {
        let s = cache.alloc().unwrap();
        found = <Pool as SlotSource>::slot_addr(s) == addr;
        again.push(s);
    }
    assert!(found, "the slot given to the pool is handed out again");
    // SAFETY: ours again: lane 0's cell.
    assert_eq!(unsafe { (addr as *const u64).read() }, 0, "and zeroed");
    // SAFETY: as above.
    unsafe { cache.free_batch(again) }.unwrap();
    // SAFETY: back to this thread's real CPU.
    unsafe { pcpu_rseq::simulate_cpu(None) };
}
