//! Peer: one shared `AtomicI64` behind an `Arc`, which is what a `metrics` or `prometheus`
//! counter is.

use super::BenchCounter;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A shared atomic counter.
pub struct SharedAtomic(Arc<AtomicI64>);

impl BenchCounter for SharedAtomic {
    fn name() -> &'static str {
        SHARED_ATOMIC_NAME
    }
    fn new(initial: i64) -> Self {
        Self(Arc::new(AtomicI64::new(initial)))
    }
    #[inline(always)]
    fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }
    fn read(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    fn sum(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    fn size_hint(_ncpu: usize) -> usize {
        32
    }
}

/// The row label (also used by the issue-12 targets).
pub const SHARED_ATOMIC_NAME: &str = "shared AtomicI64 (Arc)";
