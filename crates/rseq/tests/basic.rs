//! Single-threaded behaviour of every operation, in whatever mode the environment selects.

use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
use pcpu_rseq::{
    slot_word, FoldParams, Mode, PercpuStacks, Registration, StackMiss, DISABLED, MAX_FOLD,
};

fn cells(n: usize) -> Vec<AtomicI64> {
    (0..n).map(|_| AtomicI64::new(0)).collect()
}

fn total(cells: &[AtomicI64]) -> i64 {
    cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

#[test]
fn mode_matches_environment() {
    let mode = pcpu_rseq::mode();
    let reg = pcpu_rseq::registration();
    eprintln!(
        "mode {mode:?}, registration {reg:?}, feature size {}",
        pcpu_rseq::kernel_feature_size()
    );
    if pcpu_rseq::env_forces_portable() {
        assert_eq!(mode, Mode::Portable);
        assert_eq!(reg, Registration::Portable);
    }
    if mode == Mode::Rseq {
        assert!(matches!(reg, Registration::Glibc | Registration::Own));
    }
    // Self-registration must be what runs when glibc is told not to register.
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|v| v.contains("glibc.pthread.rseq=0"))
        && !pcpu_rseq::env_forces_portable()
        && mode == Mode::Rseq
    {
        assert_eq!(reg, Registration::Own);
    }
    if std::env::var("PCPU_EXPECT_MODE").is_ok_and(|v| v == "rseq") {
        assert_eq!(mode, Mode::Rseq, "this environment must run rseq");
    }
}

#[test]
fn add_and_take_are_exact() {
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = cells(ncpu);
    let slot = AtomicUsize::new(slot_word(cells.as_ptr() as usize));
    // Batch MAX_FOLD never folds: plain per-CPU adds.
    let plain = FoldParams::new(8, ncpu, MAX_FOLD);
    for i in 0..1000 {
        // SAFETY: `slot` addresses `ncpu` live cells 8 bytes apart.
        assert_eq!(unsafe { pcpu_rseq::add_fold_with(&slot, &plain, i) }, Ok(0));
    }
    assert_eq!(total(&cells), 999 * 1000 / 2);
    // Delta 0 at batch 1 takes this CPU's (positive) part; what remains plus what was taken is
    // the total.
    // SAFETY: as above.
    let taken = unsafe { pcpu_rseq::add_fold_with(&slot, &plain.with_batch(1), 0) }.unwrap();
    assert_eq!(total(&cells) + taken, 999 * 1000 / 2);
}

#[test]
fn disabled_slot_takes_slow_path_and_writes_nothing() {
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = cells(ncpu);
    // The cells' address without `LIVE` (a relocation in progress), and zero (no slot).
    for word in [cells.as_ptr() as usize, DISABLED] {
        let slot = AtomicUsize::new(word);
        for batch in [1, 4, MAX_FOLD] {
            let params = FoldParams::new(8, ncpu, batch);
            // SAFETY: the slot is disabled; the cells are live anyway.
            assert!(unsafe { pcpu_rseq::add_fold_with(&slot, &params, 5) }.is_err());
            // SAFETY: as above.
            assert!(unsafe { pcpu_rseq::add_fold_with_offset(&slot, &params, 0, -5) }.is_err());
        }
    }
    assert_eq!(total(&cells), 0);
}

