//! The `metrics` facade (feature `metrics`): a [`PercpuCounter`] is a `metrics::CounterFn` and
//! a `metrics::GaugeFn`, and [`PcpuRecorder`] is a complete `metrics::Recorder` whose counters
//! and gauges are pcpu counters, so `metrics::counter!("requests").increment(1)` from many
//! threads adds to per-CPU cells instead of one shared atomic.
//!
//! ```
//! use pcpu_counter::PcpuRecorder;
//! let recorder = PcpuRecorder::new();
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::counter!("requests").increment(3);
//!     metrics::gauge!("in_flight").increment(2.0);
//!     metrics::gauge!("in_flight").decrement(1.0);
//! });
//! assert_eq!(recorder.counter("requests"), Some(3));
//! assert_eq!(recorder.gauge("in_flight"), Some(1));
//! ```

use crate::PercpuCounter;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{Registry, Storage};
use metrics_util::storage::AtomicBucket;
use std::sync::Arc;

/// `u64` values of the facade as the counter's `i64`, saturating.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl metrics::CounterFn for PercpuCounter {
    fn increment(&self, value: u64) {
        self.add(clamp(value));
    }

    /// Raises the counter to at least `value` (the facade's contract: it never lowers it),
    /// without a grace period: see [`PercpuCounter::raise_to`].
    fn absolute(&self, value: u64) {
        self.raise_to(clamp(value));
    }
}

/// Gauges of whole numbers (connections, queue depths, bytes): `increment` and `decrement`
/// add the value truncated towards zero, so up/down updates from many threads go to per-CPU
/// cells; `set` is [`PercpuCounter::set`] (exact; one grace period once the gauge is
/// per-CPU). Fractional parts are dropped: use another gauge type for fractional values.
impl metrics::GaugeFn for PercpuCounter {
    fn increment(&self, value: f64) {
        self.add(value as i64);
    }

    fn decrement(&self, value: f64) {
        self.add(-(value as i64));
    }

    fn set(&self, value: f64) {
        // A failed grace period leaves the value as it was; the facade has no error path.
        let _ = PercpuCounter::set(self, value as i64);
    }
}

/// `metrics-util` storage whose counters and gauges are [`PercpuCounter`]s of the global
/// domain (inline until several CPUs update them, then per-CPU); histograms are
/// `metrics-util`'s `AtomicBucket`s.
#[derive(Debug, Clone, Copy, Default)]
pub struct PcpuStorage;

impl<K> Storage<K> for PcpuStorage {
    type Counter = Arc<PercpuCounter>;
    type Gauge = Arc<PercpuCounter>;
    type Histogram = Arc<AtomicBucket<f64>>;

    fn counter(&self, _: &K) -> Self::Counter {
        Arc::new(PercpuCounter::new_const(0))
    }

    fn gauge(&self, _: &K) -> Self::Gauge {
        Arc::new(PercpuCounter::new_const(0))
    }

    fn histogram(&self, _: &K) -> Self::Histogram {
        Arc::new(AtomicBucket::new())
    }
}

/// A `metrics::Recorder` over a `metrics-util` registry of [`PcpuStorage`]: install it with
/// `metrics::set_global_recorder` (or use it locally), then read values back by name.
pub struct PcpuRecorder {
    registry: Registry<Key, PcpuStorage>,
}

impl core::fmt::Debug for PcpuRecorder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PcpuRecorder").finish_non_exhaustive()
    }
}

impl Default for PcpuRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl PcpuRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        PcpuRecorder {
            registry: Registry::new(PcpuStorage),
        }
    }

    /// The exact value of the counter named `name` with no labels (`None` if it was never
    /// registered); exact when no update runs concurrently.
    pub fn counter(&self, name: &'static str) -> Option<i64> {
        self.registry
            .get_counter(&Key::from_static_name(name))
            .map(|c| c.sum())
    }

    /// The exact value of the gauge named `name` with no labels.
    pub fn gauge(&self, name: &'static str) -> Option<i64> {
        self.registry
            .get_gauge(&Key::from_static_name(name))
            .map(|g| g.sum())
    }

    /// Every counter, with its key and exact value.
    pub fn counters(&self) -> Vec<(Key, i64)> {
        let mut out = Vec::new();
        self.registry
            .visit_counters(|key, c| out.push((key.clone(), c.sum())));
        out
    }

    /// Every gauge, with its key and exact value.
    pub fn gauges(&self) -> Vec<(Key, i64)> {
        let mut out = Vec::new();
        self.registry
            .visit_gauges(|key, g| out.push((key.clone(), g.sum())));
        out
    }
}

impl Recorder for PcpuRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry
            .get_or_create_counter(key, |c| Counter::from_arc(Arc::clone(c)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(Arc::clone(g)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(Arc::clone(h)))
    }
}
