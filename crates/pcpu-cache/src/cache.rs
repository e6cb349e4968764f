//! [`SlotCache`]: per-CPU magazines of free slots in front of one pool.

use crate::error::{CacheError, ConfigError};
use crate::percpu::{PercpuStacks, StackMiss, StopError, StoppedStack};
use crate::source::SlotSource;
use crate::sync::{self, Locked, Mutex};

/// Sizes of a [`SlotCache`].
///
/// ```
/// use pcpu_cache::CacheConfig;
/// let c = CacheConfig::new().with_capacity(128).with_batch(32).with_max_cached(4096);
/// assert_eq!((c.capacity, c.batch, c.max_cached), (128, 32, 4096));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most free slots one CPU's magazine holds (before the `max_cached` cap).
    pub capacity: usize,
    /// Slots moved per refill (from the pool) or spill (to the pool).
    pub batch: usize,
    /// Cap on the slots cached over all CPUs. Enforced without a shared counter: each CPU's
    /// magazine holds at most `min(capacity, max_cached / ncpu)`.
    pub max_cached: usize,
    /// Number of magazines, one per CPU; `None` (the default) takes the pool's CPU count.
    /// Set it for a pool whose slots have fewer lanes than the machine has CPUs: a pool of
    /// one lane (objects that are not per-CPU, such as counter headers) still wants one
    /// magazine per CPU, so that creating and destroying objects scales.
    pub magazines: Option<usize>,
}

impl CacheConfig {
    /// Default capacity of one CPU's magazine.
    pub const DEFAULT_CAPACITY: usize = 64;
    /// Default batch.
    pub const DEFAULT_BATCH: usize = 16;

    /// Capacity 64, batch 16, no cap beyond that.
    pub const fn new() -> Self {
        CacheConfig {
            capacity: Self::DEFAULT_CAPACITY,
            batch: Self::DEFAULT_BATCH,
            max_cached: usize::MAX,
            magazines: None,
        }
    }

    /// Sets [`capacity`](Self::capacity).
    pub const fn with_capacity(self, capacity: usize) -> Self {
        CacheConfig { capacity, ..self }
    }

    /// Sets [`batch`](Self::batch).
    pub const fn with_batch(self, batch: usize) -> Self {
        CacheConfig { batch, ..self }
    }

    /// Sets [`max_cached`](Self::max_cached).
    pub const fn with_max_cached(self, max_cached: usize) -> Self {
        CacheConfig { max_cached, ..self }
    }

