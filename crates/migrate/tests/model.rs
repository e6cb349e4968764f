//! proptest: random sequences of add (on simulated CPUs), relocation by compaction, free and
//! re-create; every object's total must stay exact, and memory accounting must add up.
#![cfg(not(loom))] // needs the pageset layer, which maps real memory

use pcpu_migrate::{CompactPolicy, Space, SpaceConfig};
use pcpu_pageset::SizeClass;
use pcpu_testkit::space_obj::SpaceObj;
use proptest::prelude::*;

const NCPU: usize = 3;
const OBJS: usize = 150;

#[derive(Debug, Clone)]
enum Op {
    Add(usize, usize, i64),
    Free(usize),
    Create(usize),
    Compact(u8),
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..OBJS, 0..NCPU, -50i64..50).prop_map(|(o, c, d)| Op::Add(o, c, d)),
        3 => (0..OBJS).prop_map(Op::Free),
        2 => (0..OBJS).prop_map(Op::Create),
        1 => (0u8..=10).prop_map(Op::Compact),
        1 => Just(Op::Drain),
    ]
}

/// The tests' objects: one word each (`pcpu_testkit::space_obj`).
type Obj = SpaceObj<1>;

/// Folds at 8 per CPU.
const BATCH: i64 = 8;

fn total(space: &Space, o: &Obj) -> i64 {
    // SAFETY: every header of this test is attached through `space` (or dead); B64 cells
    // hold 8 words.
    let [t] = unsafe { o.totals(space, 1) };
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(pcpu_testkit::stress::proptest_cases(48)))]
    #[test]
    fn totals_survive_any_interleaving(ops in proptest::collection::vec(op(), 1..300)) {
        let mut config = SpaceConfig::new(SizeClass::B64);
        config.ncpu = NCPU;
        config.unit_bytes = Some(pcpu_pageset::page_size());
        config.cache.capacity = 4;
        config.cache.batch = 2;
        let space = Space::new(config).unwrap();
        let new_obj = || {
            let o = Obj::new();
            // SAFETY: boxed, and detached before it is dropped.
            unsafe { space.attach(&o.header) }.unwrap();
            o
        };
        // The objects start spread over ~OBJS / 64 pagesets whatever the page size, so that
        // compaction has pagesets to empty: a one-page pageset holds 64 of these slots with
        // 4 KiB pages, 256 with 16 KiB ones, where every fourth object attached is kept.
        let spread = space.slots_per_pageset().div_ceil(64);
        let mut objs: Vec<Option<Obj>> = Vec::new();
        let mut spare = Vec::new();
        for i in 0..OBJS * spread {
            if i % spread == 0 { objs.push(Some(new_obj())); } else { spare.push(new_obj()); }
        }
        for o in spare {
            // SAFETY: single-threaded, and never added to.
            let _ = unsafe { space.detach(&o.header) }.unwrap();
        }
        let mut model = [0i64; OBJS];
        for op in ops {
            match op {
                Op::Add(i, cpu, d) => {
                    if let Some(o) = &objs[i] {
                        // SAFETY: this single-threaded case alone uses the space it built: no rseq
                        // thread touches its slots or magazines.
                        unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) };
                        // SAFETY: attached through `space`; word 0 of a B64 cell.
                        unsafe { o.add(&space, 0, d, BATCH) };
                        model[i] += d;
                    }
                }
                Op::Free(i) => {
                    if let Some(o) = objs[i].take() {
                        // SAFETY: single-threaded: nobody uses it any more.
                        let _ = unsafe { space.detach(&o.header) }.unwrap();
                        model[i] = 0;
                    }
                }
                Op::Create(i) => {
                    if objs[i].is_none() {
                        objs[i] = Some(new_obj());
                        model[i] = 0;
                    }
                }
                Op::Compact(t) => {
                    let r = space.compact(&CompactPolicy { occupancy_below: f64::from(t) / 10.0 + 0.01 }).unwrap();
                    prop_assert!(r.slots_moved <= OBJS);
                }
                Op::Drain => { space.drain_caches().unwrap(); }
            }
            for (o, &want) in objs.iter().zip(&model) {
                if let Some(o) = o {
                    prop_assert_eq!(total(&space, o), want);
                }
            }
            let live = objs.iter().flatten().count();
            let w = space.waste();
            prop_assert_eq!(w.live_objects, live, "live = assigned - cached");
        }
        for o in objs.iter().flatten() {
            // SAFETY: as above.
            let _ = unsafe { space.detach(&o.header) }.unwrap();
        }
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { pcpu_rseq::simulate_cpu(None) };
    }
}
