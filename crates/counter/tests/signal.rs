//! Counters updated from a signal handler: a storm thread hits workers with SIGUSR1 whose
//! handler opens a `signal_handler_scope` and adds to shared counters (lazy, per-CPU, atomic,
//! and a lazy one only handlers touch), while the workers add to the same
//! counters and create, drop and compact counters of another domain, so that signals land in
//! slow paths: a slot cache's lock, a header allocation, an upgrade, a compaction, and on the
//! portable backend an epoch-pinned section. Every total is exact at the end, and nothing
//! deadlocks (a handler that re-entered a held lock would hang the test).
//!
//! Run it in the three environments (default, `GLIBC_TUNABLES=glibc.pthread.rseq=0`,
//! `PCPU_RSEQ=off`); `PCPU_STRESS_SECS` (default 5) bounds it.
// Signals, pthread_kill: Unix only.
#![cfg(unix)]

use pcpu_testkit::signals::{install_sigusr1, run_under_storm};
use pcpu_testkit::stress::stress_secs;

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const WORKERS: usize = 8;

/// Lazy: workers and handlers contend on it, so it goes per-CPU mid-storm.
static LAZY: PercpuCounter = PercpuCounter::new_const(0);
/// Lazy, added to by handlers only, 64 at a time so that every handler's add is sampled on a
/// thread without rseq (with rseq, every handler's add on another CPU is noted): its upgrade,
/// if it comes, runs inside a handler.
static HANDLER_ONLY: PercpuCounter = PercpuCounter::new_const(0);
/// Per-CPU and atomic counters, made before the storm.
static PER_CPU: OnceLock<PercpuCounter> = OnceLock::new();
static ATOMIC: OnceLock<PercpuCounter> = OnceLock::new();
/// Signals handled (each handler run adds 1 to every counter above).
static HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    // The workers allocate outside pcpu too (their vectors, their first pcpu operation's
    // thread-local setup): a handler that may interrupt the allocator opens the scope, as
    // `PercpuCounter::add`'s docs ask. Without it, a handler's first epoch pin on the portable
    // backend allocated its thread's crossbeam handle inside an interrupted `malloc` and hung
    // this test in CI.
    let _scope = pcpu_counter::signal_handler_scope();
    LAZY.inc();
    HANDLER_ONLY.add(64);
    if let (Some(p), Some(a)) = (PER_CPU.get(), ATOMIC.get()) {
        p.inc();
        a.inc();
    }
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn install_handler() {
    // SAFETY: the handler only adds to counters and an atomic, which is what this test checks
    // is async-signal-safe.
    unsafe { install_sigusr1(on_signal) };
}

fn secs() -> f64 {
    stress_secs(5.0)
}

#[test]
fn handlers_add_exactly_and_never_deadlock() {
    let shared = Domain::builder().build().unwrap();
    PER_CPU.get_or_init(|| PercpuCounter::with_mode(shared, 0, CounterMode::PerCpu).unwrap());
    ATOMIC.get_or_init(|| PercpuCounter::with_mode(shared, 0, CounterMode::Atomic).unwrap());
    let churn = Domain::builder()
        .mode(CounterMode::PerCpu)
        .unit_bytes(pcpu_pageset::page_size())
        .build()
        .unwrap();
    install_handler();
    let deadline = Instant::now() + Duration::from_secs_f64(secs());
    let (adds, sent) = run_under_storm(WORKERS, 11, 16, |t| {
        let mut adds = 0u64;
        let mut owned = Vec::with_capacity(64);
        let mut i = 0u64;
        while Instant::now() < deadline {
            for _ in 0..64 {
                LAZY.inc();
                PER_CPU.get().unwrap().inc();
                ATOMIC.get().unwrap().inc();
                adds += 1;
            }
            // Slow paths for the signals to land in.
            owned.push(PercpuCounter::new_in(churn, 1).unwrap());
            if owned.len() == owned.capacity() {
                assert!(owned.iter().all(|c| c.sum() == 1));
                owned.clear();
            }
            i += 1;
            if i % 512 == t as u64 {
                churn.compact().unwrap();
            }
        }
        adds
    });
    let adds: u64 = adds.into_iter().sum();
    let handled = HANDLED.load(Ordering::Relaxed);
    eprintln!(
        "signal: mode {:?}, {adds} adds per counter by workers, {sent} signals sent, {handled} \
         handled; per-CPU: lazy {}, handler-only {}",
        pcpu_rseq::mode(),
        LAZY.is_per_cpu(),
        HANDLER_ONLY.is_per_cpu(),
    );
    assert!(handled > 0, "no signal was handled");
    let want = (adds + handled) as i64;
    assert_eq!(LAZY.sum(), want, "lazy");
    assert_eq!(PER_CPU.get().unwrap().sum(), want, "per-CPU");
    assert_eq!(ATOMIC.get().unwrap().sum(), want, "atomic");
    assert_eq!(HANDLER_ONLY.sum(), 64 * handled as i64, "handler-only");
    if std::env::var("PCPU_EXPECT_MODE").as_deref() == Ok("rseq") {
        assert_eq!(
            pcpu_rseq::mode(),
            pcpu_rseq::Mode::Rseq,
            "PCPU_EXPECT_MODE=rseq"
        );
    }
}