/// A header whose memory is all zeros (a new page, a `static`, a page handed back to the OS)
/// is a disabled one: the indexed section, a counter's hot path, leaves for the slow path
/// before it computes a cell address from the zero word.
#[test]
fn zeroed_site_takes_slow_path_in_the_indexed_section() {
    #[repr(C)]
    struct Site {
        slot: AtomicUsize,
        _other: [u8; 6],
        key: core::sync::atomic::AtomicU16,
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let entries = pcpu_rseq::reserve_fold_entries([(FoldParams::new(8, ncpu, MAX_FOLD), 0)])
        .expect("one fold-table entry");
    // SAFETY: `Site` is atomics and bytes, for which all zeros is a valid value.
    let site: Site = unsafe { core::mem::zeroed() };
    site.key.store(entries[0].key(), Ordering::Relaxed);
    let p = (&site as *const Site).cast::<AtomicUsize>();
    // SAFETY: the slot word is zero: no cell is addressed; the key names a reserved entry.
    assert!(unsafe { pcpu_rseq::add_fold_indexed::<14>(p, 1) }.is_err());
    // And live, the same site adds to the cells it names.
    let cells = cells(ncpu);
    site.slot
        .store(slot_word(cells.as_ptr() as usize), Ordering::Release);
    // SAFETY: the slot word addresses `ncpu` live cells of stride 8, as the entry says.
    assert_eq!(unsafe { pcpu_rseq::add_fold_indexed::<14>(p, 1) }, Ok(0));
    assert_eq!(total(&cells), 1);
}

#[test]
fn stack_push_pop_roundtrip() {
    let stacks = PercpuStacks::new(pcpu_rseq::possible_cpus(), 8).unwrap();
    let mut pushed = Vec::new();
    for item in 100..108 {
        match stacks.push(item) {
            Ok(()) => pushed.push(item),
            Err(StackMiss::Full) => break,
            Err(e) => panic!("push missed: {e:?}"),
        }
    }
    // Pin-free test: a migration between pushes can spread items over CPUs, so stop every CPU
    // and collect what is there.
    let mut found = Vec::new();
    for cpu in 0..stacks.ncpu() {
        let mut s = stacks.try_stop(cpu).unwrap();
        while let Some(item) = s.pop() {
            found.push(item);
        }
    }
    found.sort_unstable();
    assert_eq!(found, pushed);
}

/// `push_on(lane, _)` stores only on `lane`'s stack, and only while the thread runs there:
/// the thread's own lane takes the item (retried: a migration between reading the lane and
/// the push makes it miss), every other lane refuses it and no stack changes; a lane out of
/// range is refused.
#[test]
fn push_on_lands_only_on_its_lane() {
    let ncpu = pcpu_rseq::possible_cpus().max(2);
    let stacks = PercpuStacks::new(ncpu, 8).unwrap();
    let lens = |s: &PercpuStacks| (0..ncpu).map(|c| s.len_hint(c)).collect::<Vec<_>>();
    let mut stored = None;
    for item in 1..1000 {
        let lane = pcpu_rseq::current_cpu() % ncpu;
        if stacks.push_on(lane, item).is_ok() {
            stored = Some((lane, item));
            break;
        }
    }
    let (lane, item) = stored.expect("the thread's own lane takes the item");
    let mut expect = vec![0; ncpu];
    expect[lane] = 1;
    assert_eq!(lens(&stacks), expect, "on `lane`'s stack and no other");
    for other in (0..ncpu).filter(|&c| c != lane) {
        // Refused unless the thread has moved to `other` since: then `lane` refuses.
        if stacks.push_on(other, 7).is_ok() {
            expect[other] += 1;
            assert_ne!(pcpu_rseq::current_cpu() % ncpu, lane);
        }
    }
    assert_eq!(lens(&stacks), expect);
    assert_eq!(stacks.push_on(ncpu, 7), Err(StackMiss::Slow));
    assert_eq!(lens(&stacks), expect);
    // The item is the top of `lane`'s stack (read through a stopped stack: no race).
    let mut stopped = stacks.try_stop(lane).unwrap();
    let mut top = None;
    while let Some(v) = stopped.pop() {
        top.get_or_insert(v);
    }
    assert_eq!(top, Some(item));
}

#[test]
fn full_stack_reports_full() {
    let stacks = PercpuStacks::new(pcpu_rseq::possible_cpus(), 2).unwrap();
    let cpu = pcpu_rseq::current_cpu() % stacks.ncpu();
    {
        let mut s = stacks.try_stop(cpu).unwrap();
        s.push(1).unwrap();
        s.push(2).unwrap();
        assert_eq!(s.push(3), Err(StackMiss::Full));
    }
    let mut s = stacks.try_stop(cpu).unwrap();
    assert_eq!(s.len(), 2);
    s.retain(|i| i == 2, |removed| assert_eq!(removed, 1));
    assert_eq!(s.len(), 1);
    assert_eq!(s.get(0), Some(2));
}

#[test]
fn stopped_stack_sends_its_cpu_to_slow_path() {
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { pcpu_rseq::simulate_cpu(None) };
    let stacks = PercpuStacks::new(pcpu_rseq::possible_cpus(), 4).unwrap();
    // Stop every CPU so that wherever this thread runs, its stack is stopped.
    let guards: Vec<_> = (0..stacks.ncpu())
        .map(|c| stacks.try_stop(c).unwrap())
        .collect();
    assert_eq!(stacks.push(1), Err(StackMiss::Slow));
    assert_eq!(stacks.pop(), Err(StackMiss::Slow));
    assert!(matches!(
        stacks.try_stop(0),
        Err(pcpu_rseq::StopError::AlreadyStopped)
    ));
    drop(guards);
    assert!(matches!(
        stacks.try_stop(stacks.ncpu()),
        Err(pcpu_rseq::StopError::OutOfRange)
    ));
}

#[test]
fn bad_stack_dimensions_are_errors() {
    assert!(PercpuStacks::new(0, 4).is_err());
    assert!(PercpuStacks::new(4, 0).is_err());
    assert!(PercpuStacks::new(usize::MAX / 2, usize::MAX / 2).is_err());
}

#[test]
fn fences_succeed() {
    pcpu_rseq::synchronize().unwrap();
    for cpu in 0..pcpu_rseq::possible_cpus() + 2 {
        pcpu_rseq::fence_cpu(cpu).unwrap();
    }
}

#[test]
fn add_fold_with_offset_touches_only_its_word() {
    let ncpu = pcpu_rseq::possible_cpus();
    // Two words per CPU: stride 16, the second word at offset 8.
    let words = cells(2 * ncpu);
    let slot = AtomicUsize::new(slot_word(words.as_ptr() as usize));
    let params = FoldParams::new(16, ncpu, 16);
    let mut central = 0;
    for _ in 0..100 {
        // SAFETY: `slot` addresses `ncpu` live cells of two words, 16 bytes apart.
        central += unsafe { pcpu_rseq::add_fold_with_offset(&slot, &params, 8, 1) }.unwrap();
    }
    let first: i64 = words
        .iter()
        .step_by(2)
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    let second: i64 = words
        .iter()
        .skip(1)
        .step_by(2)
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    assert_eq!(first, 0, "word 0 untouched");
    assert_eq!(central + second, 100);
}

/// `add_fold_through` reads the parameters' address on every call: moving the pointer from
/// the widest batch (never folds) to batch 1 (folds every add to a non-negative cell) takes
/// effect at the next add, and nothing is lost either way.
#[test]
fn add_fold_through_follows_the_pointer() {
    #[repr(C)]
    struct Site {
        slot: AtomicUsize,
        params: std::sync::atomic::AtomicPtr<FoldParams>,
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let c = cells(ncpu);
    let wide = FoldParams::new(8, ncpu, MAX_FOLD);
    let every_add = FoldParams::new(8, ncpu, 1);
    let site = Site {
        slot: AtomicUsize::new(slot_word(c.as_ptr() as usize)),
        params: std::sync::atomic::AtomicPtr::new(&wide as *const FoldParams as *mut _),
    };
    let slot = (&site as *const Site).cast::<AtomicUsize>();
    let mut central = 0;
    for _ in 0..50 {
        // SAFETY: the pointer 8 bytes after the slot word (repr(C), within `site`, which
        // `slot` covers) holds `wide` or `every_add`, both live; the cells are `ncpu` live
        // i64s 8 bytes apart.
        let moved = unsafe { pcpu_rseq::add_fold_through::<8>(slot, 1) }.unwrap();
        assert_eq!(moved, 0, "batch MAX_FOLD never folds");
    }
    site.params
        .store(&every_add as *const FoldParams as *mut _, Ordering::Relaxed);
    for _ in 0..50 {
        // SAFETY: as above.
        let moved = unsafe { pcpu_rseq::add_fold_through::<8>(slot, 1) }.unwrap();
        assert!(moved >= 1, "batch 1 folds every add to a non-negative cell");
        central += moved;
    }
    assert_eq!(central + total(&c), 100);
}

/// `add_fold_indexed` reads the fold-table index on every call: moving it from the widest
/// batch to batch 1 takes effect at the next add, index 0 sends every add to the slow path
/// without writing a cell, and nothing is lost.
#[test]
fn add_fold_indexed_follows_the_index() {
    #[repr(C)]
    struct Site {
        slot: AtomicUsize,
        index: std::sync::atomic::AtomicU16,
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let c = cells(ncpu);
    let entries = pcpu_rseq::reserve_fold_entries([
        (FoldParams::new(8, ncpu, MAX_FOLD), 1),
        (FoldParams::new(8, ncpu, 1), 2),
    ])
    .unwrap();
    let site = Site {
        slot: AtomicUsize::new(slot_word(c.as_ptr() as usize)),
        index: std::sync::atomic::AtomicU16::new(entries[0].key()),
    };
    let slot = (&site as *const Site).cast::<AtomicUsize>();
    let mut central = 0;
    for _ in 0..50 {
        // SAFETY: the index 8 bytes after the slot word (repr(C), within `site`, which
        // `slot` covers) names one of `entries`, or 0; both entries describe the cells,
        // `ncpu` live i64s 8 bytes apart.
        let moved = unsafe { pcpu_rseq::add_fold_indexed::<8>(slot, 1) }.unwrap();
        assert_eq!(moved, 0, "batch MAX_FOLD never folds");
    }
    site.index.store(entries[1].key(), Ordering::Relaxed);
    for _ in 0..50 {
        // SAFETY: as above.
        let moved = unsafe { pcpu_rseq::add_fold_indexed::<8>(slot, 1) }.unwrap();
        assert!(moved >= 1, "batch 1 folds every add to a non-negative cell");
        central += moved;
    }
    assert_eq!(central + total(&c), 100);
    site.index.store(0, Ordering::Relaxed);
    // SAFETY: as above.
    assert!(unsafe { pcpu_rseq::add_fold_indexed::<8>(slot, 1) }.is_err());
    assert_eq!(central + total(&c), 100, "entry 0 writes no cell");
    assert_eq!(pcpu_rseq::fold_entry_tag(entries[1].key()), Some(2));
}

/// `StoppedStack::retain` when its callbacks panic: the stack keeps every item not yet
/// handed to `removed`, each once, whether `removed` or `keep` panicked.
#[test]
fn retain_survives_a_panicking_callback() {
    let stacks = PercpuStacks::new(pcpu_rseq::possible_cpus(), 8).unwrap();
    let cpu = pcpu_rseq::current_cpu() % stacks.ncpu();
    let contents = |stacks: &PercpuStacks| {
        let s = stacks.try_stop(cpu).unwrap();
        (0..s.len()).map(|i| s.get(i).unwrap()).collect::<Vec<_>>()
    };
    {
        let mut s = stacks.try_stop(cpu).unwrap();
        for item in 1..=8 {
            s.push(item).unwrap();
        }
    }
    // Odd items go; `removed` panics on the second one it is given (3), which it owns.
    let mut given = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = stacks.try_stop(cpu).unwrap();
        s.retain(
            |i| i % 2 == 0,
            |i| {
                given.push(i);
                assert!(i != 3, "removed panics");
            },
        );
    }));
    assert!(r.is_err());
    assert_eq!(given, [1, 3]);
    // 2 kept, 1 and 3 handed on, 4.. not looked at: each left item once, none handed on.
    assert_eq!(contents(&stacks), [2, 4, 5, 6, 7, 8]);
    // `keep` panics on 6: it stays, as does everything after it.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = stacks.try_stop(cpu).unwrap();
        s.retain(
            |i| {
                assert!(i != 6, "keep panics");
                i != 5
            },
            |_| {},
        );
    }));
    assert!(r.is_err());
    assert_eq!(contents(&stacks), [2, 4, 6, 7, 8]);
}

/// `registered_cpu_id` answers only on a thread whose per-CPU operations run through rseq,
/// with the kernel's `cpu_id` (the CPU `sched_getcpu` reports, on a pinned thread), and never
/// resolves the thread itself.
#[test]
fn registered_cpu_id_is_the_kernels_cpu_id_once_resolved() {
    std::thread::spawn(|| {
        assert_eq!(
            pcpu_rseq::registered_cpu_id(),
            None,
            "a new thread is unresolved: no area to read"
        );
        let registration = pcpu_rseq::registration();
        let id = pcpu_rseq::registered_cpu_id();
        match registration {
            Registration::Glibc | Registration::Own => {
                let cpus = pcpu_testkit::affinity::allowed_cpus().unwrap_or_default();
                for &cpu in cpus.iter().rev().take(2) {
                    if pcpu_testkit::affinity::pin_to(cpu) {
                        assert_eq!(pcpu_rseq::registered_cpu_id(), Some(cpu as u32));
                    }
                }
                assert!(id.is_some());
            }
            Registration::Portable | Registration::Unavailable => assert_eq!(id, None),
        }
    })
    .join()
    .unwrap();
}
