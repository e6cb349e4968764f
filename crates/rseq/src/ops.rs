//! Per-CPU cell operations: add and exchange, dispatched to the rseq or the portable backend.
//!
//! Both take the cells through a *slot word*: an `AtomicUsize` holding the address of CPU 0's
//! cell (CPU `c`'s cell is `c * stride` bytes further), or that address with
//! [`DISABLED`] set. The slot word is loaded *inside* the critical section, so a relocator that
//! changes it and then waits for a grace period ([`crate::synchronize`]) knows that no adder
//! still writes the old cells.

use crate::sync::{AtomicI64, AtomicUsize, Ordering};
use crate::thread;

/// Mark bit of a slot word: per-CPU operation is off; operations report [`SlowPath`].
///
/// Cells are 8-aligned, so bit 0 of a real address is always clear.
pub const DISABLED: usize = 1;

/// The operation did not run on per-CPU memory: the slot word carried [`DISABLED`], a stack
/// was stopped or busy, the CPU was out of range, or this thread has no rseq in rseq mode.
/// The caller takes its own slow path (a shared atomic, a locked pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlowPath;

impl core::fmt::Display for SlowPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("per-CPU operation unavailable; take the slow path")
    }
}

impl std::error::Error for SlowPath {}

/// Adds `delta` to the current CPU's cell.
///
/// On the rseq backend this is one plain `add` to memory inside a restartable sequence; on the
/// portable backend a relaxed `fetch_add` under an epoch guard.
///
/// ```
/// use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
/// let ncpu = pcpu_rseq::possible_cpus();
/// let cells: Vec<AtomicI64> = (0..ncpu).map(|_| AtomicI64::new(0)).collect();
/// let slot = AtomicUsize::new(cells.as_ptr() as usize);
/// for _ in 0..10 {
///     // SAFETY: `slot` points at `ncpu` live i64 cells, 8 bytes apart.
///     unsafe { pcpu_rseq::add(&slot, 8, ncpu, 3) }.expect("slot is not disabled");
/// }
/// let total: i64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
/// assert_eq!(total, 30);
/// ```
///
/// # Errors
/// [`SlowPath`] when the slot word is disabled or the thread cannot run per-CPU operations;
/// nothing was added then.
///
/// # Safety
/// Whenever the slot word does not carry [`DISABLED`], its value plus `c * stride` for every
/// `c < ncpu` must be an 8-aligned `i64` cell that stays allocated until a grace period
/// ([`crate::synchronize`]) has passed after the slot word last held that value. The cells may
/// be read concurrently only through atomic loads.
#[inline]
pub unsafe fn add(
    slot: &AtomicUsize,
    stride: usize,
    ncpu: usize,
    delta: i64,
) -> Result<(), SlowPath> {
    let state = thread::state();
    #[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
    if state > thread::NO_RSEQ {
        // SAFETY: `state` is this thread's registered area; the cells are as the caller
        // guarantees.
        let out =
            unsafe { crate::x86_64::add(state as *mut _, slot.as_ptr(), stride, ncpu, delta) };
        return out.into_result();
    }
    if state == thread::NO_RSEQ {
        return Err(SlowPath);
    }
    // SAFETY: forwarded from the caller.
    unsafe { cold_portable_add(slot, stride, ncpu, delta) }
}

/// [`portable_add`] out of line, so the rseq fast path stays a small leaf.
///
/// # Safety
/// As for [`add`].
#[cold]
#[inline(never)]
unsafe fn cold_portable_add(
    slot: &AtomicUsize,
    stride: usize,
    ncpu: usize,
    delta: i64,
) -> Result<(), SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe { portable_add(slot, stride, ncpu, delta) }
}

/// Adds `delta` to the current CPU's cell, and if the cell then holds `batch` or more in
/// absolute value, empties it and returns what it held, for the caller to add to a central
/// count (Linux's `percpu_counter_add_batch`, as one critical section). Returns `Ok(0)` when
/// nothing was folded. After every call each cell holds less than `batch` in absolute value,
/// except on the portable backend while another thread is between its add and its fold.
///
/// ```
/// use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
/// let ncpu = pcpu_rseq::possible_cpus();
/// let cells: Vec<AtomicI64> = (0..ncpu).map(|_| AtomicI64::new(0)).collect();
/// let slot = AtomicUsize::new(cells.as_ptr() as usize);
/// let mut central = 0;
/// for _ in 0..100 {
///     // SAFETY: `slot` addresses `ncpu` live cells, 8 bytes apart.
///     central += unsafe { pcpu_rseq::add_fold(&slot, 8, ncpu, 1, 32) }.unwrap();
/// }
/// let cells_total: i64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
/// assert_eq!(central + cells_total, 100);
/// assert!(cells.iter().all(|c| c.load(Ordering::Relaxed).abs() < 32));
/// ```
///
/// # Errors
/// [`SlowPath`] as for [`add`]; nothing was changed then.
///
/// # Safety
/// As for [`add`].
#[inline]
pub unsafe fn add_fold(
    slot: &AtomicUsize,
    stride: usize,
    ncpu: usize,
    delta: i64,
    batch: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: forwarded from the caller; offset 0 is CPU 0's cell itself.
    unsafe { add_fold_at(slot, 0, stride, ncpu, delta, batch) }
}

