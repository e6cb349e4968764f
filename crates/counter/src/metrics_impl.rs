//! The `metrics` facade: a [`PercpuCounter`] is a `metrics::CounterFn`, so
//! `metrics::Counter::from_arc(Arc::new(counter))` records into per-CPU cells.

use crate::PercpuCounter;

impl metrics::CounterFn for PercpuCounter {
    fn increment(&self, value: u64) {
        self.add(value.min(i64::MAX as u64) as i64);
    }

    fn absolute(&self, value: u64) {
        let _ = self.set(value.min(i64::MAX as u64) as i64);
    }
}
