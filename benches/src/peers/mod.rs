//! The counters under test. Each implements [`BenchCounter`]; [`for_each`] visits them all in a
//! fixed order, so every scenario measures every peer in the same run.
//!
//! The pcpu counter plugs in at exactly one place: [`pcpu`].

pub mod atomic;
pub mod contatori_signed;
pub mod fastcounter;
pub mod getcpu_array;
pub mod linux;
pub mod pcpu;
pub mod plain_atomic;
pub mod rseq_raw;
pub mod tls;

use std::cmp::Ordering;

/// The name of the (default, lazy) pcpu row.
pub const PCPU_NAME: &str = "pcpu PercpuCounter";

/// The name of the pcpu row whose domain is built with `CounterMode::PerCpu`.
pub const PCPU_PERCPU_NAME: &str = "pcpu PercpuCounter PerCpu";

/// A counter as the benchmark uses it.
pub trait BenchCounter: Send + Sync + Sized + 'static {
    /// The row label.
    fn name() -> &'static str;

    /// A counter holding `initial`, sized for this machine.
    fn new(initial: i64) -> Self;

    /// A counter holding `initial` as it would be built on a machine with `ncpu` CPUs
    /// (scenario `memory`). Peers whose size does not depend on the CPU count keep the
    /// default.
    fn new_for_cpus(ncpu: usize, initial: i64) -> Self {
        let _ = ncpu;
        Self::new(initial)
    }

    /// Adds `delta`. Every peer marks its `add` `#[inline(always)]`: the wrapper is the
    /// bench's, not the user's, who calls the peer's own add where it sits; whether that one
    /// is inlined stays the peer's choice. (With `#[inline]`, LLVM kept pcpu's wrapper out of
    /// line in the churn loop once the per-CPU section grew by one instruction, a call per add
    /// that users do not pay.)
    fn add(&self, delta: i64);

    /// The value, maybe approximate, at the peer's cheapest.
    fn read(&self) -> i64;

    /// The exact value when no add runs concurrently.
    fn sum(&self) -> i64;

    /// Compares the value with `rhs`, as cheaply as the peer can do it exactly.
    fn compare(&self, rhs: i64) -> Ordering {
        self.sum().cmp(&rhs)
    }

    /// Gives unused memory of freed counters back to the OS; `false` if the peer has no such
    /// operation (scenario `waste`).
    fn compact() -> bool {
        false
    }

    /// For peers that keep per-CPU memory in their own mappings (pcpu): resident per-CPU bytes
    /// over what the live counters need, measured by the peer (mincore); `None` otherwise.
    fn percpu_resident_ratio() -> Option<f64> {
        None
    }

    /// Where this counter's per-CPU cells start, for peers that place them in shared storage
    /// (pcpu's slots, several to a cache line): the churn scenario reports whether two
    /// threads' counters share cache lines. `None` otherwise.
    fn slot_address(&self) -> Option<usize> {
        None
    }

    /// Where this counter's header is, for peers that place headers in shared storage (pcpu's
    /// header pages, two 32-byte blocks to a cache line): as for
    /// [`slot_address`](Self::slot_address). `None` otherwise.
    fn header_address(&self) -> Option<usize> {
        None
    }

    /// For peers with storage of their own (pcpu's mmap'd header pages and per-CPU
    /// pagesets): `(header bytes, per-CPU bytes)` resident in the storage of the domain that
    /// [`new`](Self::new) uses, measured by the peer (mincore); `None` otherwise. Only to break
    /// the measured RSS down in the JSON.
    fn own_resident_bytes() -> Option<(usize, usize)> {
        None
    }

    /// A rough upper bound of the bytes one counter takes with `ncpu` CPUs. Only used to cap
    /// how many counters a memory scenario creates (so that a 16 KiB-per-counter peer does not
    /// need 16 GB); the reported figures are always measured.
    fn size_hint(ncpu: usize) -> usize;
}

/// Something run once per peer type.
pub trait Visitor {
    /// Runs for one peer.
    fn visit<C: BenchCounter>(&mut self);
}

/// Visits every peer, in table order.
pub fn for_each(v: &mut impl Visitor) {
    v.visit::<pcpu::Pcpu>();
    v.visit::<pcpu::PcpuPerCpu>();
    v.visit::<rseq_raw::RseqRaw>();
    v.visit::<atomic::SharedAtomic>();
    v.visit::<plain_atomic::PlainAtomic>();
    v.visit::<tls::Tls>();
    v.visit::<fastcounter::FastCounter>();
    v.visit::<contatori_signed::Contatori>();
    v.visit::<getcpu_array::GetcpuArray>();
    v.visit::<linux::LinuxModel>();
}

/// The CPU this thread runs on, from `sched_getcpu` (0 if that fails).
#[inline]
pub fn getcpu() -> usize {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 {
        0
    } else {
        cpu as usize
    }
}

/// The number of possible CPUs of this machine.
pub fn ncpu() -> usize {
    pcpu_rseq::possible_cpus().max(1)
}
