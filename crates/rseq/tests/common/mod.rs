//! Test support: worker threads that stay alive while a storm of signals hits them.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `PCPU_STRESS_SCALE` (default 1.0) scales iteration counts, so CI can run briefly under
/// valgrind.
pub fn scaled(n: u64) -> u64 {
    let scale: f64 = std::env::var("PCPU_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as u64).max(1)
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {}

/// Installs a no-op SIGUSR1 handler (SA_RESTART) once.
#[cfg(unix)]
pub fn install_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we then set a
        // handler that does nothing and is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
    });
}

/// No signals off Unix: the storm sends none there.
#[cfg(not(unix))]
pub fn install_handler() {}

/// A worker's identity for the storm: its `pthread_t` as an integer (a pointer on musl,
/// which is not `Send`).
type Tid = usize;

#[cfg(unix)]
fn current() -> Tid {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

#[cfg(not(unix))]
fn current() -> Tid {
    0
}

/// Sends SIGUSR1 to `t`; true if a signal was sent.
///
/// # Safety
/// `t` is a live thread.
#[cfg(unix)]
unsafe fn kick(t: Tid) -> bool {
    // SAFETY: the caller guarantees `t` is live.
    unsafe { libc::pthread_kill(t as libc::pthread_t, libc::SIGUSR1) == 0 }
}

/// No signals off Unix.
///
/// # Safety
/// None.
#[cfg(not(unix))]
unsafe fn kick(_t: Tid) -> bool {
    false
}

/// Runs `threads` workers (each gets its index) while another thread sends SIGUSR1 to random
/// workers as fast as it can. Workers stay alive until the storm has stopped, so a signal never
/// targets an exited thread. Returns the workers' results and the number of signals sent.
pub fn with_signal_storm<R: Send>(
    threads: usize,
    work: impl Fn(usize) -> R + Sync,
) -> (Vec<R>, u64) {
    install_handler();
    let ids = Arc::new(Mutex::new(Vec::with_capacity(threads)));
    let finished = AtomicUsize::new(0);
    let storm_over = AtomicBool::new(false);
    let mut sent = 0u64;
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let ids = Arc::clone(&ids);
                let (work, finished, storm_over) = (&work, &finished, &storm_over);
                s.spawn(move || {
                    ids.lock().unwrap().push(current());
                    let r = work(i);
                    finished.fetch_add(1, Ordering::SeqCst);
                    while !storm_over.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    r
                })
            })
            .collect();
        let mut rng = fastrand::Rng::with_seed(7);
        while finished.load(Ordering::SeqCst) < threads {
            let target = {
                let ids = ids.lock().unwrap();
                if ids.is_empty() {
                    None
                } else {
                    Some(ids[rng.usize(..ids.len())])
                }
            };
            if let Some(t) = target {
                // SAFETY: `t` is a live worker: workers do not exit before `storm_over`.
                if unsafe { kick(t) } {
                    sent += 1;
                }
            }
            if sent % 64 == 0 {
                std::thread::yield_now();
            }
        }
        storm_over.store(true, Ordering::SeqCst);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (results, sent)
}

/// The backend a test needs. Every stress test says which, through [`needs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Either backend: its checks hold on both (where they differ, the test says so).
    Any,
    /// rseq critical sections on this thread (the test observes aborts, say).
    Rseq,
}

/// Name of the environment variable naming a file where tests record whether they ran:
/// one line `RAN <test> on <backend>` or `SKIPPED <test>: <why>` each. CI reads it, lists the
/// skipped tests and fails the step if none ran.
pub const LEDGER_ENV: &str = "PCPU_TEST_LEDGER";

/// Whether `test` can run here with what it `needs`; records the answer. A test that cannot
/// is skipped loudly (see [`skip`]); one that can is recorded as run, with the backend.
pub fn needs(test: &str, needs: Needs) -> bool {
    let mode = pcpu_rseq::mode();
    let reg = pcpu_rseq::registration();
    let rseq = mode == pcpu_rseq::Mode::Rseq
        && matches!(
            reg,
            pcpu_rseq::Registration::Glibc | pcpu_rseq::Registration::Own
        );
    if needs == Needs::Rseq && !rseq {
        skip(
            test,
            &format!("needs rseq critical sections; this process runs {mode:?} ({reg:?})"),
        );
        return false;
    }
    record(&format!("RAN {test} on {mode:?} ({reg:?})"));
    true
}

/// Skips `test` loudly: `SKIPPED <test>: <why>` on the process's stderr (written directly,
/// so the test harness does not capture it) and in the ledger.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    record(&line);
}

/// Appends `line` to the ledger, if `PCPU_TEST_LEDGER` names one (one write: lines of
/// concurrent tests do not interleave).
fn record(line: &str) {
    let Some(path) = std::env::var_os(LEDGER_ENV) else {
        return;
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{LEDGER_ENV}={}: {e}", path.to_string_lossy()));
    std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).expect("ledger write");
}

/// The CPUs this thread may run on (its affinity mask), or `None` where it cannot be read.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: all-zero bytes are an empty `cpu_set_t`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a writable `cpu_set_t` of `size` bytes; pid 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return None;
    }
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE, within `set`.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    Some(cpus)
}

/// No affinity masks off Linux.
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> Option<Vec<usize>> {
    None
}

/// Pins the calling thread to `cpu`; false if the kernel refused.
#[cfg(target_os = "linux")]
pub fn pin_to(cpu: usize) -> bool {
    // SAFETY: all-zero bytes are an empty `cpu_set_t`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (it came from `allowed_cpus`), within `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid `cpu_set_t` of `size` bytes; pid 0 is the calling thread.
    unsafe { libc::sched_setaffinity(0, size, &set) == 0 }
}

/// No affinity masks off Linux.
#[cfg(not(target_os = "linux"))]
pub fn pin_to(_cpu: usize) -> bool {
    false
}
