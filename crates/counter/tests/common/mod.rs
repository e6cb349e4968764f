//! Test support shared by pcpu-counter's integration tests: domains of 4 simulated CPUs with
//! the CPU changes that make a lazy counter go per-CPU or a batch widen (`stats.rs`,
//! `tracing.rs`), and two threads that really update a counter at once (`modes.rs`,
//! `static_counter.rs`, `prometheus.rs`). The signal storm and stress sizes come from
//! pcpu-testkit.
#![allow(dead_code)] // each test binary uses a part

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use pcpu_testkit::affinity;

/// Runs `work(0)` and `work(1)` on two threads, each pinned to a CPU of its own so that they
/// really run at the same time: left to the scheduler, two busy threads can share one CPU for
/// a whole test (CI saw it, with another test's two threads on the other CPU), and a lazy
/// counter they both update then rightly stays inline. Returns their results, and whether they
/// ran pinned apart: false only when this process may run on fewer than two CPUs, or its
/// affinity mask cannot be read (the threads
/// then run where the scheduler puts them, the caller must not expect them to overlap, and a
/// SKIPPED line on stderr says so). Panics if the kernel refuses the pinning, so that a check
/// of overlap never silently stops checking.
pub fn on_two_cpus<T: Send>(work: impl Fn(usize) -> T + Sync) -> (Vec<T>, bool) {
    let cpus = affinity::two_cpus();
    if cpus.is_none() {
        eprintln!("SKIPPED the overlap check: fewer than two CPUs to pin two threads to");
    }
    let work = &work;
    let results = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|i| {
                s.spawn(move || {
                    if let Some(cpus) = cpus {
                        let cpu = cpus[i];
                        assert!(affinity::pin_to(cpu), "pinning worker {i} to CPU {cpu}");
                    }
                    work(i)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    (results, cpus.is_some())
}

/// A new domain of 4 (simulated) CPUs whose counters are per-CPU from the start, folding at
/// `batch` and widening up to `max_batch`.
pub fn per_cpu_domain(batch: i64, max_batch: i64) -> &'static Domain {
    Domain::builder()
        .ncpu(4)
        .batch(batch)
        .max_batch(max_batch)
        .mode(CounterMode::PerCpu)
        .build()
        .unwrap()
}

/// 8,192 counters of `domain` (four pagesets of 2,048 8-byte slots), counter `i` at `i`, of
/// which 9 in 10 are dropped: the ones kept (every tenth, `i % 10 == 9`) leave sparse
/// pagesets for a compaction to empty.
pub fn sparse_counters(domain: &'static Domain) -> Vec<PercpuCounter> {
    let mut counters = PercpuCounter::new_many_in(domain, 8192, 0).unwrap();
    for (i, c) in counters.iter().enumerate() {
        c.add(i as i64);
    }
    let mut i = 0;
    counters.retain(|_| {
        i += 1;
        i % 10 == 0
    });
    counters
}

/// Runs `add` `rounds × 64` times, moving to the other simulated CPU every 64: each sample
/// of a lazy counter (a simulated CPU has no rseq CPU to compare, so one add in 64 of its
/// own is sampled) is then a switch, and the counter goes per-CPU within a few rounds.
///
/// # Safety
/// As for `pcpu_rseq::simulate_cpu`: `add` updates only counters of a domain that no thread on
/// the rseq backend uses meanwhile (one the test built for itself).
pub unsafe fn alternate(rounds: usize, mut add: impl FnMut()) {
    for round in 0..rounds {
        // SAFETY: forwarded from the caller.
        unsafe { pcpu_rseq::simulate_cpu(Some(round % 2)) };
        for _ in 0..64 {
            add();
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { pcpu_rseq::simulate_cpu(None) };
}

/// Folds from the 4 simulated CPUs in turn, with the window clock standing still
/// (`pcpu_counter::simulate_fold_clock`: every window of switches is short, see
/// `tests/widen.rs`), until `c`'s batch reaches `batch`; a bound on the attempts in case it
/// never does. The caller checks that it got there.
///
/// # Safety
/// As for `pcpu_rseq::simulate_cpu`: `c` belongs to a domain that no thread on the rseq backend
/// uses meanwhile (one the test built for itself).
pub unsafe fn widen_to(c: &PercpuCounter, batch: i64) {
    pcpu_counter::simulate_fold_clock(Some(1_000));
    for f in 0..100_000 {
        // SAFETY: forwarded from the caller.
        unsafe { pcpu_rseq::simulate_cpu(Some(f % 4)) };
        c.add(c.batch());
        if c.batch() == batch {
            break;
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { pcpu_rseq::simulate_cpu(None) };
    pcpu_counter::simulate_fold_clock(None);
}
