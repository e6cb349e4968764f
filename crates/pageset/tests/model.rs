//! Random operation sequences against a reference model (`pcpu_testkit::pageset_model`, which
//! the `pageset` fuzz target runs too).

use pcpu_testkit::pageset_model::{Harness, Op};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    (any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>())
        .prop_map(|(k, a, b, c)| Op::decode(k, a, b, c))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    // Minutes per case under Miri, even cut down; the unit tests run the pool there.
    #[cfg_attr(miri, ignore = "too slow interpreted")]
    fn pool_matches_model(
        class in 0u8..4,
        ncpu in 0u8..8,
        pages in 0u8..2,
        probe in any::<bool>(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let mut h = Harness::decode(class, ncpu, pages, probe);
        for op in &ops {
            h.apply(op);
        }
        h.check();
        // Empty everything: the pool must give all memory back.
        h.apply(&Op::Release);
        h.check();
    }
}

/// A long fixed-seed sequence that fills several pagesets, so densest-first and release
/// get exercised with many pagesets (the random cases are shorter).
#[test]
// Ten minutes and more under Miri.
#[cfg_attr(miri, ignore = "too slow interpreted")]
fn long_sequence_many_pagesets() {
    let mut h = Harness::decode(3, 3, 0, true); // 64-byte class, 4 CPUs, 64 slots/pageset
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..6_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Bias towards assign early and unassign late so occupancy rises and falls.
        let kind = match (i < 3_000, x % 4) {
            (true, 0) | (false, 0 | 1) => 5, // unassign
            // No full check as an op: it is done every 500 steps below.
            _ => match (x >> 8) as u8 % 16 {
                15 => 10,
                k => k,
            },
        };
        h.apply(&Op::decode(kind, x >> 3, x >> 11, x));
        if i % 500 == 0 {
            h.check();
        }
    }
    h.check();
}
