//! # pcpu-migrate
//!
//! Relocation of *live* per-CPU objects, so that a few long-lived objects do not pin whole
//! pagesets: the capability Linux's percpu allocator, FreeBSD's UMA per-CPU zones and
//! librseq's mempool do not have.
//!
//! An object is reached through a [`Header`] at a stable address. Its adders load the header's
//! slot word *inside* their rseq critical section (`pcpu_rseq::add_fold`); when the word is
//! disabled they take the owner's slow path (a central atomic). To move an object, the
//! compactor disables the word, runs a grace period (membarrier-rseq, or crossbeam-epoch on
//! the portable backend) after which no adder can still write the old cells, copies the
//! cells, publishes the new slot, waits one more epoch grace period for readers, and retires
//! the old slot. Adders never block and never wait for the relocator. `docs/PROTOCOLS.md`
//! gives the argument step by step.
//!
//! Under `--cfg loom` only the [`Header`] protocol and the owner-lane [`handshake`] are built
//! (the pageset layer maps real memory); `tests/loom.rs` models them.
//!
//! ```
//! use pcpu_migrate::{CompactPolicy, Header, Space, SpaceConfig};
//! use pcpu_pageset::SizeClass;
//!
//! let space = Space::new(SpaceConfig::new(SizeClass::B8)).unwrap();
//! let header = Box::new(Header::new());
//! space.attach(&header).unwrap();
//! let mut central = 0;
//! for _ in 0..10 {
//!     // SAFETY: the header is attached to a slot of `space`, which outlives the adds.
//!     match unsafe { pcpu_rseq::add_fold(header.slot_word(), space.stride(), space.ncpu(), 1, 32) } {
//!         Ok(moved) => central += moved,
//!         Err(_) => central += 1, // disabled (being moved) or no rseq: the slow path
//!     }
//! }
//! space.compact(&CompactPolicy::default()).unwrap();
//! let mut cells = [0i64];
//! space.sum_words(&header, &mut cells);
//! assert_eq!(central + cells[0], 10);
//! // SAFETY: no one uses the header any more.
//! let _release = unsafe { space.detach(&header) }.unwrap();
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(loom))]
mod compact;
#[cfg(not(loom))]
mod error;
pub mod handshake;
pub mod header;
#[cfg(not(loom))]
mod space;
#[cfg(not(loom))]
mod waste;

#[cfg(not(loom))]
pub use compact::{CompactPolicy, CompactReport};
#[cfg(not(loom))]
pub use error::MigrateError;
pub use handshake::Release;
pub use header::Header;
#[cfg(not(loom))]
pub use space::{Space, SpaceConfig};
#[cfg(not(loom))]
pub use waste::Waste;

/// Yields in a wait loop (loom's yield when modelling, so the model can progress).
pub(crate) fn sync_yield() {
    pcpu_rseq::sync::yield_now();
}
