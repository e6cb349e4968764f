//! `PercpuCounter::add` against the raw rseq add of pcpu-rseq (same run), on 1 thread, and the
//! add rate of 2 threads on one counter against 1 thread.
//!
//! Run: `cargo bench -p pcpu-counter --bench add`. Each sample times `iters` adds per thread,
//! threads started together; the reported time is per add per thread, so "2 threads reach
//! k× the single-thread rate" reads as `2 × t(1 thread) / t(2 threads)`.
//!
//! Rows:
//! - `raw_rseq_add`: `pcpu_rseq::add_fold_with` at batch `MAX_FOLD` (never folds) on cells 64
//!   bytes apart, nothing shared: the reference
//!   for 1 thread, and on 2 threads the scaling this machine allows at all;
//! - `percpu_counter_add`: a per-CPU counter of a default domain, which widens its batch once
//!   two CPUs contend on its central count (the 2-thread rows run after the 1-thread one, so
//!   the widening happens during their warm-up; the batch reached is printed at the end);
//! - `percpu_counter_add_fixed_batch`: the same with `max_batch == batch`, Linux's fixed
//!   batch: every 32 adds per CPU fold into the one shared line.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use pcpu_rseq::sync::{AtomicI64, AtomicUsize};
use pcpu_testkit::bench::run_threads;
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let domain = Domain::builder().mode(CounterMode::PerCpu).build().unwrap();
    let counter = PercpuCounter::new_in(domain, 0).unwrap();
    let ncpu = pcpu_rseq::possible_cpus();
    // Eight words per CPU (64 bytes): one cache line each; word 0 is the cell.
    let cells: Vec<AtomicI64> = (0..ncpu * 8).map(|_| AtomicI64::new(0)).collect();
    let slot = AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize));
    // Batch MAX_FOLD never folds: the plain per-CPU add.
    let plain = pcpu_rseq::FoldParams::new(64, ncpu, pcpu_rseq::MAX_FOLD);
    // Raw adds that took the slow path: none may (checked at the end), or the raw figure
    // would time an early exit instead of an add.
    let raw_slow = AtomicI64::new(0);
    let raw = || {
        // SAFETY: `slot` addresses `ncpu` live cells 64 bytes apart, outliving the bench.
        if unsafe { pcpu_rseq::add_fold_with(black_box(&slot), &plain, 1) }.is_err() {
            raw_slow.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let api = || black_box(&counter).add(1);
    eprintln!("pcpu-rseq mode: {:?}", pcpu_rseq::mode());
    let mut g = c.benchmark_group("counter_add");
    g.bench_function("raw_rseq_add/1-thread", |b| {
        b.iter_custom(|n| run_threads(1, n, &raw))
    });
    g.bench_function("raw_rseq_add/2-thread", |b| {
        b.iter_custom(|n| run_threads(2, n, &raw))
    });
    g.bench_function("percpu_counter_add/1-thread", |b| {
        b.iter_custom(|n| run_threads(1, n, &api))
    });
    g.bench_function("percpu_counter_add/2-thread", |b| {
        b.iter_custom(|n| run_threads(2, n, &api))
    });
    let fixed = Domain::builder()
        .mode(CounterMode::PerCpu)
        .max_batch(domain.batch())
        .build()
        .unwrap();
    let fixed_counter = PercpuCounter::new_in(fixed, 0).unwrap();
    let fixed_api = || black_box(&fixed_counter).add(1);
    g.bench_function("percpu_counter_add_fixed_batch/1-thread", |b| {
        b.iter_custom(|n| run_threads(1, n, &fixed_api))
    });
    g.bench_function("percpu_counter_add_fixed_batch/2-thread", |b| {
        b.iter_custom(|n| run_threads(2, n, &fixed_api))
    });
    eprintln!(
        "batch: default counter {} (started at {}, max {}); fixed-batch counter {}",
        counter.batch(),
        domain.batch(),
        domain.max_batch(),
        fixed_counter.batch()
    );
    g.finish();
    // Every add landed (0 under `--list`, which runs nothing).
    let raw_total: i64 = cells
        .iter()
        .step_by(8)
        .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    eprintln!(
        "totals: raw cells {raw_total}, counter {}, fixed-batch counter {}",
        counter.sum(),
        fixed_counter.sum()
    );
    let slow = raw_slow.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        slow, 0,
        "{slow} raw adds took the slow path: the raw figure timed no add"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
