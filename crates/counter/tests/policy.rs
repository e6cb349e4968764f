//! The waste policy: with `compact_when_waste_above`, churn alone (drops) triggers compaction
//! and brings per-CPU memory back near the live counters' need.

use pcpu_counter::{CounterMode, Domain, PercpuCounter};

#[test]
fn drops_trigger_compaction_when_waste_crosses_the_ratio() {
    let domain = Domain::builder()
        .mode(CounterMode::PerCpu)
        .compact_when_waste_above(2.0)
        .build()
        .unwrap();
    let all = PercpuCounter::new_many_in(domain, 200_000, 1).unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut live = Vec::new();
    for c in all {
        if rng.u8(..10) == 0 {
            live.push(c);
        } // else dropped here: some drop makes the check, which compacts
    }
    let w = domain.stats().waste;
    eprintln!(
        "after churn: {} live, per-CPU resident/ideal {:.2}",
        w.live_objects,
        w.ratio()
    );
    assert!(w.ratio() <= 2.5, "the policy compacted ({:.2})", w.ratio());
    assert!(live.iter().all(|c| c.sum() == 1));
}

#[test]
fn without_a_policy_nothing_compacts_by_itself() {
    let domain = Domain::builder().mode(CounterMode::PerCpu).build().unwrap();
    let all = PercpuCounter::new_many_in(domain, 200_000, 1).unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let live: Vec<_> = all.into_iter().filter(|_| rng.u8(..10) == 0).collect();
    domain.stats(); // a read changes nothing
    let w = domain.stats().waste;
    assert!(
        w.ratio() > 5.0,
        "sparse without compaction ({:.2})",
        w.ratio()
    );
    assert!(live.iter().all(|c| c.sum() == 1));
}
