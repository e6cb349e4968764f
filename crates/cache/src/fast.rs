//! The per-CPU fast path: `alloc` pops and `free` pushes on this CPU's magazine, one rseq
//! critical section each (see the [crate docs](crate)). Anything else (an empty, full, stopped
//! or busy magazine) leaves through a `#[cold]` call into `refill.rs`, so these stay small
//! enough to inline.

use crate::cache::{Res, SlotCache};
use crate::error::CacheError;
use crate::first_error::FirstError;
use crate::percpu::StackMiss;
use crate::source::SlotSource;

impl<S: SlotSource> SlotCache<S> {
    /// A free slot, zeroed on every CPU.
    ///
    /// Fast path: one pop from this CPU's magazine (one rseq critical section: no atomic
    /// read-modify-write, no lock, no allocation, no syscall). An empty magazine is refilled
    /// with a batch from the pool under the pool lock; a stopped or busy one sends this call to
    /// the pool directly.
    ///
    /// # Errors
    /// [`CacheError::Pool`] if the pool cannot grow and no CPU's magazine holds a free slot
    /// (under memory pressure a refill takes smaller batches, then takes the cached slots of
    /// every CPU back, before it gives up).
    #[inline]
    pub fn alloc(&self) -> Res<S::Slot, S> {
        match self.stacks.pop() {
            // SAFETY: only `slot_addr` of this source's slots is ever pushed (by `free` and the
            // refill), so `addr` came from `slot_addr`.
            Ok(addr) => Ok(unsafe { S::slot_from_addr(addr) }),
            Err(StackMiss::Empty) => self.refill(),
            Err(_) => self.alloc_slow(),
        }
    }

    /// Appends `n` free slots, zeroed on every CPU, to `out` (for creating many counters at
    /// once): as many as this CPU's magazine has, the rest from the pool in one locked call.
    ///
    /// # Errors
    /// [`CacheError::Pool`] if the pool cannot grow even after the cached slots of every CPU
    /// went back to it; `out` is then as it was (the slots taken so far went back to the
    /// pool).
    pub fn alloc_batch(&self, n: usize, out: &mut Vec<S::Slot>) -> Res<(), S> {
        match self.alloc_batch_once(n, out) {
            // As in `refill`: reclaim the slots cached on the CPUs, then try once more.
            Err(CacheError::Pool(e)) => self.after_reclaim(e, |c| c.alloc_batch_once(n, out)),
            result => result,
        }
    }

    /// Zeroes the cells of the slot at `addr` on lanes below `lanes` (at most every lane),
    /// writing only cells that are not zero already: a CPU that never wrote the slot keeps
    /// its page unpopulated (reading an untouched anonymous page maps the shared zero page).
    ///
    /// # Safety
    /// `addr` is `slot_addr` of a slot of this cache's source that is assigned and whose cells
    /// nobody else accesses.
    #[inline]
    pub(crate) unsafe fn zero_cells(&self, addr: usize, lanes: usize) {
        for cpu in 0..lanes.min(self.cell_ncpu) {
            let cell = (addr + cpu * self.stride) as *mut u64;
            for w in 0..self.cell_words {
                // SAFETY: by `SlotSource`'s contract this cell is `cell_words` valid, 8-aligned
                // words of an assigned slot, and by ours nobody else touches them.
                unsafe {
                    let word = cell.add(w);
                    if word.read() != 0 {
                        word.write(0);
                    }
                }
            }
        }
    }

    /// Returns `slot` to the cache: zeroes its cells, then one push onto this CPU's magazine
    /// (one rseq critical section). A full magazine spills a batch to the pool under the pool
    /// lock; a stopped or busy one sends the slot to the pool directly.
    ///
    /// # Errors
    /// [`CacheError::Pool`] if the pool refuses a slot it is given back (a bug elsewhere);
    /// that slot is then lost to the cache.
    ///
    /// # Safety
    /// `slot` came from this cache (`alloc`/`alloc_batch`), is not freed twice, and nothing
    /// reads or writes its cells any more (on any CPU): a concurrent writer could be zeroed
    /// away, or write into a slot already handed to someone else.
    #[inline]
    pub unsafe fn free(&self, slot: S::Slot) -> Res<(), S> {
        // SAFETY: forwarded from the caller; every lane is zeroed.
        unsafe { self.free_zeroing_below(slot, usize::MAX) }
    }

