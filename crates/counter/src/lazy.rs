//! Lazy mode: when does an atomic counter deserve a per-CPU slot?
//!
//! A counter in lazy mode starts as the central atomic alone. Every slow-path add notes the
//! CPU it ran on; when 16 of a window of 256 slow-path adds came from a different CPU than the
//! one before, the counter is really shared between CPUs and gets a slot. A single thread
//! migrates far less often than that, so it never upgrades.

use pcpu_rseq::sync::{AtomicU32, AtomicUsize, Ordering};

const WINDOW: u32 = 256;
const SWITCHES: u32 = 16;

pub(crate) struct LazyTracker {
    enabled: bool,
    last_cpu: AtomicUsize,
    adds: AtomicU32,
    switches: AtomicU32,
}

impl LazyTracker {
    pub(crate) fn new(enabled: bool) -> Self {
        LazyTracker {
            enabled,
            last_cpu: AtomicUsize::new(usize::MAX),
            adds: AtomicU32::new(0),
            switches: AtomicU32::new(0),
        }
    }

    /// Notes one slow-path add; true when the counter should go per-CPU now.
    pub(crate) fn note_slow_add(&self) -> bool {
        if !self.enabled {
            return false;
        }
        let cpu = pcpu_rseq::current_cpu();
        let prev = self.last_cpu.load(Ordering::Relaxed);
        if prev != cpu {
            self.last_cpu.store(cpu, Ordering::Relaxed);
            if prev != usize::MAX && self.switches.fetch_add(1, Ordering::Relaxed) + 1 >= SWITCHES {
                self.switches.store(0, Ordering::Relaxed);
                self.adds.store(0, Ordering::Relaxed);
                return true;
            }
        }
        if self.adds.fetch_add(1, Ordering::Relaxed) + 1 >= WINDOW {
            self.adds.store(0, Ordering::Relaxed);
            self.switches.store(0, Ordering::Relaxed);
        }
        false
    }
}
