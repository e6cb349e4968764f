//! Command-line options (clap's derive: `--help` is generated from these doc comments).

use crate::scenarios::SCENARIOS;
use clap::Parser;
use std::path::PathBuf;

/// pcpu-bench: per-CPU counters against their peers, in one run.
///
/// Prints one table per scenario on stdout, then the issue-12 targets; progress, with an
/// estimate of the time left, goes to stderr.
#[derive(Debug, Parser)]
#[command(name = "pcpu-bench", after_help = scenario_list())]
pub struct Args {
    /// Run only this scenario (repeatable, or a comma list).
    #[arg(long = "scenario", value_name = "NAME", value_delimiter = ',', value_parser = scenario_name)]
    pub scenarios: Vec<String>,

    /// Fewer iterations and counters: a smoke run of a few seconds, not a measurement.
    #[arg(long)]
    pub quick: bool,

    /// Thread counts for the thread-scaled scenarios (hot-add, churn, metrics), as a comma
    /// list [default: 1, 2 and every power of two up to the CPU count].
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', value_parser = thread_count)]
    pub threads: Vec<usize>,

    /// Also write the results as JSON (every repetition, the machine, commit and rustc).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write CSV: to FILE every value and repetition in long form; to a DIR (existing,
    /// or given with a trailing `/`) that as results.csv plus one CSV per table, named after its scenario.
    #[arg(long, value_name = "FILE|DIR")]
    pub csv: Option<PathBuf>,

    /// Write SVG charts into DIR (created if needed).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Internal: measure this process for the `lanes` scenario and print one result line
    /// (the scenario runs the benchmark again with this flag, in another environment).
    #[arg(long = "lanes-child", hide = true)]
    pub lanes_child: bool,
}

/// The scenarios, for the end of `--help`.
fn scenario_list() -> String {
    let mut s = String::from("Scenarios:\n");
    for sc in SCENARIOS {
        s.push_str(&format!("  {:<15} {}\n", sc.name, sc.about));
    }
    s
}

/// A known scenario name.
fn scenario_name(name: &str) -> Result<String, String> {
    if SCENARIOS.iter().any(|s| s.name == name) {
        Ok(name.to_string())
    } else {
        let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        Err(format!("unknown scenario (known: {})", known.join(", ")))
    }
}

/// A thread count: 1 to 4096.
fn thread_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err("a thread count is a whole number from 1 to 4096".to_string()),
    }
}

/// The default thread counts for `ncpu` CPUs: 1, 2, and every power of two up to `ncpu`.
pub fn default_threads(ncpu: usize) -> Vec<usize> {
    let mut v = vec![1, 2];
    let mut n = 4;
    while n <= ncpu {
        v.push(n);
        n *= 2;
    }
    v
}

impl Args {
    /// The thread counts to run, sorted, without duplicates.
    pub fn thread_counts(&self, ncpu: usize) -> Vec<usize> {
        let mut v = if self.threads.is_empty() {
            default_threads(ncpu)
        } else {
            self.threads.clone()
        };
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_thread_counts() {
        assert_eq!(default_threads(1), [1, 2]);
        assert_eq!(default_threads(2), [1, 2]);
        assert_eq!(default_threads(6), [1, 2, 4]);
        assert_eq!(default_threads(64), [1, 2, 4, 8, 16, 32, 64]);
    }

    #[test]
    fn options_parse() {
        let a = Args::try_parse_from(["pcpu-bench", "--threads", "4,1,2,2", "--quick"]).unwrap();
        assert_eq!(a.thread_counts(2), [1, 2, 4]);
        assert!(a.quick);
        assert!(Args::try_parse_from(["pcpu-bench", "--threads", "0"]).is_err());
        assert!(Args::try_parse_from(["pcpu-bench", "--scenario", "nope"]).is_err());
        let a = Args::try_parse_from(["pcpu-bench", "--scenario", "churn,hot-add"]).unwrap();
        assert_eq!(a.scenarios, ["churn", "hot-add"]);
    }
}
