//! Random operation sequences on a `pcpu_pageset::Pool`, checked against the reference
//! model shared with the proptest (`pcpu_testkit::pageset_model`).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

use pcpu_testkit::pageset_model::{Harness, Op};

#[derive(Arbitrary, Debug)]
struct RawOp {
    kind: u8,
    a: u64,
    b: u64,
    c: u64,
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((class, ncpu, pages, probe)) = <(u8, u8, u8, bool)>::arbitrary(&mut u) else {
        return;
    };
    let mut h = Harness::decode(class, ncpu, pages, probe);
    let mut steps = 0;
    // `arbitrary` pads exhausted input with zeros instead of failing: stop at the end.
    while !u.is_empty() {
        let Ok(raw) = RawOp::arbitrary(&mut u) else {
            break;
        };
        h.apply(&Op::decode(raw.kind, raw.a, raw.b, raw.c));
        steps += 1;
        if steps >= 2000 {
            break;
        }
    }
    h.check();
    h.apply(&Op::Release);
    h.check();
});
