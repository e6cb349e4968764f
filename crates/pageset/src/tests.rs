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
    // SAFETY: the tests only call this for assigned or retired slots of a live pool (a
    // pageset holding a retired slot is never unmapped); the cell is in bounds (checked
    // above) and 8-aligned. The 'static is a test shortcut: every use ends before the slot is
    // unassigned.
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

/// Every assignment path skips a retired slot for good: fill the pageset's free slots with
/// `assign`, `assign_batch` and `assign_lines`, and none of them returns a retired address;
/// once the pageset's free slots are used up, the next assignment maps a new pageset (the
/// buckets did not believe retired slots were room).
#[test]
fn retired_slot_is_never_assigned_again() {
    let mut p = pool(SizeClass::B16, 2, 1);
    let cap = p.slots_per_pageset();
    let mut all = Vec::new();
    p.assign_batch(cap, &mut all).unwrap();
    // Retire slots at the lowest index, inside the first cache line, and at the end; free a
    // few others so that lowest-first and whole-line searches both run past retired slots.
    let retired = [all[0], all[1], all[5], all[cap - 1]];
    for &s in &retired {
        p.retire(s).unwrap();
    }
    for &s in &all[2..4] {
        p.unassign(s).unwrap();
    }
    for &s in &all[8..40] {
        p.unassign(s).unwrap();
    }
    let free = 2 + 32;
    assert_eq!(p.stats().free, free);
    let mut got = vec![p.assign().unwrap()];
    p.assign_lines(16, &mut got).unwrap();
    p.assign_batch(free - 17, &mut got).unwrap();
    assert_eq!(
        p.stats().pagesets_mapped,
        1,
        "the free slots were in the pageset"
    );
    for s in &got {
        assert!(!retired.contains(s), "retired slot {s:?} handed out again");
    }
    let mut want: Vec<Slot> = all[2..4].iter().chain(&all[8..40]).copied().collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "exactly the free slots");
    // No free slot left: the pageset is in no bucket and a new one is mapped.
    assert_eq!(p.pagesets()[0].free, 0);
    let s = p.assign().unwrap();
    assert_ne!(p.pageset_of(s), p.pageset_of(all[0]));
    let mut batch = Vec::new();
    p.assign_batch(3, &mut batch).unwrap();
    p.assign_lines(3, &mut batch).unwrap();
    assert_eq!(p.stats().pagesets_mapped, 2);
    assert!(batch.iter().all(|s| !retired.contains(s)));
}

#[test]
fn unassign_or_retire_of_a_retired_slot_is_an_error() {
    let mut p = pool(SizeClass::B16, 2, 1);
    let mut q = pool(SizeClass::B16, 2, 1);
    let s = p.assign().unwrap();
    let t = p.assign().unwrap();
    let foreign = q.assign().unwrap();
    cell(&p, s, 1, 1).store(0x55, Ordering::Relaxed);
    p.retire(s).unwrap();
    let before = p.stats();
    assert!(matches!(p.unassign(s), Err(PagesetError::NotAssigned(x)) if x == s));
    assert!(matches!(p.retire(s), Err(PagesetError::NotAssigned(x)) if x == s));
    assert!(matches!(
        p.unassign_batch(&[t, s]),
        Err(PagesetError::NotAssigned(x)) if x == s
    ));
    assert!(matches!(
        p.retire(foreign),
        Err(PagesetError::ForeignSlot(_))
    ));
    // SAFETY: a misaligned address is rejected by the pool, never written through.
    let odd = unsafe { Slot::from_addr(t.addr() + 8) }.unwrap();
    assert!(matches!(p.retire(odd), Err(PagesetError::ForeignSlot(_))));
    // A free slot cannot be retired either.
    p.unassign(t).unwrap();
    assert!(matches!(p.retire(t), Err(PagesetError::NotAssigned(_))));
    let after = p.stats();
    assert_eq!(
        (after.assigned, after.retired, after.free),
        (before.assigned - 1, before.retired, before.free + 1),
        "only the unassign of t changed anything"
    );
    // Retire does not zero: the contents are left for stray readers.
    assert_eq!(cell(&p, s, 1, 1).load(Ordering::Relaxed), 0x55);
    assert_eq!(q.stats().assigned, 1);
}

