//! Adaptive batch: a counter whose folds alternate between CPUs widens its batch (up to the
//! domain's `max_batch`), its error bound follows, and no update is lost on the way; a counter
//! used from one CPU, or in a domain with `max_batch == batch`, keeps Linux's batch.

use pcpu_counter::{CounterError, CounterMode, Domain, PercpuCounter};

/// Runs `folds` rounds, each on the next CPU in turn: an add of a whole batch (which folds
/// unless an earlier round left that CPU's cell negative), then every other round a third of
/// one back down, so the counter both grows and shrinks. Checks the value and the bound after
/// every 64 rounds and at the end; `added` is what the counter holds before and after.
///
/// The window clock stands still meanwhile (`pcpu_counter::simulate_fold_clock`): every
/// window of 64 CPU changes counts as short, however slow the build or the machine (an
/// emulated one included), so the widening is exact and the tests that expect none would see
/// one.
///
/// # Safety
/// As for `pcpu_rseq::simulate_cpu`: `c` belongs to a domain that no thread on the rseq backend
/// uses meanwhile (every test here builds its own, `four_cpus`).
unsafe fn alternate_folds(c: &PercpuCounter, folds: usize, ncpu: usize, added: &mut i64) {
    pcpu_counter::simulate_fold_clock(Some(1_000));
    for f in 0..folds {
        // SAFETY: forwarded from the caller.
        unsafe { pcpu_rseq::simulate_cpu(Some(f % ncpu)) };
        let batch = c.batch();
        let down = if f % 2 == 1 { -(batch / 3) } else { 0 };
        c.add(batch);
        c.add(down);
        *added += batch + down;
        if f % 64 == 63 || f + 1 == folds {
            let (read, sum, bound) = (c.read(), c.sum(), c.error_bound());
            assert_eq!(sum, *added, "no update lost");
            assert!(
                read.abs_diff(sum) <= bound as u64,
                "|{read} - {sum}| > {bound}"
            );
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { pcpu_rseq::simulate_cpu(None) };
    pcpu_counter::simulate_fold_clock(None);
}

/// A domain of 4 (simulated) CPUs, per-CPU counters, batch 32.
fn four_cpus(max_batch: Option<i64>) -> &'static Domain {
    let b = Domain::builder()
        .ncpu(4)
        .batch(32)
        .mode(CounterMode::PerCpu);
    match max_batch {
        Some(m) => b.max_batch(m),
        None => b,
    }
    .build()
    .unwrap()
}

#[test]
fn alternating_folds_widen_up_to_max_batch() {
    let domain = four_cpus(Some(512));
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    assert_eq!((c.batch(), c.error_bound()), (32, 31 * 4));
    // With the window clock standing still, each window of 64 switches after the first
    // doubles the batch: 32 to 512 takes five windows, within 768 rounds (fewer folds than
    // rounds: a round whose CPU's cell an earlier round left negative does not fold): 128,
    // 512, 512 after each 256 rounds, on either backend (simulated CPUs above the lane bound
    // take the slow path that raises it, as rseq threads do; before, with rseq, they shared
    // lane 0 until then and gave 64, 256, 512).
    let mut added = 0;
    let mut batches = vec![c.batch()];
    for _ in 0..3 {
        // SAFETY: `c` is of this test's own domain, which no other thread uses.
        unsafe { alternate_folds(&c, 256, 4, &mut added) };
        batches.push(c.batch());
    }
    assert_eq!(
        batches.last(),
        Some(&512),
        "max_batch in 768 rounds: {batches:?}"
    );
    assert!(
        batches.windows(2).all(|w| w[0] < w[1] || w[0] == 512),
        "it widens in every 256 rounds until max_batch: {batches:?}"
    );
    assert_eq!(c.error_bound(), 511 * 4);
    assert_eq!(c.sum(), added);
    // It never narrows, and never passes the maximum.
    // SAFETY: `c` is of this test's own domain, which no other thread uses.
    unsafe { alternate_folds(&c, 300, 4, &mut added) };
    assert_eq!(c.batch(), 512);
    assert_eq!(c.sum(), added);
}

#[test]
fn fixed_batch_domain_never_widens() {
    let domain = four_cpus(Some(32));
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    let mut added = 0;
    // SAFETY: `c` is of this test's own domain, which no other thread uses.
    unsafe { alternate_folds(&c, 5_000, 4, &mut added) };
    assert_eq!(c.batch(), 32);
    assert_eq!(c.error_bound(), 31 * 4);
    assert_eq!(c.sum(), added);
}

#[test]
fn one_cpu_keeps_the_batch() {
    let domain = four_cpus(None);
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    let mut added = 0;
    // SAFETY: `c` is of this test's own domain, which no other thread uses.
    unsafe { alternate_folds(&c, 5_000, 1, &mut added) };
    assert_eq!(c.batch(), 32);
    assert_eq!(c.sum(), added);
}

#[test]
fn max_batch_below_batch_is_refused() {
    let err = Domain::builder()
        .batch(64)
        .max_batch(32)
        .build()
        .unwrap_err();
    assert!(matches!(err, CounterError::Config(_)), "{err:?}");
    let d = Domain::builder().batch(64).build().unwrap();
    assert_eq!(d.max_batch(), 4096);
    let d = Domain::builder().batch(8192).build().unwrap();
    assert_eq!(
        d.max_batch(),
        8192,
        "the default maximum never undercuts the batch"
    );
}
