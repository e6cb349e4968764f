//! The clock of the two heuristics that time a window of CPU switches: batch widening
//! ([`crate::widen`]: a window of folds) and lazy mode ([`crate::lazy`]: a window of inline
//! adds). Both read it once per window, on a cold path, never on the add path; tests stop it
//! per thread ([`simulate_fold_clock`]) so that a slow machine or emulator cannot stretch a
//! window they need short.
//!
//! Not through the loom shim: the heuristics it times are covered by unit tests, not models
//! (the loom model of the counter's words only needs [`window_start`] and [`window_is_short`],
//! which read no clock).

use core::cell::Cell;

/// The start mark of a window that ends (and the next begins) at `now_nanos`: microseconds,
/// wrapping every 71 minutes (a window that spans a wrap may once look short); at least 1, so
/// that 0 keeps meaning "no window yet".
pub(crate) fn window_start(now_nanos: u64) -> u32 {
    ((now_nanos / 1_000) as u32).max(1)
}

/// True if the window that began at `start` (0: none yet, the first window, which only starts
/// the clock) and ends at `now` ([`window_start`] marks) was shorter than `window_micros`.
pub(crate) fn window_is_short(start: u32, now: u32, window_micros: u32) -> bool {
    start != 0 && now.wrapping_sub(start) < window_micros
}

/// Nanoseconds of a monotonic clock (or of this thread's simulated clock,
/// [`simulate_fold_clock`]).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn now_nanos() -> u64 {
    if let Some(now) = SIMULATED_NOW.with(Cell::get) {
        return now;
    }
    monotonic_nanos()
}

/// `CLOCK_MONOTONIC`: one `clock_gettime` (the vDSO's, no syscall where the clock source
/// allows), async-signal-safe, with no lazily initialised state that a signal handler could
/// find half made.
#[cfg(unix)]
fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that `clock_gettime` only writes;
    // CLOCK_MONOTONIC exists on every Unix target the workspace claims (a failure leaves `ts`
    // at zero: a window that looks short once, a heuristic's error).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Off Unix (no signals to interrupt it): nanoseconds since the first call.
#[cfg(not(unix))]
fn monotonic_nanos() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

thread_local! {
    /// This thread's simulated window clock, in nanoseconds ([`simulate_fold_clock`]).
    static SIMULATED_NOW: Cell<Option<u64>> = const { Cell::new(None) };
}

/// For tests of batch widening and lazy upgrades: with `Some(nanos)`, the windows of switches
/// this thread closes (of folds, and of a lazy counter's inline adds) end at `nanos` instead
/// of the real clock's time (a clock that stands still: every window is short, so the batch
/// widens, or the counter upgrades, on every window of switches, however slow the machine or
/// emulator); `None` returns to the real clock. Other threads are unaffected. Together with
/// `pcpu_rseq::simulate_cpu` it makes both exact: tests need not hope that 64 CPU changes fit
/// in 200 µs.
///
/// ```
/// pcpu_counter::simulate_fold_clock(Some(1_000));
/// // ... folds from alternating (simulated) CPUs widen every window ...
/// pcpu_counter::simulate_fold_clock(None);
/// ```
#[doc(hidden)]
#[cfg_attr(loom, allow(dead_code))]
pub fn simulate_fold_clock(nanos: Option<u64>) {
    SIMULATED_NOW.with(|now| now.set(nanos));
}
