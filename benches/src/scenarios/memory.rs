//! Scenario `memory`: resident bytes per live counter, measured with `/proc/self/statm` around
//! the creation of up to 1,000,000 counters (each added to from 2 threads on 2 CPUs), plus the
//! handle each counter is (`size_of` of the value the user stores); once with counters built
//! for this machine, and once for each simulated CPU count of [`SIMULATED_CPUS`] (pcpu builds
//! them in a `Domain` configured for that many CPUs; peers whose size follows the CPU count
//! get that many cells per counter; the threads still run on this machine's CPUs).

use super::{handle_bytes, populate, progress, Ctx};
use crate::peers::{for_each, ncpu, BenchCounter, Visitor};
use crate::table::{leak, Column, Report};

/// The scenario's name.
pub const NAME: &str = "memory";

/// JSON key: resident bytes per counter built for this machine, handle included.
pub const BYTES_KEY: &str = "memory_bytes_per_counter";

/// The simulated CPU counts, measured after this machine's.
pub const SIMULATED_CPUS: [usize; 1] = [256];

/// JSON key: resident bytes per counter built for `ncpu` CPUs (`None`: this machine).
pub fn bytes_key(ncpu: Option<usize>) -> &'static str {
    match ncpu {
        None => BYTES_KEY,
        Some(n) => leak(format!("memory_{n}cpu_bytes_per_counter")),
    }
}

/// JSON key: how many counters the measurement for `ncpu` CPUs created.
pub fn counters_key(ncpu: Option<usize>) -> &'static str {
    match ncpu {
        None => "memory_counters",
        Some(n) => leak(format!("memory_{n}cpu_counters")),
    }
}

/// The table's columns: this machine, then each simulated CPU count.
fn columns() -> Vec<Column> {
    let mut cols = vec![Column {
        scenario: NAME,
        key: BYTES_KEY,
        header: "B/ctr",
        legend: "resident bytes per live counter: measured RSS delta / counters, plus the \
                 handle (size_of the stored value: 16 B for a pcpu counter, inline or not; 8 B \
                 for an Arc or a plain AtomicI64), for every peer alike",
        decimals: 1,
    }];
    cols.extend(SIMULATED_CPUS.iter().map(|&n| Column {
        scenario: NAME,
        key: bytes_key(Some(n)),
        header: leak(format!("B/ctr@{n}")),
        legend: leak(format!(
            "the same, counters built for {n} CPUs (2 threads on 2 CPUs add)"
        )),
        decimals: 1,
    }));
    cols
}

/// The rows this scenario measures (each peer, once per CPU count).
pub fn rows() -> usize {
    super::peer_rows() * (1 + SIMULATED_CPUS.len())
}

struct V<'a> {
    ctx: &'a Ctx,
    report: &'a mut Report,
    /// The CPU count the counters are built for (`None`: this machine).
    cpus: Option<usize>,
}

impl V<'_> {
    /// One measurement of `C`, built for `cpus` CPUs (`None`: this machine).
    fn measure<C: BenchCounter>(&mut self, cpus: Option<usize>) {
        let hint = C::size_hint(cpus.unwrap_or_else(ncpu));
        let n = self.ctx.counters(self.ctx.pick(1_000_000, 100_000), hint);
        let built = cpus.map_or(String::new(), |c| format!(" for {c} CPUs"));
        progress(NAME, C::name(), &format!("{n} live counters{built}"));
        C::compact();
        let own_before = C::own_resident_bytes();
        let (v, bytes) = match cpus {
            None => populate(n, || C::new(0)),
            Some(c) => populate(n, || C::new_for_cpus(c, 0)),
        };
        let own_after = C::own_resident_bytes();
        drop(v);
        let name = C::name();
        let handle = handle_bytes::<C>();
        self.report
            .num(name, bytes_key(cpus), bytes / n as f64 + handle);
        self.report.num(name, counters_key(cpus), n as f64);
        if cpus.is_some() {
            return;
        }
        self.report
            .num(name, "memory_rss_bytes_per_counter", bytes / n as f64);
        self.report.num(name, "memory_handle_bytes", handle);
        if let (Some(b), Some(a)) = (own_before, own_after) {
            let per = |x: usize, y: usize| (y as f64 - x as f64) / n as f64;
            self.report
                .num(name, "memory_header_bytes_per_counter", per(b.0, a.0));
            self.report
                .num(name, "memory_percpu_bytes_per_counter", per(b.1, a.1));
        }
    }
}

impl Visitor for V<'_> {
    fn visit<C: BenchCounter>(&mut self) {
        self.measure::<C>(self.cpus);
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&columns());
    report.note(format!(
        "{NAME}: built for {:?} CPUs, shared AtomicI64, thread_local and contatori are as on \
         this machine (they do not size by CPU count); the Linux model populates 8 B per CPU \
         per counter; fast-counter, padded array and raw cells get a padded 128 B cell per CPU",
        SIMULATED_CPUS
    ));
    // A pass over every peer per CPU count, as when each count was a scenario of its own: a
    // peer's second measurement does not directly follow its first, whose freed memory malloc
    // may keep.
    for cpus in std::iter::once(None).chain(SIMULATED_CPUS.map(Some)) {
        for_each(&mut V { ctx, report, cpus });
    }
}
