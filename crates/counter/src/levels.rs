//! Batch levels: the fold parameters that a domain's single counters add with, one set per
//! batch a counter can fold at (the domain's batch, doubled up to its `max_batch`).
//!
//! A per-CPU add reads its cells' layout, the lane bound and the fold threshold (a
//! [`FoldParams`], 32 bytes). Kept in every counter's header block, they made the block 64
//! bytes; but the layout is the domain's, the lane bound is raised for the whole domain
//! anyway (a new counter starts at the lanes the domain has seen), and the batch takes one of
//! a few values, since widening only doubles it. So the domain keeps one `FoldParams` per
//! batch, in pcpu-rseq's fold table (one cache line each, at a fixed address), and a
//! counter's header holds the 2-byte key of the level it folds at; widening a counter is
//! one compare-and-swap of that key ([`Levels::wider`]).
//!
//! The price is one more load on the add's way to its parameters (the key, on the header's
//! line, which the add reads anyway), as with the pointer the header held before; the level
//! lines are shared by every counter of the domain and written only when the lane bound
//! rises, so they stay in every CPU's cache. A level's entry is tagged with its domain's
//! index, which is how a header finds its domain ([`Level::domain`]).
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

use pcpu_rseq::{FoldEntry, FoldParams, FoldTableFull, FoldView};

/// A batch level, as a counter's header names it: the key of its fold parameters in
/// pcpu-rseq's fold table (`pcpu_rseq::add_fold_indexed` reads it beside the slot word).
/// The table entry's tag says whose level it is: the domain's index and the level's place
/// among the domain's ([`Level::domain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level(pub(crate) u16);

impl Level {
    /// The level's parameters, read-only (only the domain's [`Levels`] change them).
    #[inline(always)]
    pub(crate) fn fold(self) -> FoldView {
        pcpu_rseq::fold_entry_params(self.0)
    }

    /// The index of the domain whose level this is ([`crate::registry`]).
    pub(crate) fn domain(self) -> usize {
        (self.tag() >> 8) as usize
    }

    /// The tag of a level's entry: domain index and place among the domain's levels.
    fn tag(self) -> u64 {
        // A level a header names was reserved by its domain's `Levels`, which tagged it
        // before any header could name it.
        pcpu_rseq::fold_entry_tag(self.0).unwrap_or(0)
    }
}

/// The batch levels of one domain, narrowest first, at consecutive fold-table entries;
/// never empty, never given back (a domain lives for the process).
pub(crate) struct Levels(Box<[FoldEntry]>);

impl core::fmt::Debug for Levels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|l| l.params().batch()))
            .finish()
    }
}

impl Levels {
    /// Levels for cells `stride` bytes apart at `batch`, `2 × batch`, … up to `max_batch`
    /// (the last one exactly `max_batch`), each with lane bound `ncpu`, tagged for the domain
    /// with index 0 until [`set_domain`](Self::set_domain). `1 ≤ batch ≤ max_batch`.
    ///
    /// # Errors
    /// The fold table has fewer free entries than levels (8,191 in all: a domain of the
    /// default batches takes 8).
    pub(crate) fn new(
        stride: usize,
        ncpu: usize,
        batch: i64,
        max_batch: i64,
    ) -> Result<Levels, FoldTableFull> {
        let mut batches = Vec::new();
        // FoldParams clamps a batch to MAX_FOLD: levels above it would all be that one.
        let max_batch = max_batch.min(pcpu_rseq::MAX_FOLD);
        let mut b = batch.clamp(1, max_batch);
        loop {
            batches.push(b);
            if b >= max_batch {
                break;
            }
            b = b.saturating_mul(2).min(max_batch);
        }
        // At most 64 levels (doubling from 1 to 2⁶²): a level's place fits the tag's low byte.
        let entries = pcpu_rseq::reserve_fold_entries(
            batches
                .iter()
                .enumerate()
                .map(|(i, &b)| (FoldParams::new(stride, ncpu, b), i as u64)),
        )?;
        Ok(Levels(entries.into_boxed_slice()))
    }

    /// Names the domain these levels belong to (its index), before any counter can see them.
    pub(crate) fn set_domain(&self, domain: usize) {
        for (i, level) in self.0.iter().enumerate() {
            level.set_tag(((domain as u64) << 8) | i as u64);
        }
    }

    /// The narrowest level, where every counter starts.
    pub(crate) fn first(&self) -> Level {
        Level(self.0[0].key())
    }

    /// The level after `level` (twice its batch, or `max_batch`), if `level` is not the
    /// widest. `level` is one of these levels.
    pub(crate) fn wider(&self, level: Level) -> Option<Level> {
        // Keys of consecutive entries are 8 apart.
        let place = usize::from(level.0.wrapping_sub(self.0[0].key()) / 8);
        self.0.get(place + 1).map(|e| Level(e.key()))
    }

    /// Raises every level's lane bound to at least `ncpu` (`Release`, as
    /// [`FoldParams::raise_ncpu`]): called before any add may reach a lane below `ncpu`.
    ///
    /// Widest first: a counter only ever moves to wider levels, so once an add has used the
    /// new bound of its level, every level the counter can be at later already has it too,
    /// and a `sum()` of that counter reads the lane, even while the raise goes on.
    pub(crate) fn raise_ncpu(&self, ncpu: usize) {
        for level in self.0.iter().rev() {
            level.params().raise_ncpu(ncpu);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_double_up_to_the_max_batch() {
        let levels = Levels::new(64, 2, 32, 200).unwrap();
        let batches: Vec<i64> = levels.0.iter().map(|l| l.params().batch()).collect();
        assert_eq!(batches, [32, 64, 128, 200]);
        let mut level = levels.first();
        let mut walked = vec![level.fold().batch()];
        while let Some(next) = levels.wider(level) {
            level = next;
            walked.push(level.fold().batch());
        }
        assert_eq!(walked, batches);
    }

    #[test]
    fn a_level_names_its_domain() {
        let levels = Levels::new(64, 2, 32, 200).unwrap();
        levels.set_domain(5);
        let mut level = Some(levels.first());
        while let Some(l) = level {
            assert_eq!(l.domain(), 5);
            level = levels.wider(l);
        }
    }

    #[test]
    fn no_two_levels_share_a_batch() {
        let levels = Levels::new(64, 1, 1 << 60, i64::MAX).unwrap();
        let batches: Vec<i64> = levels.0.iter().map(|l| l.params().batch()).collect();
        assert_eq!(batches, [1 << 60, 1 << 61, pcpu_rseq::MAX_FOLD]);
    }

    #[test]
    fn a_fixed_batch_has_one_level() {
        let levels = Levels::new(64, 1, 32, 32).unwrap();
        assert!(levels.wider(levels.first()).is_none());
        assert_eq!(levels.first().fold().batch(), 32);
    }

    #[test]
    fn raising_the_lane_bound_raises_every_level() {
        let levels = Levels::new(64, 1, 4, 64).unwrap();
        levels.raise_ncpu(3);
        levels.raise_ncpu(2);
        assert!(levels.0.iter().all(|l| l.params().ncpu() == 3));
    }
}
