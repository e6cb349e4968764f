//! The `metrics` feature: a `PercpuCounter` behind a `metrics::Counter` handle.
//! Run: `cargo test -p pcpu-counter --features metrics --test metrics`.
#![cfg(feature = "metrics")]

use pcpu_counter::PercpuCounter;
use std::sync::Arc;

#[test]
fn a_metrics_counter_records_into_per_cpu_cells() {
    let cells = Arc::new(PercpuCounter::new(0));
    let handle = metrics::Counter::from_arc(Arc::clone(&cells));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| (0..1000).for_each(|_| handle.increment(2)));
        }
    });
    assert_eq!(cells.sum(), 4000);
    handle.absolute(7);
    assert_eq!(cells.sum(), 7);
}
