//! loom models of the protocols where threads meet, on the portable backend (the only backend
//! under `--cfg loom`: asm cannot run inside a model).
//!
//! Run: `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!       cargo test -p pcpu-rseq --release --test loom`
#![cfg(loom)]

use loom::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use loom::sync::Arc;
use pcpu_rseq::{slot_word, FoldParams, PercpuStacks, StackMiss, LIVE, MAX_FOLD};

/// A push racing with a stopper that drains the stack: the item ends up exactly once, either
/// drained or still on the stack, or is reported back to the pusher as not pushed.
#[test]
fn push_against_stop_and_drain() {
    loom::model(|| {
        let stacks = Arc::new(PercpuStacks::new(1, 2).unwrap());
        let s2 = Arc::clone(&stacks);
        let pusher = loom::thread::spawn(move || {
            // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
            // model), so no rseq thread updates this model's memory.
            unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
            s2.push(7).is_ok()
        });
        let drained = match stacks.try_stop(0) {
            Ok(mut st) => {
                let mut d = Vec::new();
                while let Some(x) = st.pop() {
                    d.push(x);
                }
                d
            }
            Err(_) => Vec::new(),
        };
        let pushed = pusher.join().unwrap();
        let mut st = stacks.try_stop(0).unwrap();
        let mut remaining = Vec::new();
        while let Some(x) = st.pop() {
            remaining.push(x);
        }
        let copies = drained
            .iter()
            .chain(&remaining)
            .filter(|&&x| x == 7)
            .count();
        assert_eq!(
            copies,
            usize::from(pushed),
            "pushed items appear exactly once"
        );
    });
}

/// A pop racing with a stop: while stopped, the owner's pop reports Slow and takes nothing.
#[test]
fn pop_against_stop() {
    loom::model(|| {
        let stacks = Arc::new(PercpuStacks::new(1, 2).unwrap());
        stacks.try_stop(0).unwrap().push(5).unwrap();
        let s2 = Arc::clone(&stacks);
        let popper = loom::thread::spawn(move || {
            // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
            // model), so no rseq thread updates this model's memory.
            unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
            s2.pop()
        });
        let seen_by_stopper = stacks.try_stop(0).ok().map(|st| st.len());
        let popped = popper.join().unwrap();
        let left = stacks.try_stop(0).unwrap().len();
        match popped {
            Ok(5) => assert_eq!(left, 0),
            Err(StackMiss::Slow) => assert_eq!(left, 1),
            other => panic!("unexpected pop result {other:?}"),
        }
        if let Some(len) = seen_by_stopper {
            assert!(len <= 1);
        }
    });
}

/// Disable + grace period + fold against a concurrent add: the add lands either in the cells
/// before the fold reads them or in the central count, never both, never neither, and no
/// write reaches the cells after the fold.
#[test]
fn add_against_disable_and_fold() {
    loom::model(|| {
        let cells: Arc<[AtomicI64; 2]> = Arc::new([AtomicI64::new(0), AtomicI64::new(0)]);
        let central = Arc::new(AtomicI64::new(0));
        let slot = Arc::new(AtomicUsize::new(slot_word(cells.as_ptr() as usize)));
        let stride = std::mem::size_of::<AtomicI64>();
        let adder = {
            let (cells, central, slot) =
                (Arc::clone(&cells), Arc::clone(&central), Arc::clone(&slot));
            loom::thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
                // Batch MAX_FOLD: a plain add, never a fold.
                let plain = FoldParams::new(stride, 2, MAX_FOLD);
                // SAFETY: `slot` addresses the two cells of `cells`, alive in this closure.
                if unsafe { pcpu_rseq::add_fold_with(&slot, &plain, 1) }.is_err() {
                    central.fetch_add(1, Ordering::Relaxed);
                }
                drop(cells);
            })
        };
        let word = slot.fetch_and(!LIVE, Ordering::AcqRel);
        assert_ne!(word & LIVE, 0);
        pcpu_rseq::epoch_grace_period();
        let folded: i64 = cells.iter().map(|c| c.swap(0, Ordering::Relaxed)).sum();
        central.fetch_add(folded, Ordering::Relaxed);
        adder.join().unwrap();
        let late: i64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(late, 0, "no add may reach the cells after the grace period");
        assert_eq!(
            central.load(Ordering::Relaxed),
            1,
            "the add counts exactly once"
        );
    });
}

