//! Regressions from review: a caller's own crossbeam guard must not stall pcpu's grace
//! periods, and concurrent `limited_add`s never exceed the limit together.

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_callers_crossbeam_guard_does_not_block_compaction_or_set() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let page = pcpu_pageset::page_size();
        let domain = Domain::builder()
            .mode(CounterMode::PerCpu)
            .unit_bytes(page)
            .build()
            .unwrap();
        // Eight one-page pagesets of 8-byte cells, one counter in 8 kept: sparse, to compact.
        let all = PercpuCounter::new_many_in(domain, 8 * (page / 8), 1).unwrap();
        let live: Vec<_> = all.into_iter().step_by(8).collect();
        // A guard of crossbeam's *default* collector, as any crossbeam data structure takes.
        let _guard = crossbeam_epoch::pin();
        let report = domain.compact().unwrap();
        live[0].set(5).unwrap();
        let ok =
            report.slots_moved > 0 && live[0].sum() == 5 && live[1..].iter().all(|c| c.sum() == 1);
        tx.send(ok).unwrap();
    });
    let ok = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("compaction under a foreign epoch guard must not hang");
    assert!(ok, "compaction moved counters and kept their values");
}

#[test]
fn concurrent_limited_adds_never_exceed_the_limit() {
    for mode in [CounterMode::Atomic, CounterMode::PerCpu] {
        let domain = Domain::builder().mode(mode).batch(4).build().unwrap();
        for round in 0..200 {
            let c = PercpuCounter::new_in(domain, 0).unwrap();
            let limit = c.error_bound() + 100 + round % 7;
            let added: i64 = std::thread::scope(|s| {
                let hs: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| (0..5).filter(|_| c.limited_add(limit, 30)).count() as i64 * 30)
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert!(c.sum() <= limit, "{mode:?}: {} > {limit}", c.sum());
            assert_eq!(c.sum(), added, "every successful limited_add counted");
        }
    }
}