#[test]
fn live_slots_omit_retired_slots_and_stats_count_them() {
    let mut p = pool(SizeClass::B32, 3, 1);
    let cap = p.slots_per_pageset();
    let slots: Vec<Slot> = (0..10).map(|_| p.assign().unwrap()).collect();
    let id = p.pageset_of(slots[0]).unwrap();
    p.retire(slots[0]).unwrap();
    p.retire(slots[4]).unwrap();
    p.unassign(slots[7]).unwrap();
    let live: Vec<Slot> = p.live_slots(id).collect();
    let want: Vec<Slot> = [1, 2, 3, 5, 6, 8, 9].iter().map(|&i| slots[i]).collect();
    assert_eq!(live, want, "assigned slots only, in address order");
    let ps = p.pageset_stats(id).unwrap();
    assert_eq!(
        (ps.assigned, ps.retired, ps.free),
        (7, 2, cap - 7 - 2),
        "free = capacity - assigned - retired"
    );
    assert_eq!(p.pagesets(), vec![ps]);
    let st = p.stats();
    assert_eq!((st.assigned, st.retired, st.free), (7, 2, cap - 9));
    // Retiring the last assigned slots of the page: no page is occupied any more.
    for &i in &[1, 2, 3, 5, 6, 8, 9] {
        p.retire(slots[i]).unwrap();
    }
    assert_eq!(p.occupied_pages(), 0);
    assert_eq!(p.live_slots(id).count(), 0);
    let st = p.stats();
    assert_eq!(
        (st.assigned, st.retired, st.free, st.pages_occupied),
        (0, 9, cap - 9, 0)
    );
    // The free slot among them is assigned again; the retired ones are not.
    assert_eq!(p.assign().unwrap(), slots[7]);
    assert!(p.live_slots(id).eq([slots[7]]));
}

/// `release` discards a page whose slots are all free or retired (the retired slot then
/// reads zero), keeps a page that still holds an assigned slot, and never unmaps a pageset
/// holding retired slots even when none is assigned: its retired addresses stay readable.
#[test]
// Measures residency with `mincore`, which Miri does not have (residency is unknown there).
#[cfg_attr(miri, ignore = "needs mincore")]
fn release_discards_retired_pages_but_keeps_their_pageset_mapped() {
    let mut p = pool(SizeClass::B64, 4, 4);
    let per_page = page_size() / 64;
    let mut slots = Vec::new();
    p.assign_batch(3 * per_page, &mut slots).unwrap(); // pages 0..3 of the unit
    for &s in &slots {
        for cpu in 0..4 {
            cell(&p, s, cpu, 0).store(1, Ordering::Relaxed);
        }
    }
    let id = p.pageset_of(slots[0]).unwrap();
    // Page 1: all retired, contents left in place. Page 2: half retired, half free.
    for &s in &slots[per_page..2 * per_page] {
        p.retire(s).unwrap();
    }
    for (i, &s) in slots[2 * per_page..].iter().enumerate() {
        if i % 2 == 0 {
            p.retire(s).unwrap();
        } else {
            p.unassign(s).unwrap();
        }
    }
    // Page 0: one retired slot among assigned ones: not released.
    p.retire(slots[3]).unwrap();
    assert_eq!(cell(&p, slots[per_page], 2, 0).load(Ordering::Relaxed), 1);
    assert_eq!(p.stats().bytes_resident, 3 * 4 * page_size());
    let r = p.release();
    assert_eq!((r.pages_released, r.pagesets_unmapped), (2 * 4, 0));
    assert_eq!(p.stats().bytes_resident, 4 * page_size());
    assert_eq!(p.pageset_stats(id).unwrap().bytes_resident, 4 * page_size());
    assert_eq!(
        cell(&p, slots[3], 1, 0).load(Ordering::Relaxed),
        1,
        "page 0 kept"
    );
    // Nothing more to release (the released pages are clean now).
    assert_eq!(p.release(), ReleaseStats::default());
    // Retire or free everything left: no slot is assigned, yet the pageset stays mapped.
    for (i, &s) in slots[..per_page].iter().enumerate() {
        if i == 3 {
            continue;
        }
        if i % 3 == 0 {
            p.unassign(s).unwrap();
        } else {
            p.retire(s).unwrap();
        }
    }
    assert_eq!(p.stats().assigned, 0);
    let r = p.release();
    assert_eq!((r.pages_released, r.pagesets_unmapped), (4, 0));
    let st = p.stats();
    assert_eq!((st.pagesets_mapped, st.bytes_resident), (1, 0));
    assert_eq!(p.pagesets_mapped(), 1);
    assert!(p.pageset_stats(id).is_some(), "its id stays valid");
    // Every retired address is still mapped and reads zero on every CPU.
    for &s in &slots[3..] {
        for cpu in 0..4 {
            assert_eq!(cell(&p, s, cpu, 0).load(Ordering::Relaxed), 0);
        }
    }
    // Reading did not populate anything but the shared zero page; release again is a no-op.
    assert_eq!(p.release().pagesets_unmapped, 0);
    assert_eq!(p.stats().pagesets_mapped, 1);
}

