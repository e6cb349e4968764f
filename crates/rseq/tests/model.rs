//! proptest: the portable backend on simulated CPUs against a model of per-CPU cells and
//! stacks. Each operation names the CPU it runs on, so the model knows which cell or stack it
//! must touch.

use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
use pcpu_rseq::{slot_word, FoldParams, PercpuStacks, StackMiss, DISABLED, MAX_FOLD};
use proptest::prelude::*;

const NCPU: usize = 5;
const CAP: usize = 3;
/// Operations per case: fewer under Miri, which interprets every one (about a second each).
const MAX_OPS: usize = if cfg!(miri) { 24 } else { 200 };

#[derive(Debug, Clone)]
enum Op {
    Add(usize, i64),
    Take(usize),
    AddFold(usize, i64),
    /// Turns per-CPU operation off: the cells' address without `LIVE` (a relocation in
    /// progress) if true, else 0 (no slot, or a zeroed header).
    Disable(bool),
    Enable,
    Push(usize, usize),
    Pop(usize),
    StopRetainEven(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..NCPU, -1000i64..1000).prop_map(|(c, d)| Op::Add(c, d)),
        (0..NCPU).prop_map(Op::Take),
        (0..NCPU, -20i64..20).prop_map(|(c, d)| Op::AddFold(c, d)),
        any::<bool>().prop_map(Op::Disable),
        Just(Op::Enable),
        (0..NCPU, 0usize..100).prop_map(|(c, i)| Op::Push(c, i)),
        (0..NCPU).prop_map(Op::Pop),
        (0..NCPU).prop_map(Op::StopRetainEven),
    ]
}

proptest! {
    #[test]
    fn portable_backend_matches_model(ops in proptest::collection::vec(op(), 1..MAX_OPS)) {
        let cells: Vec<AtomicI64> = (0..NCPU).map(|_| AtomicI64::new(0)).collect();
        let base = cells.as_ptr() as usize;
        let slot = AtomicUsize::new(slot_word(base));
        // Batch MAX_FOLD never folds (a plain add); batch 1 with delta 0 takes the cell.
        let plain = FoldParams::new(8, NCPU, MAX_FOLD);
        let take = FoldParams::new(8, NCPU, 1);
        let fold = FoldParams::new(8, NCPU, 16);
        let stacks = PercpuStacks::new(NCPU, CAP).unwrap();
        let mut model_cells = [0i64; NCPU];
        let mut model_stacks: Vec<Vec<usize>> = vec![Vec::new(); NCPU];
        let mut disabled = false;
        for op in ops {
            match op {
                Op::Add(cpu, d) => {
                    // SAFETY: the cells and stacks of this case are its own, used by this thread
                    // only.
                    unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) };
                    // SAFETY: `slot` addresses NCPU live cells, 8 bytes apart.
                    let r = unsafe { pcpu_rseq::add_fold_with(&slot, &plain, d) };
                    if disabled {
                        prop_assert!(r.is_err());
                    } else {
                        prop_assert_eq!(r, Ok(0));
                        model_cells[cpu] += d;
                    }
                }
                Op::Take(cpu) => {
                    // SAFETY: the cells and stacks of this case are its own, used by this thread
                    // only.
                    unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) };
                    // SAFETY: as above.
                    let r = unsafe { pcpu_rseq::add_fold_with(&slot, &take, 0) };
                    if disabled {
                        prop_assert!(r.is_err());
                    } else {
                        prop_assert_eq!(r, Ok(model_cells[cpu]));
                        model_cells[cpu] = 0;
                    }
                }
                Op::AddFold(cpu, d) => {
                    // SAFETY: the cells and stacks of this case are its own, used by this thread
                    // only.
                    unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) };
                    // SAFETY: as above.
                    let r = unsafe { pcpu_rseq::add_fold_with(&slot, &fold, d) };
                    if disabled {
                        prop_assert!(r.is_err());
                    } else {
                        let now = model_cells[cpu] + d;
                        let moved = if now.abs() >= 16 { now } else { 0 };
                        prop_assert_eq!(r, Ok(moved));
                        model_cells[cpu] = now - moved;
                    }
                }
                Op::Disable(keep) => {
                    let word = if keep { base } else { DISABLED };
                    slot.store(word, Ordering::Release);
                    disabled = true;
                }
                Op::Enable => { slot.store(slot_word(base), Ordering::Release); disabled = false; }
                Op::Push(cpu, item) => {
                    // SAFETY: the cells and stacks of this case are its own, used by this thread
                    // only.
                    unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) };
                    let r = stacks.push(item);
                    if model_stacks[cpu].len() < CAP {
                        prop_assert_eq!(r, Ok(()));
                        model_stacks[cpu].push(item);
                    } else {
                        prop_assert_eq!(r, Err(StackMiss::Full));
                    }
                }
                Op::Pop(cpu) => {
                    // SAFETY: the cells and stacks of this case are its own, used by this thread
                    // only.
                    unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) };
                    let r = stacks.pop();
                    prop_assert_eq!(r, model_stacks[cpu].pop().ok_or(StackMiss::Empty));
                }
                Op::StopRetainEven(cpu) => {
                    let mut st = stacks.try_stop(cpu).unwrap();
                    let mut removed = Vec::new();
                    st.retain(|i| i % 2 == 0, |i| removed.push(i));
                    let want_removed: Vec<usize> = model_stacks[cpu].iter().copied().filter(|i| i % 2 == 1).collect();
                    model_stacks[cpu].retain(|i| i % 2 == 0);
                    prop_assert_eq!(removed, want_removed);
                    prop_assert_eq!(st.len(), model_stacks[cpu].len());
                    drop(st);
                }
            }
            for cpu in 0..NCPU {
                prop_assert_eq!(cells[cpu].load(Ordering::Relaxed), model_cells[cpu]);
                prop_assert_eq!(stacks.len_hint(cpu), model_stacks[cpu].len());
            }
        }
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { pcpu_rseq::simulate_cpu(None) };
    }
}
