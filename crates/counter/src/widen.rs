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
//! single thread makes, migrations aside) costs one load. The batch never narrows again:
//! cells may hold up to the wide batch until their next fold, and the error bound must cover
//! them.
//!
//! Where the history lives: not in the counter's header, which is 16 bytes and full
//! ([`crate::headers`]), but in one process-wide table of [`TRACKERS`] words, a counter's
//! chosen by a hash of its header's address, tagged with more bits of that hash. A fold that
//! finds another tag takes the word over and starts afresh. Only contended counters ever
//! widen, and they fold often; two of them sharing a word (1 chance in 4096 for a pair)
//! would keep resetting each other and widen late or not at all, which costs speed, never
//! correctness. A counter whose tag matches a dead one's inherits a history, as harmless.

// Not through the loom shim: the fold tracker is a heuristic that no model covers.
use crate::clock::{self, now_nanos};
use core::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Switches per window.
pub(crate) const SWITCHES: u32 = 64;
/// A window shorter than this widens the batch.
pub(crate) const WINDOW: Duration = Duration::from_micros(200);
/// Words in the fold-history table (32 KiB of zero-initialised memory).
pub(crate) const TRACKERS: usize = 4096;

/// The fold history of the counters whose header addresses hash to it: one word,
/// `tag:14 | last CPU + 1:12 | switches:6 | window start:32`.
///
/// - the tag: which counter the history is of (more bits of its header address's hash);
/// - the CPU of the last fold plus 1 (0: none yet); CPUs from 4094 up share the top value;
/// - the switches counted in the current window;
/// - when the current window began, in microseconds of [`now_nanos`] (wrapping every 71
///   minutes: a window that spans a wrap may once look short); 0 before the first.
pub(crate) struct FoldTracker(AtomicU64);

const SWITCH_SHIFT: u32 = 32;
const CPU_SHIFT: u32 = 38;
const TAG_SHIFT: u32 = 50;
const SWITCH_MASK: u64 = (1 << (CPU_SHIFT - SWITCH_SHIFT)) - 1;
const CPU_MASK: u64 = (1 << (TAG_SHIFT - CPU_SHIFT)) - 1;
const TAG_MASK: u64 = (1 << (64 - TAG_SHIFT)) - 1;

// The switch count reaches SWITCHES - 1 at most before the window ends.
const _: () = assert!(SWITCHES as u64 - 1 <= SWITCH_MASK);

/// The process's fold histories.
static TABLE: [FoldTracker; TRACKERS] = [const { FoldTracker::new() }; TRACKERS];

/// Notes a fold of the counter whose header is at `header`, made on `cpu`; true when the
/// counter should widen its batch now.
#[inline]
pub(crate) fn note_fold(header: usize, cpu: usize) -> bool {
    let (index, tag) = place(header);
    TABLE[index].note_fold_at(tag, cpu, now_nanos)
}

