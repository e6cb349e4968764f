//! Peer: the `contatori` crate's `Signed` counter: a fixed array of 128 padded shards (16 KiB on
//! x86_64, whatever the CPU count), indexed by a per-thread slot.

use super::BenchCounter;
use contatori::counters::signed::Signed;
use contatori::counters::{CounterValue, Observable};

/// A boxed `contatori::counters::signed::Signed`.
pub struct Contatori {
    initial: i64,
    inner: Box<Signed>,
}

impl Contatori {
    fn total(&self) -> i64 {
        match self.inner.value() {
            CounterValue::Signed(v) => self.initial + v,
            CounterValue::Unsigned(v) => self.initial + v as i64,
            other => self.initial + other.as_i64(),
        }
    }
}

impl BenchCounter for Contatori {
    fn name() -> &'static str {
        "contatori Signed"
    }
    fn new(initial: i64) -> Self {
        Self {
            initial,
            inner: Box::new(Signed::new()),
        }
    }
    #[inline(always)]
    fn add(&self, delta: i64) {
        self.inner.add(delta as isize);
    }
    fn read(&self) -> i64 {
        self.total()
    }
    fn sum(&self) -> i64 {
        self.total()
    }
    fn size_hint(_ncpu: usize) -> usize {
        std::mem::size_of::<Signed>() + 64
    }
}
