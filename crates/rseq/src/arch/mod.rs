//! The architecture boundary: the only place that names an architecture, besides the rseq
//! signature ([`RSEQ_SIG`](crate::abi::RSEQ_SIG), part of the ABI: one `cfg` per value in
//! `abi.rs`, which the sections import).
//!
//! One module per architecture holds its critical sections (one `asm!` block each) and its
//! thread pointer; exactly one of them is compiled in as `imp`, chosen
//! by the one `cfg` per module below. Every other target, and `--cfg loom` (asm cannot run
//! inside a model), gets [`none`](self#), whose [`HAS_RSEQ_ASM`] is `false` and whose sections
//! are never called: the callers (`ops.rs`, `stack.rs`, `native.rs`) test
//! `HAS_RSEQ_ASM` (a constant, so the dead branch disappears) and are the same code on every
//! target, which `cargo check` on non-Linux targets therefore type-checks too.
//!
//! Each module provides, with the signatures of `x86_64.rs`:
//!
//! | item | what |
//! |---|---|
//! | `HAS_RSEQ_ASM` | `true` if the sections below are real |
//! | `thread_pointer()` | the thread pointer glibc's `__rseq_offset` is relative to |
//! | `add_fold` | the cell section: add, and fold at the batch (see `x86_64.rs` for its contract) |
//! | `pop`, `push`, `push_on` | the per-CPU stack sections (`push_on`: only on a given CPU) |
//!
//! The field offsets the sections use are the `const`s below, taken with `offset_of!` from
//! the structures themselves ([`RseqArea`], [`FoldParams`], the stack
//! layout), and passed to `asm!` as `const` operands, never written as literals. The one
//! exception is the id field (`cpu_id` or `mm_cid`, chosen once per process): its offset
//! is passed in a register, from [`id_offset`].
//!
//! Porting to another architecture (riscv64, say) means adding `riscv64.rs` with the items
//! above and one `cfg`'d `mod` line here, and its signature in `abi.rs`; nothing else
//! outside this directory changes. See docs/ARCHITECTURE.md.

use crate::abi::RseqArea;
use crate::fold_params::FoldParams;
use crate::stack_layout;

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

pub(crate) use imp::{add_fold, pop, push, push_on, HAS_RSEQ_ASM};
// Used by the Linux registration code only (not off Linux, not under loom).
#[allow(unused_imports)]
pub(crate) use imp::thread_pointer;

/// Byte offset of `cpu_id` in the rseq area.
pub(crate) const CPU_ID: usize = core::mem::offset_of!(RseqArea, cpu_id);
/// Byte offset of `mm_cid` in the rseq area (Linux 6.3+).
pub(crate) const MM_CID: usize = core::mem::offset_of!(RseqArea, mm_cid);

/// The byte offset of the id field the sections index lanes by: [`CPU_ID`] or [`MM_CID`]
/// (see [`crate::IdSource`]). Chosen once per process with the backend; every thread stores
/// it (the same value, from the process's mode) in `thread::resolve_rseq` before its state word
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

/// Stores the process's id field offset, [`CPU_ID`] or [`MM_CID`] (called by each thread
/// before its first section; the caller maps the process's id source to the offset).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn set_id_offset(offset: usize) {
    debug_assert!(offset == CPU_ID || offset == MM_CID);
    ID_OFFSET.store(offset, core::sync::atomic::Ordering::Relaxed);
}
/// Byte offset of `rseq_cs` in the rseq area.
pub(crate) const RSEQ_CS: usize = core::mem::offset_of!(RseqArea, rseq_cs);
/// Byte offsets of the [`FoldParams`] fields.
pub(crate) const FP_STRIDE: usize = core::mem::offset_of!(FoldParams, stride);
pub(crate) const FP_NCPU: usize = core::mem::offset_of!(FoldParams, ncpu);
pub(crate) const FP_BIAS: usize = core::mem::offset_of!(FoldParams, bias);
pub(crate) const FP_NEG_BIAS: usize = core::mem::offset_of!(FoldParams, neg_bias);
/// Byte offsets in one CPU's stack ([`stack_layout`]): the item count, the flags, item 0.
pub(crate) const STACK_TOP: usize = stack_layout::TOP * 8;
pub(crate) const STACK_FLAGS: usize = stack_layout::FLAGS * 8;
pub(crate) const STACK_ITEMS: usize = stack_layout::ITEMS * 8;

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

// Every section clears `rseq_cs` on every way out (`tests.rs`).
#[cfg(all(test, not(loom)))]
mod tests;