    /// Sets [`magazines`](Self::magazines).
    pub const fn with_magazines(self, magazines: usize) -> Self {
        CacheConfig {
            magazines: Some(magazines),
            ..self
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters and occupancy of a [`SlotCache`]. The counters are kept under the pool lock, by the
/// slow paths only; the occupancy is read from each magazine's `top` (racy while the cache is
/// in use, exact when it is quiescent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Batches brought from the pool into a magazine (an `alloc` that found it empty).
    pub refills: u64,
    /// Batches sent from a magazine back to the pool (a `free` that found it full).
    pub spills: u64,
    /// `alloc`s served by the pool directly because the magazine was stopped or busy, or the
    /// thread could not run per-CPU operations.
    pub slow_allocs: u64,
    /// `free`s sent to the pool directly, for the same reasons.
    pub slow_frees: u64,
    /// `alloc_batch` calls that had to take slots from the pool.
    pub bulk_allocs: u64,
    /// Magazines stopped and emptied by `drain_cpu`/`drain_all`.
    pub drains: u64,
    /// Slots returned to the pool by drains and trims.
    pub drained_slots: u64,
    /// `trim` calls.
    pub trims: u64,
    /// Slots returned to the pool by `remove_pageset`.
    pub removed_slots: u64,
    /// Free slots in each CPU's magazine.
    pub cached_per_cpu: Vec<usize>,
    /// Sum of `cached_per_cpu`.
    pub cached: usize,
    /// Effective capacity of each magazine: `min(capacity, max_cached / ncpu)`.
    pub capacity_per_cpu: usize,
    /// Effective batch: `min(batch, capacity_per_cpu)`.
    pub batch: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    refills: u64,
    spills: u64,
    slow_allocs: u64,
    slow_frees: u64,
    bulk_allocs: u64,
    drains: u64,
    drained_slots: u64,
    trims: u64,
    removed_slots: u64,
}

/// What the pool lock protects.
struct Shared<S: SlotSource> {
    source: S,
    /// Reused by refills and spills so that they do not allocate in the steady state.
    scratch: Vec<S::Slot>,
    counters: Counters,
}

/// Per-CPU magazines of free slots of one pool (one size class). See the
/// [crate docs](crate) for the protocol.
///
/// ```
/// use pcpu_cache::{CacheConfig, HeapSource, SlotCache};
/// let cache = SlotCache::new(HeapSource::new(4, 8, 4, 64), CacheConfig::new().with_batch(8))
///     .unwrap();
/// let a = cache.alloc().unwrap();
/// let b = cache.alloc().unwrap();
/// assert_ne!(a, b);
/// // SAFETY: both came from `cache`, and nothing writes their cells any more.
/// unsafe {
///     cache.free(a).unwrap();
///     cache.free(b).unwrap();
/// }
/// cache.drain_all().unwrap();
/// assert_eq!(cache.with_pool(|p| pcpu_cache::SlotSource::assigned(p)), 0);
/// ```
pub struct SlotCache<S: SlotSource> {
    stacks: PercpuStacks,
    shared: Mutex<Shared<S>>,
    batch: usize,
    cell_ncpu: usize,
    stride: usize,
    cell_words: usize,
}

impl<S: SlotSource> core::fmt::Debug for SlotCache<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlotCache")
            .field("ncpu", &self.stacks.ncpu())
            .field("capacity_per_cpu", &self.stacks.capacity())
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

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

type Res<T, S> = Result<T, CacheError<<S as SlotSource>::Error>>;

impl<S: SlotSource> SlotCache<S> {
    /// A cache with one magazine per CPU (`config.magazines`, by default `source.ncpu()`),
    /// each holding at most `min(capacity, max_cached / magazines)` free slots.
    ///
    /// # Errors
    /// [`CacheError::Config`] for a zero capacity or batch, a cap below the CPU count, or an
    /// unusable pool geometry.
    pub fn new(source: S, config: CacheConfig) -> Res<Self, S> {
        if config.capacity == 0 {
            return Err(ConfigError::ZeroCapacity.into());
        }
        if config.batch == 0 {
            return Err(ConfigError::ZeroBatch.into());
        }
        let cell_ncpu = source.ncpu();
        let (cell, stride) = (source.cell_bytes(), source.stride());
        if cell_ncpu == 0 || cell == 0 || cell % 8 != 0 || stride == 0 || stride % 8 != 0 {
            return Err(ConfigError::BadPoolGeometry.into());
        }
        let ncpu = config.magazines.unwrap_or(cell_ncpu);
        if ncpu == 0 {
            return Err(ConfigError::BadPoolGeometry.into());
        }
        let per_cpu = config.capacity.min(config.max_cached / ncpu);
        if per_cpu == 0 {
            return Err(ConfigError::CapBelowNcpu {
                max_cached: config.max_cached,
                ncpu,
            }
            .into());
        }
        let batch = config.batch.min(per_cpu);
        let stacks = PercpuStacks::new(ncpu, per_cpu).map_err(|_| ConfigError::TooLarge)?;
        Ok(SlotCache {
            stacks,
            shared: Mutex::new(Shared {
                source,
                scratch: Vec::with_capacity(batch + 1),
                counters: Counters::default(),
            }),
            batch,
            cell_ncpu,
            stride,
            cell_words: cell / 8,
        })
    }

    /// Number of magazines ([`CacheConfig::magazines`], by default the pool's CPU count).
    pub fn ncpu(&self) -> usize {
        self.stacks.ncpu()
    }

    /// Effective capacity of one magazine.
    pub fn capacity_per_cpu(&self) -> usize {
        self.stacks.capacity()
    }

    /// Effective batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    fn lock(&self) -> Locked<'_, Shared<S>> {
        sync::lock(&self.shared)
    }

    /// Runs `f` on the pool under the pool lock (for its stats, `set_draining`, `release`...).
    /// Do not call the cache from inside `f`: the lock is not reentrant.
    pub fn with_pool<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.lock().source)
    }

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

    #[cold]
    #[inline(never)]
    fn refill(&self) -> Res<S::Slot, S> {
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
    fn after_reclaim<T>(&self, e: S::Error, retry: impl FnOnce(&Self) -> Res<T, S>) -> Res<T, S> {
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
    fn reclaim_cached(&self) -> usize {
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
            let mut err = None;
            let n = Self::empty_into_pool(&mut stopped, 0, shared, &mut err);
            shared.counters.drained_slots += n as u64;
            total += n;
        }
        total
    }

    /// A batch from the pool into this CPU's magazine, one slot of it returned. When the pool
    /// cannot give the configured batch, smaller ones are tried, down to one slot.
    fn refill_from_pool(&self) -> Res<S::Slot, S> {
        let mut guard = self.lock();
        let Shared {
            source,
            scratch,
            counters,
        } = &mut *guard;
        let mut want = self.batch;
        loop {
            scratch.clear();
            match source.assign_batch(want, scratch) {
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
        let mut first_err = None;
        Self::give_back(source, scratch, &mut first_err);
        match first_err {
            None => Ok(keep),
            Some(e) => {
                let _ = source.unassign(keep);
                Err(CacheError::Pool(e))
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self) -> Res<S::Slot, S> {
        match self.alloc_slow_once() {
            // As in `refill`: reclaim the slots cached on the CPUs, then try once more.
            Err(CacheError::Pool(e)) => self.after_reclaim(e, Self::alloc_slow_once),
            result => result,
        }
    }

    /// One slot straight from the pool.
    fn alloc_slow_once(&self) -> Res<S::Slot, S> {
        let mut guard = self.lock();
        let Shared {
            source,
            scratch,
            counters,
        } = &mut *guard;
        scratch.clear();
        source.assign_batch(1, scratch).map_err(CacheError::Pool)?;
        counters.slow_allocs += 1;
        scratch.pop().ok_or(CacheError::ShortBatch)
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

    /// [`alloc_batch`](Self::alloc_batch) without reclaiming cached slots on failure.
    fn alloc_batch_once(&self, n: usize, out: &mut Vec<S::Slot>) -> Res<(), S> {
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
        let Shared {
            source, counters, ..
        } = &mut *guard;
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

    /// Zeroes every cell of the slot at `addr`, writing only cells that are not zero already:
    /// a CPU that never wrote the slot keeps its page unpopulated (reading an untouched
    /// anonymous page maps the shared zero page).
    ///
    /// # Safety
    /// `addr` is `slot_addr` of a slot of this cache's source that is assigned and whose cells
    /// nobody else accesses.
    #[inline]
    unsafe fn zero_cells(&self, addr: usize) {
        for cpu in 0..self.cell_ncpu {
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
        let addr = S::slot_addr(slot);
        // SAFETY: the caller gives us the slot and sole access to its cells; it is assigned
        // (to this cache) until it reaches the pool.
        unsafe { self.zero_cells(addr) };
        match self.stacks.push(addr) {
            Ok(()) => Ok(()),
            Err(StackMiss::Full) => self.spill(slot),
            Err(_) => self.free_slow(slot),
        }
    }

    /// [`free`](Self::free) for each slot; returns the first error after freeing the rest.
    ///
    /// # Errors
    /// As for [`free`](Self::free).
    ///
    /// # Safety
    /// As for [`free`](Self::free), for every slot (and no slot twice).
    pub unsafe fn free_batch(&self, slots: impl IntoIterator<Item = S::Slot>) -> Res<(), S> {
        let mut first = Ok(());
        for slot in slots {
            // SAFETY: forwarded from the caller.
            let r = unsafe { self.free(slot) };
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    #[cold]
    #[inline(never)]
    fn spill(&self, slot: S::Slot) -> Res<(), S> {
        let mut guard = self.lock();
        let Shared {
            source,
            scratch,
            counters,
        } = &mut *guard;
        scratch.clear();
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
        let mut first_err = None;
        Self::give_back(source, scratch, &mut first_err);
        first_err.map_or(Ok(()), |e| Err(CacheError::Pool(e)))
    }

    #[cold]
    #[inline(never)]
    fn free_slow(&self, slot: S::Slot) -> Res<(), S> {
        let mut guard = self.lock();
        guard.counters.slow_frees += 1;
        guard.source.unassign(slot).map_err(CacheError::Pool)
    }

    /// Stops `cpu`'s magazine (waiting while another stopper holds it).
    fn stop(&self, cpu: usize) -> Res<StoppedStack<'_>, S> {
        loop {
            match self.stacks.try_stop(cpu) {
                Ok(stopped) => return Ok(stopped),
                Err(StopError::AlreadyStopped) => sync::yield_now(),
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

    /// Returns `slots` to the pool in one batch call, emptying it. If the pool refuses the
    /// batch, keeps its error and retries slot by slot, so only the bad slots stay out.
    fn give_back(source: &mut S, slots: &mut Vec<S::Slot>, first_err: &mut Option<S::Error>) {
        if slots.is_empty() {
            return;
        }
        if let Err(e) = source.unassign_batch(slots) {
            first_err.get_or_insert(e);
            for &slot in slots.iter() {
                let _ = source.unassign(slot);
            }
        }
        slots.clear();
    }

    /// Pops `stopped` down to `keep` items and returns them to the pool; returns how many.
    fn empty_into_pool(
        stopped: &mut StoppedStack<'_>,
        keep: usize,
        shared: &mut Shared<S>,
        first_err: &mut Option<S::Error>,
    ) -> usize {
        let Shared {
            source, scratch, ..
        } = shared;
        scratch.clear();
        while stopped.len() > keep {
            let Some(addr) = stopped.pop() else { break };
            // SAFETY: as in `alloc`.
            scratch.push(unsafe { S::slot_from_addr(addr) });
        }
        let n = scratch.len();
        Self::give_back(source, scratch, first_err);
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
        let mut first_err = None;
        let n = Self::empty_into_pool(&mut stopped, 0, shared, &mut first_err);
        shared.counters.drains += 1;
        shared.counters.drained_slots += n as u64;
        drop(guard);
        drop(stopped);
        first_err.map_or(Ok(n), |e| Err(CacheError::Pool(e)))
    }

    /// [`drain_cpu`](Self::drain_cpu) for every CPU, one at a time (never two magazines stopped
    /// at once by this call). Returns the number of slots returned.
    ///
    /// # Errors
    /// The first error; the remaining CPUs are still drained.
    pub fn drain_all(&self) -> Res<usize, S> {
        let mut total = 0;
        let mut first = None;
        for cpu in 0..self.stacks.ncpu() {
            match self.drain_cpu(cpu) {
                Ok(n) => total += n,
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(total), Err)
    }

    /// Returns cached slots to the pool until each magazine holds at most `keep_per_cpu`
    /// (`trim(0)` empties them all). Magazines already small enough are not stopped (their
    /// occupancy is read racily). Returns the number of slots returned.
    ///
    /// # Errors
    /// As for [`drain_all`](Self::drain_all).
    pub fn trim(&self, keep_per_cpu: usize) -> Res<usize, S> {
        let mut total = 0;
        let mut first = None;
        for cpu in 0..self.stacks.ncpu() {
            if self.stacks.len_hint(cpu) <= keep_per_cpu {
                continue;
            }
            let mut stopped = match self.stop(cpu) {
                Ok(s) => s,
                Err(e) => {
                    first.get_or_insert(e);
                    continue;
                }
            };
            let mut guard = self.lock();
            let shared = &mut *guard;
            let mut err = None;
            let n = Self::empty_into_pool(&mut stopped, keep_per_cpu, shared, &mut err);
            shared.counters.drained_slots += n as u64;
            total += n;
            if let Some(e) = err {
                first.get_or_insert(CacheError::Pool(e));
            }
        }
        self.lock().counters.trims += 1;
        first.map_or(Ok(total), Err)
    }

    /// Pulls the free slots of pageset `id` out of every CPU's magazine (stopping and fencing
    /// each in turn, keeping the other slots in order) and unassigns them: what a compactor
    /// needs before it can release the pageset. Slots freed later by their users go wherever
    /// `free` puts them; mark the pageset draining in the pool first so that refills do not
    /// bring its slots back. Returns the number of slots removed.
    ///
    /// # Errors
    /// As for [`drain_cpu`](Self::drain_cpu); the remaining CPUs are still processed.
    pub fn remove_pageset(&self, id: S::PagesetId) -> Res<usize, S> {
        let mut total = 0;
        let mut first = None;
        for cpu in 0..self.stacks.ncpu() {
            let mut stopped = match self.stop(cpu) {
                Ok(s) => s,
                Err(e) => {
                    first.get_or_insert(e);
                    continue;
                }
            };
            let mut guard = self.lock();
            let Shared {
                source,
                scratch,
                counters,
            } = &mut *guard;
            scratch.clear();
            // SAFETY: as in `alloc`: only slot addresses of this source are pushed.
            let slot_of = |addr: usize| unsafe { S::slot_from_addr(addr) };
            stopped.retain(
                |addr| source.pageset_of(slot_of(addr)) != Some(id),
                |addr| scratch.push(slot_of(addr)),
            );
            drop(stopped);
            let n = scratch.len();
            let mut err = None;
            Self::give_back(source, scratch, &mut err);
            if let Some(e) = err {
                first.get_or_insert(CacheError::Pool(e));
            }
            counters.removed_slots += n as u64;
            total += n;
        }
        first.map_or(Ok(total), Err)
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

    /// Counters and per-CPU occupancy.
    pub fn stats(&self) -> CacheStats {
        let c = self.lock().counters;
        let cached_per_cpu: Vec<usize> = (0..self.stacks.ncpu())
            .map(|cpu| self.stacks.len_hint(cpu))
            .collect();
        CacheStats {
            refills: c.refills,
            spills: c.spills,
            slow_allocs: c.slow_allocs,
            slow_frees: c.slow_frees,
            bulk_allocs: c.bulk_allocs,
            drains: c.drains,
            drained_slots: c.drained_slots,
            trims: c.trims,
            removed_slots: c.removed_slots,
            cached: cached_per_cpu.iter().sum(),
            cached_per_cpu,
            capacity_per_cpu: self.stacks.capacity(),
            batch: self.batch,
        }
    }

    /// Returns every cached slot to the pool and gives the pool back, with the number of slots
    /// returned (or the first error the pool reported while taking them).
    pub fn into_pool(self) -> (S, Res<usize, S>) {
        let drained = self.drain_all();
        let shared = self
            .shared
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (shared.source, drained)
    }
}
