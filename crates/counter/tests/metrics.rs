//! The `metrics` feature: `PercpuCounter` as `CounterFn` / `GaugeFn`, and `PcpuRecorder`
//! behind the `metrics` macros from several threads, exact at the end.
//! Run: `cargo test -p pcpu-counter --features metrics --test metrics`.
#![cfg(feature = "metrics")]

use pcpu_counter::{CounterMode, Domain, PcpuRecorder, PercpuCounter};
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
    // `absolute` raises to at least the value and never lowers (the facade's contract).
    handle.absolute(7);
    assert_eq!(cells.sum(), 4000, "absolute must not lower a counter");
    handle.absolute(5000);
    assert_eq!(cells.sum(), 5000);
}

#[test]
fn absolute_on_a_per_cpu_counter_raises_without_lowering() {
    let domain = Domain::builder().mode(CounterMode::PerCpu).build().unwrap();
    let cells = Arc::new(PercpuCounter::new_in(domain, 0).unwrap());
    let handle = metrics::Counter::from_arc(Arc::clone(&cells));
    handle.increment(10);
    handle.absolute(3);
    assert_eq!(cells.sum(), 10);
    // Several threads raising to different values, while others increment: the result is at
    // least the largest value and holds every increment on top of what was there.
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let handle = &handle;
            s.spawn(move || {
                for k in 0..1000 {
                    if t % 2 == 0 {
                        handle.absolute(100 + k);
                    } else {
                        handle.increment(1);
                    }
                }
            });
        }
    });
    let v = cells.sum();
    assert!(v >= 1099, "at least the largest absolute value: {v}");
    assert!(v >= 10 + 2000, "every increment is kept: {v}");
}

#[test]
fn gauges_go_up_and_down() {
    let g = Arc::new(PercpuCounter::new(0));
    let handle = metrics::Gauge::from_arc(Arc::clone(&g));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..1000 {
                    handle.increment(3.0);
                    handle.decrement(1.0);
                }
            });
        }
    });
    assert_eq!(g.sum(), 4000);
    handle.set(-12.0);
    assert_eq!(g.sum(), -12);
}

/// The recorder behind the macros, installed globally: four threads increment one counter
/// and move one gauge up and down; the totals are exact, and the contended counter went
/// per-CPU (on a machine with two CPUs or more).
#[test]
fn recorder_behind_the_macros_is_exact() {
    let recorder: &'static PcpuRecorder = Box::leak(Box::new(PcpuRecorder::new()));
    metrics::set_global_recorder(recorder).expect("the only test that installs one");
    const THREADS: u64 = 4;
    const N: u64 = 50_000;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for _ in 0..N {
                    metrics::counter!("requests").increment(1);
                    metrics::gauge!("in_flight").increment(1.0);
                    metrics::counter!("bytes", "thread" => t.to_string()).increment(8);
                    metrics::gauge!("in_flight").decrement(1.0);
                }
            });
        }
    });
    assert_eq!(recorder.counter("requests"), Some((THREADS * N) as i64));
    assert_eq!(recorder.gauge("in_flight"), Some(0));
    assert_eq!(recorder.counter("never"), None);
    let labelled: i64 = recorder
        .counters()
        .iter()
        .filter(|(k, _)| k.name() == "bytes")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(labelled, (THREADS * N * 8) as i64);
    metrics::histogram!("latency").record(1.5);
}
