//! Lazy mode: a counter shared by two threads on two CPUs goes per-CPU; one used by a single
//! thread stays a plain atomic.

use pcpu_counter::{CounterMode, Domain, PercpuCounter};

#[test]
fn single_thread_stays_atomic() {
    let domain = Domain::builder().build().unwrap();
    let c = PercpuCounter::new_in(&domain, 0).unwrap();
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
}

#[test]
fn two_threads_on_two_cpus_upgrade() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let domain = Domain::builder().ncpu(2).build().unwrap();
    let c = PercpuCounter::new_in(&domain, 0).unwrap();
    // Two threads, each acting as a different CPU (simulated, so the test does not depend on
    // the scheduler placing them on different cores), take turns adding 8 at a time (turns, so
    // that they really interleave even on a loaded machine), until the counter goes per-CPU.
    let turn = AtomicUsize::new(0);
    let turns = 20_000; // a bound, not a time: the upgrade is expected within a few dozen
    std::thread::scope(|s| {
        for cpu in 0..2 {
            let (c, turn) = (&c, &turn);
            s.spawn(move || {
                pcpu_rseq::simulate_cpu(Some(cpu));
                loop {
                    let t = turn.load(Ordering::Acquire);
                    if t >= turns {
                        return;
                    }
                    if t % 2 != cpu {
                        std::thread::yield_now();
                        continue;
                    }
                    for _ in 0..8 {
                        c.inc();
                    }
                    // Hand the turn over, or end both threads once the counter went per-CPU.
                    let next = if c.is_per_cpu() { turns } else { t + 1 };
                    turn.store(next, Ordering::Release);
                }
            });
        }
    });
    assert!(
        c.is_per_cpu(),
        "a counter updated from two CPUs must upgrade"
    );
    let before = c.sum();
    c.add(5);
    assert_eq!(c.sum(), before + 5);
}

#[test]
fn explicit_modes() {
    let domain = Domain::builder().build().unwrap();
    let a = PercpuCounter::with_mode(&domain, 1, CounterMode::Atomic).unwrap();
    let p = PercpuCounter::with_mode(&domain, 1, CounterMode::PerCpu).unwrap();
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