/// With `keep_address_space`, an emptied pageset's mapping is reused, but one holding a
/// retired slot is neither unmapped nor kept: a new pageset never gets its addresses.
#[test]
fn pageset_with_retired_slots_is_not_kept_for_reuse() {
    let config = PoolConfig::new(SizeClass::B8)
        .with_ncpu(2)
        .with_unit_bytes(page_size())
        .with_keep_address_space(true);
    let mut p = Pool::new(config).unwrap();
    let cap = p.slots_per_pageset();
    let a = p.assign().unwrap();
    let b = p.assign().unwrap();
    let base_a = p.pagesets()[0].base;
    p.retire(a).unwrap();
    p.unassign(b).unwrap();
    let r = p.release();
    assert_eq!(r.pagesets_unmapped, 0);
    let st = p.stats();
    assert_eq!((st.pagesets_mapped, st.bytes_kept), (1, 0));
    // Its free slots are still assigned; then a fresh pageset is mapped, elsewhere.
    let mut rest = Vec::new();
    p.assign_batch(cap - 1, &mut rest).unwrap();
    assert!(!rest.contains(&a));
    assert_eq!(p.stats().pagesets_mapped, 1);
    let c = p.assign().unwrap();
    let id_c = p.pageset_of(c).unwrap();
    let base_c = p.pageset_stats(id_c).unwrap().base;
    assert_ne!(base_c, base_a);
    // Empty the first pageset of assigned slots and the second entirely: only the second is
    // kept, and the next pageset reuses it, not the one holding the retired slot.
    p.unassign_batch(&rest).unwrap();
    p.unassign(c).unwrap();
    let r = p.release();
    assert_eq!(r.pagesets_unmapped, 1);
    let st = p.stats();
    assert_eq!((st.pagesets_mapped, st.bytes_kept), (1, 2 * page_size()));
    assert_eq!(p.pagesets()[0].base, base_a);
    let mut again = Vec::new();
    p.assign_batch(cap, &mut again).unwrap();
    assert!(!again.contains(&a));
    let bases: Vec<usize> = p.pagesets().iter().map(|s| s.base).collect();
    assert_eq!(bases.len(), 2);
    assert!(bases.contains(&base_a) && bases.contains(&base_c));
    assert_eq!(p.stats().bytes_kept, 0);
}

