//! Per-CPU cell operations: add-and-fold, dispatched to the rseq or the portable backend.
//!
//! Three entry points, one critical section (`arch::add_fold`, one `asm!` body per
//! architecture) and one portable body: [`add_fold_with`] (parameters anywhere, offset 0),
//! [`add_fold_with_offset`] (one word of a multi-word cell: counter groups) and
//! [`add_fold_beside`] (parameters right after the slot word: a counter's hot path). A plain
//! add is a fold with a batch of [`MAX_FOLD`]; a fold at batch 1 takes a CPU's part.
//!
//! Each takes the cells through a *slot word*: an `AtomicUsize` holding the address of CPU 0's
//! cell (CPU `c`'s cell is `c * stride` bytes further) with [`LIVE`] set ([`slot_word`]), or a
//! word without it (an address or 0: per-CPU operation off). The slot word is loaded *inside*
//! the critical section, so a relocator that changes it and then waits for a grace period
//! ([`crate::synchronize`]) knows that no adder still writes the old cells.
//!
//! The mark says *live* rather than *disabled* so that zeroed memory is a disabled slot word:
//! a header in a freshly mapped page, a `static` one, or one whose page was handed back to the
//! OS (it reads as zeros) sends its adders to their slow path. The sections pay nothing for
//! it: they address the cell at `word - 1 + cpu * stride`, a displacement the addressing mode
//! adds for free.

use crate::fold_params::{reach, FoldParams, MAX_FOLD};
use crate::sync::{AtomicI64, AtomicUsize, Ordering};
use crate::{arch, thread, thread_state};

/// Mark bit of a slot word: set, the word's other bits address live cells and per-CPU
/// operation is on; clear, operations report [`SlowPath`].
///
/// Cells are 8-aligned, so bit 0 of a real address is always clear.
pub const LIVE: usize = 1;

/// A slot word with no cells: per-CPU operation off. Zero, so that zeroed memory (a new
/// page, a discarded one, a `static`) holds disabled slot words.
pub const DISABLED: usize = 0;

/// The live slot word of cells at `cells` (8-aligned: CPU 0's cell): `cells | LIVE`.
#[inline(always)]
pub const fn slot_word(cells: usize) -> usize {
    debug_assert!(
        cells != 0 && cells % 8 == 0,
        "cells must be a non-null, 8-aligned address"
    );
    cells | LIVE
}

/// The cells a slot word names, live or not (0 if none): the word without [`LIVE`].
#[inline(always)]
pub const fn slot_cells(word: usize) -> usize {
    word & !LIVE
}

/// The operation did not run on per-CPU memory: the slot word lacked [`LIVE`], a stack
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

/// Adds `delta` to the current CPU's cell, and if the cell then holds the batch or more in
/// absolute value, empties it and returns what it held, for the caller to add to a central
/// count (Linux's `percpu_counter_add_batch`, as one critical section). Returns `Ok(0)` when
/// nothing was folded. Stride, lane bound and batch come from `params`; the cell is the word at
/// offset 0 of each CPU's part (a counter's `add_batch`; its `add` uses [`add_fold_beside`],
/// a group's [`add_fold_with_offset`]). After every call each cell holds less than the largest
/// batch used on these cells in absolute value (less than the batch if all calls use the same
/// one), except on the portable backend while another thread is between its add and its fold.
///
/// On the rseq backend this is one plain add to memory inside a restartable sequence (and a
/// store of 0 when it folds); on the portable backend a relaxed `fetch_add` (and `swap`) under
/// an epoch guard. A batch of [`MAX_FOLD`] never folds (a plain per-CPU add); a batch of 1
/// folds at every call whose result is non-zero in the delta's direction (a delta of 0 at
/// batch 1 takes a positive part on the rseq backend, any non-zero part on the portable one).
///
/// Memory ordering: a non-zero result is returned after a release fence, so the emptying of
/// the cell happens before anything the caller stores next. A caller that adds the result to
/// a central count (with any ordering) and a reader that loads that count with `Acquire` and
/// then the cells therefore never count the fold twice, on weak memory (aarch64) too.
///
/// ```
/// use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
/// use pcpu_rseq::FoldParams;
/// let ncpu = pcpu_rseq::possible_cpus();
/// let cells: Vec<AtomicI64> = (0..ncpu).map(|_| AtomicI64::new(0)).collect();
/// let slot = AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize));
/// let params = FoldParams::new(8, ncpu, 32);
/// let mut central = 0;
/// for _ in 0..100 {
///     // SAFETY: `slot` addresses `ncpu` live cells, 8 bytes apart, as `params` says.
///     central += unsafe { pcpu_rseq::add_fold_with(&slot, &params, 1) }.unwrap();
/// }
/// let cells_total: i64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
/// assert_eq!(central + cells_total, 100);
/// assert!(cells.iter().all(|c| c.load(Ordering::Relaxed).abs() < 32));
/// ```
///
/// # Errors
/// [`SlowPath`] when the slot word is disabled, the current CPU is at or above the lane bound,
/// the thread cannot run per-CPU operations, or `|delta| > ` [`MAX_FOLD`] (the cell could
/// overflow); nothing was changed then.
///
/// # Safety
/// Whenever the slot word carries [`LIVE`], [`slot_cells`] of it plus `c * params.stride()`
/// for every `c < params.ncpu()` (the lane bound may grow: every bound it takes) must be an
/// 8-aligned `i64` cell that stays allocated until a grace period ([`crate::synchronize`]) has
/// passed after the slot word last held that value. The cells may be read concurrently only
/// through atomic loads, and written only through these functions (or by their owner after a
/// grace period).
#[inline(always)]
pub unsafe fn add_fold_with(
    slot: &AtomicUsize,
    params: &FoldParams,
    delta: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe { add_fold_params::<0, { reach::BESIDE }>(slot, params, None, delta) }
}

