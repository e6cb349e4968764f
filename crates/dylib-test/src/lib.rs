//! A Rust `dylib` holding pcpu-counter: `cargo build --workspace` links it, which fails if a
//! critical section refers to a static in a way a shared object cannot relocate (the fold
//! table, read by every per-CPU add of a counter).
#![deny(unsafe_op_in_unsafe_fn)]

use pcpu_counter::PercpuCounter;

/// Adds `delta` to `c`: the per-CPU add, with its critical section, instantiated here.
pub fn add(c: &PercpuCounter, delta: i64) {
    c.add(delta);
}
