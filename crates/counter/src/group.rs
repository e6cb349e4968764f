//! [`PercpuCounterGroup`]: up to 8 counters that are inline together, go per-CPU together and
//! then share one header and one slot of N × 8 bytes per CPU, like the four memory counters
//! of a process.

use crate::clock::now_nanos;
use crate::domain::{CounterMode, Domain};
use crate::word;
use crate::words::Words;
use crate::CounterError;
use pcpu_migrate::{Header, Space};
use pcpu_rseq::sync::Ordering;

/// Most counters in one group (the 64-byte size class).
pub const MAX_GROUP: usize = 8;

/// The header block of a group that has gone per-CPU. Its central counts are the group's
/// own inline counts ([`crate::words`]), so the block is the header alone, whose tag
/// ([`Header::tag`]) holds the domain's index.
#[repr(C)]
struct GroupInner {
    header: Header,
}

/// Where the header sits in [`GroupInner`].
const HEADER_OFFSET: usize = core::mem::offset_of!(GroupInner, header);

const _: () = assert!(core::mem::size_of::<GroupInner>() <= crate::headers::BLOCK);
// The header first: its address is the block's (`crate::headers::Block`).
const _: () = assert!(HEADER_OFFSET == 0);

impl crate::headers::Block for GroupInner {
    fn header(&self) -> &Header {
        &self.header
    }
}

impl GroupInner {
    /// A group's header block content; sets the groups' lane bound on first use
    /// ([`Domain::lanes_for_new_group`]), before the header is attached: before any per-CPU
    /// add to the group.
    fn new(domain: &'static Domain) -> GroupInner {
        domain.lanes_for_new_group();
        let header = Header::new();
        // Fewer than 2¹¹ domains (`crate::registry`): the index fits.
        header.tag().store(domain.index as u16, Ordering::Relaxed);
        GroupInner { header }
    }

    /// The group's domain.
    fn domain(&self) -> &'static Domain {
        Domain::by_index(usize::from(self.header.tag().load(Ordering::Relaxed)))
    }
}
// No padding (see `crate::headers`): the header alone.
const _: () = assert!(core::mem::size_of::<GroupInner>() == core::mem::size_of::<Header>());

/// A group of `len()` counters. Like a single [`PercpuCounter`](crate::PercpuCounter) it
/// starts inline (its own words, one atomic count per counter, nothing else) in the default
/// lazy mode, and goes per-CPU once its adds show several CPUs updating it; then all its
/// counters share one header and one per-CPU slot: creating, destroying and relocating the
/// group costs what one counter costs.
///
/// ```
/// use pcpu_counter::PercpuCounterGroup;
/// // A process's RSS counters: file, anon, swap, shmem.
/// let rss = PercpuCounterGroup::new(4).unwrap();
/// rss.add(1, 4096).unwrap();
/// rss.add(1, 4096).unwrap();
/// rss.add(3, 1).unwrap();
/// assert_eq!(rss.sum(1).unwrap(), 8192);
/// assert_eq!(rss.sum_all(), vec![0, 8192, 0, 1]);
/// assert!(rss.add(4, 1).is_err()); // no fifth counter
/// assert!(!rss.is_per_cpu()); // one thread: still inline
/// ```
pub struct PercpuCounterGroup {
    /// The inline counts and the state word ([`crate::words`]).
    words: Words<MAX_GROUP>,
    len: usize,
}

impl core::fmt::Debug for PercpuCounterGroup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PercpuCounterGroup")
            .field("len", &self.len)
            .field("per_cpu", &self.is_per_cpu())
            .finish_non_exhaustive()
    }
}

impl PercpuCounterGroup {
    /// A group of `n` counters (1..=8) at 0, in the global domain.
    ///
    /// # Errors
    /// [`CounterError::GroupSize`] for `n` outside 1..=8; memory errors as for
    /// [`PercpuCounter::try_new`](crate::PercpuCounter::try_new).
    pub fn new(n: usize) -> Result<Self, CounterError> {
        Self::new_in(Domain::global(), n)
    }

