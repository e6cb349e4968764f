//! The architecture boundary: the only place that names an architecture.
//!
//! One module per architecture holds its critical sections (one `asm!` block each), its
//! thread pointer and its rseq signature; exactly one of them is compiled in as `imp`, chosen
//! by the one `cfg` per module below. Every other target, and `--cfg loom` (asm cannot run
//! inside a model), gets [`none`](self#), whose [`HAS_RSEQ_ASM`] is `false` and whose sections
//! are never called: the callers (`ops.rs`, `stack.rs`, `thread.rs`, `native.rs`) test
//! `HAS_RSEQ_ASM` (a constant, so the dead branch disappears) and are the same code on every
//! target, which `cargo check` on non-Linux targets therefore type-checks too.
//!
//! Each module provides, with the signatures of `x86_64.rs`:
//!
//! | item | what |
//! |---|---|
//! | `HAS_RSEQ_ASM` | `true` if the sections below are real |
//! | `RSEQ_SIG` | the signature passed at registration and placed before every abort handler |
//! | `thread_pointer()` | the thread pointer glibc's `__rseq_offset` is relative to |
//! | `add_fold` | the cell section: add, and fold at the batch (see `x86_64.rs` for its contract) |
//! | `pop`, `push` | the per-CPU stack sections |
//!
//! The field offsets the sections use are the `const`s below, taken with `offset_of!` from
//! the structures themselves ([`RseqArea`], [`FoldParams`](crate::FoldParams), the stack
//! layout), and passed to `asm!` as `const` operands, never written as literals. The one
//! exception is the id field (`cpu_id` or `mm_cid`, chosen once per process): its offset
//! is passed in a register, from [`id_offset`].
//!
//! Porting to another architecture (riscv64, say) means adding `riscv64.rs` with the items
//! above and one `cfg`'d `mod` line here; nothing outside this directory changes. See
//! docs/ARCHITECTURE.md.

use crate::abi::RseqArea;

#[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
#[path = "x86_64.rs"]
mod imp;

#[cfg(all(target_os = "linux", target_arch = "aarch64", not(loom)))]
#[path = "aarch64.rs"]
mod imp;

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    not(loom)
)))]
#[path = "none.rs"]
mod imp;

pub(crate) use imp::{add_fold, pop, push, HAS_RSEQ_ASM, RSEQ_SIG};
// Used by the Linux registration code only (not off Linux, not under loom).
#[allow(unused_imports)]
pub(crate) use imp::thread_pointer;

/// Byte offset of `cpu_id` in the rseq area.
pub(crate) const CPU_ID: usize = core::mem::offset_of!(RseqArea, cpu_id);
/// Byte offset of `mm_cid` in the rseq area (Linux 6.3+).
pub(crate) const MM_CID: usize = core::mem::offset_of!(RseqArea, mm_cid);

/// The byte offset of the id field the sections index lanes by: [`CPU_ID`] or [`MM_CID`]
/// (see [`crate::IdSource`]). Chosen once per process with the backend; every thread stores
/// it (the same value, from the process's mode) in `thread::resolve` before its state word
/// lets it run a section, so each thread's own loads see the chosen offset. Plain std
/// atomic, also under loom (no section runs there).
static ID_OFFSET: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(CPU_ID);

/// The id field's offset, passed to every section in a register. A relaxed load of a static
/// outside the section: the value never changes once this thread runs sections, and the id
/// itself is read inside the section, after the arm. Measured against a `const` offset in
/// docs/PERFORMANCE.md.
#[inline(always)]
pub(crate) fn id_offset() -> usize {
    ID_OFFSET.load(core::sync::atomic::Ordering::Relaxed)
}

/// Stores the process's id field offset (called by each thread before its first section).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn set_id_offset(source: crate::IdSource) {
    let offset = match source {
        crate::IdSource::MmCid => MM_CID,
        crate::IdSource::CpuId => CPU_ID,
    };
    ID_OFFSET.store(offset, core::sync::atomic::Ordering::Relaxed);
}
/// Byte offset of `rseq_cs` in the rseq area.
pub(crate) const RSEQ_CS: usize = core::mem::offset_of!(RseqArea, rseq_cs);
/// Byte offsets of the [`FoldParams`](crate::FoldParams) fields.
pub(crate) const FP_STRIDE: usize = core::mem::offset_of!(crate::FoldParams, stride);
pub(crate) const FP_NCPU: usize = core::mem::offset_of!(crate::FoldParams, ncpu);
pub(crate) const FP_BIAS: usize = core::mem::offset_of!(crate::FoldParams, bias);
pub(crate) const FP_NEG_BIAS: usize = core::mem::offset_of!(crate::FoldParams, neg_bias);
/// Byte offsets in one CPU's stack (see `stack.rs`): the item count, the flags, item 0.
pub(crate) const STACK_TOP: usize = crate::stack::TOP * 8;
pub(crate) const STACK_FLAGS: usize = crate::stack::FLAGS * 8;
pub(crate) const STACK_ITEMS: usize = crate::stack::ITEMS * 8;

/// Result of a stack section (`pop`, `push`): status and the number of aborts it took.
///
/// Status: 0 = done, 1 = slow path (CPU out of range, or disabled / stopped), 2 = stack empty
/// (pop) or full (push).
pub(crate) struct Outcome<T> {
    pub status: u32,
    pub value: T,
    pub aborts: usize,
}

