//! Scenario `hot-add`: one counter, added to by each of the `--threads` counts of threads in
//! turn; ns per add per thread.
//!
//! Every add reaches the counter through a reference the compiler must reload
//! (`black_box(&counter).add(1)`, the add inlined), as in application code where the counter
//! sits behind a struct pointer: a loop that keeps the handle in a register would hide an
//! indirection (a header pointer, an `Arc`) that real code pays.

use super::{
    overlap_column, progress, record_reps, run_threads, thread_columns, thread_cpu_ns, thread_key,
    Ctx,
};
use crate::peers::{for_each, BenchCounter, Visitor};
use crate::table::{leak, Column, Report};
use crossbeam_utils::CachePadded;
use std::hint::black_box;
use std::time::Instant;

/// The scenario's name.
pub const NAME: &str = "hot-add";

/// The table's columns for thread counts `threads`: ns per add at each, then the cores the
/// threads of the largest count got (the other counts' are in the JSON).
fn columns(threads: &[usize]) -> Vec<Column> {
    let legend = |n| {
        if n == 1 {
            "ns of thread CPU time per add, 1 thread on one counter (best repetition; JSON has \
             every one); each add is `black_box(&counter).add(1)`"
        } else {
            leak(format!(
                "ns of thread CPU time per add per thread, {n} threads on the same counter"
            ))
        }
    };
    let mut cols = thread_columns(NAME, ("hot_add", "ns", "ns"), threads, legend, 2);
    cols.extend(overlap_column(
        NAME,
        "hot_add",
        threads,
        "near 1 = other load time-sliced them (little contention then)",
    ));
    cols
}

/// The JSON key of the ns per add at `n` threads (`hot_add_1t_ns`, `hot_add_2t_ns`, ...).
pub fn ns_key(n: usize) -> &'static str {
    thread_key("hot_add", n, "ns")
}

/// The JSON key of the cores `n` threads got.
fn overlap_key(n: usize) -> &'static str {
    thread_key("hot_add", n, "overlap")
}

/// Guessed seconds per peer (see [`super::Scenario::guess_secs`]).
pub fn guess_secs(ctx: &Ctx) -> f64 {
    let (iters, reps) = (ctx.pick(5e6, 5e5), ctx.pick(5.0, 2.0));
    // About 3 ns per add, all threads' adds sharing the machine's cores.
    let cores = crate::peers::ncpu() as f64;
    ctx.threads
        .iter()
        .map(|&n| reps * iters * 3e-9 * (n as f64 / cores).max(1.0))
        .sum()
}

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
        for &threads in &self.ctx.threads {
            let key = ns_key(threads);
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
                    // How much the threads really ran at the same time (n.0 = all along).
                    overlap = cpu.iter().sum::<f64>() / wall;
                }
                samples.push(ns);
                best_wall = best_wall.min(wall / iters as f64);
            }
            let best = samples.iter().copied().fold(f64::INFINITY, f64::min);
            self.report.num(C::name(), key, best);
            record_reps(self.report, C::name(), key, &samples);
            let wall_key = format!("hot_add_{threads}t_wall_ns");
            self.report.num(C::name(), wall_key, best_wall);
            if threads > 1 {
                self.report.num(C::name(), overlap_key(threads), overlap);
            }
        }
        assert_eq!(c.sum(), expected, "{}: adds were lost", C::name());
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&columns(&ctx.threads));
    report.note(format!(
        "{NAME}: thread CPU time, not wall time, because the cores may be shared (load average \
         {} at the start); JSON has wall time and the 2-thread overlap",
        super::loadavg()
    ));
    for_each(&mut V { ctx, report });
}
