//! Scenario `lanes`: what per-CPU counters cost when lanes follow the process's concurrency
//! ids (`mm_cid`) against the CPU ids, on a simulated 256-CPU domain (`Domain::builder()
//! .ncpu(256)`) whose counters 2 threads (pinned to CPUs 0 and 1) add to: resident bytes per
//! counter and ns per `sum()`, each over repetitions (median, min and max).
//!
//! The id source is process-wide and chosen once (`PCPU_RSEQ_ID`), so the CPU-id figures come
//! from a child process: the benchmark runs itself again with `PCPU_RSEQ_ID=cpu` and the
//! hidden flag [`CHILD_FLAG`], and reads the one result line it prints. A second child runs
//! the portable backend (`PCPU_RSEQ=off`), whose counters start with every lane of the domain
//! (it files adds under `sched_getcpu` modulo the bound), so its `sum()` reads all 256 lanes:
//! what a sum costs with CPU ids on a host where the adders run on high CPUs. On a 2-CPU
//! machine both id sources put the adders on lanes 0 and 1, and the table says so (the `lanes`
//! and `top` columns) rather than simulating ids the kernel did not give.
//!
//! pcpu only, like the pcpu side of the `metrics` scenario: the peers have no id source.

use super::Spread;
use super::{pin_to_cpu, prefaulted_vec, progress, record_reps, run_threads, thread_cpu_ns, Ctx};
use crate::table::{Column, Report, Value};
use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::process::Command;

/// The scenario's name.
pub const NAME: &str = "lanes";

/// The hidden command-line flag that makes the benchmark measure this process once and print
/// [`RESULT_PREFIX`] and the result as JSON on stdout (the parent sets the environment).
pub const CHILD_FLAG: &str = "--lanes-child";

/// Prefix of the child's result line.
const RESULT_PREFIX: &str = "PCPU-BENCH-LANES ";

/// The simulated CPU count of the domain.
const NCPU: usize = 256;

/// The table's columns.
const COLS: [Column; 8] = [
    Column {
        scenario: NAME,
        key: "lanes_used",
        header: "lanes",
        legend: "distinct lanes (mm_cid or CPU ids) the 2 adding threads were on, sampled",
        decimals: 0,
    },
    Column {
        scenario: NAME,
        key: "lanes_top",
        header: "top",
        legend: "highest of those lanes + 1: the lane bound a sum walks below with rseq \
                 (the portable backend walks every lane of the domain)",
        decimals: 0,
    },
    Column {
        scenario: NAME,
        key: "lanes_bytes_per_counter",
        header: "B/ctr",
        legend: "resident bytes per live counter (RSS delta / counters + the 16 B handle), \
                 counters built for 256 CPUs; median of the reps",
        decimals: 1,
    },
    Column {
        scenario: NAME,
        key: "lanes_bytes_min",
        header: "B min",
        legend: "smallest B/ctr of the reps",
        decimals: 1,
    },
    Column {
        scenario: NAME,
        key: "lanes_bytes_max",
        header: "B max",
        legend: "largest B/ctr of the reps",
        decimals: 1,
    },
    Column {
        scenario: NAME,
        key: "lanes_sum_ns",
        header: "sum ns",
        legend: "ns per sum() of one such counter (thread CPU time); median of the reps",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "lanes_sum_ns_min",
        header: "ns min",
        legend: "fastest rep",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "lanes_sum_ns_max",
        header: "ns max",
        legend: "slowest rep",
        decimals: 2,
    },
];

/// The rows: this process (lanes by whatever id source it has), then the two children.
pub fn rows() -> usize {
    3
}

/// One process's measurement.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    /// `pcpu_rseq::mode()` and `id_source()`, as `Debug`.
    mode: String,
    ids: String,
    /// The distinct lanes the adders were on (sampled before and after their adds), sorted.
    lanes: Vec<usize>,
    /// Bytes per counter, one per rep.
    bytes: Vec<f64>,
    /// ns per `sum()`, one per rep.
    sum_ns: Vec<f64>,
}

/// Sizes: (counters, sums timed per rep, reps).
fn sizes(quick: bool) -> (usize, u64, usize) {
    if quick {
        (20_000, 20_000, 3)
    } else {
        (200_000, 200_000, 7)
    }
}

