//! The aarch64 critical sections.
//!
//! The same sections as `x86_64.rs`, with the same contracts and status encodings, framed by
//! this file's `rseq_section!`:
//!
//! ```text
//!   .pushsection __rseq_cs, "aw"     descriptor: version 0, flags 0,
//!   9: .long 0, 0                    start_ip = 4f, post_commit_offset = 5f - 4f,
//!      .quad 4f, (5f - 4f), 6f       abort_ip = 6f
//!   .popsection
//!   2: adrp tmp, 9b                  (re)arm: point the area's rseq_cs at the descriptor
//!      add  tmp, tmp, :lo12:9b
//!      str  tmp, [area, #RSEQ_CS]
//!   4: ... ldr the id (cpu_id or mm_cid: [area, id]), bounds-check it, load what
//!      relocation may change ...
//!      <one committing str>
//!   5:                               post-commit: the section is over
//!      str  xzr, [area, #RSEQ_CS]    disarm: every way out (commit or early exit) passes here
//!   .pushsection __rseq_failure, "ax"
//!      .inst 0xd428bc00              the signature: `brk #0x45e0`, which the kernel checks at
//!   6: ...; b 2b                     abort_ip - 4; abort: count it and retry from the top
//!   .popsection
//! ```
//!
//! As in the kernel's selftests (`rseq-arm64.h`) and librseq (`arch/aarch64.h`): the
//! signature is a `brk` whose immediate is uncommon, so reaching it by mistake traps; the arm
//! uses `adrp`/`add` (the descriptor is in another section, possibly beyond `adr`'s reach);
//! the id is loaded only after the store to `rseq_cs`, inside [4, 5). After the section
//! `rseq_cs` is cleared, as on x86_64 (why: `x86_64.rs`).
//!
//! Weak memory. Inside a section only program order on this CPU matters (the kernel aborts
//! the section on preemption or migration). What other CPUs see:
//! - the slot word is loaded with a plain `ldr` and the cell is addressed through it: an
//!   address dependency, which orders the cell access after the load (the relocator publishes
//!   the slot word with a release store after preparing the cells);
//! - a per-CPU stack's `flags` word is loaded with `ldar` (acquire), so that after a stopper
//!   restarts the stack (a release store of `flags`) this CPU's loads of `top` and the items
//!   see what the stopper wrote;
//! - the stores a section commits reach a stopper or relocator on another CPU through the
//!   membarrier fence they wait for (it runs `smp_mb` on the CPU it interrupts), and a fold's
//!   store of 0 reaches `sum()` through the release fence `ops.rs` issues before returning
//!   the folded value.

use super::{FoldOutcome, Outcome};
use crate::abi::{RseqArea, RSEQ_SIG_INSN};
use crate::fold_params::reach;
use crate::fold_table::KEY_TO_OFFSET_SHIFT;

/// The sections below are real.
pub(crate) const HAS_RSEQ_ASM: bool = true;

/// The thread pointer (`tpidr_el0`), from which glibc's (negative) `__rseq_offset` counts.
#[inline(always)]
pub(crate) fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: reading tpidr_el0 is allowed at EL0, has no side effects and touches no memory.
    unsafe {
        core::arch::asm!("mrs {}, tpidr_el0", out(reg) tp,
            options(nostack, nomem, preserves_flags, pure));
    }
    tp
}

/// One critical section: the frame every section shares around its `body` lines (see the
/// module documentation). The operands must name `area` (the rseq area) and `tmp` (a scratch
/// register); the macro adds `rseq_cs` (the area's field offset), `id` (a register holding
/// the offset of the id field the lanes follow, `cpu_id` or `mm_cid`) and `sig`.
macro_rules! rseq_section {
    ($abort:expr; $($body:expr,)* ; $($operands:tt)*) => {
        core::arch::asm!(
            ".pushsection __rseq_cs, \"aw\"",
            ".balign 32",
            "9:",
            ".long 0, 0",
            ".quad 4f, (5f - 4f), 6f",
            ".popsection",
            "2:",
            "adrp {tmp}, 9b",
            "add {tmp}, {tmp}, :lo12:9b",
            "str {tmp}, [{area}, #{rseq_cs}]",
            "4:",
            $($body,)*
            "5:",
            "str xzr, [{area}, #{rseq_cs}]",
            ".pushsection __rseq_failure, \"ax\"",
            ".inst {sig}",
            "6:",
            $abort,
            "b 2b",
            ".popsection",
            rseq_cs = const super::RSEQ_CS,
            id = in(reg) super::id_offset(),
            sig = const RSEQ_SIG_INSN,
            $($operands)*
        )
    };
}

