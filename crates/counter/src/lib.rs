#![doc = include_str!("../README.md")]
//!
//! ## How a counter works
//!
//! - `add` is one non-atomic add to this CPU's cell inside a restartable sequence (no `lock`
//!   prefix, no shared cache line); the CPU's part folds into a central count at ±batch, and a
//!   counter whose folds from several CPUs keep that count's cache line moving widens its
//!   batch (see [`PercpuCounter::error_bound`]);
//! - a counter is two words: in the default lazy mode an inline count (one `fetch_add` per
//!   add, no other memory, usable in a `static` through [`PercpuCounter::new_const`]) until
//!   its adds show several CPUs updating it at once; then its state word points at a 16-byte
//!   header in the domain's own mmap'd header storage and it takes a per-CPU slot;
//! - creating and destroying header counters goes through per-CPU caches of free headers and
//!   slots (no global lock, no `malloc` or `free` on the common path);
//! - [`Domain::compact`] moves live counters out of sparse pagesets and gives the memory back.
//!
//! Domains live for the rest of the process ([`DomainBuilder::build`] returns
//! `&'static Domain`), so counters carry no lifetime and fit in structs, `static`s and the
//! `metrics` facade. `docs/ARCHITECTURE.md` describes the layers.
//!
//! ```
//! use pcpu_counter::{Domain, PercpuCounter};
//! use std::cmp::Ordering;
//!
//! let rss = PercpuCounter::new(0);
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| (0..10_000).for_each(|_| rss.inc()));
//!     }
//! });
//! assert_eq!(rss.sum(), 20_000);
//! assert_eq!(rss.compare(19_000), Ordering::Greater);
//! assert!(rss.limited_add(20_010, 10));
//! assert!(!rss.limited_add(20_010, 1));
//! rss.set(5).unwrap();
//! assert_eq!(rss.sum(), 5);
//! Domain::global().compact().unwrap();
//! ```
//!
//! ## Compared with Linux's `percpu_counter`
//!
//! | Linux | here | difference |
//! |---|---|---|
//! | `percpu_counter_init` | [`PercpuCounter::new`] / [`try_new`](PercpuCounter::try_new) / [`new_const`](PercpuCounter::new_const) | no global lock or list: headers and slots come from per-CPU caches; lazy (inline) by default |
//! | `percpu_counter_init_many` | [`PercpuCounter::new_many`] | |
//! | `percpu_counter_add`, `_add_batch` | [`add`](PercpuCounter::add), [`add_batch`](PercpuCounter::add_batch) | the fold is part of the same rseq critical section; no spinlock |
//! | `percpu_counter_batch`, fixed at boot | [`DomainBuilder::batch`], [`DomainBuilder::max_batch`] | same default (`max(32, 2 × ncpu)`); a contended counter doubles its own batch, up to `max_batch` (`max(4096, batch)` by default), and [`error_bound`](PercpuCounter::error_bound) grows with it; `max_batch(batch)` keeps Linux's fixed batch |
//! | `percpu_counter_read`, `_read_positive` | [`read`](PercpuCounter::read), [`read_positive`](PercpuCounter::read_positive) | |
//! | `percpu_counter_sum`, `_sum_positive` | [`sum`](PercpuCounter::sum), [`sum_positive`](PercpuCounter::sum_positive) | no lock; exact when quiescent, else off by adds and folds in flight |
//! | `percpu_counter_set` | [`set`](PercpuCounter::set) | one grace period |
//! | `percpu_counter_compare` | [`compare`](PercpuCounter::compare) | |
//! | `percpu_counter_limited_add` | [`limited_add`](PercpuCounter::limited_add) | upper limit only; negative deltas always added |
//! | CPU hotplug fold | — | cells of every possible CPU are summed; nothing to fold |
//! | — | [`Domain::compact`] | relocates live counters and releases memory |
#![cfg_attr(docsrs, feature(doc_cfg), doc(auto_cfg(hide(loom))))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// Under `--cfg loom` only the counter's own words and their steps are built (the layers
// below map real memory): `src/loom_tests.rs` models them against pcpu-migrate's header.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

/// A `tracing` event when the `tracing` feature is on; nothing otherwise (the arguments are
/// not evaluated then). Slow paths only: never on an add's fast path.
#[cfg(not(loom))]
macro_rules! slow_path_event {
    ($level:ident, $($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        tracing::$level!($($arg)*);
    }};
}
#[cfg(not(loom))]
pub(crate) use slow_path_event;

mod clock;
#[cfg(not(loom))]
mod compactor;
#[cfg(not(loom))]
mod counter;
#[cfg(not(loom))]
mod domain;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod flags;
#[cfg(not(loom))]
mod forward;
#[cfg(not(loom))]
mod group;
#[cfg(not(loom))]
mod headers;
mod lazy;
#[cfg(not(loom))]
mod levels;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(feature = "metrics", not(loom)))]
mod metrics_impl;
#[cfg(all(feature = "prometheus-client", not(loom)))]
pub mod prometheus;
#[cfg(not(loom))]
mod registry;
#[cfg(not(loom))]
mod stats;
#[cfg(not(loom))]
mod widen;
mod word;
mod words;

#[cfg(not(loom))]
#[doc(hidden)]
pub use clock::simulate_fold_clock;
#[cfg(not(loom))]
pub use compactor::Compactor;
#[cfg(not(loom))]
pub use counter::PercpuCounter;
#[cfg(not(loom))]
pub use domain::{Backend, CounterMode, Domain, DomainBuilder};
#[cfg(not(loom))]
pub use error::CounterError;
#[cfg(not(loom))]
pub use group::{PercpuCounterGroup, MAX_GROUP};
#[cfg(all(feature = "metrics", not(loom)))]
pub use metrics_impl::{PcpuRecorder, PcpuStorage};
#[cfg(not(loom))]
pub use pcpu_migrate::{CompactPolicy, CompactReport, Waste};
/// Opened first in a signal handler that updates counters: see
/// [`PercpuCounter::add`](crate::PercpuCounter::add)'s "Signal handlers".
pub use pcpu_rseq::{signal_handler_scope, SignalHandlerScope};
#[cfg(not(loom))]
pub use stats::{DomainStats, DomainTotals, SpaceStats};
