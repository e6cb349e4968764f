#![doc = include_str!("../README.md")]
//!
//! ## Under loom
//!
//! Under `--cfg loom` only the [`Header`] protocol, the owner-lane [`handshake`] and the
//! compactor's relocation steps are built (the pageset layer maps real memory);
//! `src/loom_tests.rs` models them.
#![deny(unsafe_op_in_unsafe_fn)]
// Under loom only the header and the handshake are built: steps that only `Space` calls
// (attach's failure path) are unused there.
#![cfg_attr(loom, allow(dead_code))]
#![warn(missing_docs)]

#[cfg(not(loom))]
mod compact;
mod error;
pub mod handshake;
pub mod header;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(not(loom))]
mod moves;
mod owner;
mod relocate;
#[cfg(not(loom))]
mod space;
#[cfg(not(loom))]
mod waste;

#[cfg(not(loom))]
pub use compact::{CompactPolicy, CompactReport};
pub use error::MigrateError;
pub use handshake::Release;
pub use header::{Header, State};
#[cfg(not(loom))]
pub use moves::HeaderMoves;
#[cfg(not(loom))]
pub use space::{Space, SpaceConfig};
#[cfg(not(loom))]
pub use waste::Waste;

/// Testing aid (feature `count-lane-reads`): how many lanes the sums of this thread have read
/// ([`Space::sum_word`], [`Space::sum_words`], [`Header::sum_word`]: one per lane and word of
/// a slot, whatever the read section keeps), how many lanes its relocations copied and its
/// detaches zeroed.
#[cfg(feature = "count-lane-reads")]
pub mod lane_reads {
    use std::cell::Cell;

    std::thread_local! {
        static READS: Cell<u64> = const { Cell::new(0) };
        static COPIED: Cell<u64> = const { Cell::new(0) };
        static FREED: Cell<u64> = const { Cell::new(0) };
    }

    /// Lanes read by this thread's sums so far.
    pub fn on_this_thread() -> u64 {
        READS.with(Cell::get)
    }

    /// Lanes of slots that relocations run by this thread copied so far (one per lane walked
    /// per moved slot, whatever the lane holds).
    pub fn copied_on_this_thread() -> u64 {
        COPIED.with(Cell::get)
    }

    pub(crate) fn add_copied(n: usize) {
        COPIED.with(|r| r.set(r.get() + n as u64));
    }

    /// Lanes that this thread's detaches had the slot cache zero (one per lane per freed
    /// slot, below the space's lane bound; the owner lane, cleared before, is not counted).
    pub fn freed_on_this_thread() -> u64 {
        FREED.with(Cell::get)
    }

    pub(crate) fn add_freed(n: usize) {
        FREED.with(|r| r.set(r.get() + n as u64));
    }

    pub(crate) fn add(n: usize) {
        READS.with(|r| r.set(r.get() + n as u64));
    }
}
