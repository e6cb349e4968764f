//! Scenario `hot-add`: one counter, added to by 1 and by 2 threads; ns per add per thread.
//!
//! Every add reaches the counter through a reference the compiler must reload
//! (`black_box(&counter).add(1)`, the add inlined), as in application code where the counter
//! sits behind a struct pointer: a loop that keeps the handle in a register would hide an
//! indirection (a header pointer, an `Arc`) that real code pays.

use super::{mark_missing, progress, record_reps, run_threads, thread_cpu_ns, Ctx};
use crate::peers::{for_each, BenchCounter, Visitor};
use crate::table::{Column, Report};
use crossbeam_utils::CachePadded;
use std::hint::black_box;
use std::time::Instant;

/// The scenario's name.
pub const NAME: &str = "hot-add";

const COLS: [Column; 3] = [
    Column {
        scenario: NAME,
        key: "hot_add_1t_ns",
        header: "add 1t ns",
        legend: "ns of thread CPU time per add, 1 thread on one counter (best repetition; JSON \
                 has every one); each add is `black_box(&counter).add(1)`",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "hot_add_2t_ns",
        header: "add 2t ns",
        legend: "ns of thread CPU time per add per thread, 2 threads on the same counter",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "hot_add_2t_overlap",
        header: "ovl",
        legend: "cores the 2 threads got (their CPU time / wall time): 2.0 = one each all \
                 along; below 1 = other load time-sliced them (little contention then)",
        decimals: 2,
    },
];

struct V<'a> {
    ctx: &'a Ctx,
    report: &'a mut Report,
}

/// `iters` adds of 1 to `c`, each through a reference the compiler cannot keep in a register
/// (`black_box(&c)`): it reloads the counter's address, and whatever the peer reaches through
/// it, every add. Never inlined, so that the loop is easy to find in a disassembly
/// (`pcpu_bench::scenarios::hot_add::add_loop`); the add itself is inlined into it.
#[inline(never)]
fn add_loop<C: BenchCounter>(c: &C, iters: u64) {
    for _ in 0..iters {
        black_box(c).add(1);
    }
}

impl Visitor for V<'_> {
    fn visit<C: BenchCounter>(&mut self) {
        let iters: u64 = self.ctx.pick(5_000_000, 500_000);
        let reps = self.ctx.pick(5, 2);
        progress(
            NAME,
            C::name(),
            &format!("{iters} adds per thread, best of {reps}"),
        );
        // On the heap, on 128 bytes of its own, for every peer alike: where a counter inside an
        // application's struct would be, and sharing no cache line with anything else.
        let c = Box::new(CachePadded::new(C::new(0)));
        let c: &C = &c;
        let mut expected = 0i64;
        for (col, threads) in COLS[..2].iter().zip([1usize, 2]) {
            let (mut samples, mut best_wall, mut overlap) = (Vec::new(), f64::INFINITY, 0.0);
            for _ in 0..reps {
                let wall = Instant::now();
                let cpu = run_threads(threads, |_| {
                    let start = thread_cpu_ns();
                    add_loop(c, iters);
                    thread_cpu_ns() - start
                });
                let wall = wall.elapsed().as_nanos() as f64;
                expected += (threads as u64 * iters) as i64;
                let ns = cpu.iter().sum::<f64>() / threads as f64 / iters as f64;
                if samples.iter().all(|&s| ns < s) {
                    // How much the threads really ran at the same time (2.0 = all along).
                    overlap = cpu.iter().sum::<f64>() / wall;
                }
                samples.push(ns);
                best_wall = best_wall.min(wall / iters as f64);
            }
            let best = samples.iter().copied().fold(f64::INFINITY, f64::min);
            self.report.num(C::name(), col.key, best);
            record_reps(self.report, C::name(), col.key, &samples);
            let wall_key = ["hot_add_1t_wall_ns", "hot_add_2t_wall_ns"][threads - 1];
            self.report.num(C::name(), wall_key, best_wall);
            if threads == 2 {
                self.report.num(C::name(), COLS[2].key, overlap);
            }
        }
        assert_eq!(c.sum(), expected, "{}: adds were lost", C::name());
    }

    fn missing(&mut self, name: &'static str, why: &'static str) {
        mark_missing(self.report, &COLS, name, why);
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&COLS);
    report.note(format!(
        "{NAME}: thread CPU time, not wall time, because the 2 cores are shared (load average \
         {} at the start); JSON has wall time and the 2-thread overlap",
        super::loadavg()
    ));
    for_each(&mut V { ctx, report });
}
