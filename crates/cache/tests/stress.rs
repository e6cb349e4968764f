//! Stress on the real backend (rseq where available): 64 threads on whatever cores there are
//! allocate and free slots of a real pageset pool (random batch sizes, random yields) while one
//! thread sends them SIGUSR1 at a high rate (aborting rseq critical sections) and another
//! drains, trims and removes pagesets from the caches in a loop. At the end every slot is
//! accounted for.
//!
//! `PCPU_STRESS_SCALE` (a float, default 1.0) scales the work per thread, e.g. `0.01` under
//! valgrind.
// The signal storm needs Unix signals.
#![cfg(all(unix, not(loom)))]

use pcpu_cache::{CacheConfig, PagesetCache, SlotCache};
use pcpu_pageset::{Pool, PoolConfig, SizeClass};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};

const THREADS: usize = 64;

fn scale() -> f64 {
    std::env::var("PCPU_STRESS_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0)
}

extern "C" fn on_signal(_: libc::c_int) {}

fn install_handler() {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we set a handler
    // that does nothing (async-signal-safe) and check the return codes.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigemptyset(&mut sa.sa_mask), 0);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

#[test]
fn alloc_free_under_signals_and_drains() {
    install_handler();
    let iters = ((10_000.0 * scale()) as usize).max(1);
    let pool = Pool::new(PoolConfig::new(SizeClass::B8)).expect("pool");
    let cache: PagesetCache =
        SlotCache::new(pool, CacheConfig::new().with_capacity(32).with_batch(8)).unwrap();
    // As integers: `pthread_t` is a pointer on musl, which is not `Send`.
    let threads: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let signals = AtomicU64::new(0);
    let aborts = AtomicU64::new(0);
    let drains = AtomicU64::new(0);
    let exit = Barrier::new(THREADS + 1);
    let ncpu = cache.ncpu();

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (cache, threads, done, exit, aborts) = (&cache, &threads, &done, &exit, &aborts);
            s.spawn(move || {
                // SAFETY: pthread_self has no preconditions.
                threads
                    .lock()
                    .unwrap()
                    .push(unsafe { libc::pthread_self() } as usize);
                let mut rng = fastrand::Rng::with_seed(t as u64);
                let mut held = Vec::new();
                let mut tag = (t as u64 + 1) << 32;
                for _ in 0..iters {
                    let n = rng.usize(1..=8);
                    if rng.bool() {
                        cache.alloc_batch(n, &mut held).unwrap();
                    } else {
                        for _ in 0..n {
                            held.push(cache.alloc().unwrap());
                        }
                    }
                    for slot in &held {
                        let cell = slot.addr() as *mut u64;
                        // SAFETY: CPU 0's cell of a slot we hold: valid, 8-aligned, ours.
                        unsafe {
                            assert_eq!(*cell, 0, "slot handed out dirty (or twice)");
                            tag += 1;
                            *cell = tag;
                        }
                    }
                    if rng.u8(..4) == 0 {
                        std::thread::yield_now();
                    }
                    let first = tag - held.len() as u64 + 1;
                    for (i, slot) in held.drain(..).enumerate() {
                        // SAFETY: as above.
                        let v = unsafe { *(slot.addr() as *const u64) };
                        assert_eq!(v, first + i as u64, "slot shared with another holder");
                        // SAFETY: the slot came from `cache` and we are done with it.
                        unsafe { cache.free(slot).unwrap() };
                    }
                }
                aborts.fetch_add(pcpu_rseq::aborts_on_this_thread(), Ordering::Relaxed);
                done.fetch_add(1, Ordering::Release);
                // Stay alive (a valid pthread_t) until the signaller has stopped.
                exit.wait();
            });
        }
        // The signaller.
        s.spawn(|| {
            let mut rng = fastrand::Rng::with_seed(99);
            while done.load(Ordering::Acquire) < THREADS {
                let target = {
                    let t = threads.lock().unwrap();
                    if t.is_empty() {
                        None
                    } else {
                        Some(t[rng.usize(..t.len())])
                    }
                };
                if let Some(target) = target {
                    // SAFETY: every registered thread stays alive until `exit`, which waits
                    // for this loop to end.
                    let rc =
                        unsafe { libc::pthread_kill(target as libc::pthread_t, libc::SIGUSR1) };
                    assert_eq!(rc, 0);
                    signals.fetch_add(1, Ordering::Relaxed);
                }
                if rng.u8(..8) == 0 {
                    std::thread::yield_now();
                }
            }
            stop.store(true, Ordering::Release);
            exit.wait();
        });
        // The drainer.
        s.spawn(|| {
            let mut rng = fastrand::Rng::with_seed(7);
            while !stop.load(Ordering::Acquire) {
                match rng.u8(..4) {
                    0 => cache.drain_cpu(rng.usize(..ncpu)).map(drop).unwrap(),
                    1 => cache.trim(rng.usize(..4)).map(drop).unwrap(),
                    2 => cache.drain_all().map(drop).unwrap(),
                    _ => {
                        // What the compactor does: pull one pageset's free slots out.
                        let ids: Vec<_> =
                            cache.with_pool(|p| p.pagesets().iter().map(|ps| ps.id).collect());
                        if !ids.is_empty() {
                            let id = ids[rng.usize(..ids.len())];
                            cache.with_pool(|p| p.set_draining(id, true)).unwrap();
                            cache.remove_pageset(id).unwrap();
                            cache.with_pool(|p| p.set_draining(id, false)).unwrap();
                        }
                    }
                }
                drains.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
        });
    });

    let stats = cache.stats();
    let assigned = cache.with_pool(|p| p.stats().assigned);
    assert_eq!(
        assigned, stats.cached,
        "pool assigned != cached with no live slots"
    );
    cache.drain_all().unwrap();
    assert_eq!(cache.with_pool(|p| p.stats().assigned), 0);
    eprintln!(
        "stress: mode {:?}, {THREADS} threads x {iters} rounds, {} signals, {} aborts, {} drain loops, {:?}",
        pcpu_rseq::mode(),
        signals.load(Ordering::Relaxed),
        aborts.load(Ordering::Relaxed),
        drains.load(Ordering::Relaxed),
        cache.stats()
    );
}
