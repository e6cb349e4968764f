//! [`DomainStats`]: what a domain holds (every space, the header storage) and what it has
//! done (running totals), serialisable behind the `serde` feature.
//!
//! The totals are counted on slow paths only. Most are rare events counted with one relaxed
//! atomic add on the domain (a compaction, a lazy upgrade, a batch widening). Slow-path adds
//! can be frequent (a counter whose slot could not be had, a thread without rseq, every add
//! during a relocation), and adds to many counters would then meet on one shared line: they
//! are counted on stripes, one cache line each, picked by the CPU, and added up by
//! [`Domain::stats`](crate::Domain::stats). The add fast path counts nothing.

#[cfg(feature = "serde")]
use pcpu_cache::CacheCounters;
use pcpu_cache::CacheStats;
use pcpu_migrate::Waste;
// Not part of any modelled protocol: plain std atomics (pcpu-counter's loom models do not
// build the domain).
use core::sync::atomic::{AtomicU64, Ordering};

/// What a [`Domain`](crate::Domain) holds, measured, and what it has done so far.
///
/// With the `serde` feature it implements `serde::Serialize` (the fields as named here;
/// [`Waste`] and [`CacheStats`] as structs of their public fields).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DomainStats {
    /// Live against resident per-CPU memory, every space added up (single counters and
    /// groups); `resident_known` only if it is known for every space.
    #[cfg_attr(feature = "serde", serde(with = "WasteDef"))]
    pub waste: Waste,
    /// Each space: single counters (8 bytes per CPU), then groups of 2, 3–4 and 5–8 counters
    /// (16, 32 and 64 bytes per CPU).
    pub spaces: Vec<SpaceStats>,
    /// Header blocks handed out (counters that left the inline form, and groups), cached
    /// free blocks included.
    pub header_blocks: usize,
    /// Bytes resident in header pages (mincore).
    pub header_bytes_resident: usize,
    /// Moved headers whose counters have not looked at them since, process-wide (every
    /// domain): the entries of the forward table, a few tens of bytes each.
    pub header_forwards_pending: usize,
    /// Running totals since the domain was built.
    pub totals: DomainTotals,
}

/// One space of a domain: the slots of one size class.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SpaceStats {
    /// Bytes per CPU of one slot: 8 (single counters), 16, 32 or 64 (groups).
    pub class_bytes: usize,
    /// Live against resident per-CPU memory.
    #[cfg_attr(feature = "serde", serde(with = "WasteDef"))]
    pub waste: Waste,
    /// The space's slot caches.
    #[cfg_attr(feature = "serde", serde(with = "CacheStatsDef"))]
    pub cache: CacheStats,
}

/// What a domain has done since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DomainTotals {
    /// [`Domain::compact`](crate::Domain::compact) calls that succeeded (a
    /// [`Compactor`](crate::Compactor)'s included).
    pub compactions: u64,
    /// Those that failed (nothing is lost by one).
    pub compaction_failures: u64,
    /// Live counters (and groups) moved by the compactions that succeeded (a failed one
    /// reports nothing, and whatever it moved stays correct).
    pub slots_moved: u64,
    /// Grace periods the compactions that succeeded ran.
    pub grace_periods: u64,
    /// Single counters' headers moved out of sparse header pages by compactions (each such
    /// counter fixes its state word up the next time it looks: `pcpu_counter`'s forward
    /// table).
    pub headers_moved: u64,
    /// Lazy counters and groups that left the inline form (went per-CPU).
    pub upgrades: u64,
    /// Batch doublings of contended counters.
    pub widenings: u64,
    /// Adds that took the slow path to the central count because the per-CPU path refused:
    /// the counter's slot disabled (being relocated, or none could be had) or the thread
    /// unable to run per-CPU operations. Adds to inline counters are not among them.
    pub slow_path_adds: u64,
    /// Aborted and retried rseq critical sections, of the whole process (every domain, and
    /// the slot caches): [`pcpu_rseq::aborts_total`]. 0 on the portable backend.
    pub rseq_aborts: u64,
}

/// One stripe of the slow-path count: a cache line of its own.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Stripe(AtomicU64);

/// At most this many stripes per domain (8 KiB): more CPUs share them.
const MAX_STRIPES: usize = 64;

