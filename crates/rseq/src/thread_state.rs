//! This thread's state word and how it got its area: the thread-locals that resolution
//! (`thread.rs`) and [`simulate_cpu`](crate::simulate_cpu) set, and that the end of pcpu's own
//! registration (its TLS destructor, `native.rs`) sets to [`NO_RSEQ`] with [`lost_area`].
//!
//! Values of the word above [`NO_RSEQ`] are the address of this thread's `struct rseq`; the
//! small values are markers. A leaf: it imports nothing of the crate, so the registration code
//! can end the state without depending on the resolution that calls it.

#[cfg(not(loom))]
use core::cell::Cell;

/// Not resolved yet: the next operation resolves it.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const UNRESOLVED: usize = 0;
/// This thread uses the portable backend.
pub(crate) const PORTABLE: usize = 1;
/// rseq mode, but this thread has no area: every operation reports the slow path.
pub(crate) const NO_RSEQ: usize = 2;

/// How the current thread runs per-CPU operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Registration {
    /// rseq through the area glibc registered for this thread.
    Glibc,
    /// rseq through an area this crate registered for this thread.
    Own,
    /// rseq mode, but this thread could not register: operations report
    /// [`SlowPath`](crate::SlowPath).
    Unavailable,
    /// The portable atomic backend (process mode, or a simulated CPU on this thread).
    Portable,
}

#[cfg(not(loom))]
std::thread_local! {
    static STATE: Cell<usize> = const { Cell::new(UNRESOLVED) };
    static KIND: Cell<Option<Registration>> = const { Cell::new(None) };
}

/// This thread's state word as stored ([`UNRESOLVED`] until resolved).
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn word() -> usize {
    STATE.with(Cell::get)
}

/// How this thread got its area, once resolved.
#[cfg(not(loom))]
pub(crate) fn kind() -> Option<Registration> {
    KIND.with(Cell::get)
}

/// Stores this thread's state word and how it got it.
#[cfg(not(loom))]
pub(crate) fn set(state: usize, kind: Option<Registration>) {
    STATE.with(|c| c.set(state));
    KIND.with(|c| c.set(kind));
}

/// This thread's own rseq registration ended (its TLS is being destroyed): from now on its
/// operations report the slow path.
#[cfg(not(loom))]
#[allow(dead_code)] // Linux only
pub(crate) fn lost_area() {
    let _ = STATE.try_with(|c| c.set(NO_RSEQ));
    let _ = KIND.try_with(|c| c.set(Some(Registration::Unavailable)));
}
