//! [`SlotCache`]: the type, its construction and what it reports. What it does is split by job:
//! `fast.rs` the per-CPU pop and push, `refill.rs` what happens when a magazine is empty, full,
//! stopped or busy (the pool side), `drain.rs` stopping a magazine to empty or inspect it.

use crate::config::CacheConfig;
use crate::error::{CacheError, ConfigError};
use crate::percpu::PercpuStacks;
use crate::pool_lock::{self, Locked};
use crate::source::SlotSource;
use crate::stats::{CacheCounters, CacheStats};
use pcpu_rseq::sync::Mutex;

/// What the pool lock protects.
pub(crate) struct Shared<S: SlotSource> {
    pub(crate) source: S,
    /// Reused by refills and spills so that they do not allocate in the steady state.
    pub(crate) scratch: Vec<S::Slot>,
    pub(crate) counters: CacheCounters,
}

impl<S: SlotSource> Shared<S> {
    /// The fields, borrowed apart, with the scratch batch emptied: every user starts a batch.
    pub(crate) fn parts(&mut self) -> (&mut S, &mut Vec<S::Slot>, &mut CacheCounters) {
        self.scratch.clear();
        (&mut self.source, &mut self.scratch, &mut self.counters)
    }
}

/// Per-CPU magazines of free slots of one pool (one size class). See the
/// [crate docs](crate) for the protocol.
///
/// ```
/// use pcpu_cache::{CacheConfig, SlotCache};
/// use pcpu_pageset::{Pool, PoolConfig, SizeClass};
/// let pool = Pool::new(PoolConfig::new(SizeClass::B8).with_ncpu(4)).unwrap();
/// let cache = SlotCache::new(pool, CacheConfig::new().with_batch(8)).unwrap();
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
    pub(crate) stacks: PercpuStacks,
    pub(crate) shared: Mutex<Shared<S>>,
    /// Effective batch: `min(config.batch, capacity_per_cpu)`.
    pub(crate) batch: usize,
    /// The pool's CPU count: how many cells `free` zeroes (may differ from the magazines').
    pub(crate) cell_ncpu: usize,
    /// Bytes from one CPU's cell of a slot to the next CPU's.
    pub(crate) stride: usize,
    /// 8-byte words per cell.
    pub(crate) cell_words: usize,
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

/// The result of a cache operation over pool `S`.
pub(crate) type Res<T, S> = Result<T, CacheError<<S as SlotSource>::Error>>;

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
                counters: CacheCounters::default(),
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

    pub(crate) fn lock(&self) -> Locked<'_, Shared<S>> {
        pool_lock::lock(&self.shared)
    }

    /// Runs `f` on a shared view of the pool under the pool lock (its stats, which pageset a
    /// slot lies in...). Do not call the cache from inside `f`: the lock is not reentrant.
    pub fn with_pool<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.lock().source)
    }

    /// Runs `f` on the pool itself under the pool lock (`set_draining`, `release`, assigning
    /// slots for a relocation...). Do not call the cache from inside `f`: the lock is not
    /// reentrant.
    ///
    /// # Safety
    /// `f` keeps [`SlotSource`]'s promises for every slot the cache holds in a magazine or has
    /// handed out and not yet been given back: it does not unassign such a slot (the cache
    /// would hand it out again, or zero its cells after the pool unmapped them), except one
    /// the caller got from [`alloc`](Self::alloc) and no longer uses (giving it to the pool
    /// directly instead of [`free`](Self::free)), and it does nothing else that would unmap
    /// or reuse their cells. Calls that only read, mark pagesets draining, assign new slots or
    /// release empty memory keep them.
    pub unsafe fn with_pool_mut<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.lock().source)
    }

    /// Counters and per-CPU occupancy.
    pub fn stats(&self) -> CacheStats {
        let counters = self.lock().counters;
        let cached_per_cpu: Vec<usize> = (0..self.stacks.ncpu())
            .map(|cpu| self.stacks.len_hint(cpu))
            .collect();
        CacheStats {
            counters,
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
        (self.shared.into_inner().source, drained)
    }
}
