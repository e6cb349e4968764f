//! [`Domain`]: the allocator instance behind counters — pagesets, per-CPU caches and the
//! compactor — with its configuration.

use crate::compactor::Compactor;
use crate::headers::HeaderStore;
use crate::levels::Levels;
use crate::registry::{Registry, DOMAINS_FULL};
use crate::stats::{DomainStats, SpaceStats, Totals};
use crate::CounterError;
use pcpu_migrate::{CompactPolicy, CompactReport, Space, SpaceConfig};
use pcpu_pageset::SizeClass;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How a counter uses per-CPU memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterMode {
    /// Starts inline: the counter is its own two words, an atomic count and a state word,
    /// with no other memory. It takes a header and a per-CPU slot once several CPUs update it
    /// at once: 4 *switches* (adds on another CPU than the add before) within a millisecond,
    /// after a first window of 4 that only starts the clock. A single-threaded program never
    /// allocates anything for it.
    #[default]
    Lazy,
    /// Takes a header and a per-CPU slot at creation.
    PerCpu,
    /// Never per-CPU: the counter stays inline, every update one atomic add (made out of line
    /// when the thread's CPU is not the one the counter last noted, as a lazy counter's).
    Atomic,
}

/// Which per-CPU backend the process uses (see [`pcpu_rseq::Mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// rseq where the kernel and libc allow it, else the portable backend.
    #[default]
    Auto,
    /// The portable atomic backend, for the whole process ([`pcpu_rseq::force_portable`]).
    Portable,
}

/// Builds a [`Domain`].
#[derive(Debug, Clone)]
pub struct DomainBuilder {
    ncpu: usize,
    batch: Option<i64>,
    max_batch: Option<i64>,
    mode: CounterMode,
    policy: CompactPolicy,
    compact_when_waste_above: Option<f64>,
    unit_bytes: Option<usize>,
    backend: Backend,
}

impl DomainBuilder {
    /// The per-CPU backend. The choice is process-wide and made once: [`Backend::Portable`]
    /// fails to build if per-CPU operations already run on rseq in this process.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// CPUs the counters cover (default: the possible CPUs). More than exist simulates a large
    /// machine: memory follows the CPUs that write.
    pub fn ncpu(mut self, ncpu: usize) -> Self {
        self.ncpu = ncpu;
        self
    }

    /// Fold threshold per CPU that counters start with (default Linux's
    /// `max(32, 2 × ncpu)`); see [`max_batch`](Self::max_batch).
    pub fn batch(mut self, batch: i64) -> Self {
        self.batch = Some(batch);
        self
    }

    /// Widest batch a contended counter may widen to (default `max(4096, batch)`).
    ///
    /// A counter whose folds from different CPUs follow each other fast enough to keep its
    /// central count's cache line moving (64 CPU changes within 200 µs) doubles its batch,
    /// and its [`error_bound`](crate::PercpuCounter::error_bound) with it, until folds are
    /// that rare or the batch reaches `max_batch`; see
    /// [`PercpuCounter::batch`](crate::PercpuCounter::batch). Set it equal to the batch to
    /// keep Linux's fixed batch.
    pub fn max_batch(mut self, max_batch: i64) -> Self {
        self.max_batch = Some(max_batch);
        self
    }

    /// Mode of counters created with [`PercpuCounter::new_in`](crate::PercpuCounter::new_in).
    pub fn mode(mut self, mode: CounterMode) -> Self {
        self.mode = mode;
        self
    }

