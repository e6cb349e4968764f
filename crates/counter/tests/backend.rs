//! `Domain::builder().backend(Backend::Portable)` switches the whole process to the portable
//! backend when it runs first (this binary holds one test, so nothing ran rseq before).

use pcpu_counter::{Backend, Domain, PercpuCounter};

#[test]
fn portable_backend_from_the_builder() {
    let domain = Domain::builder()
        .backend(Backend::Portable)
        .build()
        .unwrap();
    assert_eq!(pcpu_rseq::mode(), pcpu_rseq::Mode::Portable);
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| (0..10_000).for_each(|_| c.inc()));
        }
    });
    assert_eq!(c.sum(), 20_000);
    // Asking again is fine; Auto never changes the mode.
    assert!(Domain::builder().backend(Backend::Portable).build().is_ok());
    assert!(Domain::builder().backend(Backend::Auto).build().is_ok());
}
