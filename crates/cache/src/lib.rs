#![doc = include_str!("../README.md")]
//!
//! ## The protocol
//!
//! A [`SlotCache`] owns one pool ([`SlotSource`]) and one magazine per CPU. A magazine is a
//! per-CPU stack of free slot addresses (`pcpu_rseq::PercpuStacks`): a `top` word, a `flags`
//! word and the items, on cache lines no other CPU's magazine shares.
//!
//! - **Why pop and push need no lock.** With rseq, [`SlotCache::alloc`] is one restartable
//!   critical section that reads the CPU id, checks `flags == 0`, reads `top` and the item, and
//!   commits by storing `top - 1`; [`SlotCache::free`] writes the item above `top` and commits
//!   by storing `top + 1`. If the thread is preempted, migrated or signalled before the commit,
//!   the kernel aborts the section and it restarts from the beginning, so a section that commits
//!   ran as if it had the CPU to itself, and only threads of that CPU ever write its magazine.
//!   No atomic read-modify-write, no lock, no allocation, no syscall, no shared cache line.
//!   On the portable backend (no rseq: valgrind, old kernels, `PCPU_RSEQ=off`) the same
//!   operations take an uncontended per-CPU try-lock in `flags` and report "slow" rather than
//!   wait.
//! - **Why stop + fence gives exclusive access.** To touch another CPU's magazine
//!   ([`drain_cpu`](SlotCache::drain_cpu), [`trim`](SlotCache::trim),
//!   [`remove_pageset`](SlotCache::remove_pageset)) the cache sets `STOPPED` in its `flags`,
//!   then fences that CPU with `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, CPU)`: when
//!   the fence returns, every section on that CPU that began before the flag was visible has
//!   committed or aborted, and every later one sees the flag and leaves without committing
//!   (on the portable backend: the flag makes the try-lock fail, and the stopper waits for a
//!   holder to leave). From then on only the stopper writes that magazine, until it restarts
//!   it. Meanwhile that CPU's allocs and frees go to the pool under the lock: a stopped
//!   magazine slows its CPU down, it never blocks it.
//! - **Where the only lock is.** The pool's mutex, taken by a refill (an empty magazine gets a
//!   batch: keep one, push the rest), a spill (a full magazine pops a batch and unassigns it),
//!   the slow paths (stopped or busy magazine: one slot straight from or to the pool), and the
//!   stoppers (after the stop). A thread holding the lock never waits for a stopped magazine
//!   (its pushes just miss and the slot goes back to the pool), and a stopper holds at most one
//!   magazine at a time, so there is no lock-order cycle.
//!
//! Every slot is always in exactly one place: handed out to a user, in one magazine, in the
//! refill/spill batch of a thread that holds the lock, or back in the pool. So at rest
//! `pool.assigned() == live + cached` ([`CacheStats::cached`]).
//!
//! Slots handed out read zero on every CPU: the pool zeroes on assign, and `free` zeroes a
//! slot's cells before caching it, writing only cells that are non-zero (so the pages of CPUs
//! that never wrote the slot get no private copy: a read of an untouched anonymous page maps
//! the shared zero page, which `mincore`, and so the pool's `bytes_resident`, counts as
//! resident although it costs no memory). No syscall is allowed on this path, so unlike the
//! pool's own unassign it cannot ask `/proc/self/pagemap` which pages to skip.
//!
//! Limits: each magazine holds at most `min(capacity, max_cached / ncpu)` slots
//! ([`CacheConfig`]), which bounds the total without a shared counter; refills and spills move
//! `min(batch, that)` slots.
//!
//! ```
//! use pcpu_cache::{CacheConfig, PagesetCache, SlotCache, SlotSource};
//! use pcpu_pageset::{Pool, PoolConfig, SizeClass};
//!
//! // The pool of 8-byte cells, 2 CPUs.
//! let pool = Pool::new(PoolConfig::new(SizeClass::B8).with_ncpu(2))?;
//! let cache: PagesetCache = SlotCache::new(pool, CacheConfig::new().with_batch(8))?;
//! let mut held = Vec::new();
//! for _ in 0..20 {
//!     held.push(cache.alloc()?);
//! }
//! cache.alloc_batch(10, &mut held)?;
//! for slot in held.drain(..) {
//!     // SAFETY: the slot came from `cache` and nothing uses its cells any more.
//!     unsafe { cache.free(slot)? };
//! }
//! let stats = cache.stats();
//! assert_eq!(cache.with_pool(|p| p.assigned()), stats.cached);
//! let first = cache.alloc()?;
//! let pageset = cache.with_pool(|p| p.pageset_of(first)).expect("a slot of the pool");
//! // SAFETY: as above.
//! unsafe { cache.free(first)? };
//! cache.remove_pageset(pageset)?; // pull that pageset's free slots out of every magazine
//! cache.trim(0)?; // and everything else
//! assert_eq!(cache.with_pool(|p| p.assigned()), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Caveats
//!
//! - Threads that simulate a CPU ([`simulate_cpu`]) use the portable try-lock; they must not
//!   share a cache with threads that run rseq sections at the same time (pcpu-rseq's rule:
//!   an rseq pop is not atomic against another CPU's try-lock).
//! - [`SlotCache::with_pool`], [`SlotCache::with_pool_mut`] and [`SlotCache::with_stopped`]
//!   run a closure while holding the pool lock or a stopped magazine: the closure must not
//!   call the cache in a way that needs the same lock or stops the same magazine.
//!
//! ## No safe call can cause undefined behaviour
//!
//! The cache zeroes and hands out the cells of slots it holds, trusting the pool's promises
//! ([`SlotSource`] is an `unsafe trait`). Safe code sees the pool only read-only
//! ([`SlotCache::with_pool`]); changing it is [`SlotCache::with_pool_mut`], an `unsafe fn`,
//! because unassigning a slot that sits in a magazine would let the cache hand it out twice
//! or zero it after the pool unmapped it. Freeing is `unsafe` too ([`SlotCache::free`]: the
//! caller vouches that the slot came from this cache and is no longer used); a stopped
//! magazine is shown read-only ([`SlotCache::with_stopped`]). Everything else takes or
//! returns plain values: a slot handed out is the caller's to use through its own `unsafe`
//! code.
//! - A thread whose CPU id is not below the pool's CPU count always takes the slow path.
//!
//! ## Testing
//!
//! - `tests/loom.rs`: loom models of refill/spill against a drain, stop/fence/restart, and
//!   `remove_pageset` against frees, on `pcpu_testkit::HeapSource` with simulated CPUs:
//!   `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2
//!   cargo test -p pcpu-cache --release --test loom` (pcpu-rseq's portable backend runs the
//!   magazines there; the pageset pool is left out under loom).
//! - `tests/model.rs`: proptest of random alloc/free/drain/trim/remove_pageset sequences from
//!   simulated CPUs against a model (and a round trip on the real pageset pool).
//! - `tests/stress.rs`: 64 threads under SIGUSR1 storms and concurrent drains on the real
//!   backend; `PCPU_STRESS_SCALE` scales it (e.g. `0.01` under valgrind).
//! - `benches/exec.rs`: the seed's exec workload (4 allocs + 4 frees) on 1 and 2 threads,
//!   against a single `Mutex<Pool>`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod cache;
mod config;
mod drain;
mod error;
mod fast;
mod first_error;
mod percpu;
mod pool_lock;
mod refill;
mod source;
mod stats;

pub use cache::SlotCache;
pub use config::CacheConfig;
pub use drain::StoppedMagazine;
pub use error::{CacheError, ConfigError};
/// Makes the calling thread act as CPU `c` on the portable backend (for tests and models that
/// simulate more CPUs than the machine has); `None` undoes it. Re-exported from pcpu-rseq.
pub use percpu::simulate_cpu;
pub use source::SlotSource;
pub use stats::{CacheCounters, CacheStats};

/// The cache over the pageset pool (one per size class).
#[cfg(not(loom))]
pub type PagesetCache = SlotCache<pcpu_pageset::Pool>;
/// Errors of [`PagesetCache`].
#[cfg(not(loom))]
pub type PagesetCacheError = CacheError<pcpu_pageset::PagesetError>;