/// Adds `delta` to the current CPU's cell and folds it at the batch: `x86_64::add_fold`'s
/// contract, status encoding ([`FoldOutcome`]) and one-sided check, with the parameters
/// loaded into registers (aarch64 has no memory operands): `ncpu` and `stride` into `cur`
/// before `cur` holds the cell, the threshold into `cpu` after the CPU's last use.
///
/// # Safety
/// As for `x86_64::add_fold`.
#[inline(always)]
pub(crate) unsafe fn add_fold<const PARAMS_AFTER_SLOT: usize, const REACH: u8, const UP: bool>(
    area: *mut RseqArea,
    slot: *const usize,
    params: *const crate::fold_params::FoldParams,
    delta: i64,
    offset: Option<usize>,
) -> FoldOutcome {
    let st: usize;
    let out: i64;
    // `$pb` is the register that addresses the parameters and `$po` the constant to add to
    // the field offsets; `$offset_step` is empty for single counters; `$threshold` and `$keep`
    // are the one-sided check.
    macro_rules! section {
        ($load_pb:literal; $pb:literal; $po:literal; $offset_step:literal; $threshold:expr; $keep:literal; $($extra:tt)*) => {
            rseq_section!("orr {st}, {st}, #1\nadd {st}, {st}, #4\nand {st}, {st}, #-3";
                // The slot word first: one without `LIVE` leaves at once. A live word is the
                // cells' address plus 1, which the cell's `ldur`/`stur` take back.
                "ldr {tmp}, [{slot}]",
                "tbz {tmp}, #0, 5f",
                $load_pb,
                "ldr {cpu:w}, [{area}, {id}]",
                concat!("ldr {cur}, [", $pb, ", #(", $po, " + {fp_ncpu})]"),
                "cmp {cpu}, {cur}",
                "b.hs 5f",
                concat!("ldr {cur}, [", $pb, ", #(", $po, " + {fp_stride})]"),
                "madd {tmp}, {cpu}, {cur}, {tmp}",
                $offset_step,
                concat!("ldr {cpu}, [", $pb, ", #(", $po, " + {threshold})]"),
                "ldur {cur}, [{tmp}, #-1]",
                "add {cur}, {cur}, {delta}",
                "cmp {cur}, {cpu}",
                concat!($keep, " 3f"),
                "mov {out}, {cur}",
                "mov {cur}, xzr",
                "orr {st}, {st}, #2",
                "3:",
                "and {st}, {st}, #-2",
                "stur {cur}, [{tmp}, #-1]",
                ;
                area = in(reg) area,
                slot = in(reg) slot,
                delta = in(reg) delta,
                tmp = out(reg) _,
                cpu = out(reg) _,
                cur = out(reg) _,
                out = out(reg) out,
                st = inout(reg) 1usize => st,
                fp_ncpu = const super::FP_NCPU,
                fp_stride = const super::FP_STRIDE,
                threshold = const $threshold,
                $($extra)*
                options(nostack),
            )
        };
    }
    macro_rules! direction {
        ($load_pb:literal; $pb:literal; $po:literal; $offset_step:literal; $($extra:tt)*) => {
            if UP {
                section!($load_pb; $pb; $po; $offset_step; super::FP_BIAS; "b.le"; $($extra)*)
            } else {
                section!($load_pb; $pb; $po; $offset_step; super::FP_NEG_BIAS; "b.ge"; $($extra)*)
            }
        };
    }
    // SAFETY: as the caller guarantees; the only write besides `rseq_cs` is the committing store to the
    // current CPU's cell, the last instruction of the section. The parameters are read only.
    unsafe {
        match (PARAMS_AFTER_SLOT, REACH, offset) {
            (0, _, None) => direction!(""; "{p}"; "0"; ""; p = in(reg) params,),
            (0, _, Some(off)) => direction!(
                ""; "{p}"; "0"; "add {tmp}, {tmp}, {off}"; p = in(reg) params, off = in(reg) off,
            ),
            (_, reach::BESIDE, None) => {
                direction!(""; "{slot}"; "{po}"; ""; po = const PARAMS_AFTER_SLOT,)
            }
            (_, reach::BESIDE, Some(off)) => direction!(
                ""; "{slot}"; "{po}"; "add {tmp}, {tmp}, {off}";
                po = const PARAMS_AFTER_SLOT, off = in(reg) off,
            ),
            // The parameters' address, loaded into `out`, which is free until a fold (after
            // the last parameter read): no register more than the inline parameters.
            (_, reach::THROUGH, None) => direction!(
                "ldr {out}, [{slot}, #{po}]"; "{out}"; "0"; ""; po = const PARAMS_AFTER_SLOT,
            ),
            (_, reach::THROUGH, Some(off)) => direction!(
                "ldr {out}, [{slot}, #{po}]"; "{out}"; "0"; "add {tmp}, {tmp}, {off}";
                po = const PARAMS_AFTER_SLOT, off = in(reg) off,
            ),
            // The entry's address, table + (key << 3), built in `out` with `cpu`
            // (loaded right after) as scratch: no register more either.
            (_, _, None) => direction!(
                "ldrh {out:w}, [{slot}, #{po}]\nadrp {cpu}, :got:{table}\nldr {cpu}, [{cpu}, :got_lo12:{table}]\nadd {out}, {cpu}, {out}, lsl #{shift}";
                "{out}"; "0"; ""; po = const PARAMS_AFTER_SLOT,
                table = sym crate::fold_table::TABLE, shift = const KEY_TO_OFFSET_SHIFT,
            ),
            (_, _, Some(off)) => direction!(
                "ldrh {out:w}, [{slot}, #{po}]\nadrp {cpu}, :got:{table}\nldr {cpu}, [{cpu}, :got_lo12:{table}]\nadd {out}, {cpu}, {out}, lsl #{shift}";
                "{out}"; "0"; "add {tmp}, {tmp}, {off}";
                po = const PARAMS_AFTER_SLOT, off = in(reg) off,
                table = sym crate::fold_table::TABLE, shift = const KEY_TO_OFFSET_SHIFT,
            ),
        }
    }
    FoldOutcome {
        raw_status: st,
        value: out,
    }
}