/// A fold against a concurrent `sum()`: the adder's `add_fold` empties the cell and the
/// caller adds what it took to the central count (with a relaxed add, as a counter may); a
/// reader loads the central count (acquire) and then the cell, as `PercpuCounter::sum` does.
/// The fold may be missed (it is in flight) but never counted twice: a reader that sees the
/// fold in the central count must see the emptied cell. On weak memory this needs the fold's
/// emptying store to be ordered before the central add (`add_fold` issues a release fence
/// before returning a folded value); with only relaxed orderings the reader may see both.
#[test]
fn fold_is_never_counted_twice_by_a_reader() {
    loom::model(|| {
        let cells: Arc<[AtomicI64; 1]> = Arc::new([AtomicI64::new(0)]);
        let central = Arc::new(AtomicI64::new(0));
        let slot = Arc::new(AtomicUsize::new(slot_word(cells.as_ptr() as usize)));
        let adder = {
            let (cells, central, slot) =
                (Arc::clone(&cells), Arc::clone(&central), Arc::clone(&slot));
            loom::thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
                // Batch 1: the add folds at once.
                let params = FoldParams::new(8, 1, 1);
                // SAFETY: `slot` addresses the one cell of `cells`, alive in this closure.
                let moved = unsafe { pcpu_rseq::add_fold_with(&slot, &params, 1) }.unwrap();
                assert_eq!(moved, 1);
                central.fetch_add(moved, Ordering::Relaxed);
                drop(cells);
            })
        };
        let seen_central = central.load(Ordering::Acquire);
        let seen_cell = cells[0].load(Ordering::Relaxed);
        assert!(
            seen_central + seen_cell <= 1,
            "a reader counted the fold twice (central {seen_central}, cell {seen_cell})"
        );
        adder.join().unwrap();
        assert_eq!(
            central.load(Ordering::Relaxed) + cells[0].load(Ordering::Relaxed),
            1
        );
    });
}

/// A lane bound (pcpu-counter's `FoldParams::raise_ncpu` protocol, with loom atomics): an
/// adder on lane 1 of a counter whose bound is 1 raises the bound (`fetch_max`, `Release`)
/// *before* its add to lane 1, then reports done; a reader loads the central count, then the
/// bound (`Acquire`), then the cells below it. A reader that saw the report must count the
/// add (the model fails if the raise is moved after the report, i.e. after the add returned,
/// as it would if the slow path added first and raised later); any reader counts it at most
/// once.
#[test]
fn lane_bound_is_raised_before_the_add() {
    loom::model(|| {
        let cells = Arc::new([AtomicI64::new(0), AtomicI64::new(0)]);
        let slot = Arc::new(AtomicUsize::new(slot_word(cells.as_ptr() as usize)));
        let bound = Arc::new(AtomicUsize::new(1));
        let done = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let (c2, s2, b2, d2) = (
            Arc::clone(&cells),
            Arc::clone(&slot),
            Arc::clone(&bound),
            Arc::clone(&done),
        );
        let adder = loom::thread::spawn(move || {
            let _keep = &c2;
            // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
            // model), so no rseq thread updates this model's memory.
            unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
            // The slow path: lane 1 is at the bound, raise it past the lane, then add.
            let lanes = b2.fetch_max(2, Ordering::Release).max(2);
            let plain = FoldParams::new(8, lanes, MAX_FOLD);
            // SAFETY: `s2` addresses 2 live cells 8 bytes apart (`c2`, kept alive here).
            unsafe { pcpu_rseq::add_fold_with(&s2, &plain, 1) }.unwrap();
            d2.store(true, Ordering::Release);
        });
        let saw_done = done.load(Ordering::Acquire);
        let lanes = bound.load(Ordering::Acquire);
        let total: i64 = cells[..lanes]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        if saw_done {
            assert_eq!(
                total, 1,
                "an add reported done is in the lanes below the bound"
            );
        }
        assert!(total <= 1);
        adder.join().unwrap();
        let lanes = bound.load(Ordering::Acquire);
        let total: i64 = cells[..lanes]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        assert_eq!(total, 1, "after the join");
    });
}
