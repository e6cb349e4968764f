//! Stop-and-drain: stopping one CPU's magazine (flag, then membarrier fence) to empty it
//! (`drain_cpu`, `drain_all`, `trim`), to pull one pageset's slots out of it
//! (`remove_pageset`), or to look at it (`with_stopped`). A compactor needs these; the fast
//! path never waits for them (a stopped magazine sends its CPU to the pool).

use crate::cache::{Res, Shared, SlotCache};
use crate::error::CacheError;
use crate::first_error::FirstError;
use crate::percpu::{StopError, StoppedStack};
use crate::source::SlotSource;
use pcpu_rseq::sync::yield_now;

/// A read-only view of one stopped magazine, given by [`SlotCache::with_stopped`].
pub struct StoppedMagazine<'a, S: SlotSource> {
    stopped: StoppedStack<'a>,
    _source: core::marker::PhantomData<fn() -> S>,
}

impl<S: SlotSource> core::fmt::Debug for StoppedMagazine<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.slots()).finish()
    }
}

impl<S: SlotSource> StoppedMagazine<'_, S> {
    /// Number of free slots in it.
    pub fn len(&self) -> usize {
        self.stopped.len()
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The free slots in it, bottom (oldest) first.
    pub fn slots(&self) -> Vec<S::Slot> {
        (0..self.len())
            .filter_map(|i| self.stopped.get(i))
            // SAFETY: as in `SlotCache::alloc`: only slot addresses are pushed.
            .map(|addr| unsafe { S::slot_from_addr(addr) })
            .collect()
    }
}