/// [`add_fold`] on the word `offset` bytes into each CPU's cell: for objects of several
/// counters sharing one slot (counter groups).
///
/// # Errors
/// As for [`add_fold`].
///
/// # Safety
/// As for [`add`], with every `value + offset + c * stride` an 8-aligned `i64` cell.
#[inline]
pub unsafe fn add_fold_at(
    slot: &AtomicUsize,
    offset: usize,
    stride: usize,
    ncpu: usize,
    delta: i64,
    batch: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe { add_fold_with_offset(slot, &FoldParams::new(stride, ncpu, batch), offset, delta) }
}

/// Everything [`add_fold_with`] needs besides the slot word and the delta, prepared once
/// (by a counter's domain, say): the cell layout and the fold threshold, with the range check
/// `|cell| < batch` turned into one unsigned compare. The critical section reads it through
/// one pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct FoldParams {
    stride: usize,
    ncpu: usize,
    bias: i64,
    lim: u64,
}

impl FoldParams {
    /// Cells `stride` bytes apart for `ncpu` CPUs, folding at `batch` (values below 1 count
    /// as 1). 32 bytes: it fits beside a 32-byte header in one cache line.
    pub const fn new(stride: usize, ncpu: usize, batch: i64) -> Self {
        let batch = if batch < 1 { 1 } else { batch };
        let bias = batch - 1;
        FoldParams {
            stride,
            ncpu,
            bias,
            lim: (bias as u64).saturating_mul(2),
        }
    }

    /// The batch this was prepared with.
    pub const fn batch(&self) -> i64 {
        self.bias + 1
    }

    /// The same with another batch.
    pub const fn with_batch(self, batch: i64) -> Self {
        FoldParams::new(self.stride, self.ncpu, batch)
    }
}

/// [`add_fold_at`] with prepared parameters, on the word at offset 0 of each cell: the
/// counter fast path.
///
/// # Errors
/// As for [`add_fold`].
///
/// # Safety
/// As for [`add_fold_at`], with stride and CPU count taken from `params`.
#[inline(always)]
pub unsafe fn add_fold_with(
    slot: &AtomicUsize,
    params: &FoldParams,
    delta: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe { add_fold_params(slot, params, None, delta) }
}

/// [`add_fold_with`] on the word `offset` bytes into each cell: counter groups.
///
/// # Errors
/// As for [`add_fold`].
///
/// # Safety
/// As for [`add_fold_at`], with stride, CPU count and offset taken from `params`.
#[inline(always)]
pub unsafe fn add_fold_with_offset(
    slot: &AtomicUsize,
    params: &FoldParams,
    offset: usize,
    delta: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe { add_fold_params(slot, params, Some(offset), delta) }
}

/// # Safety
/// As for [`add_fold_at`]; no offset means offset 0 (one step fewer in the section).
#[inline(always)]
unsafe fn add_fold_params(
    slot: &AtomicUsize,
    params: &FoldParams,
    offset: Option<usize>,
    delta: i64,
) -> Result<i64, SlowPath> {
    let state = thread::state();
    #[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
    if state > thread::NO_RSEQ {
        // SAFETY: as in `add`; `params` is a live reference.
        let out = unsafe {
            crate::x86_64::add_fold(state as *mut _, slot.as_ptr(), params, delta, offset)
        };
        // One test for the common case: committed, no abort, nothing to fold.
        if (out.raw_status | out.value as usize) == 0 {
            return Ok(0);
        }
        return fold_outcome(out.raw_status, out.value);
    }
    if state == thread::NO_RSEQ {
        return Err(SlowPath);
    }
    let offset = offset.unwrap_or(0);
    // SAFETY: forwarded from the caller.
    unsafe {
        cold_portable_add_fold(
            slot,
            offset,
            params.stride,
            params.ncpu,
            delta,
            params.batch(),
        )
    }
}

/// The uncommon outcomes of an rseq `add_fold`: aborts to count, the slow path, a fold.
#[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
#[cold]
#[inline(never)]
fn fold_outcome(raw_status: usize, value: i64) -> Result<i64, SlowPath> {
    if raw_status >> 1 != 0 {
        thread::record_aborts(raw_status >> 1);
    }
    if raw_status & 1 == 0 {
        Ok(value)
    } else {
        Err(SlowPath)
    }
}