    /// A group of `n` counters (1..=8) at 0 in `domain`, in the domain's mode: inline until
    /// contended ([`CounterMode::Lazy`]), per-CPU from the start ([`CounterMode::PerCpu`]), or
    /// inline for good ([`CounterMode::Atomic`]).
    ///
    /// ```
    /// use pcpu_counter::{CounterMode, Domain, PercpuCounterGroup};
    /// let domain = Domain::builder().mode(CounterMode::PerCpu).build()?;
    /// let g = PercpuCounterGroup::new_in(domain, 3)?;
    /// assert!(g.is_per_cpu());
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`new`](PercpuCounterGroup::new).
    pub fn new_in(domain: &'static Domain, n: usize) -> Result<Self, CounterError> {
        let space = domain.group_space(n).ok_or(CounterError::GroupSize(n))?;
        let atomic = domain.mode == CounterMode::Atomic;
        let state = word::inline(domain.index, atomic).expect("registered domains are in range");
        if domain.mode != CounterMode::PerCpu {
            let state = word::made_on(state, crate::lazy::creating_cpu());
            return Ok(PercpuCounterGroup {
                words: Words::zeroed(state),
                len: n,
            });
        }
        let h = domain
            .group_headers
            .alloc_attached(GroupInner::new(domain), space)?;
        Ok(PercpuCounterGroup {
            words: Words::zeroed(h),
            len: n,
        })
    }

    /// The block of the header at `h`.
    ///
    /// # Safety
    /// `h` is the header address of a live group; the reference must not outlive it.
    unsafe fn inner_of<'a>(h: usize) -> &'a GroupInner {
        // SAFETY: the header is `HEADER_OFFSET` bytes into its block (caller).
        unsafe { &*((h - HEADER_OFFSET) as *const GroupInner) }
    }

    /// The group's header block, if it has gone per-CPU.
    fn inner(&self) -> Option<&GroupInner> {
        let s = self.words.state();
        // SAFETY: a header address from our state word: the block lives as long as `self`.
        (!word::is_inline(s)).then(|| unsafe { Self::inner_of(s) })
    }

    /// The domain the group lives in.
    pub fn domain(&self) -> &'static Domain {
        match self.inner() {
            Some(inner) => inner.domain(),
            None => Domain::by_index(word::domain_index(self.words.state())),
        }
    }

    /// The space of the group's slot.
    fn space_of(domain: &'static Domain, len: usize) -> &'static Space {
        // The size was checked at creation.
        domain.group_space(len).expect("a group's size has a space")
    }

    /// True once the group has a per-CPU slot.
    pub fn is_per_cpu(&self) -> bool {
        self.inner().is_some_and(|i| i.header.is_attached())
    }

    /// Number of counters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a group has at least one counter.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn check(&self, i: usize) -> Result<(), CounterError> {
        if i < self.len {
            Ok(())
        } else {
            Err(CounterError::Index {
                index: i,
                len: self.len,
            })
        }
    }

    /// Adds `delta` to counter `i`: inline, one atomic add; per-CPU, one rseq critical section
    /// on this CPU's word `i`.
    ///
    /// # Errors
    /// [`CounterError::Index`] if `i >= len()`; nothing is added then.
    #[inline]
    pub fn add(&self, i: usize, delta: i64) -> Result<(), CounterError> {
        self.check(i)?;
        self.words.add_at(
            i,
            delta,
            // Inlined, as the single counter's (a call here doubles the per-CPU add).
            // SAFETY: the address comes from our state word: the live header; `i < len`.
            #[inline(always)]
            |h, delta| unsafe { self.add_header(h, i, delta) },
            pcpu_rseq::registered_cpu_id,
            |seen, delta| self.add_noting(i, seen, delta),
        );
        Ok(())
    }

    /// The per-CPU add of counter `i`.
    ///
    /// # Safety
    /// `h` is the header address of a live group whose length exceeds `i`.
    #[inline]
    unsafe fn add_header(&self, h: usize, i: usize, delta: i64) {
        // SAFETY: forwarded from the caller.
        let inner = unsafe { Self::inner_of(h) };
        let mut retry = false;
        loop {
            // SAFETY: the slot word is disabled or addresses a slot of the group's space
            // whose cells hold `len` words at offsets 0, 8, ..; `i < len`; the domain's fold
            // parameters describe every space of the domain (same stride, and a lane bound at
            // most the CPU count).
            match unsafe {
                pcpu_rseq::add_fold_with_offset(
                    inner.header.slot_word(),
                    &inner.domain().fold,
                    i * 8,
                    delta,
                )
            } {
                Ok(0) => return,
                Ok(moved) => {
                    // Release: pairs with the `Acquire` of a read (see `Words::read_at`).
                    self.words.count_at(i).fetch_add(moved, Ordering::Release);
                    return;
                }
                // A lane at or above the groups' bound: raise it, then retry once.
                Err(_) if !retry && inner.domain().note_group_lane() => retry = true,
                Err(_) => return self.add_central(inner, i, delta),
            }
        }
    }

    /// The slow path of counter `i` (the group's slot is disabled, or this thread cannot run
    /// per-CPU operations): its central count, and the domain's count of slow-path adds.
    #[cold]
    #[inline(never)]
    fn add_central(&self, inner: &GroupInner, i: usize, delta: i64) {
        self.words.count_at(i).fetch_add(delta, Ordering::Relaxed);
        inner.domain().totals.slow_path_add();
    }

    /// An inline add to counter `i` to note ([`crate::lazy`]), as
    /// `PercpuCounter::add_noting`: the group goes per-CPU once several CPUs update it.
    #[cold]
    #[inline(never)]
    fn add_noting(&self, i: usize, seen: usize, delta: i64) {
        let upgrade = self
            .words
            .add_noting(i, seen, delta, crate::lazy::cpu_to_note, now_nanos);
        let Some(next) = upgrade else {
            return;
        };
        let domain = Domain::by_index(word::domain_index(next));
        if domain.group_headers.upgrade(
            &self.words,
            next,
            GroupInner::new(domain),
            Self::space_of(domain, self.len),
        ) {
            domain.totals.upgraded();
        }
    }

    /// Counter `i`'s count (inline adds and folds): O(1), off from [`sum`](Self::sum) by at
    /// most [`error_bound`](Self::error_bound) (plus updates in flight).
    ///
    /// # Errors
    /// [`CounterError::Index`] if `i >= len()`.
    pub fn read(&self, i: usize) -> Result<i64, CounterError> {
        self.check(i)?;
        Ok(self.words.count_at(i).load(Ordering::Relaxed))
    }

    /// Most `|read(i) − sum(i)|` can be for any `i`, adds in flight aside: 0 while inline.
    /// Per-CPU groups fold at the domain's batch and, unlike single counters, never widen it.
    ///
    /// ```
    /// use pcpu_counter::{CounterMode, Domain, PercpuCounterGroup};
    /// let domain = Domain::builder().ncpu(4).batch(32).mode(CounterMode::PerCpu).build()?;
    /// let g = PercpuCounterGroup::new_in(domain, 2)?;
    /// assert_eq!(g.error_bound(), 31 * 4);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    pub fn error_bound(&self) -> i64 {
        match self.inner() {
            None => 0,
            Some(inner) => {
                let domain = inner.domain();
                (domain.batch - 1).saturating_mul(domain.ncpu as i64)
            }
        }
    }

    /// Counter `i`'s exact value when no add runs concurrently.
    ///
    /// # Errors
    /// [`CounterError::Index`] if `i >= len()`.
    pub fn sum(&self, i: usize) -> Result<i64, CounterError> {
        self.check(i)?;
        let len = self.len;
        Ok(self.words.read_at(i, |h| {
            // SAFETY: the address comes from our state word: the live header.
            let inner = unsafe { Self::inner_of(h) };
            // Whatever the header's state: see `PercpuCounter::sum`.
            // SAFETY: the header is attached (if at all) through the space for `len`.
            unsafe { Self::space_of(inner.domain(), len).sum_word(&inner.header, i) }
        }))
    }

    /// Every counter's exact value when no add runs concurrently, read in one pass.
    pub fn sum_all(&self) -> Vec<i64> {
        let len = self.len;
        let all = self.words.read_all(|h| {
            // SAFETY: the address comes from our state word: the live header.
            let inner = unsafe { Self::inner_of(h) };
            let mut cells = [0i64; MAX_GROUP];
            // Whatever the header's state: see `PercpuCounter::sum`.
            // SAFETY: the header is attached (if at all) through the space for `len`.
            unsafe { Self::space_of(inner.domain(), len).sum_words(&inner.header, &mut cells) };
            cells
        });
        all[..len].to_vec()
    }
}

