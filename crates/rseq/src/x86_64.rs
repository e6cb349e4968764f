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
//!      mov [area + 8], tmp
//!   4: ... read cpu_id, bounds-check it, load what relocation may change ...
//!      <one committing store or add>
//!   5:                               post-commit: the section is over
//!   .pushsection __rseq_failure, "ax"
//!      .byte 0x0f, 0xb9, 0x3d        `ud1` opcode bytes, then the signature as its operand,
//!      .long 0x53053053              which the kernel checks at abort_ip - 4
//!   6: inc aborts; jmp 2b            abort: count it and retry from the top
//!   .popsection
//! ```
//!
//! The kernel clears `rseq_cs` when it aborts a section, so the retry re-arms it. Everything
//! inside [4, 5) is register work or loads until the single committing instruction, so an abort
//! anywhere before the commit leaves memory untouched (push's item store goes above `top`, to a
//! cell nobody reads until the commit publishes it). Labels start at 2: `0` and `1` combinations
//! read as binary literals (rustc's `binary_asm_labels` lint).
//!
//! Status register: 0 = done, 1 = slow path (CPU out of range, or disabled / stopped),
//! 2 = stack empty (pop) or full (push).

use crate::abi::RseqArea;

/// One critical section: the frame every section shares around its `body` lines.
///
/// The descriptor (`9:`, in `__rseq_cs`), the re-arm of `rseq_cs` (`2:`), the start label
/// (`4:`), the post-commit label (`5:`, right after the body, whose last instruction must be
/// the commit), and the abort handler (`6:`, in `__rseq_failure`, behind the signature), which
/// runs `abort` (count the abort) and retries from `2:`. The operands must name `area` (the
/// rseq area) and `tmp` (a scratch register).
macro_rules! rseq_section {
    ($abort:literal; $($body:literal,)* ; $($operands:tt)*) => {
        core::arch::asm!(
            ".pushsection __rseq_cs, \"aw\"",
            ".balign 32",
            "9:",
            ".long 0, 0",
            ".quad 4f, (5f - 4f), 6f",
            ".popsection",
            "2:",
            "lea {tmp}, [rip + 9b]",
            "mov qword ptr [{area} + 8], {tmp}",
            "4:",
            $($body,)*
            "5:",
            ".pushsection __rseq_failure, \"ax\"",
            ".byte 0x0f, 0xb9, 0x3d",
            ".long 0x53053053",
            "6:",
            $abort,
            "jmp 2b",
            ".popsection",
            $($operands)*
        )
    };
}

/// Result of one section: status and the number of aborts it took.
pub(crate) struct Outcome<T> {
    pub status: u32,
    pub value: T,
    pub aborts: usize,
}

impl<T> Outcome<T> {
    /// The value if the section committed, counting its aborts on this thread either way.
    #[inline(always)]
    pub fn into_result(self) -> Result<T, crate::SlowPath> {
        if self.aborts != 0 {
            crate::thread::record_aborts(self.aborts);
        }
        if self.status == 0 {
            Ok(self.value)
        } else {
            Err(crate::SlowPath)
        }
    }
}

/// Result of `add_fold`: the raw status word (bit 0 slow, the rest the abort count × 2) and
/// the value to fold (0 if none).
pub(crate) struct FoldOutcome {
    pub raw_status: usize,
    pub value: i64,
}

