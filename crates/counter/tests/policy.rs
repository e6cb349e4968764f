//! The waste policy: an O(1) estimate of per-CPU waste, applied by `maybe_compact` or by a
//! compactor thread, and never from inside a counter's `drop`.

use pcpu_counter::{CounterError, CounterMode, Domain, PercpuCounter};
use std::time::{Duration, Instant};

const COUNTERS: usize = 200_000;

/// Creates `COUNTERS` per-CPU counters at 1 and drops a random 90 % of them.
fn churn(domain: &'static Domain) -> Vec<PercpuCounter> {
    let all = PercpuCounter::new_many_in(domain, COUNTERS, 1).unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    all.into_iter().filter(|_| rng.u8(..10) == 0).collect()
}

fn per_cpu_domain(waste_limit: Option<f64>) -> &'static Domain {
    let mut b = Domain::builder().mode(CounterMode::PerCpu);
    if let Some(r) = waste_limit {
        b = b.compact_when_waste_above(r);
    }
    b.build().unwrap()
}

/// Before, every 4096th drop per thread ran the policy, and compacted right there: this test
/// then found the ratio near 1.
#[test]
fn drops_never_compact_even_with_a_policy() {
    let domain = per_cpu_domain(Some(2.0));
    let live = churn(domain);
    let estimate = domain.waste_estimate();
    let measured = domain.stats().waste.ratio();
    eprintln!("after churn: estimate {estimate:.2}, measured {measured:.2}");
    assert!(estimate > 5.0, "sparse: nothing compacted ({estimate:.2})");
    assert!(measured > 5.0, "sparse: nothing compacted ({measured:.2})");
    assert!(live.iter().all(|c| c.sum() == 1));
}

#[test]
fn maybe_compact_applies_the_limit() {
    let domain = per_cpu_domain(Some(2.0));
    let live = churn(domain);
    let report = domain.maybe_compact().unwrap().expect("above the limit");
    assert!(report.slots_moved > 0);
    let (estimate, measured) = (domain.waste_estimate(), domain.stats().waste.ratio());
    eprintln!("after maybe_compact: estimate {estimate:.2}, measured {measured:.2}");
    assert!(estimate <= 2.0, "dense again ({estimate:.2})");
    assert!(measured <= 2.5, "dense again ({measured:.2})");
    assert!(
        domain.maybe_compact().unwrap().is_none(),
        "below the limit now"
    );
    assert!(live.iter().all(|c| c.sum() == 1));

    let no_policy = per_cpu_domain(None);
    let _live = churn(no_policy);
    assert!(no_policy.maybe_compact().unwrap().is_none(), "no limit set");
}

#[test]
fn estimate_follows_density() {
    let domain = per_cpu_domain(None);
    let all = PercpuCounter::new_many_in(domain, COUNTERS, 1).unwrap();
    let dense = domain.waste_estimate();
    assert!((1.0..1.1).contains(&dense), "all live: dense ({dense:.3})");
    drop(all);
    assert_eq!(domain.waste_estimate(), 0.0, "nothing live");
}

#[test]
fn compactor_thread_applies_the_policy() {
    let domain = per_cpu_domain(None);
    let compactor = domain
        .spawn_compactor(Duration::from_millis(5), 2.0)
        .unwrap();
    let live = churn(domain);
    // Compactions may run during the churn, and drops after the last one leave waste again:
    // wait for a whole check that began after the churn (checks are counted as they begin,
    // one at a time, so check `after + 1` has ended once `after + 2` began). It compacts what
    // is above the limit.
    let after = compactor.checks();
    let deadline = Instant::now() + Duration::from_secs(60);
    while compactor.compactions() == 0 || compactor.checks() < after + 2 {
        assert!(Instant::now() < deadline, "no compaction within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let a compaction that may be running end, and no other start.
    let compactions = compactor.compactions();
    compactor.stop();
    let measured = domain.stats().waste.ratio();
    eprintln!("compactor ran {compactions} compaction(s): measured {measured:.2}");
    assert!(measured <= 2.5, "the thread compacted ({measured:.2})");
    assert!(live.iter().all(|c| c.sum() == 1));
}

#[test]
fn compactor_rejects_bad_settings() {
    let domain = Domain::global();
    for (every, limit) in [
        (Duration::ZERO, 2.0),
        (Duration::from_millis(1), 0.5),
        (Duration::from_millis(1), f64::NAN),
    ] {
        assert!(matches!(
            domain.spawn_compactor(every, limit),
            Err(CounterError::Config(_))
        ));
    }
}
