//! Scenario `churn`, the seed's workload (execve): each operation creates 4 counters (an
//! mm's RSS counters), adds to each, reads their sums, and destroys them. 1 and 2 threads run
//! operations for a fixed time; throughput and the 2-thread/1-thread ratio.

use super::{mark_missing, progress, run_threads, thread_cpu_ns, Ctx};
use crate::peers::{for_each, BenchCounter, Visitor};
use crate::table::{Column, Report};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The scenario's name.
pub const NAME: &str = "churn";

/// Adds to each counter per operation.
const ADDS: usize = 8;

const COLS: [Column; 4] = [
    Column {
        scenario: NAME,
        key: "churn_1t_kops",
        header: "churn 1t",
        legend: "thousand ops/s (wall time, best of 2), 1 thread; op = 4 x (create, 8 adds, sum, destroy)",
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

impl Visitor for V<'_> {
    fn visit<C: BenchCounter>(&mut self) {
        let dur = Duration::from_millis(self.ctx.pick(400, 100));
        progress(
            NAME,
            C::name(),
            &format!("{} ms per thread count", dur.as_millis()),
        );
        throughput::<C>(2, dur / 4); // warm the allocator caches
        let reps = self.ctx.pick(2, 1);
        let best = |threads| {
            (0..reps)
                .map(|_| throughput::<C>(threads, dur))
                .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
        };
        let (one, _) = best(1);
        let (two, overlap) = best(2);
        self.report.num(C::name(), COLS[0].key, one / 1e3);
        self.report.num(C::name(), COLS[1].key, two / 1e3);
        self.report.num(C::name(), COLS[2].key, two / one);
        self.report.num(C::name(), COLS[3].key, overlap);
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
