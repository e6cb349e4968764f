//! [`HeapSource`]: a pool of slots on the heap, behind pcpu-cache's `SlotSource`, for the
//! cache's tests, doc examples and loom models (where the pageset pool's mmap is left out).

use pcpu_cache::SlotSource;
use std::collections::BTreeSet;
use std::num::NonZeroUsize;

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

/// A fixed-size, heap-backed [`SlotSource`] for tests and models (the loom models among them:
/// no mmap): `npagesets × per_pageset`
/// slots of `ncpu` 8-byte-multiple cells, lowest free index first, with draining pagesets
/// skipped like the real pool does. It zeroes a slot's cells when it assigns it and checks
/// nothing else, so a test that reads non-zero cells after `alloc` caught the cache.
///
/// ```
/// use pcpu_cache::SlotSource;
/// use pcpu_testkit::HeapSource;
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
