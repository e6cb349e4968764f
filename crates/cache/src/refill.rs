//! The pool side of the magazines: refill an empty one, spill a full one, serve a stopped or
//! busy one straight from the pool, and, when the pool cannot grow, reclaim the slots parked in
//! every CPU's magazine before giving up. Everything here runs under the pool lock.

use crate::cache::{Res, SlotCache};
use crate::error::CacheError;
use crate::first_error::FirstError;
use crate::source::SlotSource;

impl<S: SlotSource> SlotCache<S> {
    #[cold]
    #[inline(never)]
    pub(crate) fn refill(&self) -> Res<S::Slot, S> {
        match self.refill_from_pool() {
            // The pool cannot give even one slot: under memory pressure, the free slots
            // parked in other CPUs' magazines are still there. Take them back, then try once
            // more (`alloc_slow` does the same if that fails too).
            Err(CacheError::Pool(e)) => self.after_reclaim(e, Self::alloc_slow_once),
            result => result,
        }
    }

    /// Returns the slots cached on every CPU to the pool and, if there were any, runs `retry`;
    /// else gives `e` back. For the allocation paths when the pool cannot grow.
    #[cold]
    pub(crate) fn after_reclaim<T>(
        &self,
        e: S::Error,
        retry: impl FnOnce(&Self) -> Res<T, S>,
    ) -> Res<T, S> {
        if self.reclaim_cached() > 0 {
            retry(self)
        } else {
            Err(CacheError::Pool(e))
        }
    }

    /// Empties into the pool every magazine that holds slots and is not stopped, and returns
    /// how many slots went back. Magazines that look empty cost nothing (no fence); a stopped
    /// one is skipped, never waited for: its stopper may be this very thread (an allocation
    /// inside [`with_stopped`](Self::with_stopped)). Errors of the pool taking a slot back
    /// leave that slot out of the count.
    pub(crate) fn reclaim_cached(&self) -> usize {
        let mut total = 0;
        for cpu in 0..self.stacks.ncpu() {
            if self.stacks.len_hint(cpu) == 0 {
                continue;
            }
            let Ok(mut stopped) = self.stacks.try_stop(cpu) else {
                continue;
            };
            let mut guard = self.lock();
            let shared = &mut *guard;
            // A slot the pool refuses is left out of the count; the allocation that needs
            // these slots reports the pool's own error.
            let n = Self::empty_into_pool(&mut stopped, 0, shared, &mut FirstError::new());
            shared.counters.drained_slots += n as u64;
            total += n;
        }
        total
    }

    /// A batch from the pool into this CPU's magazine, one slot of it returned. When the pool
    /// cannot give the configured batch, smaller ones are tried, down to one slot.
    pub(crate) fn refill_from_pool(&self) -> Res<S::Slot, S> {
        let mut guard = self.lock();
        let (source, scratch, counters) = guard.parts();
        let mut want = self.batch;
        loop {
            scratch.clear();
            match source.assign_for_magazine(want, scratch) {
                Ok(()) => break,
                Err(_) if want > 1 => want /= 2,
                Err(e) => return Err(CacheError::Pool(e)),
            }
        }
        let Some(keep) = scratch.pop() else {
            return Err(CacheError::ShortBatch);
        };
        counters.refills += 1;
        // Push the rest onto whatever CPU we run on now; a push can miss (the magazine was
        // refilled meanwhile by another thread of this CPU, or got stopped): those go back.
        let mut pushed = 0;
        while pushed < scratch.len() && self.stacks.push(S::slot_addr(scratch[pushed])).is_ok() {
            pushed += 1;
        }
        scratch.drain(..pushed);
        let mut errors = FirstError::new();
        Self::give_back(source, scratch, &mut errors);
        if let Err(e) = errors.into_result(()) {
            let _ = source.unassign(keep);
            return Err(e);
        }
        Ok(keep)
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_slow(&self) -> Res<S::Slot, S> {
        match self.alloc_slow_once() {
            // As in `refill`: reclaim the slots cached on the CPUs, then try once more.
            Err(CacheError::Pool(e)) => self.after_reclaim(e, Self::alloc_slow_once),
            result => result,
        }
    }

    /// One slot straight from the pool.
    pub(crate) fn alloc_slow_once(&self) -> Res<S::Slot, S> {
        let mut guard = self.lock();
        let (source, scratch, counters) = guard.parts();
        source.assign_batch(1, scratch).map_err(CacheError::Pool)?;
        counters.slow_allocs += 1;
        scratch.pop().ok_or(CacheError::ShortBatch)
    }

    /// [`alloc_batch`](Self::alloc_batch) without reclaiming cached slots on failure.
    pub(crate) fn alloc_batch_once(&self, n: usize, out: &mut Vec<S::Slot>) -> Res<(), S> {
        let start = out.len();
        out.reserve(n);
        while out.len() - start < n {
            match self.stacks.pop() {
                // SAFETY: as in `alloc`.
                Ok(addr) => out.push(unsafe { S::slot_from_addr(addr) }),
                Err(_) => break,
            }
        }
        let missing = n - (out.len() - start);
        if missing == 0 {
            return Ok(());
        }
        let mut guard = self.lock();
        let (source, _, counters) = guard.parts();
        let before = out.len();
        match source.assign_batch(missing, out) {
            Ok(()) if out.len() - before == missing => {
                counters.bulk_allocs += 1;
                Ok(())
            }
            result => {
                for slot in out.drain(start..) {
                    let _ = source.unassign(slot);
                }
                Err(result
                    .err()
                    .map_or(CacheError::ShortBatch, CacheError::Pool))
            }
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn spill(&self, slot: S::Slot) -> Res<(), S> {
        let mut guard = self.lock();
        let (source, scratch, counters) = guard.parts();
        for _ in 0..self.batch {
            match self.stacks.pop() {
                // SAFETY: as in `alloc`.
                Ok(addr) => scratch.push(unsafe { S::slot_from_addr(addr) }),
                Err(_) => break,
            }
        }
        counters.spills += 1;
        if self.stacks.push(S::slot_addr(slot)).is_err() {
            scratch.push(slot);
        }
        let mut errors = FirstError::new();
        Self::give_back(source, scratch, &mut errors);
        errors.into_result(())
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn free_slow(&self, slot: S::Slot) -> Res<(), S> {
        let mut guard = self.lock();
        guard.counters.slow_frees += 1;
        guard.source.unassign(slot).map_err(CacheError::Pool)
    }

    /// Returns `slots` to the pool in one batch call, emptying it. If the pool refuses the
    /// batch, keeps its error and retries slot by slot, so only the bad slots stay out.
    pub(crate) fn give_back(
        source: &mut S,
        slots: &mut Vec<S::Slot>,
        errors: &mut FirstError<CacheError<S::Error>>,
    ) {
        if slots.is_empty() {
            return;
        }
        if let Err(e) = source.unassign_batch(slots) {
            errors.note(CacheError::Pool(e));
            for &slot in slots.iter() {
                let _ = source.unassign(slot);
            }
        }
        slots.clear();
    }
}
