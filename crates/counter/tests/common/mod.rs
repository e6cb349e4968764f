//! Helpers shared by pcpu-counter's signal-storm tests (`e2e.rs`, `signal.rs`).
#![allow(dead_code)] // each test binary uses a part

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
