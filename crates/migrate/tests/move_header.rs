//! `Space::move_header` on the real backend: a header's identity (its slot) moves to another
//! address; the tombstone left behind sends adds to the slow path, reads no cells, and refuses
//! detach and `take_cells`; the owner lane names the new header, so that a compaction
//! relocates the slot through it.
#![cfg(not(loom))] // needs the pageset layer, which maps real memory

use pcpu_migrate::{CompactPolicy, Header, MigrateError, Space, SpaceConfig, State};
use pcpu_pageset::SizeClass;

/// Adds `delta` through `header` per-CPU; false if the section refused (the slow path).
fn add(space: &Space, header: &Header, delta: i64) -> bool {
    let params = pcpu_rseq::FoldParams::new(space.stride(), space.ncpu(), 1 << 40);
    // SAFETY: the slot word is disabled or addresses a slot of `space`, whose cells are
    // `stride` apart for `ncpu` CPUs; the batch is never reached here.
    match unsafe { pcpu_rseq::add_fold_with(header.slot_word(), &params, delta) } {
        Ok(moved) => {
            assert_eq!(moved, 0, "no fold below the batch");
            true
        }
        Err(_) => false,
    }
}

/// The slot `header` reads (0: none).
fn slot_of(header: &Header) -> usize {
    pcpu_rseq::slot_cells(
        header
            .slot_word()
            .load(std::sync::atomic::Ordering::Acquire),
    )
}

/// What `header`'s cells hold.
fn cells(space: &Space, header: &Header) -> i64 {
    // SAFETY: unattached, moved, or attached through `space`; one word per cell.
    unsafe { space.sum_word(header, 0) }
}

#[test]
fn a_moved_header_hands_its_slot_to_the_new_one() {
    let space = Space::new(SpaceConfig::new(SizeClass::B8)).unwrap();
    let old = Box::new(Header::new());
    // SAFETY: boxed, never freed before the space (dropped last, below).
    assert!(unsafe { space.attach(&old) }.unwrap());
    let slot = slot_of(&old);
    let mut central = 0;
    for _ in 0..5 {
        if !add(&space, &old, 1) {
            central += 1; // no rseq on this thread's backend (valgrind): the slow path
        }
    }
    let new = Box::new(Header::new());
    let mut forwarded = 0;
    // SAFETY: `old` is attached through `space`; `new` is a new header, boxed, reached by
    // nobody else; `old` stays alive (and never holds another header) until the end.
    let moved = unsafe { space.move_header(&old, &new, || forwarded += 1) }.unwrap();
    assert!(moved);
    assert_eq!(forwarded, 1, "the owner's record runs once");
    assert_eq!(old.state(), State::Moved);
    assert!(old.is_moved() && !old.is_attached());
    assert_eq!(slot_of(&old), 0, "the tombstone has no slot");
    assert_eq!(new.state(), State::Attached);
    assert_eq!(slot_of(&new), slot, "same slot, same cells");
    assert_eq!(cells(&space, &new) + central, 5);
    assert_eq!(cells(&space, &old), 0);
    assert!(
        !add(&space, &old, 100),
        "an add through the tombstone takes the slow path"
    );
    assert_eq!(cells(&space, &new) + central, 5, "and writes no cell");
    if add(&space, &new, 2) {
        assert_eq!(cells(&space, &new) + central, 7);
    }
    // SAFETY: as above.
    let again = unsafe { space.move_header(&old, &Header::new(), || forwarded += 1) }.unwrap();
    assert!(!again, "a tombstone cannot be moved");
    assert_eq!(forwarded, 1);
    let mut out = [0];
    // SAFETY: moved, through `space`.
    let taken = unsafe { space.take_cells(&old, &mut out) };
    assert!(matches!(taken, Err(MigrateError::Moved)), "{taken:?}");
    // SAFETY: as above; nobody uses it.
    let detached = unsafe { space.detach(&old) };
    assert!(matches!(detached, Err(MigrateError::Moved)), "{detached:?}");
    assert_eq!(old.state(), State::Moved, "detach left it as it was");
    // SAFETY: attached through `space`; nobody uses it any more.
    let _ = unsafe { space.detach(&new) }.unwrap();
    assert_eq!(new.state(), State::Dead);
}

#[test]
fn an_unattached_header_moves_unattached() {
    let space = Space::new(SpaceConfig::new(SizeClass::B8)).unwrap();
    let old = Box::new(Header::new());
    let new = Box::new(Header::new());
    // SAFETY: as in the test above.
    assert!(unsafe { space.move_header(&old, &new, || {}) }.unwrap());
    assert_eq!(
        (old.state(), new.state()),
        (State::Moved, State::Unattached)
    );
    // SAFETY: as above: the tombstone cannot be attached, the new header can.
    assert!(!unsafe { space.attach(&old) }.unwrap());
    // SAFETY: boxed, detached below before it is dropped.
    assert!(unsafe { space.attach(&new) }.unwrap());
    // SAFETY: attached through `space`; nobody uses it any more.
    let _ = unsafe { space.detach(&new) }.unwrap();
}

