//! Peer: a plain `AtomicI64` held by value, no `Arc`, no heap: what a counter costs when it
//! allocates nothing at all. In `churn` the 4 counters of an operation are 4 `AtomicI64` in an
//! array on the stack (created, added to, summed and dropped like every other peer's); in
//! `hot-add` the one counter is a local that the threads share by reference.
//!
//! Issue 12 measures pcpu against it: a default counter's add against `fetch_add` on one shared
//! atomic, and exec churn against "4 plain `AtomicI64` on the stack".

use super::BenchCounter;
use std::sync::atomic::{AtomicI64, Ordering};

/// One `AtomicI64`, by value.
pub struct PlainAtomic(AtomicI64);

impl BenchCounter for PlainAtomic {
    fn name() -> &'static str {
        PLAIN_ATOMIC_NAME
    }
    #[inline]
    fn new(initial: i64) -> Self {
        Self(AtomicI64::new(initial))
    }
    #[inline(always)]
    fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }
    #[inline]
    fn read(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    #[inline]
    fn sum(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    fn size_hint(_ncpu: usize) -> usize {
        8
    }
}

/// The row label (also used by the issue-12 targets).
pub const PLAIN_ATOMIC_NAME: &str = "plain AtomicI64 (no alloc)";
