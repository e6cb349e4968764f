//! [`PercpuCounter`].

use crate::domain::{CounterMode, Domain};
use crate::lazy::LazyTracker;
use crate::widen::FoldTracker;
use crate::CounterError;
use pcpu_migrate::Header;
use pcpu_rseq::sync::{AtomicBool, AtomicI64, Ordering};
use std::cmp::Ordering as Cmp;
use std::ptr::NonNull;

/// The block a counter's handle points into (at its `header` field); freed one epoch grace
/// period after the counter drops.
///
/// 128 bytes, laid out so that the word folds write (the central count, first) and the words
/// every add reads (the header's slot word and the fold parameters, from byte 64 on) never
/// share a cache line, whatever the allocation's alignment (malloc gives 16): the count lies
/// in the first 16 bytes, so within the line that holds the object's start, and everything
/// the add path reads starts 64 bytes later, so in a later line. A 64-byte-aligned allocation
/// would give the same separation but costs twice the memory in glibc's allocator, and the
/// seed workload creates counters by the thousand.
#[repr(C)]
pub(crate) struct Inner {
    central: Central,
    _gap: [u8; 64 - core::mem::size_of::<Central>()],
    header: Header,
    /// The domain's fold parameters, copied here so that an add reads the header's lines
    /// besides its cell, not the domain's too, and at a fixed distance from the slot word
    /// ([`PARAMS_AFTER_SLOT`]), so one register addresses both. The batch in them widens
    /// when the counter is contended ([`crate::widen`]).
    fold: pcpu_rseq::FoldParams,
}

/// Bytes from the header's slot word (its first word: `Header` is `repr(C)`) to the fold
/// parameters, for `pcpu_rseq::add_fold_beside`.
const PARAMS_AFTER_SLOT: usize =
    core::mem::offset_of!(Inner, fold) - core::mem::offset_of!(Inner, header);

const _: () = assert!(core::mem::size_of::<Central>() <= 64);
const _: () = assert!(core::mem::offset_of!(Inner, header) == 64);
const _: () = assert!(core::mem::offset_of!(Central, count) == 0);

/// The written part of [`Inner`]: the count (written by folds and slow-path adds) and the
/// fields only slow paths touch.
#[repr(C)]
struct Central {
    count: AtomicI64,
    lazy: LazyTracker,
    limit_lock: AtomicBool,
    /// Largest batch ever passed to `add_batch` above the domain's (0 if none): it widens
    /// the error bound.
    widest_add_batch: AtomicI64,
    /// Which CPUs fold, how fast: decides when the batch widens.
    folds: FoldTracker,
}

impl core::ops::Deref for Central {
    type Target = AtomicI64;
    fn deref(&self) -> &AtomicI64 {
        &self.count
    }
}

/// A per-CPU counter: `add` is one non-atomic add to this CPU's cell inside a restartable
/// sequence; `read` is O(1) and approximate; `sum` is exact when no add runs concurrently.
///
/// ```
/// use pcpu_counter::PercpuCounter;
/// let c = PercpuCounter::new(10);
/// c.add(5);
/// c.inc();
/// c.dec();
/// assert_eq!(c.sum(), 15);
/// assert!((c.read() - c.sum()).abs() <= c.error_bound());
/// ```
pub struct PercpuCounter<'d> {
    /// The header inside the counter's [`Inner`] (not the block's start): the add path then
    /// has the slot word's address at hand without an offset computation.
    header: NonNull<Header>,
    domain: &'d Domain,
}

/// Where the header sits in [`Inner`].
const HEADER_OFFSET: usize = core::mem::offset_of!(Inner, header);

// SAFETY: `Inner` is only atomics and the header (atomics), shared by design; the domain is
// Sync. Nothing is tied to the creating thread.
unsafe impl Send for PercpuCounter<'_> {}
// SAFETY: as above: every method takes `&self` and uses atomics or per-CPU sections.
unsafe impl Sync for PercpuCounter<'_> {}

