//! Random sequences of `pcpu_counter` API calls (new/with_mode/new_many, add, inc/dec,
//! add_batch, set, limited_add, compare, read/sum/error_bound, counter groups, compaction,
//! drop), issued from simulated CPUs and sometimes the real one, against an exact model.
//!
//! Each input builds its own small domain (`ncpu` 1..=4, one-page units, random batch and mode)
//! and a few counters of the global domain. After every step, for every counter:
//! `sum() == model`, `|read() − sum()| ≤ error_bound()`, the `_positive` variants,
//! `compare(model) == Equal`, per-CPU state matching the mode; for every group, `sum_all()` and
//! `sum(i)` exact; and the domain counts exactly the attached single counters as live.
#![no_main]

use std::cmp::Ordering;
use std::sync::Mutex;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use pcpu_counter::{
    CounterError, CounterMode, Domain, PercpuCounter, PercpuCounterGroup, MAX_GROUP,
};
use pcpu_rseq::simulate_cpu;

/// Operations per input, at most.
const MAX_OPS: usize = 256;
/// Counter slots of the model.
const COUNTERS: usize = 8;
/// Group slots of the model.
const GROUPS: usize = 3;

#[derive(Arbitrary, Debug)]
struct RawOp {
    kind: u8,
    idx: u8,
    cpu: u8,
    a: i16,
    b: i32,
}

struct Counter {
    c: PercpuCounter,
    want: i64,
    mode: CounterMode,
    global: bool,
}

struct Group {
    g: PercpuCounterGroup,
    want: Vec<i64>,
}

fn mode_of(raw: u8) -> CounterMode {
    match raw % 3 {
        0 => CounterMode::Lazy,
        1 => CounterMode::PerCpu,
        _ => CounterMode::Atomic,
    }
}

/// `None` (the real CPU) for one value in `ncpu + 1`, else a simulated CPU.
fn decode_cpu(raw: u8, ncpu: usize) -> Option<usize> {
    let c = raw as usize % (ncpu + 1);
    (c < ncpu).then_some(c)
}

fn check_counter(i: usize, c: &Counter) {
    let (sum, read, bound) = (c.c.sum(), c.c.read(), c.c.error_bound());
    assert_eq!(sum, c.want, "counter {i} sum");
    assert!(bound >= 0, "counter {i} negative error bound");
    assert!(
        read.abs_diff(sum) <= bound as u64,
        "counter {i}: |read {read} - sum {sum}| > error_bound {bound}"
    );
    assert_eq!(
        c.c.sum_positive(),
        c.want.max(0),
        "counter {i} sum_positive"
    );
    assert_eq!(
        c.c.read_positive(),
        read.max(0),
        "counter {i} read_positive"
    );
    assert_eq!(c.c.compare(c.want), Ordering::Equal, "counter {i} compare");
    match c.mode {
        CounterMode::PerCpu => assert!(c.c.is_per_cpu(), "counter {i}: PerCpu lost its slot"),
        CounterMode::Atomic => assert!(!c.c.is_per_cpu(), "counter {i}: Atomic went per-CPU"),
        CounterMode::Lazy => {}
    }
}

