//! Unit tests of the pool's policies (the model-based tests live in `tests/`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::*;

fn pool(class: SizeClass, ncpu: usize, pages: usize) -> Pool {
    Pool::new(
        PoolConfig::new(class)
            .with_ncpu(ncpu)
            .with_unit_bytes(pages * page_size()),
    )
    .unwrap()
}

fn cell(pool: &Pool, slot: Slot, cpu: usize, word: usize) -> &'static AtomicU64 {
    assert!(cpu < pool.ncpu() && word < pool.class().bytes() / 8);
    // SAFETY: the tests only call this for assigned slots of a live pool; the cell is in
    // bounds (checked above) and 8-aligned. The 'static is a test shortcut: every use ends
    // before the slot is unassigned.
    unsafe { AtomicU64::from_ptr((slot.addr() + cpu * pool.stride() + word * 8) as *mut u64) }
}

#[test]
fn pool_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Pool>();
}

#[test]
fn invalid_configs_are_errors() {
    let c = PoolConfig::new(SizeClass::B8);
    assert!(matches!(
        Pool::new(c.with_ncpu(0)),
        Err(PagesetError::InvalidConfig(_))
    ));
    assert!(matches!(
        Pool::new(c.with_unit_bytes(0)),
        Err(PagesetError::InvalidConfig(_))
    ));
    assert!(matches!(
        Pool::new(c.with_unit_bytes(1000)),
        Err(PagesetError::InvalidConfig(_))
    ));
    assert!(matches!(
        Pool::new(c.with_ncpu(usize::MAX / 2)),
        Err(PagesetError::InvalidConfig(_))
    ));
}

#[test]
fn nothing_mapped_until_first_assign() {
    let mut p = pool(SizeClass::B8, 4, 1);
    assert_eq!(p.stats().pagesets_mapped, 0);
    let s = p.assign().unwrap();
    assert_eq!(p.stats().pagesets_mapped, 1);
    assert_eq!(p.stats().bytes_mapped, 4 * page_size());
    assert_eq!(p.stride(), page_size());
    assert_eq!(s.addr() % 8, 0);
}

#[test]
fn densest_first_and_lowest_slot() {
    let mut p = pool(SizeClass::B64, 2, 1);
    let cap = p.slots_per_pageset();
    let mut a = Vec::new();
    p.assign_batch(2 * cap, &mut a).unwrap();
    assert_eq!(p.stats().pagesets_mapped, 2);
    let first = p.pageset_of(a[0]).unwrap();
    let second = p.pageset_of(a[cap]).unwrap();
    assert_ne!(first, second);
    // Free 3 slots in the first pageset and 1 in the second: the second is denser.
    for &s in &a[1..4] {
        p.unassign(s).unwrap();
    }
    p.unassign(a[cap + 5]).unwrap();
    let s = p.assign().unwrap();
    assert_eq!(s, a[cap + 5], "densest pageset, lowest free slot");
    let s = p.assign().unwrap();
    assert_eq!(s, a[1], "then the lowest free slot of the next densest");
    // Draining the first pageset excludes it: a new pageset is mapped instead.
    p.set_draining(first, true).unwrap();
    let s = p.assign().unwrap();
    let third = p.pageset_of(s).unwrap();
    assert!(third != first && third != second);
    assert_eq!(p.stats().pagesets_draining, 1);
    p.set_draining(first, false).unwrap();
    let s = p.assign().unwrap();
    assert_eq!(s, a[2]);
}

/// A magazine's batch (`assign_lines`) takes whole cache lines no assigned slot shares, one
/// after another, skipping the holes of partly used lines, which a plain batch would fill
/// first (lowest-first); only with no such line left does it take the holes.
#[test]
fn magazine_batches_take_whole_free_lines() {
    let mut p = pool(SizeClass::B8, 2, 1);
    let cap = p.slots_per_pageset();
    let line = |s: Slot| s.addr() / 64;
    let mut a = Vec::new();
    p.assign_batch(32, &mut a).unwrap();
    // Free the second half of the first two lines (slots 4..8 and 12..16): holes in lines
    // whose other halves are still assigned.
    for &s in a[4..8].iter().chain(&a[12..16]) {
        p.unassign(s).unwrap();
    }
    let mut plain = Vec::new();
    p.assign_batch(8, &mut plain).unwrap();
    assert_eq!(
        plain[..4],
        a[4..8],
        "a plain batch fills the holes, lowest first"
    );
    for &s in &plain {
        p.unassign(s).unwrap();
    }
    let mut lined = Vec::new();
    p.assign_lines(16, &mut lined).unwrap();
    let lines: std::collections::BTreeSet<usize> = lined.iter().map(|&s| line(s)).collect();
    assert_eq!(lines.len(), 2, "16 slots of 8 bytes: two whole lines");
    for &s in &lined {
        assert!(!a[..4].iter().chain(&a[8..12]).any(|&t| line(t) == line(s)));
        assert!(!a[16..].iter().any(|&t| line(t) == line(s)));
    }
    // Use up every whole free line of the pageset: then the holes are taken.
    let whole_lines_left = (cap - 32 - 16) / 8;
    let mut rest = Vec::new();
    p.assign_lines(whole_lines_left * 8, &mut rest).unwrap();
    let mut holes = Vec::new();
    p.assign_lines(8, &mut holes).unwrap();
    let mut expect = a[4..8].to_vec();
    expect.extend_from_slice(&a[12..16]);
    holes.sort_by_key(|s| s.addr());
    assert_eq!(holes, expect, "no free line left: the holes");
    assert_eq!(p.stats().pagesets_mapped, 1);
}

