//! Command-line options, parsed by hand: four flags do not justify a dependency (and its build
//! time on a shared 2-core machine).

use crate::scenarios::SCENARIOS;

/// Help text for `--help`.
pub fn usage() -> String {
    let mut s = String::from(
        "pcpu-bench: per-CPU counters against their peers, in one run.\n\n\
         USAGE: cargo run --release -p pcpu-bench -- [OPTIONS]\n\n\
         OPTIONS:\n  \
           --scenario NAME   run only this scenario (repeatable, or a comma list)\n  \
           --quick           fewer iterations and counters (a smoke run, a few seconds)\n  \
           --json FILE       also write the results as JSON to FILE\n  \
           -h, --help        print this help\n\nSCENARIOS:\n",
    );
    for sc in SCENARIOS {
        s.push_str(&format!("  {:<15} {}\n", sc.name, sc.about));
    }
    s
}

/// What the command line asked for.
#[derive(Debug, Default)]
pub struct Args {
    /// Names of the scenarios to run; empty means all.
    pub scenarios: Vec<String>,
    /// Smaller sizes, one repetition.
    pub quick: bool,
    /// Where to write JSON.
    pub json: Option<String>,
    /// `--help` was given.
    pub help: bool,
}

/// Parses `argv` (without the program name).
///
/// # Errors
/// A message for an unknown option, a missing value or an unknown scenario.
pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => args.help = true,
            "--quick" => args.quick = true,
            "--json" => args.json = Some(value("--json")?),
            "--scenario" => {
                for name in value("--scenario")?.split(',').filter(|n| !n.is_empty()) {
                    if !SCENARIOS.iter().any(|s| s.name == name) {
                        return Err(format!("unknown scenario `{name}`"));
                    }
                    args.scenarios.push(name.to_string());
                }
            }
            _ => return Err(format!("unknown option `{a}`")),
        }
    }
    Ok(args)
}
