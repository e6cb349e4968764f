//! The primitive shim: `std` normally, loom's under `--cfg loom`.
//!
//! Every primitive that a cross-thread protocol of this crate, or of the crates above it
//! (pcpu-cache, pcpu-migrate, pcpu-counter), touches comes from here: the atomics and fences,
//! [`yield_now`] for wait loops (a loom model only progresses if a spinning thread yields to
//! it), and [`Mutex`]. So the same protocol code runs on real hardware and inside a loom model,
//! and one file says what loom sees. This follows crossbeam-epoch's `src/lib.rs` and
//! sharded-slab's `src/sync.rs`. What is left on `std` on purpose is never part of a model
//! (statistics counters, the background compactor's condition variable) and says so where it
//! is used.

#[cfg(loom)]
use loom::sync as mutex_impl;
#[cfg(loom)]
pub use loom::sync::atomic::{
    fence, AtomicBool, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub use loom::thread::yield_now;

#[cfg(not(loom))]
pub use core::sync::atomic::{
    fence, AtomicBool, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
use std::sync as mutex_impl;
#[cfg(not(loom))]
pub use std::thread::yield_now;

/// A held [`Mutex`].
pub type MutexGuard<'a, T> = mutex_impl::MutexGuard<'a, T>;

/// A mutex whose [`lock`](Mutex::lock) ignores poisoning: `std::sync::Mutex` normally,
/// loom's under `--cfg loom`.
///
/// The locks of the pcpu crates (a cache's pool lock, a space's compaction lock) guard state
/// that is consistent at every step a panic could interrupt (a slot is in a batch, in a
/// magazine or back in the pool; a compaction that panics leaves objects where they were or
/// where they were moved), so a panic while one is held breaks nothing, and the next user
/// goes on.
///
/// ```
/// let m = pcpu_rseq::sync::Mutex::new(1);
/// *m.lock() += 1;
/// assert_eq!(m.into_inner(), 2);
/// ```
#[derive(Debug, Default)]
pub struct Mutex<T>(mutex_impl::Mutex<T>);

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex(mutex_impl::Mutex::new(value))
    }

    /// Waits for the lock and takes it, whether or not a holder panicked.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value, whether or not a holder panicked.
    pub fn into_inner(self) -> T {
        self.0
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