    /// Which pagesets [`Domain::compact`] empties.
    pub fn compact_policy(mut self, policy: CompactPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The waste limit of [`Domain::maybe_compact`]: it compacts when the estimated per-CPU
    /// memory exceeds `ratio` × what live counters need ([`Domain::waste_estimate`]). Nothing
    /// checks it by itself: call `maybe_compact`, or run [`Domain::spawn_compactor`].
    pub fn compact_when_waste_above(mut self, ratio: f64) -> Self {
        self.compact_when_waste_above = Some(ratio);
        self
    }

    /// Bytes per CPU unit of a pageset (a multiple of the page size).
    pub fn unit_bytes(mut self, bytes: usize) -> Self {
        self.unit_bytes = Some(bytes);
        self
    }

    /// Builds the domain (maps nothing yet). A domain lives for the rest of the process, like
    /// an allocator: counters name it in their state word, so they need no lifetime and can be
    /// kept anywhere, `'static` positions included.
    ///
    /// ```
    /// use pcpu_counter::{Domain, PercpuCounter};
    /// struct Stats {
    ///     hits: PercpuCounter,
    /// }
    /// let domain: &'static Domain = Domain::builder().batch(64).build()?;
    /// let stats = Stats { hits: PercpuCounter::new_in(domain, 0)? };
    /// stats.hits.inc();
    /// assert_eq!(stats.hits.sum(), 1);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// [`CounterError::Config`] for a zero CPU count or batch, a `max_batch` below the batch,
    /// an invalid unit size, or more than 2047 domains in the process;
    /// [`CounterError::FoldTable`] when the domains' batch levels fill pcpu-rseq's fold table
    /// (8,191 levels: a domain of the default batches takes 8);
    /// [`CounterError::Space`] when its first mappings fail.
    pub fn build(self) -> Result<&'static Domain, CounterError> {
        // The global domain first: it reserves its batch levels before any other domain can
        // fill the fold table, so that it can always be built.
        Domain::global();
        if DOMAINS.is_full() {
            // Before `parts` reserves fold-table entries that no domain would use.
            return Err(DOMAINS_FULL);
        }
        let parts = self.parts()?;
        DOMAINS.register(|index| parts.into_domain(index))
    }

    /// Checks the configuration and builds everything a domain holds.
    fn parts(self) -> Result<Parts, CounterError> {
        if self.ncpu == 0 {
            return Err(CounterError::Config("ncpu must be at least 1"));
        }
        if self.backend == Backend::Portable && pcpu_rseq::force_portable().is_err() {
            return Err(CounterError::Config(
                "the portable backend was asked for after rseq was already in use",
            ));
        }
        let batch = self.batch.unwrap_or_else(|| 32.max(2 * self.ncpu as i64));
        if batch <= 0 {
            return Err(CounterError::Config("batch must be positive"));
        }
        let max_batch = self.max_batch.unwrap_or(4096).max(batch);
        if self.max_batch.is_some_and(|m| m < batch) {
            return Err(CounterError::Config("max_batch must be at least the batch"));
        }
        // Every space keeps a lane bound, raised before the bound that lets an add reach a
        // lane (single counters: `Inner::note_lane`; groups: `note_group_lane`), so that
        // relocation copies, frees and `set` zero, and group sums read, the lanes in use.
        let space_for = |class| {
            let mut config = SpaceConfig::new(class);
            config.ncpu = self.ncpu;
            config.unit_bytes = self.unit_bytes;
            config.track_lanes = true;
            Space::new(config).map_err(CounterError::Space)
        };
        let space = space_for(SizeClass::B8)?;
        let stride = space.stride();
        let group_spaces = [
            space_for(SizeClass::B16)?,
            space_for(SizeClass::B32)?,
            space_for(SizeClass::B64)?,
        ];
        // Groups add through `fold.with_offset`, which carries the single counters' stride:
        // every space must share it (they do: the stride is the pageset unit, set per domain).
        if group_spaces.iter().any(|g| g.stride() != stride) {
            return Err(CounterError::Config(
                "size classes disagree on the pageset unit",
            ));
        }
        Ok(Parts(Domain {
            index: 0,
            headers: HeaderStore::new(pcpu_rseq::possible_cpus())?,
            group_headers: HeaderStore::new(pcpu_rseq::possible_cpus())?,
            group_spaces,
            ncpu: self.ncpu,
            space,
            batch,
            max_batch,
            // Groups' lane bound: 1 until the first group sets it (`lanes_for_new_group`).
            fold: pcpu_rseq::FoldParams::new(stride, self.ncpu.min(1), batch),
            // Single counters' lane bound: 0 until the first header counter sets it
            // (`lanes_for_new_counter`). The domain index is set by `Parts::into_domain`.
            levels: Levels::new(stride, 0, batch, max_batch).map_err(CounterError::FoldTable)?,
            lanes: AtomicUsize::new(0),
            mode: self.mode,
            policy: self.policy,
            compact_when_waste_above: self.compact_when_waste_above,
            totals: Totals::new(pcpu_rseq::possible_cpus()),
        }))
    }
}

