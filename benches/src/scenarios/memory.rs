//! Scenario `memory`: resident bytes per live counter, measured with `/proc/self/statm` around
//! the creation of up to 1,000,000 counters (each added to from 2 threads).

use super::{mark_missing, populate, progress, Ctx};
use crate::peers::{for_each, ncpu, BenchCounter, Visitor};
use crate::table::{Column, Report};

/// The scenario's name.
pub const NAME: &str = "memory";

const COLS: [Column; 1] = [Column {
    scenario: NAME,
    key: "memory_bytes_per_counter",
    header: "B/ctr",
    legend: "resident bytes per live counter (measured RSS delta / counters)",
    decimals: 1,
}];

struct V<'a> {
    ctx: &'a Ctx,
    report: &'a mut Report,
}

impl Visitor for V<'_> {
    fn visit<C: BenchCounter>(&mut self) {
        let n = self
            .ctx
            .counters(self.ctx.pick(1_000_000, 100_000), C::size_hint(ncpu()));
        progress(NAME, C::name(), &format!("{n} live counters"));
        let (v, bytes) = populate(n, || C::new(0));
        drop(v);
        self.report.num(C::name(), COLS[0].key, bytes / n as f64);
        self.report.num(C::name(), "memory_counters", n as f64);
    }

    fn missing(&mut self, name: &'static str, why: &'static str) {
        mark_missing(self.report, &COLS, name, why);
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&COLS);
    for_each(&mut V { ctx, report });
}
