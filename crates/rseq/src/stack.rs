//! Per-CPU stacks of words: the fast path of the slot caches above this crate.
//!
//! Each CPU owns one stack, cache-line aligned so that no two CPUs share a line: word 0
//! `top` (the number of items), word 1 `flags` ([`STOPPED`]: another thread owns the stack;
//! [`LOCKED`]: portable backend), then the items, bottom first (`stack_layout.rs`, which the
//! sections share).
//!
//! With rseq, pop and push are critical sections that check `flags == 0`; pop commits by
//! storing `top - 1`, push writes the item above `top` and commits by storing `top + 1`
//! (tcmalloc's discipline). With the portable backend they take a per-CPU try-lock in `flags`
//! and report [`StackMiss::Slow`] rather than wait.
//!
//! Another thread takes a CPU's stack with [`PercpuStacks::try_stop`]: set [`STOPPED`], fence
//! that CPU (every section that began before has committed or aborted, every later one sees
//! the flag), wait for a portable lock holder to leave, and then it has the stack to itself
//! until the [`StoppedStack`] is dropped. The owning CPU meanwhile gets `Slow` and goes to the
//! shared pool; it never waits.

use crate::stack_layout::{FLAGS, ITEMS, TOP};
use crate::sync::{yield_now, AtomicUsize, Ordering};
use crate::{arch, thread, thread_state};
use std::io;

/// `flags` bit: the stack is stopped; its CPU takes the slow path.
pub const STOPPED: usize = 1;
/// `flags` bit: a portable-backend operation holds the stack.
pub const LOCKED: usize = 2;

const WORDS_PER_LINE: usize = 8;

/// Why a stack operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackMiss {
    /// Pop found this CPU's stack empty.
    Empty,
    /// Push found this CPU's stack full.
    Full,
    /// The stack is stopped or busy, or the thread cannot run per-CPU operations.
    Slow,
}

/// Invalid dimensions for [`PercpuStacks::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackConfigError {
    /// `ncpu` or `capacity` was 0.
    Zero,
    /// `ncpu × capacity` does not fit in memory.
    TooLarge,
}

impl core::fmt::Display for StackConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StackConfigError::Zero => {
                f.write_str("per-CPU stacks need at least one CPU and one item")
            }
            StackConfigError::TooLarge => {
                f.write_str("per-CPU stacks too large for the address space")
            }
        }
    }
}

impl std::error::Error for StackConfigError {}

/// Why [`PercpuStacks::try_stop`] failed.
#[derive(Debug)]
pub enum StopError {
    /// No such CPU in this set of stacks.
    OutOfRange,
    /// Another thread holds this CPU's stack stopped.
    AlreadyStopped,
    /// The fence failed; the stack was restarted.
    Fence(io::Error),
}

impl core::fmt::Display for StopError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StopError::OutOfRange => f.write_str("CPU out of range"),
            StopError::AlreadyStopped => f.write_str("stack already stopped by another thread"),
            StopError::Fence(e) => write!(f, "fence failed: {e}"),
        }
    }
}

impl std::error::Error for StopError {}

#[repr(C, align(64))]
struct Line([AtomicUsize; WORDS_PER_LINE]);

impl Line {
    fn new() -> Self {
        Line(core::array::from_fn(|_| AtomicUsize::new(0)))
    }
}

/// One stack of up to `capacity` words for each of `ncpu` CPUs.
///
/// ```
/// use pcpu_rseq::{PercpuStacks, StackMiss};
/// let stacks = PercpuStacks::new(pcpu_rseq::possible_cpus(), 4).unwrap();
/// // A push may miss (slow path); count only what went in.
/// let pushed = (10..13).filter(|&i| stacks.push(i).is_ok()).count();
/// let mut popped = Vec::new();
/// loop {
///     match stacks.pop() {
///         Ok(item) => popped.push(item),
///         Err(StackMiss::Empty) => break,
///         Err(_) => break, // slow path: a real cache would go to its pool
///     }
/// }
/// assert!(popped.len() <= pushed);
/// ```
pub struct PercpuStacks {
    lines: Box<[Line]>,
    ncpu: usize,
    capacity: usize,
    stride_words: usize,
}

