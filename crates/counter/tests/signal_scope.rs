//! Signal handlers that interrupt code outside pcpu, the allocator above all: workers allocate
//! and free in a loop while a storm thread hits them with SIGUSR1, whose handler opens
//! `pcpu_counter::signal_handler_scope()` and adds to a lazy counter that only handlers touch
//! (without the scope, its noted adds would upgrade it inside a handler: an allocation in
//! the middle of an interrupted `malloc`), to a per-CPU counter, and to a lazy counter the
//! workers also update. Half of the workers never use pcpu outside the handler, so their
//! first pcpu operation runs in a handler, where the thread must not resolve its rseq
//! registration. Totals are exact; the handler-only counter never left the inline form.
//!
//! CI also runs it under ThreadSanitizer, which reports a signal-unsafe call (`malloc`,
//! `free`) made inside a handler.
//!
//! Run it in the three environments (default, `GLIBC_TUNABLES=glibc.pthread.rseq=0`,
//! `PCPU_RSEQ=off`); `PCPU_STRESS_SECS` (default 5) bounds it.
#![cfg(unix)]

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use pcpu_testkit::signals::{install_sigusr1, run_under_storm};
use pcpu_testkit::stress::stress_secs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const WORKERS: usize = 6;

/// Lazy, added to by handlers only, 64 at a time so that every handler's add is sampled on a
/// thread without rseq (with rseq, every handler's add on another CPU is noted).
static HANDLER_ONLY: PercpuCounter = PercpuCounter::new_const(0);
/// Lazy, added to by handlers and by the workers that use pcpu.
static SHARED: PercpuCounter = PercpuCounter::new_const(0);
/// Per-CPU from the start.
static PER_CPU: OnceLock<PercpuCounter> = OnceLock::new();
/// Signals handled.
static HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    let _scope = pcpu_counter::signal_handler_scope();
    HANDLER_ONLY.add(64);
    SHARED.inc();
    if let Some(p) = PER_CPU.get() {
        p.inc();
    }
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn handlers_in_a_scope_never_allocate_and_add_exactly() {
    let domain = Domain::builder().build().unwrap();
    PER_CPU.get_or_init(|| PercpuCounter::with_mode(domain, 0, CounterMode::PerCpu).unwrap());
    // SAFETY: the handler opens a signal handler scope first, in which every add it makes is
    // async-signal-safe (what this test checks), and adds to an atomic.
    unsafe { install_sigusr1(on_signal) };
    let deadline = Instant::now() + Duration::from_secs_f64(stress_secs(5.0));
    let (adds, sent) = run_under_storm(WORKERS, 29, 16, |t| {
        let uses_pcpu = t % 2 == 0;
        let mut adds = 0u64;
        let mut keep: Vec<Vec<u8>> = Vec::with_capacity(64);
        let mut i = 0usize;
        while Instant::now() < deadline {
            // The allocator, for the signals to land in.
            keep.push(vec![t as u8; 16 + i % 4096]);
            if keep.len() == keep.capacity() {
                keep.clear();
            }
            if uses_pcpu {
                SHARED.inc();
                PER_CPU.get().unwrap().inc();
                adds += 1;
            }
            i += 1;
        }
        adds
    });
    let adds: u64 = adds.into_iter().sum();
    let handled = HANDLED.load(Ordering::Relaxed);
    eprintln!(
        "signal_scope: mode {:?}, {adds} adds by workers, {sent} signals sent, {handled} \
         handled; shared per-CPU: {}",
        pcpu_rseq::mode(),
        SHARED.is_per_cpu(),
    );
    assert!(handled > 0, "no signal was handled");
    assert_eq!(HANDLER_ONLY.sum(), 64 * handled as i64, "handler-only");
    assert!(
        HANDLER_ONLY.is_inline(),
        "a lazy counter upgraded (allocated) inside a signal handler scope"
    );
    let want = (adds + handled) as i64;
    assert_eq!(SHARED.sum(), want, "shared lazy");
    assert_eq!(PER_CPU.get().unwrap().sum(), want, "per-CPU");
}
