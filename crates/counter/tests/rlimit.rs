//! With `RLIMIT_AS` lowered, `try_new` returns an error and the existing counters keep
//! working. The parent test re-runs this binary as a child (`PCPU_COUNTER_RLIMIT_CHILD=1`)
//! that lowers its own limit; its exit code carries the verdict, so an abort fails the test.
// RLIMIT_AS and re-running itself as a child: Unix only.
#![cfg(unix)]

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use std::process::Command;

const CHILD_ENV: &str = "PCPU_COUNTER_RLIMIT_CHILD";

/// Runs test `name` of this binary as a child with `CHILD_ENV` set, and checks that it
/// passed and reported the failure it provoked.
fn run_child(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({:?}):\n{text}",
        out.status
    );
    assert!(
        text.contains("1 passed") && text.contains("failed with"),
        "child did not run:\n{text}"
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

/// Sets `RLIMIT_AS` to `limit` bytes (the hard limit stays infinite, so it can be raised).
fn set_limit(limit: usize) {
    let rl = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
}

fn vm_size() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// In the child only: a per-CPU domain of 256 simulated CPUs (each new pageset maps
/// 256 x 16 KiB = 4 MiB of address space).
fn child_domain() -> Option<&'static Domain> {
    std::env::var_os(CHILD_ENV)?;
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
    set_limit(vm_size() + (64 << 20));
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
    set_limit(vm_size());
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
    set_limit(usize::MAX);
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
