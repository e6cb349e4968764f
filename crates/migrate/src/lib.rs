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
mod relocate;
#[cfg(not(loom))]
mod space;
#[cfg(not(loom))]
mod waste;

#[cfg(not(loom))]
pub use compact::{CompactPolicy, CompactReport};
pub use error::MigrateError;
pub use handshake::Release;
pub use header::Header;
#[cfg(not(loom))]
pub use space::{Space, SpaceConfig};
#[cfg(not(loom))]
pub use waste::Waste;
