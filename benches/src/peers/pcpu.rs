//! The place where `pcpu_counter::PercpuCounter` plugs in. Apart from the `metrics` scenario
//! (pcpu's `PcpuRecorder`), nothing else in the benchmark names pcpu.
//!
//! Two rows: the default (the global domain, whose counters start *lazy*: two inline words, a
//! count updated by `fetch_add` and a state word, until its adds show several CPUs
//! updating the counter) and a domain built with `CounterMode::PerCpu` (a 32-byte header block from
//! the domain's header storage and a per-CPU slot from creation: the mode the memory and
//! compaction scenarios are about). The `memory` scenario also builds each in a 256-CPU
//! domain.

use super::BenchCounter;
use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use std::cmp::Ordering;
use std::sync::OnceLock;

/// A domain with `mode`, for `ncpu` CPUs (`None`: this machine), built once.
fn domain(mode: CounterMode, ncpu: Option<usize>) -> &'static Domain {
    static DOMAINS: [OnceLock<&'static Domain>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let (i, n) = match (mode, ncpu) {
        (CounterMode::PerCpu, None) => (0, None),
        (CounterMode::PerCpu, Some(n)) => (1, Some(n)),
        (_, n) => (2, n),
    };
    DOMAINS[i].get_or_init(|| {
        let mut b = Domain::builder().mode(mode);
        if let Some(n) = n {
            b = b.ncpu(n);
        }
        b.build().expect("pcpu: cannot build the domain")
    })
}

macro_rules! pcpu_peer {
    ($ty:ident, $name:expr, $mode:expr, $home:expr) => {
        /// A `PercpuCounter` (see the module docs for the mode).
        pub struct $ty(PercpuCounter);

        impl BenchCounter for $ty {
            fn name() -> &'static str {
                $name
            }
            fn new(initial: i64) -> Self {
                let home: &'static Domain = $home;
                Self(PercpuCounter::new_in(home, initial).expect("pcpu: out of memory"))
            }
            fn new_for_cpus(ncpu: usize, initial: i64) -> Self {
                let d = domain($mode, Some(ncpu));
                Self(PercpuCounter::new_in(d, initial).expect("pcpu: out of memory"))
            }
            #[inline(always)]
            fn add(&self, delta: i64) {
                self.0.add(delta);
            }
            fn read(&self) -> i64 {
                self.0.read()
            }
            fn sum(&self) -> i64 {
                self.0.sum()
            }
            fn compare(&self, rhs: i64) -> Ordering {
                self.0.compare(rhs)
            }
            fn slot_address(&self) -> Option<usize> {
                self.0.slot_address()
            }
            fn header_address(&self) -> Option<usize> {
                self.0.header_address()
            }
            fn compact() -> bool {
                let home: &'static Domain = $home;
                home.compact().is_ok()
            }
            fn percpu_resident_ratio() -> Option<f64> {
                let home: &'static Domain = $home;
                Some(home.stats().waste.ratio())
            }
            fn own_resident_bytes() -> Option<(usize, usize)> {
                let home: &'static Domain = $home;
                let s = home.stats();
                Some((s.header_bytes_resident, s.waste.resident_bytes))
            }
            fn size_hint(ncpu: usize) -> usize {
                // Per-CPU memory is populated only for the CPUs that write, and the writers
                // run on this machine's CPUs: a simulated 256-CPU domain still gets its
                // 1,000,000 counters (2.2 GB should this ever be wrong).
                ncpu.min(super::ncpu()) * 8 + 160
            }
        }
    };
}

pcpu_peer!(Pcpu, super::PCPU_NAME, CounterMode::Lazy, Domain::global());
pcpu_peer!(
    PcpuPerCpu,
    super::PCPU_PERCPU_NAME,
    CounterMode::PerCpu,
    domain(CounterMode::PerCpu, None)
);
