//! Peer: a model of Linux's `percpu_counter` (lib/percpu_counter.c) on top of a model of the
//! kernel's per-CPU allocator (mm/percpu.c), both written for this benchmark.
//!
//! - Allocation: one global mutex (`pcpu_alloc_mutex`) around slot allocation in *chunks*; a
//!   chunk holds one 32 KiB unit per possible CPU, and a counter owns the same 8-byte offset in
//!   every unit. A new chunk is populated (its pages touched) for every possible CPU, as the
//!   kernel populates a region for all possible CPUs. Fully free chunks are released, except
//!   the last one.
//! - Init/destroy: the counter is also linked into a global list of counters (for CPU hotplug)
//!   under a second global lock (`percpu_counters_lock`).
//! - Add: `percpu_counter_add_batch` with `batch = max(32, 2 * ncpu)`: add to this CPU's cell
//!   while `|cell + delta| < batch`, else fold the cell into the central count under the
//!   counter's lock. User space can migrate between reading the CPU and writing, so the cell
//!   update is a CAS instead of the kernel's `this_cpu_try_cmpxchg`.
//! - `read` is the central count, `sum` folds every CPU's cell under the lock, and `compare`
//!   is `__percpu_counter_compare` (approximate when far from `rhs`, exact sum otherwise).

use super::{getcpu, BenchCounter};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Cells per CPU unit in a chunk (32 KiB of i64 per CPU).
const UNIT_CELLS: usize = 4096;

/// One chunk: `ncpu` units of `UNIT_CELLS` cells, unit `c` at `cells[c * UNIT_CELLS..]`.
struct Chunk {
    cells: Box<[AtomicI64]>,
    free: Vec<u32>,
}

/// The per-CPU allocator for one CPU count.
struct Allocator {
    ncpu: usize,
    chunks: Vec<Option<Chunk>>,
    /// Indices of chunks with a free offset.
    with_space: BTreeSet<usize>,
    live_chunks: usize,
}

/// The allocators (one per simulated CPU count), all behind one global mutex.
static PCPU_ALLOC: Mutex<Vec<Allocator>> = Mutex::new(Vec::new());

/// The global list of live counters (as addresses of their `Inner`).
static PERCPU_COUNTERS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

impl Allocator {
    fn alloc(&mut self) -> (usize, u32, *const AtomicI64) {
        let idx = match self.with_space.first() {
            Some(&i) => i,
            None => {
                let n = self.ncpu * UNIT_CELLS;
                let cells: Box<[AtomicI64]> = (0..n).map(|_| AtomicI64::new(0)).collect();
                let chunk = Chunk {
                    cells,
                    free: (0..UNIT_CELLS as u32).rev().collect(),
                };
                let i = match self.chunks.iter().position(Option::is_none) {
                    Some(i) => {
                        self.chunks[i] = Some(chunk);
                        i
                    }
                    None => {
                        self.chunks.push(Some(chunk));
                        self.chunks.len() - 1
                    }
                };
                self.live_chunks += 1;
                self.with_space.insert(i);
                i
            }
        };
        let chunk = self.chunks[idx].as_mut().expect("listed chunk exists");
        let off = chunk.free.pop().expect("listed chunk has space");
        if chunk.free.is_empty() {
            self.with_space.remove(&idx);
        }
        // pcpu_alloc zeroes the area on every CPU.
        for cpu in 0..self.ncpu {
            chunk.cells[cpu * UNIT_CELLS + off as usize].store(0, Ordering::Relaxed);
        }
        let base = &chunk.cells[off as usize] as *const AtomicI64;
        (idx, off, base)
    }

    fn free(&mut self, idx: usize, off: u32) {
        let chunk = self.chunks[idx].as_mut().expect("allocated chunk exists");
        chunk.free.push(off);
        self.with_space.insert(idx);
        if chunk.free.len() == UNIT_CELLS && self.live_chunks > 1 {
            self.chunks[idx] = None;
            self.with_space.remove(&idx);
            self.live_chunks -= 1;
        }
    }
}

/// The counter's own memory (`struct percpu_counter`).
struct Inner {
    /// The central count, written under `lock`, read without it.
    count: AtomicI64,
    lock: Mutex<()>,
    /// CPU 0's cell; CPU `c`'s is `c * UNIT_CELLS` cells further.
    cells: *const AtomicI64,
    ncpu: usize,
    batch: i64,
    chunk: usize,
    off: u32,
    /// Index in `PERCPU_COUNTERS`, changed under that lock.
    list_idx: AtomicUsize,
}

