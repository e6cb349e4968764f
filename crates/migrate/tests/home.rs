//! Where a detached slot goes: back to this CPU's magazine if it came from it, to the pool if
//! it came from another CPU's (its object's user moved between `attach` and `detach`), so
//! that no CPU reuses a slot whose cache-line neighbours sit in another CPU's working set.
//! Threads here simulate their CPU (`pcpu_rseq::simulate_cpu`), on a space of their own.
#![cfg(not(loom))]

use pcpu_migrate::{Header, Release, Space, SpaceConfig};
use pcpu_pageset::SizeClass;

fn space() -> Space {
    let mut config = SpaceConfig::new(SizeClass::B8);
    config.ncpu = 4;
    Space::new(config).unwrap()
}

/// Attaches a new header on simulated CPU `from`, detaches it on `to`; returns the change in
/// the space's slow frees and in the cached slots of `to`'s magazine.
fn round_trip(space: &Space, from: usize, to: usize) -> (u64, isize) {
    let header = Box::new(Header::new());
    // SAFETY: this thread alone uses `space` (its own), so no rseq thread updates its cells
    // or magazines while this thread runs the portable backend.
    unsafe { pcpu_rseq::simulate_cpu(Some(from)) };
    // SAFETY: a boxed header, attached through this space only, detached below.
    assert!(unsafe { space.attach(&header) }.unwrap());
    let before = space.cache_stats();
    // SAFETY: as above.
    unsafe { pcpu_rseq::simulate_cpu(Some(to)) };
    // SAFETY: attached through `space`; nobody uses it any more.
    let release = unsafe { space.detach(&header) }.unwrap();
    assert!(matches!(release, Release::Now), "no compaction runs");
    let after = space.cache_stats();
    // SAFETY: back to this thread's real CPU (nothing else to undo).
    unsafe { pcpu_rseq::simulate_cpu(None) };
    // The portable backend's magazine for a CPU index past the last one.
    let mag = to % space.cache_stats().cached_per_cpu.len();
    (
        after.counters.slow_frees - before.counters.slow_frees,
        after.cached_per_cpu[mag] as isize - before.cached_per_cpu[mag] as isize,
    )
}

#[test]
fn a_slot_detached_on_its_own_cpu_goes_back_to_its_magazine() {
    let space = space();
    assert_eq!(round_trip(&space, 1, 1), (0, 1));
    assert_eq!(round_trip(&space, 2, 2), (0, 1));
}

/// A CPU index at or above the space's magazine count (a domain built for fewer CPUs than
/// the machine has, on the portable backend, which wraps the index) is home as well: its
/// slots go back to the magazine the portable backend took them from, not to the pool.
#[test]
fn a_cpu_past_the_magazines_frees_home_too() {
    let space = space();
    let magazines = space.cache_stats().cached_per_cpu.len();
    let past = magazines + 1;
    assert_eq!(round_trip(&space, past, past), (0, 1));
    // CPU `magazines + 1` wraps to magazine 1: the same magazine as CPU 1's, so home.
    assert_eq!(round_trip(&space, past, 1), (0, 1));
    assert_eq!(round_trip(&space, past, 2), (1, 0));
}

#[test]
fn a_slot_detached_on_another_cpu_goes_to_the_pool() {
    let space = space();
    assert_eq!(round_trip(&space, 1, 2), (1, 0));
    assert_eq!(round_trip(&space, 3, 0), (1, 0));
    // Nothing lost: every slot the pool has handed out sits in a magazine.
    assert_eq!(space.pool_stats().assigned, space.cache_stats().cached);
}

/// The home lives in the slot's owner lane: `attach_lane` reads it back, `forget_home`
/// clears it, and a slot whose home was forgotten goes to the pool even when detached on
/// the lane it came from.
#[test]
fn a_forgotten_home_sends_the_slot_to_the_pool() {
    let space = space();
    let header = Box::new(Header::new());
    // SAFETY: this thread alone uses `space` (see `round_trip`).
    unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
    // SAFETY: a boxed header, attached through this space only, detached below.
    assert!(unsafe { space.attach(&header) }.unwrap());
    // SAFETY: attached through `space`.
    assert_eq!(unsafe { space.attach_lane(&header) }, Some(1));
    // SAFETY: as above.
    unsafe { space.forget_home(&header) };
    // SAFETY: as above.
    assert_eq!(unsafe { space.attach_lane(&header) }, None);
    let before = space.cache_stats().counters.slow_frees;
    // SAFETY: attached through `space`; nobody uses it any more.
    let _ = unsafe { space.detach(&header) }.unwrap();
    assert_eq!(space.cache_stats().counters.slow_frees, before + 1);
    // SAFETY: back to this thread's real CPU.
    unsafe { pcpu_rseq::simulate_cpu(None) };
    // A header that never had a slot has no attach lane.
    let unattached = Header::new();
    // SAFETY: never attached.
    assert_eq!(unsafe { space.attach_lane(&unattached) }, None);
}

/// A relocation keeps the attach lane (the owner's block may still go back there) but marks
/// the new slot as moved: detached on the attach lane, each moved slot goes to the pool.
#[test]
fn a_relocated_slot_keeps_its_attach_lane_and_goes_to_the_pool() {
    let mut config = SpaceConfig::new(SizeClass::B8);
    config.ncpu = 4;
    config.unit_bytes = Some(pcpu_pageset::page_size());
    let space = Space::new(config).unwrap();
    // SAFETY: this thread alone uses `space` (see `round_trip`).
    unsafe { pcpu_rseq::simulate_cpu(Some(2)) };
    let headers: Vec<Box<Header>> = (0..2048).map(|_| Box::new(Header::new())).collect();
    for h in &headers {
        // SAFETY: boxed, attached through this space only, detached below.
        assert!(unsafe { space.attach(h) }.unwrap());
    }
    // Keep 8, spread over the pagesets, so that compaction has sparse pagesets to empty.
    let mut live = Vec::new();
    for (i, h) in headers.into_iter().enumerate() {
        if i % 256 == 0 {
            live.push(h);
        } else {
            // SAFETY: attached through `space`; nobody uses it any more.
            let _ = unsafe { space.detach(&h) }.unwrap();
        }
    }
    space.drain_caches().unwrap();
    let report = space
        .compact(&pcpu_migrate::CompactPolicy {
            occupancy_below: 1.0,
        })
        .unwrap();
    assert!(report.slots_moved > 0, "something moved: {report:?}");
    for h in &live {
        // SAFETY: attached through `space`.
        assert_eq!(unsafe { space.attach_lane(h) }, Some(2));
    }
    let before = space.cache_stats().counters.slow_frees;
    for h in &live {
        // SAFETY: attached through `space`; nobody uses it any more.
        let _ = unsafe { space.detach(h) }.unwrap();
    }
    let to_pool = space.cache_stats().counters.slow_frees - before;
    assert_eq!(
        to_pool, report.slots_moved as u64,
        "moved slots go to the pool"
    );
    // SAFETY: back to this thread's real CPU.
    unsafe { pcpu_rseq::simulate_cpu(None) };
    pcpu_rseq::epoch_grace_period();
}