/// The owner lane names the new header: a compaction claims it there and moves its slot, and
/// the totals follow. With the lane left naming the old header, the compactor would find the
/// tombstone, fail to claim it, and skip every moved object (`slots_moved` 0).
#[test]
fn compaction_relocates_slots_through_moved_headers() {
    let mut config = SpaceConfig::new(SizeClass::B8);
    config.unit_bytes = Some(pcpu_pageset::page_size()); // small pagesets: many to compact
    let space = Space::new(config).unwrap();
    let all: Vec<Box<Header>> = (0..4096).map(|_| Box::new(Header::new())).collect();
    for h in &all {
        // SAFETY: boxed; every header is detached or kept alive until the space is dropped.
        assert!(unsafe { space.attach(h) }.unwrap());
    }
    let mut kept = Vec::new();
    let mut tombstones = Vec::new();
    for (i, h) in all.into_iter().enumerate() {
        if i % 8 != 0 {
            // SAFETY: attached through `space`; nobody uses it.
            let _ = unsafe { space.detach(&h) }.unwrap();
            continue;
        }
        let value = i as i64;
        let central = if add(&space, &h, value) { 0 } else { value };
        let new = Box::new(Header::new());
        // SAFETY: `h` is attached through `space`; `new` is new and boxed; `h` is kept alive
        // (in `tombstones`) for as long as the space.
        assert!(unsafe { space.move_header(&h, &new, || {}) }.unwrap());
        kept.push((new, central, value));
        tombstones.push(h);
    }
    let before: Vec<usize> = kept.iter().map(|(h, _, _)| slot_of(h)).collect();
    let report = space.compact(&CompactPolicy::default()).unwrap();
    assert!(report.slots_moved > 0, "{report:?}");
    let after: Vec<usize> = kept.iter().map(|(h, _, _)| slot_of(h)).collect();
    assert_ne!(before, after, "some slot moved");
    for (h, central, value) in &kept {
        assert_eq!(
            cells(&space, h) + central,
            *value,
            "the total followed its slot"
        );
        assert_eq!(h.state(), State::Attached);
    }
    for t in &tombstones {
        assert_eq!(
            (t.state(), slot_of(t)),
            (State::Moved, 0),
            "untouched by compaction"
        );
    }
    for (h, _, _) in &kept {
        // SAFETY: attached through `space`; nobody uses it any more.
        let _ = unsafe { space.detach(h) }.unwrap();
    }
}

/// `move_headers` finds attached headers through the owner lanes: it moves those `wanted`
/// accepts and `keep` does not hold back, records each move once, and leaves the others (and
/// every detached header) alone.
#[test]
fn move_headers_moves_the_wanted_attached_headers() {
    use std::collections::{HashMap, HashSet};
    use std::ptr::NonNull;
    let space = Space::new(SpaceConfig::new(SizeClass::B8)).unwrap();
    let all: Vec<Box<Header>> = (0..200).map(|_| Box::new(Header::new())).collect();
    for h in &all {
        // SAFETY: boxed; detached or kept alive until the space is dropped.
        assert!(unsafe { space.attach(h) }.unwrap());
    }
    let addr = |h: &Header| h as *const Header as usize;
    let mut live = Vec::new();
    let mut gone = HashSet::new();
    for (i, h) in all.into_iter().enumerate() {
        if i % 2 == 1 {
            // SAFETY: attached through `space`; nobody uses it. Kept alive (in `gone`'s
            // owner below) so its address cannot be another header's.
            let _ = unsafe { space.detach(&h) }.unwrap();
            gone.insert(addr(&h));
            std::mem::forget(h);
            continue;
        }
        live.push(h);
    }
    let wanted: HashSet<usize> = live.iter().step_by(2).map(|h| addr(h)).collect();
    let held_back = addr(&live[2]);
    let slots: HashMap<usize, usize> = live.iter().map(|h| (addr(h), slot_of(h))).collect();
    let mut placed = 0;
    let mut unplaced = 0;
    let forwards = std::cell::RefCell::new(HashMap::new());
    let mut merged = 0;
    // SAFETY: every header stays alive (leaked or in `live`) for the rest of the test, and
    // none is reused; `place` gives new boxed headers, leaked.
    let report = unsafe {
        space.move_headers(
            |a| {
                assert!(!gone.contains(&a), "a detached header is not found");
                wanted.contains(&a)
            },
            |h| addr(h) == held_back,
            || {
                placed += 1;
                Some(NonNull::from(Box::leak(Box::new(Header::new()))))
            },
            |_| unplaced += 1,
            |old, new| assert!(forwards.borrow_mut().insert(addr(old), addr(new)).is_none()),
            |old, new| {
                assert_eq!(new.state(), State::Moving, "merged while still claimed");
                let recorded = forwards.borrow().get(&addr(old)).copied();
                assert_eq!(recorded, Some(addr(new)), "merged once moved");
                merged += 1;
            },
        )
    }
    .unwrap();
    assert_eq!(report.moved, wanted.len() - 1, "{report:?}");
    assert_eq!(report.skipped, 1);
    assert!(!report.out_of_room);
    assert_eq!((placed, unplaced), (wanted.len() - 1, 0));
    assert_eq!(merged, report.moved);
    let forwards = forwards.into_inner();
    for h in &live {
        let a = addr(h);
        match forwards.get(&a) {
            Some(&to) => {
                assert!(wanted.contains(&a) && a != held_back);
                assert_eq!((h.state(), slot_of(h)), (State::Moved, 0));
                // SAFETY: leaked above, alive for the rest of the test.
                let new = unsafe { &*(to as *const Header) };
                assert_eq!((new.state(), slot_of(new)), (State::Attached, slots[&a]));
                // SAFETY: attached through `space`.
                let home = unsafe { space.attach_lane(new) };
                assert_eq!(home, None, "a moved header's block came from no magazine");
                // SAFETY: attached through `space`; nobody uses it any more.
                let _ = unsafe { space.detach(new) }.unwrap();
            }
            None => {
                assert!(!wanted.contains(&a) || a == held_back);
                assert_eq!((h.state(), slot_of(h)), (State::Attached, slots[&a]));
                // SAFETY: as above.
                let _ = unsafe { space.detach(h) }.unwrap();
            }
        }
    }
}