/// The table word and the tag of the counter whose header is at `header`: Fibonacci hashing
/// of the address (headers are 16-byte aligned; the low bits say nothing).
fn place(header: usize) -> (usize, u64) {
    let h = ((header >> 4) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let index = (h >> (64 - TRACKERS.trailing_zeros())) as usize;
    let tag = (h >> (64 - TRACKERS.trailing_zeros() - (64 - TAG_SHIFT))) & TAG_MASK;
    (index, tag)
}

impl FoldTracker {
    pub(crate) const fn new() -> Self {
        FoldTracker(AtomicU64::new(0))
    }

    /// Notes a fold made on `cpu` by the counter tagged `tag`, with the clock passed in
    /// (nanoseconds, monotonic), so that tests can drive it; true when the counter should
    /// widen its batch now. One compare-and-swap when it changes anything; one that fails
    /// (another fold on the word meanwhile) drops this fold from the history.
    #[inline]
    fn note_fold_at(&self, tag: u64, cpu: usize, now: impl FnOnce() -> u64) -> bool {
        let cpu = cpu.min(CPU_MASK as usize - 1) as u64 + 1;
        let cur = self.0.load(Ordering::Relaxed);
        let swap = |new: u64| {
            self.0
                .compare_exchange(cur, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        };
        let pack = |switches: u64, start: u32| {
            tag << TAG_SHIFT | cpu << CPU_SHIFT | switches << SWITCH_SHIFT | u64::from(start)
        };
        if (cur >> TAG_SHIFT) & TAG_MASK != tag {
            // Another counter's history: this counter's starts here, with its first switch
            // (from no CPU), as in a word never used.
            swap(pack(1, 0));
            return false;
        }
        if (cur >> CPU_SHIFT) & CPU_MASK == cpu {
            return false;
        }
        let switches = (cur >> SWITCH_SHIFT) & SWITCH_MASK;
        let start = cur as u32;
        if switches + 1 < u64::from(SWITCHES) {
            swap(pack(switches + 1, start));
            return false;
        }
        self.window_ends(start, now(), swap, pack)
    }

    /// A window of switches that began at `start` ends at `now`: true if it was short (and
    /// this fold's update of the word took).
    #[cold]
    fn window_ends(
        &self,
        start: u32,
        now: u64,
        swap: impl FnOnce(u64) -> bool,
        pack: impl FnOnce(u64, u32) -> u64,
    ) -> bool {
        let now = clock::window_start(now);
        swap(pack(0, now)) && clock::window_is_short(start, now, WINDOW.as_micros() as u32)
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
            .filter(|&i| t.note_fold_at(TAG, i % 2, || at))
            .count()
    }

    /// The tag the tests' counter has.
    const TAG: u64 = 0x1234;

    /// The simulated clock stands still for this thread: through [`note_fold`] (the real
    /// clock's path), every window after the first is short.
    #[test]
    fn a_simulated_clock_makes_every_window_short() {
        // A header address of its own (the table is the process's).
        let header = Box::new([0u128; 1]);
        let h = header.as_ptr() as usize;
        let windows = || {
            (0..SWITCHES as usize)
                .filter(|&i| note_fold(h, i % 2))
                .count()
        };
        simulate_fold_clock(Some(5 * W));
        assert_eq!(windows(), 0, "the first window only starts the clock");
        assert_eq!(windows(), 1);
        assert_eq!(windows(), 1);
        simulate_fold_clock(None);
        assert_ne!(now_nanos(), 5 * W, "the real clock again");
    }

    #[test]
    fn one_cpu_never_widens() {
        let t = FoldTracker::new();
        assert!((0..100_000u64).all(|i| !t.note_fold_at(TAG, 3, || i)));
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
            widened.push(t.note_fold_at(TAG, k % 2, || 2)); // a switch
            for _ in 0..10 {
                assert!(!t.note_fold_at(TAG, k % 2, || 2)); // the same CPU again
            }
        }
        let last = SWITCHES as usize - 1;
        assert!(widened[last], "the window ends at its {SWITCHES}th switch");
        assert!(!widened[..last].contains(&true));
    }

    /// Two counters whose histories share a word: each fold of the other resets it, so
    /// interleaved folds of the two on different CPUs never count as switches of either.
    #[test]
    fn another_tag_takes_the_word_over() {
        let t = FoldTracker::new();
        let other = TAG + 1;
        for at in [1_000, 1_000 + W / 2, 1_000 + W] {
            for i in 0..SWITCHES as usize {
                assert!(!t.note_fold_at(TAG, i % 2, || at));
                assert!(!t.note_fold_at(other, 1 - i % 2, || at));
            }
        }
        // Alone again, the counter starts afresh, as on a word never used: its first window
        // only starts the clock, the next one is short.
        assert_eq!(window(&t, 1_000 + 2 * W), 0);
        assert_eq!(window(&t, 1_000 + 2 * W + W / 2), 1);
    }

    #[test]
    fn cpus_past_the_field_share_its_top_value() {
        let t = FoldTracker::new();
        let switches = || (t.0.load(Ordering::Relaxed) >> SWITCH_SHIFT) & SWITCH_MASK;
        assert!(!t.note_fold_at(TAG, 5000, || 1));
        assert_eq!(switches(), 1, "the first fold is a switch from no CPU");
        // 4094 and 5000 both read as the top value: not a switch.
        assert!(!t.note_fold_at(TAG, 4094, || 1));
        assert_eq!(switches(), 1);
        assert!(!t.note_fold_at(TAG, 4093, || 1));
        assert_eq!(switches(), 2);
    }

    #[test]
    fn places_spread_and_tags_fit() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..1024usize {
            let (index, tag) = place(0x7f00_0000_0000 + 16 * k);
            assert!(index < TRACKERS);
            assert!(tag <= TAG_MASK);
            seen.insert(index);
        }
        // Consecutive header blocks land on (nearly) distinct words.
        assert!(seen.len() > 1000, "{} distinct words", seen.len());
    }
}
