//! Scenario `memory`: resident bytes per live counter, measured with `/proc/self/statm` around
//! the creation of up to 1,000,000 counters (each added to from 2 threads on 2 CPUs), plus the
//! handle each counter is (`size_of` of the value the user stores).

use super::{handle_bytes, populate, progress, Ctx};
use crate::peers::{for_each, ncpu, BenchCounter, Visitor};
use crate::table::{Column, Report};

/// The scenario's name.
pub const NAME: &str = "memory";

/// JSON key: resident bytes per counter, handle included.
pub const BYTES_KEY: &str = "memory_bytes_per_counter";

const COLS: [Column; 1] = [Column {
    scenario: NAME,
    key: BYTES_KEY,
    header: "B/ctr",
    legend: "resident bytes per live counter: measured RSS delta / counters, plus the \
             handle (size_of the stored value: 16 B for a pcpu counter, inline or not; 8 B \
             for an Arc or a plain AtomicI64), for every peer alike",
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
        C::compact();
        let own_before = C::own_resident_bytes();
        let (v, bytes) = populate(n, || C::new(0));
        let own_after = C::own_resident_bytes();
        drop(v);
        let name = C::name();
        let handle = handle_bytes::<C>();
        self.report
            .num(name, COLS[0].key, bytes / n as f64 + handle);
        self.report
            .num(name, "memory_rss_bytes_per_counter", bytes / n as f64);
        self.report.num(name, "memory_handle_bytes", handle);
        self.report.num(name, "memory_counters", n as f64);
        if let (Some(b), Some(a)) = (own_before, own_after) {
            let per = |x: usize, y: usize| (y as f64 - x as f64) / n as f64;
            self.report
                .num(name, "memory_header_bytes_per_counter", per(b.0, a.0));
            self.report
                .num(name, "memory_percpu_bytes_per_counter", per(b.1, a.1));
        }
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&COLS);
    for_each(&mut V { ctx, report });
}
