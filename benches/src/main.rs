//! The pcpu benchmark: the seed's workload (per-CPU counters created and destroyed at exec
//! rate) and the costs around it, for pcpu and its peers, in one run, printed as one table.
//!
//! `cargo run --release -p pcpu-bench -- --help` lists the options and scenarios; see
//! benches/README.md for the method and a recorded run.
#![deny(unsafe_op_in_unsafe_fn)]
// The benchmark reads Linux's /proc, pins threads with sched_setaffinity and measures the
// seed's workload on rseq: it is built only for Linux. Elsewhere `main` says so (the
// workspace still builds there, which CI checks).
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

#[cfg(target_os = "linux")]
mod args;
#[cfg(target_os = "linux")]
mod json;
#[cfg(target_os = "linux")]
mod mem;
#[cfg(target_os = "linux")]
mod peers;
#[cfg(target_os = "linux")]
mod plot;
#[cfg(target_os = "linux")]
mod scenarios;
#[cfg(target_os = "linux")]
mod table;
#[cfg(target_os = "linux")]
mod targets;

#[cfg(target_os = "linux")]
use scenarios::{Ctx, SCENARIOS};
#[cfg(target_os = "linux")]
use std::time::Instant;
#[cfg(target_os = "linux")]
use table::Report;

/// Off Linux: nothing to measure.
#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("pcpu-bench: Linux only (it measures rseq and reads /proc)");
    std::process::exit(2);
}

/// A few facts about the machine, for the table's header and the JSON.
#[cfg(target_os = "linux")]
fn machine() -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".to_string());
    vec![
        ("cpu", model),
        ("possible_cpus", peers::ncpu().to_string()),
        ("rseq_mode", format!("{:?}", pcpu_rseq::mode())),
        ("page_size", mem::page_size().to_string()),
        ("loadavg_at_start", scenarios::loadavg()),
    ]
}

/// A commit as its first 7 hex digits, `-dirty` kept.
#[cfg(target_os = "linux")]
fn short_commit(c: &str) -> String {
    let dirty = if c.ends_with("-dirty") { "-dirty" } else { "" };
    format!("{}{dirty}", c.get(..7).unwrap_or(c))
}

#[cfg(target_os = "linux")]
fn main() {
    use clap::Parser;
    let args = args::Args::parse();
    if args.lanes_child {
        scenarios::lanes::child_main(args.quick);
    }
    let threads = args.thread_counts(peers::ncpu());
    let ctx = Ctx {
        quick: args.quick,
        threads: threads.clone(),
    };
    let machine = machine();
    let selected: Vec<&scenarios::Scenario> = SCENARIOS
        .iter()
        .filter(|sc| args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == sc.name))
        .collect();
    let prov = json::Provenance {
        commit: json::commit(),
        rustc: env!("PCPU_BENCH_RUSTC"),
        quick: args.quick,
        threads,
        scenarios: selected.iter().map(|s| s.name.to_string()).collect(),
    };
    scenarios::plan(&ctx, &selected);
    let started = Instant::now();
    let mut report = Report::default();
    for sc in &selected {
        let t = Instant::now();
        eprintln!("== {}: {}", sc.name, sc.about);
        report.current = sc.name;
        (sc.run)(&ctx, &mut report);
        eprintln!("== {} done in {:.1} s", sc.name, scenarios::secs(t));
    }
    report.note(
        "pcpu-rseq raw cells = the rseq add on a malloc'd padded array: the bottom layer only, \
         not the pcpu counter",
    );
    report.note(format!(
        "run took {:.1} s{}; load average {} at the end",
        scenarios::secs(started),
        if ctx.quick { " (--quick)" } else { "" },
        scenarios::loadavg()
    ));
    report.targets = targets::evaluate(&report, ctx.quick);
    let mut header: Vec<String> = machine.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    header.push(format!("threads: {:?}", ctx.threads));
    print!(
        "{}",
        table::wrap(&format!("pcpu-bench | {}", header.join(" | ")), 2)
    );
    println!();
    print!("{}", report.render());
    print!("\n{}", targets::render(&report.targets));
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("error: cannot write {what}: {e}");
        std::process::exit(1);
    };
    if let Some(path) = &args.json {
        let text = json::render(&report, &machine, &prov);
        if let Err(e) = std::fs::write(path, text) {
            fail(&path.display().to_string(), &e);
        }
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.csv {
        match json::write_csv(&report, path) {
            Ok(files) => eprintln!("wrote {}", files.join(", ")),
            Err(e) => fail(&path.display().to_string(), &e),
        }
    }
    if let Some(dir) = &args.plot {
        let title = format!(
            "{}, {} CPUs, commit {}",
            machine[0].1,
            peers::ncpu(),
            short_commit(&prov.commit)
        );
        match plot::write_all(&report, dir, &title) {
            Ok(files) => eprintln!("wrote {}", files.join(", ")),
            Err(e) => fail(&dir.display().to_string(), &e),
        }
    }
}
