//! [`PercpuCounter`].

use crate::clock::now_nanos;
use crate::domain::{CounterMode, Domain};
use crate::flags::Flags;
use crate::levels::Level;
use crate::word;
use crate::words::Words;
use crate::CounterError;
use pcpu_migrate::Header;
use pcpu_rseq::sync::{yield_now, Ordering};
use std::cmp::Ordering as Cmp;

/// The header block of a counter that has left the inline form ([`crate::word`]): 16 bytes
/// of the domain's header storage ([`crate::headers`]), holding the relocatable [`Header`]
/// alone. The counter's state word holds its address; a compaction may move it to another
/// block, leaving a tombstone that leads there ([`crate::forward`]).
///
/// An add reads the slot word and the level's key (the header's tag), both here, and then
/// its level's fold parameters, which the domain keeps for all its counters in pcpu-rseq's
/// fold table ([`crate::levels`]); everything else is written only on slow paths. The count
/// that folds write is not here: it is the counter's own inline count ([`crate::words`]),
/// so folds never write the line that adds read. The header's spare byte
/// ([`Header::spare`]) holds the `limited_add` lock and the widest `add_batch` ([`Flags`]);
/// the fold history that decides when the batch widens is in [`crate::widen`]'s table.
#[repr(C)]
pub(crate) struct Inner {
    /// Its tag ([`Header::tag`]) is the batch level this counter folds at, one of its
    /// domain's (a fold-table key): it moves to a wider one when the counter is contended
    /// ([`crate::widen`]), and never back.
    header: Header,
}

/// Where the header sits in [`Inner`].
const HEADER_OFFSET: usize = core::mem::offset_of!(Inner, header);

/// Bytes from the header's slot word (its first word: `Header` is `repr(C)`) to the level's
/// fold-table key (the header's tag), for `pcpu_rseq::add_fold_indexed`, which reads it
/// from there.
const LEVEL_AFTER_SLOT: usize = Header::TAG_OFFSET;

const _: () = assert!(HEADER_OFFSET == 0);
const _: () = assert!(core::mem::size_of::<Inner>() <= crate::headers::BLOCK);
// No padding: the header alone.
const _: () = assert!(core::mem::size_of::<Inner>() == core::mem::size_of::<Header>());

/// A per-CPU counter: two words, a plain atomic count until several CPUs update the
/// counter, and then the handle of a per-CPU counter whose `add` is one non-atomic add to
/// this CPU's cell inside a restartable sequence. `read` is O(1) and approximate; `sum` is exact when no add
/// runs concurrently.
///
/// The counter has no lifetime parameter: it can live in a `static`, in a struct, or behind
/// the `metrics` facade, whatever [`Domain`] it belongs to.
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
///
/// In a `static` (it starts inline, goes per-CPU under contention, and is relocated by
/// [`Domain::compact`] like any other counter):
///
/// ```
/// use pcpu_counter::PercpuCounter;
/// static REQUESTS: PercpuCounter = PercpuCounter::new_const(0);
/// REQUESTS.inc();
/// assert_eq!(REQUESTS.sum(), 1);
/// ```
pub struct PercpuCounter {
    /// The inline count and the state word ([`crate::words`]).
    words: Words<1>,
}

// Two words: the inline count and the state word.
const _: () = assert!(core::mem::size_of::<PercpuCounter>() == 16);

impl core::fmt::Debug for PercpuCounter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PercpuCounter")
            .field("read", &self.read())
            .field("per_cpu", &self.is_per_cpu())
            .finish()
    }
}

impl Default for PercpuCounter {
    /// A counter at 0 in the global domain (inline: no memory besides itself).
    fn default() -> Self {
        Self::new_const(0)
    }
}

impl PercpuCounter {
    /// A counter at `initial` in the global domain, usable in a `static`. It is inline (its
    /// own two words, no other memory) until several CPUs update it.
    ///
    /// ```
    /// static ERRORS: pcpu_counter::PercpuCounter = pcpu_counter::PercpuCounter::new_const(-3);
    /// ERRORS.add(3);
    /// assert_eq!(ERRORS.sum(), 0);
    /// ```
    pub const fn new_const(initial: i64) -> Self {
        PercpuCounter {
            // The global domain has index 0: its inline state is the bare tag.
            words: Words::new(initial, word::INLINE),
        }
    }

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
    /// [`CounterError::Space`] if header or per-CPU memory cannot be mapped.
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

