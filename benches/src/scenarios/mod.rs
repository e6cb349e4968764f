//! The scenarios. Each one runs every peer (see [`crate::peers::for_each`]) and fills its
//! columns of the [`Report`].

pub mod churn;
pub mod hot_add;
pub mod lanes;
pub mod memory;
pub mod metrics;
pub mod read;
pub mod waste;

use crate::peers::BenchCounter;
use crate::table::{leak, Column, Report, Value};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

/// Settings shared by all scenarios.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--quick`: smaller sizes, one repetition.
    pub quick: bool,
    /// `--threads`: the thread counts of the thread-scaled scenarios, ascending.
    pub threads: Vec<usize>,
}

impl Ctx {
    /// `full` normally, `quick` under `--quick`.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// How many counters a memory scenario creates for a peer whose counters take about
    /// `hint` bytes: `wanted`, capped so that they fit in a fixed budget.
    pub fn counters(&self, wanted: usize, hint: usize) -> usize {
        let budget = self.pick(768usize << 20, 64 << 20);
        wanted.min(budget / hint.max(1)).max(1000)
    }
}

/// A scenario: its name on the command line, what it measures, and how to run it.
pub struct Scenario {
    /// `--scenario NAME`.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// Runs it for every peer.
    pub run: fn(&Ctx, &mut Report),
    /// How many rows it measures (one [`progress`] call each).
    pub rows: fn() -> usize,
    /// A rough guess of the seconds one row takes, for the estimate of the time left (which
    /// corrects it by the time the rows done so far really took).
    pub guess_secs: fn(&Ctx) -> f64,
}

/// The number of peers ([`crate::peers::for_each`] visits them all).
pub fn peer_rows() -> usize {
    struct Count(usize);
    impl crate::peers::Visitor for Count {
        fn visit<C: BenchCounter>(&mut self) {
            self.0 += 1;
        }
    }
    let mut c = Count(0);
    crate::peers::for_each(&mut c);
    c.0
}

/// All scenarios, in run order.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: hot_add::NAME,
        about: "adds to one counter from each --threads count (ns/op per thread)",
        run: hot_add::run,
        rows: peer_rows,
        guess_secs: hot_add::guess_secs,
    },
    Scenario {
        name: churn::NAME,
        about: "exec churn: create 4 counters, add, sum, destroy; each --threads count",
        run: churn::run,
        rows: peer_rows,
        guess_secs: churn::guess_secs,
    },
    Scenario {
        name: memory::NAME,
        about: "resident bytes per live counter (up to 1,000,000), built for this machine and for 256 CPUs",
        run: memory::run,
        rows: memory::rows,
        guess_secs: |c| c.pick(1.5, 0.3),
    },
    Scenario {
        name: waste::NAME,
        about: "create 1,000,000 counters, free 90% at random, compact; resident vs ideal",
        run: waste::run,
        rows: peer_rows,
        guess_secs: |c| c.pick(2.0, 0.4),
    },
    Scenario {
        name: read::NAME,
        about: "cost of read, sum and compare on a quiescent counter",
        run: read::run,
        rows: peer_rows,
        guess_secs: |c| c.pick(0.3, 0.05),
    },
    Scenario {
        name: lanes::NAME,
        about: "bytes per counter and sum() on a 256-CPU domain: lanes by mm_cid vs CPU id (children)",
        run: lanes::run,
        rows: lanes::rows,
        guess_secs: |c| c.pick(4.0, 0.6),
    },
    Scenario {
        name: metrics::NAME,
        about: "metrics::counter! increments from 1..N threads: pcpu's recorder vs metrics-util's atomic storage",
        run: metrics::run,
        rows: metrics::rows,
        guess_secs: metrics::guess_secs,
    },
];

/// The key of a figure measured at `n` threads: `<prefix>_<n>t_<suffix>` (`hot_add_2t_ns`).
pub fn thread_key(prefix: &str, n: usize, suffix: &str) -> &'static str {
    leak(format!("{prefix}_{n}t_{suffix}"))
}

