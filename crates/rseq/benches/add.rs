//! Per-CPU add via rseq against `AtomicI64::fetch_add` and `sched_getcpu` + atomic, on 1 and 2
//! threads. Each sample times `iters` adds per thread with all threads started together, and
//! reports the time per add per thread.
//!
//! Run: `cargo bench -p pcpu-rseq --bench add`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
use pcpu_testkit::bench::run_threads;
use std::hint::black_box;
use std::time::Duration;

#[repr(align(64))]
struct Padded(AtomicI64);

fn bench_add(c: &mut Criterion) {
    let ncpu = pcpu_rseq::possible_cpus();
    let cells: Vec<Padded> = (0..ncpu).map(|_| Padded(AtomicI64::new(0))).collect();
    let slot = AtomicUsize::new(pcpu_rseq::slot_word(cells.as_ptr() as usize));
    let shared = Padded(AtomicI64::new(0));
    // Batch MAX_FOLD never folds: the plain per-CPU add.
    let plain = pcpu_rseq::FoldParams::new(64, ncpu, pcpu_rseq::MAX_FOLD);
    // Adds that took the slow path: none may (checked at the end), or the rseq figure would
    // time an early exit instead of an add.
    let slow = AtomicI64::new(0);
    let rseq_add = || {
        // SAFETY: `slot` addresses `ncpu` live cells, 64 bytes apart, that outlive the bench.
        if unsafe { pcpu_rseq::add_fold_with(black_box(&slot), &plain, 1) }.is_err() {
            slow.fetch_add(1, Ordering::Relaxed);
        }
    };
    let atomic_add = || {
        black_box(&shared).0.fetch_add(1, Ordering::Relaxed);
    };
    let getcpu_add = || {
        // SAFETY: sched_getcpu has no preconditions.
        let cpu = unsafe { libc::sched_getcpu() }.max(0) as usize % ncpu;
        black_box(&cells)[cpu].0.fetch_add(1, Ordering::Relaxed);
    };
    eprintln!("pcpu-rseq mode: {:?}", pcpu_rseq::mode());
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("add/{threads}-thread"));
        group.throughput(criterion::Throughput::Elements(1));
        group.bench_function("rseq", |b| {
            b.iter_custom(|n| run_threads(threads, n, &rseq_add))
        });
        group.bench_function("atomic_fetch_add", |b| {
            b.iter_custom(|n| run_threads(threads, n, &atomic_add))
        });
        group.bench_function("sched_getcpu_atomic", |b| {
            b.iter_custom(|n| run_threads(threads, n, &getcpu_add))
        });
        group.finish();
    }
    let slow = slow.load(Ordering::Relaxed);
    assert_eq!(
        slow, 0,
        "{slow} rseq adds took the slow path: the figure timed no add"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench_add
}
criterion_main!(benches);
