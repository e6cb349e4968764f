//! With `RLIMIT_AS` lowered, `try_new` returns an error and the existing counters keep
//! working. The parent test re-runs this binary as a child (`pcpu_testkit::rlimit`)
//! that lowers its own limit; its exit code carries the verdict, so an abort fails the test.
// RLIMIT_AS and re-running itself as a child: Unix only.
#![cfg(unix)]

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use pcpu_testkit::rlimit;

/// Runs test `name` of this binary as a child under its own `RLIMIT_AS`, and checks that it
/// reported the failure it provoked.
fn run_child(name: &str) {
    let text = rlimit::run_child(name);
    assert!(
        text.contains("failed with"),
        "child saw no failure:\n{text}"
    );
}

#[test]
fn rlimit_parent() {
    run_child("rlimit_child");
}

#[test]
fn compaction_parent() {
    run_child("compaction_child");
}

/// In the child only: a per-CPU domain of 256 simulated CPUs (each new pageset maps
/// 256 x 16 KiB = 4 MiB of address space).
fn child_domain() -> Option<&'static Domain> {
    if !rlimit::is_child() {
        return None;
    }
    Some(
        Domain::builder()
            .ncpu(256)
            .mode(CounterMode::PerCpu)
            .build()
            .unwrap(),
    )
}

#[test]
fn rlimit_child() {
    let Some(domain) = child_domain() else {
        return;
    };
    let first = PercpuCounter::new_in(domain, 0).unwrap();
    first.add(1);
    let mut live = Vec::with_capacity(1 << 22);
    rlimit::set_address_space_limit(rlimit::address_space_size() + (64 << 20));
    let err = loop {
        match PercpuCounter::new_in(domain, 1) {
            Ok(c) => {
                if live.len() == live.capacity() {
                    panic!("the limit was never reached");
                }
                live.push(c);
            }
            Err(e) => break e,
        }
    };
    eprintln!("try_new failed with {err} after {} counters", live.len());
    assert!(!live.is_empty());
    // Existing counters keep working, exactly.
    first.add(2);
    assert_eq!(first.sum(), 3);
    for c in live.iter().take(1000) {
        c.add(1);
        assert_eq!(c.sum(), 2);
    }
    // Freeing makes room again.
    live.truncate(live.len() / 2);
    let again = PercpuCounter::new_in(domain, 5).unwrap();
    assert_eq!(again.sum(), 5);
}

/// A compaction that cannot allocate its bookkeeping fails with an error (it aborted the
/// process before: its list of live objects was an infallible `collect`), loses nothing, and
/// succeeds once memory is back.
#[test]
fn compaction_child() {
    let Some(domain) = child_domain() else {
        return;
    };
    let all = PercpuCounter::new_many_in(domain, 200_000, 1).unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let live: Vec<PercpuCounter> = all.into_iter().filter(|_| rng.u8(..10) == 0).collect();
    live.iter().for_each(|c| c.add(1));
    // No room to grow, and the heap's free space used up by 4 KiB chunks; then 64 KiB of
    // them freed again: room for the compactor's small allocations, not for its list of
    // ~20,000 live objects (160 KB).
    let mut ballast: Vec<Vec<u8>> = Vec::with_capacity(1 << 20);
    rlimit::set_address_space_limit(rlimit::address_space_size());
    while ballast.len() < ballast.capacity() {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(4096).is_err() {
            break;
        }
        ballast.push(chunk);
    }
    assert!(
        ballast.len() < ballast.capacity(),
        "the limit was never reached"
    );
    ballast.truncate(ballast.len() - 16);
    let err = domain
        .compact()
        .expect_err("no memory for the compactor's list");
    eprintln!("compact failed with {err}");
    rlimit::set_address_space_limit(usize::MAX);
    drop(ballast);
    assert!(live.iter().all(|c| c.sum() == 2), "nothing lost");
    let report = domain.compact().unwrap();
    assert!(report.slots_moved > 0);
    assert!(live.iter().all(|c| c.sum() == 2), "nothing lost");
    // The domain's running totals: the failure, and only the successful round's moves.
    let t = domain.stats().totals;
    assert_eq!((t.compactions, t.compaction_failures), (1, 1));
    assert_eq!(t.slots_moved, report.slots_moved as u64);
    assert_eq!(t.grace_periods, report.grace_periods as u64);
}