/// The columns of a thread-scaled scenario, one per thread count: key
/// `<prefix>_<n>t_<suffix>`, header `<n>t <unit>`, legend `legend(n)`.
pub fn thread_columns(
    scenario: &'static str,
    (prefix, suffix, unit): (&str, &str, &str),
    threads: &[usize],
    legend: impl Fn(usize) -> &'static str,
    decimals: usize,
) -> Vec<Column> {
    threads
        .iter()
        .map(|&n| Column {
            scenario,
            key: thread_key(prefix, n, suffix),
            header: leak(format!("{n}t {unit}")),
            legend: legend(n),
            decimals,
        })
        .collect()
}

/// The column of the cores the threads of the largest count above 1 got (`<prefix>_<n>t_overlap`,
/// header `ovl`), if there is such a count; `what` ends its legend.
pub fn overlap_column(
    scenario: &'static str,
    prefix: &str,
    threads: &[usize],
    what: &str,
) -> Option<Column> {
    let n = threads.iter().copied().filter(|&n| n > 1).max()?;
    Some(Column {
        scenario,
        key: thread_key(prefix, n, "overlap"),
        header: if n == 2 {
            "ovl"
        } else {
            leak(format!("ovl {n}t"))
        },
        legend: leak(format!(
            "cores the {n} threads got (their CPU time / wall time): {n}.0 = one each all \
             along; {what}"
        )),
        decimals: 2,
    })
}

/// The run's plan, for the progress lines' estimate of the time left.
struct Plan {
    /// When the run started.
    start: Instant,
    /// `(scenario, rows, guessed seconds per row)`, in run order.
    scenarios: Vec<(&'static str, usize, f64)>,
    /// Rows started so far, per scenario (same order).
    started: Vec<usize>,
}

static PLAN: Mutex<Option<Plan>> = Mutex::new(None);

/// Sets up the estimate of the time left for `selected` scenarios.
pub fn plan(ctx: &Ctx, selected: &[&Scenario]) {
    let scenarios: Vec<_> = selected
        .iter()
        .map(|s| (s.name, (s.rows)(), (s.guess_secs)(ctx)))
        .collect();
    let started = vec![0; scenarios.len()];
    *PLAN.lock().unwrap_or_else(|e| e.into_inner()) = Some(Plan {
        start: Instant::now(),
        scenarios,
        started,
    });
}

/// `secs` as `1m05s` or `42s`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A progress line on stderr, when a row of `scenario` starts: where the run is, and the time
/// left, estimated from the guesses scaled by how long the rows done so far really took.
pub fn progress(scenario: &str, peer: &str, what: &str) {
    let mut plan = PLAN.lock().unwrap_or_else(|e| e.into_inner());
    let eta = plan.as_mut().and_then(|p| {
        let i = p.scenarios.iter().position(|s| s.0 == scenario)?;
        let guessed_done: f64 = (0..p.scenarios.len())
            .map(|j| p.started[j].min(p.scenarios[j].1) as f64 * p.scenarios[j].2)
            .sum();
        p.started[i] += 1;
        let guessed_total: f64 = p.scenarios.iter().map(|s| s.1 as f64 * s.2).sum();
        let elapsed = p.start.elapsed().as_secs_f64();
        let scale = if guessed_done > 0.0 {
            elapsed / guessed_done
        } else {
            1.0
        };
        let left = (guessed_total - guessed_done) * scale;
        let pct = 100.0 * guessed_done / guessed_total.max(1e-9);
        Some(format!(
            "{pct:3.0}% {} elapsed, ~{} left",
            duration(elapsed),
            duration(left)
        ))
    });
    match eta {
        Some(eta) => eprintln!("[{eta}] {scenario}: {peer}: {what}"),
        None => eprintln!("[{scenario}] {peer}: {what}"),
    }
}

/// Runs `f(i)` for `i in 0..threads` on that many threads, started together; returns the
/// results in thread order.
pub fn run_threads<R: Send>(threads: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (f, barrier) = (&f, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .collect()
    })
}