/// The compactor's use: drain a pageset, retire its slots (as if moved out), undrain it.
/// Assignment then uses exactly its free slots, and a pageset whose slots are all assigned
/// or retired is in no bucket: assigning maps a new pageset instead of failing.
#[test]
fn retire_in_a_draining_pageset_keeps_the_accounting() {
    let mut p = pool(SizeClass::B64, 2, 1);
    let cap = p.slots_per_pageset();
    let mut full = Vec::new();
    p.assign_batch(cap, &mut full).unwrap();
    let id = p.pageset_of(full[0]).unwrap();
    p.set_draining(id, true).unwrap();
    // Retire every slot but the last 4; unassign 2 of those.
    for &s in &full[..cap - 4] {
        p.retire(s).unwrap();
    }
    p.unassign(full[cap - 1]).unwrap();
    p.unassign(full[cap - 2]).unwrap();
    let ps = p.pageset_stats(id).unwrap();
    assert_eq!((ps.assigned, ps.retired, ps.free), (2, cap - 4, 2));
    // Draining: a new pageset is mapped for the next slot.
    let other = p.assign().unwrap();
    assert_ne!(p.pageset_of(other), Some(id));
    p.unassign(other).unwrap();
    p.release();
    assert_eq!(p.stats().pagesets_mapped, 1);
    p.set_draining(id, false).unwrap();
    let mut got = Vec::new();
    p.assign_batch(2, &mut got).unwrap();
    got.sort_unstable();
    assert_eq!(got, [full[cap - 2], full[cap - 1]]);
    assert_eq!(p.stats().pagesets_mapped, 1);
    // No free slot now: drain and undrain again, then assign from every path.
    p.set_draining(id, true).unwrap();
    p.set_draining(id, false).unwrap();
    assert_eq!(p.pageset_stats(id).unwrap().free, 0);
    let s = p.assign().unwrap();
    assert_ne!(p.pageset_of(s), Some(id));
    let mut more = Vec::new();
    p.assign_batch(cap - 1, &mut more).unwrap();
    p.assign_lines(1, &mut more).unwrap();
    assert_eq!(p.stats().pagesets_mapped, 3);
    assert!(more.iter().all(|s| !full[..cap - 4].contains(s)));
    let st = p.stats();
    assert_eq!(
        (st.assigned, st.retired, st.free),
        (4 + cap + 1, cap - 4, 3 * cap - (4 + cap + 1) - (cap - 4))
    );
}

/// Density is assigned slots only: a pageset whose objects were moved out (retired) is the
/// sparsest, so new slots go where live slots are and its released pages stay released.
#[test]
fn retired_slots_do_not_count_as_density() {
    let mut p = pool(SizeClass::B64, 2, 1);
    let cap = p.slots_per_pageset();
    let mut a = Vec::new();
    p.assign_batch(2 * cap, &mut a).unwrap();
    let (first, second) = (p.pageset_of(a[0]).unwrap(), p.pageset_of(a[cap]).unwrap());
    // The first pageset: 2 free, 10 retired. The second: 4 free. By assigned slots the
    // second is denser (cap - 4 against cap - 12).
    p.unassign(a[0]).unwrap();
    p.unassign(a[1]).unwrap();
    for &s in &a[2..12] {
        p.retire(s).unwrap();
    }
    for &s in &a[cap..cap + 4] {
        p.unassign(s).unwrap();
    }
    let s = p.assign().unwrap();
    assert_eq!(p.pageset_of(s), Some(second), "densest by assigned slots");
    assert_eq!(s, a[cap]);
    // Retiring in the second pageset makes it the sparser one.
    for &s in &a[cap + 4..cap + 20] {
        p.retire(s).unwrap();
    }
    let s = p.assign().unwrap();
    assert_eq!(p.pageset_of(s), Some(first));
    assert_eq!(s, a[0]);
}