/// The counts behind [`DomainTotals`], kept by a domain.
#[derive(Debug)]
pub(crate) struct Totals {
    compactions: AtomicU64,
    compaction_failures: AtomicU64,
    slots_moved: AtomicU64,
    grace_periods: AtomicU64,
    headers_moved: AtomicU64,
    upgrades: AtomicU64,
    widenings: AtomicU64,
    slow_path_adds: Box<[Stripe]>,
}

impl Totals {
    pub(crate) fn new(cpus: usize) -> Self {
        Totals {
            compactions: AtomicU64::new(0),
            compaction_failures: AtomicU64::new(0),
            slots_moved: AtomicU64::new(0),
            grace_periods: AtomicU64::new(0),
            headers_moved: AtomicU64::new(0),
            upgrades: AtomicU64::new(0),
            widenings: AtomicU64::new(0),
            slow_path_adds: (0..cpus.clamp(1, MAX_STRIPES))
                .map(|_| Stripe::default())
                .collect(),
        }
    }

    pub(crate) fn compacted(&self, report: &pcpu_migrate::CompactReport) {
        self.compactions.fetch_add(1, Ordering::Relaxed);
        self.slots_moved
            .fetch_add(report.slots_moved as u64, Ordering::Relaxed);
        self.grace_periods
            .fetch_add(report.grace_periods as u64, Ordering::Relaxed);
    }

    pub(crate) fn headers_moved(&self, n: usize) {
        self.headers_moved.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn compaction_failed(&self) {
        self.compaction_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn upgraded(&self) {
        self.upgrades.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn widened(&self) {
        self.widenings.fetch_add(1, Ordering::Relaxed);
    }

    /// A slow-path add: on this CPU's stripe (called from `#[cold]` paths only).
    #[inline]
    pub(crate) fn slow_path_add(&self) {
        let stripe = &self.slow_path_adds[pcpu_rseq::current_cpu() % self.slow_path_adds.len()];
        stripe.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> DomainTotals {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DomainTotals {
            compactions: load(&self.compactions),
            compaction_failures: load(&self.compaction_failures),
            slots_moved: load(&self.slots_moved),
            grace_periods: load(&self.grace_periods),
            headers_moved: load(&self.headers_moved),
            upgrades: load(&self.upgrades),
            widenings: load(&self.widenings),
            slow_path_adds: self.slow_path_adds.iter().map(|s| load(&s.0)).sum(),
            rseq_aborts: pcpu_rseq::aborts_total(),
        }
    }
}

/// Adds up the waste of several spaces.
pub(crate) fn sum_waste(all: impl IntoIterator<Item = Waste>) -> Waste {
    all.into_iter().fold(
        Waste {
            live_objects: 0,
            live_bytes: 0,
            resident_bytes: 0,
            owner_lane_bytes: 0,
            mapped_bytes: 0,
            resident_known: true,
        },
        |a, w| Waste {
            live_objects: a.live_objects + w.live_objects,
            live_bytes: a.live_bytes + w.live_bytes,
            resident_bytes: a.resident_bytes + w.resident_bytes,
            owner_lane_bytes: a.owner_lane_bytes + w.owner_lane_bytes,
            mapped_bytes: a.mapped_bytes + w.mapped_bytes,
            resident_known: a.resident_known && w.resident_known,
        },
    )
}

/// `serde`'s mirror of [`Waste`] (a type of pcpu-migrate, which has no `serde` feature).
/// The fields must be those of `Waste` (see [`CacheStatsDef`]).
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
#[serde(remote = "Waste")]
struct WasteDef {
    live_objects: usize,
    live_bytes: usize,
    resident_bytes: usize,
    owner_lane_bytes: usize,
    mapped_bytes: usize,
    resident_known: bool,
}

/// `serde`'s mirror of [`CacheStats`] (a type of pcpu-cache, which has no `serde` feature).
/// The fields must be those of `CacheStats`: a renamed or removed one fails to compile, an
/// added one would be left out (`tests/stats.rs` checks the JSON has them all).
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
#[serde(remote = "CacheStats")]
struct CacheStatsDef {
    #[serde(with = "CacheCountersDef")]
    counters: CacheCounters,
    cached_per_cpu: Vec<usize>,
    cached: usize,
    capacity_per_cpu: usize,
    batch: usize,
}

/// `serde`'s mirror of [`CacheCounters`], on the same terms as [`CacheStatsDef`].
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
#[serde(remote = "CacheCounters")]
struct CacheCountersDef {
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