/// The portable [`add_fold_with`], out of line so the rseq fast path stays a small leaf.
///
/// # Safety
/// As for [`add_fold_at`].
#[cold]
#[inline(never)]
unsafe fn cold_portable_add_fold(
    slot: &AtomicUsize,
    offset: usize,
    stride: usize,
    ncpu: usize,
    delta: i64,
    batch: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_portable_cell(slot, offset, stride, ncpu, |cell| {
            let now = cell.fetch_add(delta, Ordering::Relaxed).wrapping_add(delta);
            if now.unsigned_abs() >= batch.unsigned_abs() {
                // Take everything the cell holds (other portable adders may have added since).
                cell.swap(0, Ordering::Relaxed)
            } else {
                0
            }
        })
    }
}

/// Stores `new` into the current CPU's cell and returns what it held: the batch-fold primitive
/// (take this CPU's part, move it to a central count).
///
/// # Errors
/// [`SlowPath`] as for [`add`]; nothing was changed then.
///
/// # Safety
/// As for [`add`].
#[inline]
pub unsafe fn exchange(
    slot: &AtomicUsize,
    stride: usize,
    ncpu: usize,
    new: i64,
) -> Result<i64, SlowPath> {
    let state = thread::state();
    #[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
    if state > thread::NO_RSEQ {
        // SAFETY: as in `add`.
        let out =
            unsafe { crate::x86_64::exchange(state as *mut _, slot.as_ptr(), stride, ncpu, new) };
        return out.into_result();
    }
    if state == thread::NO_RSEQ {
        return Err(SlowPath);
    }
    // SAFETY: forwarded from the caller.
    unsafe { portable_exchange(slot, stride, ncpu, new) }
}

/// Runs `op` on the current CPU's cell under an epoch guard, unless the slot is disabled.
///
/// # Safety
/// As for [`add`].
#[inline]
unsafe fn with_portable_cell<R>(
    slot: &AtomicUsize,
    offset: usize,
    stride: usize,
    ncpu: usize,
    op: impl FnOnce(&AtomicI64) -> R,
) -> Result<R, SlowPath> {
    if ncpu == 0 {
        return Err(SlowPath);
    }
    // The guard is the portable grace period's read side: a relocator that disabled or
    // replaced the slot word waits (crate::synchronize) until every guard pinned before it has
    // been dropped, so the old cells see no write after that.
    let _guard = crate::epoch::pin();
    let base = slot.load(Ordering::Acquire);
    if base & DISABLED != 0 {
        return Err(SlowPath);
    }
    let cpu = thread::portable_cpu() % ncpu;
    // SAFETY: the slot is not disabled, so `base + offset + cpu * stride` is a live, aligned i64 cell
    // (caller's guarantee), kept alive by the pinned guard; AtomicI64 has i64's layout.
    let cell = unsafe { &*((base + offset + cpu * stride) as *const AtomicI64) };
    Ok(op(cell))
}

/// The portable [`add`]: a relaxed `fetch_add` on the cell of the CPU this thread last ran on.
///
/// It runs whatever the process mode, so it must not be used on cells that rseq threads update
/// at the same time (an rseq add is not atomic against another CPU): use [`add`], which picks
/// the process's backend. This entry point is for models and tests on the portable backend.
///
/// # Safety
/// As for [`add`].
#[inline]
pub unsafe fn portable_add(
    slot: &AtomicUsize,
    stride: usize,
    ncpu: usize,
    delta: i64,
) -> Result<(), SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_portable_cell(slot, 0, stride, ncpu, |cell| {
            cell.fetch_add(delta, Ordering::Relaxed);
        })
    }
}

/// The portable [`exchange`]: an atomic swap. The same caution as for [`portable_add`].
///
/// # Safety
/// As for [`add`].
#[inline]
pub unsafe fn portable_exchange(
    slot: &AtomicUsize,
    stride: usize,
    ncpu: usize,
    new: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_portable_cell(slot, 0, stride, ncpu, |cell| {
            cell.swap(new, Ordering::Relaxed)
        })
    }
}

/// The CPU this thread runs on, from the cheapest source: the rseq area's `cpu_id`, the
/// simulated CPU ([`crate::simulate_cpu`]), or `sched_getcpu`.
///
/// The answer may be stale by the time it is used (the thread can migrate); use it for
/// statistics and placement hints, never to pick a cell to write without atomics.
///
/// ```
/// let cpu = pcpu_rseq::current_cpu();
/// assert!(cpu < pcpu_rseq::possible_cpus() || pcpu_rseq::mode() == pcpu_rseq::Mode::Portable);
/// ```
pub fn current_cpu() -> usize {
    let state = thread::state();
    #[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
    if state > thread::NO_RSEQ {
        // SAFETY: `state` is this thread's live, registered area.
        let cpu = unsafe { crate::abi::read_cpu_id(state as *const _) };
        if let Ok(cpu) = usize::try_from(cpu) {
            return cpu;
        }
    }
    let _ = state;
    thread::portable_cpu()
}
