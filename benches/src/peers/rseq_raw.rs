//! Stand-in for pcpu until `pcpu-counter` exists: the raw layer, `pcpu_rseq::add_fold_with` at
//! batch `MAX_FOLD` (one plain add inside a restartable sequence, never a fold) on a `Box<[CachePadded<AtomicI64>]>` of one cell per CPU.
//!
//! This is *not* the pcpu counter: it has no pagesets, no slot caches, no relocation; each
//! counter is a malloc'd padded array. It shows what the add fast path costs on its own.

use super::BenchCounter;
use crossbeam_utils::CachePadded;
use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};

/// The row label (also used by the issue-12 targets).
pub const RSEQ_RAW_NAME: &str = "pcpu-rseq raw cells (layer)";

/// Bytes between two CPUs' cells.
const STRIDE: usize = std::mem::size_of::<CachePadded<AtomicI64>>();

/// Per-CPU cells added to through `pcpu_rseq::add_fold_with` (batch `MAX_FOLD`: never folds).
pub struct RseqRaw {
    /// The slot word: the address of CPU 0's cell. Never changed nor disabled.
    slot: AtomicUsize,
    /// The cells' layout, with a batch that never folds.
    params: pcpu_rseq::FoldParams,
    /// The value before the first add, plus whatever the slow path added.
    base: CachePadded<AtomicI64>,
    cells: Box<[CachePadded<AtomicI64>]>,
}

impl BenchCounter for RseqRaw {
    fn name() -> &'static str {
        RSEQ_RAW_NAME
    }
    fn new(initial: i64) -> Self {
        Self::new_for_cpus(super::ncpu(), initial)
    }
    fn new_for_cpus(ncpu: usize, initial: i64) -> Self {
        let cells: Box<[CachePadded<AtomicI64>]> = (0..ncpu.max(1))
            .map(|_| CachePadded::new(AtomicI64::new(0)))
            .collect();
        Self {
            slot: AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize)),
            params: pcpu_rseq::FoldParams::new(STRIDE, cells.len(), pcpu_rseq::MAX_FOLD),
            base: CachePadded::new(AtomicI64::new(initial)),
            cells,
        }
    }
    #[inline(always)]
    fn add(&self, delta: i64) {
        // SAFETY: the slot word always holds the address of `self.cells`, `cells.len()` live
        // i64 cells `STRIDE` bytes apart (CachePadded<AtomicI64> starts with the AtomicI64,
        // which has i64's layout and alignment); the cells are freed only when `self` is
        // dropped, when no `add` on it can be running; they are read only atomically.
        match unsafe { pcpu_rseq::add_fold_with(&self.slot, &self.params, delta) } {
            Ok(0) => {}
            Ok(folded) => {
                self.base.fetch_add(folded, Ordering::Relaxed);
            }
            Err(_) => {
                self.base.fetch_add(delta, Ordering::Relaxed);
            }
        }
    }
    fn read(&self) -> i64 {
        self.sum()
    }
    fn sum(&self) -> i64 {
        self.base.load(Ordering::Relaxed)
            + self
                .cells
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<i64>()
    }
    fn size_hint(ncpu: usize) -> usize {
        ncpu * 128 + 256
    }
}