    /// Creates a counter in `domain`, in the domain's mode.
    ///
    /// ```
    /// use pcpu_counter::{CounterMode, Domain, PercpuCounter};
    /// // A domain simulating a 256-CPU machine, with counters per-CPU from the start.
    /// let domain = Domain::builder().ncpu(256).mode(CounterMode::PerCpu).build()?;
    /// let c = PercpuCounter::new_in(domain, 1)?;
    /// assert!(c.is_per_cpu());
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`try_new`](PercpuCounter::try_new).
    pub fn new_in(domain: &'static Domain, initial: i64) -> Result<Self, CounterError> {
        Self::with_mode(domain, initial, domain.mode)
    }

    /// Creates a counter in `domain` with an explicit mode.
    ///
    /// ```
    /// use pcpu_counter::{CounterMode, Domain, PercpuCounter};
    /// let c = PercpuCounter::with_mode(Domain::global(), 1, CounterMode::Atomic)?;
    /// c.inc();
    /// assert!(!c.is_per_cpu());
    /// assert_eq!(c.sum(), 2);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`try_new`](PercpuCounter::try_new).
    pub fn with_mode(
        domain: &'static Domain,
        initial: i64,
        mode: CounterMode,
    ) -> Result<Self, CounterError> {
        let atomic = mode == CounterMode::Atomic;
        let state = word::inline(domain.index, atomic).expect("registered domains are in range");
        if mode != CounterMode::PerCpu {
            let state = word::made_on(state, crate::lazy::creating_cpu());
            return Ok(PercpuCounter {
                words: Words::new(initial, state),
            });
        }
        let h = domain
            .headers
            .alloc_attached(Inner::new(domain), &domain.space)?;
        Ok(PercpuCounter {
            words: Words::new(initial, h),
        })
    }

    /// Creates `n` counters in `domain`.
    ///
    /// # Errors
    /// As for [`try_new`](PercpuCounter::try_new).
    pub fn new_many_in(
        domain: &'static Domain,
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

    /// The state word ([`Words::state`]).
    #[inline(always)]
    fn load(&self) -> usize {
        self.words.state()
    }

    /// The state word, first fixed up if it names a header that [`Domain::compact`] moved
    /// ([`crate::forward`]).
    #[inline]
    fn current(&self) -> usize {
        let mut w = self.load();
        // SAFETY: a header address from the state word.
        while !word::is_inline(w) && unsafe { moved(w) } {
            let now = crate::forward::fix_up(self.words.state_word(), w);
            debug_assert!(now != w, "a moved header {w:#x} has no forward record");
            if now == w {
                yield_now();
            }
            w = now;
        }
        w
    }

    /// `f` of the counter's header block, if it has one, read again if the header was moved
    /// meanwhile (what `f` read from a tombstone, or from zeros, says nothing of the counter).
    fn with_inner<R>(&self, mut f: impl FnMut(&Inner) -> R) -> Option<R> {
        loop {
            let w = self.current();
            if word::is_inline(w) {
                return None;
            }
            // SAFETY: a header address from the state word: the counter's block, or a
            // tombstone's, which stays mapped.
            let r = f(unsafe { Self::inner_of(w) });
            // SAFETY: a header address from the state word.
            if !unsafe { moved(w) } {
                return Some(r);
            }
        }
    }

    /// True once the counter has a per-CPU slot.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(0);
    /// assert!(!c.is_per_cpu()); // inline until contended
    /// ```
    pub fn is_per_cpu(&self) -> bool {
        self.with_inner(|inner| inner.header.is_attached())
            .unwrap_or(false)
    }

    /// True while the counter is inline: its two words, no header, no per-CPU memory.
    #[doc(hidden)]
    pub fn is_inline(&self) -> bool {
        matches!(self.form(), Form::Inline(_))
    }

    /// The address of CPU 0's cell of the counter's per-CPU slot, if it has one: for tests
    /// that watch relocation, and for pcpu-bench, which reports whether two threads'
    /// counters share cache lines. Changes when [`Domain::compact`] moves the counter.
    #[doc(hidden)]
    pub fn slot_address(&self) -> Option<usize> {
        self.with_inner(|inner| {
            pcpu_rseq::slot_cells(inner.header.slot_word().load(Ordering::Acquire))
        })
        .filter(|&s| s != 0)
    }

    /// The address of the counter's header block, if it has one: for pcpu-bench, which
    /// reports whether two threads' counters share cache lines of header storage (blocks
    /// are 16 bytes, four to a line).
    #[doc(hidden)]
    pub fn header_address(&self) -> Option<usize> {
        let w = self.current();
        (!word::is_inline(w)).then_some(w)
    }

    /// The domain this counter lives in.
    pub fn domain(&self) -> &'static Domain {
        match self.form() {
            Form::Inline(s) => Domain::by_index(word::domain_index(s)),
            // A moved header keeps its tag, which names the domain, until its page goes back.
            Form::Header(_) => {
                let domain = self.with_inner(Inner::domain);
                domain.expect("a header counter stays one")
            }
        }
    }

    /// Adds `delta`.
    ///
    /// Inline (the default until several CPUs update the counter): one atomic `fetch_add` on
    /// the counter's own count. Per-CPU: one non-atomic add to this CPU's cell inside a
    /// restartable sequence, folding this CPU's part into the central count once it reaches
    /// the counter's batch (the domain's, or wider if this counter is contended, see
    /// [`error_bound`](Self::error_bound)).
    ///
    /// # Signal handlers
    ///
    /// `add`, `inc` and `dec` are async-signal-safe on every backend and in every mode inside
    /// a [`signal_handler_scope`](crate::signal_handler_scope), which a handler opens first:
    /// in it an add takes only async-signal-safe steps, one restartable sequence on an
    /// attached per-CPU counter or an atomic add to the counter's central count otherwise (no
    /// lazy upgrade, no batch widening, no epoch pin, no rseq registration, no allocation, no
    /// lock), whatever code the signal interrupted, the allocator included. Nothing is lost.
    ///
    /// Without the scope, a handler that interrupts pcpu itself on its thread (a slot cache's
    /// lock, a header allocation, an upgrade, a compaction, a portable section's epoch pin)
    /// is still safe: those paths mark themselves and its add goes to the central count
    /// (`pcpu_rseq::in_slow_path`). But one that interrupts code *outside* pcpu may upgrade a
    /// lazy counter (which allocates) or, on the portable backend, pin an epoch (which may
    /// free memory, and allocates the thread's epoch handle on its first pin): if it can
    /// interrupt the allocator, open the scope.
    ///
    /// `sum`, `set`, creating and dropping counters, and compaction are not async-signal-safe.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(0);
    /// c.add(-3);
    /// c.inc();
    /// c.dec();
    /// assert_eq!(c.sum(), -3);
    /// ```
    // Always inlined: both fast paths are a few instructions, and a call would add a fifth
    // to them.
    #[inline(always)]
    pub fn add(&self, delta: i64) {
        self.words.add(
            delta,
            // Inlined like the rest: as a call, this closure alone doubled the per-CPU add.
            // SAFETY: the address comes from this counter's state word: its live header.
            #[inline(always)]
            |h, delta| unsafe { self.add_header(h, delta) },
            pcpu_rseq::registered_cpu_id,
            |seen, delta| self.add_noting(seen, delta),
        );
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

    /// The per-CPU (or header-atomic) add.
    ///
    /// # Safety
    /// `h` is the address of this counter's header.
    #[inline(always)]
    unsafe fn add_header(&self, h: usize, delta: i64) {
        // From the header address, whose provenance covers the whole block, so that the
        // section may read the level's key beside the header through it.
        let slot = Header::slot_word_ptr(h as *const Header);
        // SAFETY: the slot word is either disabled or addresses a slot of the domain's space,
        // kept alive until a grace period after the slot word changes; `LEVEL_AFTER_SLOT`
        // bytes after it, in the same block, is the level's fold-table key: always one of
        // the domain's levels (reserved for the process), whose fold parameters describe
        // those cells (stride, lane bound, offset 0).
        match unsafe { pcpu_rseq::add_fold_indexed::<LEVEL_AFTER_SLOT>(slot, delta) } {
            Ok(0) => {}
            // SAFETY: forwarded from the caller.
            Ok(moved) => unsafe { self.fold_in(h, moved) },
            // SAFETY: forwarded from the caller.
            Err(_) => unsafe { self.add_slow(h, delta) },
        }
    }

    /// The slow path of an add to a header counter. If this thread's lane is at or above the
    /// counter's lane bound (the section refused it: the first add from a new lane), the
    /// bound is raised and the add retried per-CPU (a few times: the thread may change lanes
    /// in between); otherwise, or if that fails, the central count takes it.
    ///
    /// # Safety
    /// As for [`inner_of`](Self::inner_of).
    #[cold]
    #[inline(never)]
    unsafe fn add_slow(&self, h: usize, delta: i64) {
        // SAFETY: forwarded from the caller.
        if unsafe { moved(h) } {
            if pcpu_rseq::in_slow_path() {
                // A signal handler, or pcpu's own slow path: no lock (the fix-up takes the
                // forward table's), the central count. A later add fixes the word up.
                // SAFETY: forwarded from the caller.
                return unsafe { self.add_central_at(h, delta) };
            }
            // The header moved ([`crate::forward`]): fix the state word up and add through the
            // header that took its place.
            let now = self.current();
            // SAFETY: the counter's header now (a header counter stays one).
            return unsafe { self.add_header(now, delta) };
        }
        // SAFETY: forwarded from the caller.
        let inner = unsafe { Self::inner_of(h) };
        for _ in 0..3 {
            if !inner.note_lane() {
                break;
            }
            let slot = Header::slot_word_ptr(h as *const Header);
            // SAFETY: as in `add_header`.
            match unsafe { pcpu_rseq::add_fold_indexed::<LEVEL_AFTER_SLOT>(slot, delta) } {
                Ok(0) => return,
                // SAFETY: forwarded from the caller.
                Ok(moved) => return unsafe { self.fold_in(h, moved) },
                Err(_) => {}
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.add_central_at(h, delta) };
    }

    /// The slow path of a header counter (its slot is disabled: none yet, being relocated, or
    /// the header moved; or this thread cannot run per-CPU operations): the counter's own
    /// count. For an add that went through the header at `h`, with no lock and no fix-up on
    /// the way (async-signal-safe): the domain, for its count
    /// of slow-path adds, comes from the header's tag, which a moved header keeps; a header
    /// whose page went back (tag 0) goes uncounted there (the add itself is counted).
    ///
    /// # Safety
    /// `h` is a header address this counter's state word held.
    #[cold]
    #[inline(never)]
    unsafe fn add_central_at(&self, h: usize, delta: i64) {
        self.words.count().fetch_add(delta, Ordering::Relaxed);
        // SAFETY: the counter's block, or a tombstone's, which stays mapped (caller).
        let inner = unsafe { Self::inner_of(h) };
        // Read once: a page given back between two reads would name the global domain.
        let tag = inner.header.tag().load(Ordering::Relaxed);
        if tag != 0 {
            Domain::by_index(Level(tag).domain()).totals.slow_path_add();
        }
    }

    /// An inline add to note ([`crate::lazy`]: from another CPU than the last one, or on a
    /// thread that cannot tell its CPU cheaply): adds, notes the CPU, and moves the counter to
    /// a header with a per-CPU slot once several CPUs update it.
    #[cold]
    #[inline(never)]
    fn add_noting(&self, seen: usize, delta: i64) {
        let upgrade = self
            .words
            .add_noting(0, seen, delta, crate::lazy::cpu_to_note, now_nanos);
        if let Some(next) = upgrade {
            // No count moves: the inline count stays a part of the value (`crate::words`).
            let domain = Domain::by_index(word::domain_index(next));
            if domain
                .headers
                .upgrade(&self.words, next, Inner::new(domain), &domain.space)
            {
                domain.totals.upgraded();
            }
        }
    }

    /// The block of the header at `w`.
    ///
    /// # Safety
    /// `w` is the header address of a live counter; the reference must not outlive it.
    #[inline(always)]
    unsafe fn inner_of<'a>(w: usize) -> &'a Inner {
        // SAFETY: the header is `HEADER_OFFSET` bytes into its block (caller).
        unsafe { &*((w - HEADER_OFFSET) as *const Inner) }
    }

    /// The central count (the inline count: see [`Inner`]).
    #[inline(always)]
    fn central(&self) -> &pcpu_rseq::sync::AtomicI64 {
        self.words.count()
    }

    /// Which form the counter is in now.
    #[inline]
    fn form(&self) -> Form<'_> {
        let w = self.current();
        if word::is_inline(w) {
            Form::Inline(w)
        } else {
            // SAFETY: a header address; the block lives as long as `self` (freed on drop).
            Form::Header(unsafe { Self::inner_of(w) })
        }
    }

    /// Adds `delta`; once this CPU's part reaches `±batch` it is folded into the central count
    /// (Linux's `percpu_counter_add_batch`). A smaller batch makes `read` more precise. An
    /// inline counter has no per-CPU part: the add is exact at once.
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
        // No fix-up (its lock) inside a slow path or a signal handler scope.
        let w = if pcpu_rseq::in_slow_path() {
            self.load()
        } else {
            self.current()
        };
        if word::is_inline(w) {
            return self.add(delta);
        }
        // SAFETY: a header address from the state word.
        if unsafe { moved(w) } {
            // Moved just now, or not fixed up here: the central count, writing nothing into
            // the tombstone.
            // SAFETY: as above.
            return unsafe { self.add_central_at(w, delta) };
        }
        // SAFETY: a header address, live while `self` is.
        let inner = unsafe { Self::inner_of(w) };
        if batch > inner.domain().batch {
            // The smallest power of two at or above `batch` (up to 2⁶²): a bound, not the value.
            let log2 = (64 - (batch as u64 - 1).leading_zeros()).min(62) as u8;
            let _ = inner
                .header
                .spare()
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                    (log2 > f & Flags::WIDEST_LOG2).then_some((f & Flags::LOCK) | log2)
                });
        }
        // A lane bound raised by the slow path (as in `add_slow`) gets one retry.
        for retry in [false, true] {
            let fold = inner.level().fold().with_batch(batch);
            // SAFETY: as in `add_header`, with `fold` describing the same cells (and a lane
            // bound read from the counter's, which only grows).
            match unsafe { pcpu_rseq::add_fold_with(inner.header.slot_word(), &fold, delta) } {
                Ok(0) => return,
                Ok(moved) => {
                    self.central().fetch_add(moved, Ordering::Release);
                    return;
                }
                Err(_) if !retry && inner.note_lane() => {}
                Err(_) => break,
            }
        }
        // SAFETY: a header address from the state word.
        unsafe { self.add_central_at(w, delta) };
    }

    /// Moves what an `add` took out of this CPU's cell into the central count, and widens the
    /// batch if folds keep bouncing the central count between CPUs ([`crate::widen`]).
    ///
    /// # Safety
    /// As for [`inner_of`](Self::inner_of).
    #[inline(never)]
    unsafe fn fold_in(&self, w: usize, moved: i64) {
        // Release: a `sum` that sees this count (loading it first, `Acquire`) sees the cell
        // emptied, so it never counts `moved` twice.
        self.central().fetch_add(moved, Ordering::Release);
        // SAFETY: forwarded from the caller.
        if unsafe { self::moved(w) } {
            // A fold through a header that has moved since: no widening through it.
            return;
        }
        // SAFETY: forwarded from the caller.
        let inner = unsafe { Self::inner_of(w) };
        let level = inner.level();
        // Not in a signal handler scope: widening logs a `tracing` event, which may allocate.
        if level.fold().batch() < inner.domain().max_batch
            && !pcpu_rseq::in_slow_path()
            && crate::widen::note_fold(w, pcpu_rseq::current_cpu())
        {
            Self::widen(inner, level);
        }
    }

    /// Doubles the batch of a contended counter ([`crate::widen`]): rare (at most
    /// log2(max_batch / batch) times in a counter's life), so off the fold's path.
    #[cold]
    #[inline(never)]
    fn widen(inner: &Inner, level: Level) {
        let domain = inner.domain();
        let Some(wider) = domain.levels.wider(level) else {
            return;
        };
        // Relaxed: the levels were written before the domain was shared. Should another
        // fold have widened the counter meanwhile, it stays where that one put it. Loaded
        // first: the compare-and-swap writes even when it fails, and a header that moved
        // since the fold (its page given back, reading 0) is not to be written.
        let tag = inner.header.tag();
        if tag.load(Ordering::Relaxed) != level.0
            || tag
                .compare_exchange(level.0, wider.0, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        domain.totals.widened();
        crate::slow_path_event!(
            debug,
            from = level.fold().batch(),
            to = wider.fold().batch(),
            max_batch = domain.max_batch,
            "pcpu: batch widened: folds keep moving the central count between CPUs"
        );
    }

    /// The counter's count (inline adds and folds): O(1), off from [`sum`](Self::sum) by at
    /// most [`error_bound`](Self::error_bound) (plus updates in flight). Exact while the
    /// counter is inline.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(100);
    /// c.add(1);
    /// assert!((c.read() - 101).abs() <= c.error_bound());
    /// ```
    #[inline]
    pub fn read(&self) -> i64 {
        self.central().load(Ordering::Relaxed)
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
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(4);
    /// c.add(-6);
    /// assert_eq!(c.sum(), -2);
    /// ```
    // Inlined: a few loads and a loop over the lanes in use, which a call's prologue
    // (six saved registers) nearly doubled.
    #[inline]
    pub fn sum(&self) -> i64 {
        // The count first (inside `Words::read`), then the cells: a concurrent fold can then
        // be missed (it is in flight) but never counted twice.
        self.words.read(|h| {
            // SAFETY: the address comes from this counter's state word: its header, or a
            // moved one's tombstone, which stays mapped.
            let inner = unsafe { Self::inner_of(h) };
            // Whatever the header's state: a slot being attached is already in the readers'
            // view before any add can reach it, so an add that returned is never missed.
            let fold = inner.level().fold();
            // SAFETY: the header is attached through its domain's space (which lives for
            // the process), whose geometry the level's parameters copy; one word per CPU.
            let (slot, cells) = unsafe { inner.header.sum_word_at(fold.stride(), fold.ncpu(), 0) };
            if slot == 0 {
                // No slot: none yet, or the header moved.
                return self.cells_without_slot();
            }
            cells
        })
    }

    /// The cells of a counter whose header had no slot when `sum` read it: none yet (0), or
    /// the header moved ([`crate::forward`]), and then the cells behind the header that took
    /// its place, after fixing the state word up (the count, read before, stays the count).
    /// Out of `sum`'s way, and reloading the state word rather than taking the address `sum`
    /// read: keeping that address alive across the read cost `sum` 0.04 ns more (row 9:
    /// 2.45 ns against 2.41, and 2.29 with no check at all; `--scenario read`, 3 alternating
    /// runs each).
    #[cold]
    #[inline(never)]
    fn cells_without_slot(&self) -> i64 {
        loop {
            let h = self.current();
            // SAFETY: as in `sum`: the counter's header, or a tombstone's, which stays mapped.
            let inner = unsafe { Self::inner_of(h) };
            // The level first: a slot read after it is one of the level's domain (a moved
            // header keeps its tag; once its page is given back both read 0).
            let fold = inner.level().fold();
            // SAFETY: as in `sum`.
            let (slot, cells) = unsafe { inner.header.sum_word_at(fold.stride(), fold.ncpu(), 0) };
            // SAFETY: a header address from the state word.
            if slot != 0 || !unsafe { moved(h) } {
                return cells;
            }
        }
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
        while let Form::Header(inner) = self.form() {
            let mut taken = [0i64];
            // SAFETY: the header is attached (if at all) through its domain's space; its
            // sections add only below its lane bound, read after the grace period (an add
            // that reached a lane read a bound above it, raised before).
            match unsafe {
                inner.domain().space.take_cells_below(
                    &inner.header,
                    || inner.level().fold().ncpu(),
                    &mut taken,
                )
            } {
                Ok(()) => break,
                // Moved meanwhile: `form` fixes the state word up.
                Err(pcpu_migrate::MigrateError::Moved) => continue,
                Err(e) => return Err(CounterError::Space(e)),
            }
        }
        self.central().store(value, Ordering::Release);
        Ok(())
    }

    /// Most `|read() − sum()|` can be, adds in flight aside: 0 while the counter is inline;
    /// per-CPU, every CPU's cell stays below the batch in absolute value. The batch is the
    /// domain's, widened (up to the domain's [`max_batch`](crate::DomainBuilder::max_batch))
    /// while folds from several CPUs contend on this counter, or the largest batch given to
    /// [`add_batch`](Self::add_batch).
    ///
    /// It never narrows, so a bound taken *after* a `read` and a `sum` covers them (as
    /// [`compare`](Self::compare) and [`limited_add`](Self::limited_add) take it); one taken
    /// earlier may be too small by then, so do not cache it.
    ///
    /// ```
    /// use pcpu_counter::{CounterMode, Domain, PercpuCounter};
    /// let domain = Domain::builder().ncpu(4).batch(32).build()?;
    /// let c = PercpuCounter::with_mode(domain, 0, CounterMode::PerCpu)?;
    /// assert_eq!(c.error_bound(), 31 * 4);
    /// let lazy = PercpuCounter::new_in(domain, 0)?;
    /// assert_eq!(lazy.error_bound(), 0); // inline: read() is exact
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    pub fn error_bound(&self) -> i64 {
        self.with_inner(|inner| {
            let widest_add_batch =
                match inner.header.spare().load(Ordering::Relaxed) & Flags::WIDEST_LOG2 {
                    0 => 0,
                    k => 1i64 << k,
                };
            let batch = inner.level().fold().batch().max(widest_add_batch);
            (batch - 1).saturating_mul(inner.domain().ncpu as i64)
        })
        .unwrap_or(0)
    }

    /// The batch `add` folds at now: the domain's, or wider if this counter has been
    /// contended.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(0);
    /// assert_eq!(c.batch(), pcpu_counter::Domain::global().batch());
    /// ```
    pub fn batch(&self) -> i64 {
        match self.form() {
            Form::Inline(s) => Domain::by_index(word::domain_index(s)).batch,
            Form::Header(_) => self
                .with_inner(|inner| inner.level().fold().batch())
                .expect("a header counter stays one"),
        }
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
    /// Inline, the check and the add are one compare-and-swap on the count. Per-CPU, positive
    /// `limited_add`s of one counter are serialised by a per-counter lock (plain adds never
    /// take it), so together they never exceed the limit: far from it, one `read` decides;
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
        if let Form::Inline(_) = self.form() {
            return self.limited_add_inline(limit, delta);
        }
        self.locked(|| {
            let far = self
                .read()
                .saturating_add(self.error_bound())
                .saturating_add(delta)
                <= limit;
            let ok = far || self.sum().saturating_add(delta) <= limit;
            if ok {
                // Straight to the count, so that the next limited_add's `read` sees it.
                self.central().fetch_add(delta, Ordering::Relaxed);
            }
            ok
        })
    }

    /// Runs `f` holding the counter's lock, which serialises `limited_add` and `raise_to`
    /// (plain adds never take it). The lock is a bit of the header's spare byte, so a header
    /// being moved ([`crate::forward`]) must not hold it on both sides: the compactor claims
    /// the header (`Moving`), fences, and leaves it in place if the bit is set
    /// (`keep_in_place`); a locker sets the bit, fences, and lets go and looks again if the
    /// header is moving or moved. One of the two sees the other.
    fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        loop {
            let w = self.current();
            debug_assert!(!word::is_inline(w), "only header counters lock");
            // SAFETY: a header address from the state word: the counter's block, or a
            // tombstone's, which stays mapped.
            let header = unsafe { &Self::inner_of(w).header };
            let flags = header.spare();
            // Look first: a header moved just now is not written (its page may have gone
            // back to the OS).
            // SAFETY: a header address from the state word.
            if unsafe { moved(w) } {
                continue;
            }
            if flags.fetch_or(Flags::LOCK, Ordering::SeqCst) & Flags::LOCK != 0 {
                yield_now();
                continue;
            }
            pcpu_rseq::sync::fence(Ordering::SeqCst);
            // SAFETY: a header address from the state word.
            if unsafe { moved(w) } || header.state() == pcpu_migrate::State::Moving {
                flags.fetch_and(!Flags::LOCK, Ordering::Release);
                yield_now();
                continue;
            }
            let out = f();
            flags.fetch_and(!Flags::LOCK, Ordering::Release);
            return out;
        }
    }

    /// Raises the value to at least `value` and returns whether it was below (the `metrics`
    /// facade's `absolute`, which must never lower a counter). No grace period: inline, one
    /// `fetch_max` on the count; per-CPU, under the lock that `limited_add` takes, an exact
    /// `sum` and the difference added to the count. Adds running meanwhile are kept,
    /// so the value may end above `value`; for a counter whose adds are never negative it is
    /// at least `value` afterwards.
    ///
    /// ```
    /// let c = pcpu_counter::PercpuCounter::new(10);
    /// assert!(c.raise_to(25));
    /// assert!(!c.raise_to(7)); // never lowers
    /// assert_eq!(c.sum(), 25);
    /// ```
    pub fn raise_to(&self, value: i64) -> bool {
        if let Form::Inline(_) = self.form() {
            // Should the counter switch to a header meanwhile, its count still holds at
            // least `value` and stays a part of the value.
            return self.words.count().fetch_max(value, Ordering::Relaxed) < value;
        }
        self.locked(|| {
            let now = self.sum();
            if now >= value {
                return false;
            }
            self.central()
                .fetch_add(value.wrapping_sub(now), Ordering::Relaxed);
            true
        })
    }

    /// [`limited_add`](Self::limited_add) of an inline counter: check and add in one CAS.
    /// Should the counter go per-CPU meanwhile, the count it holds is still a part of the
    /// value, and an add to it is still an add to the counter.
    fn limited_add_inline(&self, limit: i64, delta: i64) -> bool {
        self.words
            .count()
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v.saturating_add(delta) <= limit).then(|| v.wrapping_add(delta))
            })
            .is_ok()
    }
}

