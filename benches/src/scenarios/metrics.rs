//! Scenario `metrics`: `metrics::counter!` increments from each of the `--threads` counts of
//! threads on one counter, through pcpu's `PcpuRecorder` (its counters are `PercpuCounter`s)
//! and through the same kind of recorder over `metrics-util`'s default storage,
//! `Registry<Key, AtomicStorage>` (an `Arc<AtomicU64>` per counter, what most recorders use).
//!
//! Two ways of calling, each a row per recorder: `counter!("name").increment(1)` at every
//! increment (the registry lookup included, as in a request handler), and a `Counter` handle
//! taken once by `counter!` and incremented through `black_box(&handle)`. Each recorder is
//! installed with `metrics::with_local_recorder` on every thread.

use super::{
    overlap_column, progress, record_reps, run_threads, thread_columns, thread_cpu_ns, thread_key,
    Ctx,
};
use crate::table::{leak, Column, Report};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use pcpu_counter::PcpuRecorder;
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The scenario's name.
pub const NAME: &str = "metrics";

/// The counter's name.
const COUNTER: &str = "pcpu_bench_requests";

/// Row names, in table order.
pub const PCPU_MACRO: &str = "pcpu PcpuRecorder, counter! each";
/// See [`PCPU_MACRO`].
pub const ATOMIC_MACRO: &str = "metrics-util AtomicStorage, counter! each";
/// See [`PCPU_MACRO`].
pub const PCPU_HANDLE: &str = "pcpu PcpuRecorder, handle";
/// See [`PCPU_MACRO`].
pub const ATOMIC_HANDLE: &str = "metrics-util AtomicStorage, handle";

/// The rows this scenario measures.
pub fn rows() -> usize {
    4
}

/// Guessed seconds per row (see [`super::Scenario::guess_secs`]).
pub fn guess_secs(ctx: &Ctx) -> f64 {
    ctx.pick(0.4, 0.05) * ctx.threads.len() as f64
}

/// A recorder over `metrics-util`'s atomic storage, as `PcpuRecorder` is over pcpu's.
struct AtomicRecorder {
    registry: Registry<Key, AtomicStorage>,
}

impl Recorder for AtomicRecorder {
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

/// A recorder under test, and how to read its counter back.
trait BenchRecorder: Recorder + Sync {
    fn make() -> Self;
    fn total(&self) -> u64;
}

impl BenchRecorder for PcpuRecorder {
    fn make() -> Self {
        PcpuRecorder::new()
    }
    fn total(&self) -> u64 {
        self.counter(COUNTER).unwrap_or(0) as u64
    }
}

impl BenchRecorder for AtomicRecorder {
    fn make() -> Self {
        AtomicRecorder {
            registry: Registry::atomic(),
        }
    }
    fn total(&self) -> u64 {
        self.registry
            .get_counter(&Key::from_static_name(COUNTER))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// `iters` increments, each through `counter!` (registry lookup included). Never inlined, so
/// that the loop is easy to find in a disassembly.
#[inline(never)]
fn macro_loop(iters: u64) {
    for _ in 0..iters {
        metrics::counter!(COUNTER).increment(1);
    }
}

/// `iters` increments through a handle the compiler must reload every time.
#[inline(never)]
fn handle_loop(c: &Counter, iters: u64) {
    for _ in 0..iters {
        black_box(c).increment(1);
    }
}

/// JSON key: ns per increment per thread at `n` threads.
pub fn ns_key(n: usize) -> &'static str {
    thread_key("metrics", n, "ns")
}

/// JSON key: the cores `n` threads got.
fn overlap_key(n: usize) -> &'static str {
    thread_key("metrics", n, "overlap")
}

/// The table's columns: ns per increment at each thread count, then the cores the threads of
/// the largest count got.
fn columns(threads: &[usize]) -> Vec<Column> {
    let legend = |n| {
        if n == 1 {
            "ns of thread CPU time per increment, 1 thread (best repetition; JSON has every one)"
        } else {
            leak(format!(
                "the same per thread, {n} threads on the one counter"
            ))
        }
    };
    let mut cols = thread_columns(NAME, ("metrics", "ns", "ns"), threads, legend, 2);
    cols.extend(overlap_column(NAME, "metrics", threads, "as in hot-add"));
    cols
}

/// Measures one row: recorder `R`, through the macro at every increment or through a handle.
fn row<R: BenchRecorder>(ctx: &Ctx, report: &mut Report, name: &'static str, handle: bool) {
    let iters: u64 = if handle {
        ctx.pick(5_000_000, 500_000)
    } else {
        ctx.pick(1_000_000, 100_000)
    };
    let reps = ctx.pick(3, 2);
    progress(
        NAME,
        name,
        &format!("{iters} increments per thread, best of {reps}"),
    );
    let rec = R::make();
    let mut expected = 0u64;
    for &threads in &ctx.threads {
        let (mut samples, mut overlap) = (Vec::new(), 0.0);
        for _ in 0..reps {
            let wall = Instant::now();
            let cpu = run_threads(threads, |_| {
                metrics::with_local_recorder(&rec, || {
                    let c = metrics::counter!(COUNTER);
                    let start = thread_cpu_ns();
                    if handle {
                        handle_loop(&c, iters);
                    } else {
                        macro_loop(iters);
                    }
                    thread_cpu_ns() - start
                })
            });
            let wall = wall.elapsed().as_nanos() as f64;
            expected += threads as u64 * iters;
            let ns = cpu.iter().sum::<f64>() / threads as f64 / iters as f64;
            if samples.iter().all(|&s| ns < s) {
                overlap = cpu.iter().sum::<f64>() / wall;
            }
            samples.push(ns);
        }
        let key = ns_key(threads);
        let best = samples.iter().copied().fold(f64::INFINITY, f64::min);
        report.num(name, key, best);
        record_reps(report, name, key, &samples);
        if threads > 1 {
            report.num(name, overlap_key(threads), overlap);
        }
    }
    assert_eq!(rec.total(), expected, "{name}: increments were lost");
}

/// Runs the scenario: the four rows.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&columns(&ctx.threads));
    report.note(format!(
        "{NAME}: `counter! each` = `metrics::counter!(\"{COUNTER}\").increment(1)` per \
         increment (a registry lookup each time); `handle` = the `Counter` from one `counter!`, \
         incremented through `black_box(&handle)`; thread CPU time as in hot-add"
    ));
    row::<PcpuRecorder>(ctx, report, PCPU_MACRO, false);
    row::<AtomicRecorder>(ctx, report, ATOMIC_MACRO, false);
    row::<PcpuRecorder>(ctx, report, PCPU_HANDLE, true);
    row::<AtomicRecorder>(ctx, report, ATOMIC_HANDLE, true);
}
