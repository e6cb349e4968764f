//! The SIGUSR1 storm of the stress tests: one thread sends SIGUSR1 to random workers as fast
//! as it can, so that rseq critical sections abort and signal handlers run in the middle of
//! every path (cache locks, header allocations, compactions). Off Unix there are no signals:
//! the storm sends none and the tests still build.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A worker's identity for the storm: its `pthread_t` as an integer (a pointer on musl, which
/// is not `Send`).
pub type Tid = usize;

/// The calling thread's [`Tid`].
pub fn current_thread() -> Tid {
    #[cfg(unix)]
    // SAFETY: pthread_self has no preconditions.
    return unsafe { libc::pthread_self() as Tid };
    #[cfg(not(unix))]
    0
}

/// Installs `handler` for SIGUSR1 with `SA_RESTART` and an empty mask (nothing off Unix).
///
/// # Safety
/// `handler` is async-signal-safe.
pub unsafe fn install_sigusr1(handler: extern "C" fn(i32)) {
    #[cfg(unix)]
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the caller vouches
    // for the handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigemptyset(&mut sa.sa_mask), 0);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    #[cfg(not(unix))]
    let _ = handler;
}

extern "C" fn do_nothing(_: i32) {}

/// Installs a SIGUSR1 handler that does nothing (once per process): the storm's signals then
/// only interrupt (and abort rseq sections).
pub fn install_noop_sigusr1() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: `do_nothing` does nothing, which is async-signal-safe.
    ONCE.call_once(|| unsafe { install_sigusr1(do_nothing) });
}

/// Sends SIGUSR1 to `t` (a failure fails the test); false where there are no signals.
///
/// # Safety
/// `t` is a live thread.
unsafe fn kick(t: Tid) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: the caller guarantees `t` is live.
        let rc = unsafe { libc::pthread_kill(t as libc::pthread_t, libc::SIGUSR1) };
        assert_eq!(rc, 0, "pthread_kill");
        true
    }
    #[cfg(not(unix))]
    {
        let _ = t;
        false
    }
}

/// Hits a random thread of `targets` with SIGUSR1 until `over()` is true, yielding every
/// `yield_every` signals (and while `targets` is empty); returns the number sent. A failed
/// `pthread_kill` fails the test.
///
/// # Safety
/// Every id in `targets` is a live thread until `over()` is true (workers count themselves
/// finished, then stay alive until the caller says the storm is over).
pub unsafe fn storm(
    targets: &Mutex<Vec<Tid>>,
    over: impl Fn() -> bool,
    seed: u64,
    yield_every: u64,
) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sent = 0u64;
    while !over() {
        let target = {
            let ids = targets.lock().unwrap_or_else(|p| p.into_inner());
            (!ids.is_empty()).then(|| ids[rng.usize(..ids.len())])
        };
        let Some(t) = target else {
            std::thread::yield_now();
            continue;
        };
        // SAFETY: `t` is a live thread (caller).
        if unsafe { kick(t) } {
            sent += 1;
        }
        if sent % yield_every.max(1) == 0 {
            std::thread::yield_now();
        }
    }
    sent
}

/// Counts a worker as finished when dropped (also when its work panics, so the storm still
/// ends), then keeps its thread alive until the storm is over.
struct Finish<'a> {
    finished: &'a AtomicUsize,
    storm_over: &'a AtomicBool,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        while !self.storm_over.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Runs `threads` workers (each gets its index) while another thread sends SIGUSR1 (no-op
/// handler) to random workers as fast as it can; returns the workers' results and the number
/// of signals sent. See [`run_under_storm`].
pub fn with_signal_storm<R: Send>(
    threads: usize,
    work: impl Fn(usize) -> R + Sync,
) -> (Vec<R>, u64) {
    install_noop_sigusr1();
    run_under_storm(threads, 7, 64, work)
}

/// Runs `threads` workers (each gets its index) while this thread sends SIGUSR1 to random
/// workers ([`storm`] with `seed` and `yield_every`), whatever handler is installed (install
/// the test's own first). Workers stay alive until the storm has stopped, even one whose work
/// panics, so a signal never targets an exited thread. Returns the workers' results and the
/// number of signals sent.
pub fn run_under_storm<R: Send>(
    threads: usize,
    seed: u64,
    yield_every: u64,
    work: impl Fn(usize) -> R + Sync,
) -> (Vec<R>, u64) {
    let ids = Mutex::new(Vec::with_capacity(threads));
    let finished = AtomicUsize::new(0);
    let storm_over = AtomicBool::new(false);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (ids, work, finished, storm_over) = (&ids, &work, &finished, &storm_over);
                s.spawn(move || {
                    ids.lock().unwrap().push(current_thread());
                    let _finish = Finish {
                        finished,
                        storm_over,
                    };
                    work(i)
                })
            })
            .collect();
        let over = || finished.load(Ordering::SeqCst) == threads;
        // SAFETY: workers (even panicking ones, through `Finish`) do not exit before
        // `storm_over`, set after the storm.
        let sent = unsafe { storm(&ids, over, seed, yield_every) };
        storm_over.store(true, Ordering::SeqCst);
        let results = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (results, sent)
    })
}
