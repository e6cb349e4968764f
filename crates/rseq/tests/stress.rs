//! `param_test`-style stress of every critical section: 64 threads on this 2-core machine,
//! random yields, and a signal storm, with exact accounting at the end.
//!
//! Backends: every test states what it needs ([`common::needs`]). All run on rseq and on the
//! portable backend (`PCPU_RSEQ=off`, valgrind) with the same exact totals, except
//! `aborts_happen_and_are_retried_exactly_once`, which observes rseq aborts; a test that
//! cannot run here is skipped loudly (a `SKIPPED` line on stderr and in `PCPU_TEST_LEDGER`,
//! from which CI lists the skipped tests and fails a step in which none ran).
//!
//! Cells: each CPU's cell is a 64-byte line of which only the first word may change, and
//! [`GUARDS`] lines after the last CPU's stay zero; every test that adds checks both for every
//! line, so a section that wrote beside its cell or past the CPU range fails. The totals are
//! over every CPU's cell; `pinned_threads_land_in_their_cpus_cells` also checks each CPU's
//! cell exactly.
//!
//! Sizes scale with `PCPU_STRESS_SCALE` (CI runs a short version under valgrind, where the
//! portable backend runs instead).

// Not under Miri: it has no signals (the storms), no `sched_setaffinity` (the pinned test), and
// 64 interpreted threads would take hours; the sanitizer step of `.ci/run` runs it instead.
#![cfg(not(miri))]

mod common;

use common::{needs, Needs};
use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
use pcpu_rseq::{FoldParams, Mode, PercpuStacks, StackMiss, MAX_FOLD};
use pcpu_testkit::affinity;
use pcpu_testkit::signals::with_signal_storm;
use pcpu_testkit::stress::scaled;

const THREADS: usize = 64;

/// Lines after the last CPU's cell that must stay zero.
const GUARDS: usize = 4;

/// One CPU's cell: a cache line, whose first word is the counter.
#[repr(C, align(64))]
struct Cell {
    value: AtomicI64,
    rest: [AtomicI64; 7],
}

/// The cells of `ncpu` CPUs, 64 bytes apart, then [`GUARDS`] lines that nobody may write.
struct Cells {
    ncpu: usize,
    lines: Vec<Cell>,
}

impl Cells {
    fn new(ncpu: usize) -> Cells {
        let lines = (0..ncpu + GUARDS)
            .map(|_| Cell {
                value: AtomicI64::new(0),
                rest: Default::default(),
            })
            .collect();
        Cells { ncpu, lines }
    }

    /// A slot word addressing CPU 0's cell (stride 64).
    fn slot(&self) -> AtomicUsize {
        AtomicUsize::new(pcpu_rseq::slot_word(self.lines.as_ptr() as usize))
    }

    /// Fold parameters for these cells: stride 64, every possible CPU, folding at `batch`
    /// ([`MAX_FOLD`] never folds: a plain per-CPU add; 1 folds whatever the call leaves in the
    /// delta's direction: a delta of 0 takes a positive part).
    fn params(&self, batch: i64) -> FoldParams {
        FoldParams::new(64, self.ncpu, batch)
    }

    fn get(&self, cpu: usize) -> i64 {
        self.lines[cpu].value.load(Ordering::Relaxed)
    }

    /// The sum of every CPU's cell, after checking that nothing else was written.
    fn total(&self) -> i64 {
        self.check_untouched();
        (0..self.ncpu).map(|c| self.get(c)).sum()
    }

    /// Only the first word of each of the `ncpu` lines may have changed.
    fn check_untouched(&self) {
        for (i, line) in self.lines.iter().enumerate() {
            let rest: Vec<i64> = line
                .rest
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .collect();
            assert!(
                rest.iter().all(|&w| w == 0),
                "line {i} written beside its cell: {rest:?}"
            );
            if i >= self.ncpu {
                assert_eq!(
                    line.value.load(Ordering::Relaxed),
                    0,
                    "guard line {i} written (CPU range is 0..{})",
                    self.ncpu
                );
            }
        }
    }
}

