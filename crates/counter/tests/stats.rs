//! `Domain::stats()`: every space (single counters and the three group sizes), and running
//! totals that are exact: compactions, slots moved, grace periods, lazy upgrades, batch
//! widenings. (Slow-path adds: a unit test in `src/counter.rs`, which can disable a slot;
//! failed compactions: `tests/rlimit.rs`, which can make one fail.)

mod common;

use common::{alternate, per_cpu_domain, sparse_counters, widen_to};
use pcpu_counter::{Domain, PercpuCounter, PercpuCounterGroup};

#[test]
fn stats_cover_every_space() {
    let domain = per_cpu_domain(32, 4096);
    let singles: Vec<PercpuCounter> = (0..3)
        .map(|_| PercpuCounter::new_in(domain, 0).unwrap())
        .collect();
    let groups: Vec<PercpuCounterGroup> = [2, 2, 3, 4, 5, 8]
        .iter()
        .map(|&n| PercpuCounterGroup::new_in(domain, n).unwrap())
        .collect();
    let stats = domain.stats();
    let classes: Vec<usize> = stats.spaces.iter().map(|s| s.class_bytes).collect();
    assert_eq!(classes, [8, 16, 32, 64]);
    let live: Vec<usize> = stats.spaces.iter().map(|s| s.waste.live_objects).collect();
    assert_eq!(live, [3, 2, 2, 2], "singles; pairs; 3-4; 5-8");
    assert_eq!(stats.waste.live_objects, 9, "every space added up");
    assert_eq!(
        stats.waste.live_bytes,
        (3 * 8 + 2 * 16 + 2 * 32 + 2 * 64) * 4
    );
    let mapped: usize = stats.spaces.iter().map(|s| s.waste.mapped_bytes).sum();
    assert_eq!(stats.waste.mapped_bytes, mapped);
    assert!(stats.spaces.iter().all(|s| s.waste.mapped_bytes > 0));
    assert!(
        stats.header_blocks >= 9,
        "free blocks in magazines count too"
    );
    drop((singles, groups));
}

#[test]
fn compaction_totals_are_exact() {
    let domain = per_cpu_domain(32, 4096);
    assert_eq!(domain.stats().totals, Default::default(), "a new domain");
    let mut counters = sparse_counters(domain);
    let first = domain.compact().unwrap();
    assert!(first.slots_moved > 0, "{first:?}");
    // More to move: free most of the rest, compact again.
    counters.truncate(counters.len() / 5);
    let second = domain.compact().unwrap();
    let third = domain.compact().unwrap();
    let t = domain.stats().totals;
    assert_eq!(t.compactions, 3);
    assert_eq!(t.compaction_failures, 0);
    let moved = first.slots_moved + second.slots_moved + third.slots_moved;
    assert_eq!(t.slots_moved, moved as u64);
    let grace = first.grace_periods + second.grace_periods + third.grace_periods;
    assert_eq!(t.grace_periods, grace as u64);
    assert_eq!((t.upgrades, t.widenings, t.slow_path_adds), (0, 0, 0));
    assert!(counters.iter().all(|c| c.sum() % 10 == 9), "nothing lost");
}

#[test]
fn upgrades_are_counted_once_per_counter() {
    let domain = Domain::builder().ncpu(4).build().unwrap();
    let contended: Vec<PercpuCounter> = (0..3)
        .map(|_| PercpuCounter::new_in(domain, 0).unwrap())
        .collect();
    let quiet = PercpuCounter::new_in(domain, 0).unwrap();
    let group = PercpuCounterGroup::new_in(domain, 3).unwrap();
    for c in &contended {
        // Well past the upgrade: later switches must not count it again.
        // SAFETY: the counter is of a domain this test built, which no other thread uses.
        unsafe { alternate(64, || c.inc()) };
        assert!(c.is_per_cpu());
    }
    // SAFETY: the counter is of a domain this test built, which no other thread uses.
    unsafe { alternate(64, || group.add(1, 1).unwrap()) };
    assert!(group.is_per_cpu());
    // SAFETY: the counters used until `simulate_cpu(None)` belong to a domain this test built,
    // which no other thread uses.
    unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
    for _ in 0..64 * 64 {
        quiet.inc();
    }
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { pcpu_rseq::simulate_cpu(None) };
    assert!(!quiet.is_per_cpu());
    let t = domain.stats().totals;
    assert_eq!(t.upgrades, 4, "three counters and a group");
    assert_eq!(t.compactions, 0);
    assert!(contended.iter().all(|c| c.sum() == 64 * 64));
}

#[test]
fn widenings_are_counted_per_doubling() {
    let domain = per_cpu_domain(32, 128);
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    // SAFETY: the counter is of a domain this test built, which no other thread uses.
    unsafe { widen_to(&c, 128) };
    assert_eq!(c.batch(), 128, "never reached max_batch");
    assert_eq!(domain.stats().totals.widenings, 2, "32 → 64 → 128");
}

#[test]
fn rseq_aborts_are_the_process_total() {
    let domain = Domain::builder().ncpu(4).build().unwrap();
    let before = pcpu_rseq::aborts_total();
    let seen = domain.stats().totals.rseq_aborts;
    assert!(seen >= before && seen <= pcpu_rseq::aborts_total());
}

#[cfg(feature = "serde")]
#[test]
fn stats_serialise() {
    let domain = per_cpu_domain(32, 4096);
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    domain.compact().unwrap();
    let json: serde_json::Value = serde_json::to_value(domain.stats()).unwrap();
    assert_eq!(json["waste"]["live_objects"], 1);
    assert_eq!(json["spaces"].as_array().unwrap().len(), 4);
    assert_eq!(json["spaces"][0]["class_bytes"], 8);
    assert_eq!(
        json["spaces"][0]["cache"]["cached_per_cpu"]
            .as_array()
            .map(Vec::len),
        Some(domain.stats().spaces[0].cache.cached_per_cpu.len())
    );
    // Every field of the mirrored types (src/stats.rs, nested ones included): the Debug output
    // names them all.
    fn fields_at_every_level(value: &serde_json::Value) -> usize {
        value.as_object().map_or(0, |fields| {
            fields.len() + fields.values().map(fields_at_every_level).sum::<usize>()
        })
    }
    let stats = domain.stats();
    for (value, debug) in [
        (&json["waste"], format!("{:?}", stats.waste)),
        (
            &json["spaces"][0]["cache"],
            format!("{:?}", stats.spaces[0].cache),
        ),
    ] {
        assert!(value.is_object(), "{value}");
        let named = debug.matches(": ").count();
        assert_eq!(
            fields_at_every_level(value),
            named,
            "{debug} against {value}"
        );
    }
    assert_eq!(json["totals"]["compactions"], 1);
    assert_eq!(json["totals"]["upgrades"], 0);
    assert!(json["header_blocks"].is_u64());
    drop(c);
}
