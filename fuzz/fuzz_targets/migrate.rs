//! Random sequences of attach, add (pcpu-testkit's `SpaceObj`: `add_fold_with_offset` on the
//! header's slot word, with a central fallback, from simulated CPUs and sometimes the real one),
//! take_cells, detach, compact (random policy), drain, trim and release on a `pcpu_migrate::Space`,
//! checked after every step against an exact model:
//! - every live object's total (central + `sum_words`), word by word, is exact;
//! - attached headers have a slot and are `State::Attached`; unattached ones stay disabled;
//! - the space counts exactly the attached objects as live (`waste().live_objects`), and a
//!   compaction never moves more than that;
//! - at the end, with everything detached and the caches drained, the pool is empty.
//!
//! A fuzzing twin of `crates/migrate/tests/model.rs`.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use pcpu_migrate::header::State;
use pcpu_migrate::{CompactPolicy, Release, Space, SpaceConfig};
use pcpu_pageset::SizeClass;
use pcpu_rseq::{simulate_cpu, DISABLED, LIVE};
use pcpu_testkit::space_obj::SpaceObj;

/// Operations per input, at most.
const MAX_OPS: usize = 256;
/// Object slots.
const OBJS: usize = 48;

#[derive(Arbitrary, Debug)]
struct RawOp {
    kind: u8,
    obj: u8,
    cpu: u8,
    word: u8,
    delta: i16,
    batch: u8,
}

struct Obj {
    /// The header and central counts (pcpu-testkit's object, which pcpu-migrate's tests drive).
    obj: SpaceObj<8>,
    model: [i64; 8],
    attached: bool,
}

struct Harness {
    space: Space,
    words: usize,
    objs: Vec<Option<Obj>>,
}

impl Harness {
    fn total(&self, o: &Obj) -> [i64; 8] {
        // SAFETY: every header of the harness is attached through its space, or dead.
        unsafe { o.obj.totals(&self.space, self.words) }
    }

    fn check(&self) {
        let mut attached = 0;
        for (i, o) in self.objs.iter().enumerate() {
            let Some(o) = o else { continue };
            let total = self.total(o);
            assert_eq!(
                total[..self.words],
                o.model[..self.words],
                "object {i} total"
            );
            let slot = o
                .obj
                .header
                .slot_word()
                .load(std::sync::atomic::Ordering::Relaxed);
            if o.attached {
                attached += 1;
                assert_eq!(o.obj.header.state(), State::Attached, "object {i} state");
                assert!(o.obj.header.is_attached());
                assert_ne!(slot & LIVE, 0, "object {i}: attached but disabled");
            } else {
                assert_eq!(o.obj.header.state(), State::Unattached, "object {i} state");
                assert_eq!(slot, DISABLED, "object {i}: unattached but has a slot");
            }
        }
        let w = self.space.waste();
        assert_eq!(w.live_objects, attached, "live = assigned - cached");
        assert!(w.live_bytes <= w.mapped_bytes || attached == 0);
    }

    fn detach(&mut self, i: usize) {
        if let Some(o) = self.objs[i].take() {
            // SAFETY: single-threaded: nobody adds through or reads the header any more.
            let release = unsafe { self.space.detach(&o.obj.header) }.expect("detach");
            // No compaction runs concurrently, so nobody can hold the header's address.
            assert_eq!(release, Release::Now, "object {i}");
        }
    }
}

