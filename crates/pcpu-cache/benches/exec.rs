#![allow(missing_docs)]
//! The seed's workload at slot level: each "exec" creates 4 per-CPU counters (4 slot allocs)
//! and destroys them (4 frees). Measured on 1 and 2 threads through the per-CPU cache, and
//! through one `Mutex<Pool>` (the Linux-style design: a global lock per alloc and free).
//!
//! Besides criterion's report, prints execs/s per design and the 2-thread / 1-thread ratio.

use criterion::{BenchmarkId, Criterion, Throughput};
use pcpu_cache::{CacheConfig, PagesetCache, SlotCache};
use pcpu_pageset::{Pool, PoolConfig, SizeClass, Slot};
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

const SLOTS_PER_EXEC: usize = 4;

trait Design: Sync {
    fn exec(&self);
}

impl Design for PagesetCache {
    #[inline]
    fn exec(&self) {
        let mut held = [None::<Slot>; SLOTS_PER_EXEC];
        for h in &mut held {
            *h = Some(self.alloc().unwrap());
        }
        for s in held.into_iter().flatten() {
            // SAFETY: the slot came from this cache and is not used any more.
            unsafe { self.free(black_box(s)).unwrap() };
        }
    }
}

struct Locked(Mutex<Pool>);

impl Design for Locked {
    #[inline]
    fn exec(&self) {
        let mut held = [None::<Slot>; SLOTS_PER_EXEC];
        for h in &mut held {
            *h = Some(self.0.lock().unwrap().assign(0).unwrap());
        }
        for s in held.into_iter().flatten() {
            self.0.lock().unwrap().unassign(black_box(s)).unwrap();
        }
    }
}

fn pool() -> Pool {
    Pool::new(PoolConfig::new(SizeClass::B8)).expect("pool")
}

/// Runs `iters` execs on each of `threads` threads started together; returns the longest
/// thread's time.
fn run(design: &dyn Design, threads: usize, iters: u64) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let t = Instant::now();
                    for _ in 0..iters {
                        design.exec();
                    }
                    t.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap_or_default()
    })
}

fn designs() -> Vec<(&'static str, Box<dyn Design>)> {
    let cache: PagesetCache = SlotCache::new(pool(), CacheConfig::new()).unwrap();
    vec![
        ("pcpu-cache", Box::new(cache)),
        ("mutex-pool", Box::new(Locked(Mutex::new(pool())))),
    ]
}

fn bench(c: &mut Criterion, designs: &[(&'static str, Box<dyn Design>)]) {
    let mut group = c.benchmark_group("exec");
    for (name, design) in designs {
        for threads in [1usize, 2] {
            group.throughput(Throughput::Elements(threads as u64));
            group.bench_with_input(BenchmarkId::new(*name, threads), &threads, |b, &t| {
                b.iter_custom(|iters| run(design.as_ref(), t, iters))
            });
        }
    }
    group.finish();
}

/// execs per second over all threads, best of 5 runs of about `secs` each.
fn rate(design: &dyn Design, threads: usize, secs: f64) -> f64 {
    let probe = run(design, 1, 1000).as_secs_f64().max(1e-9);
    let iters = ((secs / probe * 1000.0) as u64).max(1000);
    (0..5)
        .map(|_| {
            let d = run(design, threads, iters);
            (threads as u64 * iters) as f64 / d.as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    let designs = designs();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &designs);
    c.final_summary();

    let secs = std::env::var("PCPU_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.2f64);
    println!(
        "\nsummary (mode {:?}, {} possible CPUs, runs of ~{secs} s, best of 5):",
        pcpu_rseq::mode(),
        pcpu_rseq::possible_cpus()
    );
    for (name, design) in &designs {
        let one = rate(design.as_ref(), 1, secs);
        let two = rate(design.as_ref(), 2, secs);
        println!(
            "  {name:<11} 1 thread {:>8.3} M execs/s ({:>7.1} ns/exec), 2 threads {:>8.3} M execs/s, ratio 2/1 = {:.2}",
            one / 1e6,
            1e9 / one,
            two / 1e6,
            two / one
        );
    }
}