    /// [`free`](Self::free), zeroing only the lanes below `lanes`: for an owner that knows
    /// the lanes at or above it were never written since the slot was handed out (zeroed),
    /// as pcpu-migrate's spaces that keep a lane bound do.
    ///
    /// # Errors
    /// As for [`free`](Self::free).
    ///
    /// # Safety
    /// As for [`free`](Self::free), and every cell of the slot on a lane at or above `lanes`
    /// holds zero: the cache hands out only zeroed slots, and a cell left non-zero would
    /// reach the slot's next owner (a wrong count, never undefined behaviour).
    #[inline]
    pub unsafe fn free_zeroing_below(&self, slot: S::Slot, lanes: usize) -> Res<(), S> {
        // SAFETY: forwarded from the caller.
        unsafe { self.free_home(slot, lanes, None) }
    }

    /// [`free_zeroing_below`](Self::free_zeroing_below) onto the magazine of lane `home`
    /// only (`None`: this thread's lane, whichever it is): if this thread runs on another lane
    /// when the push commits (checked inside its critical section), the slot goes to the pool
    /// instead, under the pool lock. For an owner that knows which lane's magazine the slot
    /// came from: a slot put on another lane's magazine would be that lane's next allocation
    /// while its cache-line neighbours are still in `home`'s working set (see
    /// `docs/ARCHITECTURE.md`, "Placement across CPUs").
    ///
    /// # Errors
    /// As for [`free`](Self::free).
    ///
    /// # Safety
    /// As for [`free_zeroing_below`](Self::free_zeroing_below).
    #[inline]
    pub unsafe fn free_home(&self, slot: S::Slot, lanes: usize, home: Option<usize>) -> Res<(), S> {
        let addr = S::slot_addr(slot);
        // SAFETY: the caller gives us the slot and sole access to its cells; it is assigned
        // (to this cache) until it reaches the pool.
        unsafe { self.zero_cells(addr, lanes) };
        let pushed = match home {
            None => self.stacks.push(addr),
            Some(lane) => self.stacks.push_on(lane, addr),
        };
        match pushed {
            Ok(()) => Ok(()),
            Err(StackMiss::Full) => self.spill(slot),
            Err(_) => self.free_slow(slot),
        }
    }

    /// [`free_zeroing_below`](Self::free_zeroing_below) straight to the pool, under the pool
    /// lock, whatever lane this thread runs on: for an owner that does not know which lane's
    /// magazine the slot came from. On this lane's magazine it would be this lane's next
    /// allocation while its cache-line neighbours may be in another lane's working set; in the
    /// pool, a refill takes its line only once the line is free or its pageset has no free
    /// line left (see `docs/ARCHITECTURE.md`, "Placement across CPUs"). A slow path (one pool
    /// lock per slot), for slots of unknown home: rare at creation, but every slot a
    /// compaction moved is one.
    ///
    /// # Errors
    /// As for [`free`](Self::free).
    ///
    /// # Safety
    /// As for [`free_zeroing_below`](Self::free_zeroing_below).
    pub unsafe fn free_to_pool(&self, slot: S::Slot, lanes: usize) -> Res<(), S> {
        // SAFETY: the caller gives us the slot and sole access to its cells; it is assigned
        // (to this cache) until it reaches the pool.
        unsafe { self.zero_cells(S::slot_addr(slot), lanes) };
        self.free_slow(slot)
    }

    /// [`free`](Self::free) for each slot; returns the first error after freeing the rest.
    ///
    /// # Errors
    /// As for [`free`](Self::free).
    ///
    /// # Safety
    /// As for [`free`](Self::free), for every slot (and no slot twice).
    pub unsafe fn free_batch(&self, slots: impl IntoIterator<Item = S::Slot>) -> Res<(), S> {
        let mut errors = FirstError::new();
        for slot in slots {
            // SAFETY: forwarded from the caller.
            errors.ok(unsafe { self.free(slot) });
        }
        errors.into_result(())
    }
}