#[test]
fn double_unassign_and_foreign_slots_are_errors() {
    let mut p = pool(SizeClass::B16, 2, 1);
    let mut q = pool(SizeClass::B16, 2, 1);
    let s = p.assign().unwrap();
    let t = q.assign().unwrap();
    assert!(matches!(q.unassign(s), Err(PagesetError::ForeignSlot(_))));
    assert!(matches!(p.unassign(t), Err(PagesetError::ForeignSlot(_))));
    // SAFETY: a misaligned address is rejected by the pool, never written through.
    let odd = unsafe { Slot::from_addr(s.addr() + 8) }.unwrap();
    assert!(matches!(p.unassign(odd), Err(PagesetError::ForeignSlot(_))));
    // SAFETY: as above; 0 is not a slot.
    assert!(unsafe { Slot::from_addr(0) }.is_none());
    p.unassign(s).unwrap();
    assert!(matches!(p.unassign(s), Err(PagesetError::NotAssigned(_))));
    assert!(matches!(
        p.unassign_batch(&[s]),
        Err(PagesetError::NotAssigned(_))
    ));
    let id = p.pageset_of(s).unwrap();
    assert_eq!(p.live_slots(id).count(), 0);
    assert_eq!(p.stats().assigned, 0);
    assert_eq!(q.stats().assigned, 1);
}

#[test]
fn live_slots_lists_exactly_the_live_slots() {
    let mut p = pool(SizeClass::B32, 3, 1);
    let slots: Vec<Slot> = (0..10).map(|_| p.assign().unwrap()).collect();
    p.unassign(slots[7]).unwrap();
    p.unassign(slots[0]).unwrap();
    let id = p.pageset_of(slots[0]).unwrap();
    let live: Vec<Slot> = p.live_slots(id).collect();
    let mut want: Vec<Slot> = [&slots[1..7], &slots[8..]].concat();
    want.sort_unstable();
    assert_eq!(live, want, "the live slots, in address order");
    // A slot assigned again is listed again.
    let s = p.assign().unwrap();
    assert_eq!(s, slots[0], "lowest free slot");
    assert_eq!(p.live_slots(id).count(), 9);
    assert_eq!(p.live_slots(id).next(), Some(s));
    let stats = p.pagesets();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].assigned, stats[0].free),
        (9, p.slots_per_pageset() - 9)
    );
}

#[test]
fn reassigned_slot_reads_zero_with_and_without_pagemap() {
    for probe in [true, false] {
        let mut p = pool(SizeClass::B32, 8, 1);
        p.set_pagemap_probe(probe);
        let s = p.assign().unwrap();
        for cpu in [0, 3, 7] {
            for w in 0..4 {
                cell(&p, s, cpu, w).store(0xdead_beef + w as u64, Ordering::Relaxed);
            }
        }
        p.unassign(s).unwrap();
        let t = p.assign().unwrap();
        assert_eq!(s, t);
        for cpu in 0..8 {
            for w in 0..4 {
                assert_eq!(
                    cell(&p, t, cpu, w).load(Ordering::Relaxed),
                    0,
                    "probe {probe}"
                );
            }
        }
    }
}

