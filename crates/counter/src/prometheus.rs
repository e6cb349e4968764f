//! `prometheus-client` (feature `prometheus-client`): a [`PercpuCounter`] is the atomic
//! storage of a `prometheus_client` counter and gauge, so `counter.inc()` from many threads
//! adds to per-CPU cells instead of one shared `AtomicU64`. [`Counter`] and [`Gauge`] name
//! the two metric types with that storage; they register, label (`Family`) and encode like
//! any other `prometheus_client` metric, and each scrape reads the exact
//! [`sum`](PercpuCounter::sum).
//!
//! ```
//! use pcpu_counter::prometheus::{Counter, Gauge};
//! use prometheus_client::encoding::text::encode;
//! use prometheus_client::registry::Registry;
//!
//! let requests = Counter::default();
//! let in_flight = Gauge::default();
//! let mut registry = Registry::default();
//! registry.register("requests", "Requests served", requests.clone());
//! registry.register("in_flight", "Requests being served", in_flight.clone());
//!
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| {
//!             for _ in 0..1000 {
//!                 in_flight.inc();
//!                 requests.inc();
//!                 in_flight.dec();
//!             }
//!         });
//!     }
//! });
//! assert_eq!(requests.get(), 2000);
//! assert_eq!(in_flight.get(), 0);
//!
//! let mut text = String::new();
//! encode(&mut text, &registry).unwrap();
//! assert!(text.contains("\nrequests_total 2000\n"));
//! assert!(text.contains("\nin_flight 0\n"));
//! ```
//!
//! The metrics' counters are made by `Default`: lazy counters of the global domain
//! ([`PercpuCounter::new_const`]), inline until several CPUs update them, then per-CPU.
//! `prometheus_client` offers no constructor from an existing value, so a metric cannot be
//! placed in another [`Domain`](crate::Domain).
//!
//! Values are `i64` inside. A counter's increments above `i64::MAX` saturate to it, and a
//! counter reads as 0 if it is below zero (which only an add through
//! [`Counter::inner`](prometheus_client::metrics::counter::Counter::inner) can make it).
//!
//! The trait's methods return the value before the update. To keep them one add, not an
//! exact [`sum`](PercpuCounter::sum) over every CPU, that value is
//! [`read`](PercpuCounter::read): exact while the counter is inline and nothing else updates
//! it, and within [`error_bound`](PercpuCounter::error_bound) of the exact value once it is
//! per-CPU. `get()`, and so every scrape, is the exact `sum`.

use crate::PercpuCounter;
use prometheus_client::metrics::{counter, gauge};

/// A `prometheus_client` counter whose storage is a [`PercpuCounter`]: `inc` and `inc_by`
/// are per-CPU adds once several CPUs update it; `get` and encoding read the exact sum.
pub type Counter = counter::Counter<u64, PercpuCounter>;

/// A `prometheus_client` gauge whose storage is a [`PercpuCounter`]: `inc`, `dec`,
/// `inc_by` and `dec_by` are per-CPU adds; `set` is [`PercpuCounter::set`] (exact, one
/// grace period once the gauge is per-CPU); `get` and encoding read the exact sum.
///
/// ```
/// let connections = pcpu_counter::prometheus::Gauge::default();
/// connections.inc_by(5);
/// connections.dec();
/// assert_eq!(connections.get(), 4);
/// assert_eq!(connections.set(-2), 4); // returns the value before
/// assert_eq!(connections.get(), -2);
/// ```
pub type Gauge = gauge::Gauge<i64, PercpuCounter>;

/// The HTTP `Content-Type` of what `prometheus_client::encoding::text::encode` writes (the
/// OpenMetrics text format), for a `/metrics` endpoint.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl PercpuCounter {
    /// Adds `delta` and returns [`read`](Self::read) from before it: the trait methods'
    /// "previous value" for the price of one load of the counter's own count.
    fn add_returning_read(&self, delta: i64) -> i64 {
        let before = self.read();
        self.add(delta);
        before
    }
}

/// Counter storage: increments saturate at `i64::MAX`; `get` is the exact sum, never below 0.
impl counter::Atomic<u64> for PercpuCounter {
    fn inc(&self) -> u64 {
        counter::Atomic::inc_by(self, 1)
    }

    fn inc_by(&self, v: u64) -> u64 {
        let before = self.add_returning_read(i64::try_from(v).unwrap_or(i64::MAX));
        before.max(0) as u64
    }

    fn get(&self) -> u64 {
        self.sum_positive() as u64
    }
}

/// Gauge storage: adds wrap like [`PercpuCounter::add`]; `set` is [`PercpuCounter::set`];
/// `get` is the exact sum.
impl gauge::Atomic<i64> for PercpuCounter {
    fn inc(&self) -> i64 {
        self.add_returning_read(1)
    }

    fn inc_by(&self, v: i64) -> i64 {
        self.add_returning_read(v)
    }

    fn dec(&self) -> i64 {
        self.add_returning_read(-1)
    }

    fn dec_by(&self, v: i64) -> i64 {
        self.add_returning_read(v.wrapping_neg())
    }

    /// Returns the exact value before (a `sum`). Should the grace period fail, the value is
    /// left as it was (the trait has no error path).
    fn set(&self, v: i64) -> i64 {
        let before = self.sum();
        let _ = PercpuCounter::set(self, v);
        before
    }

    fn get(&self) -> i64 {
        self.sum()
    }
}
