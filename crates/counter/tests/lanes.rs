//! Costs that follow the lanes in use: on a domain of 256 (simulated) CPUs, per-CPU counters
//! added to from 8 threads under a signal storm sum exactly, and each `sum()` reads only the
//! lanes the process's threads used (counted by pcpu-migrate's `count-lane-reads` feature),
//! not 256; a compaction copies, and a free zeroes, only those lanes of each slot; and group
//! sums read only those lanes too.
//!
//! Where lanes follow `mm_cid` ([`pcpu_rseq::IdSource::MmCid`]), that is at most the number of
//! CPUs the process may use (`taskset -c 1`: one lane; the 8-vCPU VM run with `--taskset 2,5`:
//! two); with CPU ids, up to the highest allowed CPU + 1. On the portable backend counters
//! start with every lane (it files adds under `sched_getcpu`), so only the totals are
//! checked there. `PCPU_EXPECT_ID=mm_cid` or `cpu` fails the test unless that id source is in
//! use (CI sets it).
// Linux: the signal storm, `sched_getaffinity` and the ids themselves.
#![cfg(target_os = "linux")]
// Not under Miri: signals, `sched_getaffinity`, 8 threads.
#![cfg(not(miri))]

use pcpu_counter::{CounterMode, Domain, PercpuCounter, PercpuCounterGroup};
use pcpu_rseq::IdSource;
use pcpu_testkit::signals::{install_sigusr1, run_under_storm};
use pcpu_testkit::stress::env_f64;

const WORKERS: usize = 8;
const COUNTERS: usize = 16;

extern "C" fn on_signal(_: libc::c_int) {}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: all-zero bytes are an empty `cpu_set_t`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a writable `cpu_set_t` of `size` bytes; pid 0 is the calling thread.
    assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut set) }, 0);
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE, within `set`.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

#[test]
fn sums_read_only_the_lanes_in_use_under_a_signal_storm() {
    let ids = pcpu_rseq::id_source();
    if let Ok(want) = std::env::var("PCPU_EXPECT_ID") {
        let want = match want.as_str() {
            "mm_cid" => IdSource::MmCid,
            "cpu" => IdSource::CpuId,
            other => panic!("PCPU_EXPECT_ID={other}: expected mm_cid or cpu"),
        };
        assert_eq!(ids, want, "PCPU_EXPECT_ID: lanes follow {ids:?}");
    }
    let allowed = allowed_cpus();
    eprintln!(
        "lanes: backend {:?}, lanes by {ids:?}, allowed CPUs {allowed:?}",
        pcpu_rseq::mode()
    );
    let domain = Domain::builder()
        .ncpu(256)
        .mode(CounterMode::PerCpu)
        .build()
        .unwrap();
    let counters: Vec<PercpuCounter> = (0..COUNTERS)
        .map(|_| PercpuCounter::new_in(domain, 0).unwrap())
        .collect();
    let per_worker = (200_000.0 * env_f64("PCPU_STRESS_SCALE", 1.0)) as usize;
    // SAFETY: the handler does nothing, which is async-signal-safe.
    unsafe { install_sigusr1(on_signal) };
    let (added, sent) = run_under_storm(WORKERS, 11, 64, |w| {
        let mut rng = fastrand::Rng::with_seed(170 + w as u64);
        let mut added = vec![0i64; COUNTERS];
        for n in 0..per_worker {
            let i = rng.usize(..COUNTERS);
            let delta = rng.i64(-40..=50);
            counters[i].add(delta);
            added[i] += delta;
            if n % 4096 == 0 {
                // A concurrent sum: within bounds, never exact here.
                let _ = counters[i].sum();
            }
        }
        added
    });
    eprintln!("lanes: storm: {sent} signals");
    // The lanes a sum may read: what the id source lets the allowed CPUs use.
    let bound = lanes_allowed(domain.ncpu());
    let mut most = 0;
    for (i, c) in counters.iter().enumerate() {
        let want: i64 = added.iter().map(|a| a[i]).sum();
        let before = pcpu_migrate::lane_reads::on_this_thread();
        let got = c.sum();
        let read = pcpu_migrate::lane_reads::on_this_thread() - before;
        assert_eq!(got, want, "counter {i}: exact total");
        assert!(read >= 1, "counter {i}: its sum read no lane");
        assert!(
            read as usize <= bound,
            "counter {i}: sum read {read} lanes of 256; the id source ({ids:?}, allowed CPUs \
             {allowed:?}) allows {bound}"
        );
        most = most.max(read);
    }
    eprintln!("lanes: each sum read at most {most} lanes (bound {bound}) of 256");
}