fn check(domain: &Domain, counters: &[Option<Counter>], groups: &[Option<Group>]) {
    let mut attached = 0;
    for (i, c) in counters.iter().enumerate() {
        let Some(c) = c else { continue };
        check_counter(i, c);
        if !c.global && c.c.is_per_cpu() {
            attached += 1;
        }
    }
    for (j, g) in groups.iter().enumerate() {
        let Some(g) = g else { continue };
        // A group of one shares the single counters' space. Groups follow the domain's mode:
        // per-CPU from creation, never, or (lazy) once several CPUs update them.
        match domain.mode() {
            CounterMode::PerCpu => assert!(g.g.is_per_cpu(), "group {j}: PerCpu lost its slot"),
            CounterMode::Atomic => assert!(!g.g.is_per_cpu(), "group {j}: Atomic went per-CPU"),
            CounterMode::Lazy => {}
        }
        if g.want.len() == 1 && g.g.is_per_cpu() {
            attached += 1;
        }
        assert_eq!(g.g.sum_all(), g.want, "group {j} sum_all");
        for (k, &w) in g.want.iter().enumerate() {
            assert_eq!(g.g.sum(k).expect("in range"), w, "group {j} sum({k})");
        }
    }
    let stats = domain.stats();
    // The single counters' space (groups of one share it); `stats.waste` adds up every space.
    assert_eq!(
        stats.spaces[0].waste.live_objects, attached,
        "domain live objects != attached counters and groups of one"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((ncpu, batch, mode, waste)) = <(u8, u8, u8, u8)>::arbitrary(&mut u) else {
        return;
    };
    let ncpu = 1 + ncpu as usize % 4;
    // Domains live for the rest of the process (at most 2047 of them), so inputs draw their
    // configuration from a small set (4 × 8 × 3 × 4 = 384 domains) and share each domain;
    // every input drops what it made, so a domain starts each input empty.
    const BATCHES: [Option<i64>; 8] = [
        None,
        Some(1),
        Some(2),
        Some(3),
        Some(7),
        Some(16),
        Some(33),
        Some(64),
    ];
    const WASTE: [Option<f64>; 4] = [None, Some(1.0), Some(1.5), Some(3.0)];
    let key = (
        ncpu,
        batch as usize % BATCHES.len(),
        mode as usize % 3,
        waste as usize % WASTE.len(),
    );
    static DOMAINS: Mutex<Vec<((usize, usize, usize, usize), &'static Domain)>> =
        Mutex::new(Vec::new());
    let d: &'static Domain = {
        let mut known = DOMAINS.lock().unwrap();
        match known.iter().find(|(k, _)| *k == key) {
            Some(&(_, d)) => d,
            None => {
                let mut builder = Domain::builder()
                    .ncpu(ncpu)
                    .unit_bytes(pcpu_pageset::page_size())
                    .mode(mode_of(mode));
                if let Some(b) = BATCHES[key.1] {
                    builder = builder.batch(b);
                }
                if let Some(r) = WASTE[key.3] {
                    builder = builder.compact_when_waste_above(r);
                }
                let d = builder.build().expect("domain config");
                known.push((key, d));
                d
            }
        }
    };
    let domain = d;
    let mut counters: Vec<Option<Counter>> = (0..COUNTERS).map(|_| None).collect();
    let mut groups: Vec<Option<Group>> = (0..GROUPS).map(|_| None).collect();
    let mut steps = 0;
    // `arbitrary` pads exhausted input with zeros instead of failing: stop at the end.
    while !u.is_empty() && steps < MAX_OPS {
        let Ok(op) = RawOp::arbitrary(&mut u) else {
            break;
        };
        steps += 1;
        let i = op.idx as usize % COUNTERS;
        let j = op.idx as usize % GROUPS;
        let (a, b) = (i64::from(op.a), i64::from(op.b));
        // SAFETY: the target runs on one thread and updates only domains it built (never the
        // global domain's counters): no rseq thread touches them.
        unsafe { simulate_cpu(decode_cpu(op.cpu, ncpu)) };
        match op.kind % 24 {
            // create
            0 => {
                let init = b;
                let (c, mode, global) = match op.a % 6 {
                    0 => (PercpuCounter::new_in(d, init), d.mode(), false),
                    1 => (Ok(PercpuCounter::new(init)), CounterMode::Lazy, true),
                    2 => (PercpuCounter::try_new(init), CounterMode::Lazy, true),
                    m => {
                        let mode = mode_of(m as u8);
                        (PercpuCounter::with_mode(d, init, mode), mode, false)
                    }
                };
                let c = c.expect("create");
                counters[i] = Some(Counter {
                    c,
                    want: init,
                    mode,
                    global,
                });
            }
            1 => {
                let n = (op.a as u16 % 4) as usize;
                let init = b;
                let global = op.cpu % 8 == 0;
                let made = if global {
                    PercpuCounter::new_many(n, init)
                } else {
                    PercpuCounter::new_many_in(d, n, init)
                }
                .expect("new_many");
                assert_eq!(made.len(), n, "new_many count");
                for (k, c) in made.into_iter().enumerate() {
                    let mode = if global { CounterMode::Lazy } else { d.mode() };
                    counters[(i + k) % COUNTERS] = Some(Counter {
                        c,
                        want: init,
                        mode,
                        global,
                    });
                }
            }
            2 => counters[i] = None,
            // add, the common case
            3..=7 => {
                if let Some(c) = &mut counters[i] {
                    c.c.add(a);
                    c.want += a;
                }
            }
            8 => {
                if let Some(c) = &mut counters[i] {
                    if op.a % 2 == 0 {
                        c.c.inc();
                        c.want += 1;
                    } else {
                        c.c.dec();
                        c.want -= 1;
                    }
                }
            }
            9 | 10 => {
                if let Some(c) = &mut counters[i] {
                    // Mostly small batches; sometimes anything (≤ 0 is treated as 1).
                    let batch = if op.b % 4 == 0 {
                        i64::from(op.b >> 2)
                    } else {
                        1 + i64::from(op.b.rem_euclid(256))
                    };
                    c.c.add_batch(a, batch);
                    c.want += a;
                }
            }
            11 => {
                if let Some(c) = &mut counters[i] {
                    c.c.set(b).expect("set");
                    c.want = b;
                }
            }
            12 | 13 => {
                if let Some(c) = &mut counters[i] {
                    let (limit, delta) = (c.want + b / 1024, a);
                    let expect = delta <= 0 || c.want + delta <= limit;
                    assert_eq!(c.c.limited_add(limit, delta), expect, "limited_add");
                    if expect {
                        c.want += delta;
                    }
                }
            }
            14 => {
                if let Some(c) = &counters[i] {
                    let rhs = c.want + a;
                    assert_eq!(c.c.compare(rhs), c.want.cmp(&rhs), "compare");
                    let rhs = b;
                    assert_eq!(c.c.compare(rhs), c.want.cmp(&rhs), "compare");
                }
            }
            15 => {
                let r = domain.compact().expect("compact");
                assert_eq!(r.slots_skipped, 0, "nothing runs concurrently");
            }
            16 => {
                domain.maybe_compact().expect("maybe_compact");
            }
            // groups
            17 => {
                let n = (op.a as u16 % (MAX_GROUP as u16 + 2)) as usize;
                match PercpuCounterGroup::new_in(d, n) {
                    Ok(g) => {
                        assert!((1..=MAX_GROUP).contains(&n), "group of {n} created");
                        assert_eq!(g.len(), n);
                        assert!(!g.is_empty());
                        groups[j] = Some(Group {
                            g,
                            want: vec![0; n],
                        });
                    }
                    Err(CounterError::GroupSize(m)) => {
                        assert_eq!(m, n);
                        assert!(!(1..=MAX_GROUP).contains(&n), "group of {n} refused");
                    }
                    Err(e) => panic!("group: {e}"),
                }
            }
            18..=20 => {
                if let Some(g) = &mut groups[j] {
                    let k = (op.b as u32 % (g.want.len() as u32 + 1)) as usize;
                    match g.g.add(k, a) {
                        Ok(()) => g.want[k] += a,
                        Err(CounterError::Index { index, len }) => {
                            assert_eq!((index, len), (k, g.want.len()));
                            assert_eq!(k, g.want.len(), "in-range index refused");
                        }
                        Err(e) => panic!("group add: {e}"),
                    }
                    if k < g.want.len() {
                        // `read` is the inline and central part: exact while inline, else
                        // within a batch per CPU of the sum.
                        let read = g.g.read(k).expect("in range");
                        let bound = g.g.error_bound();
                        let per_cpu_bound = (domain.batch() - 1) * domain.ncpu() as i64;
                        assert!(
                            bound == per_cpu_bound || (bound == 0 && !g.g.is_per_cpu()),
                            "group bound {bound}"
                        );
                        assert!(read.abs_diff(g.want[k]) <= bound as u64, "group read");
                    } else {
                        assert!(g.g.read(k).is_err() && g.g.sum(k).is_err());
                    }
                }
            }
            21 => groups[j] = None,
            22 => {
                domain.stats();
                Domain::global().stats();
            }
            _ => {
                // Exact read of a counter from another (simulated) CPU than its adders.
                if let Some(c) = &counters[i] {
                    assert_eq!(c.c.sum(), c.want);
                }
            }
        }
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { simulate_cpu(None) };
        check(&domain, &counters, &groups);
    }
    counters.clear();
    groups.clear();
    check(&domain, &counters, &groups);
    // Free slots in the caches keep a pageset mapped; no live object may remain.
    domain.compact().expect("compact");
    assert_eq!(
        domain.stats().waste.live_objects,
        0,
        "live objects after all drops"
    );
});
