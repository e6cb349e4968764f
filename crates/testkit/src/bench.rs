//! What the criterion benches of several crates share: timing an operation on many threads at
//! once, each thread timing its own loop.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op` `iters` times on each of `threads` threads, started together at a barrier;
/// returns the mean wall time per thread (for criterion's `iter_custom`).
///
/// Generic over the operation so that it inlines into the timed loop (a `dyn Fn` would add an
/// indirect call to every iteration).
pub fn run_threads<F: Fn() + Sync>(threads: usize, iters: u64, op: &F) -> Duration {
    let barrier = Barrier::new(threads);
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total / threads as u32
}