impl core::fmt::Debug for PercpuStacks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PercpuStacks")
            .field("ncpu", &self.ncpu)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl PercpuStacks {
    /// Allocates `ncpu` empty stacks of `capacity` items each.
    ///
    /// # Errors
    /// [`StackConfigError`] for a zero dimension or a size that overflows.
    pub fn new(ncpu: usize, capacity: usize) -> Result<Self, StackConfigError> {
        if ncpu == 0 || capacity == 0 {
            return Err(StackConfigError::Zero);
        }
        let words = capacity
            .checked_add(ITEMS)
            .ok_or(StackConfigError::TooLarge)?;
        let stride_words = words.div_ceil(WORDS_PER_LINE) * WORDS_PER_LINE;
        let lines = ncpu
            .checked_mul(stride_words / WORDS_PER_LINE)
            .filter(|&l| l.checked_mul(64).is_some_and(|b| b <= isize::MAX as usize))
            .ok_or(StackConfigError::TooLarge)?;
        Ok(PercpuStacks {
            lines: (0..lines).map(|_| Line::new()).collect(),
            ncpu,
            capacity,
            stride_words,
        })
    }

    /// Number of CPUs (stacks).
    pub fn ncpu(&self) -> usize {
        self.ncpu
    }

    /// Items each stack can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn word(&self, cpu: usize, index: usize) -> &AtomicUsize {
        let w = cpu * self.stride_words + index;
        &self.lines[w / WORDS_PER_LINE].0[w % WORDS_PER_LINE]
    }

    /// Number of items on `cpu`'s stack right now (racy unless stopped; 0 out of range).
    pub fn len_hint(&self, cpu: usize) -> usize {
        if cpu >= self.ncpu {
            return 0;
        }
        self.word(cpu, TOP).load(Ordering::Relaxed)
    }

    /// Pops an item from the current CPU's stack.
    ///
    /// # Errors
    /// [`StackMiss::Empty`] if it is empty, [`StackMiss::Slow`] if it is stopped or busy or the
    /// thread cannot run per-CPU operations.
    #[inline]
    pub fn pop(&self) -> Result<usize, StackMiss> {
        let state = thread::state();
        if arch::HAS_RSEQ_ASM && state > thread_state::NO_RSEQ {
            // SAFETY: `state` is this thread's registered area; `lines` is `ncpu` stacks of
            // `stride_words` 8-byte words laid out as the section expects, `top <= capacity`
            // always holds, and the memory lives as long as `self`.
            let out = unsafe {
                arch::pop(
                    state as *mut _,
                    self.lines.as_ptr() as *mut u8,
                    self.stride_words * 8,
                    self.ncpu,
                )
            };
            if out.aborts != 0 {
                thread::record_aborts(out.aborts);
            }
            return match out.status {
                0 => Ok(out.value),
                2 => Err(StackMiss::Empty),
                _ => Err(StackMiss::Slow),
            };
        }
        if state == thread_state::NO_RSEQ {
            return Err(StackMiss::Slow);
        }
        self.with_portable_lock(|cpu| {
            let top = self.word(cpu, TOP);
            let n = top.load(Ordering::Relaxed);
            if n == 0 {
                return Err(StackMiss::Empty);
            }
            let item = self.word(cpu, ITEMS + n - 1).load(Ordering::Relaxed);
            top.store(n - 1, Ordering::Relaxed);
            Ok(item)
        })
    }

    /// Pushes `item` onto the current CPU's stack.
    ///
    /// # Errors
    /// [`StackMiss::Full`] if it is full, [`StackMiss::Slow`] as for [`pop`](Self::pop); the
    /// item was not stored then.
    #[inline]
    pub fn push(&self, item: usize) -> Result<(), StackMiss> {
        self.push_where(item, None)
    }

    /// [`push`](Self::push), but only if this thread runs on CPU (lane) `lane`: the lane is
    /// checked inside the critical section that stores the item, so the item lands on
    /// `lane`'s stack or nowhere, even if the thread migrates meanwhile. For a cache that
    /// gives a slot back to the magazine it came from and nowhere else.
    ///
    /// # Errors
    /// As for [`push`](Self::push); [`StackMiss::Slow`] also when this thread is not on
    /// `lane` (or `lane` is not below [`ncpu`](Self::ncpu)). The item was not stored then.
    ///
    /// ```
    /// let stacks = pcpu_rseq::PercpuStacks::new(pcpu_rseq::possible_cpus(), 4).unwrap();
    /// let here = pcpu_rseq::current_cpu() % stacks.ncpu();
    /// let elsewhere = (here + 1) % stacks.ncpu();
    /// if elsewhere != here {
    ///     // Whatever CPU this thread runs on now, it is not both.
    ///     let results = [stacks.push_on(here, 1), stacks.push_on(elsewhere, 2)];
    ///     assert!(results.iter().filter(|r| r.is_ok()).count() <= 1);
    /// }
    /// assert_eq!(stacks.push_on(stacks.ncpu(), 3), Err(pcpu_rseq::StackMiss::Slow));
    /// ```
    #[inline]
    pub fn push_on(&self, lane: usize, item: usize) -> Result<(), StackMiss> {
        if lane >= self.ncpu {
            return Err(StackMiss::Slow);
        }
        self.push_where(item, Some(lane))
    }

    /// [`push`](Self::push) (`only` is `None`) or [`push_on`](Self::push_on) (`Some(lane)`,
    /// below `ncpu`). Always inlined, so each caller's `only` is a constant and keeps one
    /// section.
    #[inline(always)]
    fn push_where(&self, item: usize, only: Option<usize>) -> Result<(), StackMiss> {
        let state = thread::state();
        if arch::HAS_RSEQ_ASM && state > thread_state::NO_RSEQ {
            let (area, lines, stride) = (
                state as *mut _,
                self.lines.as_ptr() as *mut u8,
                self.stride_words * 8,
            );
            // SAFETY: as in `pop`; every stack has room for `capacity` items; a `lane` is
            // below the number of stacks (`push_on` checks it).
            let out = unsafe {
                match only {
                    None => arch::push(area, lines, stride, self.ncpu, self.capacity, item),
                    Some(lane) => arch::push_on(area, lines, stride, lane, self.capacity, item),
                }
            };
            if out.aborts != 0 {
                thread::record_aborts(out.aborts);
            }
            return match out.status {
                0 => Ok(()),
                2 => Err(StackMiss::Full),
                _ => Err(StackMiss::Slow),
            };
        }
        if state == thread_state::NO_RSEQ {
            return Err(StackMiss::Slow);
        }
        self.with_portable_lock(|cpu| {
            if only.is_some_and(|lane| lane != cpu) {
                return Err(StackMiss::Slow);
            }
            self.portable_push(cpu, item)
        })
    }

    /// The portable push onto `cpu`'s stack, whose try-lock the caller holds.
    fn portable_push(&self, cpu: usize, item: usize) -> Result<(), StackMiss> {
        let top = self.word(cpu, TOP);
        let n = top.load(Ordering::Relaxed);
        if n >= self.capacity {
            return Err(StackMiss::Full);
        }
        self.word(cpu, ITEMS + n).store(item, Ordering::Relaxed);
        top.store(n + 1, Ordering::Relaxed);
        Ok(())
    }

    /// The portable backend: try-lock the current CPU's stack, run `op` on that CPU, unlock.
    /// Out of line, so the rseq fast paths of `pop` and `push` stay small (without it, rustc
    /// inlined it into them once `ops.rs` had fewer portable bodies).
    #[cold]
    #[inline(never)]
    fn with_portable_lock<R>(
        &self,
        op: impl FnOnce(usize) -> Result<R, StackMiss>,
    ) -> Result<R, StackMiss> {
        let cpu = thread::portable_cpu() % self.ncpu;
        let flags = self.word(cpu, FLAGS);
        if flags
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(StackMiss::Slow);
        }
        let result = op(cpu);
        flags.fetch_and(!LOCKED, Ordering::Release);
        result
    }

    /// Stops `cpu`'s stack and fences that CPU, giving the caller sole access until the
    /// returned guard is dropped. Meanwhile that CPU's pops and pushes report
    /// [`StackMiss::Slow`].
    ///
    /// # Errors
    /// [`StopError::OutOfRange`], [`StopError::AlreadyStopped`] (another stopper holds it), or
    /// [`StopError::Fence`] if the fence failed (the stack is restarted before returning).
    pub fn try_stop(&self, cpu: usize) -> Result<StoppedStack<'_>, StopError> {
        if cpu >= self.ncpu {
            return Err(StopError::OutOfRange);
        }
        let flags = self.word(cpu, FLAGS);
        if flags.fetch_or(STOPPED, Ordering::AcqRel) & STOPPED != 0 {
            return Err(StopError::AlreadyStopped);
        }
        let stopped = StoppedStack { stacks: self, cpu };
        if crate::mode() == crate::Mode::Rseq {
            // Every section on lane `cpu` that began before the flag was visible commits or
            // aborts here; later ones see the flag and leave without committing. (With lanes
            // by `mm_cid` the lane's thread may run on any CPU: the fence covers all.)
            crate::fence::fence_lane(cpu).map_err(StopError::Fence)?;
        }
        while flags.load(Ordering::Acquire) & LOCKED != 0 {
            yield_now();
        }
        Ok(stopped)
    }
}