// SAFETY: `cells` points into a chunk that stays allocated while this counter holds its offset
// (the allocator frees only fully free chunks), and it is only accessed through atomics.
unsafe impl Send for Inner {}
// SAFETY: as for Send; all shared mutation goes through atomics or the mutex.
unsafe impl Sync for Inner {}

impl Inner {
    #[inline]
    fn cell(&self, cpu: usize) -> &AtomicI64 {
        debug_assert!(cpu < self.ncpu);
        // SAFETY: `cpu < ncpu`, so the cell lies in this chunk's unit `cpu` at our offset, and
        // the chunk outlives the counter (see the Send impl).
        unsafe { &*self.cells.add(cpu * UNIT_CELLS) }
    }

    fn sum(&self) -> i64 {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = self.count.load(Ordering::Relaxed);
        for cpu in 0..self.ncpu {
            s += self.cell(cpu).load(Ordering::Relaxed);
        }
        s
    }
}

/// A model of Linux's `struct percpu_counter`.
pub struct LinuxModel(Box<Inner>);

impl LinuxModel {
    fn init(ncpu: usize, initial: i64) -> Self {
        let ncpu = ncpu.max(1);
        let (chunk, off, cells) = {
            let mut all = PCPU_ALLOC.lock().unwrap_or_else(|e| e.into_inner());
            let i = match all.iter().position(|a| a.ncpu == ncpu) {
                Some(i) => i,
                None => {
                    all.push(Allocator {
                        ncpu,
                        chunks: Vec::new(),
                        with_space: BTreeSet::new(),
                        live_chunks: 0,
                    });
                    all.len() - 1
                }
            };
            all[i].alloc()
        };
        let inner = Box::new(Inner {
            count: AtomicI64::new(initial),
            lock: Mutex::new(()),
            cells,
            ncpu,
            batch: (2 * ncpu as i64).max(32),
            chunk,
            off,
            list_idx: AtomicUsize::new(0),
        });
        let mut list = PERCPU_COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
        inner.list_idx.store(list.len(), Ordering::Relaxed);
        list.push(&*inner as *const Inner as usize);
        drop(list);
        Self(inner)
    }
}

impl Drop for LinuxModel {
    fn drop(&mut self) {
        {
            let mut list = PERCPU_COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
            let idx = self.0.list_idx.load(Ordering::Relaxed);
            list.swap_remove(idx);
            if let Some(&moved) = list.get(idx) {
                // SAFETY: every address in the list is a live `Inner`: it is removed from the
                // list (under this lock) before its box is freed.
                let moved = unsafe { &*(moved as *const Inner) };
                moved.list_idx.store(idx, Ordering::Relaxed);
            }
        }
        let mut all = PCPU_ALLOC.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = all.iter_mut().find(|a| a.ncpu == self.0.ncpu) {
            a.free(self.0.chunk, self.0.off);
        }
    }
}

impl BenchCounter for LinuxModel {
    fn name() -> &'static str {
        "Linux percpu_counter model"
    }
    fn new(initial: i64) -> Self {
        Self::init(super::ncpu(), initial)
    }
    fn new_for_cpus(ncpu: usize, initial: i64) -> Self {
        Self::init(ncpu, initial)
    }
    #[inline(always)]
    fn add(&self, delta: i64) {
        let inner = &*self.0;
        let cell = inner.cell(getcpu() % inner.ncpu);
        let mut cur = cell.load(Ordering::Relaxed);
        loop {
            if (cur + delta).abs() >= inner.batch {
                let _g = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
                let local = cell.swap(0, Ordering::Relaxed);
                let c = inner.count.load(Ordering::Relaxed);
                inner.count.store(c + local + delta, Ordering::Relaxed);
                return;
            }
            match cell.compare_exchange_weak(cur, cur + delta, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
    fn read(&self) -> i64 {
        self.0.count.load(Ordering::Relaxed)
    }
    fn sum(&self) -> i64 {
        self.0.sum()
    }
    fn compare(&self, rhs: i64) -> std::cmp::Ordering {
        let inner = &*self.0;
        let count = inner.count.load(Ordering::Relaxed);
        // The kernel multiplies by num_online_cpus(); here every CPU of the model is online.
        if (count - rhs).abs() > inner.batch * inner.ncpu as i64 {
            return count.cmp(&rhs);
        }
        inner.sum().cmp(&rhs)
    }
    fn size_hint(ncpu: usize) -> usize {
        ncpu * 8 + 128
    }
}
