//! The primitive shim: `std` normally, loom's under `--cfg loom` (in the style of
//! sharded-slab's `src/sync.rs`).
//!
//! The pool's mutex is the only lock of this crate; it comes from here so that the loom models
//! see it. Poisoning is ignored: every critical section under the lock leaves the shared state
//! consistent at each step (a slot is either in the scratch batch, in a magazine, or back in the
//! pool), so a panic inside a pool method does not break the cache's invariants.

#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

/// Locks `m`, ignoring poisoning (see the module docs), inside a pcpu slow path
/// (`pcpu_rseq::enter_slow_path`): a signal handler that interrupts this thread while it waits
/// for or holds the lock then updates counters without taking it again.
pub(crate) fn lock<T>(m: &Mutex<T>) -> Locked<'_, T> {
    let slow = pcpu_rseq::enter_slow_path();
    Locked {
        guard: m.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        _slow: slow,
    }
}

/// A held lock, and the slow-path mark that covers it (fields drop in order: the lock is
/// released before the mark is cleared).
pub(crate) struct Locked<'a, T> {
    guard: MutexGuard<'a, T>,
    _slow: pcpu_rseq::SlowPathGuard,
}

impl<T> core::ops::Deref for Locked<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> core::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
