//! End-to-end stress through the public API: 64 threads (on however few cores) create,
//! destroy, add to, set and compact counters and counter groups at random, while a storm
//! thread hits random workers with SIGUSR1 (a handler that adds 1 to a shared lazy counter,
//! with `SA_RESTART`), for a bounded
//! time. Everything is checked exactly:
//! - shared counters and groups: each worker tracks what it added; after the join, every
//!   `sum()` equals the total of all workers' adds (plus the initial value), and
//!   `|read() − sum()| ≤ error_bound()`;
//! - counters and groups a worker owns (the only ones it may `set`): `sum()`, `compare`,
//!   `limited_add` and `sum_all()` match the worker's model at every check, in particular
//!   right before each is dropped;
//! - afterwards the domain counts exactly the shared per-CPU counters as live.
//!
//! `PCPU_STRESS_SECS` (default 10, fractions allowed) bounds the run; `PCPU_STRESS_SCALE`
//! (default 1.0) scales the sizes (counters owned per worker, ops between clock checks).
//! Run it in the three environments (default, `GLIBC_TUNABLES=glibc.pthread.rseq=0`,
//! `PCPU_RSEQ=off`) and under valgrind, where the portable backend runs.
// Signals, pthread_kill: Unix only (the other targets only check that it builds).
#![cfg(unix)]

use pcpu_counter::{CounterMode, Domain, PercpuCounter, PercpuCounterGroup};
use pcpu_testkit::signals::{install_sigusr1, run_under_storm};
use pcpu_testkit::stress::{scaled, stress_secs};
use std::cmp::Ordering as Cmp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WORKERS: usize = 64;
const SHARED: usize = 8;
/// Sizes of the shared groups (2 and 4: not the single counters' space).
const SHARED_GROUPS: [usize; 2] = [2, 4];

