//! A counter-like object over a pcpu-migrate [`Space`]: a header, and the central count that
//! takes what folds move out of the cells and the adds the cells refuse (a disabled slot,
//! a thread that cannot run per-CPU operations). The shape pcpu-counter builds on, reduced
//! to what pcpu-migrate's model and stress tests and the `migrate` fuzz target need, so that
//! each drives the same object.

use pcpu_migrate::{Header, MigrateError, Space};
use std::sync::atomic::{AtomicI64, Ordering};

/// An object of `W` words (at most the space's words) over a [`Space`].
#[derive(Debug)]
pub struct SpaceObj<const W: usize> {
    /// Boxed: an attached header must stay at its address until it is detached.
    pub header: Box<Header>,
    /// Per word: what folds moved out of the cells, and the adds the cells refused.
    pub central: [AtomicI64; W],
}

impl<const W: usize> Default for SpaceObj<W> {
    fn default() -> Self {
        SpaceObj {
            header: Box::new(Header::new()),
            central: std::array::from_fn(|_| AtomicI64::new(0)),
        }
    }
}

impl<const W: usize> SpaceObj<W> {
    /// An unattached object: every word 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `delta` to word `w`, this CPU's part folding into the central count at `batch`;
    /// to the central count alone when the cells refuse it.
    ///
    /// # Safety
    /// The header is unattached, dead, or attached through `space`, whose cells hold more
    /// than `w` words.
    pub unsafe fn add(&self, space: &Space, w: usize, delta: i64, batch: i64) {
        let params = pcpu_rseq::FoldParams::new(space.stride(), space.ncpu(), batch);
        // SAFETY: the slot word is disabled or addresses a slot of `space` (caller), whose
        // cells are `stride` apart for `ncpu` CPUs; word `w` lies inside the cell (caller).
        let r = unsafe {
            pcpu_rseq::add_fold_with_offset(self.header.slot_word(), &params, w * 8, delta)
        };
        let to_central = match r {
            Ok(moved) => moved,
            Err(_) => delta,
        };
        if to_central != 0 {
            self.central[w].fetch_add(to_central, Ordering::Relaxed);
        }
    }

    /// The totals of the first `words` words (central count plus every CPU's cell); 0 beyond.
    /// Exact when nothing adds concurrently.
    ///
    /// # Safety
    /// As for [`add`](Self::add), with `words` for `w + 1`.
    pub unsafe fn totals(&self, space: &Space, words: usize) -> [i64; W] {
        let words = words.min(W);
        let mut cells = [0i64; W];
        // SAFETY: the caller's contract is `sum_words`'.
        unsafe { space.sum_words(&self.header, &mut cells[..words]) };
        let mut out = [0i64; W];
        for w in 0..words {
            out[w] = self.central[w].load(Ordering::Relaxed) + cells[w];
        }
        out
    }

    /// What `set` does first: takes the cells of the first `words` words into the central
    /// count (the totals do not change), leaving the cells zero.
    ///
    /// # Errors
    /// As [`Space::take_cells`].
    ///
    /// # Safety
    /// As for [`totals`](Self::totals).
    pub unsafe fn take_into_central(
        &self,
        space: &Space,
        words: usize,
    ) -> Result<(), MigrateError> {
        let words = words.min(W);
        let mut out = [0i64; W];
        // SAFETY: the caller's contract is `take_cells`'.
        unsafe { space.take_cells(&self.header, &mut out[..words]) }?;
        for (c, t) in self.central.iter().zip(out) {
            c.fetch_add(t, Ordering::Relaxed);
        }
        Ok(())
    }
}
