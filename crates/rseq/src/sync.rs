//! The primitive shim: `std` atomics normally, loom's under `--cfg loom`.
//!
//! Every atomic that a cross-thread protocol of this crate (or of the crates above it) touches
//! comes from here, so that the same protocol code runs on real hardware and inside a loom
//! model. This follows crossbeam-epoch's `src/lib.rs` and sharded-slab's `src/sync.rs`.

#[cfg(loom)]
pub use loom::sync::atomic::{
    fence, AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub use loom::thread::yield_now;

#[cfg(not(loom))]
pub use core::sync::atomic::{
    fence, AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub use std::thread::yield_now;
