//! Test only: a shared object (`cdylib`) that uses pcpu-counter, for `tests/dlclose.rs`,
//! which loads it with `dlopen`, runs per-CPU adds through it on several threads, and unloads
//! it with `dlclose` while those threads keep running.
//!
//! Its critical-section descriptors (`__rseq_cs`) and abort handlers live in this object. A
//! thread whose rseq area still pointed at one of them after the unload would be killed by the
//! kernel (SIGSEGV) the next time it is preempted or signalled: see `rseq_cs` in
//! `pcpu_rseq::abi`.
//!
//! The C interface: a counter is an opaque pointer from [`pcpu_cdylib_new`], to be freed with
//! [`pcpu_cdylib_free`].

use pcpu_counter::{CounterMode, Domain, PercpuCounter};

/// A per-CPU counter (a header and a slot from the start, so that every add runs a critical
/// section on the rseq backend), or null if it could not be created.
#[no_mangle]
pub extern "C" fn pcpu_cdylib_new() -> *mut PercpuCounter {
    match PercpuCounter::with_mode(Domain::global(), 0, CounterMode::PerCpu) {
        Ok(c) => Box::into_raw(Box::new(c)),
        Err(_) => std::ptr::null_mut(),
    }
}

/// Adds `delta` to the counter.
///
/// # Safety
/// `c` comes from [`pcpu_cdylib_new`] and was not freed.
#[no_mangle]
pub unsafe extern "C" fn pcpu_cdylib_add(c: *const PercpuCounter, delta: i64) {
    // SAFETY: the caller guarantees `c` is a live counter from `pcpu_cdylib_new`.
    unsafe { &*c }.add(delta);
}

/// The counter's exact sum (exact when no add runs concurrently).
///
/// # Safety
/// As for [`pcpu_cdylib_add`].
#[no_mangle]
pub unsafe extern "C" fn pcpu_cdylib_sum(c: *const PercpuCounter) -> i64 {
    // SAFETY: as in `pcpu_cdylib_add`.
    unsafe { &*c }.sum()
}

/// 1 if the counter has a per-CPU slot (its adds run critical sections on rseq), else 0.
///
/// # Safety
/// As for [`pcpu_cdylib_add`].
#[no_mangle]
pub unsafe extern "C" fn pcpu_cdylib_is_per_cpu(c: *const PercpuCounter) -> i32 {
    // SAFETY: as in `pcpu_cdylib_add`.
    i32::from(unsafe { &*c }.is_per_cpu())
}

/// Frees the counter.
///
/// # Safety
/// `c` comes from [`pcpu_cdylib_new`], is freed once, and no other thread uses it.
#[no_mangle]
pub unsafe extern "C" fn pcpu_cdylib_free(c: *mut PercpuCounter) {
    // SAFETY: the caller guarantees `c` came from `Box::into_raw` in `pcpu_cdylib_new` and is
    // freed once.
    drop(unsafe { Box::from_raw(c) });
}

/// How the calling thread runs per-CPU operations in this copy of pcpu: 0 glibc's rseq area,
/// 1 pcpu's own area, 2 rseq mode without an area, 3 the portable backend.
#[no_mangle]
pub extern "C" fn pcpu_cdylib_registration() -> i32 {
    match pcpu_rseq::registration() {
        pcpu_rseq::Registration::Glibc => 0,
        pcpu_rseq::Registration::Own => 1,
        pcpu_rseq::Registration::Unavailable => 2,
        pcpu_rseq::Registration::Portable => 3,
    }
}