/// [`add_fold_with`] on the word `offset` bytes into each CPU's cell: objects of several
/// counters sharing one slot (counter groups).
///
/// # Errors
/// As for [`add_fold_with`].
///
/// # Safety
/// As for [`add_fold_with`], with every `slot_cells(value) + offset + c * stride` an
/// 8-aligned `i64` cell.
#[inline(always)]
pub unsafe fn add_fold_with_offset(
    slot: &AtomicUsize,
    params: &FoldParams,
    offset: usize,
    delta: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: forwarded from the caller.
    unsafe { add_fold_params::<0, { reach::BESIDE }>(slot, params, Some(offset), delta) }
}

/// [`add_fold_with`] for parameters kept `PARAMS_AFTER_SLOT` bytes after the slot word, as
/// a counter keeps them beside its header: the critical section then addresses the slot word
/// and the parameters through one register.
///
/// `slot` is a raw pointer because the parameters are read through it: it must come from a
/// pointer to the whole structure that holds both (a `&AtomicUsize` to the slot field would
/// only permit access to those 8 bytes).
///
/// ```
/// use pcpu_rseq::{sync::{AtomicI64, AtomicUsize, Ordering}, FoldParams};
/// #[repr(C)]
/// struct Site {
///     slot: AtomicUsize,
///     params: FoldParams,
/// }
/// let ncpu = pcpu_rseq::possible_cpus();
/// let cells: Vec<AtomicI64> = (0..ncpu).map(|_| AtomicI64::new(0)).collect();
/// let site = Site {
///     slot: AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize)),
///     params: FoldParams::new(8, ncpu, 4),
/// };
/// // The slot word is the first field: a pointer to the struct is one to it, and it may
/// // reach the parameters too.
/// let slot = (&site as *const Site).cast::<AtomicUsize>();
/// let mut central = 0;
/// for _ in 0..10 {
///     // SAFETY: `site.params` is 8 bytes after `site.slot` (repr(C)) and `slot` covers
///     // `site`; the cells are as for `add_fold_with`.
///     central += unsafe { pcpu_rseq::add_fold_beside::<8>(slot, 1) }.unwrap();
/// }
/// let cells_total: i64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
/// assert_eq!(central + cells_total, 10);
/// ```
///
/// # Errors
/// As for [`add_fold_with`].
///
/// # Safety
/// As for [`add_fold_with`], with `slot` pointing at a live slot word, and the parameters
/// the [`FoldParams`] that starts `PARAMS_AFTER_SLOT` bytes after it, inside the same
/// allocation and within `slot`'s provenance (so `PARAMS_AFTER_SLOT` is at least 8 and a
/// multiple of 8).
#[inline(always)]
pub unsafe fn add_fold_beside<const PARAMS_AFTER_SLOT: usize>(
    slot: *const AtomicUsize,
    delta: i64,
) -> Result<i64, SlowPath> {
    const {
        assert!(PARAMS_AFTER_SLOT >= 8 && PARAMS_AFTER_SLOT % 8 == 0);
    }
    // SAFETY: forwarded from the caller; the parameters are where `PARAMS_AFTER_SLOT` says,
    // within `slot`'s provenance.
    unsafe {
        add_fold_params::<PARAMS_AFTER_SLOT, { reach::BESIDE }>(
            slot,
            core::ptr::null(),
            None,
            delta,
        )
    }
}

