//! Memory follows the CPUs that write: a pool configured for 256 CPUs, written only from
//! CPUs 0 and 1, is resident (per mincore) for about 2 CPUs, though mapped for 256.

// Not under Miri: every test here measures residency with `mincore`, which Miri does not have.
#![cfg(not(miri))]

use std::sync::atomic::{AtomicU64, Ordering};

use pcpu_pageset::{page_size, Pool, PoolConfig, SizeClass, Slot};

const NCPU: usize = 256;
const SLOTS: usize = 100_000;

fn cell(pool: &Pool, slot: Slot, cpu: usize) -> &AtomicU64 {
    assert!(cpu < pool.ncpu());
    // SAFETY: `slot` is assigned by `pool`, which outlives the borrow; the cell is in bounds
    // and 8-aligned; every access in this test is atomic.
    unsafe { AtomicU64::from_ptr((slot.addr() + cpu * pool.stride()) as *mut u64) }
}

#[test]
fn memory_follows_writing_cpus() {
    let mut pool = Pool::new(PoolConfig::new(SizeClass::B8).with_ncpu(NCPU)).unwrap();
    let mut slots = Vec::new();
    pool.assign_batch(SLOTS, &mut slots).unwrap();
    assert_eq!(pool.stats().bytes_resident, 0, "assign touches no memory");
    for &slot in &slots {
        cell(&pool, slot, 0).fetch_add(1, Ordering::Relaxed);
        cell(&pool, slot, 1).fetch_add(2, Ordering::Relaxed);
    }
    let need = (SLOTS * 8 * 2).next_multiple_of(page_size());
    let st = pool.stats();
    eprintln!(
        "256 CPUs, {SLOTS} slots written on 2: resident {} B, need {need} B, mapped {} B",
        st.bytes_resident, st.bytes_mapped
    );
    assert!(st.bytes_resident >= need, "mincore sees the written pages");
    assert!(
        st.bytes_resident <= 2 * need,
        "resident {} > 2 x {need}",
        st.bytes_resident
    );
    assert!(st.bytes_mapped >= 200 * need / 2, "mapped for 256 CPUs");

    // Free every other slot (in one batch) and churn: zeroing on unassign must not populate
    // other CPUs.
    let odd: Vec<Slot> = slots.iter().skip(1).step_by(2).copied().collect();
    pool.unassign_batch(&odd).unwrap();
    assert!(
        pool.unassign_batch(&odd[..1]).is_err(),
        "double unassign in a batch"
    );
    let mut again = Vec::new();
    pool.assign_batch(SLOTS / 2, &mut again).unwrap();
    for &slot in &again {
        assert_eq!(cell(&pool, slot, 0).load(Ordering::Relaxed), 0);
        assert_eq!(cell(&pool, slot, 1).load(Ordering::Relaxed), 0);
    }
    let st = pool.stats();
    assert!(
        st.bytes_resident <= 2 * need,
        "churn populated other CPUs: {}",
        st.bytes_resident
    );

    // Free everything: release unmaps every pageset.
    for slot in slots.into_iter().step_by(2).chain(again) {
        pool.unassign(slot).unwrap();
    }
    let r = pool.release();
    let st = pool.stats();
    assert_eq!(r.pagesets_unmapped as u64, st.pagesets_created);
    assert_eq!(
        (st.pagesets_mapped, st.bytes_mapped, st.bytes_resident),
        (0, 0, 0)
    );
}

/// Releasing pages: a pageset whose upper pages are free gives them back on every CPU.
#[test]
fn release_drops_resident_pages() {
    let mut pool = Pool::new(PoolConfig::new(SizeClass::B8).with_ncpu(NCPU)).unwrap();
    let cap = pool.slots_per_pageset();
    let mut slots = Vec::new();
    pool.assign_batch(cap, &mut slots).unwrap();
    for &slot in &slots {
        for cpu in [0, 17, 255] {
            cell(&pool, slot, cpu).store(9, Ordering::Relaxed);
        }
    }
    let full = pool.stats().bytes_resident;
    assert_eq!(full, 3 * pool.stride());
    // Keep only the first page's slots.
    let per_page = page_size() / 8;
    for &slot in &slots[per_page..] {
        pool.unassign(slot).unwrap();
    }
    let r = pool.release();
    assert_eq!(r.pages_released, (pool.stride() / page_size() - 1) * NCPU);
    assert_eq!(pool.stats().bytes_resident, 3 * page_size());
}
