//! Scenario `churn`, the seed's workload (execve): each operation creates 4 counters (an
//! mm's RSS counters), adds to each, reads their sums, and destroys them. 1 and 2 threads run
//! operations for a fixed time; throughput and the 2-thread/1-thread ratio.

use super::{mark_missing, progress, record_reps, run_threads, thread_cpu_ns, Ctx};
use crate::peers::{for_each, BenchCounter, Visitor, PCPU_PERCPU_NAME};
use crate::table::{Column, Report, Value};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The scenario's name.
pub const NAME: &str = "churn";

/// Adds to each counter per operation.
const ADDS: usize = 8;

/// JSON key: the 2t/1t ratio of each of the repeated measurements of the per-CPU pcpu row.
pub const PERCPU_RUNS_KEY: &str = "churn_2t_over_1t_runs";

/// JSON key: the cores the 2 threads got in the best 2-thread repetition of each of those
/// measurements (see the `ovl` column).
pub const PERCPU_OVERLAP_RUNS_KEY: &str = "churn_2t_overlap_runs";

/// How many times the whole measurement (1 and 2 threads, best of 3 each) runs for the pcpu
/// row with `CounterMode::PerCpu`, whose 2t/1t ratio moved between 0.53 and 1.92 across runs
/// (issue 12 asks for ≥ 1.8 in each of 5).
const PERCPU_RUNS: u64 = 5;

const COLS: [Column; 4] = [
    Column {
        scenario: NAME,
        key: "churn_1t_kops",
        header: "churn 1t",
        legend: "thousand ops/s (wall time, best of 3), 1 thread; op = 4 x (create, 8 adds, sum, destroy)",
        decimals: 0,
    },
    Column {
        scenario: NAME,
        key: "churn_2t_kops",
        header: "churn 2t",
        legend: "thousand operations/s, 2 threads together",
        decimals: 0,
    },
    Column {
        scenario: NAME,
        key: "churn_2t_over_1t",
        header: "2t/1t",
        legend: "churn 2t / churn 1t (2.0 = perfect scaling on 2 cores)",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "churn_2t_overlap",
        header: "ovl",
        legend: "churn 2t: cores the threads got (CPU time / wall time; 2.0 = both cores \
                 all along; less = other load, or threads asleep on a lock)",
        decimals: 2,
    },
];

/// One exec: 4 counters created, used, summed and destroyed.
#[inline]
fn op<C: BenchCounter>() -> i64 {
    let cs = [C::new(0), C::new(0), C::new(0), C::new(0)];
    for c in &cs {
        for _ in 0..ADDS {
            c.add(black_box(1));
        }
    }
    cs.iter().map(|c| c.sum()).sum()
}

/// Operations per second of `threads` threads running `op` for `dur`, and their overlap
/// (CPU time of all threads / wall time).
fn throughput<C: BenchCounter>(threads: usize, dur: Duration) -> (f64, f64) {
    let wall = Instant::now();
    let counts = run_threads(threads, |_| {
        let cpu = thread_cpu_ns();
        let start = Instant::now();
        let mut n = 0u64;
        loop {
            for _ in 0..32 {
                assert_eq!(black_box(op::<C>()), (4 * ADDS) as i64);
            }
            n += 32;
            let t = start.elapsed();
            if t >= dur {
                return (n as f64 / t.as_secs_f64(), thread_cpu_ns() - cpu);
            }
        }
    });
    let wall = wall.elapsed().as_nanos() as f64;
    let ops = counts.iter().map(|c| c.0).sum();
    let overlap = counts.iter().map(|c| c.1).sum::<f64>() / wall;
    (ops, overlap)
}

struct V<'a> {
    ctx: &'a Ctx,
    report: &'a mut Report,
}

/// One measurement: warm-up, then the best of `reps` at 1 thread and at 2 threads. Returns
/// `(1t ops/s of each rep, 2t ops/s of each rep, overlap of each 2t rep)`.
fn measure<C: BenchCounter>(dur: Duration, reps: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    throughput::<C>(2, dur / 4); // warm the allocator caches
    let one: Vec<f64> = (0..reps).map(|_| throughput::<C>(1, dur).0).collect();
    let (two, overlaps) = (0..reps).map(|_| throughput::<C>(2, dur)).unzip();
    (one, two, overlaps)
}

/// The best of `samples` (ops/s: the largest).
fn best(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(0.0, f64::max)
}

impl Visitor for V<'_> {
    fn visit<C: BenchCounter>(&mut self) {
        let dur = Duration::from_millis(self.ctx.pick(400, 100));
        let reps = self.ctx.pick(3, 1);
        let runs = if C::name() == PCPU_PERCPU_NAME {
            self.ctx.pick(PERCPU_RUNS, 2)
        } else {
            1
        };
        progress(
            NAME,
            C::name(),
            &format!(
                "{} ms per thread count, best of {reps}{}",
                dur.as_millis(),
                if runs > 1 {
                    format!(", the whole measurement {runs} times")
                } else {
                    String::new()
                }
            ),
        );
        let (mut ratios, mut overlaps) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let (one, two, overlaps_2t) = measure::<C>(dur, reps);
            // The overlap of the best 2-thread repetition, the one the table shows.
            let overlap = two
                .iter()
                .zip(&overlaps_2t)
                .fold((0.0, 0.0), |a, (&t, &o)| if t > a.0 { (t, o) } else { a })
                .1;
            let ratio = best(&two) / best(&one);
            ratios.push(ratio);
            overlaps.push(overlap);
            if run == 0 {
                // The table shows the first measurement, made as for every other peer.
                self.report.num(C::name(), COLS[0].key, best(&one) / 1e3);
                self.report.num(C::name(), COLS[1].key, best(&two) / 1e3);
                self.report.num(C::name(), COLS[2].key, ratio);
                self.report.num(C::name(), COLS[3].key, overlap);
                let kops = |v: &[f64]| v.iter().map(|x| x / 1e3).collect::<Vec<_>>();
                record_reps(self.report, C::name(), COLS[0].key, &kops(&one));
                record_reps(self.report, C::name(), COLS[1].key, &kops(&two));
                record_reps(self.report, C::name(), COLS[3].key, &overlaps_2t);
            }
        }
        if runs > 1 {
            self.report
                .set(C::name(), PERCPU_RUNS_KEY, Value::List(ratios));
            self.report
                .set(C::name(), PERCPU_OVERLAP_RUNS_KEY, Value::List(overlaps));
        }
    }

    fn missing(&mut self, name: &'static str, why: &'static str) {
        mark_missing(self.report, &COLS, name, why);
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&COLS);
    report.note(format!(
        "{NAME}: wall time (locks that sleep must count); load average {} at the start",
        super::loadavg()
    ));
    for_each(&mut V { ctx, report });
}
