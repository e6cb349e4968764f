//! The fold parameters: what a per-CPU add-and-fold needs besides the slot word and the
//! delta (the cell layout, the lane bound and the fold threshold), and the largest batch.
//!
//! A leaf: the operations (`ops.rs`) read the parameters, and the critical sections
//! (`arch/`) take their field offsets.

/// Everything [`add_fold_with`](crate::add_fold_with) needs besides the slot word and the delta, prepared once
/// (by a counter's domain, say): the cell layout and the fold threshold. The critical section
/// reads it through one pointer.
///
/// The threshold is kept as `bias = batch - 1` and `-bias`, one word for each direction: an
/// add of `delta ≥ 0` folds when the cell exceeds `bias`, a negative one when it drops below
/// `-bias`. A cell starts within the widest batch used on it, and an add can only leave that
/// range in its own direction, so one compare per add keeps `|cell|` below that batch (below
/// `batch` when every add uses the same one). So [`widen`](Self::widen) can raise the batch
/// while sections read it: each reads one word and sees its old value or its new one.
#[derive(Debug)]
#[repr(C)]
pub struct FoldParams {
    // pub(crate): the sections take the field offsets (`arch/mod.rs`). Atomic so that a
    // [fold table](crate::FoldEntry) entry can be filled in place before it is handed out;
    // never changed after that (the sections load it with a plain load: same layout).
    pub(crate) stride: core::sync::atomic::AtomicUsize,
    // Atomic so that it can grow while sections read it ([`FoldParams::raise_ncpu`]); the
    // sections load it with a plain load (the same bytes: `AtomicUsize` has `usize`'s layout).
    pub(crate) ncpu: core::sync::atomic::AtomicUsize,
    pub(crate) bias: core::sync::atomic::AtomicI64,
    pub(crate) neg_bias: core::sync::atomic::AtomicI64,
}

/// How a section finds its parameters when they are not passed in a register: the sections'
/// `REACH` parameter (`arch/`), chosen by the public functions in `ops.rs`.
pub(crate) mod reach {
    /// The parameters themselves lie `PARAMS_AFTER_SLOT` bytes after the slot word.
    pub(crate) const BESIDE: u8 = 0;
    /// Their address does (an `AtomicPtr<FoldParams>`).
    pub(crate) const THROUGH: u8 = 1;
    /// Their [fold table](crate::FoldEntry) key does (an `AtomicU16`).
    pub(crate) const INDEXED: u8 = 2;
}

/// Largest batch, and largest `|delta|` that one critical section adds: their sum stays
/// below 2⁶³, so on the rseq backend `cell + delta` cannot overflow. (On the portable backend
/// several threads may add to one cell before one of them folds it; the cell may then wrap,
/// and totals stay exact modulo 2⁶⁴.)
pub const MAX_FOLD: i64 = 1 << 62;

impl FoldParams {
    /// Cells `stride` bytes apart for `ncpu` CPUs, folding at `batch` (values below 1 count
    /// as 1, values above [`MAX_FOLD`] as [`MAX_FOLD`]). 32 bytes, half a cache line.
    pub const fn new(stride: usize, ncpu: usize, batch: i64) -> Self {
        let bias = Self::clamp(batch) - 1;
        FoldParams {
            stride: core::sync::atomic::AtomicUsize::new(stride),
            ncpu: core::sync::atomic::AtomicUsize::new(ncpu),
            bias: core::sync::atomic::AtomicI64::new(bias),
            neg_bias: core::sync::atomic::AtomicI64::new(-bias),
        }
    }

    /// Bytes from one CPU's cell to the next CPU's.
    #[inline(always)]
    pub fn stride(&self) -> usize {
        self.stride.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// CPUs (lanes) covered: a section whose id is at or above it takes the slow path.
    #[inline(always)]
    pub fn ncpu(&self) -> usize {
        self.ncpu.load(core::sync::atomic::Ordering::Acquire)
    }

    /// Raises the lane bound to `ncpu` unless it is already at least that (it never
    /// shrinks); returns the bound in force afterwards. Safe while sections read these
    /// parameters: they read the old bound (and an id at or above it takes the slow path) or
    /// the new one. The caller keeps `ncpu` within the cells the slot words address.
    ///
    /// A high-water mark of the lanes in use (pcpu-counter starts a counter at the lanes its
    /// domain has seen and raises it on the slow path): raised with `Release` *before* any
    /// section can add to a lane below the new bound, so a reader that loads the bound
    /// ([`ncpu`](Self::ncpu), `Acquire`) and then the cells below it misses no add that
    /// happened before its load.
    ///
    /// ```
    /// let p = pcpu_rseq::FoldParams::new(64, 1, 32);
    /// assert_eq!(p.raise_ncpu(3), 3);
    /// assert_eq!(p.raise_ncpu(2), 3); // never shrinks
    /// assert_eq!(p.ncpu(), 3);
    /// ```
    pub fn raise_ncpu(&self, ncpu: usize) -> usize {
        let before = self
            .ncpu
            .fetch_max(ncpu, core::sync::atomic::Ordering::Release);
        before.max(ncpu)
    }

    /// The same parameters (stride, batch) with the lane bound `ncpu`.
    pub fn with_ncpu(&self, ncpu: usize) -> Self {
        FoldParams::new(self.stride(), ncpu, self.batch())
    }

    /// Copies `other`'s parameters into these, field by field: for a fold-table entry that
    /// no section can read yet ([`reserve_fold_entries`](crate::reserve_fold_entries)).
    pub(crate) fn fill_from(&self, other: &FoldParams) {
        use core::sync::atomic::Ordering::{Acquire, Release};
        self.stride.store(other.stride(), Release);
        self.ncpu.store(other.ncpu(), Release);
        self.bias.store(other.bias.load(Acquire), Release);
        self.neg_bias.store(other.neg_bias.load(Acquire), Release);
    }

    const fn clamp(batch: i64) -> i64 {
        if batch < 1 {
            1
        } else if batch > MAX_FOLD {
            MAX_FOLD
        } else {
            batch
        }
    }

    /// The batch in force now. Every cell holds less than it in absolute value, up to adds
    /// in flight: [`widen`](Self::widen) raises the upward threshold (read here) first.
    pub fn batch(&self) -> i64 {
        self.bias.load(core::sync::atomic::Ordering::Acquire) + 1
    }

    /// The same layout with another batch.
    pub fn with_batch(&self, batch: i64) -> Self {
        FoldParams::new(self.stride(), self.ncpu(), batch)
    }

    /// Raises the batch to `batch` (clamped as in [`new`](Self::new)) unless it is already at
    /// least that; returns the batch in force afterwards. Safe while critical sections read
    /// these parameters: each threshold is one word and only grows.
    ///
    /// ```
    /// let p = pcpu_rseq::FoldParams::new(64, 4, 32);
    /// assert_eq!(p.widen(128), 128);
    /// assert_eq!(p.widen(64), 128); // never narrows
    /// assert_eq!(p.batch(), 128);
    /// ```
    pub fn widen(&self, batch: i64) -> i64 {
        use core::sync::atomic::Ordering::Release;
        let bias = Self::clamp(batch) - 1;
        // Upward threshold first: `batch()` reads it, so it never reports less than a cell
        // can hold.
        let before = self.bias.fetch_max(bias, Release);
        self.neg_bias.fetch_min(-bias, Release);
        before.max(bias) + 1
    }
}

impl Clone for FoldParams {
    fn clone(&self) -> Self {
        FoldParams::new(self.stride(), self.ncpu(), self.batch())
    }
}