impl core::fmt::Debug for PercpuCounter<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PercpuCounter")
            .field("read", &self.read())
            .field("per_cpu", &self.is_per_cpu())
            .finish()
    }
}

impl PercpuCounter<'static> {
    /// Creates a counter in the global domain.
    ///
    /// # Panics
    /// If memory is exhausted; use [`try_new`](Self::try_new) to get an error instead.
    pub fn new(initial: i64) -> Self {
        Self::try_new(initial).expect("pcpu: out of memory creating a counter")
    }

    /// Creates a counter in the global domain, or says why it could not.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::try_new(7)?;
    /// assert_eq!(c.sum(), 7);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// [`CounterError::OutOfMemory`] or a per-CPU allocation failure.
    pub fn try_new(initial: i64) -> Result<Self, CounterError> {
        Self::new_in(Domain::global(), initial)
    }

    /// Creates `n` counters in the global domain, like Linux's `percpu_counter_init_many`.
    ///
    /// ```
    /// let rss = pcpu_counter::PercpuCounter::new_many(4, 0)?;
    /// rss[2].add(4096);
    /// assert_eq!(rss.iter().map(|c| c.sum()).collect::<Vec<_>>(), [0, 0, 4096, 0]);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`try_new`](Self::try_new); counters made before the failure are dropped.
    pub fn new_many(n: usize, initial: i64) -> Result<Vec<Self>, CounterError> {
        Self::new_many_in(Domain::global(), n, initial)
    }
}