#[test]
fn add_under_signal_storm_is_exact() {
    if !needs("add_under_signal_storm_is_exact", Needs::Any) {
        return;
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = Cells::new(ncpu);
    let slot = cells.slot();
    let plain = cells.params(MAX_FOLD);
    let per_thread = scaled(1_000_000);
    let slow = AtomicI64::new(0);
    let (aborts, signals) = with_signal_storm(THREADS, |i| {
        let mut rng = fastrand::Rng::with_seed(i as u64);
        for _ in 0..per_thread {
            // SAFETY: `slot` addresses `ncpu` live cells, 64 bytes apart, outliving the workers.
            if unsafe { pcpu_rseq::add_fold_with(&slot, &plain, 1) }.is_err() {
                slow.fetch_add(1, Ordering::Relaxed);
            }
            if rng.u32(..1000) == 0 {
                std::thread::yield_now();
            }
        }
        pcpu_rseq::aborts_on_this_thread()
    });
    let aborts: u64 = aborts.iter().sum();
    eprintln!(
        "mode {:?}: {signals} signals, {aborts} aborts",
        pcpu_rseq::mode()
    );
    assert_eq!(
        slow.load(Ordering::Relaxed),
        0,
        "no slot is disabled: nothing may take the slow path"
    );
    assert_eq!(cells.total(), THREADS as i64 * per_thread as i64);
}

#[test]
fn batch_one_folds_lose_nothing() {
    if !needs("batch_one_folds_lose_nothing", Needs::Any) {
        return;
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = Cells::new(ncpu);
    let slot = cells.slot();
    let plain = cells.params(MAX_FOLD);
    let take = cells.params(1);
    let per_thread = scaled(1_000_000);
    let (taken, _) = with_signal_storm(THREADS, |i| {
        let mut rng = fastrand::Rng::with_seed(100 + i as u64);
        let mut taken = 0i64;
        for n in 0..per_thread {
            // SAFETY: as above.
            unsafe { pcpu_rseq::add_fold_with(&slot, &plain, 1) }.unwrap();
            if n % 97 == 0 {
                // SAFETY: as above.
                taken += unsafe { pcpu_rseq::add_fold_with(&slot, &take, 0) }.unwrap();
            }
            if rng.u32(..1000) == 0 {
                std::thread::yield_now();
            }
        }
        taken
    });
    let taken: i64 = taken.iter().sum();
    assert!(taken > 0);
    assert_eq!(taken + cells.total(), THREADS as i64 * per_thread as i64);
}

#[test]
fn stack_pop_push_lose_and_duplicate_nothing() {
    if !needs("stack_pop_push_lose_and_duplicate_nothing", Needs::Any) {
        return;
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let items = 4096usize;
    let stacks = PercpuStacks::new(ncpu, items).unwrap();
    // Seed every item onto CPU 0's stack (pushes from this thread may land anywhere; stop
    // CPU 0 and push there directly).
    {
        let mut s = stacks.try_stop(0).unwrap();
        for item in 1..=items {
            s.push(item).unwrap();
        }
    }
    let rounds = scaled(200_000);
    let stopper_done = std::sync::atomic::AtomicBool::new(false);
    let (held, _) = std::thread::scope(|s| {
        // A thread that keeps stopping, inspecting and restarting CPUs, as a drainer would.
        let stopper = s.spawn(|| {
            let mut stops = 0u64;
            // At least one pass, however late this thread starts (the `stops > 0` below).
            loop {
                for cpu in 0..ncpu {
                    if let Ok(mut st) = stacks.try_stop(cpu) {
                        // Move the top item around inside the stopped stack: exclusive access.
                        if let Some(x) = st.pop() {
                            st.push(x).unwrap();
                        }
                        stops += 1;
                    }
                }
                if stopper_done.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::yield_now();
            }
            stops
        });
        let out = with_signal_storm(THREADS, |i| {
            let mut rng = fastrand::Rng::with_seed(200 + i as u64);
            let mut mine: Vec<usize> = Vec::new();
            for _ in 0..rounds {
                if rng.bool() || mine.is_empty() {
                    if let Ok(item) = stacks.pop() {
                        mine.push(item);
                    }
                } else {
                    let item = mine.pop().unwrap();
                    match stacks.push(item) {
                        Ok(()) => {}
                        Err(StackMiss::Full) | Err(StackMiss::Slow) => mine.push(item),
                        Err(StackMiss::Empty) => unreachable!(),
                    }
                }
                if rng.u32(..500) == 0 {
                    std::thread::yield_now();
                }
            }
            mine
        });
        stopper_done.store(true, Ordering::Relaxed);
        let stops = stopper.join().unwrap();
        assert!(stops > 0);
        out
    });
    let mut seen = vec![0u8; items + 1];
    for item in held.into_iter().flatten() {
        seen[item] += 1;
    }
    for cpu in 0..ncpu {
        let s = stacks.try_stop(cpu).unwrap();
        for i in 0..s.len() {
            seen[s.get(i).unwrap()] += 1;
        }
    }
    assert_eq!(seen[0], 0, "item 0 was never pushed");
    assert!(seen[1..].iter().all(|&n| n == 1), "every item exactly once");
}

/// A section interrupted by a signal or preemption must be restarted and counted once.
#[test]
fn aborts_happen_and_are_retried_exactly_once() {
    if !needs("aborts_happen_and_are_retried_exactly_once", Needs::Rseq) {
        return;
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = Cells::new(ncpu);
    let slot = cells.slot();
    let plain = cells.params(MAX_FOLD);
    // Keep adding under a signal storm until aborts were observed (bounded by a round cap, not
    // by time); every add must still count exactly once.
    let mut added = 0i64;
    let mut aborts = 0u64;
    for _round in 0..50 {
        let (per_thread, _) = with_signal_storm(4, |_| {
            let before = pcpu_rseq::aborts_on_this_thread();
            let n = 200_000;
            for _ in 0..n {
                // SAFETY: as above.
                unsafe { pcpu_rseq::add_fold_with(&slot, &plain, 1) }.unwrap();
            }
            (n, pcpu_rseq::aborts_on_this_thread() - before)
        });
        added += per_thread.iter().map(|p| p.0).sum::<i64>();
        aborts += per_thread.iter().map(|p| p.1).sum::<u64>();
        if aborts > 0 {
            break;
        }
    }
    eprintln!("{aborts} aborts observed over {added} adds");
    assert!(
        aborts > 0,
        "a signal storm must abort some critical sections"
    );
    assert_eq!(cells.total(), added);
}

#[test]
fn add_fold_moves_every_unit_exactly_once() {
    if !needs("add_fold_moves_every_unit_exactly_once", Needs::Any) {
        return;
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = Cells::new(ncpu);
    let slot = cells.slot();
    let per_thread = scaled(500_000);
    let batch = 16;
    let fold = cells.params(batch);
    let (results, _) = with_signal_storm(THREADS, |i| {
        let mut rng = fastrand::Rng::with_seed(300 + i as u64);
        let (mut added, mut folded) = (0i64, 0i64);
        for _ in 0..per_thread {
            let delta = rng.i64(-5..=6);
            // SAFETY: as above.
            folded += unsafe { pcpu_rseq::add_fold_with(&slot, &fold, delta) }.unwrap();
            added += delta;
            if rng.u32(..1000) == 0 {
                std::thread::yield_now();
            }
        }
        (added, folded)
    });
    let added: i64 = results.iter().map(|r| r.0).sum();
    let folded: i64 = results.iter().map(|r| r.1).sum();
    assert_ne!(folded, 0);
    assert_eq!(folded + cells.total(), added);
    for c in 0..ncpu {
        assert!(
            cells.get(c).abs() < batch,
            "CPU {c}'s cell {} not below the batch",
            cells.get(c)
        );
    }
}

/// A counter's layout: the slot word, then its fold parameters (what `add_fold_beside` reads).
#[repr(C)]
struct Site {
    slot: AtomicUsize,
    params: pcpu_rseq::FoldParams,
}

/// A slot word followed by the address of its fold parameters (what `add_fold_through`
/// reads): pcpu-counter's header layout.
#[repr(C)]
struct ThroughSite {
    slot: AtomicUsize,
    params: std::sync::atomic::AtomicPtr<FoldParams>,
}

/// The batches the widening tests step through: 2⁵ to 2⁴⁰.
const WIDEN_STEPS: std::ops::RangeInclusive<u32> = 5..=40;

/// 15 workers add random deltas (now and then one of up to ±2⁴⁰) through `add` under a
/// signal storm, while one more thread calls `widen(k)` for each batch `2^k` of
/// [`WIDEN_STEPS`] after the first, spread over the run. Checks that no unit is lost or
/// doubled and, on rseq, that no cell is ever seen at or beyond `batch()` (concurrently,
/// between steps) or left there at the end. Portable adds may overshoot until their fold, so
/// only the totals are checked there.
fn adds_while_the_batch_widens(
    seed: u64,
    cells: &Cells,
    add: impl Fn(i64) -> Result<i64, pcpu_rseq::SlowPath> + Sync,
    widen: impl Fn(u32) + Sync,
    batch: impl Fn() -> i64 + Sync,
) {
    let ncpu = cells.ncpu;
    let per_thread = scaled(200_000);
    let check_live = pcpu_rseq::mode() == Mode::Rseq;
    // Adders count their progress in chunks of 1024 adds; the widener spreads its steps over
    // the whole run, checking the cells between steps.
    const CHUNK: u64 = 1024;
    let workers = 15;
    let chunks = workers * (per_thread / CHUNK);
    let steps = u64::from(WIDEN_STEPS.end() - WIDEN_STEPS.start() + 1);
    let progress = AtomicUsize::new(0);
    let (results, _) = with_signal_storm(workers as usize + 1, |i| {
        if i == 0 {
            // Counts violations rather than panicking: a panicking worker would leave the
            // signal storm waiting for it.
            let mut out_of_bounds = 0i64;
            let mut check = || {
                let batch = batch();
                for c in 0..ncpu {
                    if check_live && cells.get(c).abs() >= batch {
                        out_of_bounds += 1;
                    }
                }
            };
            for k in WIDEN_STEPS.skip(1) {
                let step = u64::from(k - WIDEN_STEPS.start());
                while (progress.load(Ordering::Relaxed) as u64) < (step - 1) * chunks / steps {
                    check();
                    std::thread::yield_now();
                }
                widen(k);
            }
            while (progress.load(Ordering::Relaxed) as u64) < chunks {
                check();
                std::thread::yield_now();
            }
            return (0, 0, 0, out_of_bounds);
        }
        let mut rng = fastrand::Rng::with_seed(seed + i as u64);
        let (mut added, mut folded, mut slow) = (0i64, 0i64, 0i64);
        for n in 0..per_thread {
            let delta = match rng.u32(..1000) {
                0 => rng.i64(-(1 << 40)..=1 << 40),
                _ => rng.i64(-11..=12),
            };
            match add(delta) {
                Ok(moved) => folded += moved,
                Err(_) => slow += delta,
            }
            added += delta;
            if rng.u32(..1000) == 0 {
                std::thread::yield_now();
            }
            if n % CHUNK == CHUNK - 1 {
                progress.fetch_add(1, Ordering::Relaxed);
            }
        }
        (added, folded, slow, 0)
    });
    let added: i64 = results.iter().map(|r| r.0).sum();
    let folded: i64 = results.iter().map(|r| r.1).sum();
    let slow: i64 = results.iter().map(|r| r.2).sum();
    assert_eq!(
        results[0].3, 0,
        "cells seen at or beyond the batch while it widened"
    );
    assert_eq!(
        folded + slow + cells.total(),
        added,
        "no unit lost or doubled"
    );
    assert_eq!(batch(), 1 << WIDEN_STEPS.end());
    for c in 0..ncpu {
        assert!(cells.get(c).abs() < batch());
    }
}

/// `add_fold_beside` while another thread widens the batch in place
/// ([`FoldParams::widen`]).
#[test]
fn add_fold_while_the_batch_widens_keeps_cells_in_bounds() {
    if !needs(
        "add_fold_while_the_batch_widens_keeps_cells_in_bounds",
        Needs::Any,
    ) {
        return;
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = Cells::new(ncpu);
    let site = Site {
        slot: cells.slot(),
        params: FoldParams::new(64, ncpu, 1 << WIDEN_STEPS.start()),
    };
    // A pointer to the whole site: the section reads the parameters through it.
    let slot_addr = (&site as *const Site).cast::<AtomicUsize>() as usize;
    adds_while_the_batch_widens(
        700,
        &cells,
        // SAFETY: the address is of `site.slot` with provenance over `site`, whose
        // parameters follow the slot word at offset 8 (repr(C)); the cells are `ncpu` live
        // i64s 64 bytes apart, outliving the workers.
        |delta| unsafe { pcpu_rseq::add_fold_beside::<8>(slot_addr as *const AtomicUsize, delta) },
        |k| {
            site.params.widen(1 << k);
        },
        || site.params.batch(),
    );
}

/// `add_fold_through` while another thread moves the parameter pointer to ever wider
/// batches, as a counter moves to its domain's next batch level: a section stores within
/// the threshold of the parameters it loaded, never wider than the ones in force later.
#[test]
fn add_fold_through_while_the_pointer_moves_keeps_cells_in_bounds() {
    if !needs(
        "add_fold_through_while_the_pointer_moves_keeps_cells_in_bounds",
        Needs::Any,
    ) {
        return;
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = Cells::new(ncpu);
    let levels: Vec<FoldParams> = WIDEN_STEPS
        .map(|k| FoldParams::new(64, ncpu, 1 << k))
        .collect();
    let site = ThroughSite {
        slot: cells.slot(),
        params: std::sync::atomic::AtomicPtr::new(&levels[0] as *const FoldParams as *mut _),
    };
    let slot_addr = (&site as *const ThroughSite).cast::<AtomicUsize>() as usize;
    adds_while_the_batch_widens(
        900,
        &cells,
        // SAFETY: the address is of `site.slot` with provenance over `site`, whose parameter
        // pointer follows the slot word at offset 8 (repr(C)) and always holds one of
        // `levels`, for the cells: `ncpu` live i64s 64 bytes apart, outliving the workers.
        |delta| unsafe { pcpu_rseq::add_fold_through::<8>(slot_addr as *const AtomicUsize, delta) },
        |k| {
            let level = &levels[(k - WIDEN_STEPS.start()) as usize];
            site.params
                .store(level as *const FoldParams as *mut _, Ordering::Relaxed);
        },
        // SAFETY: the pointer is always one of `levels`, which outlive the workers.
        || unsafe { &*site.params.load(Ordering::Relaxed) }.batch(),
    );
}

/// `add_fold_indexed` while another thread moves the fold-table index to ever wider
/// batches, as a counter moves to its domain's next batch level.
#[test]
fn add_fold_indexed_while_the_index_moves_keeps_cells_in_bounds() {
    if !needs(
        "add_fold_indexed_while_the_index_moves_keeps_cells_in_bounds",
        Needs::Any,
    ) {
        return;
    }
    #[repr(C)]
    struct IndexedSite {
        slot: AtomicUsize,
        index: std::sync::atomic::AtomicU16,
    }
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = Cells::new(ncpu);
    let levels = pcpu_rseq::reserve_fold_entries(
        WIDEN_STEPS.map(|k| (FoldParams::new(64, ncpu, 1 << k), 0)),
    )
    .unwrap();
    let site = IndexedSite {
        slot: cells.slot(),
        index: std::sync::atomic::AtomicU16::new(levels[0].key()),
    };
    let slot_addr = (&site as *const IndexedSite).cast::<AtomicUsize>() as usize;
    adds_while_the_batch_widens(
        1100,
        &cells,
        // SAFETY: the address is of `site.slot` with provenance over `site`, whose index
        // follows the slot word at offset 8 (repr(C)) and always names one of `levels`,
        // entries for the cells: `ncpu` live i64s 64 bytes apart, outliving the workers.
        |delta| unsafe { pcpu_rseq::add_fold_indexed::<8>(slot_addr as *const AtomicUsize, delta) },
        |k| {
            let level = &levels[(k - WIDEN_STEPS.start()) as usize];
            site.index.store(level.key(), Ordering::Relaxed);
        },
        || {
            let index = site.index.load(Ordering::Relaxed);
            levels
                .iter()
                .find(|l| l.key() == index)
                .expect("one of the levels")
                .params()
                .batch()
        },
    );
}

/// Threads pinned to CPUs (round-robin over the CPUs this process may use) add (batch
/// [`MAX_FOLD`]), take (delta 0, batch 1) and fold (batch 16): where lanes follow CPU ids, every operation of a thread pinned to CPU `c` must
/// land in `c`'s cell, on rseq (the section reads `c` from the kernel) and on the portable
/// backend (`sched_getcpu`). So for every CPU, its cell plus what was taken out of it
/// (takes, folds) equals what its threads added, and the cells of CPUs no thread ran on
/// stay zero. Where lanes follow `mm_cid` (which says nothing about the CPU), the totals are
/// exact and only lanes below the number of allowed CPUs are written.
#[test]
fn pinned_threads_land_in_their_cpus_cells() {
    const TEST: &str = "pinned_threads_land_in_their_cpus_cells";
    let Some(allowed) = affinity::allowed_cpus().filter(|a| !a.is_empty()) else {
        common::skip(TEST, "this thread's CPU affinity cannot be read");
        return;
    };
    // Probe on a thread of its own (pinning this one would pin the harness's thread).
    let first = allowed[0];
    if !std::thread::spawn(move || affinity::pin_to(first))
        .join()
        .unwrap()
    {
        common::skip(TEST, "threads cannot be pinned (sched_setaffinity refused)");
        return;
    }
    if !needs(TEST, Needs::Any) {
        return;
    }
    let ncpu = pcpu_rseq::possible_cpus();
    assert!(
        allowed.iter().all(|&c| c < ncpu),
        "allowed CPUs {allowed:?} beyond the {ncpu} possible ones"
    );
    let cells = Cells::new(ncpu);
    let slot = cells.slot();
    let plain = cells.params(MAX_FOLD);
    let take = cells.params(1);
    let fold16 = cells.params(16);
    let per_thread = scaled(200_000);
    let (results, _) = with_signal_storm(THREADS, |i| {
        let cpu = allowed[i % allowed.len()];
        assert!(affinity::pin_to(cpu), "pinning worker {i} to CPU {cpu}");
        let mut rng = fastrand::Rng::with_seed(900 + i as u64);
        // What this thread added to, and took out of, its CPU's cell.
        let (mut added, mut taken) = (0i64, 0i64);
        for n in 0..per_thread {
            let delta = rng.i64(-5..=6);
            match n % 61 {
                0 => {
                    // SAFETY: `slot` addresses `ncpu` live cells, 64 bytes apart, outliving
                    // the workers.
                    taken += unsafe { pcpu_rseq::add_fold_with(&slot, &take, 0) }.unwrap();
                }
                1..=30 => {
                    // SAFETY: as above.
                    taken += unsafe { pcpu_rseq::add_fold_with(&slot, &fold16, delta) }.unwrap();
                    added += delta;
                }
                _ => {
                    // SAFETY: as above.
                    unsafe { pcpu_rseq::add_fold_with(&slot, &plain, delta) }.unwrap();
                    added += delta;
                }
            }
            if rng.u32(..1000) == 0 {
                std::thread::yield_now();
            }
        }
        (cpu, added, taken)
    });
    cells.check_untouched();
    if pcpu_rseq::id_source() == pcpu_rseq::IdSource::MmCid {
        let added: i64 = results.iter().map(|r| r.1).sum();
        let taken: i64 = results.iter().map(|r| r.2).sum();
        assert_eq!(cells.total() + taken, added, "lanes by mm_cid: totals");
        let lanes = allowed.len().min(THREADS);
        for c in lanes..ncpu {
            assert_eq!(
                cells.get(c),
                0,
                "lane {c} written; mm_cid stays below {lanes}"
            );
        }
        return;
    }
    for c in 0..ncpu {
        let added: i64 = results.iter().filter(|r| r.0 == c).map(|r| r.1).sum();
        let taken: i64 = results.iter().filter(|r| r.0 == c).map(|r| r.2).sum();
        assert_eq!(
            cells.get(c) + taken,
            added,
            "CPU {c}: cell {} + taken {taken} != added by its threads",
            cells.get(c)
        );
    }
    let used = (0..ncpu)
        .filter(|&c| results.iter().any(|r| r.0 == c))
        .count();
    assert_eq!(
        used,
        allowed.len().min(THREADS),
        "every allowed CPU had a thread"
    );
}

/// Lanes follow the process's id source ([`pcpu_rseq::id_source`]): 16 unpinned threads add
/// (plain adds and add_folds) under a signal storm, within the CPUs the process may use
/// (run it under `taskset`). The totals are exact and every lane written is one the id source
/// allows: below the number of allowed CPUs with `mm_cid` (so a process pinned to one CPU
/// writes lane 0 only), one of the allowed CPUs with CPU ids. `PCPU_EXPECT_ID=mm_cid` or
/// `cpu` makes the test fail unless that is the id source in use (CI sets it, so that a
/// kernel or registration without `mm_cid` cannot pass for one with it).
#[test]
fn lanes_follow_the_id_source() {
    const TEST: &str = "lanes_follow_the_id_source";
    let ids = pcpu_rseq::id_source();
    if let Ok(want) = std::env::var("PCPU_EXPECT_ID") {
        let want = match want.as_str() {
            "mm_cid" => pcpu_rseq::IdSource::MmCid,
            "cpu" => pcpu_rseq::IdSource::CpuId,
            other => panic!("PCPU_EXPECT_ID={other}: expected mm_cid or cpu"),
        };
        assert_eq!(
            ids, want,
            "PCPU_EXPECT_ID: the process indexes lanes by {ids:?}"
        );
    }
    let Some(allowed) = affinity::allowed_cpus().filter(|a| !a.is_empty()) else {
        common::skip(TEST, "this thread's CPU affinity cannot be read");
        return;
    };
    if !needs(TEST, Needs::Any) {
        return;
    }
    eprintln!("{TEST}: lanes by {ids:?}, allowed CPUs {allowed:?}");
    let ncpu = pcpu_rseq::possible_cpus();
    let cells = Cells::new(ncpu);
    let slot = cells.slot();
    let plain = cells.params(MAX_FOLD);
    let fold64 = cells.params(64);
    let per_thread = scaled(100_000);
    let (added, _) = with_signal_storm(16, |i| {
        let mut rng = fastrand::Rng::with_seed(1700 + i as u64);
        let (mut added, mut taken) = (0i64, 0i64);
        for _ in 0..per_thread {
            let delta = rng.i64(-3..=4);
            if rng.bool() {
                // SAFETY: `slot` addresses `ncpu` live cells, 64 bytes apart, outliving the
                // workers.
                unsafe { pcpu_rseq::add_fold_with(&slot, &plain, delta) }.unwrap();
            } else {
                // SAFETY: as above.
                taken += unsafe { pcpu_rseq::add_fold_with(&slot, &fold64, delta) }.unwrap();
            }
            added += delta;
            if rng.u32(..500) == 0 {
                std::thread::yield_now();
            }
        }
        added - taken
    });
    assert_eq!(cells.total(), added.iter().sum::<i64>(), "exact total");
    let written: Vec<usize> = (0..ncpu).filter(|&c| cells.get(c) != 0).collect();
    eprintln!("{TEST}: lanes written {written:?}");
    for &c in &written {
        match ids {
            pcpu_rseq::IdSource::MmCid => assert!(
                c < allowed.len(),
                "lane {c} written: mm_cid stays below the {} allowed CPUs ({written:?})",
                allowed.len()
            ),
            pcpu_rseq::IdSource::CpuId if pcpu_rseq::mode() == Mode::Rseq => assert!(
                allowed.contains(&c),
                "lane {c} written: not an allowed CPU {allowed:?} ({written:?})"
            ),
            // The portable backend files adds under the CPU a thread last ran on, which
            // a signal handler or the scheduler may change between the read and the add:
            // still one of the allowed CPUs.
            pcpu_rseq::IdSource::CpuId => assert!(allowed.contains(&c), "lane {c} written"),
        }
    }
}