/// A counter's form, read once.
enum Form<'a> {
    Inline(usize),
    Header(&'a Inner),
}

impl crate::headers::Block for Inner {
    fn header(&self) -> &Header {
        &self.header
    }
}

impl Inner {
    fn new(domain: &'static Domain) -> Inner {
        // Sets the levels' lane bound on the domain's first header counter.
        domain.lanes_for_new_counter();
        let header = Header::new();
        header
            .tag()
            .store(domain.levels.first().0, Ordering::Relaxed);
        Inner { header }
    }

    /// The batch level the counter folds at now: one of its domain's (set by `new` and
    /// `widen` only).
    #[inline(always)]
    fn level(&self) -> Level {
        Level(self.header.tag().load(Ordering::Relaxed))
    }

    fn domain(&self) -> &'static Domain {
        Domain::by_index(self.level().domain())
    }

    /// After an add took the slow path: if this thread's lane (a hint, read outside a
    /// section) is at or above the counter's lane bound and within the domain's CPUs, raise
    /// the bound (and the domain's, for counters made later) past it. The raise is a
    /// `Release` `fetch_max` made before any section can add to that lane (sections check
    /// the bound), so `sum()`, which loads the bound (`Acquire`) and then the cells below it,
    /// misses no add that happened before it. A stale hint raises the bound needlessly
    /// (`sum` reads one lane more) or not enough (the next add comes here again): never
    /// wrong. Returns whether it raised the bound (the add is then worth retrying per-CPU).
    fn note_lane(&self) -> bool {
        let domain = self.domain();
        let Some(lane) = domain.lane_above(self.level().fold().ncpu()) else {
            return false;
        };
        domain.raise_counter_lanes(lane + 1);
        true
    }
}