impl<S: SlotSource> SlotCache<S> {
    /// Stops `cpu`'s magazine (waiting while another stopper holds it).
    pub(crate) fn stop(&self, cpu: usize) -> Res<StoppedStack<'_>, S> {
        loop {
            match self.stacks.try_stop(cpu) {
                Ok(stopped) => return Ok(stopped),
                Err(StopError::AlreadyStopped) => yield_now(),
                Err(StopError::OutOfRange) => {
                    return Err(CacheError::CpuOutOfRange {
                        cpu,
                        ncpu: self.stacks.ncpu(),
                    })
                }
                Err(StopError::Fence(e)) => return Err(CacheError::Fence(e)),
            }
        }
    }

    /// Pops `stopped` down to `keep` items and returns them to the pool; returns how many.
    pub(crate) fn empty_into_pool(
        stopped: &mut StoppedStack<'_>,
        keep: usize,
        shared: &mut Shared<S>,
        errors: &mut FirstError<CacheError<S::Error>>,
    ) -> usize {
        let (source, scratch, _) = shared.parts();
        while stopped.len() > keep {
            let Some(addr) = stopped.pop() else { break };
            // SAFETY: as in `alloc`.
            scratch.push(unsafe { S::slot_from_addr(addr) });
        }
        let n = scratch.len();
        Self::give_back(source, scratch, errors);
        n
    }

    /// Stops `cpu`'s magazine, fences that CPU, returns every slot in it to the pool, and
    /// restarts it (tcmalloc's StopCpu/FenceCpu/drain). Meanwhile that CPU's allocs and frees
    /// go to the pool; they never wait for this call. Returns the number of slots returned.
    ///
    /// # Errors
    /// [`CacheError::CpuOutOfRange`], [`CacheError::Fence`], or [`CacheError::Pool`] if the pool
    /// refused a slot (the others were still returned).
    pub fn drain_cpu(&self, cpu: usize) -> Res<usize, S> {
        let mut stopped = self.stop(cpu)?;
        let mut guard = self.lock();
        let shared = &mut *guard;
        let mut errors = FirstError::new();
        let n = Self::empty_into_pool(&mut stopped, 0, shared, &mut errors);
        shared.counters.drains += 1;
        shared.counters.drained_slots += n as u64;
        drop(guard);
        drop(stopped);
        errors.into_result(n)
    }

    /// [`drain_cpu`](Self::drain_cpu) for every CPU whose magazine holds slots, one at a time
    /// (never two magazines stopped at once by this call). Returns the number of slots
    /// returned.
    ///
    /// An empty magazine is not stopped (its occupancy is read racily: a slot pushed after that
    /// read is one pushed just after the drain, which a drain never excludes). So the cost
    /// follows the magazines in use, not the CPU count: where lanes follow `mm_cid`, a process
    /// on 2 of 256 CPUs stops (and fences for) 2 magazines, not 256.
    ///
    /// # Errors
    /// The first error; the remaining CPUs are still drained.
    pub fn drain_all(&self) -> Res<usize, S> {
        let mut total = 0;
        let mut errors = FirstError::new();
        for cpu in 0..self.stacks.ncpu() {
            if self.stacks.len_hint(cpu) == 0 {
                continue;
            }
            total += errors.ok(self.drain_cpu(cpu)).unwrap_or(0);
        }
        errors.into_result(total)
    }

    /// Returns cached slots to the pool until each magazine holds at most `keep_per_cpu`
    /// (`trim(0)` empties them all). Magazines already small enough are not stopped (their
    /// occupancy is read racily). Returns the number of slots returned.
    ///
    /// # Errors
    /// As for [`drain_all`](Self::drain_all).
    pub fn trim(&self, keep_per_cpu: usize) -> Res<usize, S> {
        let mut total = 0;
        let mut errors = FirstError::new();
        for cpu in 0..self.stacks.ncpu() {
            if self.stacks.len_hint(cpu) <= keep_per_cpu {
                continue;
            }
            let Some(mut stopped) = errors.ok(self.stop(cpu)) else {
                continue;
            };
            let mut guard = self.lock();
            let shared = &mut *guard;
            let n = Self::empty_into_pool(&mut stopped, keep_per_cpu, shared, &mut errors);
            shared.counters.drained_slots += n as u64;
            total += n;
        }
        self.lock().counters.trims += 1;
        errors.into_result(total)
    }

    /// Pulls the free slots of pageset `id` out of every CPU's magazine that holds slots
    /// (stopping and fencing each in turn, keeping the other slots in order) and unassigns them: what a compactor
    /// needs before it can release the pageset. Slots freed later by their users go wherever
    /// `free` puts them; mark the pageset draining in the pool first so that refills do not
    /// bring its slots back. Returns the number of slots removed.
    ///
    /// # Errors
    /// As for [`drain_cpu`](Self::drain_cpu); the remaining CPUs are still processed.
    pub fn remove_pageset(&self, id: S::PagesetId) -> Res<usize, S> {
        let mut total = 0;
        let mut errors = FirstError::new();
        for cpu in 0..self.stacks.ncpu() {
            // Empty magazines are skipped, as in `drain_all`: a slot of the pageset freed into
            // one after this read is one freed after the removal, which the compactor's
            // protocol already allows for (the pageset stays assigned and is not released).
            if self.stacks.len_hint(cpu) == 0 {
                continue;
            }
            let Some(mut stopped) = errors.ok(self.stop(cpu)) else {
                continue;
            };
            let mut guard = self.lock();
            let (source, scratch, counters) = guard.parts();
            // SAFETY: as in `alloc`: only slot addresses of this source are pushed.
            let slot_of = |addr: usize| unsafe { S::slot_from_addr(addr) };
            stopped.retain(
                |addr| source.pageset_of(slot_of(addr)) != Some(id),
                |addr| scratch.push(slot_of(addr)),
            );
            drop(stopped);
            let n = scratch.len();
            Self::give_back(source, scratch, &mut errors);
            counters.removed_slots += n as u64;
            total += n;
        }
        errors.into_result(total)
    }

    /// Stops `cpu`'s magazine, fences that CPU, runs `f` on a read-only view of it, and
    /// restarts it. While `f` runs the magazine cannot change (that CPU's allocs and frees go
    /// to the pool); use it to see which slots a CPU holds, e.g. before compaction.
    ///
    /// # Errors
    /// [`CacheError::CpuOutOfRange`] or [`CacheError::Fence`].
    ///
    /// `f` must not stop the same magazine again (`drain_cpu(cpu)`, `trim`, `drain_all`,
    /// `remove_pageset`, `with_stopped(cpu, ..)`): that would wait for itself forever. Allocs
    /// and frees inside `f` are fine (they take the slow path on `cpu`).
    pub fn with_stopped<R>(
        &self,
        cpu: usize,
        f: impl FnOnce(&StoppedMagazine<'_, S>) -> R,
    ) -> Res<R, S> {
        let stopped = self.stop(cpu)?;
        let view = StoppedMagazine {
            stopped,
            _source: core::marker::PhantomData,
        };
        Ok(f(&view))
    }
}
