//! Every section leaves the area's `rseq_cs` at 0, on every way out (committed, slow path,
//! stack empty or full, folded): a thread whose `rseq_cs` still pointed at a descriptor after
//! the object holding it was unloaded (`dlclose`) would be killed on its next preemption or
//! signal. `crates/cdylib-test` tests the unload itself.

use crate::abi::RseqArea;
use crate::sync::{AtomicI64, AtomicUsize};
use crate::{FoldParams, PercpuStacks, DISABLED};

/// The calling thread's `rseq_cs`, or `None` if it runs no sections (portable backend).
fn rseq_cs() -> Option<u64> {
    let state = crate::thread::state();
    if !super::HAS_RSEQ_ASM || state <= crate::thread_state::NO_RSEQ {
        return None;
    }
    let area = state as *const RseqArea;
    // SAFETY: a state above NO_RSEQ is this thread's registered area, live while the
    // thread runs; the read is volatile because the kernel also writes the field.
    Some(unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*area).rseq_cs)) })
}

/// A slot word followed by its fold parameters, as `add_fold_beside` reads them.
#[repr(C)]
struct Site {
    slot: AtomicUsize,
    params: FoldParams,
}

/// A slot word followed by the address of its fold parameters, as `add_fold_through` reads
/// them.
#[repr(C)]
struct Through {
    slot: AtomicUsize,
    params: core::sync::atomic::AtomicPtr<FoldParams>,
}

/// A slot word followed, 14 bytes in (where pcpu-counter's header keeps it), by the
/// fold-table index of its parameters, as `add_fold_indexed` reads it.
#[repr(C)]
struct Indexed {
    slot: AtomicUsize,
    _other: [u8; 6],
    index: core::sync::atomic::AtomicU16,
}

#[test]
fn every_section_clears_rseq_cs() {
    if rseq_cs().is_none() {
        eprintln!(
            "SKIPPED every_section_clears_rseq_cs: needs the rseq backend, this thread \
             runs {:?}",
            crate::registration()
        );
        return;
    }
    let ncpu = crate::possible_cpus();
    // Two words per CPU: `add_fold_with_offset` uses the second.
    let cells: Vec<AtomicI64> = (0..2 * ncpu).map(|_| AtomicI64::new(0)).collect();
    let slot = AtomicUsize::new(crate::slot_word(cells.as_ptr() as usize));
    let disabled = AtomicUsize::new(DISABLED);
    let params = FoldParams::new(16, ncpu, 4);
    let out_of_range = FoldParams::new(16, 0, 4);
    let every_call = FoldParams::new(16, ncpu, 1);
    let site = Site {
        slot: AtomicUsize::new(crate::slot_word(cells.as_ptr() as usize)),
        params: FoldParams::new(16, ncpu, 4),
    };
    let site_slot = (&site as *const Site).cast::<AtomicUsize>();
    let through = Through {
        slot: AtomicUsize::new(crate::slot_word(cells.as_ptr() as usize)),
        params: core::sync::atomic::AtomicPtr::new(&params as *const FoldParams as *mut _),
    };
    let through_slot = (&through as *const Through).cast::<AtomicUsize>();
    let entries = crate::reserve_fold_entries([
        (FoldParams::new(16, ncpu, 4), 0),
        (FoldParams::new(16, ncpu, 1), 0),
    ])
    .unwrap();
    let indexed = Indexed {
        slot: AtomicUsize::new(crate::slot_word(cells.as_ptr() as usize)),
        _other: [0; 6],
        index: core::sync::atomic::AtomicU16::new(entries[0].key()),
    };
    let indexed_slot = (&indexed as *const Indexed).cast::<AtomicUsize>();
    let stacks = PercpuStacks::new(ncpu, 2).unwrap();
    let check = |what: &str| assert_eq!(rseq_cs(), Some(0), "{what} left rseq_cs set");
    // Every call below: `slot` and `site.slot` address `ncpu` live cells of two words,
    // 16 bytes apart, outliving the calls; `site_slot` points at the whole site, whose
    // parameters follow the slot word at offset 8.
    for _ in 0..200 {
        // SAFETY: as above.
        unsafe { crate::add_fold_with(&slot, &params, 1) }.unwrap();
        check("add_fold_with up");
        // SAFETY: as above.
        unsafe { crate::add_fold_with(&slot, &params, -1) }.unwrap();
        check("add_fold_with down");
        // SAFETY: as above; a lane bound of 0 puts every CPU out of range.
        assert!(unsafe { crate::add_fold_with(&slot, &out_of_range, 1) }.is_err());
        check("add_fold_with (CPU out of range)");
        // SAFETY: as above; a disabled slot word is never dereferenced.
        assert!(unsafe { crate::add_fold_with(&disabled, &params, 1) }.is_err());
        check("add_fold_with (disabled slot)");
        // SAFETY: as above; batch 1 folds at every call.
        unsafe { crate::add_fold_with(&slot, &every_call, 1) }.unwrap();
        check("add_fold_with (folded)");
        // SAFETY: as above; offset 8 is each CPU's second word.
        unsafe { crate::add_fold_with_offset(&slot, &params, 8, 1) }.unwrap();
        check("add_fold_with_offset");
        // SAFETY: as above.
        unsafe { crate::add_fold_beside::<8>(site_slot, 1) }.unwrap();
        check("add_fold_beside");
        // SAFETY: as above; `through`'s pointer, 8 bytes after its slot word, holds
        // `params`, then `every_call`, both outliving the calls.
        unsafe { crate::add_fold_through::<8>(through_slot, -1) }.unwrap();
        check("add_fold_through");
        through.params.store(
            &every_call as *const FoldParams as *mut _,
            crate::sync::Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { crate::add_fold_through::<8>(through_slot, 1) }.unwrap();
        check("add_fold_through (folded)");
        through.params.store(
            &params as *const FoldParams as *mut _,
            crate::sync::Ordering::Relaxed,
        );
        // SAFETY: as above; `indexed`'s index, 14 bytes after its slot word, names the first
        // entry (batch 4), then the second (batch 1), both describing these cells.
        unsafe { crate::add_fold_indexed::<14>(indexed_slot, -1) }.unwrap();
        check("add_fold_indexed");
        indexed
            .index
            .store(entries[1].key(), crate::sync::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { crate::add_fold_indexed::<14>(indexed_slot, 1) }.unwrap();
        check("add_fold_indexed (folded)");
        indexed.index.store(0, crate::sync::Ordering::Relaxed);
        // SAFETY: as above; entry 0's lane bound is 0.
        assert!(unsafe { crate::add_fold_indexed::<14>(indexed_slot, 1) }.is_err());
        check("add_fold_indexed (entry 0)");
        indexed
            .index
            .store(entries[0].key(), crate::sync::Ordering::Relaxed);
        // Fill this CPU's stack until it is full, then empty it (a migration only changes
        // which CPU's stack; at most ncpu × 2 pushes succeed).
        while stacks.push(1).is_ok() {
            check("push");
        }
        check("push (full)");
        while stacks.pop().is_ok() {
            check("pop");
        }
        check("pop (empty)");
        let here = crate::current_cpu() % stacks.ncpu();
        let _ = stacks.push_on(here, 1);
        check("push_on");
        let _ = stacks.push_on((here + 1) % stacks.ncpu(), 1);
        check("push_on (another CPU)");
        while stacks.pop().is_ok() {}
    }
}
