//! The words a [`PercpuCounter`](crate::PercpuCounter) value holds (an inline count and a
//! state word; a [`PercpuCounterGroup`](crate::PercpuCounterGroup) holds one inline count per
//! counter and one state word), and every step that reads or changes them: the inline add,
//! noting the CPU it runs on (lazy mode), the switch to a header, and the read.
//!
//! What happens behind a header (the per-CPU add, the header's sum) is passed in by the
//! caller, so that the loom model (`src/loom_tests.rs`) drives this very code with the
//! header steps of pcpu-migrate on loom atomics, as `PercpuCounter` drives it with the real
//! ones.
//!
//! The argument, in short ([`crate::word`] has the encoding):
//! - an add loads the state word (`Acquire`) and, if it is inline, adds to the count with one
//!   `fetch_add`; a switch to a header that happens in between does not matter, because the
//!   count stays a part of the value for the counter's whole life;
//! - the switch is one CAS of the state word from an inline state to the header's address,
//!   with `Release`, after the header was initialised: whoever loads the address sees the
//!   header whole;
//! - a read adds the count to what the header holds (if any): an add that returned before
//!   the read began is in one of the two, never in both;
//! - once there is a header, the count is also where folds and slow-path adds go (the
//!   counter's *central count*): a header holds no count of its own, so it is 16 bytes, and
//!   folds never write the line that adds read.

use crate::word;
use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};

/// The inline counts of `N` counters and their state word.
pub(crate) struct Words<const N: usize> {
    /// The inline counts: the whole values while inline, a part of them after.
    counts: [AtomicI64; N],
    /// Inline state (domain, last CPU, switch window) or header address ([`crate::word`]).
    state: AtomicUsize,
}

impl Words<1> {
    /// Inline words holding `count` with inline state `state`.
    #[cfg(not(loom))]
    pub(crate) const fn new(count: i64, state: usize) -> Self {
        Words {
            counts: [AtomicI64::new(count)],
            state: AtomicUsize::new(state),
        }
    }

    /// Inline words holding `count` with inline state `state` (loom atomics are not `const`).
    #[cfg(loom)]
    pub(crate) fn new(count: i64, state: usize) -> Self {
        Words {
            counts: [AtomicI64::new(count)],
            state: AtomicUsize::new(state),
        }
    }

    /// Adds `delta` to the single counter ([`add_at`](Self::add_at) 0).
    #[inline(always)]
    pub(crate) fn add(
        &self,
        delta: i64,
        header: impl FnOnce(usize, i64),
        cpu: impl FnOnce() -> Option<u32>,
        elsewhere: impl FnOnce(usize, i64),
    ) {
        self.add_at(0, delta, header, cpu, elsewhere);
    }

    /// The single counter's value ([`read_at`](Self::read_at) 0).
    #[inline]
    pub(crate) fn read(&self, header: impl FnOnce(usize) -> i64) -> i64 {
        self.read_at(0, header)
    }

    /// The single inline count.
    pub(crate) fn count(&self) -> &AtomicI64 {
        &self.counts[0]
    }
}

impl<const N: usize> Words<N> {
    /// Inline words of `N` counters at 0 with inline state `state`.
    pub(crate) fn zeroed(state: usize) -> Self {
        Words {
            counts: core::array::from_fn(|_| AtomicI64::new(0)),
            state: AtomicUsize::new(state),
        }
    }

    /// The state word, read so that a header address in it comes with the header's contents
    /// (published by the `Release` of [`publish`](Self::publish)).
    #[inline(always)]
    pub(crate) fn state(&self) -> usize {
        self.state.load(Ordering::Acquire)
    }

    /// The state word itself: for [`crate::forward::fix_up`], which stores where a moved
    /// header went.
    #[cfg(not(loom))]
    pub(crate) fn state_word(&self) -> &AtomicUsize {
        &self.state
    }

    /// Adds `delta` to counter `i`: behind the header if there is one
    /// (`header(address, delta)`); else, if the add has nothing to note (`cpu()`, this
    /// thread's CPU if it is cheap to know, is the one that last updated the counter), to its
    /// inline count; else `elsewhere(state, delta)`, the cold path that adds with
    /// [`add_noting`](Self::add_noting) ([`crate::lazy`]).
    ///
    /// # Panics
    /// If `i >= N` (callers check their index first).
    #[inline(always)]
    pub(crate) fn add_at(
        &self,
        i: usize,
        delta: i64,
        header: impl FnOnce(usize, i64),
        cpu: impl FnOnce() -> Option<u32>,
        elsewhere: impl FnOnce(usize, i64),
    ) {
        let s = self.state();
        if !word::is_inline(s) {
            return header(s, delta);
        }
        if word::adds_unnoted(s, cpu()) {
            // No test on the result: the add's latency is the whole cost (`crate::lazy`).
            self.counts[i].fetch_add(delta, Ordering::Relaxed);
        } else {
            elsewhere(s, delta);
        }
    }