/// Domains 1.. by index (0, the global one, lives in its own `OnceLock`).
static DOMAINS: Registry<Domain> = Registry::new();

/// A checked domain that has no index yet.
struct Parts(Domain);

impl Parts {
    fn into_domain(self, index: usize) -> Domain {
        let d = self.0;
        d.levels.set_domain(index);
        Domain { index, ..d }
    }
}

/// The allocator instance: pagesets, caches, header storage and the compactor. Domains live
/// for the rest of the process ([`DomainBuilder::build`] returns `&'static Domain`).
#[derive(Debug)]
pub struct Domain {
    /// This domain's index in inline counter words ([`crate::registry`]); 0 for the global
    /// domain.
    pub(crate) index: usize,
    /// The header blocks of single header counters, which [`Domain::compact`] moves out of
    /// sparse pages ([`crate::headers`]).
    pub(crate) headers: HeaderStore,
    /// The header blocks of groups, which never move.
    pub(crate) group_headers: HeaderStore,
    /// Single counters (8 bytes per CPU).
    pub(crate) space: Space,
    /// Counter groups of 2, 3–4 and 5–8 counters (16, 32, 64 bytes per CPU).
    pub(crate) group_spaces: [Space; 3],
    pub(crate) ncpu: usize,
    pub(crate) batch: i64,
    /// Widest batch a contended counter widens to.
    pub(crate) max_batch: i64,
    /// Stride, lane bound and batch, prepared for the add fast path of groups.
    pub(crate) fold: pcpu_rseq::FoldParams,
    /// The same for single counters, one set per batch a counter may fold at; a counter's
    /// header names its own by its fold-table key ([`crate::levels`]). Their lane bound is [`Domain::lanes`].
    pub(crate) levels: Levels,
    /// The lanes (CPU or concurrency ids, `pcpu_rseq::id_source`) single counters of this
    /// domain have used: the lane bound of every batch level, which the slow path of an add
    /// from a lane at or above it raises ([`Domain::raise_counter_lanes`]). Starts at 1 with
    /// rseq (where lanes
    /// follow `mm_cid` and the process uses 2 CPUs, `sum()` then reads 2 lanes, not
    /// `ncpu`); at `ncpu` on the portable backend, which files adds under `sched_getcpu`
    /// modulo the bound and never takes that slow path. 0 until the first header counter
    /// ([`Domain::lanes_for_new_counter`]), so that building a domain does not choose the
    /// backend (`pcpu_rseq::force_portable` may still follow).
    pub(crate) lanes: AtomicUsize,
    pub(crate) mode: CounterMode,
    policy: CompactPolicy,
    compact_when_waste_above: Option<f64>,
    /// The running totals of [`DomainStats::totals`].
    pub(crate) totals: Totals,
}

impl Domain {
    /// The lane bound a new header counter starts with ([`Domain::lanes`]), setting its
    /// initial value on first use: 1 with rseq, `ncpu` on the portable backend (the counter
    /// is about to run per-CPU operations, which choose the backend anyway).
    pub(crate) fn lanes_for_new_counter(&self) -> usize {
        let lanes = self.lanes.load(Ordering::Acquire);
        if lanes != 0 {
            return lanes;
        }
        let initial = if pcpu_rseq::mode() == pcpu_rseq::Mode::Rseq {
            self.ncpu.min(1)
        } else {
            self.ncpu
        };
        // No counter can add below `initial` before this returns.
        self.raise_counter_lanes(initial);
        initial.max(self.lanes.load(Ordering::Acquire))
    }