impl Drop for PercpuCounterGroup {
    fn drop(&mut self) {
        let Some(inner) = self.inner() else {
            return; // inline: nothing but the group's own words
        };
        let domain = inner.domain();
        let space = Self::space_of(domain, self.len);
        // SAFETY: the state word holds the header of a `GroupInner` of the domain's store,
        // attached (if at all) to the group's space; we own the group: nobody adds or reads
        // through it any more.
        let dropped = unsafe {
            domain
                .group_headers
                .drop_block::<GroupInner>(self.words.state(), space)
        };
        debug_assert!(dropped, "group headers never move");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{per_cpu_domain, slow_path_adds};

    /// A group's adds through a disabled slot are slow-path adds, counted once each.
    #[test]
    fn slow_path_adds_are_counted_exactly() {
        let domain = per_cpu_domain();
        let g = PercpuCounterGroup::new_in(domain, 3).unwrap();
        g.add(0, 1).unwrap();
        assert_eq!(slow_path_adds(domain), 0, "the per-CPU path");
        // SAFETY: the state word of a per-CPU group holds its live header, which lives as
        // long as `g`; the reference does not outlive it.
        let inner = unsafe { PercpuCounterGroup::inner_of(g.words.state()) };
        inner
            .header
            .with_per_cpu_off(|| {
                for _ in 0..500 {
                    g.add(1, 2).unwrap();
                    g.add(2, -1).unwrap();
                }
            })
            .expect("attached");
        g.add(0, 1).unwrap();
        assert_eq!(slow_path_adds(domain), 1000);
        assert_eq!(g.sum_all(), [2, 1000, -500]);
    }

    /// A group of one shares the single counters' space: when an add from a lane above every
    /// bound so far raises the groups' lane bound, that space's bound must rise too, or sums
    /// miss the lane and a freed slot keeps its cell for the next counter to find. The fuzz
    /// target found this as a lost update (`group 0 sum_all: [0] vs [-1]`).
    #[test]
    fn a_group_of_one_on_a_new_lane_sums_and_frees_every_lane() {
        let domain = per_cpu_domain();
        let g = PercpuCounterGroup::new_in(domain, 1).unwrap();
        // SAFETY: this thread alone uses `domain`, its own, so no rseq thread updates its
        // cells while this thread simulates CPUs.
        unsafe { pcpu_rseq::simulate_cpu(Some(3)) };
        // Lane 3 is above the groups' bound (1 with rseq, where lanes follow the CPUs in use;
        // 4 on the portable backend): the add's slow path raises it, as on an rseq thread.
        g.add(0, -1).unwrap();
        assert_eq!(domain.fold.ncpu(), 4, "the add raised the groups' bound");
        // SAFETY: `None` ends the simulation: back to this thread's real CPU.
        unsafe { pcpu_rseq::simulate_cpu(None) };
        assert!(
            domain.space.lanes() >= domain.fold.ncpu(),
            "the space reads every group lane"
        );
        assert_eq!(g.sum_all(), [-1], "the add on lane 3");
        assert_eq!(g.sum(0).unwrap(), -1);
        drop(g);
        // The next counter of the space takes the group's slot (this thread's magazine), and
        // its own adds make `sum()` read lane 3.
        let c = crate::PercpuCounter::new_in(domain, 0).unwrap();
        domain.raise_counter_lanes(4);
        assert_eq!(c.sum(), 0, "the freed slot's lane 3 was zeroed");
    }
}
