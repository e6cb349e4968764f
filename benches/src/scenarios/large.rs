//! Scenario `large-machine`: a 256-CPU machine, simulated. pcpu builds its counters in a
//! `Domain` configured for 256 CPUs; peers whose size follows the CPU count get 256 cells per
//! counter. Threads still run on this machine's CPUs (2 write, pinned to CPUs 0 and 1).
//! Resident bytes per counter, measured, plus the handle, as in scenario `memory`.

use super::{handle_bytes, populate, progress, Ctx};
use crate::peers::{for_each, BenchCounter, Visitor};
use crate::table::{Column, Report};

/// The scenario's name.
pub const NAME: &str = "large-machine";

/// JSON key: resident bytes per counter, handle included.
pub const BYTES_KEY: &str = "large_bytes_per_counter";

/// The simulated CPU count.
pub const NCPU: usize = 256;

const COLS: [Column; 1] = [Column {
    scenario: NAME,
    key: BYTES_KEY,
    header: "B/ctr@256",
    legend: "resident bytes per counter built for 256 CPUs (2 threads on 2 CPUs add), \
             handle included as in B/ctr",
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
            .counters(self.ctx.pick(1_000_000, 100_000), C::size_hint(NCPU));
        progress(NAME, C::name(), &format!("{n} counters for {NCPU} CPUs"));
        let (v, bytes) = populate(n, || C::new_for_cpus(NCPU, 0));
        drop(v);
        self.report.num(
            C::name(),
            COLS[0].key,
            bytes / n as f64 + handle_bytes::<C>(),
        );
        self.report.num(C::name(), "large_counters", n as f64);
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&COLS);
    report.note(format!(
        "{NAME}: shared AtomicI64, thread_local and contatori do not size by CPU count (same as \
         on this machine); Linux model = 8 B x 256 CPUs populated per counter; fast-counter, \
         padded array and raw cells = 256 padded 128 B cells"
    ));
    for_each(&mut V { ctx, report });
}
