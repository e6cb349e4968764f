//! [`CacheConfig`]: the sizes of a cache, kept apart from the cache so that its defaults and
//! builder methods read on their own.

/// Sizes of a [`SlotCache`](crate::SlotCache).
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
