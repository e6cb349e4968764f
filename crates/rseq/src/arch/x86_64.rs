//! The x86_64 critical sections.
//!
//! Each function is one `asm!` block, framed by the `rseq_section!` macro the same way:
//!
//! ```text
//!   .pushsection __rseq_cs, "aw"     descriptor: version 0, flags 0,
//!   9: .long 0, 0                    start_ip = 4f, post_commit_offset = 5f - 4f,
//!      .quad 4f, (5f - 4f), 6f       abort_ip = 6f
//!   .popsection
//!   2: lea tmp, [rip + 9b]           (re)arm: point the area's rseq_cs at the descriptor
//!      mov [area + RSEQ_CS], tmp
//!   4: ... read the id (cpu_id or mm_cid) and bounds-check it, load what relocation may
//!      change (in the order each section picks: add_fold tests the slot word first) ...
//!      <one committing store or add>
//!   5:                               post-commit: the section is over
//!      mov [area + RSEQ_CS], 0       disarm: every way out (commit or early exit) passes here
//!   .pushsection __rseq_failure, "ax"
//!      .byte 0x0f, 0xb9, 0x3d        `ud1` opcode bytes, then the signature as its operand,
//!      .long RSEQ_SIG                which the kernel checks at abort_ip - 4 (`crate::abi`)
//!   6: inc aborts; jmp 2b            abort: count it and retry from the top
//!   .popsection
//! ```
//!
//! The kernel clears `rseq_cs` when it aborts a section, so the retry re-arms it. Every exit
//! (the commit, and each early `jmp 5f`) clears it again, outside the section. Left armed, it
//! would keep pointing into this object after the section, and once a `dlclose` unmapped a
//! library holding pcpu, the kernel would fail to read the descriptor on the thread's next
//! preemption or signal and kill it (see `rseq_cs` in [`crate::abi`]). The clear costs one
//! store per operation (docs/PERFORMANCE.md).
//!
//! Everything inside [4, 5) is register work or loads until the single committing
//! instruction, so an abort anywhere before the commit leaves memory untouched (push's item
//! store goes above `top`, to a cell nobody reads until the commit publishes it). Labels start
//! at 2: `0` and `1` combinations read as binary literals (rustc's `binary_asm_labels` lint).
//!
//! Field offsets (`RSEQ_CS`, the fold parameters', the stack words') are `const` operands
//! from [`super`], taken with `offset_of!`. The id the lanes follow is read at `[area + id]`,
//! `id` a register holding `cpu_id`'s or `mm_cid`'s offset (chosen once per process,
//! [`super::id_offset`]): a register, not a `const`, so one section text serves both, and not
//! clobbered, so a retry after an abort reads the same field.
//!
//! Status register: 0 = done, 1 = slow path (CPU out of range, or disabled / stopped),
//! 2 = stack empty (pop) or full (push); `add_fold` has its own encoding (`FoldOutcome`).

use super::{FoldOutcome, Outcome};
use crate::abi::{RseqArea, RSEQ_SIG};
use crate::fold_params::reach;
use crate::fold_table::KEY_TO_OFFSET_SHIFT;

// `[base + key * 8]` in the indexed sections.
const _: () = assert!(KEY_TO_OFFSET_SHIFT == 3);

/// The sections below are real.
pub(crate) const HAS_RSEQ_ASM: bool = true;

/// The thread pointer (`%fs:0` holds the TCB's own address).
#[inline(always)]
pub(crate) fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: on x86_64 Linux the TCB's first word is its own address (the TLS ABI), and
    // reading it has no side effects.
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:0", out(reg) tp,
            options(nostack, readonly, preserves_flags, pure));
    }
    tp
}

