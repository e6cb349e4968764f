//! Scenario `read`: the cost of `read` (approximate), `sum` (exact) and `compare` on a counter
//! that 2 threads pinned to CPUs 0 and 1 have added to (so that cells of 2 CPUs are written),
//! measured on 1 thread with no adds running; best of 5 repetitions (the JSON has each).

use super::{pin_to_cpu, progress, record_reps, run_threads, thread_cpu_ns, Ctx};
use crate::peers::{for_each, BenchCounter, Visitor};
use crate::table::{Column, Report};
use std::hint::black_box;

/// The scenario's name.
pub const NAME: &str = "read";

const COLS: [Column; 4] = [
    Column {
        scenario: NAME,
        key: "read_ns",
        header: "read ns",
        legend: "ns per read() (approximate value where the peer has one); best of 5 reps",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "sum_ns",
        header: "sum ns",
        legend: "ns per sum() (exact value)",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "compare_near_ns",
        header: "cmp= ns",
        legend: "ns per compare(rhs) with rhs = the value (needs the exact sum)",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "compare_far_ns",
        header: "cmp>> ns",
        legend: "ns per compare(rhs) with rhs far from the value (approximate may do)",
        decimals: 2,
    },
];

/// ns of thread CPU time per call of `f`, over `iters` calls.
fn time(iters: u64, mut f: impl FnMut() -> i64) -> f64 {
    let start = thread_cpu_ns();
    for _ in 0..iters {
        black_box(f());
    }
    (thread_cpu_ns() - start) / iters as f64
}

struct V<'a> {
    ctx: &'a Ctx,
    report: &'a mut Report,
}

impl Visitor for V<'_> {
    fn visit<C: BenchCounter>(&mut self) {
        let iters: u64 = self.ctx.pick(400_000, 100_000);
        let reps = self.ctx.pick(5, 2);
        progress(
            NAME,
            C::name(),
            &format!("{iters} calls each, best of {reps}"),
        );
        let c = C::new(1000);
        run_threads(2, |i| {
            pin_to_cpu(i);
            for _ in 0..10_000 {
                c.add(1);
            }
        });
        let value = c.sum();
        assert_eq!(value, 21_000, "{}: wrong sum", C::name());
        let name = C::name();
        let far = value + 1_000_000_000;
        let mut samples = [(); 4].map(|_| Vec::new());
        for _ in 0..reps {
            samples[0].push(time(iters, || black_box(&c).read()));
            samples[1].push(time(iters, || black_box(&c).sum()));
            samples[2].push(time(iters, || {
                black_box(&c).compare(black_box(value)) as i64
            }));
            samples[3].push(time(iters, || black_box(&c).compare(black_box(far)) as i64));
        }
        for (col, ns) in COLS.iter().zip(&samples) {
            self.report.num(
                name,
                col.key,
                ns.iter().copied().fold(f64::INFINITY, f64::min),
            );
            record_reps(self.report, name, col.key, ns);
        }
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&COLS);
    for_each(&mut V { ctx, report });
}