/// Sole access to one CPU's stack; restarts it when dropped.
pub struct StoppedStack<'a> {
    stacks: &'a PercpuStacks,
    cpu: usize,
}

impl core::fmt::Debug for StoppedStack<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoppedStack")
            .field("cpu", &self.cpu)
            .field("len", &self.len())
            .finish()
    }
}

impl StoppedStack<'_> {
    /// The CPU whose stack this is.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    fn top(&self) -> &AtomicUsize {
        self.stacks.word(self.cpu, TOP)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.top().load(Ordering::Relaxed)
    }

    /// True if no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Item `i` from the bottom.
    pub fn get(&self, i: usize) -> Option<usize> {
        (i < self.len()).then(|| {
            self.stacks
                .word(self.cpu, ITEMS + i)
                .load(Ordering::Relaxed)
        })
    }

    /// Pops the top item.
    pub fn pop(&mut self) -> Option<usize> {
        let n = self.len();
        let item = self.get(n.checked_sub(1)?)?;
        self.top().store(n - 1, Ordering::Relaxed);
        Some(item)
    }

    /// Pushes an item.
    ///
    /// # Errors
    /// [`StackMiss::Full`] if the stack is at capacity.
    pub fn push(&mut self, item: usize) -> Result<(), StackMiss> {
        let n = self.len();
        if n >= self.stacks.capacity {
            return Err(StackMiss::Full);
        }
        self.stacks
            .word(self.cpu, ITEMS + n)
            .store(item, Ordering::Relaxed);
        self.top().store(n + 1, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps the items for which `keep` returns true (in order), and passes every other one to
    /// `removed`. This is how a compactor pulls one pageset's free slots out of a cache.
    ///
    /// Panic-safe: should `keep` or `removed` panic, the stack still holds every item not
    /// yet passed to `removed`, each once (the item `keep` panicked on is kept), so no item
    /// is both handed on and left to be popped.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool, mut removed: impl FnMut(usize)) {
        let mut pass = Retain {
            n: self.len(),
            read: 0,
            kept: 0,
            stack: self,
        };
        while pass.read < pass.n {
            let item = pass.stack.item(pass.read);
            if keep(item) {
                pass.stack.set_item(pass.kept, item);
                pass.kept += 1;
                pass.read += 1;
            } else {
                // Read past it first: from here on `removed` owns it, panic or not.
                pass.read += 1;
                removed(item);
            }
        }
    }

    fn item(&self, i: usize) -> usize {
        self.stacks
            .word(self.cpu, ITEMS + i)
            .load(Ordering::Relaxed)
    }

    fn set_item(&self, i: usize, item: usize) {
        self.stacks
            .word(self.cpu, ITEMS + i)
            .store(item, Ordering::Relaxed);
    }
}

/// One [`StoppedStack::retain`] pass: items `..kept` are kept, `kept..read` were handed to
/// `removed`, `read..n` are not looked at yet. Dropped at the end of the pass or by a panic in
/// it, it moves the unread items down after the kept ones and sets the top.
struct Retain<'a, 'b> {
    stack: &'a StoppedStack<'b>,
    n: usize,
    read: usize,
    kept: usize,
}

impl Drop for Retain<'_, '_> {
    fn drop(&mut self) {
        let mut top = self.kept;
        for i in self.read..self.n {
            self.stack.set_item(top, self.stack.item(i));
            top += 1;
        }
        self.stack.top().store(top, Ordering::Relaxed);
    }
}

impl Drop for StoppedStack<'_> {
    fn drop(&mut self) {
        self.stacks
            .word(self.cpu, FLAGS)
            .fetch_and(!STOPPED, Ordering::Release);
    }
}