/// Adds `delta` to the cell `*slot + cpu * stride` unless `*slot` carries the disabled mark.
///
/// # Safety
/// `area` is this thread's registered rseq area. `slot` is readable; when its value is not
/// marked, every cell `value + c * stride` for `c < ncpu` is a writable, 8-aligned `i64` that
/// only rseq sections (or a fenced owner) write.
#[inline(always)]
pub(crate) unsafe fn add(
    area: *mut RseqArea,
    slot: *const usize,
    stride: usize,
    ncpu: usize,
    delta: i64,
) -> Outcome<()> {
    let status: u32;
    let aborts: usize;
    // SAFETY: the caller guarantees `area`, `slot` and the cells as documented; the section
    // writes only `area.rseq_cs` (user-owned) and the one cell of the current CPU; the abort
    // handler is preceded by the registered signature.
    unsafe {
        rseq_section!("inc {aborts}";
            "mov {st:e}, 1",
            "mov {cpu:e}, dword ptr [{area} + 4]",
            "cmp {cpu}, {ncpu}",
            "jae 5f",
            "mov {tmp}, qword ptr [{slot}]",
            "test {tmp}, 1",
            "jnz 5f",
            "imul {cpu}, {stride}",
            "xor {st:e}, {st:e}",
            "add qword ptr [{tmp} + {cpu}], {delta}",
            ;
            area = in(reg) area,
            slot = in(reg) slot,
            stride = in(reg) stride,
            ncpu = in(reg) ncpu,
            delta = in(reg) delta,
            tmp = out(reg) _,
            cpu = out(reg) _,
            st = out(reg) status,
            aborts = inout(reg) 0usize => aborts,
            options(nostack),
        );
    }
    Outcome {
        status,
        value: (),
        aborts,
    }
}

/// Adds `delta` to the current CPU's cell (`*slot + offset + cpu × stride`, with `offset`,
/// `stride`, `ncpu` read from `params`); if the result reaches the batch in absolute value,
/// stores 0 instead and returns the result (the caller moves it to a central count), else
/// returns 0.
///
/// The range check is `(cur + bias) as u64 <= lim` with `bias = batch - 1` and
/// `lim = 2 × bias`, i.e. `|cur| < batch`. The fold path sits *inside* the section, before the
/// single committing store, and falls through into it with 0 as the value to store; the common
/// path jumps over it. So the store's data depends only on the load and the add (the check is
/// a predicted branch, not a data dependency). The parameters are memory operands behind one
/// pointer and the status shares a register with the abort count, so the section needs nine
/// registers and inlines into callers without spilling callee-saved ones.
///
/// Status register: bit 0 set = slow path; the abort handler adds 2 (so `>> 1` counts aborts).
///
/// # Safety
/// As for [`add`]; `params` is valid for reads.
#[inline(always)]
pub(crate) unsafe fn add_fold(
    area: *mut RseqArea,
    slot: *const usize,
    params: *const crate::ops::FoldParams,
    delta: i64,
    offset: Option<usize>,
) -> FoldOutcome {
    let st: usize;
    let out: i64;
    // The section text, with or without the offset step (single counters have offset 0 and
    // skip it: one load and one add fewer on the way to the cell's address).
    macro_rules! section {
        ($offset_step:literal; $($offset_operand:tt)*) => {
            rseq_section!("add {st}, 2";
                "or {st}, 1",
                "mov {cpu:e}, dword ptr [{area} + 4]",
                "cmp {cpu}, qword ptr [{p} + 8]",
                "jae 5f",
                "mov {tmp}, qword ptr [{slot}]",
                "test {tmp}, 1",
                "jnz 5f",
                "imul {cpu}, qword ptr [{p}]",
                "add {tmp}, {cpu}",
                $offset_step,
                "mov {cur}, qword ptr [{tmp}]",
                "add {cur}, {delta}",
                "mov {out}, qword ptr [{p} + 16]",
                "add {out}, {cur}",
                "cmp {out}, qword ptr [{p} + 24]",
                "mov {out:e}, 0",
                "jbe 3f",
                "mov {out}, {cur}",
                "xor {cur:e}, {cur:e}",
                "3:",
                "and {st}, -2",
                "mov qword ptr [{tmp}], {cur}",
                ;
                area = in(reg) area,
                slot = in(reg) slot,
                p = in(reg) params,
                delta = in(reg) delta,
                tmp = out(reg) _,
                cpu = out(reg) _,
                cur = out(reg) _,
                out = out(reg) out,
                st = inout(reg) 0usize => st,
                $($offset_operand)*
                options(nostack),
            )
        };
    }
    // SAFETY: as in `add`; the only write besides `rseq_cs` is the committing store to the
    // current CPU's cell, the last instruction of the section. `params` is read only.
    unsafe {
        match offset {
            Some(off) => section!("add {tmp}, {off}"; off = in(reg) off,),
            None => section!(""; ),
        }
    }
    // `out` is only meaningful when the section committed; make it 0 otherwise so that the
    // caller's single `status | value == 0` test stays exact.
    FoldOutcome {
        raw_status: st,
        value: if st & 1 == 0 { out } else { 0 },
    }
}