/// Pops the top item of the current CPU's stack at `stacks + cpu * stride` (layout in
/// `stack.rs`). Commits by storing `top - 1`.
///
/// # Safety
/// As for `x86_64::pop`.
#[inline(always)]
pub(crate) unsafe fn pop(
    area: *mut RseqArea,
    stacks: *mut u8,
    stride: usize,
    ncpu: usize,
) -> Outcome<usize> {
    let status: u32;
    let aborts: usize;
    let item: usize;
    // SAFETY: as documented; the only write besides `rseq_cs` is the committing store of top.
    unsafe {
        rseq_section!("add {aborts}, {aborts}, #1";
            "mov {st:w}, #1",
            "mov {item}, xzr",
            "ldr {cpu:w}, [{area}, {id}]",
            "cmp {cpu}, {ncpu}",
            "b.hs 5f",
            "madd {cpu}, {cpu}, {stride}, {stacks}",
            // Acquire: see the module documentation (a stopper's restart).
            "add {tmp}, {cpu}, #{flags}",
            "ldar {tmp}, [{tmp}]",
            "cbnz {tmp}, 5f",
            "ldr {tmp}, [{cpu}, #{top}]",
            "mov {st:w}, #2",
            "cbz {tmp}, 5f",
            "add {item}, {cpu}, {tmp}, lsl #3",
            "ldr {item}, [{item}, #({items} - 8)]",
            "sub {tmp}, {tmp}, #1",
            "mov {st:w}, #0",
            "str {tmp}, [{cpu}, #{top}]",
            ;
            area = in(reg) area,
            stacks = in(reg) stacks,
            stride = in(reg) stride,
            ncpu = in(reg) ncpu,
            tmp = out(reg) _,
            cpu = out(reg) _,
            item = out(reg) item,
            st = out(reg) status,
            aborts = inout(reg) 0usize => aborts,
            top = const super::STACK_TOP,
            flags = const super::STACK_FLAGS,
            items = const super::STACK_ITEMS,
            options(nostack),
        );
    }
    Outcome {
        status,
        value: item,
        aborts,
    }
}

