//! Signal handlers that re-enter pcpu on the thread they interrupted.
//!
//! A handler runs on the interrupted thread, in the middle of whatever it was doing. If that
//! was a pcpu slow path (holding a slot cache's mutex, inside a portable section's epoch pin,
//! allocating a header), a handler that updates a counter must not take the same path again:
//! the mutex is not reentrant (a deadlock), an epoch pin caught half-way is not a pin, and the
//! allocator may be mid-update. So every such path runs inside a [`SlowPathGuard`], and an
//! update that finds one on its own thread ([`in_slow_path`]) takes the one path that is always
//! safe: an atomic add to the owner's central count (`ops` return [`SlowPath`](crate::SlowPath)
//! for it, as for a disabled slot).
//!
//! The depth is a plain thread-local counter: a handler runs on the same thread, so program
//! order and a compiler fence are all the ordering it needs (the use `compiler_fence` exists
//! for). The thread-local has a `const` initialiser and no destructor: reading it is one
//! TLS access, with no lazy initialisation that could allocate inside a handler.

use core::cell::Cell;
use core::sync::atomic::{compiler_fence, Ordering};

#[cfg(not(loom))]
std::thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Open [`signal_handler_scope`]s; also const and without destructor.
    static HANDLERS: Cell<u32> = const { Cell::new(0) };
}

#[cfg(loom)]
loom::thread_local! {
    static DEPTH: Cell<u32> = Cell::new(0);
    static HANDLERS: Cell<u32> = Cell::new(0);
}

/// Marks the current thread as inside a pcpu slow path until dropped (nests).
#[derive(Debug)]
#[must_use = "the slow path ends when the guard is dropped"]
pub struct SlowPathGuard {
    /// Not `Send`: the mark belongs to this thread.
    _thread: core::marker::PhantomData<*const ()>,
}

/// Enters a slow path: until the guard is dropped, [`in_slow_path`] is true on this thread,
/// also inside a signal handler that interrupts it.
#[inline]
pub fn enter_slow_path() -> SlowPathGuard {
    // During thread-local destruction the counter is gone: nothing can re-enter then that a
    // mark would protect, so skip it.
    let _ = DEPTH.try_with(|d| d.set(d.get().saturating_add(1)));
    // The mark is set before anything the slow path does: a handler that interrupts it sees it.
    compiler_fence(Ordering::SeqCst);
    SlowPathGuard {
        _thread: core::marker::PhantomData,
    }
}

impl Drop for SlowPathGuard {
    #[inline]
    fn drop(&mut self) {
        // Everything the slow path did comes before the mark is cleared.
        compiler_fence(Ordering::SeqCst);
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// True inside a slow path of this thread ([`enter_slow_path`]), in particular in a signal
/// handler that interrupted one. During thread-local destruction it answers true: the safe
/// answer.
#[inline]
pub fn in_slow_path() -> bool {
    DEPTH.try_with(|d| d.get() > 0).unwrap_or(true)
}

/// Marks the current thread as running a signal handler until the guard is dropped (nests):
/// pcpu operations then take only async-signal-safe steps, whatever code the handler
/// interrupted.
///
/// [`in_slow_path`] covers a handler that interrupts *pcpu*; this covers one that interrupts
/// anything else (the allocator, a lock of the program's), which pcpu cannot see. Inside the
/// scope [`in_slow_path`] is true, so every operation that would allocate, lock, pin an epoch
/// or register takes its caller's central path instead (an atomic add), and a thread that
/// has not yet resolved its rseq registration does not resolve it (that may allocate its
/// thread-local storage): its operations report [`SlowPath`](crate::SlowPath) until it
/// resolves outside a handler. Opening and closing the scope touch only two thread-locals
/// with `const` initialisers and no destructor.
///
/// ```
/// extern "C" fn on_signal(_: i32) {
///     let _scope = pcpu_rseq::signal_handler_scope();
///     // ... update counters ...
/// }
/// # let _ = on_signal;
/// ```
#[inline]
pub fn signal_handler_scope() -> SignalHandlerScope {
    let _ = HANDLERS.try_with(|d| d.set(d.get().saturating_add(1)));
    SignalHandlerScope {
        _slow: enter_slow_path(),
    }
}

/// An open [`signal_handler_scope`] (it holds a slow-path mark).
#[derive(Debug)]
#[must_use = "the scope ends when the guard is dropped"]
pub struct SignalHandlerScope {
    _slow: SlowPathGuard,
}

impl Drop for SignalHandlerScope {
    #[inline]
    fn drop(&mut self) {
        compiler_fence(Ordering::SeqCst);
        let _ = HANDLERS.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// True inside a [`signal_handler_scope`] of this thread (and during thread-local
/// destruction, the safe answer).
// Read when a thread resolves its registration, which loom models never do.
#[cfg_attr(loom, allow(dead_code))]
#[inline]
pub(crate) fn in_signal_handler() -> bool {
    HANDLERS.try_with(|d| d.get() > 0).unwrap_or(true)
}
