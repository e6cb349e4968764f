#![doc = include_str!("../README.md")]
//!
//! ## In this crate
//!
//! What this crate gives the layers above it:
//! - the ABI ([`abi`]): glibc's registration found at run time (`__rseq_offset`,
//!   `__rseq_size` through `dlsym`), or a per-thread registration of our own;
//! - critical sections: per-CPU add-and-fold ([`add_fold_with`], [`add_fold_with_offset`],
//!   [`add_fold_beside`]), and per-CPU stacks
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
//! `cfg` (`src/arch/`); a port to another architecture adds one file there.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod abi;
mod arch;
mod cpus;
pub mod epoch;
mod fence;
pub mod membarrier;
mod mode;
mod native;
mod ops;
mod reentry;
mod stack;
pub mod sync;
mod thread;

pub use cpus::{parse_cpu_list, possible_cpus, POSSIBLE_PATH};
pub use fence::{epoch_grace_period, fence_cpu, synchronize};
pub use mode::{
    env_forces_cpu_id, env_forces_portable, force_portable, id_source, mode, IdSource, Mode,
    ModeAlreadyChosen, ENV_VAR, EXPECT_ENV_VAR, ID_ENV_VAR,
};
pub use native::kernel_feature_size;
pub use ops::{
    add_fold_beside, add_fold_with, add_fold_with_offset, current_cpu, FoldParams, SlowPath,
    DISABLED, MAX_FOLD,
};
pub use reentry::{
    enter_slow_path, in_slow_path, signal_handler_scope, SignalHandlerScope, SlowPathGuard,
};
pub use stack::{
    PercpuStacks, StackConfigError, StackMiss, StopError, StoppedStack, LOCKED, STOPPED,
};
pub use thread::{aborts_on_this_thread, aborts_total, registration, simulate_cpu, Registration};
