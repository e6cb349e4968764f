//! Heap blocks for counter headers: fallible allocation, and freeing either at once or after
//! an epoch grace period (when a compactor may still hold the header's address).

use crate::CounterError;
use pcpu_migrate::{MigrateError, Release};
use std::alloc::Layout;
use std::ptr::NonNull;

/// Allocates and initialises a `T`, or reports the allocator's failure instead of aborting.
pub(crate) fn try_box<T>(value: T) -> Result<NonNull<T>, CounterError> {
    let layout = Layout::new::<T>();
    // SAFETY: the headers allocated here have a non-zero size.
    let raw = unsafe { std::alloc::alloc(layout) } as *mut T;
    let ptr = NonNull::new(raw).ok_or(CounterError::OutOfMemory)?;
    // SAFETY: `raw` is a fresh allocation with `T`'s layout.
    unsafe { raw.write(value) };
    Ok(ptr)
}

/// Drops and frees a block from [`try_box`]: now if `detached` says no compactor can hold its
/// address, else after pcpu's epoch grace period.
///
/// # Safety
/// `ptr` came from [`try_box`], its header was just detached with result `detached`, and
/// nothing else refers to it.
pub(crate) unsafe fn retire<T: 'static>(ptr: NonNull<T>, detached: Result<Release, MigrateError>) {
    let raw = ptr.as_ptr();
    let free = move |raw: *mut T| {
        // SAFETY: `raw` is the caller's block, allocated with `T`'s layout, referenced by no
        // one (after the grace period, if one was needed).
        unsafe {
            raw.drop_in_place();
            std::alloc::dealloc(raw as *mut u8, Layout::new::<T>());
        }
    };
    if matches!(detached, Ok(Release::Now)) {
        free(raw);
        return;
    }
    let addr = raw as usize;
    let guard = pcpu_rseq::epoch::pin();
    // SAFETY: the closure frees the caller's block after pcpu's grace period, when no
    // compactor can still look at it; it captures only an address.
    unsafe { guard.defer_unchecked(move || free(addr as *mut T)) };
}
