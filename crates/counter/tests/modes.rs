//! Lazy mode: a counter that two threads on two CPUs update goes per-CPU; one used by a
//! single thread stays inline (its own two words, no other memory).

mod common;

use pcpu_counter::{CounterMode, Domain, PercpuCounter};

#[test]
fn single_thread_stays_atomic() {
    let domain = Domain::builder().build().unwrap();
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    for _ in 0..1_000_000 {
        c.inc();
    }
    assert!(!c.is_per_cpu(), "one thread must not upgrade its counter");
    assert_eq!(c.sum(), 1_000_000);
    assert_eq!(
        domain.stats().waste.live_objects,
        0,
        "no per-CPU memory was taken"
    );
    assert_eq!(domain.stats().header_blocks, 0, "no header was taken");
}

/// The two-counter case: two threads each loop `{ shared.inc(); mine.inc(); }`. The shared
/// counter is updated from both CPUs and must go per-CPU; each thread's own counter, updated
/// just as often but by one thread, must stay inline. (Each counter keeps its own last CPU,
/// so the adds to one counter cannot hide the other's.)
#[test]
fn shared_counter_upgrades_private_ones_do_not() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let domain = Domain::builder().build().unwrap();
    let shared = PercpuCounter::new_in(domain, 0).unwrap();
    let stop = AtomicBool::new(false);
    // A bound, not a timing: on two free CPUs the upgrade takes microseconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (results, apart) = common::on_two_cpus(|_| {
        let mine = PercpuCounter::new_in(domain, 0).unwrap();
        let mut n = 0i64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..1024 {
                shared.inc();
                mine.inc();
            }
            n += 1024;
            if shared.is_per_cpu() || Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
            }
        }
        // A few more rounds on the per-CPU path.
        for _ in 0..10_000 {
            shared.inc();
            mine.inc();
        }
        n += 10_000;
        (n, mine.is_per_cpu(), mine.sum())
    });
    for &(n, mine_per_cpu, mine_sum) in &results {
        assert!(!mine_per_cpu, "a counter of one thread must stay inline");
        assert_eq!(mine_sum, n);
    }
    let total: i64 = results.iter().map(|r| r.0).sum();
    assert_eq!(shared.sum(), total, "no add lost across the upgrade");
    if apart {
        assert!(
            shared.is_per_cpu(),
            "a counter updated by two threads at once on two CPUs must go per-CPU"
        );
    }
}

#[test]
fn explicit_modes() {
    let domain = Domain::builder().build().unwrap();
    let a = PercpuCounter::with_mode(domain, 1, CounterMode::Atomic).unwrap();
    let p = PercpuCounter::with_mode(domain, 1, CounterMode::PerCpu).unwrap();
    assert!(!a.is_per_cpu());
    assert!(p.is_per_cpu());
    a.add(2);
    p.add(2);
    assert_eq!(a.sum(), 3);
    assert_eq!(p.sum(), 3);
}

#[test]
fn bad_configuration_is_an_error() {
    assert!(Domain::builder().ncpu(0).build().is_err());
    assert!(Domain::builder().batch(0).build().is_err());
    assert!(Domain::builder().unit_bytes(12345).build().is_err());
}

#[test]
fn portable_backend_after_rseq_is_an_error() {
    let c = PercpuCounter::new(0);
    c.inc();
    let asked = Domain::builder()
        .backend(pcpu_counter::Backend::Portable)
        .build();
    match pcpu_rseq::mode() {
        pcpu_rseq::Mode::Rseq => assert!(asked.is_err(), "the mode cannot change once rseq runs"),
        pcpu_rseq::Mode::Portable => assert!(asked.is_ok()),
    }
}

/// Groups are lazy too: a process's four memory counters, updated by one thread, take no
/// header and no per-CPU slot; updated from two CPUs, they go per-CPU together, exactly.
#[test]
fn groups_are_lazy() {
    use pcpu_counter::PercpuCounterGroup;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let domain = Domain::builder().build().unwrap();
    let alone = PercpuCounterGroup::new_in(domain, 4).unwrap();
    for k in 0..100_000i64 {
        alone.add((k % 4) as usize, 3).unwrap();
    }
    assert!(!alone.is_per_cpu());
    assert_eq!(alone.sum_all(), vec![75_000; 4]);
    assert_eq!(alone.error_bound(), 0);
    assert_eq!(domain.stats().header_blocks, 0, "no header for one thread");

    let shared = PercpuCounterGroup::new_in(domain, 4).unwrap();
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (added, apart) = common::on_two_cpus(|_| {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..1024 {
                shared.add(1, 1).unwrap();
            }
            n += 1024;
            if shared.is_per_cpu() || Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
            }
        }
        for _ in 0..10_000 {
            shared.add(1, 1).unwrap();
            shared.add(2, -1).unwrap();
        }
        n + 10_000
    });
    let added: i64 = added.iter().sum();
    assert_eq!(shared.sum_all(), vec![0, added, -20_000, 0]);
    if apart {
        assert!(
            shared.is_per_cpu(),
            "a group updated from two CPUs goes per-CPU"
        );
    }
}