    /// The add of counter `i` that [`add_at`](Self::add_at) could not make unnoted, in the
    /// inline state `seen`: adds `delta` to the inline count (where it stays part of the value
    /// whatever the state is now), then notes the CPU the add ran on, which `cpu(sampled)`
    /// gives (`None`: note nothing; `sampled` tells whether the add crossed a sampling
    /// boundary, for threads that pay to learn their CPU), reading the clock through
    /// `now_nanos` if a window begins or ends. The state to upgrade with, if the counter
    /// should go per-CPU now.
    pub(crate) fn add_noting(
        &self,
        i: usize,
        seen: usize,
        delta: i64,
        cpu: impl FnOnce(bool) -> Option<usize>,
        now_nanos: impl FnOnce() -> u64,
    ) -> Option<usize> {
        let old = self.counts[i].fetch_add(delta, Ordering::Relaxed);
        let sampled = crate::lazy::sampled(old, old.wrapping_add(delta));
        // An atomic counter notes only its sampled adds: one that several CPUs update pays an
        // out-of-line call per add, not a CAS of its state word too.
        if word::is_atomic(seen) && !sampled {
            return None;
        }
        let cpu = cpu(sampled)?;
        self.note(seen, cpu, now_nanos)
    }

    /// Notes an add made on `cpu` in the inline state `seen`: the state to upgrade with, if
    /// the counter should go per-CPU now. An atomic counter only records the CPU (on its
    /// sampled adds), so that its next adds there pass [`word::adds_unnoted`]. A note that
    /// loses a race with another one is dropped (the state changed meanwhile), which only
    /// delays an upgrade.
    fn note(&self, seen: usize, cpu: usize, now_nanos: impl FnOnce() -> u64) -> Option<usize> {
        if !word::is_inline(seen) {
            return None;
        }
        let (next, upgrade) = if word::is_atomic(seen) {
            (word::with_sampling(seen, cpu, 0, 0), false)
        } else {
            crate::lazy::note(seen, cpu, now_nanos)?
        };
        let stored = self
            .state
            .compare_exchange(seen, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        (stored && upgrade).then_some(next)
    }

    /// Switches an inline counter to the header at `header` (initialised, not yet shared).
    /// `Err(address)` if another thread switched it first, to that header.
    pub(crate) fn publish(&self, mut seen: usize, header: usize) -> Result<(), usize> {
        debug_assert!(!word::is_inline(header) && header != 0);
        loop {
            match self
                .state
                .compare_exchange(seen, header, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) if word::is_inline(now) => seen = now, // a note changed it
                Err(now) => return Err(now),
            }
        }
    }

    /// Counter `i`'s value: its count plus `header(address)` (what its per-CPU cells hold)
    /// if there is a header. The count is loaded first (`Acquire`, pairing with the `Release`
    /// of a fold into it): a fold running meanwhile may be missed, never counted twice.
    #[inline]
    pub(crate) fn read_at(&self, i: usize, header: impl FnOnce(usize) -> i64) -> i64 {
        let s = self.state();
        let count = self.counts[i].load(Ordering::Acquire);
        let behind = if word::is_inline(s) { 0 } else { header(s) };
        count.wrapping_add(behind)
    }

    /// Every counter's value, as [`read_at`](Self::read_at) does it, with the header read
    /// once: `header(address)` gives what it holds for each counter.
    pub(crate) fn read_all(&self, header: impl FnOnce(usize) -> [i64; N]) -> [i64; N] {
        let s = self.state();
        let counts: [i64; N] = core::array::from_fn(|i| self.counts[i].load(Ordering::Acquire));
        let behind = if word::is_inline(s) {
            [0; N]
        } else {
            header(s)
        };
        core::array::from_fn(|i| counts[i].wrapping_add(behind[i]))
    }

    /// Counter `i`'s count: its inline count, and its central count once there is a header.
    #[inline(always)]
    pub(crate) fn count_at(&self, i: usize) -> &AtomicI64 {
        &self.counts[i]
    }
}
