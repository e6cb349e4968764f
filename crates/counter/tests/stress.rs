//! Stress through the public API: 64 threads add to a few shared counters while other threads
//! create and destroy counters (and groups) and one thread compacts. Totals must be exact.
//!
//! `PCPU_STRESS_SCALE` scales the adds per thread (default 1.0 = 10,000,000).

use pcpu_counter::{CounterMode, Domain, PercpuCounter, PercpuCounterGroup};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn scaled(n: u64) -> u64 {
    let s: f64 = std::env::var("PCPU_STRESS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * s) as u64).max(1)
}

#[test]
fn adds_creates_destroys_and_compaction_lose_nothing() {
    // One-page units: small pagesets, many of them for the compactor.
    let domain = Domain::builder()
        .unit_bytes(pcpu_pageset::page_size())
        .build()
        .unwrap();
    let shared: Vec<PercpuCounter> = (0..4)
        .map(|i| {
            let mode = if i == 0 {
                CounterMode::Lazy
            } else {
                CounterMode::PerCpu
            };
            PercpuCounter::with_mode(domain, 0, mode).unwrap()
        })
        .collect();
    let per_thread = scaled(10_000_000);
    let done = AtomicBool::new(false);
    let churned = AtomicU64::new(0);
    let compactions = AtomicU64::new(0);
    std::thread::scope(|s| {
        // Churn: short-lived counters and groups, checked exactly, while adders run.
        for t in 0..2u64 {
            let (domain, done, churned) = (&domain, &done, &churned);
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(1000 + t);
                let mut keep: Vec<PercpuCounter> = Vec::new();
                // At least one round, however late this thread starts (`churned > 0` below).
                loop {
                    let c = PercpuCounter::with_mode(domain, 7, CounterMode::PerCpu).unwrap();
                    c.add(5);
                    assert_eq!(c.sum(), 12);
                    let g = PercpuCounterGroup::new_in(domain, 4).unwrap();
                    g.add(2, 3).unwrap();
                    assert_eq!(g.sum_all(), vec![0, 0, 3, 0]);
                    // Keep some alive for a while so pagesets fill unevenly.
                    if rng.bool() {
                        keep.push(c);
                    }
                    if keep.len() > 500 {
                        let n = rng.usize(..keep.len());
                        keep.drain(..n);
                    }
                    churned.fetch_add(1, Ordering::Relaxed);
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                }
                for c in &keep {
                    assert_eq!(c.sum(), 12);
                }
            });
        }
        {
            let (domain, done, compactions) = (&domain, &done, &compactions);
            s.spawn(move || {
                // At least one compaction, however late this thread starts.
                loop {
                    domain.compact().unwrap();
                    compactions.fetch_add(1, Ordering::Relaxed);
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::yield_now();
                }
            });
        }
        let adders: Vec<_> = (0..64u64)
            .map(|t| {
                let shared = &shared;
                s.spawn(move || {
                    for i in 0..per_thread {
                        shared[((i + t) % 4) as usize].inc();
                        if i % 100_000 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for a in adders {
            a.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    let total: i64 = shared.iter().map(|c| c.sum()).sum();
    eprintln!(
        "{} churn rounds, {} compactions, lazy counter per-CPU: {}",
        churned.load(Ordering::Relaxed),
        compactions.load(Ordering::Relaxed),
        shared[0].is_per_cpu()
    );
    assert!(churned.load(Ordering::Relaxed) > 0 && compactions.load(Ordering::Relaxed) > 0);
    assert_eq!(total, 64 * per_thread as i64, "no add lost or doubled");
    for c in &shared {
        assert!((c.read() - c.sum()).abs() <= c.error_bound());
    }
}
