//! Header compaction: `Domain::compact` moves single counters' headers out of sparse pages of
//! header storage and gives the pages back; each counter fixes its state word up the first
//! time it looks (the forward table), and every call works through the moved header.
#![cfg(not(loom))]

use pcpu_counter::{CounterMode, Domain, PercpuCounter};

fn per_cpu_domain() -> &'static Domain {
    Domain::builder()
        .ncpu(4)
        .mode(CounterMode::PerCpu)
        .build()
        .unwrap()
}

/// `n` counters, counter `i` at `i`; keeps every tenth (90 % dropped): a header page (256
/// blocks) keeps about 26 live headers, so none is empty before the headers move. Header
/// storage is chosen for emptying by pageset (16,384 blocks), so `n` must span several.
fn sparse(domain: &'static Domain, n: usize) -> Vec<(PercpuCounter, i64)> {
    let all = PercpuCounter::new_many_in(domain, n, 0).unwrap();
    for (i, c) in all.iter().enumerate() {
        c.add(i as i64);
    }
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 3)
        .map(|(i, c)| (c, i as i64))
        .collect()
}

#[test]
fn compaction_moves_headers_and_gives_their_pages_back() {
    let domain = per_cpu_domain();
    let kept = sparse(domain, 50_000);
    let before = domain.stats();
    let addresses: Vec<usize> = kept
        .iter()
        .map(|(c, _)| c.header_address().unwrap())
        .collect();
    domain.compact().unwrap();
    let after = domain.stats();
    let moved = after.totals.headers_moved - before.totals.headers_moved;
    assert!(
        moved as usize > kept.len() / 2,
        "most headers move: {moved} of {}",
        kept.len()
    );
    assert!(after.header_forwards_pending >= moved as usize);
    assert!(
        after.header_bytes_resident * 3 < before.header_bytes_resident,
        "header pages go back: {} then {} bytes",
        before.header_bytes_resident,
        after.header_bytes_resident
    );
    // Every sum is exact through the moved headers, and fixes the state word up.
    for (c, v) in &kept {
        assert_eq!(c.sum(), *v);
        assert!(c.is_per_cpu());
    }
    let changed = kept
        .iter()
        .zip(&addresses)
        .filter(|((c, _), &a)| c.header_address() != Some(a))
        .count();
    assert_eq!(
        changed as u64, moved,
        "every moved counter now names its new header"
    );
    // Adds go per-CPU again (the first one after a move may take the slow path and fix up).
    let slow = domain.stats().totals.slow_path_adds;
    for (c, _) in &kept {
        c.add(1);
    }
    assert_eq!(
        domain.stats().totals.slow_path_adds,
        slow,
        "no slow path after the fix-up"
    );
    for (c, v) in &kept {
        assert_eq!(c.sum(), v + 1);
    }
    drop(kept);
    domain.compact().unwrap(); // empties the magazines, whose free blocks count
    assert_eq!(
        domain.stats().header_blocks,
        0,
        "every header given back, none twice"
    );
}

/// The first add after a move meets the tombstone, takes the slow path, fixes up and adds
/// through the new header: nothing lost, and the adds after it are per-CPU.
#[test]
fn an_add_fixes_a_moved_counter_up() {
    let domain = per_cpu_domain();
    let kept = sparse(domain, 50_000);
    domain.compact().unwrap();
    for (c, v) in &kept {
        c.add(5);
        c.inc();
        assert_eq!(c.sum(), v + 6);
    }
}

/// Every call on counters whose headers moved: each meets the tombstone (or zeros) first.
#[test]
fn every_call_works_through_a_moved_header() {
    type Call = fn(&PercpuCounter, i64);
    let calls: [(&str, Call); 9] = [
        ("set", |c, v| {
            c.set(v + 7).unwrap();
            assert_eq!(c.sum(), v + 7);
        }),
        ("limited_add", |c, v| {
            assert!(c.limited_add(v + 1, 1));
            assert!(!c.limited_add(v + 1, 1));
            assert_eq!(c.sum(), v + 1);
        }),
        ("raise_to", |c, v| {
            assert!(c.raise_to(v + 10));
            assert_eq!(c.sum(), v + 10);
        }),
        ("add_batch", |c, v| {
            c.add_batch(3, 1 << 20);
            assert_eq!(c.sum(), v + 3);
            assert!(c.error_bound() >= (1 << 20) - 1);
        }),
        ("error_bound", |c, v| {
            assert!(c.error_bound() > 0);
            assert_eq!(c.sum(), v);
        }),
        ("batch", |c, v| {
            assert_eq!(c.batch(), c.domain().batch());
            assert_eq!(c.sum(), v);
        }),
        ("domain", |c, v| {
            assert_eq!(c.domain().ncpu(), 4);
            assert_eq!(c.sum(), v);
        }),
        ("compare", |c, v| {
            assert_eq!(c.compare(v), std::cmp::Ordering::Equal);
        }),
        ("drop", |_, _| {}),
    ];
    for (name, call) in calls {
        let domain = per_cpu_domain();
        let kept = sparse(domain, 50_000);
        let before = domain.stats().totals.headers_moved;
        domain.compact().unwrap();
        assert!(
            domain.stats().totals.headers_moved > before,
            "{name}: nothing moved"
        );
        for (c, v) in &kept {
            call(c, *v);
        }
        drop(kept);
        domain.compact().unwrap(); // empties the magazines, whose free blocks count
        assert_eq!(domain.stats().header_blocks, 0, "{name}: a header leaked");
    }
}

