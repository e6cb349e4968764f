//! Lazy mode: when does an atomic counter deserve a per-CPU slot?
//!
//! A counter in lazy mode starts as the central atomic alone. One slow-path add in
//! [`SAMPLE`] (counted per thread, so the check costs a thread-local increment) looks at the
//! CPU it runs on: if another CPU made the previous sampled add, that is a *switch*. When a
//! window of [`WINDOW`] samples holds [`SWITCHES`] switches, several CPUs really share the
//! counter, and it gets a slot. One thread switches only when the scheduler migrates it, far
//! less often than that, so a single-threaded program never upgrades.

use core::cell::Cell;
use pcpu_rseq::sync::{AtomicU32, AtomicUsize, Ordering};

/// One slow-path add in this many (per thread) is sampled.
pub(crate) const SAMPLE: u32 = 16;
/// Samples per window.
pub(crate) const WINDOW: u32 = 32;
/// Switches within a window that make the counter go per-CPU.
pub(crate) const SWITCHES: u32 = 4;

std::thread_local! {
    static TICK: Cell<u32> = const { Cell::new(0) };
}

pub(crate) struct LazyTracker {
    enabled: bool,
    last_cpu: AtomicUsize,
    samples: AtomicU32,
    switches: AtomicU32,
}

impl LazyTracker {
    pub(crate) fn new(enabled: bool) -> Self {
        LazyTracker {
            enabled,
            last_cpu: AtomicUsize::new(usize::MAX),
            samples: AtomicU32::new(0),
            switches: AtomicU32::new(0),
        }
    }

    /// Notes one slow-path add; true when the counter should go per-CPU now.
    #[inline]
    pub(crate) fn note_slow_add(&self) -> bool {
        if !self.enabled {
            return false;
        }
        let sampled = TICK.with(|t| {
            let n = t.get().wrapping_add(1);
            t.set(n);
            n % SAMPLE == 0
        });
        sampled && self.sample()
    }

    #[cold]
    fn sample(&self) -> bool {
        let cpu = pcpu_rseq::current_cpu();
        let prev = self.last_cpu.swap(cpu, Ordering::Relaxed);
        if prev != cpu
            && prev != usize::MAX
            && self.switches.fetch_add(1, Ordering::Relaxed) + 1 >= SWITCHES
        {
            self.switches.store(0, Ordering::Relaxed);
            self.samples.store(0, Ordering::Relaxed);
            return true;
        }
        if self.samples.fetch_add(1, Ordering::Relaxed) + 1 >= WINDOW {
            self.samples.store(0, Ordering::Relaxed);
            self.switches.store(0, Ordering::Relaxed);
        }
        false
    }
}
