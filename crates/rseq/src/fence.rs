//! Grace periods: waiting until no per-CPU operation that started earlier is still running.
//!
//! - rseq backend: a membarrier rseq fence ([`crate::membarrier`]), which restarts or waits out
//!   every critical section in flight.
//! - portable backend: crossbeam-epoch, with pcpu's own collector ([`crate::epoch`]). Every
//!   portable operation runs pinned; a grace period
//!   defers a flag and flushes until the collector has run it, which it does only after every
//!   guard pinned before the deferral is gone.
//!
//! When simulated CPUs are in use beside rseq threads, both are waited for.

use crate::sync::{yield_now, AtomicBool, Ordering};
#[cfg(not(loom))]
use crate::thread::PORTABLE_USED;
use std::io;
use std::sync::Arc;

/// Waits until every per-CPU operation ([`crate::add_fold_with`] and its kin) that began
/// before this call has finished or been restarted; after it returns, such an operation can
/// no longer write to cells whose slot word was changed before the call.
///
/// Must not be called from inside a per-CPU operation (it cannot be: none takes a closure).
///
/// # Errors
/// The membarrier error, if the kernel refuses the fence (it should not once rseq mode was
/// chosen: registration was checked then, and re-done after a fork).
pub fn synchronize() -> io::Result<()> {
    if crate::mode() == crate::Mode::Rseq {
        crate::membarrier::fence_all()?;
    }
    if portable_in_use() {
        epoch_grace_period();
    }
    Ok(())
}

/// Whether any thread may run portable operations. The caller has just changed a slot word:
/// the fence orders that store before this load, and a thread turning portable sets the flag
/// before its first operation pins (a full fence) and loads a slot word. So either we see the
/// flag, or that thread sees the changed slot word. Under loom every thread is portable.
fn portable_in_use() -> bool {
    #[cfg(loom)]
    {
        true
    }
    #[cfg(not(loom))]
    {
        core::sync::atomic::fence(Ordering::SeqCst);
        PORTABLE_USED.load(Ordering::SeqCst)
    }
}

/// Like [`synchronize`], but only for operations on one lane: with rseq and lanes by CPU id
/// ([`crate::IdSource::CpuId`]) a fence of that CPU alone (one IPI); with lanes by `mm_cid`,
/// whose holder may run on any CPU, a fence of every CPU, as [`synchronize`].
///
/// # Errors
/// As for [`synchronize`].
pub fn fence_cpu(cpu: usize) -> io::Result<()> {
    if crate::mode() == crate::Mode::Rseq {
        fence_lane(cpu)?;
    }
    if portable_in_use() {
        epoch_grace_period();
    }
    Ok(())
}

/// Waits for one grace period of pcpu's epoch collector ([`crate::epoch`]): every guard of it
/// pinned before the call has been dropped when this returns. Must not be called while the
/// calling thread holds such a guard.
pub fn epoch_grace_period() {
    let done = Arc::new(AtomicBool::new(false));
    {
        let guard = crate::epoch::pin();
        let flag = Arc::clone(&done);
        guard.defer(move || flag.store(true, Ordering::Release));
        guard.flush();
    }
    while !done.load(Ordering::Acquire) {
        let guard = crate::epoch::pin();
        guard.flush();
        drop(guard);
        yield_now();
    }
}

/// The membarrier rseq fence for the sections on lane `lane` (rseq mode): the CPU of that id
/// when lanes follow CPU ids; every CPU when they follow `mm_cid`, since a concurrency id
/// says nothing about where its thread runs.
pub(crate) fn fence_lane(lane: usize) -> io::Result<()> {
    match crate::id_source() {
        crate::IdSource::CpuId => crate::membarrier::fence_cpu(lane),
        crate::IdSource::MmCid => crate::membarrier::fence_all(),
    }
}
