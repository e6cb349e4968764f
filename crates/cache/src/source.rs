//! Where a cache gets its slots: the [`SlotSource`] trait and its implementation for
//! [`pcpu_pageset::Pool`]. (The tests' heap-backed double is `pcpu_testkit::HeapSource`.)

use core::fmt::Debug;
use core::hash::Hash;

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
    /// [`assign_batch`](Self::assign_batch) for one CPU's magazine: a source whose slots
    /// share cache lines should hand out whole lines that no other slot assigned before
    /// shares (pcpu-pageset's [`Pool::assign_lines`](pcpu_pageset::Pool::assign_lines)). The
    /// default is `assign_batch`.
    ///
    /// # Errors
    /// As for [`assign_batch`](Self::assign_batch).
    fn assign_for_magazine(
        &mut self,
        n: usize,
        out: &mut Vec<Self::Slot>,
    ) -> Result<(), Self::Error> {
        self.assign_batch(n, out)
    }
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
        fn assign_for_magazine(
            &mut self,
            n: usize,
            out: &mut Vec<Slot>,
        ) -> Result<(), PagesetError> {
            self.assign_lines(n, out)
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
