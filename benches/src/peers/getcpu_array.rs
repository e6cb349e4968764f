//! Peer: `Box<[CachePadded<AtomicI64>]>`, one padded cell per possible CPU, the cell chosen by
//! `sched_getcpu` and updated with an atomic `fetch_add` (a thread may migrate between the two).

use super::{getcpu, BenchCounter};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicI64, Ordering};

/// Per-CPU padded atomics indexed by `sched_getcpu`.
pub struct GetcpuArray {
    initial: i64,
    cells: Box<[CachePadded<AtomicI64>]>,
}

impl BenchCounter for GetcpuArray {
    fn name() -> &'static str {
        "sched_getcpu + padded array"
    }
    fn new(initial: i64) -> Self {
        Self::new_for_cpus(super::ncpu(), initial)
    }
    fn new_for_cpus(ncpu: usize, initial: i64) -> Self {
        Self {
            initial,
            cells: (0..ncpu.max(1))
                .map(|_| CachePadded::new(AtomicI64::new(0)))
                .collect(),
        }
    }
    #[inline(always)]
    fn add(&self, delta: i64) {
        let cpu = getcpu() % self.cells.len();
        self.cells[cpu].fetch_add(delta, Ordering::Relaxed);
    }
    fn read(&self) -> i64 {
        self.sum()
    }
    fn sum(&self) -> i64 {
        self.initial
            + self
                .cells
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<i64>()
    }
    fn size_hint(ncpu: usize) -> usize {
        ncpu * 128 + 64
    }
}
