//! proptest: any sequence of API calls, issued as if from several CPUs (simulated on the
//! portable backend, in a private domain), against a model that holds the exact value.

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use proptest::prelude::*;

const NCPU: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Add(usize, usize, i64),
    AddBatch(usize, usize, i64, i64),
    Set(usize, i64),
    LimitedAdd(usize, usize, i64, i64),
    Compare(usize, i64),
    Compact,
    Recreate(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..NCPU, -100i64..100).prop_map(|(c, cpu, d)| Op::Add(c, cpu, d)),
        (0..3usize, 0..NCPU, -100i64..100, 1i64..64)
            .prop_map(|(c, cpu, d, b)| Op::AddBatch(c, cpu, d, b)),
        (0..3usize, -1000i64..1000).prop_map(|(c, v)| Op::Set(c, v)),
        (0..3usize, 0..NCPU, -500i64..500, -50i64..50)
            .prop_map(|(c, cpu, l, d)| Op::LimitedAdd(c, cpu, l, d)),
        (0..3usize, -500i64..500).prop_map(|(c, v)| Op::Compare(c, v)),
        Just(Op::Compact),
        (0..3usize, -10i64..10).prop_map(|(c, v)| Op::Recreate(c, v)),
    ]
}

fn check(c: &PercpuCounter, want: i64) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.sum(), want);
    prop_assert!((c.read() - c.sum()).abs() <= c.error_bound());
    prop_assert_eq!(c.sum_positive(), want.max(0));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(pcpu_testkit::stress::proptest_cases(64)))]
    #[test]
    fn api_matches_model(mode in prop_oneof![Just(CounterMode::Lazy), Just(CounterMode::PerCpu), Just(CounterMode::Atomic)],
                         ops in proptest::collection::vec(op(), 1..120)) {
        let domain = Domain::builder().ncpu(NCPU).batch(16).mode(mode).unit_bytes(pcpu_pageset::page_size()).build().unwrap();
        let mut counters: Vec<PercpuCounter> = (0..3).map(|_| PercpuCounter::new_in(domain, 0).unwrap()).collect();
        let mut model = [0i64; 3];
        for op in ops {
            match op {
                // SAFETY: the counters of this case belong to a domain the case built, used by
                // this thread only.
                Op::Add(c, cpu, d) => { unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) }; counters[c].add(d); model[c] += d; }
                // SAFETY: the counters of this case belong to a domain the case built, used by
                // this thread only.
                Op::AddBatch(c, cpu, d, b) => { unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) }; counters[c].add_batch(d, b); model[c] += d; }
                Op::Set(c, v) => { counters[c].set(v).unwrap(); model[c] = v; }
                Op::LimitedAdd(c, cpu, limit, d) => {
                    // SAFETY: the counters of this case belong to a domain the case built, used by
                    // this thread only.
                    unsafe { pcpu_rseq::simulate_cpu(Some(cpu)) };
                    let want = d <= 0 || model[c] + d <= limit;
                    prop_assert_eq!(counters[c].limited_add(limit, d), want);
                    if want { model[c] += d; }
                }
                Op::Compare(c, v) => prop_assert_eq!(counters[c].compare(v), model[c].cmp(&v)),
                Op::Compact => { domain.compact().unwrap(); }
                Op::Recreate(c, v) => { counters[c] = PercpuCounter::new_in(domain, v).unwrap(); model[c] = v; }
            }
            for (c, &want) in counters.iter().zip(&model) {
                check(c, want)?;
            }
        }
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { pcpu_rseq::simulate_cpu(None) };
    }
}
