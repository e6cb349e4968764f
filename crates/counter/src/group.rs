//! [`PercpuCounterGroup`]: N counters sharing one header and one slot of N × 8 bytes per CPU,
//! like the four memory counters of a process.

use crate::domain::{CounterMode, Domain};
use crate::CounterError;
use pcpu_migrate::{Header, Release, Space};
use pcpu_rseq::sync::{AtomicI64, Ordering};
use std::ptr::NonNull;

/// Most counters in one group (the 64-byte size class).
pub const MAX_GROUP: usize = 8;

/// The central counts (written by folds) in the first 64 bytes, the header (read by every add)
/// after them, so that the two never share a cache line (header blocks are 128-aligned).
#[repr(C)]
struct GroupInner {
    central: Centrals,
    header: Header,
    domain: &'static Domain,
}

const _: () = assert!(core::mem::size_of::<GroupInner>() <= crate::headers::BLOCK);

#[repr(C)]
struct Centrals([AtomicI64; MAX_GROUP]);

const _: () = assert!(core::mem::offset_of!(GroupInner, header) == 64);

impl core::ops::Deref for Centrals {
    type Target = [AtomicI64; MAX_GROUP];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A group of `len()` counters that share one header and one per-CPU slot: creating,
/// destroying and relocating the group costs what one counter costs.
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
/// ```
pub struct PercpuCounterGroup {
    /// A block of the domain's header storage, fixed for the group's life.
    inner: NonNull<GroupInner>,
    len: usize,
}

// SAFETY: the inner state is atomics and a `&'static Domain`, shared by design.
unsafe impl Send for PercpuCounterGroup {}
// SAFETY: as above.
unsafe impl Sync for PercpuCounterGroup {}

impl core::fmt::Debug for PercpuCounterGroup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PercpuCounterGroup")
            .field("len", &self.len)
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

    /// A group of `n` counters (1..=8) at 0 in `domain`. Groups take their per-CPU slot at
    /// creation, unless the domain's mode is [`CounterMode::Atomic`].
    ///
    /// # Errors
    /// As for [`new`](PercpuCounterGroup::new).
    pub fn new_in(domain: &'static Domain, n: usize) -> Result<Self, CounterError> {
        let space = domain.group_space(n).ok_or(CounterError::GroupSize(n))?;
        let inner = domain.headers.alloc(GroupInner {
            central: Centrals(core::array::from_fn(|_| AtomicI64::new(0))),
            header: Header::new(),
            domain,
        })?;
        if domain.mode != CounterMode::Atomic {
            // SAFETY: a live block of the store, ours alone.
            if let Err(e) = space.attach(unsafe { &inner.as_ref().header }) {
                // SAFETY: never attached, never shared.
                unsafe { domain.headers.retire(inner, Ok(Release::Now)) };
                return Err(CounterError::Space(e));
            }
        }
        Ok(PercpuCounterGroup { inner, len: n })
    }

    fn domain(&self) -> &'static Domain {
        self.inner().domain
    }

    fn space(&self) -> &'static Space {
        // The size was checked at creation.
        self.domain()
            .group_space(self.len)
            .expect("a group's size has a space")
    }

    fn inner(&self) -> &GroupInner {
        // SAFETY: live until drop (freed after a grace period).
        unsafe { self.inner.as_ref() }
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

    /// Adds `delta` to counter `i`: one rseq critical section on this CPU's word `i`.
    ///
    /// # Errors
    /// [`CounterError::Index`] if `i >= len()`; nothing is added then.
    #[inline]
    pub fn add(&self, i: usize, delta: i64) -> Result<(), CounterError> {
        self.check(i)?;
        let inner = self.inner();
        let d = self.domain();
        // SAFETY: the slot word is disabled or addresses a slot of `self.space` whose cells
        // hold `len` words at offsets 0, 8, ..; `i < len`.
        match unsafe {
            pcpu_rseq::add_fold_with_offset(inner.header.slot_word(), &d.fold, i * 8, delta)
        } {
            Ok(0) => {}
            Ok(moved) => {
                inner.central[i].fetch_add(moved, Ordering::Relaxed);
            }
            Err(_) => {
                inner.central[i].fetch_add(delta, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Counter `i`'s central count: O(1), off from [`sum`](Self::sum) by at most
    /// [`error_bound`](Self::error_bound) (plus updates in flight).
    ///
    /// # Errors
    /// [`CounterError::Index`] if `i >= len()`.
    pub fn read(&self, i: usize) -> Result<i64, CounterError> {
        self.check(i)?;
        Ok(self.inner().central[i].load(Ordering::Relaxed))
    }

    /// Most `|read(i) − sum(i)|` can be for any `i`, adds in flight aside. Groups fold at the
    /// domain's batch and, unlike single counters, never widen it: the bound is fixed.
    ///
    /// ```
    /// use pcpu_counter::{Domain, PercpuCounterGroup};
    /// let domain = Domain::builder().ncpu(4).batch(32).build()?;
    /// let g = PercpuCounterGroup::new_in(domain, 2)?;
    /// assert_eq!(g.error_bound(), 31 * 4);
    /// # Ok::<(), pcpu_counter::CounterError>(())
    /// ```
    pub fn error_bound(&self) -> i64 {
        let d = self.domain();
        (d.batch - 1).saturating_mul(d.ncpu as i64)
    }

    /// Counter `i`'s exact value when no add runs concurrently.
    ///
    /// # Errors
    /// [`CounterError::Index`] if `i >= len()`.
    pub fn sum(&self, i: usize) -> Result<i64, CounterError> {
        self.check(i)?;
        Ok(self.sum_all()[i])
    }

    /// Every counter's exact value when no add runs concurrently, read in one pass.
    pub fn sum_all(&self) -> Vec<i64> {
        let inner = self.inner();
        let mut out: Vec<i64> = inner.central[..self.len]
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .collect();
        if inner.header.is_attached() {
            let mut cells = [0i64; MAX_GROUP];
            self.space().sum_words(&inner.header, &mut cells);
            for (o, c) in out.iter_mut().zip(cells) {
                *o = o.wrapping_add(c);
            }
        }
        out
    }
}

impl Drop for PercpuCounterGroup {
    fn drop(&mut self) {
        let domain = self.domain();
        // SAFETY: we own the group: nobody adds or reads through it any more.
        let detached = unsafe { self.space().detach(&self.inner().header) };
        // SAFETY: `inner` came from the domain's store and was just detached; we are its only
        // owner.
        unsafe { domain.headers.retire(self.inner, detached) };
    }
}