/// [`add_fold_with`] for parameters whose *address* is kept `PTR_AFTER_SLOT` bytes after the
/// slot word: the critical section loads it from there, so one register addresses the slot
/// word and the pointer, and the parameters may be shared by many slot words (pcpu-counter's
/// headers pointed at their domain's parameters for the batch they fold at, before
/// [`add_fold_indexed`] let them keep a 2-byte key instead). One load more than
/// [`add_fold_beside`], no register more.
///
/// The pointer is read once per attempt, inside the section: it may be changed to other live
/// parameters for the same cells while sections run (each attempt uses the old or the new),
/// as long as every parameters it ever pointed at stay alive while sections may read them.
///
/// ```
/// use pcpu_rseq::{sync::{AtomicI64, AtomicUsize, Ordering}, FoldParams};
/// #[repr(C)]
/// struct Site {
///     slot: AtomicUsize,
///     params: core::sync::atomic::AtomicPtr<FoldParams>,
/// }
/// let ncpu = pcpu_rseq::possible_cpus();
/// let cells: Vec<AtomicI64> = (0..ncpu).map(|_| AtomicI64::new(0)).collect();
/// let shared = FoldParams::new(8, ncpu, 4);
/// let site = Site {
///     slot: AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize)),
///     params: core::sync::atomic::AtomicPtr::new(&shared as *const FoldParams as *mut _),
/// };
/// let slot = (&site as *const Site).cast::<AtomicUsize>();
/// let mut central = 0;
/// for _ in 0..10 {
///     // SAFETY: the address of `shared` is 8 bytes after `site.slot` (repr(C)), `slot`
///     // covers `site`, and `shared` outlives the loop; the cells are as for
///     // `add_fold_with`.
///     central += unsafe { pcpu_rseq::add_fold_through::<8>(slot, 1) }.unwrap();
/// }
/// let cells_total: i64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
/// assert_eq!(central + cells_total, 10);
/// ```
///
/// # Errors
/// As for [`add_fold_with`].
///
/// # Safety
/// As for [`add_fold_with`], with `slot` pointing at a live slot word and the word
/// `PTR_AFTER_SLOT` bytes after it (inside the same allocation and within `slot`'s
/// provenance, so `PTR_AFTER_SLOT` is at least 8 and a multiple of 8) an
/// [`AtomicPtr`](core::sync::atomic::AtomicPtr)`<FoldParams>` holding the address of live
/// [`FoldParams`] for the slot's cells, as do all addresses it will hold while this call runs.
/// (The portable backend loads it `Relaxed`; the section with a plain load.)
#[inline(always)]
pub unsafe fn add_fold_through<const PTR_AFTER_SLOT: usize>(
    slot: *const AtomicUsize,
    delta: i64,
) -> Result<i64, SlowPath> {
    const {
        assert!(PTR_AFTER_SLOT >= 8 && PTR_AFTER_SLOT % 8 == 0);
    }
    // SAFETY: forwarded from the caller; the pointer is where `PTR_AFTER_SLOT` says, within
    // `slot`'s provenance.
    unsafe {
        add_fold_params::<PTR_AFTER_SLOT, { reach::THROUGH }>(slot, core::ptr::null(), None, delta)
    }
}

