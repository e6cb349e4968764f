//! Relocation under load, and the waste scenario.
//!
//! `PCPU_STRESS_SECS` sets the stress duration (default 30, as the issue asks; CI may set it
//! lower for the extra environments), `PCPU_STRESS_SCALE` scales the waste scenario's size.
#![cfg(not(loom))] // needs the pageset layer, which maps real memory

use pcpu_migrate::{CompactPolicy, Space, SpaceConfig};
use pcpu_pageset::SizeClass;
use pcpu_testkit::space_obj::SpaceObj;
use pcpu_testkit::stress::{scaled, stress_secs};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The tests' objects: one word each (`pcpu_testkit::space_obj`).
type Obj = SpaceObj<1>;

fn add(space: &Space, o: &Obj, delta: i64) {
    // SAFETY: every header of this test is attached through `space`; word 0 of a B8 cell.
    unsafe { o.add(space, 0, delta, 32) };
}

fn total(space: &Space, o: &Obj) -> i64 {
    // SAFETY: as above.
    let [t] = unsafe { o.totals(space, 1) };
    t
}

#[test]
fn adders_and_compactor_lose_nothing() {
    let secs = stress_secs(30.0);
    let mut config = SpaceConfig::new(SizeClass::B8);
    config.unit_bytes = Some(pcpu_pageset::page_size()); // small pagesets: many to compact
    let space = Space::new(config).unwrap();
    let new_obj = || Box::new(Obj::new());
    // 40,000 objects, of which every fourth stays: 10,000 live objects spread thinly over
    // many pagesets, so the compactor has work from the start.
    let all: Vec<Box<Obj>> = (0..40_000).map(|_| new_obj()).collect();
    for o in &all {
        // SAFETY: boxed, and detached before it is dropped (the box stays alive meanwhile).
        unsafe { space.attach(&o.header) }.unwrap();
    }
    let mut objs = Vec::new();
    for (i, o) in all.into_iter().enumerate() {
        if i % 4 == 0 {
            objs.push(o);
        } else {
            // SAFETY: nobody uses it.
            let _ = unsafe { space.detach(&o.header) }.unwrap();
        }
    }
    space.drain_caches().unwrap();
    let stop = AtomicBool::new(false);
    let added = AtomicI64::new(0);
    let moved = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for t in 0..32u64 {
            let (space, objs, stop, added) = (&space, &objs, &stop, &added);
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t);
                let mut mine = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1000 {
                        let d = rng.i64(-3..=5);
                        add(space, &objs[rng.usize(..objs.len())], d);
                        mine += d;
                    }
                    if rng.u8(..8) == 0 {
                        std::thread::yield_now();
                    }
                }
                added.fetch_add(mine, Ordering::Relaxed);
            });
        }
        // Evacuate every pageset not needed to hold the live objects, then punch new holes with
        // short-lived objects, so that each round moves live objects again.
        let policy = CompactPolicy {
            occupancy_below: 1.01,
        };
        let mut rng = fastrand::Rng::with_seed(99);
        // At least one round, even when starting the adders took the whole duration (as it
        // can in an emulated VM with a short PCPU_STRESS_SECS).
        loop {
            let r = space.compact(&policy).unwrap();
            if std::env::var("PCPU_DEBUG").is_ok() {
                eprintln!("{r:?}");
            }
            moved.fetch_add(r.slots_moved as u64, Ordering::Relaxed);
            let temps: Vec<Box<Obj>> = (0..1024).map(|_| new_obj()).collect();
            for o in &temps {
                // SAFETY: boxed, detached before the box is dropped (below).
                unsafe { space.attach(&o.header) }.unwrap();
            }
            for o in temps.iter().filter(|_| rng.bool()) {
                // SAFETY: temps are never added to.
                let _ = unsafe { space.detach(&o.header) }.unwrap();
            }
            space.drain_caches().unwrap();
            for o in &temps {
                // SAFETY: as above; detaching a dead header is a no-op.
                let _ = unsafe { space.detach(&o.header) }.unwrap();
            }
            // Headers may be looked at by a compactor until a grace period passes; the next
            // compaction runs on this thread, so none is in flight now.
            drop(temps);
            if Instant::now() >= deadline {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let sum: i64 = objs.iter().map(|o| total(&space, o)).sum();
    eprintln!(
        "moved {} objects; total {sum}",
        moved.load(Ordering::Relaxed)
    );
    assert!(
        moved.load(Ordering::Relaxed) > 0,
        "the compactor must have moved live objects"
    );
    assert_eq!(sum, added.load(Ordering::Relaxed), "no add lost or doubled");
    for o in &objs {
        // SAFETY: the adders are gone.
        let _ = unsafe { space.detach(&o.header) }.unwrap();
    }
    pcpu_rseq::epoch_grace_period();
}

#[test]
fn waste_scenario_compaction_gives_memory_back() {
    let n = scaled(1_000_000) as usize;
    let space = Space::new(SpaceConfig::new(SizeClass::B8)).unwrap();
    let objs: Vec<Box<Obj>> = (0..n).map(|_| Box::new(Obj::new())).collect();
    for (i, o) in objs.iter().enumerate() {
        // SAFETY: boxed, and detached before it is dropped.
        unsafe { space.attach(&o.header) }.unwrap();
        add(&space, o, (i % 7) as i64 + 1);
    }
    let mut rng = fastrand::Rng::with_seed(42);
    let mut live = Vec::new();
    for o in objs {
        if rng.u8(..10) == 0 {
            live.push(o);
        } else {
            // SAFETY: single-threaded; the object is not used again.
            let _ = unsafe { space.detach(&o.header) }.unwrap();
        }
    }
    let want: Vec<i64> = live.iter().map(|o| total(&space, o)).collect();
    space.drain_caches().unwrap();
    space.release();
    let before = space.waste();
    let report = space.compact(&CompactPolicy::default()).unwrap();
    let after = space.waste();
    eprintln!(
        "live {} objects: per-CPU resident/ideal before {:.2}, after {:.2} ({} moved in {:?})",
        after.live_objects,
        before.ratio(),
        after.ratio(),
        report.slots_moved,
        report.elapsed
    );
    let got: Vec<i64> = live.iter().map(|o| total(&space, o)).collect();
    assert_eq!(got, want, "relocation keeps every value");
    assert!(
        before.ratio() > 5.0,
        "sparse before compaction ({:.2})",
        before.ratio()
    );
    assert!(
        after.ratio() <= 1.25,
        "compaction brings per-CPU memory to within 1.25x ({:.2})",
        after.ratio()
    );
}
