//! No rseq sections on this target (or under `--cfg loom`): the portable backend runs.
//!
//! The items exist so that the callers compile unchanged; `HAS_RSEQ_ASM` is `false`, so no
//! caller ever runs them (and if one did, every section reports the slow path).

use super::{FoldOutcome, Outcome};
use crate::abi::RseqArea;

/// No critical sections here.
pub(crate) const HAS_RSEQ_ASM: bool = false;

/// No thread pointer is needed without sections.
#[allow(dead_code)]
pub(crate) fn thread_pointer() -> usize {
    0
}

const SLOW: u32 = 1;

/// Reports the slow path.
///
/// # Safety
/// None needed; `unsafe` to match the real sections.
#[inline(always)]
pub(crate) unsafe fn add_fold<const PARAMS_AFTER_SLOT: usize, const REACH: u8, const UP: bool>(
    _area: *mut RseqArea,
    _slot: *const usize,
    _params: *const crate::fold_params::FoldParams,
    _delta: i64,
    _offset: Option<usize>,
) -> FoldOutcome {
    FoldOutcome {
        raw_status: 1,
        value: 0,
    }
}

/// Reports the slow path.
///
/// # Safety
/// None needed; `unsafe` to match the real sections.
#[inline(always)]
pub(crate) unsafe fn pop(
    _area: *mut RseqArea,
    _stacks: *mut u8,
    _stride: usize,
    _ncpu: usize,
) -> Outcome<usize> {
    Outcome {
        status: SLOW,
        value: 0,
        aborts: 0,
    }
}

/// Reports the slow path.
///
/// # Safety
/// None needed; `unsafe` to match the real sections.
#[inline(always)]
pub(crate) unsafe fn push(
    _area: *mut RseqArea,
    _stacks: *mut u8,
    _stride: usize,
    _ncpu: usize,
    _cap: usize,
    _item: usize,
) -> Outcome<()> {
    Outcome {
        status: SLOW,
        value: (),
        aborts: 0,
    }
}

/// Reports the slow path.
///
/// # Safety
/// None needed; `unsafe` to match the real sections.
#[inline(always)]
pub(crate) unsafe fn push_on(
    _area: *mut RseqArea,
    _stacks: *mut u8,
    _stride: usize,
    _lane: usize,
    _cap: usize,
    _item: usize,
) -> Outcome<()> {
    Outcome {
        status: SLOW,
        value: (),
        aborts: 0,
    }
}
