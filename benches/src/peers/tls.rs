//! Peer: `thread_local::ThreadLocal<CachePadded<AtomicI64>>`, one cell per thread that ever
//! added, summed on read.

use super::BenchCounter;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicI64, Ordering};
use thread_local::ThreadLocal;

/// A per-thread counter.
pub struct Tls {
    initial: i64,
    cells: Box<ThreadLocal<CachePadded<AtomicI64>>>,
}

impl BenchCounter for Tls {
    fn name() -> &'static str {
        "thread_local ThreadLocal"
    }
    fn new(initial: i64) -> Self {
        Self {
            initial,
            cells: Box::new(ThreadLocal::new()),
        }
    }
    #[inline(always)]
    fn add(&self, delta: i64) {
        self.cells
            .get_or(|| CachePadded::new(AtomicI64::new(0)))
            .fetch_add(delta, Ordering::Relaxed);
    }
    fn read(&self) -> i64 {
        self.sum()
    }
    fn sum(&self) -> i64 {
        self.initial
            + self
                .cells
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<i64>()
    }
    fn size_hint(_ncpu: usize) -> usize {
        1024
    }
}