/// Stores `new` into the cell `*slot + cpu * stride` and returns the old value, unless `*slot`
/// carries the disabled mark.
///
/// # Safety
/// As for [`add`].
#[inline(always)]
pub(crate) unsafe fn exchange(
    area: *mut RseqArea,
    slot: *const usize,
    stride: usize,
    ncpu: usize,
    new: i64,
) -> Outcome<i64> {
    let status: u32;
    let aborts: usize;
    let old: i64;
    // SAFETY: as in `add`; the section's only memory write outside `rseq_cs` is the committing
    // store to the current CPU's cell.
    unsafe {
        rseq_section!("inc {aborts}";
            "mov {st:e}, 1",
            "xor {old:e}, {old:e}",
            "mov {cpu:e}, dword ptr [{area} + 4]",
            "cmp {cpu}, {ncpu}",
            "jae 5f",
            "mov {tmp}, qword ptr [{slot}]",
            "test {tmp}, 1",
            "jnz 5f",
            "imul {cpu}, {stride}",
            "add {tmp}, {cpu}",
            "mov {old}, qword ptr [{tmp}]",
            "xor {st:e}, {st:e}",
            "mov qword ptr [{tmp}], {new}",
            ;
            area = in(reg) area,
            slot = in(reg) slot,
            stride = in(reg) stride,
            ncpu = in(reg) ncpu,
            new = in(reg) new,
            tmp = out(reg) _,
            cpu = out(reg) _,
            old = out(reg) old,
            st = out(reg) status,
            aborts = inout(reg) 0usize => aborts,
            options(nostack),
        );
    }
    Outcome {
        status,
        value: old,
        aborts,
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
            "mov {cpu:e}, dword ptr [{area} + 4]",
            "cmp {cpu}, {ncpu}",
            "jae 5f",
            "imul {cpu}, {stride}",
            "add {cpu}, {stacks}",
            "cmp qword ptr [{cpu} + 8], 0",
            "jne 5f",
            "mov {tmp}, qword ptr [{cpu}]",
            "mov {st:e}, 2",
            "test {tmp}, {tmp}",
            "jz 5f",
            "mov {item}, qword ptr [{cpu} + {tmp} * 8 + 8]",
            "dec {tmp}",
            "xor {st:e}, {st:e}",
            "mov qword ptr [{cpu}], {tmp}",
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
            options(nostack),
        );
    }
    Outcome {
        status,
        value: item,
        aborts,
    }
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
    let status: u32;
    let aborts: usize;
    // SAFETY: as documented; the item store lands above `top` (unpublished until the commit),
    // and the commit is the store of `top + 1`.
    unsafe {
        rseq_section!("inc {aborts}";
            "mov {st:e}, 1",
            "mov {cpu:e}, dword ptr [{area} + 4]",
            "cmp {cpu}, {ncpu}",
            "jae 5f",
            "imul {cpu}, {stride}",
            "add {cpu}, {stacks}",
            "cmp qword ptr [{cpu} + 8], 0",
            "jne 5f",
            "mov {tmp}, qword ptr [{cpu}]",
            "mov {st:e}, 2",
            "cmp {tmp}, {cap}",
            "jae 5f",
            "mov qword ptr [{cpu} + {tmp} * 8 + 16], {item}",
            "inc {tmp}",
            "xor {st:e}, {st:e}",
            "mov qword ptr [{cpu}], {tmp}",
            ;
            area = in(reg) area,
            stacks = in(reg) stacks,
            stride = in(reg) stride,
            ncpu = in(reg) ncpu,
            cap = in(reg) cap,
            item = in(reg) item,
            tmp = out(reg) _,
            cpu = out(reg) _,
            st = out(reg) status,
            aborts = inout(reg) 0usize => aborts,
            options(nostack),
        );
    }
    Outcome {
        status,
        value: (),
        aborts,
    }
}
