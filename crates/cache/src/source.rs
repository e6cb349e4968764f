//! Where a cache gets its slots: the [`SlotSource`] trait, its implementation for
//! [`pcpu_pageset::Pool`], and [`HeapSource`], a small heap-backed test double.

use core::fmt::Debug;
use core::hash::Hash;
use std::collections::BTreeSet;
use std::num::NonZeroUsize;

/// A pool of per-CPU slots that a [`SlotCache`](crate::SlotCache) refills from and spills to.
///
/// A slot is `ncpu` cells of `cell_bytes` bytes; CPU `c`'s cell is at
/// `slot_addr(slot) + c * stride()`. The cache keeps free slots as bare addresses
/// ([`slot_addr`](Self::slot_addr)) in per-CPU stacks and turns them back into slots with
/// [`slot_from_addr`](Self::slot_from_addr). It calls every `&mut self` method under its one
/// pool mutex.
///
/// # Safety
/// Implementors promise that, for every slot returned by `assign_batch` and not yet passed to
/// `unassign`:
/// - the `ncpu()` cells at `slot_addr(slot) + c * stride()` (`c < ncpu()`) are valid for reads
///   and writes of `cell_bytes()` bytes, 8-byte aligned, belong to no other assigned slot, and
///   stay mapped until the slot is unassigned (the cache reads and zeroes them in `free`
///   without holding the lock);
/// - `cell_bytes()` and `stride()` are non-zero multiples of 8 and never change;
/// - every cell of a slot reads zero on every CPU when `assign_batch` returns it;
/// - `slot_addr` is non-zero and `slot_from_addr(slot_addr(s)) == s`.
pub unsafe trait SlotSource {
    /// The handle of a slot.
    type Slot: Copy + Eq + Hash + Debug;
    /// The handle of a pageset (the unit a compactor empties).
    type PagesetId: Copy + Eq + Debug;
    /// The pool's error.
    type Error: std::error::Error + 'static;

    /// Number of cells (CPUs) per slot.
    fn ncpu(&self) -> usize;
    /// Distance in bytes from one CPU's cell of a slot to the next CPU's.
    fn stride(&self) -> usize;
    /// Bytes per cell (the size class).
    fn cell_bytes(&self) -> usize;
    /// Address of CPU 0's cell of `slot`; never 0.
    fn slot_addr(slot: Self::Slot) -> usize;
    /// The slot whose [`slot_addr`](Self::slot_addr) is `addr`.
    ///
    /// # Safety
    /// `addr` was returned by `slot_addr` for a slot of this source.
    unsafe fn slot_from_addr(addr: usize) -> Self::Slot;
    /// Appends `n` fresh slots, zeroed on every CPU, to `out`; on error appends none.
    ///
    /// # Errors
    /// The pool cannot grow.
    fn assign_batch(&mut self, n: usize, out: &mut Vec<Self::Slot>) -> Result<(), Self::Error>;
    /// Takes a slot back.
    ///
    /// # Errors
    /// The slot is not assigned (a bug in the caller).
    fn unassign(&mut self, slot: Self::Slot) -> Result<(), Self::Error>;
    /// Takes many slots back (what spills and drains use). The default calls
    /// [`unassign`](Self::unassign) for each and returns the first error.
    ///
    /// An implementation may instead be all-or-nothing. On an error the cache calls
    /// `unassign` for every slot of the batch once more (so that only the bad ones stay out),
    /// so unassigning a slot that is no longer assigned must fail without effect.
    ///
    /// # Errors
    /// As for [`unassign`](Self::unassign).
    fn unassign_batch(&mut self, slots: &[Self::Slot]) -> Result<(), Self::Error> {
        let mut errors = crate::first_error::FirstError::new();
        for &slot in slots {
            errors.ok(self.unassign(slot));
        }
        errors.into_result(())
    }
    /// The pageset `slot` lies in, if it is one of this pool's.
    fn pageset_of(&self, slot: Self::Slot) -> Option<Self::PagesetId>;
    /// Number of slots assigned right now (to caches and to users alike).
    fn assigned(&self) -> usize;
}

#[cfg(not(loom))]
mod pageset_impl {
    use super::SlotSource;
    use pcpu_pageset::{PagesetError, PagesetId, Pool, Slot};

    // SAFETY: `Pool` hands out slots whose cells lie in a pageset mapping that stays mapped
    // while any slot of it is assigned; `cell = addr + c * stride` for `c < ncpu`, cells are
    // `class.bytes()` (8..=64) bytes at multiples of that size, so 8-aligned; `assign*` returns
    // slots zeroed on every CPU; `Slot::addr` is a `NonZeroUsize` and `from_addr` inverts it.
    unsafe impl SlotSource for Pool {
        type Slot = Slot;
        type PagesetId = PagesetId;
        type Error = PagesetError;