/// The lanes the id source lets this process's threads use, out of `ncpu`: where a bound
/// walk must stop (every lane on the portable backend, whose counters start with them all).
fn lanes_allowed(ncpu: usize) -> usize {
    let allowed = allowed_cpus();
    match pcpu_rseq::id_source() {
        _ if pcpu_rseq::mode() != pcpu_rseq::Mode::Rseq => ncpu,
        IdSource::MmCid => allowed.len(),
        IdSource::CpuId => allowed.iter().max().map_or(0, |&c| c + 1),
    }
}

/// The simulated CPU count of the domains below.
const NCPU: usize = 256;

/// A new domain of [`NCPU`] CPUs whose counters go per-CPU at once.
fn per_cpu_domain() -> &'static Domain {
    Domain::builder()
        .ncpu(NCPU)
        .mode(CounterMode::PerCpu)
        .build()
        .unwrap()
}

/// Runs `add(t, item)` for each item from 2 threads (`t` = 0, 1), wherever the scheduler
/// puts them.
fn add_from_two_threads<T: Sync>(items: &[T], add: impl Fn(i64, &T) + Sync) {
    std::thread::scope(|s| {
        for t in 0..2i64 {
            let add = &add;
            s.spawn(move || items.iter().for_each(|x| add(t, x)));
        }
    });
}

#[test]
fn compaction_and_frees_walk_only_the_lanes_in_use() {
    let domain = per_cpu_domain();
    let n = 4096;
    let counters: Vec<PercpuCounter> = (0..n)
        .map(|_| PercpuCounter::new_in(domain, 0).unwrap())
        .collect();
    // Two threads add i + t to counter i, then this one adds 1.
    let indexed: Vec<(i64, &PercpuCounter)> = (0..).zip(&counters).collect();
    add_from_two_threads(&indexed, |t, (i, c)| c.add(i + t));
    for c in &counters {
        c.add(1);
    }
    // Free 9 in 10 (here, on this thread), so that compaction moves the rest out of sparse
    // pagesets.
    let freed_before = pcpu_migrate::lane_reads::freed_on_this_thread();
    let kept: Vec<(usize, PercpuCounter)> = counters
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 0)
        .collect();
    let freed = pcpu_migrate::lane_reads::freed_on_this_thread() - freed_before;
    let dropped = (n - kept.len()) as u64;
    let before = pcpu_migrate::lane_reads::copied_on_this_thread();
    let report = domain.compact().unwrap();
    let copied = pcpu_migrate::lane_reads::copied_on_this_thread() - before;
    for (i, c) in &kept {
        assert_eq!(
            c.sum(),
            2 * *i as i64 + 2,
            "counter {i}: exact after compaction"
        );
    }
    let moved = report.slots_moved as u64;
    assert!(moved > 0, "nothing moved: {report:?}");
    let bound = lanes_allowed(NCPU) as u64;
    eprintln!(
        "lanes: compaction moved {moved} slots, copying {copied} lanes ({} per slot, bound \
         {bound} of {NCPU})",
        copied / moved
    );
    assert!(
        copied <= moved * bound,
        "compaction copied {copied} lanes for {moved} slots: more than {bound} per slot"
    );
    eprintln!(
        "lanes: {dropped} counters dropped, their slots' frees zeroing {freed} lanes ({} per \
         slot)",
        freed / dropped
    );
    assert!(
        freed > 0,
        "no free was counted: the frees did not detach a slot"
    );
    assert!(
        freed <= dropped * bound,
        "freeing {dropped} slots zeroed {freed} lanes: more than {bound} per slot"
    );
}

#[test]
fn group_sums_read_only_the_lanes_in_use() {
    let domain = per_cpu_domain();
    let groups: Vec<PercpuCounterGroup> = (0..64)
        .map(|_| PercpuCounterGroup::new_in(domain, 4).unwrap())
        .collect();
    add_from_two_threads(&groups, |t, g| {
        for i in 0..4 {
            g.add(i, i as i64 + t).unwrap();
        }
    });
    let bound = lanes_allowed(NCPU) as u64;
    for (n, g) in groups.iter().enumerate() {
        for i in 0..4 {
            let before = pcpu_migrate::lane_reads::on_this_thread();
            let got = g.sum(i).unwrap();
            let read = pcpu_migrate::lane_reads::on_this_thread() - before;
            assert_eq!(got, 2 * i as i64 + 1, "group {n}, counter {i}: exact");
            assert!(read >= 1, "group {n}: its sum read no lane");
            assert!(
                read <= bound,
                "group {n}, counter {i}: sum read {read} lanes of {NCPU}; the id source allows \
                 {bound}"
            );
        }
    }
}