    /// Raises single counters' lane bound to `lanes`: the space's bound first, then every
    /// batch level's, which lets adds reach the new lanes, then [`Domain::lanes`]. A
    /// relocation (or `set`) that reads the space's bound after a grace period then walks
    /// every lane an add reached, and `sum()` reads every lane an add that returned before it
    /// reached, whichever level it reads the bound from ([`crate::levels`]).
    pub(crate) fn raise_counter_lanes(&self, lanes: usize) {
        self.space.raise_lanes(lanes);
        self.levels.raise_ncpu(lanes);
        self.lanes.fetch_max(lanes, Ordering::Release);
    }

    /// This thread's lane, if it is at or above the lane bound `bound` and inside the
    /// domain: the lane a slow path raises the bounds past. `None` once the bound covers
    /// every lane (without looking up the lane).
    pub(crate) fn lane_above(&self, bound: usize) -> Option<usize> {
        if bound >= self.ncpu {
            return None;
        }
        let lane = pcpu_rseq::current_cpu();
        (bound..self.ncpu).contains(&lane).then_some(lane)
    }

    /// Every space a group's slot may come from: the group spaces, and the single counters'
    /// space, which groups of one share ([`Domain::group_space`]). The groups' lane bound
    /// raises all of their bounds: a group of one adds to the lanes below the groups' bound,
    /// which may be above the single counters' own.
    fn spaces_of_groups(&self) -> impl Iterator<Item = &Space> {
        core::iter::once(&self.space).chain(&self.group_spaces)
    }

    /// Sets the groups' lane bound (`fold`'s `ncpu`, which every group of the domain adds
    /// with) to at least the lanes new single counters start with, raising the bounds of
    /// the spaces of groups first ([`Domain::spaces_of_groups`]). Called before a group's
    /// header is attached.
    pub(crate) fn lanes_for_new_group(&self) {
        // At least the bound the groups' parameters were built with (1), which adds may use
        // from the first group on.
        let lanes = self.lanes_for_new_counter().max(self.fold.ncpu());
        for g in self.spaces_of_groups() {
            if g.lanes() < lanes {
                g.raise_lanes(lanes);
            }
        }
        if self.fold.ncpu() < lanes {
            self.fold.raise_ncpu(lanes);
        }
    }

    /// The slow path of a group add refused per-CPU operation: if this thread's lane is at
    /// or above the groups' bound, raises the bounds of the spaces of groups and then the
    /// groups' (`Release`, before any add can reach the lane, as `Inner::note_lane` does for
    /// a single counter) and returns true (worth retrying per-CPU).
    pub(crate) fn note_group_lane(&self) -> bool {
        let Some(lane) = self.lane_above(self.fold.ncpu()) else {
            return false;
        };
        self.spaces_of_groups().for_each(|g| {
            g.raise_lanes(lane + 1);
        });
        self.fold.raise_ncpu(lane + 1);
        true
    }