#[test]
// Measures residency with `mincore`, which Miri does not have (residency is unknown there).
#[cfg_attr(miri, ignore = "needs mincore")]
fn release_gives_back_free_pages_and_empty_pagesets() {
    let mut p = pool(SizeClass::B64, 4, 4);
    let per_page = page_size() / 64;
    let mut slots = Vec::new();
    p.assign_batch(3 * per_page, &mut slots).unwrap(); // pages 0..3 of the unit
    for &s in &slots {
        for cpu in 0..4 {
            cell(&p, s, cpu, 0).store(1, Ordering::Relaxed);
        }
    }
    assert_eq!(p.stats().bytes_resident, 3 * 4 * page_size());
    // Linux has mincore: residency is read, never unknown.
    assert!(p.stats().resident_known);
    assert!(p.pagesets().iter().all(|ps| ps.resident_known));
    // Free pages 1 and 2 entirely.
    for &s in &slots[per_page..] {
        p.unassign(s).unwrap();
    }
    let r = p.release();
    assert_eq!(r.pages_released, 2 * 4);
    assert_eq!(r.pagesets_unmapped, 0);
    assert_eq!(p.stats().bytes_resident, 4 * page_size());
    // Nothing more to release.
    assert_eq!(p.release(), ReleaseStats::default());
    for &s in &slots[..per_page] {
        p.unassign(s).unwrap();
    }
    let r = p.release();
    assert_eq!(r.pagesets_unmapped, 1);
    let st = p.stats();
    assert_eq!(
        (st.pagesets_mapped, st.bytes_mapped, st.bytes_resident),
        (0, 0, 0)
    );
    assert_eq!((st.pages_released, st.pagesets_unmapped), (8, 1));
    // The pool keeps working after unmapping everything.
    let s = p.assign().unwrap();
    let id = p.pageset_of(s).unwrap();
    assert!(p.live_slots(id).eq([s]));
}

#[test]
fn stale_pageset_ids_are_rejected() {
    let mut p = pool(SizeClass::B8, 1, 1);
    let s = p.assign().unwrap();
    let id = p.pageset_of(s).unwrap();
    p.unassign(s).unwrap();
    p.release();
    let s = p.assign().unwrap();
    let id2 = p.pageset_of(s).unwrap();
    assert_ne!(id, id2);
    assert!(matches!(
        p.set_draining(id, true),
        Err(PagesetError::UnknownPageset(_))
    ));
    assert_eq!(p.live_slots(id).count(), 0);
    assert_eq!(p.live_slots(id2).count(), 1);
}

#[test]
fn kept_address_space_stays_readable_and_is_reused() {
    let config = PoolConfig::new(SizeClass::B8)
        .with_ncpu(2)
        .with_unit_bytes(page_size());
    let mut pool = Pool::new(config.with_keep_address_space(true)).unwrap();
    let slot = pool.assign().unwrap();
    cell(&pool, slot, 1, 0).store(7, Ordering::Relaxed);
    let base = pool.pagesets()[0].base;
    pool.unassign(slot).unwrap();
    let released = pool.release();
    assert_eq!(released.pagesets_unmapped, 1);
    let st = pool.stats();
    assert_eq!((st.pagesets_mapped, st.bytes_mapped), (0, 0));
    assert_eq!(st.bytes_kept, 2 * page_size());
    // Still mapped: a stray reader of the freed slot reads zero instead of faulting.
    assert_eq!(cell(&pool, slot, 1, 0).load(Ordering::Relaxed), 0);
    // The next pageset is the kept mapping, and it is handed out zeroed.
    let again = pool.assign().unwrap();
    assert_eq!(pool.pagesets()[0].base, base);
    assert_eq!(pool.stats().bytes_kept, 0);
    assert_eq!(cell(&pool, again, 1, 0).load(Ordering::Relaxed), 0);

    // Without the option the emptied pageset is unmapped and nothing is kept.
    let mut plain = Pool::new(config).unwrap();
    let slot = plain.assign().unwrap();
    plain.unassign(slot).unwrap();
    assert_eq!(plain.release().pagesets_unmapped, 1);
    assert_eq!(plain.stats().bytes_kept, 0);
}

/// A slot kept after its pageset was unmapped (given back, then `release`): unassigning it is
/// an error and writes nothing (the zeroing would otherwise write to unmapped memory), and
/// the same address handed out again by a new pageset is not confused with it.
#[test]
fn slot_of_a_released_pageset_is_an_error() {
    let mut p = pool(SizeClass::B16, 2, 1);
    let s = p.assign().unwrap();
    let id = p.pageset_of(s).unwrap();
    p.unassign(s).unwrap();
    assert_eq!(p.release().pagesets_unmapped, 1);
    assert!(p.pageset_stats(id).is_none(), "the old id names nothing");
    assert!(p.set_draining(id, true).is_err());
    assert_eq!(p.live_slots(id).count(), 0);
    assert!(matches!(
        p.unassign(s),
        Err(PagesetError::ForeignSlot(_) | PagesetError::NotAssigned(_))
    ));
    // A new pageset may get the same address range back from mmap: its id is still new.
    let t = p.assign().unwrap();
    assert_ne!(p.pageset_of(t), Some(id));
    p.unassign(t).unwrap();
}