/// Headers move again in a later compaction, before their counters looked: the chain of
/// moves is followed to its end.
#[test]
fn a_header_moved_twice_is_found() {
    let domain = per_cpu_domain();
    let mut kept = sparse(domain, 200_000);
    domain.compact().unwrap();
    // Make the new pages sparse in turn: drop nine of every ten again, without looking.
    let mut i = 0;
    kept.retain(|_| {
        i += 1;
        i % 10 == 0
    });
    let before = domain.stats().totals.headers_moved;
    domain.compact().unwrap();
    assert!(
        domain.stats().totals.headers_moved > before,
        "nothing moved twice"
    );
    for (c, v) in &kept {
        assert_eq!(c.sum(), *v);
        c.inc();
        assert_eq!(c.sum(), v + 1);
    }
}

/// Adds, sums, `limited_add`s, creations and drops against a compactor that keeps moving
/// headers (`PCPU_STRESS_SECS`, default 10): every total is exact at the end, and no
/// `limited_add` passes its limit (its lock is never held on both sides of a move).
#[test]
fn adders_readers_and_churn_against_header_moves() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    /// The first counters take only `limited_add`s, up to their start + `LIMIT`.
    const LIMITED: usize = 64;
    const LIMIT: i64 = 100;
    let secs = pcpu_testkit::stress::stress_secs(10.0);
    let domain = per_cpu_domain();
    let shared = sparse(domain, 60_000);
    let stop = AtomicBool::new(false);
    let compactions = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let per_thread: Vec<Vec<i64>> = std::thread::scope(|s| {
        let (shared, stop, compactions) = (&shared, &stop, &compactions);
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                domain.compact().unwrap();
                compactions.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Churn: sparse header pages for the compactor to empty, with exact values.
        s.spawn(move || {
            let mut rng = fastrand::Rng::with_seed(7);
            while !stop.load(Ordering::Relaxed) {
                let mut mine = sparse(domain, 20_000);
                for _ in 0..20_000 {
                    let k = rng.usize(..mine.len());
                    mine[k].0.inc();
                    mine[k].1 += 1;
                }
                for (c, v) in &mine {
                    assert_eq!(c.sum(), *v, "a churned counter lost an update");
                }
            }
        });
        let adders: Vec<_> = (0..3u64)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(t);
                    let mut added = vec![0i64; shared.len()];
                    while Instant::now() < deadline {
                        for _ in 0..1000 {
                            let k = rng.usize(..shared.len());
                            let (c, start) = &shared[k];
                            if k < LIMITED {
                                if c.limited_add(start + LIMIT, 1) {
                                    added[k] += 1;
                                }
                                continue;
                            }
                            match rng.u8(..8) {
                                0 => {
                                    c.add_batch(2, 64);
                                    added[k] += 2;
                                }
                                1 => assert!(c.sum() >= *start, "a sum below the start"),
                                _ => {
                                    c.add(2);
                                    added[k] += 2;
                                }
                            }
                        }
                    }
                    added
                })
            })
            .collect();
        let out = adders.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        out
    });
    let moved = domain.stats().totals.headers_moved;
    eprintln!(
        "{} compactions moved {moved} headers",
        compactions.load(Ordering::Relaxed)
    );
    assert!(moved > 0, "no header moved");
    for (k, (c, start)) in shared.iter().enumerate() {
        let added: i64 = per_thread.iter().map(|a| a[k]).sum();
        assert_eq!(
            c.sum(),
            start + added,
            "counter {k} lost or doubled an update"
        );
        if k < LIMITED {
            assert!(added <= LIMIT, "counter {k} passed its limit: {added}");
        }
    }
}

/// Rounds of creations, drops and compactions on one thread: headers keep moving, pages keep
/// going back, and the survivors' values stay exact.
#[test]
fn rounds_of_churn_and_compaction() {
    let domain = per_cpu_domain();
    let shared = sparse(domain, 60_000);
    for round in 0..20 {
        let mine = sparse(domain, 20_000);
        if let Err(e) = domain.compact() {
            panic!("round {round}: {e:?}");
        }
        for (c, v) in &mine {
            assert_eq!(c.sum(), *v);
        }
        drop(mine);
        if let Err(e) = domain.compact() {
            panic!("round {round} after drop: {e:?}");
        }
    }
    for (c, v) in &shared {
        assert_eq!(c.sum(), *v);
    }
}