/// Added to by the signal handler only: it must end at exactly the number of signals handled.
/// `CounterMode::Atomic`; the handler updates it inside a `signal_handler_scope` (without
/// one, a lazy counter may upgrade and a portable add may pin, which can allocate: under
/// ThreadSanitizer that is reported as a signal-unsafe call). Made before the handler is
/// installed.
static HANDLER_ADDS: std::sync::OnceLock<PercpuCounter> = std::sync::OnceLock::new();
static HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    // The workers allocate: a handler that may interrupt the allocator opens the scope
    // (`PercpuCounter::add`'s docs).
    let _scope = pcpu_counter::signal_handler_scope();
    if let Some(c) = HANDLER_ADDS.get() {
        c.inc();
        HANDLED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Installs the SIGUSR1 handler.
fn install_handler() {
    // SAFETY: the handler adds to a counter and an atomic: async-signal-safe (see
    // `PercpuCounter::add`).
    unsafe { install_sigusr1(on_signal) };
}

/// A counter a worker owns, with the exact value it must hold.
struct Owned {
    c: PercpuCounter,
    want: i64,
}

/// A group a worker owns.
struct OwnedGroup {
    g: PercpuCounterGroup,
    want: Vec<i64>,
}

fn check_owned(o: &Owned, what: &str) {
    let sum = o.c.sum();
    assert_eq!(sum, o.want, "{what}: owned counter sum");
    let (read, bound) = (o.c.read(), o.c.error_bound());
    assert!(
        read.abs_diff(sum) <= bound as u64,
        "{what}: |read {read} - sum {sum}| > error_bound {bound}"
    );
}

/// What one worker reports.
#[derive(Default)]
struct Report {
    shared: [i64; SHARED],
    groups: [[i64; 4]; SHARED_GROUPS.len()],
    ops: u64,
    created: u64,
    sets: u64,
    compactions: u64,
    registration: Option<pcpu_rseq::Registration>,
    aborts: u64,
}

struct World {
    domain: &'static Domain,
    shared: Vec<PercpuCounter>,
    groups: Vec<PercpuCounterGroup>,
    deadline: Instant,
    owned_cap: usize,
    chunk: usize,
}

fn new_owned(w: &World, rng: &mut fastrand::Rng, owned: &mut Vec<Owned>) -> Result<(), String> {
    let init = rng.i64(-1000..1000);
    match rng.u32(0..8) {
        0 => {
            let n = rng.usize(1..4);
            let many = PercpuCounter::new_many_in(w.domain, n, init).map_err(|e| e.to_string())?;
            owned.extend(many.into_iter().map(|c| Owned { c, want: init }));
        }
        1 => owned.push(Owned {
            // The global domain, too: lazy counters over the possible CPUs.
            c: PercpuCounter::try_new(init).map_err(|e| e.to_string())?,
            want: init,
        }),
        k => {
            let mode = match k % 3 {
                0 => CounterMode::Lazy,
                1 => CounterMode::PerCpu,
                _ => CounterMode::Atomic,
            };
            let c = PercpuCounter::with_mode(w.domain, init, mode).map_err(|e| e.to_string())?;
            assert_eq!(
                c.is_per_cpu(),
                mode == CounterMode::PerCpu,
                "{mode:?} at creation"
            );
            assert_eq!(c.sum(), init, "fresh counter");
            owned.push(Owned { c, want: init });
        }
    }
    Ok(())
}

fn worker(w: &World, t: usize) -> Report {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0000 + t as u64);
    let mut r = Report {
        registration: Some(pcpu_rseq::registration()),
        ..Report::default()
    };
    let mut owned: Vec<Owned> = Vec::new();
    let mut groups: Vec<OwnedGroup> = Vec::new();
    // At least one chunk, however late this worker starts after the deadline was set (the
    // `ops > 0` and `created > 0` below, under valgrind's 3 s).
    let mut first = true;
    while std::mem::take(&mut first) || Instant::now() < w.deadline {
        for _ in 0..w.chunk {
            r.ops += 1;
            match rng.u32(0..1000) {
                // Adds to shared counters: the hot path.
                0..=499 => {
                    let i = rng.usize(..SHARED);
                    let d = rng.i64(-3..=8);
                    let c = &w.shared[i];
                    r.shared[i] += match rng.u32(0..4) {
                        0 => {
                            c.add_batch(d, rng.i64(1..200));
                            d
                        }
                        1 => {
                            c.inc();
                            1
                        }
                        2 => {
                            c.dec();
                            -1
                        }
                        _ => {
                            c.add(d);
                            d
                        }
                    };
                }
                500..=559 => {
                    let g = rng.usize(..SHARED_GROUPS.len());
                    let k = rng.usize(..SHARED_GROUPS[g]);
                    let d = rng.i64(-100..=100);
                    w.groups[g].add(k, d).expect("index in range");
                    r.groups[g][k] += d;
                }
                // Owned counters.
                560..=679 => {
                    if let Some(o) = pick(&mut rng, &mut owned) {
                        let d = rng.i64(-50..=50);
                        o.want += match rng.u32(0..4) {
                            0 => {
                                o.c.add_batch(d, rng.i64(1..100));
                                d
                            }
                            1 => {
                                o.c.inc();
                                1
                            }
                            2 => {
                                o.c.dec();
                                -1
                            }
                            _ => {
                                o.c.add(d);
                                d
                            }
                        };
                    }
                }
                680..=709 => {
                    if let Some(o) = pick(&mut rng, &mut owned) {
                        let v = rng.i64(-100_000..100_000);
                        o.c.set(v).expect("set");
                        o.want = v;
                        r.sets += 1;
                        check_owned(o, "after set");
                    }
                }
                710..=739 => {
                    if let Some(o) = pick(&mut rng, &mut owned) {
                        let delta = rng.i64(-20..=200);
                        let limit = o.want + rng.i64(-100..=300);
                        let expect = delta <= 0 || o.want + delta <= limit;
                        assert_eq!(o.c.limited_add(limit, delta), expect, "limited_add");
                        if expect {
                            o.want += delta;
                        }
                    }
                }
                740..=789 => {
                    if let Some(o) = pick(&mut rng, &mut owned) {
                        check_owned(o, "check");
                        let rhs = o.want + rng.i64(-3..=3);
                        assert_eq!(o.c.compare(rhs), o.want.cmp(&rhs), "compare");
                        assert_eq!(o.c.compare(o.want), Cmp::Equal, "compare");
                    }
                }
                790..=859 => {
                    if owned.len() < w.owned_cap {
                        new_owned(w, &mut rng, &mut owned).expect("create");
                        r.created += 1;
                    }
                }
                860..=929 => {
                    if !owned.is_empty() {
                        let o = owned.swap_remove(rng.usize(..owned.len()));
                        check_owned(&o, "before drop");
                        drop(o);
                    }
                }
                // Owned groups.
                930..=949 => {
                    if groups.len() < 4 {
                        let n = rng.usize(1..=8);
                        let g = PercpuCounterGroup::new_in(w.domain, n).expect("group");
                        groups.push(OwnedGroup {
                            g,
                            want: vec![0; n],
                        });
                    }
                }
                950..=979 => {
                    if !groups.is_empty() {
                        let i = rng.usize(..groups.len());
                        let g = &mut groups[i];
                        let k = rng.usize(..g.want.len());
                        let d = rng.i64(-1000..=1000);
                        g.g.add(k, d).expect("index in range");
                        g.want[k] += d;
                        assert_eq!(g.g.sum(k).expect("in range"), g.want[k], "group sum");
                    }
                }
                980..=994 => {
                    if !groups.is_empty() {
                        let g = groups.swap_remove(rng.usize(..groups.len()));
                        assert_eq!(g.g.sum_all(), g.want, "group before drop");
                    }
                }
                // Compaction: moves everybody's counters under their feet.
                _ => {
                    if rng.u32(0..8) == 0 {
                        w.domain.compact().expect("compact");
                        if rng.u32(0..16) == 0 {
                            Domain::global().compact().expect("compact global");
                        }
                        r.compactions += 1;
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        }
    }
    for o in &owned {
        check_owned(o, "at the end");
    }
    for g in &groups {
        assert_eq!(g.g.sum_all(), g.want, "group at the end");
    }
    r.aborts = pcpu_rseq::aborts_on_this_thread();
    r
}

fn pick<'a>(rng: &mut fastrand::Rng, v: &'a mut [Owned]) -> Option<&'a mut Owned> {
    if v.is_empty() {
        None
    } else {
        let i = rng.usize(..v.len());
        Some(&mut v[i])
    }
}

#[test]
fn e2e_random_api_under_signal_storm_is_exact() {
    HANDLER_ADDS.get_or_init(|| {
        PercpuCounter::with_mode(Domain::global(), 0, CounterMode::Atomic).unwrap()
    });
    install_handler();
    let secs = stress_secs(10.0);
    // One-page units (4 KiB, or 16 KiB on arm64 16k kernels): small pagesets, many of them.
    let domain = Domain::builder()
        .unit_bytes(pcpu_pageset::page_size())
        .build()
        .unwrap();
    let shared: Vec<PercpuCounter> = (0..SHARED)
        .map(|i| {
            let mode = [CounterMode::Lazy, CounterMode::PerCpu, CounterMode::Atomic][i % 3];
            PercpuCounter::with_mode(domain, i as i64 * 1000, mode).unwrap()
        })
        .collect();
    let groups: Vec<PercpuCounterGroup> = SHARED_GROUPS
        .iter()
        .map(|&n| PercpuCounterGroup::new_in(domain, n).unwrap())
        .collect();
    let started = Instant::now();
    let world = World {
        domain,
        shared,
        groups,
        deadline: started + Duration::from_secs_f64(secs),
        owned_cap: scaled(48) as usize,
        chunk: scaled(256) as usize,
    };
    let (reports, sent) = run_under_storm(WORKERS, 7, 64, |t| worker(&world, t));
    eprintln!("e2e: storm: {sent} signals");
    let elapsed = started.elapsed();

    let World { shared, groups, .. } = world;
    for (i, c) in shared.iter().enumerate() {
        let want = i as i64 * 1000 + reports.iter().map(|r| r.shared[i]).sum::<i64>();
        assert_eq!(c.sum(), want, "shared counter {i}");
        assert!(
            c.read().abs_diff(want) <= c.error_bound() as u64,
            "shared {i} read"
        );
        assert_eq!(c.compare(want), Cmp::Equal);
    }
    for (g, group) in groups.iter().enumerate() {
        let want: Vec<i64> = (0..SHARED_GROUPS[g])
            .map(|k| reports.iter().map(|r| r.groups[g][k]).sum())
            .collect();
        assert_eq!(group.sum_all(), want, "shared group {g}");
    }
    assert_eq!(
        HANDLER_ADDS.get().expect("made before the storm").sum(),
        HANDLED.load(Ordering::Relaxed) as i64,
        "adds made by the signal handler"
    );
    let per_cpu = shared.iter().filter(|c| c.is_per_cpu()).count();
    let stats = domain.stats();
    assert_eq!(
        stats.spaces[0].waste.live_objects, per_cpu,
        "live single counters after every owned counter was dropped"
    );
    let per_cpu_groups = groups.iter().filter(|g| g.is_per_cpu()).count();
    assert_eq!(
        stats.waste.live_objects,
        per_cpu + per_cpu_groups,
        "live objects of every space: the shared counters and groups"
    );
    assert!(per_cpu >= SHARED / 3, "PerCpu counters keep their slots");

    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let mut registrations: Vec<String> = reports
        .iter()
        .map(|r| format!("{:?}", r.registration))
        .collect();
    registrations.sort();
    registrations.dedup();
    eprintln!(
        "e2e: {:.1} s, mode {:?}, registrations {registrations:?}, page size {}, {} ops, \
         {} counters created, {} sets, {} compactions, {} signals, {} rseq aborts",
        elapsed.as_secs_f64(),
        pcpu_rseq::mode(),
        pcpu_pageset::page_size(),
        sum(|r| r.ops),
        sum(|r| r.created),
        sum(|r| r.sets),
        sum(|r| r.compactions),
        sent,
        sum(|r| r.aborts),
    );
    assert!(sum(|r| r.ops) > 0 && sum(|r| r.created) > 0);
    if std::env::var("PCPU_EXPECT_MODE").as_deref() == Ok("rseq") {
        assert_eq!(
            pcpu_rseq::mode(),
            pcpu_rseq::Mode::Rseq,
            "PCPU_EXPECT_MODE=rseq"
        );
        for r in &reports {
            assert!(
                matches!(
                    r.registration,
                    Some(pcpu_rseq::Registration::Glibc | pcpu_rseq::Registration::Own)
                ),
                "a worker without rseq: {:?}",
                r.registration
            );
        }
    }
}
