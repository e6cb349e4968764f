//! A counter in a `static`: made by a `const` constructor, inline while uncontended, per-CPU
//! once two threads update it at the same time, moved by `Domain::compact` like any other
//! counter, and exact throughout. Its own test binary: it relies on being the only user of
//! the global domain's per-CPU space, so that it knows which pageset is sparse.

mod common;

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

static REQUESTS: PercpuCounter = PercpuCounter::new_const(0);

/// Two threads, pinned to two CPUs, hammer `REQUESTS` until it goes per-CPU (or a generous
/// deadline passes); returns what they added, and whether they ran pinned apart.
fn contend_until_per_cpu() -> (i64, bool) {
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (added, apart) = common::on_two_cpus(|_| {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..1024 {
                REQUESTS.inc();
            }
            n += 1024;
            if REQUESTS.is_per_cpu() || Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
            }
        }
        n
    });
    (added.iter().sum(), apart)
}

#[test]
fn static_counter_upgrades_is_relocated_and_sums_exactly() {
    if pcpu_testkit::affinity::two_cpus().is_none() {
        eprintln!("skipped: needs two CPUs for two threads to update the counter at once");
        return;
    }
    assert!(REQUESTS.is_inline(), "a static starts inline");
    let (mut expected, apart) = contend_until_per_cpu();
    assert!(apart, "the two threads could not be pinned to two CPUs");
    assert!(
        REQUESTS.is_per_cpu(),
        "two threads at once must upgrade the static"
    );
    assert_eq!(REQUESTS.sum(), expected);

    // Fill pagesets around it with other per-CPU counters, then free the ones near its slot:
    // its pageset is left nearly empty, the others dense with room to spare.
    let global = Domain::global();
    let mut others: Vec<PercpuCounter> = (0..6_000)
        .map(|_| PercpuCounter::with_mode(global, 1, CounterMode::PerCpu).unwrap())
        .collect();
    let before = REQUESTS.slot_address().unwrap();
    // Pageset units are 16 KiB (or a page, if larger): everything within one unit of the
    // static's slot shares its pageset or sits in a neighbour.
    let unit = pcpu_pageset::PoolConfig::DEFAULT_UNIT_BYTES.max(pcpu_pageset::page_size());
    others.retain(|c| c.slot_address().unwrap().abs_diff(before) >= unit);
    let kept = others.len() as i64;
    assert!(kept > 0 && kept < 6_000);

    // Relocate while a thread keeps adding to it.
    let adding = AtomicBool::new(true);
    let added = AtomicI64::new(0);
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while adding.load(Ordering::Relaxed) {
                REQUESTS.add(3);
                n += 3;
            }
            added.store(n, Ordering::Relaxed);
        });
        let report = global.compact().unwrap();
        adding.store(false, Ordering::Relaxed);
        report
    });
    expected += added.load(Ordering::Relaxed);
    let after = REQUESTS.slot_address().unwrap();
    assert!(report.slots_moved >= 1, "{report:?}");
    assert_ne!(
        after, before,
        "compact must move the static out of its sparse pageset"
    );
    assert!(REQUESTS.is_per_cpu());
    assert_eq!(REQUESTS.sum(), expected, "exact across the relocation");
    REQUESTS.add(-expected);
    assert_eq!(REQUESTS.sum(), 0);
    assert_eq!(others.iter().map(|c| c.sum()).sum::<i64>(), kept);
}
