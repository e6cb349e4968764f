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

/// Locks `m`, ignoring poisoning (see the module docs).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