/// One critical section: the frame every section shares around its `body` lines.
///
/// The descriptor (`9:`, in `__rseq_cs`), the re-arm of `rseq_cs` (`2:`), the start label
/// (`4:`), the post-commit label (`5:`, right after the body, whose last instruction must be
/// the commit; early exits jump there too) followed by the clear of `rseq_cs`, and the abort
/// handler (`6:`, in `__rseq_failure`, behind the signature), which runs `abort` (count the
/// abort) and retries from `2:`. The operands must name `area` (the rseq area) and `tmp` (a
/// scratch register); the macro adds `rseq_cs` (the area's field offset), `id` (a register
/// holding the offset of the id field the lanes follow, `cpu_id` or `mm_cid`) and
/// `sig`.
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
            "lea {tmp}, [rip + 9b]",
            "mov qword ptr [{area} + {rseq_cs}], {tmp}",
            "4:",
            $($body,)*
            "5:",
            "mov qword ptr [{area} + {rseq_cs}], 0",
            ".pushsection __rseq_failure, \"ax\"",
            ".byte 0x0f, 0xb9, 0x3d",
            ".long {sig}",
            "6:",
            $abort,
            "jmp 2b",
            ".popsection",
            rseq_cs = const super::RSEQ_CS,
            id = in(reg) super::id_offset(),
            sig = const RSEQ_SIG,
            $($operands)*
        )
    };
}

