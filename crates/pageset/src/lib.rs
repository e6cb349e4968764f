#![doc = include_str!("../README.md")]
//!
//! ## Layout
//!
//! A **pageset** is one anonymous private mapping of `ncpu × unit` bytes, `unit` a multiple of
//! the runtime page size ([`PoolConfig::DEFAULT_UNIT_BYTES`] = 16 KiB by default, or one page
//! where pages are larger; justified there).
//! Slot `s` of CPU `c` is at `base + c × unit + s × size`: a [`Slot`] is the address of CPU
//! 0's cell, and CPU `c`'s cell is `slot.addr() + c × stride`, [`Pool::stride`] = `unit`. A
//! CPU writes only inside its own unit, so pages are populated only for the CPUs that write:
//! a pool configured for 256 CPUs on a 2-CPU machine costs address space for 256 but memory
//! for 2. Pagesets are mapped with `MADV_NOHUGEPAGE` so a huge page never populates several
//! CPUs' units at once.
//!
//! A **[`Pool`]** serves one [`SizeClass`] from any number of pagesets, and lists the live
//! slots of each ([`Pool::live_slots`]), so that a relocator emptying a pageset can find
//! them. It keeps no per-slot data besides one live bit: who holds a slot is the layer
//! above's business (pcpu-migrate stores it in an extra lane of the slot itself).
//!
//! ## Densest first
//!
//! [`Pool::assign`] takes the lowest free slot of the *fullest* pageset that has room and is
//! not draining. Pagesets are bucketed by exact occupancy (an intrusive list per occupancy
//! and a bitmap of non-empty buckets), so finding the fullest costs at most
//! `capacity / 64` word tests (32 for the default geometry) whatever the number of
//! pagesets, and moving a pageset between buckets allocates nothing. Filling the densest
//! pageset keeps sparse pagesets sparse, so they empty out and can be unmapped; taking the
//! lowest slot keeps the tail pages of a pageset free, so they can be released before the
//! whole pageset is empty. A compactor marks a pageset *draining*
//! ([`Pool::set_draining`]) to stop assignments from it while it moves its slots away.
//!
//! ## Zeroing
//!
//! A slot is handed out zeroed on every CPU. The invariant kept is *every free slot reads
//! zero* (a retired slot is not free: it is never handed out, so it keeps its contents): fresh mappings and pages released with `MADV_DONTNEED` read zero, and
//! [`Pool::unassign`] zeroes the slot's cells. Zeroing on unassign (rather than on assign)
//! keeps [`Pool::assign`] free of memory accesses, and it never populates a page that was
//! not written:
//!
//! - with many CPUs ([`Pool::PROBE_MIN_NCPU`] = 16 and up) and `/proc/self/pagemap`
//!   readable, one `pread` tells which CPUs' pages are present or swapped; pages that are
//!   neither read zero by definition and are not touched at all;
//! - the cells of the remaining CPUs (or of all CPUs without pagemap) are *read first* and
//!   written only if non-zero: reading an untouched page maps the shared zero page and
//!   allocates nothing.
//!
//! `mincore` is *not* used for this decision: it reports a swapped-out page as absent,
//! and skipping it would leave stale data in a slot.
//!
//! ## Giving memory back
//!
//! [`Pool::release`] unmaps every empty pageset (no assigned and no retired slot) and, in
//! the others, releases with `MADV_DONTNEED` (on every CPU's unit) each page whose slots are
//! all free or retired and that may hold memory. [`Pool::unassign`] does *not* release eagerly: a slot freed and assigned
//! again at a page boundary would then cost `ncpu` madvise calls plus `ncpu` page faults
//! each time. The layer above calls `release` periodically or after draining.
//!
//! With [`PoolConfig::keep_address_space`], an emptied pageset is not unmapped: its pages
//! are given back the same way and its mapping is kept for the next pageset the pool needs.
//! A reader that loads from a freed slot without synchronising with the pool (and discards
//! what it read, as pcpu-migrate's sequence-checked `sum` does) then never faults.
//!
//! ## Retired slots
//!
//! [`Pool::retire`] ends an assigned slot's life for good: it is no longer assigned, and
//! its address is never handed out again while the pool lives. It is for an object moved
//! out of a sparse pageset whose old address other threads may still hold for a while
//! (they read it, find a "moved" mark or zeros, and go elsewhere): reusing the address would
//! show them another object instead. So a retired slot keeps its taken bit (every search
//! for a free slot skips it), is not zeroed (its contents were left on purpose), is not
//! listed by [`Pool::live_slots`], and cannot be unassigned or retired again.
//!
//! Its memory still goes back: [`Pool::release`] discards a page whose slots are all free
//! or retired like a page of free slots (a retired slot then reads zero). But its address
//! space does not: a pageset holding a retired slot is never unmapped nor kept for reuse,
//! so its retired addresses stay mapped and readable; its free slots are assigned as any
//! others. A pageset's free slots are `capacity - assigned - retired`
//! ([`PagesetStats::free`]), and that is what assignment and draining account.
//!
//! ## Memory accounting
//!
//! [`Pool::stats`] and [`Pool::pagesets`] report assigned/free slots, pagesets and bytes
//! mapped, and bytes resident read from `mincore(2)` for each mapping (not estimated; on a
//! target without `mincore`, Windows, `resident_known` is false and residency unavailable).
//! `mincore` counts a page that was only read (mapped to the shared zero page) as
//! resident, so after a reader summed all CPUs of a slot the figure is an upper bound until
//! the next release.
//!
//! ## Errors
//!
//! A failed mapping (`ENOMEM`, `RLIMIT_AS`) or a failed allocation of the pool's own
//! bookkeeping returns [`PagesetError`]; nothing panics or aborts, and the pool stays
//! usable. A double unassign or a foreign slot is an error that changes nothing.
//!
//! ## Unsafe code
//!
//! The mapping is never viewed as a Rust slice (other threads write cells through raw
//! addresses), so there is no aliasing to reason about: the `unsafe` blocks are the FFI
//! calls (`madvise`, `mincore`, `sysconf`), each on a range inside a mapping the pool
//! owns, and the atomic accesses of [`Pool::unassign`]'s zeroing, each in bounds and
//! 8-aligned by the layout above. Each block names its invariant in a `// SAFETY:` comment.
//!
//! ## No safe call can cause undefined behaviour
//!
//! Whatever safe code passes in, the pool only writes memory it owns:
//!
//! - a [`Slot`] is a plain address. Safe code gets one only from [`Pool::assign`] or
//!   [`Pool::assign_batch`]; [`Slot::from_addr`] is `unsafe`, because code that writes through
//!   a forged slot's cells writes anywhere. [`Pool::unassign`], the one call that writes
//!   through a slot it is given (its zeroing), first finds the slot in its own pagesets and
//!   checks it is live: a foreign, misaligned or already free slot is an error and nothing
//!   is written (`tests.rs`: `double_unassign_and_foreign_slots_are_errors`,
//!   `slot_of_a_released_pageset_is_an_error`, and the model);
//! - [`PagesetId`]s only select bookkeeping ([`Pool::set_draining`], [`Pool::live_slots`],
//!   [`Pool::pageset_stats`]); an id the pool does not know answers `None` or an error;
//! - [`Pool::release`] unmaps only pagesets with no assigned and no retired slot, so it
//!   never takes memory from under a slot that is still assigned, and a retired slot stays
//!   readable (its pages may be discarded, after which it reads zero). Reading the cells of a slot after giving it back is
//!   the caller's `unsafe` code and its contract (pcpu-migrate keeps the address space for
//!   that, [`PoolConfig::keep_address_space`]);
//! - [`resident_bytes`] asks `mincore`, which reads no memory and fails cleanly on an
//!   unmapped range.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

/// A `tracing::debug!` event on a slow path when the `tracing` feature is on; nothing
/// otherwise (the arguments are not evaluated then).
macro_rules! slow_path_event {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        tracing::debug!($($arg)*);
    }};
}
pub(crate) use slow_path_event;

mod buckets;
mod class;
mod config;
mod error;
mod pageset;
mod pool;
mod resident;
mod slot;
mod stats;

pub use class::SizeClass;
pub use config::{page_size, PoolConfig};
pub use error::PagesetError;
pub use pool::{LiveSlots, Pool};
pub use resident::resident_bytes;
pub use slot::{PagesetId, Slot};
pub use stats::{PagesetStats, PoolStats, ReleaseStats};

#[cfg(test)]
mod tests;
