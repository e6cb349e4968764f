//! The machine-readable outputs: JSON (`--json FILE`) and CSV (`--csv FILE|DIR`).

use crate::table::Goal;
use crate::table::{Report, Value};
use serde::Serialize;
use serde_json::{json, Map};
use std::path::Path;

/// Bumped whenever a key changes meaning or moves. 2: serde output with `schema_version`,
/// `commit`, `rustc`, `args`, per-thread-count keys (`hot_add_<n>t_ns`, ...), the `metrics`
/// scenario, and the 256-CPU figures under scenario `memory` (`memory_256cpu_*`, formerly
/// `large_*` of scenario `large-machine`). (1 was the hand-written JSON before it, without a version.)
pub const SCHEMA_VERSION: u32 = 2;

/// What produced the figures, beside the machine's facts.
#[derive(Debug, Serialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` where the bench ran, with `-dirty` if the tree had changes, or
    /// `"unknown"`.
    pub commit: String,
    /// The compiler that built the bench (`rustc -V` at build time).
    pub rustc: &'static str,
    /// `--quick` was given.
    pub quick: bool,
    /// The thread counts of the thread-scaled scenarios.
    pub threads: Vec<usize>,
    /// The scenarios that ran.
    pub scenarios: Vec<String>,
}

/// The commit the bench ran at, or `"unknown"` outside a git checkout.
pub fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(c) if !c.is_empty() => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{c}-dirty"),
            _ => c,
        },
        _ => "unknown".to_string(),
    }
}

/// One value as JSON: a number (`null` if not finite) or the list of repetitions.
fn value(v: &Value) -> serde_json::Value {
    let num = |x: f64| {
        serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
    };
    match v {
        Value::Num(x) => num(*x),
        Value::List(xs) => xs.iter().map(|&x| num(x)).collect(),
    }
}

/// The whole report as JSON: `{"schema_version", "commit", "rustc", "args", "machine",
/// "columns", "results": {peer: {key: number | [repetitions]}}, "targets", "notes"}`.
pub fn render(report: &Report, machine: &[(&str, String)], prov: &Provenance) -> String {
    let machine: Map<String, serde_json::Value> = machine
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let columns: Vec<_> = report
        .columns
        .iter()
        .map(|c| json!({"key": c.key, "scenario": c.scenario, "header": c.header, "legend": c.legend}))
        .collect();
    let results: Map<String, serde_json::Value> = report
        .rows
        .iter()
        .map(|r| {
            let vals: Map<String, serde_json::Value> = r
                .values
                .iter()
                .map(|(k, _, v)| (k.clone(), value(v)))
                .collect();
            (r.peer.to_string(), serde_json::Value::Object(vals))
        })
        .collect();
    let targets: Vec<_> = report
        .targets
        .iter()
        .map(|t| {
            let (goal, limit) = match t.goal {
                Goal::AtMost(l) => ("<=", l),
                Goal::AtLeast(l) => (">=", l),
            };
            json!({
                "row": t.row, "key": t.key, "figure": t.figure, "goal": goal, "limit": limit,
                "measured": t.measured.map(|x| value(&Value::Num(x))), "met": t.met(),
                "load_caveat": t.load_caveat, "spread": t.spread, "detail": t.detail,
            })
        })
        .collect();
    let out = json!({
        "schema_version": SCHEMA_VERSION,
        "commit": prov.commit,
        "rustc": prov.rustc,
        "args": {"quick": prov.quick, "threads": prov.threads, "scenarios": prov.scenarios},
        "machine": machine,
        "columns": columns,
        "results": results,
        "targets": targets,
        "notes": report.notes,
    });
    let mut s = serde_json::to_string_pretty(&out).expect("JSON of plain values");
    s.push('\n');
    s
}

/// One line of the long CSV: a value, or one repetition of it.
#[derive(Debug, Serialize)]
struct CsvLine<'a> {
    scenario: &'a str,
    peer: &'a str,
    key: &'a str,
    /// Empty for the headline figure; 0, 1, ... for the repetitions of a list.
    rep: Option<usize>,
    value: Option<f64>,
}

/// Writes the CSV output: to a file, every value and repetition in long form
/// (`scenario,peer,key,rep,value`); to a directory (existing, or named with a trailing `/`),
/// that as `results.csv` and each scenario's table as `<scenario>.csv`. Returns the files
/// written.
///
/// # Errors
/// The first I/O or CSV error.
pub fn write_csv(report: &Report, path: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let is_dir = path.is_dir() || path.to_string_lossy().ends_with('/');
    let long = if is_dir {
        std::fs::create_dir_all(path)?;
        path.join("results.csv")
    } else {
        path.to_path_buf()
    };
    let mut w = csv::Writer::from_path(&long)?;
    for r in &report.rows {
        for (key, scenario, v) in &r.values {
            let finite = |x: f64| Some(x).filter(|x| x.is_finite());
            let line = |rep, value| CsvLine {
                scenario,
                peer: r.peer,
                key,
                rep,
                value,
            };
            match v {
                Value::Num(x) => w.serialize(line(None, finite(*x)))?,
                Value::List(xs) => {
                    for (i, &x) in xs.iter().enumerate() {
                        w.serialize(line(Some(i), finite(x)))?;
                    }
                }
            }
        }
    }
    w.flush()?;
    let mut written = vec![long.display().to_string()];
    if is_dir {
        for sc in report.scenarios() {
            let file = path.join(format!("{sc}.csv"));
            let mut w = csv::Writer::from_path(&file)?;
            let cols = report.columns_of(sc);
            w.write_record(std::iter::once("peer").chain(cols.iter().map(|c| c.key)))?;
            for r in &report.rows {
                let cells: Vec<String> = cols
                    .iter()
                    .map(|c| match report.get(r.peer, c.key) {
                        Some(Value::Num(x)) if x.is_finite() => x.to_string(),
                        _ => String::new(),
                    })
                    .collect();
                if cells.iter().all(String::is_empty) {
                    continue;
                }
                w.write_record(std::iter::once(r.peer.to_string()).chain(cells))?;
            }
            w.flush()?;
            written.push(file.display().to_string());
        }
    }
    Ok(written)
}