impl Drop for PercpuCounter {
    fn drop(&mut self) {
        loop {
            let w = self.current();
            if word::is_inline(w) {
                // Nothing but the counter's own two words.
                return;
            }
            // SAFETY: a header address; we own the counter.
            let inner = unsafe { Self::inner_of(w) };
            // The tag names the domain even in a tombstone; only zeros (a tombstone whose
            // page went back) do not, and then the header has moved.
            if inner.header.tag().load(Ordering::Relaxed) == 0 {
                continue;
            }
            let domain = inner.domain();
            // SAFETY: `w` is the header of an `Inner` of the domain's store, attached (if at
            // all) to the domain's space; we own the counter: no add or read can run through
            // it any more.
            if unsafe { domain.headers.drop_block::<Inner>(w, &domain.space) } {
                return;
            }
            // Moved meanwhile (a compaction): drop the header that took its place.
        }
    }
}

/// True if the header at `h` was moved to another address ([`crate::forward`]): a tombstone
/// ([`Header::is_moved`]), or zeros once its page went back to the OS (a counter header's tag,
/// its level's fold-table key, is never 0).
///
/// # Safety
/// `h` is a header address a counter's state word held: a block of header storage, which
/// stays mapped for the process (a pageset holding a moved-out block is never unmapped).
#[inline]
unsafe fn moved(h: usize) -> bool {
    // SAFETY: the caller's.
    let header = unsafe { &*(h as *const Header) };
    header.tag().load(Ordering::Relaxed) == 0 || header.is_moved()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{per_cpu_domain, slow_path_adds};

    /// On the rseq backend, a lazy counter's cold path records the very id its adds compare
    /// (the kernel's `cpu_id`, whatever id the lanes use): after its first add, a thread that
    /// stays on one CPU adds with nothing to note. Both ways a CPU gets recorded are checked:
    /// at creation on a resolved thread, and at the first add of a `const` counter (made with
    /// no CPU), the latter pinned where possible to a CPU whose `cpu_id` differs from the
    /// thread's lane id (`mm_cid`), so that recording the lane would fail.
    #[test]
    #[cfg_attr(miri, ignore)] // no rseq under Miri
    fn a_lazy_add_records_the_cpu_id_the_next_adds_compare() {
        let Some(cpus) = pcpu_testkit::affinity::allowed_cpus() else {
            eprintln!("skipped: the affinity mask cannot be read");
            return;
        };
        // Pinned: the thread must not migrate between an add and the check.
        let pinned = |c: &usize| pcpu_testkit::affinity::pin_to(*c);
        if !cpus.iter().rev().any(pinned) {
            eprintln!("skipped: cannot pin this thread");
            return;
        }
        let check = |c: &PercpuCounter| {
            c.inc();
            let cpu = pcpu_rseq::registered_cpu_id()?;
            let s = c.load();
            assert!(word::is_inline(s));
            assert!(
                word::adds_unnoted(s, Some(cpu)),
                "the first add recorded another id than cpu_id {cpu}: state {s:#x}"
            );
            c.inc();
            assert_eq!(c.load(), s, "an add on the same CPU changes only the count");
            assert_eq!(c.sum(), 2);
            Some(())
        };
        let domain = Domain::builder().build().unwrap();
        let _ = pcpu_rseq::registration(); // resolves this thread's backend
        let lane_differs =
            || pcpu_rseq::registered_cpu_id() != u32::try_from(pcpu_rseq::current_cpu()).ok();
        // The kernel hands out `mm_cid`s as threads run: look a few times for a CPU where the
        // two ids differ (the checks still run, weaker, if none is found).
        for _ in 0..20 {
            if cpus.iter().rev().any(|c| pinned(c) && lane_differs()) {
                break;
            }
            std::thread::yield_now();
        }
        let made = PercpuCounter::new_in(domain, 0).unwrap();
        let Some(cpu) = pcpu_rseq::registered_cpu_id() else {
            eprintln!("skipped: this thread has no rseq area (portable backend or no rseq)");
            return;
        };
        let s = made.load();
        assert!(
            word::adds_unnoted(s, Some(cpu)),
            "made on cpu_id {cpu}, the counter recorded another id: state {s:#x}"
        );
        assert_eq!(check(&made), Some(()));
        assert_eq!(made.load(), s, "the first add had nothing to note");
        assert_eq!(check(&PercpuCounter::new_const(0)), Some(()));
    }

    /// Making a lazy counter resolves an unresolved thread's backend, so that a counter made
    /// by a thread with an rseq area records its CPU (and its adds there are unnoted from the
    /// first); on a thread without one it records none.
    #[test]
    #[cfg_attr(miri, ignore)] // no rseq under Miri
    fn making_a_lazy_counter_resolves_the_thread() {
        let domain = Domain::builder().build().unwrap();
        std::thread::spawn(move || {
            assert_eq!(
                pcpu_rseq::registered_cpu_id(),
                None,
                "a new thread is unresolved"
            );
            let c = PercpuCounter::new_in(domain, 0).unwrap();
            let recorded = word::sampling(c.load()).0;
            match pcpu_rseq::registration() {
                pcpu_rseq::Registration::Glibc | pcpu_rseq::Registration::Own => {
                    assert!(recorded.is_some(), "no CPU recorded at creation")
                }
                _ => assert_eq!(recorded, None),
            }
        })
        .join()
        .unwrap();
    }

    /// Adds to a counter whose slot is disabled (as during a relocation) take the slow path
    /// to the central count: each is counted once in the domain's totals, exactly, and none
    /// is lost; adds on the per-CPU path are not counted.
    #[test]
    fn slow_path_adds_are_counted_exactly() {
        let domain = per_cpu_domain();
        let c = PercpuCounter::new_in(domain, 0).unwrap();
        let other = PercpuCounter::new_in(domain, 0).unwrap();
        // Fewer under Miri, which interprets every instruction (each portable add pins).
        let n: i64 = if cfg!(miri) { 50 } else { 1000 };
        for _ in 0..n {
            c.inc();
            other.inc();
        }
        assert_eq!(slow_path_adds(domain), 0, "the per-CPU path");
        let Form::Header(inner) = c.form() else {
            panic!("a per-CPU counter has a header");
        };
        inner
            .header
            .with_per_cpu_off(|| {
                for _ in 0..n {
                    c.add(2);
                    c.add_batch(1, 1 << 20);
                    other.inc();
                }
            })
            .expect("attached");
        assert_eq!(slow_path_adds(domain), 2 * n as u64);
        assert_eq!(c.sum(), n + 3 * n);
        c.inc();
        assert_eq!(slow_path_adds(domain), 2 * n as u64);
        assert_eq!((c.sum(), other.sum()), (4 * n + 1, 2 * n));
    }

    /// An add in a signal handler scope to a counter whose header moved takes no lock (the
    /// fix-up takes the forward table's, which the interrupted code may hold): it goes to the
    /// central count, counted exactly, while another thread holds the table's lock.
    #[test]
    #[cfg_attr(miri, ignore)] // compaction maps and releases real memory
    fn a_moved_counter_adds_in_a_signal_scope_without_the_forward_lock() {
        use std::sync::mpsc;
        let domain = per_cpu_domain();
        let all = PercpuCounter::new_many_in(domain, 50_000, 1).unwrap();
        let kept: Vec<PercpuCounter> = all.into_iter().step_by(10).collect();
        domain.compact().unwrap();
        assert!(domain.stats().totals.headers_moved > 0, "nothing moved");
        let (locked_tx, locked_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _table = crate::forward::lock_for_test();
            locked_tx.send(()).unwrap();
            // Let go after the adds, or (the adds blocked on this lock) after a long while.
            done_rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .is_ok()
        });
        locked_rx.recv().unwrap();
        {
            let _scope = pcpu_rseq::signal_handler_scope();
            for c in &kept {
                c.add(2);
            }
        }
        done_tx.send(()).unwrap();
        assert!(
            holder.join().unwrap(),
            "the adds waited for the forward table's lock"
        );
        for c in &kept {
            assert_eq!(c.sum(), 3);
        }
    }

    /// A signal handler that opened no scope, interrupting this thread while it holds the
    /// forward table's lock (a `sum` fixing a counter up), and adding to another moved
    /// counter, must not wait for that lock (its own thread holds it): the holder is marked in
    /// a slow path, so the add goes to the central count. Emulated without a signal: the adds
    /// run on the thread that holds the lock; without the mark they would wait forever (the
    /// waiter gives up after 30 s and the test fails).
    #[test]
    #[cfg_attr(miri, ignore)] // compaction maps and releases real memory
    fn an_add_under_the_forward_lock_on_its_own_thread_does_not_wait_for_it() {
        use std::sync::mpsc;
        let domain = per_cpu_domain();
        let all = PercpuCounter::new_many_in(domain, 50_000, 1).unwrap();
        let kept: Vec<PercpuCounter> = all.into_iter().step_by(10).collect();
        domain.compact().unwrap();
        assert!(domain.stats().totals.headers_moved > 0, "nothing moved");
        let kept = std::sync::Arc::new(kept);
        let (done_tx, done_rx) = mpsc::channel();
        let adder = {
            let kept = std::sync::Arc::clone(&kept);
            std::thread::spawn(move || {
                let _table = crate::forward::lock_for_test();
                for c in kept.iter() {
                    c.add(2);
                }
                done_tx.send(()).unwrap();
            })
        };
        let finished = done_rx.recv_timeout(std::time::Duration::from_secs(30));
        assert!(finished.is_ok(), "an add waited for its own thread's lock");
        adder.join().unwrap();
        for c in kept.iter() {
            assert_eq!(c.sum(), 3);
        }
    }

    fn to_lane_1() {
        // SAFETY: as in the test below: its domain is its own.
        unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
    }

    /// A thread that moves between a counter's header block and its slot (from lane 0's
    /// header magazine to lane 1's slot magazine, simulated CPUs here) leaves the counter
    /// without a home: dropped, its block goes to the pool, not onto lane 1's magazine,
    /// whose working set does not hold the block's line neighbour, and so does its slot.
    /// Before, the block took the slot's home and went onto lane 1's magazine, the next
    /// header there.
    #[test]
    fn a_block_from_another_lane_than_its_slot_goes_to_the_pool() {
        let domain = Domain::builder()
            .ncpu(2)
            .mode(CounterMode::PerCpu)
            .build()
            .unwrap();
        // SAFETY: this thread alone uses `domain`, its own, so no rseq thread updates its
        // cells or magazines while this thread simulates CPUs.
        unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
        crate::headers::seam::set_between(to_lane_1);
        let moved = PercpuCounter::new_in(domain, 0).unwrap();
        assert!(
            !crate::headers::seam::pending(),
            "the thread moved in between"
        );
        let block = moved.header_address().unwrap();
        let slot = moved.slot_address().unwrap();
        drop(moved);
        // Still on lane 1: its next header is another block, and its next slot another slot
        // (the slot went to the pool with the block: the counter had no home).
        let next = PercpuCounter::new_in(domain, 0).unwrap();
        assert_ne!(
            next.header_address(),
            Some(block),
            "not on lane 1's magazine"
        );
        assert_ne!(
            next.slot_address(),
            Some(slot),
            "the slot went to the pool too"
        );
        // SAFETY: as above.
        unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
        let back = PercpuCounter::new_in(domain, 0).unwrap();
        assert_ne!(back.header_address(), Some(block), "nor on lane 0's");
        assert_ne!(back.slot_address(), Some(slot), "nor the slot");
        // A counter that stays on its lane keeps its block home (the control).
        let stays = back.header_address();
        drop(back);
        let again = PercpuCounter::new_in(domain, 0).unwrap();
        assert_eq!(again.header_address(), stays, "home again");
        drop((next, again));
        // SAFETY: back to this thread's real CPU.
        unsafe { pcpu_rseq::simulate_cpu(None) };
    }
}
