//! Assign + unassign of one per-CPU slot, against allocating and dropping a boxed slice of
//! `ncpu` cache-padded atomics (what a naive per-CPU counter does).
#![allow(missing_docs)]

use std::{
    hint::black_box,
    sync::atomic::{AtomicI64, Ordering},
};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_utils::CachePadded;
use pcpu_pageset::{Pool, PoolConfig, SizeClass};

fn cpu_counts() -> Vec<usize> {
    let mut v = vec![pcpu_rseq_cpus(), 64, 256];
    v.dedup();
    v
}

fn pcpu_rseq_cpus() -> usize {
    PoolConfig::new(SizeClass::B8).ncpu
}

fn assign_unassign(c: &mut Criterion) {
    let mut group = c.benchmark_group("assign_unassign");
    group.throughput(Throughput::Elements(1));
    for ncpu in cpu_counts() {
        let config = PoolConfig::new(SizeClass::B8).with_ncpu(ncpu);
        let mut pool = Pool::new(config).unwrap();
        // Keep some slots live so the pageset is mapped and partly full, as in steady state.
        let mut keep = Vec::new();
        pool.assign_batch(100, &mut keep).unwrap();
        group.bench_with_input(BenchmarkId::new("pool", ncpu), &ncpu, |b, _| {
            b.iter(|| {
                let slot = pool.assign().unwrap();
                pool.unassign(black_box(slot)).unwrap();
            })
        });
        let mut batch = Vec::with_capacity(64);
        group.bench_with_input(
            BenchmarkId::new("pool_batch64_per_slot", ncpu),
            &ncpu,
            |b, _| {
                b.iter_custom(|iters| {
                    let rounds = iters.div_ceil(64);
                    let start = std::time::Instant::now();
                    for _ in 0..rounds {
                        pool.assign_batch(64, &mut batch).unwrap();
                        pool.unassign_batch(&batch).unwrap();
                        batch.clear();
                    }
                    // Scale to `iters` slots (rounds * 64 were timed).
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (rounds * 64).max(1) as f64)
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("box_cachepadded", ncpu), &ncpu, |b, &n| {
            b.iter(|| {
                let cells: Box<[CachePadded<AtomicI64>]> = (0..n)
                    .map(|_| CachePadded::new(AtomicI64::new(0)))
                    .collect();
                cells[0].fetch_add(1, Ordering::Relaxed);
                black_box(cells);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, assign_unassign);
criterion_main!(benches);
