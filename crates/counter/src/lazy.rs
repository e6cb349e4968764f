//! Lazy mode: when does an inline counter deserve a per-CPU slot?
//!
//! A lazy counter starts inline ([`crate::word`]): its adds are one `fetch_add` on its own
//! count. Its state word names the CPU that last updated it, and an add first compares that
//! with the CPU it runs on (this thread's rseq `cpu_id`, one thread-local load and one load of
//! the rseq area, both independent of the add): on the same CPU it only adds, with no test on
//! the add's result and nothing written but the count. An add on another CPU is a *switch*:
//! it takes a cold path that records its CPU. When [`SWITCHES`] switches come within
//! [`WINDOW`], several CPUs really update the counter at once, and it goes per-CPU.
//!
//! One thread switches only when the scheduler migrates it, far less often than that, so a
//! single-threaded program never upgrades, and never even runs the cold path after its first
//! add. The signal is the counter's own history, not a tick shared by every counter of a
//! thread: a thread looping `{ shared.inc(); mine.inc(); }` beside another one doing the same
//! switches `shared` on nearly every add and `mine` never, so `shared` goes per-CPU and `mine`
//! does not, however the two interleave (`tests/modes.rs`). A counter two threads update only
//! now and then stays inline: it switches less than 4 times a millisecond, too rarely for its
//! line's transfers to matter.
//!
//! Threads without an rseq area to read the CPU from (the portable backend, a simulated CPU,
//! rseq unavailable, or not yet resolved: before the thread's first sampled add or per-CPU
//! operation) cannot compare cheaply: every add of theirs takes the cold path, which samples
//! one add in 2^[`SAMPLE_SHIFT`] (the add whose result carries the count across a multiple of
//! 64) and asks [`pcpu_rseq::current_cpu`] for that one only. So do the adds of an
//! [`Atomic`](crate::CounterMode::Atomic) counter on another CPU than its last: it notes only
//! sampled adds (it never upgrades; the note only keeps the adds of a thread that stays on one
//! CPU on the fast path).
//!
//! The clock ([`crate::clock`]) is read once per window of switches, at its end, on the cold
//! path only; the first window only starts it, so the first upgrade takes 2 × [`SWITCHES`]
//! switches. A counter records the CPU it is made on (resolving the thread's backend if
//! needed), so one made and used by a thread with an rseq area never takes the cold path at
//! all; a `const` one (no CPU then) takes it once, at its first add, or until its thread's
//! first sampled add resolves the thread.

use crate::word;

/// On a thread with no rseq CPU to compare, an add is sampled when it changes the count's bits
/// from this one up.
pub(crate) const SAMPLE_SHIFT: u32 = 6;
/// Switches per window (at most [`word::MAX_SWITCHES`]).
pub(crate) const SWITCHES: u8 = 4;
/// A window of [`SWITCHES`] switches shorter than this, in microseconds, upgrades the counter.
pub(crate) const WINDOW: u32 = 1_000;

const _: () = assert!(SWITCHES <= word::MAX_SWITCHES);

/// True if the add that took the count from `old` to `new` is sampled (threads with no rseq
/// CPU only).
#[inline(always)]
pub(crate) const fn sampled(old: i64, new: i64) -> bool {
    (old ^ new) >> SAMPLE_SHIFT != 0
}

/// Notes an add made on `cpu` in an inline lazy `state`, `now_nanos` reading the window clock
/// if needed: `None` if there is nothing to note (the CPU is the last one), else the new
/// state and whether the counter should go per-CPU now.
pub(crate) fn note(
    state: usize,
    cpu: usize,
    now_nanos: impl FnOnce() -> u64,
) -> Option<(usize, bool)> {
    let (last, switches, start) = word::sampling(state);
    let Some(last) = last else {
        // The first noted add only records its CPU.
        return Some((word::with_sampling(state, cpu, 0, start), false));
    };
    if last == word::cpu_field(cpu) {
        return None;
    }
    let switches = switches + 1;
    if switches < SWITCHES {
        return Some((word::with_sampling(state, cpu, switches, start), false));
    }
    // The window ends: short, the counter goes per-CPU; long (or the first), a new one begins.
    let now = crate::clock::window_start(now_nanos());
    let short = crate::clock::window_is_short(start, now, WINDOW);
    Some((word::with_sampling(state, cpu, 0, now), short))
}

