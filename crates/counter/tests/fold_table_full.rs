//! Domains whose batch levels fill pcpu-rseq's fold table: building one more is a clear
//! error, and the global domain, built before any other, keeps working. A process of its
//! own (an integration test file), since the table is never given back.
#![cfg(not(loom))]

use pcpu_counter::{CounterError, CounterMode, Domain, PercpuCounter};

#[test]
fn a_full_fold_table_is_an_error_and_the_global_domain_still_works() {
    let mut built = 0;
    // Batch 1 up to 2⁶²: 63 levels a domain, so the 8,191 entries last about 130 domains.
    let err = loop {
        match Domain::builder()
            .ncpu(2)
            .batch(1)
            .max_batch(i64::MAX)
            .build()
        {
            Ok(_) => built += 1,
            Err(e) => break e,
        }
        assert!(built < 1000, "the fold table never filled");
    };
    assert!(matches!(err, CounterError::FoldTable(_)), "{err}");
    assert!(built > 100, "{built} domains");
    assert!(err.to_string().contains("fold table"), "{err}");
    // The global domain reserved its levels before the first custom domain.
    let c = PercpuCounter::with_mode(Domain::global(), 0, CounterMode::PerCpu).unwrap();
    for _ in 0..1000 {
        c.inc();
    }
    assert_eq!(c.sum(), 1000);
}