/// [`add_fold_with`] for parameters in the [fold table](crate::FoldEntry) whose *key* is
/// kept `KEY_AFTER_SLOT` bytes after the slot word, as an [`AtomicU16`](core::sync::atomic::AtomicU16):
/// two bytes where [`add_fold_through`] needs a pointer's eight (pcpu-counter's header is 16
/// bytes thanks to it). The section loads the key, then reads the parameters at the table's
/// address plus the key scaled: the same loads and registers as [`add_fold_through`] (on
/// x86_64 the table's address takes the register the CPU id would, the id the one the cell
/// takes later).
///
/// The key is read once per attempt, inside the section: it may be changed to another
/// entry's for the same cells while sections run (each attempt uses the old or the new).
///
/// ```
/// use pcpu_rseq::{sync::{AtomicI64, AtomicUsize, Ordering}, FoldParams};
/// use core::sync::atomic::AtomicU16;
/// #[repr(C)]
/// struct Site {
///     slot: AtomicUsize,
///     key: AtomicU16,
/// }
/// let ncpu = pcpu_rseq::possible_cpus();
/// let cells: Vec<AtomicI64> = (0..ncpu).map(|_| AtomicI64::new(0)).collect();
/// let entries = pcpu_rseq::reserve_fold_entries([(FoldParams::new(8, ncpu, 4), 0)]).unwrap();
/// let site = Site {
///     slot: AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize)),
///     key: AtomicU16::new(entries[0].key()),
/// };
/// let slot = (&site as *const Site).cast::<AtomicUsize>();
/// let mut central = 0;
/// for _ in 0..10 {
///     // SAFETY: the key 8 bytes after `site.slot` (repr(C)) names an entry that describes
///     // these cells, and `slot` covers `site`; the cells are as for `add_fold_with`.
///     central += unsafe { pcpu_rseq::add_fold_indexed::<8>(slot, 1) }.unwrap();
/// }
/// let cells_total: i64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
/// assert_eq!(central + cells_total, 10);
/// ```
///
/// # Errors
/// As for [`add_fold_with`]; also whenever the key is 0 (entry 0's lane bound is 0).
///
/// # Safety
/// As for [`add_fold_with`], with `slot` pointing at a live slot word and the two bytes
/// `KEY_AFTER_SLOT` after it (inside the same allocation and within `slot`'s provenance, so
/// `KEY_AFTER_SLOT` is at least 8 and even) an `AtomicU16` holding 0 or the key of a
/// [`FoldEntry`](crate::FoldEntry) (always a multiple of 8: the section scales any other
/// value without checking it) whose parameters describe the slot's cells, as do all keys it
/// will hold while this call runs. (The portable backend loads it `Relaxed`; the section with a
/// plain load.)
#[inline(always)]
pub unsafe fn add_fold_indexed<const KEY_AFTER_SLOT: usize>(
    slot: *const AtomicUsize,
    delta: i64,
) -> Result<i64, SlowPath> {
    const {
        assert!(KEY_AFTER_SLOT >= 8 && KEY_AFTER_SLOT % 2 == 0);
    }
    // SAFETY: forwarded from the caller; the key is where `KEY_AFTER_SLOT` says, within
    // `slot`'s provenance.
    unsafe {
        add_fold_params::<KEY_AFTER_SLOT, { reach::INDEXED }>(slot, core::ptr::null(), None, delta)
    }
}

