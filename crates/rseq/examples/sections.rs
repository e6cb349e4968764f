//! Each operation the upper crates use, in a function of its own, so that `objdump -d` shows
//! its fast path and `.ci/section-sizes` can count its instructions (docs/PERFORMANCE.md).
//! Running it performs each operation once and prints the mode.
//!
//! Run: `cargo run --release -p pcpu-rseq --example sections`

use pcpu_rseq::sync::{AtomicI64, AtomicUsize};
use pcpu_rseq::{FoldParams, PercpuStacks, SlowPath, StackMiss};
use std::hint::black_box;

/// A counter's layout: the slot word, then its fold parameters.
#[repr(C)]
pub struct Site {
    slot: AtomicUsize,
    params: FoldParams,
}

/// `pcpu_rseq::add_fold_with`: a counter's `add_batch`.
#[inline(never)]
#[no_mangle]
pub fn pcpu_section_add_fold_with(
    slot: &AtomicUsize,
    params: &FoldParams,
    delta: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: `main` passes a slot word addressing live cells as `params` lays them out.
    unsafe { pcpu_rseq::add_fold_with(slot, params, delta) }
}

/// `pcpu_rseq::add_fold_beside`: parameters kept beside the slot word.
#[inline(never)]
#[no_mangle]
pub fn pcpu_section_add_fold_beside(site: &Site, delta: i64) -> Result<i64, SlowPath> {
    // SAFETY: the parameters lie 8 bytes after the slot word, within `site`.
    unsafe { pcpu_rseq::add_fold_beside::<8>((site as *const Site).cast(), delta) }
}

/// A counter header's layout: the slot word, then the address of its batch level's fold
/// parameters.
#[repr(C)]
pub struct ThroughSite {
    slot: AtomicUsize,
    params: std::sync::atomic::AtomicPtr<FoldParams>,
}

/// `pcpu_rseq::add_fold_through`: a counter's `add`.
#[inline(never)]
#[no_mangle]
pub fn pcpu_section_add_fold_through(site: &ThroughSite, delta: i64) -> Result<i64, SlowPath> {
    // SAFETY: the parameters' address lies 8 bytes after the slot word, within `site`, and
    // `main` keeps them alive.
    unsafe { pcpu_rseq::add_fold_through::<8>((site as *const ThroughSite).cast(), delta) }
}

/// `pcpu_rseq::add_fold_with_offset`: a counter group's add.
#[inline(never)]
#[no_mangle]
pub fn pcpu_section_add_fold_with_offset(
    slot: &AtomicUsize,
    params: &FoldParams,
    offset: usize,
    delta: i64,
) -> Result<i64, SlowPath> {
    // SAFETY: as for `pcpu_section_add_fold_with`, with the cells `offset` bytes in.
    unsafe { pcpu_rseq::add_fold_with_offset(slot, params, offset, delta) }
}

/// `PercpuStacks::pop`.
#[inline(never)]
#[no_mangle]
pub fn pcpu_section_pop(stacks: &PercpuStacks) -> Result<usize, StackMiss> {
    stacks.pop()
}

/// `PercpuStacks::push`.
#[inline(never)]
#[no_mangle]
pub fn pcpu_section_push(stacks: &PercpuStacks, item: usize) -> Result<(), StackMiss> {
    stacks.push(item)
}

/// `PercpuStacks::push_on`.
#[inline(never)]
#[no_mangle]
pub fn pcpu_section_push_on(
    stacks: &PercpuStacks,
    lane: usize,
    item: usize,
) -> Result<(), StackMiss> {
    stacks.push_on(lane, item)
}

fn main() {
    let ncpu = pcpu_rseq::possible_cpus();
    let cells: Vec<AtomicI64> = (0..ncpu * 2).map(|_| AtomicI64::new(0)).collect();
    let slot = AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize));
    let site = Site {
        slot: AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize)),
        params: FoldParams::new(8, ncpu, 32),
    };
    let stacks = PercpuStacks::new(ncpu, 4).unwrap();
    let _ = black_box(pcpu_section_add_fold_with(
        black_box(&slot),
        &site.params,
        1,
    ));
    let _ = black_box(pcpu_section_add_fold_beside(black_box(&site), 1));
    let through = ThroughSite {
        slot: AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize)),
        params: std::sync::atomic::AtomicPtr::new(&site.params as *const FoldParams as *mut _),
    };
    let _ = black_box(pcpu_section_add_fold_through(black_box(&through), 1));
    let _ = black_box(pcpu_section_add_fold_with_offset(&slot, &site.params, 0, 1));
    let _ = black_box(pcpu_section_push(&stacks, 1));
    let _ = black_box(pcpu_section_push_on(&stacks, 0, 1));
    let _ = black_box(pcpu_section_pop(&stacks));
    println!(
        "mode {:?}, registration {:?}",
        pcpu_rseq::mode(),
        pcpu_rseq::registration()
    );
}
