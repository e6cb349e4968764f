//! [`Compactor`]: a thread that applies a domain's waste policy, so that compaction (membarrier
//! grace periods, `mincore`-free but lock-taking work) never runs inside a counter's `drop`,
//! on whatever thread (an async executor's, say) happens to drop the 4096th counter.
//!
//! The thread knows nothing of the domain:
//! [`Domain::spawn_compactor`](crate::Domain::spawn_compactor) hands it the domain's
//! check-and-compact step as a closure.

use crate::CounterError;
use pcpu_migrate::CompactReport;
// std's primitives, not pcpu_rseq::sync's: the compactor thread (a condition variable and
// its lock) and its statistics are no part of a modelled protocol, and no loom model builds
// this file (it is left out under `--cfg loom`).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the compactor thread shares with its handle.
#[derive(Debug, Default)]
struct Shared {
    /// Set by the handle to stop the thread; the condvar wakes it.
    stop: Mutex<bool>,
    wake: Condvar,
    checks: AtomicU64,
    compactions: AtomicU64,
    failures: AtomicU64,
}

/// A running compactor thread ([`Domain::spawn_compactor`](crate::Domain::spawn_compactor)).
/// Dropping it (or [`stop`](Self::stop)) stops the thread and waits for it: at most one
/// compaction in flight.
#[derive(Debug)]
pub struct Compactor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the thread: every `every`, it calls `compact_if_waste_above(waste_above)`, the
    /// domain's step that estimates its waste
    /// ([`Domain::waste_estimate`](crate::Domain::waste_estimate)) and compacts when it is above
    /// the limit (`Ok(Some(report))` if it compacted).
    pub(crate) fn spawn(
        every: Duration,
        waste_above: f64,
        compact_if_waste_above: impl Fn(f64) -> Result<Option<CompactReport>, CounterError>
            + Send
            + 'static,
    ) -> Result<Compactor, CounterError> {
        if every.is_zero() {
            return Err(CounterError::Config(
                "a compactor needs a non-zero interval",
            ));
        }
        // NaN and ratios below 1 would compact on every check (a dense domain estimates 1).
        if waste_above.is_nan() || waste_above < 1.0 {
            return Err(CounterError::Config(
                "a compactor's waste limit is a ratio of at least 1.0",
            ));
        }
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pcpu-compactor".into())
            .spawn(move || run(&compact_if_waste_above, &theirs, every, waste_above))
            .map_err(CounterError::Thread)?;
        Ok(Compactor {
            shared,
            thread: Some(thread),
        })
    }

    /// Policy checks made so far.
    pub fn checks(&self) -> u64 {
        self.shared.checks.load(Ordering::Relaxed)
    }

    /// Compactions run so far.
    pub fn compactions(&self) -> u64 {
        self.shared.compactions.load(Ordering::Relaxed)
    }

    /// Compactions that failed so far (each also a `tracing` warning with the `tracing`
    /// feature; nothing is lost, and the next check tries again).
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it (a compaction in progress finishes first).
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread only panics if a compaction panicked; nothing to add to that.
            let _ = thread.join();
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The thread's loop: wait `every` (or until stopped), check, compact if needed.
fn run(
    compact_if_waste_above: &dyn Fn(f64) -> Result<Option<CompactReport>, CounterError>,
    shared: &Shared,
    every: Duration,
    waste_above: f64,
) {
    loop {
        {
            let stop = shared.stop.lock().unwrap_or_else(|p| p.into_inner());
            let (stop, _) = shared
                .wake
                .wait_timeout_while(stop, every, |stop| !*stop)
                .unwrap_or_else(|p| p.into_inner());
            if *stop {
                return;
            }
        }
        shared.checks.fetch_add(1, Ordering::Relaxed);
        match compact_if_waste_above(waste_above) {
            Ok(Some(_)) => {
                shared.compactions.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                crate::slow_path_event!(
                    warn,
                    error = %e,
                    "pcpu: automatic compaction failed; will retry"
                );
                #[cfg(not(feature = "tracing"))]
                let _ = e;
            }
        }
    }
}
