//! pcpu's own crossbeam-epoch collector.
//!
//! Every guard that pcpu takes (portable-backend operations, consistent reads, deferred frees)
//! and every grace period it waits for ([`crate::epoch_grace_period`]) use this collector, not
//! crossbeam's default one. A grace period waits until every guard pinned before it is gone;
//! with the default collector, a caller that happens to hold a guard of its own (a crossbeam
//! data structure walk, a deferred destructor) would make pcpu's compactor wait for it, and a
//! pcpu operation run under that guard would wait forever. With a private collector, only
//! pcpu's own short, non-blocking guards count.
//!
//! Never call a pcpu operation that waits for a grace period (`synchronize`, a compaction,
//! `set`) while holding a guard from [`pin`]: it would wait for itself.

use crossbeam_epoch::{Collector, Guard, LocalHandle};

#[cfg(not(loom))]
fn collector() -> &'static Collector {
    static COLLECTOR: std::sync::OnceLock<Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(Collector::new)
}

#[cfg(loom)]
loom::lazy_static! {
    static ref COLLECTOR: Collector = Collector::new();
}

#[cfg(loom)]
fn collector() -> &'static Collector {
    &COLLECTOR
}

#[cfg(not(loom))]
std::thread_local! {
    static HANDLE: LocalHandle = collector().register();
}

#[cfg(loom)]
loom::thread_local! {
    static HANDLE: LocalHandle = collector().register();
}

/// Pins the current thread in pcpu's collector, inside a pcpu slow path
/// ([`crate::enter_slow_path`]): a signal handler that interrupts this thread while it pins,
/// holds the pin or unpins never pins again (crossbeam's pin is not reentrant half-way), its
/// updates go to the central count instead.
#[inline]
pub fn pin() -> PinGuard {
    // Marked before the pin begins, cleared after it ends (fields drop in order).
    let slow = crate::enter_slow_path();
    // During thread-local destruction the handle may be gone: pin through a temporary one
    // (crossbeam keeps the participant alive while the guard lives).
    let guard = HANDLE
        .try_with(LocalHandle::pin)
        .unwrap_or_else(|_| collector().register().pin());
    PinGuard { guard, _slow: slow }
}

/// A pin of pcpu's collector ([`pin`]): a crossbeam-epoch [`Guard`] (it dereferences to one),
/// and the slow-path mark that covers it.
#[derive(Debug)]
#[must_use = "the pin ends when the guard is dropped"]
pub struct PinGuard {
    guard: Guard,
    _slow: crate::SlowPathGuard,
}

impl core::ops::Deref for PinGuard {
    type Target = Guard;
    fn deref(&self) -> &Guard {
        &self.guard
    }
}