/// Result of `add_fold`: the raw status word and the value to fold.
///
/// Status bits: 0 = slow path (nothing was added), 1 = the section folded (`value` is what the
/// cell held), the rest = the abort count × 4. So `raw_status == 0` alone says "committed, no
/// abort, nothing to fold", and `value` is meaningful only when bit 1 is set.
pub(crate) struct FoldOutcome {
    pub raw_status: usize,
    pub value: i64,
}

// The layouts the sections assume.
const _: () = assert!(FP_STRIDE % 8 == 0 && FP_NCPU % 8 == 0);
const _: () = assert!(FP_BIAS % 8 == 0 && FP_NEG_BIAS % 8 == 0);
const _: () = assert!(STACK_ITEMS >= 8 && STACK_TOP != STACK_FLAGS);
const _: () = assert!(CPU_ID + 4 <= RSEQ_CS);
// The registered area (32 bytes, the kernel's minimum) covers `mm_cid`.
const _: () = assert!(MM_CID + 4 <= crate::abi::RSEQ_AREA_LEN as usize);

/// Every section leaves the area's `rseq_cs` at 0, on every way out (committed, slow path,
/// stack empty or full, folded): a thread whose `rseq_cs` still pointed at a descriptor after
/// the object holding it was unloaded (`dlclose`) would be killed on its next preemption or
/// signal. `crates/cdylib-test` tests the unload itself.
#[cfg(all(test, not(loom)))]
mod tests {
    use crate::abi::RseqArea;
    use crate::sync::{AtomicI64, AtomicUsize};
    use crate::{FoldParams, PercpuStacks, DISABLED};

    /// The calling thread's `rseq_cs`, or `None` if it runs no sections (portable backend).
    fn rseq_cs() -> Option<u64> {
        let state = crate::thread::state();
        if !super::HAS_RSEQ_ASM || state <= crate::thread::NO_RSEQ {
            return None;
        }
        let area = state as *const RseqArea;
        // SAFETY: a state above NO_RSEQ is this thread's registered area, live while the
        // thread runs; the read is volatile because the kernel also writes the field.
        Some(unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*area).rseq_cs)) })
    }

    /// A slot word followed by its fold parameters, as `add_fold_beside` reads them.
    #[repr(C)]
    struct Site {
        slot: AtomicUsize,
        params: FoldParams,
    }

    #[test]
    fn every_section_clears_rseq_cs() {
        if rseq_cs().is_none() {
            eprintln!(
                "SKIPPED every_section_clears_rseq_cs: needs the rseq backend, this thread \
                 runs {:?}",
                crate::registration()
            );
            return;
        }
        let ncpu = crate::possible_cpus();
        // Two words per CPU: `add_fold_with_offset` uses the second.
        let cells: Vec<AtomicI64> = (0..2 * ncpu).map(|_| AtomicI64::new(0)).collect();
        let slot = AtomicUsize::new(cells.as_ptr() as usize);
        let disabled = AtomicUsize::new(DISABLED);
        let params = FoldParams::new(16, ncpu, 4);
        let out_of_range = FoldParams::new(16, 0, 4);
        let every_call = FoldParams::new(16, ncpu, 1);
        let site = Site {
            slot: AtomicUsize::new(cells.as_ptr() as usize),
            params: FoldParams::new(16, ncpu, 4),
        };
        let site_slot = (&site as *const Site).cast::<AtomicUsize>();
        let stacks = PercpuStacks::new(ncpu, 2).unwrap();
        let check = |what: &str| assert_eq!(rseq_cs(), Some(0), "{what} left rseq_cs set");
        // Every call below: `slot` and `site.slot` address `ncpu` live cells of two words,
        // 16 bytes apart, outliving the calls; `site_slot` points at the whole site, whose
        // parameters follow the slot word at offset 8.
        for _ in 0..200 {
            // SAFETY: as above.
            unsafe { crate::add_fold_with(&slot, &params, 1) }.unwrap();
            check("add_fold_with up");
            // SAFETY: as above.
            unsafe { crate::add_fold_with(&slot, &params, -1) }.unwrap();
            check("add_fold_with down");
            // SAFETY: as above; a lane bound of 0 puts every CPU out of range.
            assert!(unsafe { crate::add_fold_with(&slot, &out_of_range, 1) }.is_err());
            check("add_fold_with (CPU out of range)");
            // SAFETY: as above; a disabled slot word is never dereferenced.
            assert!(unsafe { crate::add_fold_with(&disabled, &params, 1) }.is_err());
            check("add_fold_with (disabled slot)");
            // SAFETY: as above; batch 1 folds at every call.
            unsafe { crate::add_fold_with(&slot, &every_call, 1) }.unwrap();
            check("add_fold_with (folded)");
            // SAFETY: as above; offset 8 is each CPU's second word.
            unsafe { crate::add_fold_with_offset(&slot, &params, 8, 1) }.unwrap();
            check("add_fold_with_offset");
            // SAFETY: as above.
            unsafe { crate::add_fold_beside::<8>(site_slot, 1) }.unwrap();
            check("add_fold_beside");
            // Fill this CPU's stack until it is full, then empty it (a migration only changes
            // which CPU's stack; at most ncpu × 2 pushes succeed).
            while stacks.push(1).is_ok() {
                check("push");
            }
            check("push (full)");
            while stacks.pop().is_ok() {
                check("pop");
            }
            check("pop (empty)");
        }
    }
}
