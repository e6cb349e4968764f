//! Test support shared by pcpu-counter's integration tests: the signal storm (`e2e.rs`,
//! `signal.rs`), and domains of 4 simulated CPUs with the CPU changes that make a lazy counter
//! go per-CPU or a batch widen (`stats.rs`, `tracing.rs`).
#![allow(dead_code)] // each test binary uses a part

use pcpu_counter::{CounterMode, Domain, PercpuCounter};

/// The `f64` in environment variable `name`, if finite and positive; else `default`.
pub fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .unwrap_or(default)
}

/// Installs `handler` for SIGUSR1 with `SA_RESTART` and an empty mask.
///
/// # Safety
/// `handler` is async-signal-safe.
#[cfg(unix)] // signals: Unix only (the other targets only build the tests)
pub unsafe fn install_sigusr1(handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the caller vouches
    // for the handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// Hits a random thread of `ids` (pthread ids, as integers) with SIGUSR1 until `finished`
/// reaches `workers`, yielding every `yield_every` signals; returns the number sent.
///
/// # Safety
/// Every id in `ids` is a live thread until `finished` reaches `workers` (workers count
/// themselves finished, then stay alive until the caller says the storm is over).
#[cfg(unix)]
pub unsafe fn storm(
    ids: &std::sync::Mutex<Vec<usize>>,
    finished: &std::sync::atomic::AtomicUsize,
    workers: usize,
    seed: u64,
    yield_every: u64,
) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sent = 0u64;
    while finished.load(std::sync::atomic::Ordering::SeqCst) < workers {
        let target = {
            let ids = ids.lock().unwrap();
            (!ids.is_empty()).then(|| ids[rng.usize(..ids.len())])
        };
        if let Some(t) = target {
            // SAFETY: `t` is a live thread (caller).
            let rc = unsafe { libc::pthread_kill(t as libc::pthread_t, libc::SIGUSR1) };
            assert_eq!(rc, 0, "pthread_kill");
            sent += 1;
        }
        if sent % yield_every == 0 {
            std::thread::yield_now();
        }
    }
    sent
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
/// of a lazy counter (one every 64 of its adds) is then a switch, and the counter goes
/// per-CPU within a few rounds.
pub fn alternate(rounds: usize, mut add: impl FnMut()) {
    for round in 0..rounds {
        pcpu_rseq::simulate_cpu(Some(round % 2));
        for _ in 0..64 {
            add();
        }
    }
    pcpu_rseq::simulate_cpu(None);
}

/// Folds from the 4 simulated CPUs in turn, fast (see `tests/widen.rs`), until `c`'s batch
/// reaches `batch`; a bound on the attempts, since on a loaded machine some windows are too
/// slow to count. The caller checks that it got there.
pub fn widen_to(c: &PercpuCounter, batch: i64) {
    for f in 0..4_000_000 {
        pcpu_rseq::simulate_cpu(Some(f % 4));
        c.add(c.batch());
        if c.batch() == batch {
            break;
        }
    }
    pcpu_rseq::simulate_cpu(None);
}