/// The push section's body, with its lane check (`$check`, the jump to the slow exit after
/// comparing the CPU index with `$ncpu`) given by [`push`] and [`push_on`].
macro_rules! push_section {
    ($check:literal, $area:expr, $stacks:expr, $stride:expr, $ncpu:expr, $cap:expr, $item:expr) => {{
        let status: u32;
        let aborts: usize;
        // SAFETY: as documented; the item store lands above `top` (unpublished until the commit),
        // and the commit is the store of `top + 1`.
        unsafe {
            rseq_section!("add {aborts}, {aborts}, #1";
                "mov {st:w}, #1",
                "ldr {cpu:w}, [{area}, {id}]",
                "cmp {cpu}, {ncpu}",
                $check,
                "madd {cpu}, {cpu}, {stride}, {stacks}",
                "add {tmp}, {cpu}, #{flags}",
                "ldar {tmp}, [{tmp}]",
                "cbnz {tmp}, 5f",
                "ldr {tmp}, [{cpu}, #{top}]",
                "mov {st:w}, #2",
                "cmp {tmp}, {cap}",
                "b.hs 5f",
                "add {at}, {cpu}, {tmp}, lsl #3",
                "str {item}, [{at}, #{items}]",
                "add {tmp}, {tmp}, #1",
                "mov {st:w}, #0",
                "str {tmp}, [{cpu}, #{top}]",
                ;
                area = in(reg) $area,
                stacks = in(reg) $stacks,
                stride = in(reg) $stride,
                ncpu = in(reg) $ncpu,
                cap = in(reg) $cap,
                item = in(reg) $item,
                tmp = out(reg) _,
                cpu = out(reg) _,
                at = out(reg) _,
                st = out(reg) status,
                aborts = inout(reg) 0usize => aborts,
                top = const super::STACK_TOP,
                flags = const super::STACK_FLAGS,
                items = const super::STACK_ITEMS,
                options(nostack),
            );
        }
        Outcome {
            status,
            value: (),
            aborts,
        }
    }};
}

/// Pushes `item` onto the current CPU's stack if it holds fewer than `cap` items. Writes the
/// item above `top`, then commits by storing `top + 1`.
///
/// # Safety
/// As for `x86_64::push`.
#[inline(always)]
pub(crate) unsafe fn push(
    area: *mut RseqArea,
    stacks: *mut u8,
    stride: usize,
    ncpu: usize,
    cap: usize,
    item: usize,
) -> Outcome<()> {
    push_section!("b.hs 5f", area, stacks, stride, ncpu, cap, item)
}

/// [`push`], but only on the CPU whose index is `lane` (below the number of stacks): on any
/// other it exits to the slow path (status 1) without storing. The check is in the critical
/// section, so the item lands on `lane`'s stack or nowhere, whatever the thread's
/// migrations.
///
/// # Safety
/// As for [`push`], with `lane` below the number of stacks.
#[inline(always)]
pub(crate) unsafe fn push_on(
    area: *mut RseqArea,
    stacks: *mut u8,
    stride: usize,
    lane: usize,
    cap: usize,
    item: usize,
) -> Outcome<()> {
    push_section!("b.ne 5f", area, stacks, stride, lane, cap, item)
}
