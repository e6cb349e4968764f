//! Batch levels: the fold parameters that a domain's single counters add with, one set per
//! batch a counter can fold at (the domain's batch, doubled up to its `max_batch`).
//!
//! A per-CPU add reads its cells' layout, the lane bound and the fold threshold (a
//! [`FoldParams`], 32 bytes). Kept in every counter's header block, they made the block 64
//! bytes; but the layout is the domain's, the lane bound is raised for the whole domain
//! anyway (a new counter starts at the lanes the domain has seen), and the batch takes one of
//! a few values, since widening only doubles it. So the domain keeps one `FoldParams` per
//! batch, and a counter's header holds a pointer to the level it folds at: its block is 32
//! bytes, and widening a counter is one pointer swap ([`Levels::wider`]).
//!
//! The price is one more load on the add's way to its parameters (the pointer, on the
//! header's line, which the add reads anyway); the level lines are shared by every counter of
//! the domain and written only when the lane bound rises, so they stay in every CPU's cache.
//!
//! Lane bound: a section refuses a lane at or above its level's `ncpu`, and the slow path
//! raises every level ([`Levels::raise_ncpu`]) before it retries the add. So the add that
//! opens a lane comes after the raise of every level, and a `sum()` or `set()` that comes
//! after that add (whatever level it reads the bound from: the counter's current one) reads
//! the lane. While that add is still in flight, another thread may already add to the lane
//! through a level raised a moment before; levels are raised widest first and a counter only
//! widens, so that thread's own later `sum()` sees the lane too, except where the memory
//! model lets it read the wider level's bound stale (a different word from the one its add
//! read; on x86 it cannot). It then misses that lane's cell, less than one batch: an error of
//! the size the concurrent add already allows (`sum()` is exact when no add runs).

use pcpu_rseq::FoldParams;

/// The parameters of one batch, alone on its cache line: every add of the domain's counters
/// at this batch reads them, and only lane-bound raises write them.
///
/// `repr(C)` with the parameters first: a counter's level pointer is also the address of
/// the parameters, which `pcpu_rseq::add_fold_through` loads from beside the header.
#[repr(C, align(64))]
pub(crate) struct Level {
    pub(crate) fold: FoldParams,
    /// This level's place in [`Levels`]: the next wider one is at `index + 1`.
    index: u32,
    /// The index of the domain whose level this is ([`crate::registry`]): a counter's header
    /// finds its domain through its level.
    pub(crate) domain: u32,
}

/// The batch levels of one domain, narrowest first; never empty, never moved (a domain lives
/// for the process, and counters keep pointers into it).
pub(crate) struct Levels(Box<[Level]>);

impl core::fmt::Debug for Levels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|l| l.fold.batch()))
            .finish()
    }
}

impl Levels {
    /// Levels for cells `stride` bytes apart at `batch`, `2 × batch`, … up to `max_batch`
    /// (the last one exactly `max_batch`), each with lane bound `ncpu`, for the domain with
    /// index 0 until [`set_domain`](Self::set_domain). `1 ≤ batch ≤ max_batch`.
    pub(crate) fn new(stride: usize, ncpu: usize, batch: i64, max_batch: i64) -> Levels {
        let mut levels = Vec::new();
        // FoldParams clamps a batch to MAX_FOLD: levels above it would all be that one.
        let max_batch = max_batch.min(pcpu_rseq::MAX_FOLD);
        let mut b = batch.clamp(1, max_batch);
        loop {
            levels.push(Level {
                fold: FoldParams::new(stride, ncpu, b),
                // At most 64 levels (doubling from 1 to 2⁶³); fewer than 2¹¹ domains.
                index: levels.len() as u32,
                domain: 0,
            });
            if b >= max_batch {
                break;
            }
            b = b.saturating_mul(2).min(max_batch);
        }
        Levels(levels.into_boxed_slice())
    }

    /// Names the domain these levels belong to (its index), before any counter can see them.
    pub(crate) fn set_domain(&mut self, domain: usize) {
        for level in self.0.iter_mut() {
            level.domain = domain as u32;
        }
    }

    /// The narrowest level, where every counter starts.
    pub(crate) fn first(&self) -> &Level {
        &self.0[0]
    }

    /// The level after `level` (twice its batch, or `max_batch`), if `level` is not the
    /// widest. `level` is one of these levels.
    pub(crate) fn wider(&self, level: &Level) -> Option<&Level> {
        self.0.get(level.index as usize + 1)
    }

    /// Raises every level's lane bound to at least `ncpu` (`Release`, as
    /// [`FoldParams::raise_ncpu`]): called before any add may reach a lane below `ncpu`.
    ///
    /// Widest first: a counter only ever moves to wider levels, so once an add has used the
    /// new bound of its level, every level the counter can be at later already has it too,
    /// and a `sum()` of that counter reads the lane, even while the raise goes on.
    pub(crate) fn raise_ncpu(&self, ncpu: usize) {
        for level in self.0.iter().rev() {
            level.fold.raise_ncpu(ncpu);
        }
    }
}

const _: () = assert!(core::mem::offset_of!(Level, fold) == 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_double_up_to_the_max_batch() {
        let levels = Levels::new(64, 2, 32, 200);
        let batches: Vec<i64> = levels.0.iter().map(|l| l.fold.batch()).collect();
        assert_eq!(batches, [32, 64, 128, 200]);
        let mut level = levels.first();
        let mut walked = vec![level.fold.batch()];
        while let Some(next) = levels.wider(level) {
            level = next;
            walked.push(level.fold.batch());
        }
        assert_eq!(walked, batches);
    }

    #[test]
    fn no_two_levels_share_a_batch() {
        let levels = Levels::new(64, 1, 1 << 60, i64::MAX);
        let batches: Vec<i64> = levels.0.iter().map(|l| l.fold.batch()).collect();
        assert_eq!(batches, [1 << 60, 1 << 61, pcpu_rseq::MAX_FOLD]);
    }

    #[test]
    fn a_fixed_batch_has_one_level() {
        let levels = Levels::new(64, 1, 32, 32);
        assert!(levels.wider(levels.first()).is_none());
        assert_eq!(levels.first().fold.batch(), 32);
    }

    #[test]
    fn raising_the_lane_bound_raises_every_level() {
        let levels = Levels::new(64, 1, 4, 64);
        levels.raise_ncpu(3);
        levels.raise_ncpu(2);
        assert!(levels.0.iter().all(|l| l.fold.ncpu() == 3));
    }

    #[test]
    fn a_level_is_one_cache_line() {
        assert_eq!(core::mem::size_of::<Level>(), 64);
        assert_eq!(core::mem::align_of::<Level>(), 64);
    }
}
