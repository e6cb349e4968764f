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
    let domain = Domain::builder().ncpu(2).build().unwrap();
    let c = PercpuCounter::new_in(&domain, 0).unwrap();
    // Two threads, each acting as a different CPU (simulated, so the test does not depend on
    // the scheduler placing them on different cores), add until the counter goes per-CPU.
    std::thread::scope(|s| {
        for cpu in 0..2 {
            let c = &c;
            s.spawn(move || {
                pcpu_rseq::simulate_cpu(Some(cpu));
                for _ in 0..100_000 {
                    c.inc();
                    if c.is_per_cpu() {
                        break;
                    }
                    std::thread::yield_now();
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
