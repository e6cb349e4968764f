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
use std::sync::Arc;
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

/// One peer, its type erased so that the repetitions of every peer can interleave.
struct Entry {
    name: &'static str,
    /// Runs `threads` threads of `iters` adds each on the peer's counter: each thread's CPU
    /// time, in ns.
    run: Box<dyn Fn(usize, u64) -> Vec<f64>>,
    /// The counter's exact sum.
    sum: Box<dyn Fn() -> i64>,
}

/// Collects every peer's [`Entry`], each with a counter of its own.
struct Collect(Vec<Entry>);

impl Visitor for Collect {
    fn visit<C: BenchCounter>(&mut self) {
        // On the heap, on 128 bytes of its own, for every peer alike: where a counter inside an
        // application's struct would be, and sharing no cache line with anything else.
        let c = Arc::new(CachePadded::new(C::new(0)));
        let adder = Arc::clone(&c);
        self.0.push(Entry {
            name: C::name(),
            run: Box::new(move |threads, iters| {
                let c: &C = &adder;
                run_threads(threads, |_| {
                    let start = thread_cpu_ns();
                    add_loop(c, iters);
                    thread_cpu_ns() - start
                })
            }),
            sum: Box::new(move || c.sum()),
        });
    }
}

/// What one peer measured at one thread count, over the repetitions.
#[derive(Default)]
struct Measured {
    samples: Vec<f64>,
    best_wall: f64,
    overlap: f64,
}

/// Measures every peer at every thread count. The repetitions interleave (every peer's first,
/// then every peer's second, ...), so that the machine's drift between seconds (a neighbour on
/// the host, a core's clock) falls on all peers alike instead of on whichever ran last: the
/// ratios of rows 5 and 6 compare peers measured within the same second.
fn measure(ctx: &Ctx, report: &mut Report, entries: &[Entry]) {
    let iters: u64 = ctx.pick(5_000_000, 500_000);
    let reps = ctx.pick(5, 2);
    let mut expected = vec![0i64; entries.len()];
    for &threads in &ctx.threads {
        let mut measured: Vec<Measured> = entries
            .iter()
            .map(|_| Measured {
                best_wall: f64::INFINITY,
                ..Measured::default()
            })
            .collect();
        for rep in 0..reps {
            for (k, e) in entries.iter().enumerate() {
                if rep == 0 && threads == ctx.threads[0] {
                    let what = format!("{iters} adds per thread, best of {reps}, interleaved");
                    progress(NAME, e.name, &what);
                }
                let m = &mut measured[k];
                let wall = Instant::now();
                let cpu = (e.run)(threads, iters);
                let wall = wall.elapsed().as_nanos() as f64;
                expected[k] += (threads as u64 * iters) as i64;
                let ns = cpu.iter().sum::<f64>() / threads as f64 / iters as f64;
                if m.samples.iter().all(|&s| ns < s) {
                    // How much the threads really ran at the same time (n.0 = all along).
                    m.overlap = cpu.iter().sum::<f64>() / wall;
                }
                m.samples.push(ns);
                m.best_wall = m.best_wall.min(wall / iters as f64);
            }
        }
        let key = ns_key(threads);
        for (e, m) in entries.iter().zip(&measured) {
            let best = m.samples.iter().copied().fold(f64::INFINITY, f64::min);
            report.num(e.name, key, best);
            record_reps(report, e.name, key, &m.samples);
            report.num(e.name, format!("hot_add_{threads}t_wall_ns"), m.best_wall);
            if threads > 1 {
                report.num(e.name, overlap_key(threads), m.overlap);
            }
        }
    }
    for (e, want) in entries.iter().zip(expected) {
        assert_eq!((e.sum)(), want, "{}: adds were lost", e.name);
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
    let mut peers = Collect(Vec::new());
    for_each(&mut peers);
    measure(ctx, report, &peers.0);
}
