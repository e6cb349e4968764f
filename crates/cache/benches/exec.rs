#![allow(missing_docs)]
//! The seed's workload at slot level: each "exec" creates 4 per-CPU counters (4 slot allocs)
//! and destroys them (4 frees). Measured on 1 and 2 threads through the per-CPU cache, and
//! through one `Mutex<Pool>` (the Linux-style design: a global lock per alloc and free), with
//! the pool's pagemap probe on (its default: a syscall per unassign) and off.
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
            *h = Some(self.0.lock().unwrap().assign().unwrap());
        }
        for s in held.into_iter().flatten() {
            self.0.lock().unwrap().unassign(black_box(s)).unwrap();
        }
    }
}

fn pool() -> Pool {
    Pool::new(PoolConfig::new(SizeClass::B8)).expect("pool")
}

/// This thread's CPU time.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `iters` execs on each of `threads` threads started together; returns the longest
/// thread's wall time and the CPU time of all threads together.
fn run_detail(design: &dyn Design, threads: usize, iters: u64) -> (Duration, Duration) {
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let (t, c) = (Instant::now(), thread_cpu_time());
                    for _ in 0..iters {
                        design.exec();
                    }
                    (t.elapsed(), thread_cpu_time() - c)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((Duration::ZERO, Duration::ZERO), |(w, c), (tw, tc)| {
                (w.max(tw), c + tc)
            })
    })
}

fn run(design: &dyn Design, threads: usize, iters: u64) -> Duration {
    run_detail(design, threads, iters).0
}

fn designs() -> Vec<(&'static str, Box<dyn Design>)> {
    let cache: PagesetCache = SlotCache::new(pool(), CacheConfig::new()).unwrap();
    // The pool reads /proc/self/pagemap on each unassign by default (one syscall); without
    // it the locked baseline shows the lock and the bookkeeping alone.
    let mut no_probe = pool();
    no_probe.set_pagemap_probe(false);
    vec![
        ("pcpu-cache", Box::new(cache)),
        ("mutex-pool", Box::new(Locked(Mutex::new(pool())))),
        ("mutex-pool-noprobe", Box::new(Locked(Mutex::new(no_probe)))),
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

/// (execs per wall second over all threads, execs per CPU second), best of 5 runs of about
/// `secs` each.
fn rate(design: &dyn Design, threads: usize, secs: f64) -> (f64, f64) {
    let probe = run(design, 1, 1000).as_secs_f64().max(1e-9);
    let iters = ((secs / probe * 1000.0) as u64).max(1000);
    (0..5)
        .map(|_| {
            let (wall, cpu) = run_detail(design, threads, iters);
            let n = (threads as u64 * iters) as f64;
            (n / wall.as_secs_f64(), n / cpu.as_secs_f64().max(1e-9))
        })
        .fold((0.0, 0.0), |(a, b), (x, y)| {
            (f64::max(a, x), f64::max(b, y))
        })
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
        let (one, one_cpu) = rate(design.as_ref(), 1, secs);
        let (two, two_cpu) = rate(design.as_ref(), 2, secs);
        println!(
            "  {name:<18} 1 thread {:>8.3} M execs/s ({:>7.1} ns/exec), 2 threads {:>8.3} M execs/s: \
             wall ratio 2/1 = {:.2}; CPU-time cost per exec 1 thread {:.1} ns, 2 threads {:.1} ns \
             (ratio with 2 free cores = {:.2})",
            one / 1e6,
            1e9 / one,
            two / 1e6,
            two / one,
            1e9 / one_cpu,
            1e9 / two_cpu,
            2.0 * two_cpu / one_cpu
        );
    }
    println!(
        "  (load average now: {})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