/// The CPU to note for an add that [`word::adds_unnoted`] sent to the cold path, whose result
/// was `sampled` or not: this thread's rseq `cpu_id` if it has an area (the id the add's test
/// compares, whatever id the lanes use); else, for a sampled add only,
/// [`pcpu_rseq::current_cpu`], which also resolves the thread's backend if this is its first
/// pcpu operation (so a thread that gets an area there notes its `cpu_id` from then on).
/// `None`, nothing to note, in a signal handler that interrupted a pcpu slow path of this
/// thread (an upgrade, a cache's lock, an allocation): no upgrade there, the inline count
/// already took the add.
#[cfg(not(loom))]
pub(crate) fn cpu_to_note(sampled: bool) -> Option<usize> {
    let cpu = pcpu_rseq::registered_cpu_id();
    if cpu.is_none() && !sampled || pcpu_rseq::in_slow_path() {
        return None;
    }
    if let Some(cpu) = cpu {
        return Some(cpu as usize);
    }
    let lane = pcpu_rseq::current_cpu();
    Some(pcpu_rseq::registered_cpu_id().map_or(lane, |cpu| cpu as usize))
}

/// The CPU a new lazy counter records ([`word::made_on`]): this thread's rseq `cpu_id`,
/// resolving the thread's backend first if this is its first pcpu operation (constructors are
/// not async-signal-safe anyway), so that a thread that makes its counters adds to them on the
/// fast path from their first add. `None` on a thread without an rseq area.
#[cfg(not(loom))]
pub(crate) fn creating_cpu() -> Option<u32> {
    pcpu_rseq::registered_cpu_id().or_else(|| {
        let _ = pcpu_rseq::registration();
        pcpu_rseq::registered_cpu_id()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: u64 = 1_000;

    fn fresh() -> usize {
        word::inline(3, false).unwrap()
    }

    /// Notes adds on `cpus` in turn, all at `at_us`: the state after, and the index of the
    /// note that asked to upgrade, if one did.
    fn notes(
        mut s: usize,
        cpus: impl IntoIterator<Item = usize>,
        at_us: u64,
    ) -> (usize, Option<usize>) {
        for (i, cpu) in cpus.into_iter().enumerate() {
            if let Some((next, up)) = note(s, cpu, || at_us * US) {
                s = next;
                if up {
                    return (s, Some(i));
                }
            }
        }
        (s, None)
    }

    #[test]
    fn one_cpu_never_upgrades_and_notes_only_its_first_add() {
        let (s, up) = notes(fresh(), [1], 5);
        assert_eq!(up, None);
        for at in 0..10_000 {
            assert_eq!(note(s, 1, || at * US), None, "nothing to note");
        }
    }

    #[test]
    fn alternating_cpus_upgrade_within_a_window() {
        // The first add only records its CPU; the next SWITCHES switches end the first
        // window, which only starts the clock; the SWITCHES after end a short one.
        let (_, up) = notes(fresh(), (0..20).map(|i| i % 2), 7);
        assert_eq!(up, Some(2 * SWITCHES as usize));
    }

    #[test]
    fn switches_spread_over_more_than_a_window_do_not_upgrade() {
        // One switch every WINDOW / 2: a window of 4 switches takes twice WINDOW.
        let mut s = fresh();
        for i in 0..10_000u64 {
            let at = i * u64::from(WINDOW) / 2;
            if let Some((next, up)) = note(s, (i % 2) as usize, || at * US) {
                assert!(!up, "switch {i}");
                s = next;
            }
        }
    }

    #[test]
    fn a_short_window_after_long_ones_upgrades() {
        // The first window starts the clock at 10 µs.
        let (s, up) = notes(fresh(), [0, 1, 0, 1, 0], 10);
        assert_eq!(up, None);
        let (s, up) = notes(s, [1, 0, 1], 10);
        assert_eq!(up, None);
        // Its 4th switch comes a whole window later: long, a new window from then.
        let (s, up) = notes(s, [0], 10 + u64::from(WINDOW));
        assert_eq!(up, None);
        let (_, up) = notes(s, [1, 0, 1, 0], 20 + u64::from(WINDOW));
        assert_eq!(up, Some(3));
    }

    #[test]
    fn the_clock_is_read_once_per_window() {
        let mut s = fresh();
        let mut reads = 0;
        for i in 0..(1 + 10 * SWITCHES as usize) {
            if let Some((next, _)) = note(s, i % 2, || {
                reads += 1;
                5 * US
            }) {
                s = next;
            }
        }
        assert_eq!(reads, 10, "one read per window of {SWITCHES} switches");
    }

    #[test]
    fn a_state_made_on_a_cpu_notes_nothing_there() {
        let s = word::made_on(fresh(), Some(2));
        assert_eq!(note(s, 2, || unreachable!()), None);
        let (s, up) = note(s, 3, || unreachable!()).unwrap();
        assert!(!up);
        assert_eq!(word::sampling(s), (Some(3), 1, 0));
    }

    #[test]
    fn sampling_follows_the_count() {
        assert!(!sampled(0, 1));
        assert!(sampled(63, 64));
        assert!(sampled(0, -1));
        assert!(!sampled(5, 5));
        assert_eq!((0..6400i64).filter(|&v| sampled(v, v + 1)).count(), 100);
    }
}
