//! The pool lock, the only lock of this crate. It is pcpu-rseq's shim mutex
//! (`pcpu_rseq::sync::Mutex`: loom's under `--cfg loom`, poisoning ignored, see its docs for
//! why that is sound here), taken inside a pcpu slow path so that a signal handler that
//! interrupts a thread waiting for or holding it does not take it again.

use pcpu_rseq::sync::{Mutex, MutexGuard};

/// Locks `m` inside a pcpu slow path (`pcpu_rseq::enter_slow_path`): a signal handler that
/// interrupts this thread while it waits for or holds the lock then updates counters without
/// taking it again.
pub(crate) fn lock<T>(m: &Mutex<T>) -> Locked<'_, T> {
    let slow = pcpu_rseq::enter_slow_path();
    Locked {
        guard: m.lock(),
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