        fn ncpu(&self) -> usize {
            Pool::ncpu(self)
        }
        fn stride(&self) -> usize {
            Pool::stride(self)
        }
        fn cell_bytes(&self) -> usize {
            self.class().bytes()
        }
        fn slot_addr(slot: Slot) -> usize {
            slot.addr()
        }
        unsafe fn slot_from_addr(addr: usize) -> Slot {
            // SAFETY: the caller passes an address `Slot::addr` returned, which is non-zero and
            // names a slot of this pool.
            let slot = unsafe { Slot::from_addr(addr) };
            slot.unwrap_or_else(|| unreachable!("slot address 0"))
        }
        fn assign_batch(&mut self, n: usize, out: &mut Vec<Slot>) -> Result<(), PagesetError> {
            Pool::assign_batch(self, n, out)
        }
        fn unassign(&mut self, slot: Slot) -> Result<(), PagesetError> {
            Pool::unassign(self, slot)
        }
        fn unassign_batch(&mut self, slots: &[Slot]) -> Result<(), PagesetError> {
            // All or nothing, with one pagemap probe per page instead of one per slot.
            Pool::unassign_batch(self, slots)
        }
        fn pageset_of(&self, slot: Slot) -> Option<PagesetId> {
            Pool::pageset_of(self, slot)
        }
        fn assigned(&self) -> usize {
            self.stats().assigned
        }
    }
}

/// Errors of [`HeapSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapSourceError {
    /// Every slot (outside draining pagesets) is assigned.
    Exhausted,
    /// `unassign` of a slot that is not assigned (or not of this source).
    NotAssigned(usize),
}

impl core::fmt::Display for HeapSourceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeapSourceError::Exhausted => f.write_str("heap source exhausted"),
            HeapSourceError::NotAssigned(a) => write!(f, "slot {a:#x} is not assigned"),
        }
    }
}

impl std::error::Error for HeapSourceError {}

/// A fixed-size, heap-backed [`SlotSource`] for tests and models: `npagesets × per_pageset`
/// slots of `ncpu` 8-byte-multiple cells, lowest free index first, with draining pagesets
/// skipped like the real pool does. It zeroes a slot's cells when it assigns it and checks
/// nothing else, so a test that reads non-zero cells after `alloc` caught the cache.
///
/// ```
/// use pcpu_cache::{HeapSource, SlotSource};
/// let mut src = HeapSource::new(2, 8, 2, 4);
/// let mut out = Vec::new();
/// src.assign_batch(3, &mut out).unwrap();
/// assert_eq!(src.assigned(), 3);
/// assert_eq!(src.pageset_of(out[2]), Some(0));
/// ```
pub struct HeapSource {
    mem: Box<[core::cell::UnsafeCell<u64>]>,
    ncpu: usize,
    cell_bytes: usize,
    per_pageset: usize,
    slots: usize,
    free: BTreeSet<usize>,
    draining: Vec<bool>,
    limit: usize,
}

// SAFETY: the memory is owned by the source; the cells are written either through `&mut self`
// (assign) or by the one thread that owns a slot (the cache's zeroing, per `SlotSource`).
unsafe impl Send for HeapSource {}

impl core::fmt::Debug for HeapSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapSource")
            .field("ncpu", &self.ncpu)
            .field("slots", &self.slots)
            .field("assigned", &self.assigned())
            .finish_non_exhaustive()
    }
}

impl HeapSource {
    /// `npagesets` pagesets of `per_pageset` slots, `ncpu` cells of `cell_bytes` bytes each
    /// (`cell_bytes` is rounded up to a multiple of 8; zero dimensions become 1).
    pub fn new(ncpu: usize, cell_bytes: usize, npagesets: usize, per_pageset: usize) -> Self {
        let ncpu = ncpu.max(1);
        let cell_bytes = cell_bytes.max(8).div_ceil(8) * 8;
        let per_pageset = per_pageset.max(1);
        let slots = npagesets.max(1) * per_pageset;
        let words = ncpu * slots * cell_bytes / 8;
        HeapSource {
            mem: (0..words).map(|_| core::cell::UnsafeCell::new(0)).collect(),
            ncpu,
            cell_bytes,
            per_pageset,
            slots,
            free: (0..slots).collect(),
            draining: vec![false; npagesets.max(1)],
            limit: usize::MAX,
        }
    }

