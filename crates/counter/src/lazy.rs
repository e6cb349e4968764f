//! Lazy mode: when does an inline counter deserve a per-CPU slot?
//!
//! A lazy counter starts inline ([`crate::word`]): its adds are one `fetch_add` on its own
//! count. The add whose result carries the count across a multiple of 2^[`SAMPLE_SHIFT`]
//! (one add in 64 for `inc`) is *sampled*: it looks at the CPU it runs on, and if another CPU
//! made the counter's previous sample, that is a *switch*. When a window of [`WINDOW`]
//! samples holds [`SWITCHES`] switches, several CPUs really update the counter, and it goes
//! per-CPU. One thread switches only when the scheduler migrates it, far less often than
//! that, so a single-threaded program never upgrades.
//!
//! The sample is decided by the counter's own value, not by a tick shared by every counter
//! of a thread: a thread looping `{ shared.inc(); mine.inc(); }` beside another one doing the
//! same samples each counter every 64 of its own adds, so `shared` goes per-CPU and `mine`
//! does not, however the two interleave (`tests/modes.rs`). The sampling state lives in the
//! counter's state word, beside the count: a sample writes only a line the add has just
//! written.

use crate::word;

/// An add is sampled when it changes the count's bits from this one up.
pub(crate) const SAMPLE_SHIFT: u32 = 6;
/// Samples per window.
pub(crate) const WINDOW: u8 = 32;
/// Switches within a window that make the counter go per-CPU.
pub(crate) const SWITCHES: u8 = 4;

/// True if the add that took the count from `old` to `new` is sampled.
#[inline(always)]
pub(crate) const fn sampled(old: i64, new: i64) -> bool {
    (old ^ new) >> SAMPLE_SHIFT != 0
}

/// Notes a sample made on `cpu` in an inline lazy `state`: the new state, and whether the
/// counter should go per-CPU now.
pub(crate) fn note(state: usize, cpu: usize) -> (usize, bool) {
    let (last, switches, samples) = word::sampling(state);
    let switched = last.is_some_and(|l| usize::from(l) != cpu.min(0xfffe));
    let switches = switches + u8::from(switched);
    if switches >= SWITCHES {
        return (word::with_sampling(state, cpu, 0, 0), true);
    }
    if samples + 1 >= WINDOW {
        return (word::with_sampling(state, cpu, 0, 0), false);
    }
    (
        word::with_sampling(state, cpu, switches, samples + 1),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> usize {
        word::inline(3, false).unwrap()
    }

    #[test]
    fn one_cpu_never_upgrades() {
        let mut s = fresh();
        for _ in 0..10_000 {
            let (n, up) = note(s, 1);
            assert!(!up);
            s = n;
        }
    }

    #[test]
    fn alternating_cpus_upgrade_within_a_window() {
        let mut s = fresh();
        let mut upgraded_at = None;
        for i in 0..WINDOW as usize {
            let (n, up) = note(s, i % 2);
            s = n;
            if up {
                upgraded_at = Some(i);
                break;
            }
        }
        // The first sample has no predecessor: switches start at the second.
        assert_eq!(upgraded_at, Some(SWITCHES as usize));
    }

    #[test]
    fn rare_migrations_do_not_upgrade() {
        // One switch every 16 samples: 2 per window, below the threshold.
        let mut s = fresh();
        for i in 0..100_000usize {
            let (n, up) = note(s, (i / 16) % 2);
            assert!(!up, "sample {i}");
            s = n;
        }
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
