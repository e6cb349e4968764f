//! Mapping failure under `RLIMIT_AS` is an error, and the pool stays usable.
//!
//! The parent test re-runs this test binary (`pcpu_testkit::rlimit`), running only
//! `rlimit_child`, which lowers its own address-space limit and grows a pool until assign
//! fails. Its exit code (0, or 101 for a failed assertion) carries the verdict; a crash
//! (abort on allocation failure, SIGSEGV) fails the parent too. Unix only (`setrlimit`).
// Not under Miri: it runs a child process (Miri cannot spawn one) that calls `setrlimit`.
#![cfg(all(unix, not(miri)))]

use pcpu_pageset::{PagesetError, Pool, PoolConfig, SizeClass, Slot};
use pcpu_testkit::rlimit;

#[test]
fn rlimit_as_parent() {
    rlimit::run_child("rlimit_child");
}

#[test]
fn rlimit_child() {
    if !rlimit::is_child() {
        return; // only meaningful in the re-executed child
    }
    // 64 simulated CPUs x the default unit (16 KiB, or a page where pages are larger): with
    // 16 KiB, 1 MiB per pageset and 2048 slots each.
    let config = PoolConfig::new(SizeClass::B8).with_ncpu(64);
    let mut pool = Pool::new(config).unwrap();
    let cap = pool.slots_per_pageset();
    let mut slots = Vec::with_capacity(1 << 20);
    let mut batch = Vec::with_capacity(4 * cap);

    rlimit::set_address_space_limit(rlimit::address_space_size() + (48 << 20));

    let err = loop {
        match pool.assign() {
            Ok(slot) => slots.push(slot),
            Err(e) => break e,
        }
        assert!(slots.len() < (1 << 20), "RLIMIT_AS never hit");
    };
    assert!(
        matches!(
            err,
            PagesetError::Map { .. } | PagesetError::OutOfMemory { .. }
        ),
        "unexpected error {err}"
    );
    let mapped = pool.stats().pagesets_mapped;
    assert!(mapped >= 2, "limit hit after {mapped} pagesets");
    assert_eq!(pool.stats().assigned, slots.len());
    assert_eq!(
        slots.len(),
        mapped * cap,
        "the pool was full when mapping failed"
    );

    // A batch that needs new pagesets fails as a whole, handing out nothing.
    assert!(pool.assign_batch(3 * cap, &mut batch).is_err());
    assert!(batch.is_empty());
    assert_eq!(pool.stats().assigned, slots.len());
    assert_eq!(pool.stats().pagesets_mapped, mapped);

    // Still usable: free a few slots, assign again (no new mapping needed): the pool hands
    // back exactly the freed slots, the only free ones.
    let mut freed: Vec<Slot> = slots.drain(10..20).collect();
    for &slot in &freed {
        pool.unassign(slot).unwrap();
    }
    let mut again: Vec<Slot> = (0..10).map(|_| pool.assign().unwrap()).collect();
    freed.sort_unstable();
    again.sort_unstable();
    assert_eq!(again, freed);
    slots.extend(again);
    assert!(pool.assign().is_err(), "still full");
    pool.assign_batch(0, &mut batch).unwrap();

    // Free a whole pageset's worth, release it, and mapping works again.
    for slot in slots.drain(..) {
        pool.unassign(slot).unwrap();
    }
    let r = pool.release();
    assert_eq!(r.pagesets_unmapped, mapped);
    let slot = pool.assign().unwrap();
    let id = pool.pageset_of(slot).unwrap();
    assert!(pool.live_slots(id).eq([slot]));
    assert_eq!(pool.stats().pagesets_mapped, 1);
}