/// A vector with room for `n` elements whose pages are already resident, so that filling it
/// does not count as the elements' memory.
pub fn prefaulted_vec<T>(n: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    // SAFETY: `as_mut_ptr` is valid for writes of `capacity() >= n` elements; zero bytes are
    // written to spare capacity, which is never read as `T` (the length stays 0).
    unsafe {
        v.as_mut_ptr()
            .cast::<u8>()
            .write_bytes(0, n * std::mem::size_of::<T>())
    };
    v
}

/// Creates `n` counters with `make` into a prefaulted vector, adds 1 to each from 2 threads
/// pinned to CPUs 0 and 1 (so that lazily allocated per-thread or per-CPU parts exist, for 2
/// CPUs), and returns them with the resident bytes they added, measured.
///
/// The baseline is taken after the peer's own `compact` and glibc's `malloc_trim(0)`, so that
/// memory freed by earlier scenarios (pcpu keeps freed headers and slots in its own mappings
/// until it compacts) is not silently reused. The vector is prefaulted before the baseline, so
/// the handles' storage (`size_of::<C>()` each) is *not* in the measured bytes: callers add it
/// (see [`handle_bytes`]). Elements are `Option<C>` so that a scenario can free counters in
/// place, without reallocating the vector.
pub fn populate<C: BenchCounter>(n: usize, make: impl Fn() -> C) -> (Vec<Option<C>>, f64) {
    let mut v = prefaulted_vec::<Option<C>>(n);
    C::compact();
    let before = crate::mem::baseline();
    for _ in 0..n {
        v.push(Some(make()));
    }
    run_threads(2, |i| {
        pin_to_cpu(i);
        for c in v.iter().flatten() {
            c.add(1);
        }
    });
    let after = crate::mem::resident_bytes();
    let first = v[0].as_ref().expect("just created");
    assert_eq!(first.sum(), 2, "{}: wrong sum after populate", C::name());
    (v, crate::mem::delta(before, after))
}

/// Bytes of one counter's handle, the value the user stores (`size_of::<C>()`): counted in
/// every resident-bytes-per-counter figure, for every peer alike, since [`populate`] keeps the
/// handles in a prefaulted vector outside the measured RSS.
pub fn handle_bytes<C>() -> f64 {
    std::mem::size_of::<C>() as f64
}

/// Pins this thread to CPU `i` modulo the CPUs of the machine (best effort: on failure the
/// thread stays where the scheduler puts it). Used where a scenario needs 2 *CPUs* to write.
pub fn pin_to_cpu(i: usize) {
    // A refused pin only leaves the thread where the scheduler puts it.
    let _ = pcpu_testkit::affinity::pin_to(i % crate::peers::ncpu());
}

/// Minimum, median and maximum of repeated measurements of one figure.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median (the upper one of an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `samples` (not empty).
    pub fn of(samples: &[f64]) -> Spread {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        Spread {
            min: v[0],
            median: v[v.len() / 2],
            max: v[v.len() - 1],
        }
    }
}

/// Records the repetitions of `key` for `peer` in the JSON (`<key>_reps`, in run order),
/// beside the headline figure the scenario chose.
pub fn record_reps(report: &mut Report, peer: &'static str, key: &str, samples: &[f64]) {
    report.set(peer, format!("{key}_reps"), Value::List(samples.to_vec()));
}

/// Seconds since `start`.
pub fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// CPU time this thread has used, in ns (`CLOCK_THREAD_CPUTIME_ID`): unlike wall time it does
/// not grow while the thread waits for a core that other processes hold.
pub fn thread_cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// The load average over the last minute (`/proc/loadavg`), to tell how busy the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}