/// Adds `delta` to the current CPU's cell (`*slot - LIVE + offset + cpu × stride`, with
/// `stride` and `ncpu` read from the parameters); if the result reaches the batch in absolute
/// value, stores 0 instead and reports the result (the caller moves it to a central count).
///
/// The range check is one-sided: `UP` (for `delta ≥ 0`) folds when `cur > bias`, otherwise
/// when `cur < -bias` (`bias = batch - 1`, with `-bias` kept as its own word). The cell held
/// less than the widest batch `B` used on it in absolute value, so a non-negative delta cannot
/// push it below `-B` and a negative one cannot push it above `B`: one compare keeps
/// `|cell| < B` (`< batch` when every call uses the same one), provided `old + delta` does not
/// overflow, which the caller ensures by keeping `|delta| ≤ 2⁶²` (the batch is at most 2⁶²). Each variant reads one threshold word, so a counter may widen its batch while
/// sections run ([`crate::FoldParams::widen`]): a section sees the old threshold or the new.
///
/// The fold path sits *inside* the section, before the single committing store, and falls
/// through into it with 0 as the value to store; the common path jumps over it. So the
/// store's data depends only on the load and the add (the check is a predicted branch, not a
/// data dependency). The fold path also sets status bit 1, so the common case leaves the
/// section with a zero status and the caller tests one register. The status starts at 1 (set
/// by the caller's code, outside the section) and shares a register with the abort count; the
/// parameters are memory operands. So the section needs eight registers with the parameters
/// beside the slot word (the counter's `add`), nine with its own parameter pointer, and one
/// more with an offset (groups), which may then take a callee-saved register.
///
/// Status register: see [`FoldOutcome`]. The abort handler counts the abort (+4), sets the
/// slow bit again and clears the fold bit, either of which the interrupted attempt may have
/// changed.
///
/// `PARAMS_AFTER_SLOT` says where the parameters are: 0, behind `params`; otherwise that many
/// bytes after the slot word, and `REACH` says what lies there: the parameters themselves
/// (`reach::BESIDE`, kept beside a header), so one register addresses both and `params` is
/// ignored; their address (`reach::THROUGH`, a pointer to shared parameters), which the
/// section loads into the `out` register, unused until a fold comes after the last parameter
/// read: one instruction more, no register more; or their fold-table key
/// (`reach::INDEXED`, a counter's header tag), loaded into `out`, with the table's address
/// in `cpu` and the id in `cur`: two instructions more, no register more.
///
/// # Safety
/// `area` is this thread's registered rseq area. `slot` is readable; when its value carries
/// `LIVE`, every cell `value - 1 + offset + c * stride` for `c < ncpu` is a writable,
/// 8-aligned `i64` that only rseq sections (or a fenced owner) write. The parameters are valid for
/// reads; `delta ≥ 0` if `UP`, else `delta < 0`; `|delta| ≤ 2⁶²`.
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
    // One section text: `$pb` addresses the parameters; `$offset_step` is empty for single
    // counters (offset 0: one load and one add fewer on the way to the cell's address);
    // `$threshold` and `$keep` are the one-sided check.
    macro_rules! section {
        ($load_pb:literal; $pb:literal; $idr:literal; $offset_step:literal; $threshold:expr; $keep:literal; $($extra:tt)*) => {
            rseq_section!("or {st}, 1\nadd {st}, 4\nand {st}, -3";
                // The slot word first: one without `LIVE` (a counter without a slot, or a
                // zeroed header) leaves at once, without the CPU steps. A live word is the
                // cells' address plus 1: the cell operands take the 1 back as a displacement.
                "mov {tmp}, qword ptr [{slot}]",
                "test {tmp}, 1",
                "jz 5f",
                $load_pb,
                concat!("mov {", $idr, ":e}, dword ptr [{area} + {id}]"),
                concat!("cmp {", $idr, "}, qword ptr [", $pb, " + {fp_ncpu}]"),
                "jae 5f",
                concat!("imul {", $idr, "}, qword ptr [", $pb, " + {fp_stride}]"),
                concat!("add {tmp}, {", $idr, "}"),
                $offset_step,
                "mov {cur}, qword ptr [{tmp} - 1]",
                "add {cur}, {delta}",
                concat!("cmp {cur}, qword ptr [", $pb, " + {threshold}]"),
                concat!($keep, " 3f"),
                "mov {out}, {cur}",
                "xor {cur:e}, {cur:e}",
                "or {st}, 2",
                "3:",
                "and {st}, -2",
                "mov qword ptr [{tmp} - 1], {cur}",
                ;
                area = in(reg) area,
                slot = in(reg) slot,
                delta = in(reg) delta,
                tmp = out(reg) _,
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
    // Both directions for one parameter address and offset step.
    macro_rules! direction {
        ($load_pb:literal; $pb:literal; $offset_step:literal; $($extra:tt)*) => {
            direction!(id "cpu"; $load_pb; $pb; $offset_step; cpu = out(reg) _, $($extra)*)
        };
        (id $idr:literal; $load_pb:literal; $pb:literal; $offset_step:literal; $($extra:tt)*) => {
            if UP {
                section!($load_pb; $pb; $idr; $offset_step; super::FP_BIAS; "jle"; $($extra)*)
            } else {
                section!($load_pb; $pb; $idr; $offset_step; super::FP_NEG_BIAS; "jge"; $($extra)*)
            }
        };
    }
    // SAFETY: as the caller guarantees; the only write besides `rseq_cs` is the committing store to the
    // current CPU's cell, the last instruction of the section. The parameters are read only.
    unsafe {
        match (PARAMS_AFTER_SLOT, REACH, offset) {
            (0, _, None) => direction!(""; "{p}"; ""; p = in(reg) params,),
            (0, _, Some(off)) => {
                direction!(""; "{p}"; "add {tmp}, {off}"; p = in(reg) params, off = in(reg) off,)
            }
            (_, reach::BESIDE, None) => {
                direction!(""; "{slot} + {po}"; ""; po = const PARAMS_AFTER_SLOT,)
            }
            (_, reach::BESIDE, Some(off)) => direction!(
                ""; "{slot} + {po}"; "add {tmp}, {off}"; po = const PARAMS_AFTER_SLOT, off = in(reg) off,
            ),
            // The parameters' address, loaded into `out`, which is free until a fold (after
            // the last parameter read): no register more than the inline parameters.
            (_, reach::THROUGH, None) => direction!(
                "mov {out}, qword ptr [{slot} + {po}]"; "{out}"; ""; po = const PARAMS_AFTER_SLOT,
            ),
            (_, reach::THROUGH, Some(off)) => direction!(
                "mov {out}, qword ptr [{slot} + {po}]"; "{out}"; "add {tmp}, {off}";
                po = const PARAMS_AFTER_SLOT, off = in(reg) off,
            ),
            // The key (the entry's offset / 8) in `out` and the table's address in `cpu`;
            // the id goes to `cur` instead, free until the cell's load, by when the id is
            // spent: no register more than a pointer needs, and the parameters are read at
            // `[cpu + out * 8 + field]`, with nothing between the key's load and theirs. The
            // table is marked hidden so that the RIP-relative reference also links into a
            // Rust `dylib`, where the static would otherwise be preemptible (a GOT load
            // instead measured 0.2 ns more per add, `docs/PERFORMANCE.md`).
            (_, _, None) => direction!(id "cur";
                "movzx {out:e}, word ptr [{slot} + {po}]\n.hidden {table}\nlea {cpu}, [rip + {table}]";
                "{cpu} + {out} * 8"; ""; po = const PARAMS_AFTER_SLOT,
                table = sym crate::fold_table::TABLE, cpu = out(reg) _,
            ),
            (_, _, Some(off)) => direction!(id "cur";
                "movzx {out:e}, word ptr [{slot} + {po}]\n.hidden {table}\nlea {cpu}, [rip + {table}]";
                "{cpu} + {out} * 8"; "add {tmp}, {off}";
                po = const PARAMS_AFTER_SLOT, off = in(reg) off,
                table = sym crate::fold_table::TABLE, cpu = out(reg) _,
            ),
        }
    }
    FoldOutcome {
        raw_status: st,
        value: out,
    }
}

/// Pops the top item of the current CPU's stack at `stacks + cpu * stride`.
///
/// Stack layout per CPU: word 0 `top` (item count), word 1 `flags` (non-zero = stopped or
/// locked: take the slow path), words 2.. the items. Commits by storing `top - 1`.
///
/// # Safety
/// `area` is this thread's registered area; for every `c < ncpu`, `stacks + c * stride` is an
/// 8-aligned stack as laid out above whose `top` never exceeds its capacity, written only by
/// rseq sections or by a stopper after a fence.
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
        rseq_section!("inc {aborts}";
            "mov {st:e}, 1",
            "xor {item:e}, {item:e}",
            "mov {cpu:e}, dword ptr [{area} + {id}]",
            "cmp {cpu}, {ncpu}",
            "jae 5f",
            "imul {cpu}, {stride}",
            "add {cpu}, {stacks}",
            "cmp qword ptr [{cpu} + {flags}], 0",
            "jne 5f",
            "mov {tmp}, qword ptr [{cpu} + {top}]",
            "mov {st:e}, 2",
            "test {tmp}, {tmp}",
            "jz 5f",
            "mov {item}, qword ptr [{cpu} + {tmp} * 8 + {below_top}]",
            "dec {tmp}",
            "xor {st:e}, {st:e}",
            "mov qword ptr [{cpu} + {top}], {tmp}",
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
            below_top = const super::STACK_ITEMS - 8,
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
            rseq_section!("inc {aborts}";
                "mov {st:e}, 1",
                "mov {cpu:e}, dword ptr [{area} + {id}]",
                "cmp {cpu}, {ncpu}",
                $check,
                "imul {cpu}, {stride}",
                "add {cpu}, {stacks}",
                "cmp qword ptr [{cpu} + {flags}], 0",
                "jne 5f",
                "mov {tmp}, qword ptr [{cpu} + {top}]",
                "mov {st:e}, 2",
                "cmp {tmp}, {cap}",
                "jae 5f",
                "mov qword ptr [{cpu} + {tmp} * 8 + {items}], {item}",
                "inc {tmp}",
                "xor {st:e}, {st:e}",
                "mov qword ptr [{cpu} + {top}], {tmp}",
                ;
                area = in(reg) $area,
                stacks = in(reg) $stacks,
                stride = in(reg) $stride,
                ncpu = in(reg) $ncpu,
                cap = in(reg) $cap,
                item = in(reg) $item,
                tmp = out(reg) _,
                cpu = out(reg) _,
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

/// Pushes `item` onto the current CPU's stack (layout as in [`pop`]) if it holds fewer than
/// `cap` items. Writes the item above `top`, then commits by storing `top + 1`.
///
/// # Safety
/// As for [`pop`], and every stack has room for `cap` items.
#[inline(always)]
pub(crate) unsafe fn push(
    area: *mut RseqArea,
    stacks: *mut u8,
    stride: usize,
    ncpu: usize,
    cap: usize,
    item: usize,
) -> Outcome<()> {
    push_section!("jae 5f", area, stacks, stride, ncpu, cap, item)
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
    push_section!("jne 5f", area, stacks, stride, lane, cap, item)
}
