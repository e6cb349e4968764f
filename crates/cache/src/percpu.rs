//! The per-CPU stacks the magazines are made of: [`pcpu_rseq::PercpuStacks`], whose pop and
//! push are single rseq critical sections (or a per-CPU try-lock on the portable backend, which
//! is also what runs under loom).

pub(crate) use pcpu_rseq::{PercpuStacks, StackMiss, StopError, StoppedStack};

pub use pcpu_rseq::simulate_cpu;