/// # Safety
/// As for [`add_fold_with_offset`], `slot` pointing at a live slot word; no offset means offset 0 (one
/// step fewer in the section). With `PARAMS_AFTER_SLOT` 0, `params` points at live
/// parameters; otherwise it is ignored and the parameters (`REACH` [`reach::BESIDE`]), a
/// word holding their address ([`reach::THROUGH`]) or a `u16` holding their fold-table key
/// ([`reach::INDEXED`]) lie that many bytes after `slot`, in the same allocation and within
/// `slot`'s provenance.
#[inline(always)]
unsafe fn add_fold_params<const PARAMS_AFTER_SLOT: usize, const REACH: u8>(
    slot: *const AtomicUsize,
    params: *const FoldParams,
    offset: Option<usize>,
    delta: i64,
) -> Result<i64, SlowPath> {
    if delta.unsigned_abs() > MAX_FOLD as u64 {
        // `cell + delta` could overflow: the caller's slow path adds it centrally.
        return Err(SlowPath);
    }
    let state = thread::state();
    if arch::HAS_RSEQ_ASM && state > thread_state::NO_RSEQ {
        let area = state as *mut _;
        // SAFETY: `state` is this thread's registered area; the cells are as the caller
        // guarantees; the parameters are live where `PARAMS_AFTER_SLOT` says; the
        // variant matches the sign of `delta`, and `|delta| ≤ MAX_FOLD`. (For a constant
        // delta, as in `inc`, the sign test disappears.)
        let out = unsafe {
            if delta >= 0 {
                arch::add_fold::<PARAMS_AFTER_SLOT, REACH, true>(
                    area,
                    slot.cast::<usize>(),
                    params,
                    delta,
                    offset,
                )
            } else {
                arch::add_fold::<PARAMS_AFTER_SLOT, REACH, false>(
                    area,
                    slot.cast::<usize>(),
                    params,
                    delta,
                    offset,
                )
            }
        };
        // One test for the common case: committed, no abort, nothing to fold.
        if out.raw_status == 0 {
            return Ok(0);
        }
        // Next, the slow path without aborts (a disabled slot: atomic-mode counters), whose
        // caller has an atomic add to do at once.
        if out.raw_status == 1 {
            return Err(SlowPath);
        }
        return fold_outcome(out.raw_status, out.value);
    }
    if state == thread_state::NO_RSEQ {
        return Err(SlowPath);
    }
    // SAFETY: as above; computed only here, so the rseq path spends no register on it. The
    // offset arithmetic stays on the raw pointer, whose provenance covers the parameters (or,
    // `THROUGH`, the aligned `AtomicPtr` word that holds their live address; `INDEXED`, the
    // aligned `AtomicU16` that holds their key).
    let params = unsafe {
        &*if PARAMS_AFTER_SLOT == 0 {
            params
        } else if REACH == reach::INDEXED {
            let key = (*slot
                .cast::<u8>()
                .add(PARAMS_AFTER_SLOT)
                .cast::<core::sync::atomic::AtomicU16>())
            .load(Ordering::Relaxed);
            crate::fold_table::params_at(key) as *const FoldParams
        } else if REACH == reach::THROUGH {
            (*slot
                .cast::<u8>()
                .add(PARAMS_AFTER_SLOT)
                .cast::<core::sync::atomic::AtomicPtr<FoldParams>>())
            .load(Ordering::Relaxed)
        } else {
            slot.cast::<u8>()
                .add(PARAMS_AFTER_SLOT)
                .cast::<FoldParams>()
        }
    };
    let offset = offset.unwrap_or(0);
    // SAFETY: forwarded from the caller: `slot` is a live slot word.
    unsafe {
        cold_portable_add_fold(
            &*slot,
            offset,
            params.stride(),
            params.ncpu(),
            delta,
            params.batch(),
        )
    }
}

/// The uncommon outcomes of an rseq `add_fold`: aborts to count, the slow path, a fold (the
/// status bits are described at `arch::FoldOutcome`).
#[cold]
#[inline(never)]
fn fold_outcome(raw_status: usize, value: i64) -> Result<i64, SlowPath> {
    if raw_status >> 2 != 0 {
        thread::record_aborts(raw_status >> 2);
    }
    if raw_status & 1 != 0 {
        Err(SlowPath)
    } else if raw_status & 2 != 0 {
        folded();
        Ok(value)
    } else {
        Ok(0)
    }
}

/// The portable [`add_fold_with`], out of line so the rseq fast path stays a small leaf.
///
/// # Safety
/// As for [`add_fold_with_offset`].
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
                let taken = cell.swap(0, Ordering::Relaxed);
                // The caller adds `taken` to a central count next: see `folded`.
                folded();
                taken
            } else {
                0
            }
        })
    }
}

/// Orders the emptying of a cell before whatever the caller stores next (the central add of
/// the value taken out of it), so that a reader that loads the central count with `Acquire`
/// and then the cells, as `sum()` does, and sees the fold in the central count, also sees
/// the emptied cell: a fold may be missed by a reader (it is in flight) but never counted
/// twice. A release fence pairs with that acquire load whatever the ordering of the caller's
/// add (every later read-modify-write of the count continues its release sequence). An
/// ordering on the swap itself could not do this: a release or acq-rel swap orders what came
/// before it, not the store after it (`tests/loom.rs`, `fold_is_never_counted_twice_by_a_reader`
/// fails with one). Free on x86_64 (a compiler barrier under TSO); `dmb ish` on aarch64, paid
/// once per fold, not per add.
#[inline(always)]
fn folded() {
    crate::sync::fence(Ordering::Release);
}

