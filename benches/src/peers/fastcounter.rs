//! Peer: the `fast-counter` crate's `ConcurrentCounter`, sized with one 128-byte padded cell
//! per CPU (rounded up to a power of two) and indexed by a per-thread id.

use super::BenchCounter;
use fast_counter::ConcurrentCounter;

/// A `fast_counter::ConcurrentCounter`.
pub struct FastCounter(ConcurrentCounter);

impl BenchCounter for FastCounter {
    fn name() -> &'static str {
        "fast-counter"
    }
    fn new(initial: i64) -> Self {
        Self::new_for_cpus(super::ncpu(), initial)
    }
    fn new_for_cpus(ncpu: usize, initial: i64) -> Self {
        let c = ConcurrentCounter::new(ncpu);
        if initial != 0 {
            c.add(initial as isize);
        }
        Self(c)
    }
    #[inline(always)]
    fn add(&self, delta: i64) {
        self.0.add(delta as isize);
    }
    fn read(&self) -> i64 {
        self.0.sum() as i64
    }
    fn sum(&self) -> i64 {
        self.0.sum() as i64
    }
    fn size_hint(ncpu: usize) -> usize {
        ncpu.next_power_of_two() * 128 + 64
    }
}
