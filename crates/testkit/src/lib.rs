//! What the tests and fuzz targets of the pcpu crates share, so that each is written once:
//!
//! - [`affinity`]: the CPUs a thread may run on, and pinning it to one;
//! - [`bench`](mod@bench): a multi-threaded timing loop for the criterion benches;
//! - [`stress`]: `PCPU_STRESS_SCALE`/`PCPU_STRESS_SECS`-style knobs and the sizes they scale;
//! - [`signals`]: SIGUSR1 handlers and the storm that hits worker threads with them;
//! - [`rlimit`]: a test binary re-running one of its tests as a child under `RLIMIT_AS`;
//! - [`HeapSource`]: a heap-backed `pcpu_cache::SlotSource` test double (no mmap, so the loom
//!   models can use it);
//! - [`pageset_model`]: the pageset pool's reference model, run by pcpu-pageset's proptest and
//!   the `pageset` fuzz target;
//! - [`cache_model`]: what a slot cache holds, over any pool, run by pcpu-cache's proptest
//!   and the `cache` fuzz target;
//! - [`space_obj`]: a counter-like object over a pcpu-migrate space (header, central count),
//!   driven by pcpu-migrate's model and stress tests and the `migrate` fuzz target.
//!
//! Not published (`publish = false`); the crates name it as a path-only dev-dependency.

pub mod affinity;
pub mod bench;
pub mod cache_model;
mod heap_source;
#[cfg(not(loom))]
pub mod pageset_model;
#[cfg(unix)]
pub mod rlimit;
pub mod signals;
#[cfg(not(loom))]
pub mod space_obj;
pub mod stress;

pub use heap_source::{HeapSource, HeapSourceError};
