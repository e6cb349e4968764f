//! Mapping failure under `RLIMIT_AS` is an error, and the pool stays usable.
//!
//! The parent test re-runs this test binary with `PCPU_PAGESET_RLIMIT_CHILD=1`, running only
//! `rlimit_child`, which lowers its own address-space limit and grows a pool until assign
//! fails. Its exit code (0, or 101 for a failed assertion) carries the verdict; a crash
//! (abort on allocation failure, SIGSEGV) fails the parent too. Unix only (`setrlimit`).
// Not under Miri: it runs a child process (Miri cannot spawn one) that calls `setrlimit`.
#![cfg(all(unix, not(miri)))]

use std::process::Command;

use pcpu_pageset::{PagesetError, Pool, PoolConfig, SizeClass, Slot};

const CHILD_ENV: &str = "PCPU_PAGESET_RLIMIT_CHILD";

#[test]
fn rlimit_as_parent() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["rlimit_child", "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({:?}):\n{text}",
        out.status
    );
    assert!(
        text.contains("1 passed"),
        "child did not run the test:\n{text}"
    );
}

/// Current address-space size of this process, from /proc/self/statm (pages).
fn vm_size() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().next().unwrap().parse().unwrap();
    pages * pcpu_pageset::page_size()
}

#[test]
fn rlimit_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful in the re-executed child
    }
    // 64 simulated CPUs x the default unit (16 KiB, or a page where pages are larger): with
    // 16 KiB, 1 MiB per pageset and 2048 slots each.
    let config = PoolConfig::new(SizeClass::B8).with_ncpu(64);
    let mut pool = Pool::new(config).unwrap();
    let cap = pool.slots_per_pageset();
    let mut slots = Vec::with_capacity(1 << 20);
    let mut batch = Vec::with_capacity(4 * cap);

    let limit = (vm_size() + (48 << 20)) as libc::rlim_t;
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit struct; lowering the soft limit of our own
    // process is always permitted.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);

    let err = loop {
        match pool.assign() {
            Ok(slot) => slots.push(slot),
            Err(e) => break e,
        }
        assert!(slots.len() < (1 << 20), "RLIMIT_AS never hit");
    };
    assert!(
        matches!(
            err,
            PagesetError::Map { .. } | PagesetError::OutOfMemory { .. }
        ),
        "unexpected error {err}"
    );
    let mapped = pool.stats().pagesets_mapped;
    assert!(mapped >= 2, "limit hit after {mapped} pagesets");
    assert_eq!(pool.stats().assigned, slots.len());
    assert_eq!(
        slots.len(),
        mapped * cap,
        "the pool was full when mapping failed"
    );

    // A batch that needs new pagesets fails as a whole, handing out nothing.
    assert!(pool.assign_batch(3 * cap, &mut batch).is_err());
    assert!(batch.is_empty());
    assert_eq!(pool.stats().assigned, slots.len());
    assert_eq!(pool.stats().pagesets_mapped, mapped);

    // Still usable: free a few slots, assign again (no new mapping needed): the pool hands
    // back exactly the freed slots, the only free ones.
    let mut freed: Vec<Slot> = slots.drain(10..20).collect();
    for &slot in &freed {
        pool.unassign(slot).unwrap();
    }
    let mut again: Vec<Slot> = (0..10).map(|_| pool.assign().unwrap()).collect();
    freed.sort_unstable();
    again.sort_unstable();
    assert_eq!(again, freed);
    slots.extend(again);
    assert!(pool.assign().is_err(), "still full");
    pool.assign_batch(0, &mut batch).unwrap();

    // Free a whole pageset's worth, release it, and mapping works again.
    for slot in slots.drain(..) {
        pool.unassign(slot).unwrap();
    }
    let r = pool.release();
    assert_eq!(r.pagesets_unmapped, mapped);
    let slot = pool.assign().unwrap();
    let id = pool.pageset_of(slot).unwrap();
    assert!(pool.live_slots(id).eq([slot]));
    assert_eq!(pool.stats().pagesets_mapped, 1);
}
