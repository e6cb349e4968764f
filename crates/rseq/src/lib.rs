#![doc = include_str!("../README.md")]
//!
//! ## In this crate
//!
//! What this crate gives the layers above it:
//! - the ABI ([`abi`]): glibc's registration found at run time (`__rseq_offset`,
//!   `__rseq_size` through `dlsym`), or a per-thread registration of our own;
//! - critical sections: per-CPU add-and-fold ([`add_fold_with`], [`add_fold_with_offset`],
//!   [`add_fold_beside`], [`add_fold_through`], [`add_fold_indexed`]), and per-CPU stacks
//!   ([`PercpuStacks`] pop/push, stop/fence/restart);
//! - grace periods: [`synchronize`] and [`fence_cpu`] (membarrier rseq fences, or
//!   crossbeam-epoch on the portable backend);
//! - [`possible_cpus`] and [`current_cpu`];
//! - the portable backend ([`Mode::Portable`]): the same operations on atomics, forced with
//!   `PCPU_RSEQ=off` or [`force_portable`], and the backend loom and proptest drive
//!   ([`simulate_cpu`]).
//!
//! x86_64 and aarch64 Linux have rseq sections; every other target (and `--cfg loom`) runs
//! the portable backend. The sections of each architecture live in one module behind one
//! `cfg` (`src/arch/`); a port to another architecture adds one file there, and its rseq
//! signature to [`abi::RSEQ_SIG`].
//!
//! ## No safe call can cause undefined behaviour
//!
//! Whatever safe code passes in, this crate writes only memory it owns, and never lets an
//! rseq section and an atomic update race on the same word:
//!
//! - the cell operations ([`add_fold_with`], [`add_fold_with_offset`], [`add_fold_beside`],
//!   [`add_fold_through`], [`add_fold_indexed`]) write through an address the caller puts in a slot word: they are
//!   `unsafe`, and their contract covers the cells, their lifetime (a grace period after the
//!   slot word changes), and the lane bound of the [`FoldParams`] they read (its safe [`FoldParams::raise_ncpu`]
//!   only matters to a caller of those functions, which must keep every bound it lets the
//!   parameters take inside its cells);
//! - the fold table ([`reserve_fold_entries`]) hands each entry's parameters, and so the
//!   power to change them, only to the holder of its [`FoldEntry`]; anyone may read an entry
//!   by key ([`fold_entry_params`], read-only), and an entry never handed out reads lane
//!   bound 0 (every section on it takes the slow path);
//! - [`simulate_cpu`] is `unsafe`: a simulated thread runs the portable backend (atomic
//!   read-modify-writes, a try-lock on stacks) even in a process on the rseq backend, whose
//!   sections update the same memory with plain loads and stores; its contract keeps simulated
//!   threads off memory that rseq threads update (a `compile_fail` doctest checks that a safe
//!   call no longer compiles). Every other way to the portable backend is process-wide
//!   ([`force_portable`], `PCPU_RSEQ=off`, a failed probe), and [`mode()`] never changes once
//!   chosen, so rseq and portable updates never meet otherwise;
//! - [`PercpuStacks`] owns its memory: a section indexes it only below its own CPU count and
//!   capacity (sizes checked for overflow in [`PercpuStacks::new`]), items are plain `usize`s,
//!   and a [`StoppedStack`] is handed out only after [`try_stop`](PercpuStacks::try_stop) has
//!   set the stopped flag and fenced the lane (or, on the portable backend, waited out the
//!   lock holder), so no section commits to it meanwhile; leaking the guard leaves the stack
//!   stopped (every pop and push takes the slow path), nothing worse;
//! - [`abi::read_cpu_id`] and [`abi::read_mm_cid`] take a raw area pointer and are `unsafe`;
//!   [`abi::RseqArea`] is plain data (this crate registers only its own thread-local area);
//!   [`membarrier`], [`synchronize`], [`fence_cpu`] and [`epoch_grace_period`] only make
//!   system calls or wait (a CPU out of range is an error), and [`epoch::pin`] hands out a
//!   crossbeam-epoch guard, whose own unsafe calls stay `unsafe`;
//! - [`mode()`], [`force_portable`], [`id_source`] and the environment checks decide once with a
//!   compare-and-swap; [`current_cpu`] reads only this thread's registered area; the slow-path
//!   marks ([`enter_slow_path`], [`signal_handler_scope`]) are thread-local counters (leaking
//!   one only sends this thread's operations to their slow paths); [`sync`] wraps std (or
//!   loom) types.
//!
//! Code that runs in a signal handler must keep to async-signal-safe steps; installing the
//! handler is `unsafe` (`sigaction`) and that contract is its author's: pcpu's operations take
//! only such steps inside a [`signal_handler_scope`], but [`epoch::pin`] called directly from
//! a handler is not one (crossbeam's pin is not reentrant).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod abi;
mod arch;
mod cpus;
pub mod epoch;
mod fence;
mod fold_params;
mod fold_table;
pub mod membarrier;
mod mode;
mod native;
mod ops;
mod reentry;
mod stack;
mod stack_layout;
pub mod sync;
mod thread;
mod thread_state;

pub use cpus::{parse_cpu_list, possible_cpus, POSSIBLE_PATH};
pub use fence::{epoch_grace_period, fence_cpu, synchronize};
pub use fold_params::{FoldParams, MAX_FOLD};
pub use fold_table::{
    fold_entry_params, fold_entry_tag, reserve_fold_entries, FoldEntry, FoldTableFull, FoldView,
    FOLD_TABLE_LEN,
};
pub use mode::{
    env_forces_cpu_id, env_forces_portable, force_portable, id_source, mode, IdSource, Mode,
    ModeAlreadyChosen, ENV_VAR, EXPECT_ENV_VAR, ID_ENV_VAR,
};
pub use native::kernel_feature_size;
pub use ops::{
    add_fold_beside, add_fold_indexed, add_fold_through, add_fold_with, add_fold_with_offset,
    current_cpu, registered_cpu_id, slot_cells, slot_word, SlowPath, DISABLED, LIVE,
};
pub use reentry::{
    enter_slow_path, in_slow_path, signal_handler_scope, SignalHandlerScope, SlowPathGuard,
};
pub use stack::{
    PercpuStacks, StackConfigError, StackMiss, StopError, StoppedStack, LOCKED, STOPPED,
};
pub use thread::{aborts_on_this_thread, aborts_total, registration, simulate_cpu};
pub use thread_state::Registration;
