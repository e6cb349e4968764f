//! Adaptive batch: when does a per-CPU counter fold so often that its central count bounces?
//!
//! Every fold writes the counter's central count, one cache line shared by all CPUs. With
//! Linux's batch (32 on a small machine) and adds of about a nanosecond, two CPUs hammering
//! one counter fold every few tens of nanoseconds each, and the line moves between their
//! caches on nearly every fold: the adds stop scaling. Linux accepts that (its batch is fixed
//! per boot); here a counter that really is contended widens its own batch, and
//! [`PercpuCounter::error_bound`](crate::PercpuCounter::error_bound) widens with it.
//!
//! The signal is a *switch*: a fold from a different CPU than the previous fold, which means
//! the line probably came from another core. A window of [`SWITCHES`] switches that took less
//! than [`WINDOW`] doubles the batch, up to the domain's `max_batch`. That is at least
//! 320,000 line transfers per second, several percent of a CPU stalled on one counter. The
//! clock is read once per window, and a fold on the CPU that folded last (the only kind a
//! single thread makes, migrations aside) costs one load of a word on the line the fold has
//! just written. The batch never narrows again: cells may hold up to the wide batch until
//! their next fold, and the error bound must cover them.

// Not through the loom shim: the fold tracker is a heuristic that no model covers.
use crate::clock::{self, now_nanos};
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::Duration;

/// Switches per window.
pub(crate) const SWITCHES: u32 = 64;
/// A window shorter than this widens the batch.
pub(crate) const WINDOW: Duration = Duration::from_micros(200);

/// The fold history of one counter, 8 bytes of its header block.
#[repr(C)]
pub(crate) struct FoldTracker {
    /// The CPU of the last fold plus 1 (0: none yet); CPUs above 65534 share the top value.
    last_cpu: AtomicU16,
    switches: AtomicU16,
    /// When the current window began, in microseconds of [`now_nanos`] (wrapping every 71
    /// minutes: a window that spans a wrap may once look short); 0 before the first.
    window_start: AtomicU32,
}

impl FoldTracker {
    pub(crate) fn new() -> Self {
        FoldTracker {
            last_cpu: AtomicU16::new(0),
            switches: AtomicU16::new(0),
            window_start: AtomicU32::new(0),
        }
    }

    /// Notes a fold made on `cpu`; true when the counter should widen its batch now.
    #[inline]
    pub(crate) fn note_fold(&self, cpu: usize) -> bool {
        self.note_fold_at(cpu, now_nanos)
    }

    /// [`note_fold`](Self::note_fold) with the clock passed in (nanoseconds, monotonic), so
    /// that tests can drive it.
    #[inline]
    fn note_fold_at(&self, cpu: usize, now: impl FnOnce() -> u64) -> bool {
        let cpu = cpu.min(0xfffe) as u16 + 1;
        if self.last_cpu.load(Ordering::Relaxed) == cpu {
            return false;
        }
        self.last_cpu.store(cpu, Ordering::Relaxed);
        if u32::from(self.switches.fetch_add(1, Ordering::Relaxed)) + 1 < SWITCHES {
            return false;
        }
        self.window_ends(now())
    }

    /// A window of switches ends at `now`: true if it was short.
    #[cold]
    fn window_ends(&self, now: u64) -> bool {
        self.switches.store(0, Ordering::Relaxed);
        let now = clock::window_start(now);
        let start = self.window_start.swap(now, Ordering::Relaxed);
        clock::window_is_short(start, now, WINDOW.as_micros() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::simulate_fold_clock;

    const W: u64 = WINDOW.as_nanos() as u64;

    /// `SWITCHES` folds alternating between CPUs 0 and 1, all at time `at`; how many of them
    /// asked to widen.
    fn window(t: &FoldTracker, at: u64) -> usize {
        (0..SWITCHES as usize)
            .filter(|&i| t.note_fold_at(i % 2, || at))
            .count()
    }

    /// The simulated clock stands still for this thread: through [`FoldTracker::note_fold`]
    /// (the real clock's path), every window after the first is short.
    #[test]
    fn a_simulated_clock_makes_every_window_short() {
        let t = FoldTracker::new();
        let windows = |t: &FoldTracker| {
            (0..SWITCHES as usize)
                .filter(|&i| t.note_fold(i % 2))
                .count()
        };
        simulate_fold_clock(Some(5 * W));
        assert_eq!(windows(&t), 0, "the first window only starts the clock");
        assert_eq!(windows(&t), 1);
        assert_eq!(windows(&t), 1);
        simulate_fold_clock(None);
        assert_ne!(now_nanos(), 5 * W, "the real clock again");
    }

    #[test]
    fn one_cpu_never_widens() {
        let t = FoldTracker::new();
        assert!((0..100_000u64).all(|i| !t.note_fold_at(3, || i)));
    }

    #[test]
    fn short_windows_widen_once_each() {
        let t = FoldTracker::new();
        assert_eq!(
            window(&t, 1_000),
            0,
            "the first window only starts the clock"
        );
        assert_eq!(window(&t, 1_000 + W / 2), 1);
        assert_eq!(window(&t, 1_000 + W), 1);
    }

    #[test]
    fn long_windows_do_not_widen() {
        let t = FoldTracker::new();
        assert_eq!(window(&t, 1_000), 0);
        assert_eq!(
            window(&t, 1_000 + W),
            0,
            "a window of exactly WINDOW is not short"
        );
        assert_eq!(window(&t, 1_000 + 5 * W), 0);
        // Rapid again: widens.
        assert_eq!(window(&t, 1_000 + 5 * W + 1), 1);
    }

    #[test]
    fn repeated_folds_on_one_cpu_are_not_switches() {
        let t = FoldTracker::new();
        assert_eq!(window(&t, 1), 0); // ends on CPU 1
        let mut widened = Vec::new();
        for k in 0..SWITCHES as usize {
            widened.push(t.note_fold_at(k % 2, || 2)); // a switch
            for _ in 0..10 {
                assert!(!t.note_fold_at(k % 2, || 2)); // the same CPU again
            }
        }
        let last = SWITCHES as usize - 1;
        assert!(widened[last], "the window ends at its {SWITCHES}th switch");
        assert!(!widened[..last].contains(&true));
    }
}