    /// The domain with index `index` (the `index` field; 0 is the global domain).
    ///
    /// # Panics
    /// If no domain has that index: a word names only domains that were registered before it
    /// was made, so this is a bug in this crate.
    #[inline]
    pub(crate) fn by_index(index: usize) -> &'static Domain {
        if index == 0 {
            return Domain::global();
        }
        DOMAINS.get(index)
    }

    /// The default domain: possible CPUs, Linux's batch, lazy counters.
    ///
    /// # Panics
    /// If the default domain cannot be built on its first use: its first mappings fail, or
    /// another crate filled pcpu-rseq's fold table before any domain was built
    /// ([`DomainBuilder::build`] builds the global domain first).
    pub fn global() -> &'static Domain {
        static GLOBAL: OnceLock<Domain> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            Domain::builder()
                .parts()
                .expect("the default configuration is valid")
                .into_domain(0)
        })
    }

    /// A builder with the defaults of [`Domain::global`].
    pub fn builder() -> DomainBuilder {
        DomainBuilder {
            ncpu: pcpu_rseq::possible_cpus(),
            batch: None,
            max_batch: None,
            mode: CounterMode::Lazy,
            policy: CompactPolicy::default(),
            compact_when_waste_above: None,
            unit_bytes: None,
            backend: Backend::Auto,
        }
    }

    /// CPUs covered.
    pub fn ncpu(&self) -> usize {
        self.ncpu
    }

    /// Fold threshold per CPU that counters start with.
    pub fn batch(&self) -> i64 {
        self.batch
    }

    /// Widest batch a contended counter widens to ([`DomainBuilder::max_batch`]).
    pub fn max_batch(&self) -> i64 {
        self.max_batch
    }

    /// Default mode of new counters.
    pub fn mode(&self) -> CounterMode {
        self.mode
    }

    /// Moves live counters out of sparse pagesets and gives the emptied memory back: per-CPU
    /// memory, and header storage. A single counter's header moves too, out of a sparse page
    /// of headers (its state word is fixed up the next time the counter looks at it, from a
    /// record of the move: `docs/PROTOCOLS.md`, "Moving a header"); a group's header stays
    /// where it is.
    ///
    /// # Errors
    /// A grace period or the pool failed; no update is lost either way.
    pub fn compact(&self) -> Result<CompactReport, CounterError> {
        // Grace periods, locks and allocations: a slow path a signal handler must not re-enter.
        let _slow = pcpu_rseq::enter_slow_path();
        let result = self.compact_spaces().and_then(|report| {
            self.compact_headers()?;
            self.group_headers.release()?;
            Ok(report)
        });
        match &result {
            Ok(report) => self.totals.compacted(report),
            Err(_) => self.totals.compaction_failed(),
        }
        result
    }

    /// Moves single counters' headers out of sparse header pages and gives those back
    /// ([`HeaderStore::compact`]).
    fn compact_headers(&self) -> Result<(), CounterError> {
        use crate::flags::header_moves;
        let moves = self.headers.compact(
            &self.space,
            self.policy.occupancy_below,
            header_moves::keep_in_place,
            header_moves::copy_owner,
            header_moves::merge_owner,
        )?;
        self.headers.release()?;
        crate::slow_path_event!(
            debug,
            moved = moves.moved,
            skipped = moves.skipped,
            "pcpu: header compaction"
        );
        self.totals.headers_moved(moves.moved);
        Ok(())
    }

    fn compact_spaces(&self) -> Result<CompactReport, CounterError> {
        let mut total = self
            .space
            .compact(&self.policy)
            .map_err(CounterError::Space)?;
        for space in &self.group_spaces {
            if space.pagesets_mapped() == 0 {
                continue;
            }
            let r = space.compact(&self.policy).map_err(CounterError::Space)?;
            total.pagesets_evacuated += r.pagesets_evacuated;
            total.slots_moved += r.slots_moved;
            total.slots_skipped += r.slots_skipped;
            total.cached_removed += r.cached_removed;
            total.pagesets_unmapped += r.pagesets_unmapped;
            total.bytes_resident_before += r.bytes_resident_before;
            total.bytes_resident_after += r.bytes_resident_after;
            total.grace_periods += r.grace_periods;
            total.elapsed += r.elapsed;
        }
        Ok(total)
    }

    /// The space for groups of `n` counters (1..=8).
    pub(crate) fn group_space(&self, n: usize) -> Option<&Space> {
        match n {
            1 => Some(&self.space),
            2 => Some(&self.group_spaces[0]),
            3..=4 => Some(&self.group_spaces[1]),
            5..=8 => Some(&self.group_spaces[2]),
            _ => None,
        }
    }

    /// Compacts if the estimated per-CPU memory exceeds the ratio set with
    /// [`DomainBuilder::compact_when_waste_above`] × what live counters need (see
    /// [`waste_estimate`](Self::waste_estimate)); nothing without that setting. Returns the
    /// report if it ran.
    ///
    /// # Errors
    /// As for [`compact`](Self::compact).
    pub fn maybe_compact(&self) -> Result<Option<CompactReport>, CounterError> {
        match self.compact_when_waste_above {
            Some(limit) => self.compact_if_waste_above(limit),
            None => Ok(None),
        }
    }

    /// Compacts if [`waste_estimate`](Self::waste_estimate) is above `limit`.
    pub(crate) fn compact_if_waste_above(
        &self,
        limit: f64,
    ) -> Result<Option<CompactReport>, CounterError> {
        if self.waste_estimate() > limit {
            return self.compact().map(Some);
        }
        Ok(None)
    }

    /// The worst estimated waste over the domain's spaces (single counters and each group
    /// size): slots that the pages holding live counters could hold, per live counter; 1.0 is
    /// dense. O(1) in the number of counters and pagesets: it reads counts the allocator
    /// keeps (no `mincore`), so a policy may poll it. See
    /// [`Space::waste_estimate`](pcpu_migrate::Space::waste_estimate) for how it compares
    /// with the measured [`Waste::ratio`](crate::Waste::ratio).
    pub fn waste_estimate(&self) -> f64 {
        core::iter::once(&self.space)
            .chain(&self.group_spaces)
            .map(Space::waste_estimate)
            .fold(0.0, f64::max)
    }

    /// Starts a thread that applies a waste policy to this domain: every `every`, it compacts
    /// if [`waste_estimate`](Self::waste_estimate) is above `waste_above` (a ratio, at least
    /// 1.0). Compaction then never runs on the threads that create and drop counters. A
    /// failed compaction loses nothing; it is counted ([`Compactor::failures`]), logged (a
    /// `tracing` warning, with the `tracing` feature) and retried at the next check. The thread stops when the returned [`Compactor`] is dropped.
    ///
    /// ```
    /// use pcpu_counter::{CounterMode, Domain, PercpuCounter};
    /// use std::time::Duration;
    ///
    /// let domain = Domain::builder().mode(CounterMode::PerCpu).build()?;
    /// let compactor = domain.spawn_compactor(Duration::from_millis(100), 2.0)?;
    /// let counters = PercpuCounter::new_many_in(domain, 10_000, 0)?;
    /// drop(counters); // the thread compacts (if it must) in its own time
    /// compactor.stop();
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// [`CounterError::Config`] for a zero interval or a limit below 1.0 (or NaN);
    /// [`CounterError::Thread`] if the thread cannot start.
    pub fn spawn_compactor(
        &'static self,
        every: std::time::Duration,
        waste_above: f64,
    ) -> Result<Compactor, CounterError> {
        Compactor::spawn(every, waste_above, move |limit| {
            self.compact_if_waste_above(limit)
        })
    }

    /// Measures the domain: every space (single counters and each group size), the header
    /// storage, and the running totals. Costs a `mincore` sweep of each space's pagesets.
    ///
    /// ```
    /// use pcpu_counter::{CounterMode, Domain, PercpuCounter};
    /// let domain = Domain::builder().mode(CounterMode::PerCpu).build()?;
    /// let c = PercpuCounter::new_in(domain, 0)?;
    /// domain.compact()?;
    /// let stats = domain.stats();
    /// assert_eq!(stats.waste.live_objects, 1);
    /// assert_eq!(stats.spaces.len(), 4);
    /// assert_eq!(stats.totals.compactions, 1);
    /// # drop(c);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    pub fn stats(&self) -> DomainStats {
        let (header_blocks, header_bytes_resident) = {
            let (blocks, bytes) = self.headers.stats();
            let (group_blocks, group_bytes) = self.group_headers.stats();
            (blocks + group_blocks, bytes + group_bytes)
        };
        let spaces: Vec<SpaceStats> = core::iter::once(&self.space)
            .chain(&self.group_spaces)
            .map(|space| SpaceStats {
                class_bytes: space.words() * 8,
                waste: space.waste(),
                cache: space.cache_stats(),
            })
            .collect();
        DomainStats {
            waste: crate::stats::sum_waste(spaces.iter().map(|s| s.waste)),
            spaces,
            header_blocks,
            header_bytes_resident,
            header_forwards_pending: crate::forward::pending(),
            totals: self.totals.snapshot(),
        }
    }
}

/// For the unit tests that count slow-path adds: a new per-CPU domain of 4 (simulated) CPUs,
/// and a reader of its count.
#[cfg(test)]
pub(crate) mod testing {
    use super::{CounterMode, Domain};

    pub(crate) fn per_cpu_domain() -> &'static Domain {
        Domain::builder()
            .ncpu(4)
            .mode(CounterMode::PerCpu)
            .build()
            .unwrap()
    }

    pub(crate) fn slow_path_adds(domain: &Domain) -> u64 {
        domain.stats().totals.slow_path_adds
    }
}