    /// Makes `assign_batch` fail with [`HeapSourceError::Exhausted`] once more than `limit`
    /// slots would be assigned (to test error paths).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Marks pageset `id` draining: no slot of it is assigned until it is cleared.
    pub fn set_draining(&mut self, id: usize, draining: bool) {
        if let Some(d) = self.draining.get_mut(id) {
            *d = draining;
        }
    }

    /// Number of slots in pageset `id` that are assigned.
    pub fn assigned_in(&self, id: usize) -> usize {
        let lo = id * self.per_pageset;
        let hi = (lo + self.per_pageset).min(self.slots);
        (hi.saturating_sub(lo)) - self.free.range(lo..hi).count()
    }

    fn base(&self) -> usize {
        self.mem.as_ptr() as usize
    }

    fn index_of(&self, addr: usize) -> Option<usize> {
        let off = addr.checked_sub(self.base())?;
        (off % self.cell_bytes == 0 && off / self.cell_bytes < self.slots)
            .then_some(off / self.cell_bytes)
    }

    /// Reads word `w` of CPU `cpu`'s cell of `slot` (0 for anything out of range).
    pub fn read(&self, slot: NonZeroUsize, cpu: usize, w: usize) -> u64 {
        match self.index_of(slot.get()) {
            Some(i) if cpu < self.ncpu && w < self.cell_bytes / 8 => {
                let word = (cpu * self.stride() + i * self.cell_bytes) / 8 + w;
                // SAFETY: `word` is in bounds; readers and writers of a cell are ordered by
                // the slot's ownership (see the `Send` impl).
                unsafe { *self.mem[word].get() }
            }
            _ => 0,
        }
    }
}

// SAFETY: cells live in `mem`, which is never reallocated while the source lives; slot `i`'s
// cell of CPU `c` is at `base + c * stride + i * cell_bytes` with `stride = slots * cell_bytes`,
// disjoint from every other slot's, 8-aligned (u64 words); assign zeroes all cells; addresses
// are non-zero (heap) and `slot_from_addr` inverts `slot_addr`.
unsafe impl SlotSource for HeapSource {
    type Slot = NonZeroUsize;
    type PagesetId = usize;
    type Error = HeapSourceError;

    fn ncpu(&self) -> usize {
        self.ncpu
    }
    fn stride(&self) -> usize {
        self.slots * self.cell_bytes
    }
    fn cell_bytes(&self) -> usize {
        self.cell_bytes
    }
    fn slot_addr(slot: NonZeroUsize) -> usize {
        slot.get()
    }
    unsafe fn slot_from_addr(addr: usize) -> NonZeroUsize {
        NonZeroUsize::new(addr).unwrap_or(NonZeroUsize::MIN)
    }
    fn assign_batch(
        &mut self,
        n: usize,
        out: &mut Vec<NonZeroUsize>,
    ) -> Result<(), HeapSourceError> {
        if self.assigned().saturating_add(n) > self.limit {
            return Err(HeapSourceError::Exhausted);
        }
        let picked: Vec<usize> = self
            .free
            .iter()
            .copied()
            .filter(|&i| !self.draining[i / self.per_pageset])
            .take(n)
            .collect();
        if picked.len() < n {
            return Err(HeapSourceError::Exhausted);
        }
        let words = self.cell_bytes / 8;
        for &i in &picked {
            self.free.remove(&i);
            for c in 0..self.ncpu {
                let first = (c * self.stride() + i * self.cell_bytes) / 8;
                for cell in &self.mem[first..first + words] {
                    // SAFETY: slot `i` was free, so no cache or user touches its cells; a
                    // shared borrow of the slice keeps other slots' cells (which the cache
                    // may be zeroing through raw pointers) free of `&mut` aliasing.
                    unsafe { *cell.get() = 0 };
                }
            }
            let addr = self.base() + i * self.cell_bytes;
            out.push(NonZeroUsize::new(addr).unwrap_or(NonZeroUsize::MIN));
        }
        Ok(())
    }
    fn unassign(&mut self, slot: NonZeroUsize) -> Result<(), HeapSourceError> {
        match self.index_of(slot.get()) {
            Some(i) if !self.free.contains(&i) => {
                self.free.insert(i);
                Ok(())
            }
            _ => Err(HeapSourceError::NotAssigned(slot.get())),
        }
    }
    fn pageset_of(&self, slot: NonZeroUsize) -> Option<usize> {
        self.index_of(slot.get()).map(|i| i / self.per_pageset)
    }
    fn assigned(&self) -> usize {
        self.slots - self.free.len()
    }
}
