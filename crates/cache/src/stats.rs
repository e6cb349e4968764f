//! What a cache reports about itself: [`CacheCounters`], kept by the slow paths under the pool
//! lock, and [`CacheStats`], those counters plus the magazines' occupancy. The counters are one
//! struct in both places, so a new counter is added once.

/// Event counts of a [`SlotCache`](crate::SlotCache). Only the slow paths count (under the
/// pool lock): the per-CPU pop and push touch no shared word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
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
}

/// Counters and occupancy of a [`SlotCache`](crate::SlotCache). The counters are a copy of
/// the ones kept under the pool lock; the occupancy is read from each magazine's `top` (racy
/// while the cache is in use, exact when it is quiescent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The event counts.
    pub counters: CacheCounters,
    /// Free slots in each CPU's magazine.
    pub cached_per_cpu: Vec<usize>,
    /// Sum of `cached_per_cpu`.
    pub cached: usize,
    /// Effective capacity of each magazine: `min(capacity, max_cached / ncpu)`.
    pub capacity_per_cpu: usize,
    /// Effective batch: `min(batch, capacity_per_cpu)`.
    pub batch: usize,
}