impl<'d> PercpuCounter<'d> {
    /// Creates a counter in `domain`, in the domain's mode.
    ///
    /// ```
    /// use pcpu_counter::{CounterMode, Domain, PercpuCounter};
    /// // A domain simulating a 256-CPU machine, with counters per-CPU from the start.
    /// let domain = Domain::builder().ncpu(256).mode(CounterMode::PerCpu).build()?;
    /// let c = PercpuCounter::new_in(&domain, 1)?;
    /// assert!(c.is_per_cpu());
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`try_new`](PercpuCounter::try_new).
    pub fn new_in(domain: &'d Domain, initial: i64) -> Result<Self, CounterError> {
        Self::with_mode(domain, initial, domain.mode)
    }

    /// Creates a counter in `domain` with an explicit mode.
    ///
    /// # Errors
    /// As for [`try_new`](PercpuCounter::try_new).
    pub fn with_mode(
        domain: &'d Domain,
        initial: i64,
        mode: CounterMode,
    ) -> Result<Self, CounterError> {
        let inner = crate::alloc::try_box(Inner {
            central: Central {
                count: AtomicI64::new(initial),
                lazy: LazyTracker::new(mode == CounterMode::Lazy),
                limit_lock: AtomicBool::new(false),
                widest_add_batch: AtomicI64::new(0),
                folds: FoldTracker::new(),
            },
            _gap: [0; 64 - core::mem::size_of::<Central>()],
            header: Header::new(),
            fold: domain.fold.clone(),
        })?;
        // SAFETY: `inner` is a live `Inner`; the header is a field of it.
        let header = unsafe { NonNull::new_unchecked(&raw mut (*inner.as_ptr()).header) };
        let counter = PercpuCounter { header, domain };
        if mode == CounterMode::PerCpu {
            domain
                .space
                .attach(&counter.inner().header)
                .map_err(CounterError::Space)?;
        }
        Ok(counter)
    }

    /// Creates `n` counters in `domain`.
    ///
    /// # Errors
    /// As for [`try_new`](PercpuCounter::try_new).
    pub fn new_many_in(
        domain: &'d Domain,
        n: usize,
        initial: i64,
    ) -> Result<Vec<Self>, CounterError> {
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| CounterError::OutOfMemory)?;
        for _ in 0..n {
            v.push(Self::new_in(domain, initial)?);
        }
        Ok(v)
    }

    /// The block the header lives in.
    #[inline(always)]
    fn inner_ptr(&self) -> NonNull<Inner> {
        // SAFETY: `header` points `HEADER_OFFSET` bytes into an `Inner` (from `try_box`), so
        // stepping back stays inside that allocation.
        unsafe { self.header.byte_sub(HEADER_OFFSET).cast::<Inner>() }
    }

    #[inline(always)]
    fn inner(&self) -> &Inner {
        // SAFETY: the `Inner` is live until this counter is dropped (freed after a grace
        // period).
        unsafe { self.inner_ptr().as_ref() }
    }

    /// True once the counter has a per-CPU slot.
    pub fn is_per_cpu(&self) -> bool {
        self.inner().header.is_attached()
    }

    /// The domain this counter lives in.
    pub fn domain(&self) -> &'d Domain {
        self.domain
    }

    /// Adds `delta`, folding this CPU's part into the central count once it reaches the
    /// counter's batch: the domain's, or wider if this counter is contended (see
    /// [`error_bound`](Self::error_bound)).
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(0);
    /// c.add(-3);
    /// c.inc();
    /// c.dec();
    /// assert_eq!(c.sum(), -3);
    /// ```
    // Always inlined: the fast path is a few dozen instructions, and a call would add a
    // fifth to them.
    #[inline(always)]
    pub fn add(&self, delta: i64) {
        // From the header pointer, whose provenance covers the whole `Inner`, so that the
        // section may read the fold parameters beside the header through it.
        let slot = Header::slot_word_ptr(self.header.as_ptr());
        // SAFETY: the slot word is either disabled or addresses a slot of the domain's space,
        // whose cells `inner.fold` describes (stride, CPU count, offset 0), kept alive until
        // a grace period after the slot word changes; `inner.fold` lies `PARAMS_AFTER_SLOT`
        // bytes after the slot word, in the same allocation, within `slot`'s provenance.
        match unsafe { pcpu_rseq::add_fold_beside::<PARAMS_AFTER_SLOT>(slot, delta) } {
            Ok(0) => {}
            Ok(moved) => self.fold_in(moved),
            Err(_) => self.add_slow(delta),
        }
    }

    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts 1.
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `delta`; once this CPU's part reaches `±batch` it is folded into the central count
    /// (Linux's `percpu_counter_add_batch`). A smaller batch makes `read` more precise.
    ///
    /// The check looks in the direction of the add (one compare, as in [`add`](Self::add)):
    /// a cell left beyond `±batch` by adds with a wider batch folds at the next add that
    /// moves it further out, not at one that moves it back. The error bound covers the
    /// widest batch used either way.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(0);
    /// for _ in 0..10 {
    ///     c.add_batch(1, 4); // folds every 4 per CPU
    /// }
    /// assert_eq!(c.sum(), 10);
    /// assert!(c.sum() - c.read() < 4 * pcpu_rseq::possible_cpus() as i64);
    /// ```
    #[inline]
    pub fn add_batch(&self, delta: i64, batch: i64) {
        let inner = self.inner();
        if batch > self.domain.batch {
            inner
                .central
                .widest_add_batch
                .fetch_max(batch, Ordering::Relaxed);
        }
        let fold = inner.fold.with_batch(batch);
        // SAFETY: as in `add`, with `fold` describing the same cells.
        match unsafe { pcpu_rseq::add_fold_with(inner.header.slot_word(), &fold, delta) } {
            Ok(0) => {}
            Ok(moved) => {
                inner.central.fetch_add(moved, Ordering::Relaxed);
            }
            Err(_) => self.add_slow(delta),
        }
    }

    /// Moves what an `add` took out of this CPU's cell into the central count, and widens the
    /// batch if folds keep bouncing the central count between CPUs ([`crate::widen`]).
    #[inline(never)]
    fn fold_in(&self, moved: i64) {
        let inner = self.inner();
        inner.central.fetch_add(moved, Ordering::Relaxed);
        let (batch, max) = (inner.fold.batch(), self.domain.max_batch);
        if batch < max && inner.central.folds.note_fold(pcpu_rseq::current_cpu()) {
            inner.fold.widen(batch.saturating_mul(2).min(max));
        }
    }

    #[cold]
    fn add_slow(&self, delta: i64) {
        let inner = self.inner();
        inner.central.fetch_add(delta, Ordering::Relaxed);
        // A delta too large for a cell (see `pcpu_rseq::MAX_FOLD`) says nothing about
        // contention: only the others count towards going per-CPU.
        if delta.unsigned_abs() <= pcpu_rseq::MAX_FOLD as u64 && inner.central.lazy.note_slow_add()
        {
            // Contended from several CPUs: go per-CPU. Failure (no memory) leaves it atomic.
            let _ = self.domain.space.attach(&inner.header);
        }
    }

    /// The central count: O(1), off from [`sum`](Self::sum) by at most
    /// [`error_bound`](Self::error_bound) (plus updates in flight).
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(100);
    /// c.add(1);
    /// assert!((c.read() - 101).abs() <= c.error_bound());
    /// ```
    #[inline]
    pub fn read(&self) -> i64 {
        self.inner().central.load(Ordering::Relaxed)
    }

    /// [`read`](Self::read), never below zero.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(-5);
    /// assert_eq!(c.read_positive(), 0);
    /// ```
    pub fn read_positive(&self) -> i64 {
        self.read().max(0)
    }

    /// The exact value when no add runs concurrently; with concurrent adds, off by no more
    /// than the adds in flight plus one batch per CPU that folds meanwhile.
    pub fn sum(&self) -> i64 {
        let inner = self.inner();
        // Central first, then the cells: a concurrent fold can then be missed (it is in
        // flight) but never counted twice.
        let central = inner.central.load(Ordering::Acquire);
        let mut cells = [0i64];
        if inner.header.is_attached() {
            self.domain.space.sum_words(&inner.header, &mut cells);
        }
        central.wrapping_add(cells[0])
    }

    /// [`sum`](Self::sum), never below zero.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(2);
    /// c.add(-3);
    /// assert_eq!(c.sum(), -1);
    /// assert_eq!(c.sum_positive(), 0);
    /// ```
    pub fn sum_positive(&self) -> i64 {
        self.sum().max(0)
    }

    /// Sets the value (Linux's `percpu_counter_set`): empties every CPU's cell and stores
    /// `value` centrally. Adds that run concurrently may be lost, as in Linux.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(0);
    /// c.add(10);
    /// c.set(3)?;
    /// assert_eq!(c.sum(), 3);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// A grace period failed; the value is unchanged then.
    pub fn set(&self, value: i64) -> Result<(), CounterError> {
        let inner = self.inner();
        let mut taken = [0i64];
        self.domain
            .space
            .take_cells(&inner.header, &mut taken)
            .map_err(CounterError::Space)?;
        inner.central.store(value, Ordering::Release);
        Ok(())
    }

    /// Most `|read() − sum()|` can be, adds in flight aside: every CPU's cell stays below the
    /// batch in absolute value. The batch is the domain's, widened (up to the domain's
    /// [`max_batch`](crate::DomainBuilder::max_batch)) while folds from several CPUs contend
    /// on this counter, or the largest batch given to [`add_batch`](Self::add_batch).
    ///
    /// It never narrows, so a bound taken *after* a `read` and a `sum` covers them (as
    /// [`compare`](Self::compare) and [`limited_add`](Self::limited_add) take it); one taken
    /// earlier may be too small by then, so do not cache it.
    ///
    /// ```
    /// use pcpu_counter::{Domain, PercpuCounter};
    /// let domain = Domain::builder().ncpu(4).batch(32).build()?;
    /// let c = PercpuCounter::new_in(&domain, 0)?;
    /// assert_eq!(c.error_bound(), 31 * 4);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    pub fn error_bound(&self) -> i64 {
        let inner = self.inner();
        let batch = inner
            .fold
            .batch()
            .max(inner.central.widest_add_batch.load(Ordering::Relaxed));
        (batch - 1).saturating_mul(self.domain.ncpu as i64)
    }

    /// The batch `add` folds at now: the domain's, or wider if this counter has been
    /// contended.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(0);
    /// assert_eq!(c.batch(), pcpu_counter::Domain::global().batch());
    /// ```
    pub fn batch(&self) -> i64 {
        self.inner().fold.batch()
    }

    /// Compares the value with `rhs` (Linux's `percpu_counter_compare`): from `read` when it is
    /// farther from `rhs` than the error bound, else from an exact `sum`.
    ///
    /// ```
    /// use std::cmp::Ordering;
    /// let c = pcpu_counter::PercpuCounter::new(10);
    /// assert_eq!(c.compare(5), Ordering::Greater);
    /// assert_eq!(c.compare(10), Ordering::Equal);
    /// assert_eq!(c.compare(1_000_000), Ordering::Less);
    /// ```
    pub fn compare(&self, rhs: i64) -> Cmp {
        let approx = self.read();
        if approx.abs_diff(rhs) > self.error_bound() as u64 {
            return approx.cmp(&rhs);
        }
        self.sum().cmp(&rhs)
    }

    /// Adds `delta` only if the value stays at or below `limit` (Linux's
    /// `percpu_counter_limited_add`); returns whether it added. A `delta ≤ 0` is always added.
    ///
    /// Positive `limited_add`s of one counter are serialised by a per-counter lock (plain adds
    /// never take it), so together they never exceed the limit: far from it, one `read` decides;
    /// near it, an exact `sum`. Plain `add`s running at the same time are not limited.
    ///
    /// ```
    /// let quota = pcpu_counter::PercpuCounter::new(0);
    /// assert!(quota.limited_add(100, 60));
    /// assert!(!quota.limited_add(100, 60)); // 120 > 100: refused, nothing added
    /// assert!(quota.limited_add(100, 40));
    /// assert_eq!(quota.sum(), 100);
    /// ```
    pub fn limited_add(&self, limit: i64, delta: i64) -> bool {
        if delta <= 0 {
            self.add(delta);
            return true;
        }
        let inner = self.inner();
        let lock = &inner.central.limit_lock;
        while lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
        let far = self
            .read()
            .saturating_add(self.error_bound())
            .saturating_add(delta)
            <= limit;
        let ok = far || self.sum().saturating_add(delta) <= limit;
        if ok {
            // Straight to the central count, so that the next limited_add's `read` sees it.
            inner.central.fetch_add(delta, Ordering::Relaxed);
        }
        lock.store(false, Ordering::Release);
        ok
    }
}

std::thread_local! {
    /// Drops seen by this thread: every [`AUTO_COMPACT_EVERY`]th one checks the domain's
    /// waste policy (a thread-local tick, so destroy touches no shared line for it).
    static DROPS: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

/// How often (in drops per thread) a domain with a waste policy checks it.
const AUTO_COMPACT_EVERY: u32 = 4096;

impl Drop for PercpuCounter<'_> {
    fn drop(&mut self) {
        if self.domain.has_waste_policy() {
            let tick = DROPS.with(|d| {
                let n = d.get().wrapping_add(1);
                d.set(n);
                n
            });
            if tick % AUTO_COMPACT_EVERY == 0 {
                // A failed compaction loses nothing; the next check tries again.
                let _ = self.domain.maybe_compact();
            }
        }
        // SAFETY: we own the counter: no add or read can run through it any more.
        let detached = unsafe { self.domain.space.detach(&self.inner().header) };
        // SAFETY: `inner_ptr()` is the block from `try_box`, just detached; we are its only
        // owner.
        unsafe { crate::alloc::retire(self.inner_ptr(), detached) };
    }
}