/// `None` (the real CPU) for one value in `ncpu + 1`, else a simulated CPU.
fn decode_cpu(raw: u8, ncpu: usize) -> Option<usize> {
    let c = raw as usize % (ncpu + 1);
    (c < ncpu).then_some(c)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((class, ncpu, capacity, batch)) = <(u8, u8, u8, u8)>::arbitrary(&mut u) else {
        return;
    };
    // The per-CPU classes (8..64 bytes; the harness models up to 8 words per CPU).
    let class = SizeClass::ALL[class as usize % 4];
    let ncpu = 1 + ncpu as usize % 4;
    let mut config = SpaceConfig::new(class);
    config.ncpu = ncpu;
    config.unit_bytes = Some(pcpu_pageset::page_size());
    config.cache.capacity = 1 + capacity as usize % 8;
    config.cache.batch = 1 + batch as usize % 4;
    let space = Space::new(config).expect("space config");
    let mut h = Harness {
        words: space.words(),
        space,
        objs: (0..OBJS).map(|_| None).collect(),
    };
    let mut steps = 0;
    // `arbitrary` pads exhausted input with zeros instead of failing: stop at the end.
    while !u.is_empty() && steps < MAX_OPS {
        let Ok(op) = RawOp::arbitrary(&mut u) else {
            break;
        };
        steps += 1;
        let i = op.obj as usize % OBJS;
        let sim = decode_cpu(op.cpu, ncpu);
        // SAFETY: the target runs on one thread, and the space it updates is its own harness's: no
        // rseq thread touches it.
        unsafe { simulate_cpu(sim) };
        match op.kind % 12 {
            // add: the common operation
            0..=4 => {
                let word = op.word as usize % h.words;
                let batch = 1 + i64::from(op.batch % 64);
                let delta = i64::from(op.delta);
                let Harness { space, objs, .. } = &mut h;
                if let Some(o) = &mut objs[i] {
                    // SAFETY: the header is attached through `space` or never attached;
                    // `word` < `words`, the space's.
                    unsafe { o.obj.add(space, word, delta, batch) };
                    o.model[word] += delta;
                }
            }
            // create, attached or not
            5 => {
                if h.objs[i].is_none() {
                    let obj = SpaceObj::new();
                    let attach = op.word % 4 != 0;
                    if attach {
                        // SAFETY: boxed; `detach` runs before the box is dropped.
                        assert!(unsafe { h.space.attach(&obj.header) }.expect("attach"));
                    }
                    h.objs[i] = Some(Obj {
                        obj,
                        model: [0; 8],
                        attached: attach,
                    });
                }
            }
            // attach an existing object (a second attach is refused)
            6 => {
                if let Some(o) = &mut h.objs[i] {
                    // SAFETY: as above.
                    let did = unsafe { h.space.attach(&o.obj.header) }.expect("attach");
                    assert_eq!(did, !o.attached, "attach of an attached header");
                    o.attached = true;
                }
            }
            7 => h.detach(i),
            8 => {
                let policy = CompactPolicy {
                    occupancy_below: f64::from(op.word % 12) / 10.0 + 0.01,
                };
                let attached = h.objs.iter().flatten().filter(|o| o.attached).count();
                let r = h.space.compact(&policy).expect("compact");
                assert!(
                    r.slots_moved <= attached,
                    "moved {} > {attached}",
                    r.slots_moved
                );
                assert_eq!(r.slots_skipped, 0, "nothing runs concurrently");
                let draining = h.space.pool_stats().pagesets_draining;
                assert_eq!(draining, 0, "compaction left pagesets draining");
            }
            // take the cells (what `set` does): the total moves to central, unchanged
            9 => {
                if let Some(o) = &mut h.objs[i] {
                    // SAFETY: attached through this space, or never attached.
                    unsafe { o.obj.take_into_central(&h.space, h.words) }.expect("take_cells");
                    let mut cells = [0i64; 8];
                    // SAFETY: as above.
                    unsafe { h.space.sum_words(&o.obj.header, &mut cells[..h.words]) };
                    assert_eq!(cells, [0; 8], "cells not empty after take_cells");
                }
            }
            10 => {
                if op.word % 2 == 0 {
                    h.space.drain_caches().expect("drain_caches");
                    assert_eq!(h.space.cache_stats().cached, 0);
                } else {
                    h.space.trim_caches(op.batch as usize % 4).expect("trim");
                }
            }
            _ => {
                h.space.release();
            }
        }
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { simulate_cpu(None) };
        h.check();
    }
    for i in 0..OBJS {
        h.detach(i);
    }
    h.check();
    h.space.drain_caches().expect("drain_caches");
    h.space.release();
    let pool = h.space.pool_stats();
    assert_eq!(pool.assigned, 0, "slots left assigned");
    assert_eq!(pool.pagesets_mapped, 0, "pagesets left mapped");
});