/// Measures this process: `reps` times, `n` per-CPU counters in a 256-CPU domain, 1 added to
/// each from 2 threads on CPUs 0 and 1 (through a shared reference, as users call), the
/// resident bytes they took, and the cost of `sum()` on one of them.
fn measure(quick: bool) -> Measured {
    let (n, iters, reps) = sizes(quick);
    let domain = Domain::builder()
        .ncpu(NCPU)
        .mode(CounterMode::PerCpu)
        .build()
        .expect("pcpu: cannot build the 256-CPU domain");
    let mut lanes = Vec::new();
    let (mut bytes, mut sum_ns) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        // Give back what the previous rep freed, so that it is not reused unmeasured.
        domain.compact().expect("pcpu: compact");
        let mut v = prefaulted_vec::<PercpuCounter>(n);
        let before = crate::mem::baseline();
        for _ in 0..n {
            v.push(PercpuCounter::new_in(domain, 0).expect("pcpu: out of memory"));
        }
        let seen = run_threads(2, |i| {
            pin_to_cpu(i);
            let first = pcpu_rseq::current_cpu();
            for c in &v {
                black_box(c).add(1);
            }
            [first, pcpu_rseq::current_cpu()]
        });
        let after = crate::mem::resident_bytes();
        lanes.extend(seen.into_iter().flatten());
        assert_eq!(v[n - 1].sum(), 2, "lanes: wrong sum");
        bytes.push(
            crate::mem::delta(before, after) / n as f64
                + std::mem::size_of::<PercpuCounter>() as f64,
        );
        let c = &v[n / 2];
        let start = thread_cpu_ns();
        for _ in 0..iters {
            black_box(black_box(c).sum());
        }
        sum_ns.push((thread_cpu_ns() - start) / iters as f64);
        drop(v);
    }
    domain.compact().expect("pcpu: compact");
    lanes.sort_unstable();
    lanes.dedup();
    Measured {
        mode: format!("{:?}", pcpu_rseq::mode()),
        ids: format!("{:?}", pcpu_rseq::id_source()),
        lanes,
        bytes,
        sum_ns,
    }
}

/// The child's side ([`CHILD_FLAG`]): measures this process, prints the result line, exits.
pub fn child_main(quick: bool) -> ! {
    let m = measure(quick);
    let line = serde_json::to_string(&m).expect("lanes: cannot encode the result");
    println!("{RESULT_PREFIX}{line}");
    std::process::exit(0);
}

/// Runs the benchmark again as a child with `env` set, measuring one process.
fn in_child(quick: bool, env: &[(&str, &str)]) -> Result<Measured, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg(CHILD_FLAG);
    if quick {
        cmd.arg("--quick");
    }
    // The child chooses its own backend and id source from these alone.
    cmd.env_remove(pcpu_rseq::ENV_VAR)
        .env_remove(pcpu_rseq::ID_ENV_VAR);
    cmd.envs(env.iter().copied());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run the child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .ok_or("the child printed no result line")?;
    serde_json::from_str(line).map_err(|e| format!("the child's result: {e}"))
}

/// Records one process's figures as the row `peer`.
fn record(report: &mut Report, peer: &'static str, m: &Measured) {
    report.num(peer, COLS[0].key, m.lanes.len() as f64);
    report.num(
        peer,
        COLS[1].key,
        m.lanes.last().map_or(0, |l| l + 1) as f64,
    );
    let b = Spread::of(&m.bytes);
    report.num(peer, COLS[2].key, b.median);
    report.num(peer, COLS[3].key, b.min);
    report.num(peer, COLS[4].key, b.max);
    record_reps(report, peer, COLS[2].key, &m.bytes);
    let s = Spread::of(&m.sum_ns);
    report.num(peer, COLS[5].key, s.median);
    report.num(peer, COLS[6].key, s.min);
    report.num(peer, COLS[7].key, s.max);
    record_reps(report, peer, COLS[5].key, &m.sum_ns);
    report.set(
        peer,
        "lanes_lanes",
        Value::List(m.lanes.iter().map(|&l| l as f64).collect()),
    );
}

/// The row name of a process with this backend and id source.
fn row_name(m: &Measured) -> &'static str {
    match (m.mode.as_str(), m.ids.as_str()) {
        ("Rseq", "MmCid") => "pcpu, lanes by mm_cid",
        ("Rseq", _) => "pcpu, lanes by CPU id",
        _ => "pcpu, portable (CPU ids)",
    }
}

/// Runs the scenario: this process, then a child with CPU ids and one on the portable backend.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&COLS);
    let (n, iters, reps) = sizes(ctx.quick);
    let what = format!("{n} counters built for {NCPU} CPUs, {iters} sums, {reps} reps");
    progress(NAME, "this process", &what);
    let here = measure(ctx.quick);
    record(report, row_name(&here), &here);
    let children: [(&str, &[(&str, &str)]); 2] = [
        ("child, PCPU_RSEQ_ID=cpu", &[(pcpu_rseq::ID_ENV_VAR, "cpu")]),
        ("child, PCPU_RSEQ=off", &[(pcpu_rseq::ENV_VAR, "off")]),
    ];
    for (label, env) in children {
        progress(NAME, label, &what);
        match in_child(ctx.quick, env) {
            Ok(m) => record(report, row_name(&m), &m),
            Err(e) => report.note(format!("{NAME}: {label}: not measured: {e}")),
        }
    }
    report.note(format!(
        "{NAME}: a domain of {NCPU} simulated CPUs, 2 adders pinned to CPUs 0 and 1; the CPU-id \
         and portable rows are child processes (the id source is chosen once per process). With \
         CPU ids on a 2-CPU machine the adders are on lanes 0 and 1 as with mm_cid; on a \
         {NCPU}-CPU host, adders on CPUs c1, c2 make sum() walk max(c1, c2) + 1 lanes, up to \
         {NCPU} as the portable row does (it walks every lane). Resident bytes follow the lanes \
         written, so they differ where threads migrate over many CPUs (CPU ids) but keep few \
         concurrency ids (mm_cid)"
    ));
}