/// Runs `op` on the current CPU's cell under an epoch guard, unless the slot is disabled.
///
/// # Safety
/// As for [`add_fold_with_offset`].
#[inline]
unsafe fn with_portable_cell<R>(
    slot: &AtomicUsize,
    offset: usize,
    stride: usize,
    ncpu: usize,
    op: impl FnOnce(&AtomicI64) -> R,
) -> Result<R, SlowPath> {
    // A signal handler that interrupted a slow path of this thread (this very section's pin,
    // say) must not pin: the caller's central count takes the update (`crate::reentry`).
    if ncpu == 0 || crate::in_slow_path() {
        return Err(SlowPath);
    }
    let _busy = crate::enter_slow_path();
    // The guard is the portable grace period's read side: a relocator that disabled or
    // replaced the slot word waits (crate::synchronize) until every guard pinned before it has
    // been dropped, so the old cells see no write after that.
    let _guard = crate::epoch::pin();
    let word = slot.load(Ordering::Acquire);
    if word & LIVE == 0 {
        return Err(SlowPath);
    }
    let base = slot_cells(word);
    let cpu = match thread::simulated_cpu() {
        // A simulated CPU stands for an rseq thread on that lane: at or above the lane bound
        // it takes the slow path, as the rseq section does, so that tests on simulated CPUs
        // drive the callers' lane-raising slow paths. Real portable threads file their adds
        // under the CPU modulo the bound (any cell is correct for an atomic add).
        Some(cpu) if cpu >= ncpu => return Err(SlowPath),
        Some(cpu) => cpu,
        None => thread::portable_cpu() % ncpu,
    };
    // SAFETY: the slot word is live, so `base + offset + cpu * stride` is a live, aligned i64 cell
    // (caller's guarantee), kept alive by the pinned guard; AtomicI64 has i64's layout.
    let cell = unsafe { &*((base + offset + cpu * stride) as *const AtomicI64) };
    Ok(op(cell))
}

/// The CPU this thread runs on, from its rseq area's `cpu_id`, if the thread already runs
/// its per-CPU operations through rseq: one thread-local load and one load of the area, never
/// a registration, a syscall or a lock, cheap enough for every add. `None` otherwise (before
/// the thread's first per-CPU operation resolved its backend, on the portable backend or a
/// simulated CPU, in rseq mode without an area, and always under loom): [`current_cpu`]
/// answers then, at a higher price.
///
/// Always the kernel's `cpu_id`, whatever [`crate::id_source`] indexes lanes by: the CPU
/// whose cache holds what the thread writes now. Stale as soon as it is read, as
/// [`current_cpu`]: a hint for heuristics (pcpu-counter's lazy mode compares it with the CPU
/// that last updated a counter), never a cell index.
///
/// ```
/// if let Some(cpu) = pcpu_rseq::registered_cpu_id() {
///     assert!((cpu as usize) < pcpu_rseq::possible_cpus());
/// }
/// ```
#[inline(always)]
pub fn registered_cpu_id() -> Option<u32> {
    #[cfg(not(loom))]
    {
        let state = thread_state::word();
        if state > thread_state::NO_RSEQ {
            // SAFETY: a state above `NO_RSEQ` is the address of this thread's live, registered
            // area (glibc's for the thread's life; our own until its TLS destructor, which
            // first sets the state to `NO_RSEQ`).
            let id = unsafe { crate::abi::read_cpu_id(state as *const crate::abi::RseqArea) };
            // Never negative here: the kernel wrote the id when it accepted the registration
            // (the area is only adopted with an id), and until it ends.
            debug_assert!(id >= 0);
            return Some(id as u32);
        }
    }
    None
}

/// The lane this thread's per-CPU operations use now, from the cheapest source: the rseq
/// area's id field (`mm_cid` or `cpu_id`, whichever the process indexes lanes by:
/// [`crate::id_source`]), the simulated CPU ([`crate::simulate_cpu`]), or `sched_getcpu`.
///
/// The answer may be stale by the time it is used (the thread can migrate, and another thread
/// of the process may take over its `mm_cid`): use it for statistics and placement hints,
/// never to pick a cell to write without atomics. A section re-reads the id itself.
///
/// ```
/// let cpu = pcpu_rseq::current_cpu();
/// assert!(cpu < pcpu_rseq::possible_cpus() || pcpu_rseq::mode() == pcpu_rseq::Mode::Portable);
/// ```
pub fn current_cpu() -> usize {
    let state = thread::state();
    if state > thread_state::NO_RSEQ {
        // SAFETY: `state` is this thread's live, registered area, and the id offset is that
        // of one of its 4-byte, 4-aligned kernel-owned fields (`cpu_id` or `mm_cid`), read
        // volatile as the kernel writes it. `mm_cid` is below the CPU count, so its `u32`
        // reads the same as an `i32`.
        let cpu = unsafe { core::ptr::read_volatile((state + arch::id_offset()) as *const i32) };
        if let Ok(cpu) = usize::try_from(cpu) {
            return cpu;
        }
    }
    let _ = state;
    thread::portable_cpu()
}
