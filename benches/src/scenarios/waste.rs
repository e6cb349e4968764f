//! Scenario `waste`: create up to 1,000,000 counters, free 90 % of them at random, then
//! compact. Only pcpu can compact (relocate live counters out of sparse pages); peers get
//! glibc's `malloc_trim(0)` instead, the best a malloc'd counter can do. Resident memory is
//! compared with the ideal: the live counters at full density. As in scenario `memory`, each
//! counter's handle (`size_of` of the stored value) counts, live ones only once freed.

use super::{handle_bytes, populate, progress, Ctx};
use crate::peers::{for_each, ncpu, BenchCounter, Visitor};
use crate::table::{Column, Report};

/// The scenario's name.
pub const NAME: &str = "waste";

const COLS: [Column; 4] = [
    Column {
        scenario: NAME,
        key: "waste_after_free_x_ideal",
        header: "freed/ideal",
        legend: "resident after freeing 90% / ideal (live x full-density bytes per counter, \
                 this scenario's own measurement, handles included as in B/ctr)",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "waste_after_compact_x_ideal",
        header: "cmpct/ideal",
        legend: "resident after compact (pcpu) and malloc_trim(0) (all) / ideal",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "waste_percpu_after_free_x_ideal",
        header: "pcpu mem/ideal",
        legend: "pcpu only: resident per-CPU memory (mincore over its pagesets) / live counters x 8 B x ncpu, after freeing 90%",
        decimals: 2,
    },
    Column {
        scenario: NAME,
        key: "waste_percpu_after_compact_x_ideal",
        header: "after cmpct",
        legend: "pcpu only: the same after compact",
        decimals: 2,
    },
];

const MIB: f64 = 1024.0 * 1024.0;

struct V<'a> {
    ctx: &'a Ctx,
    report: &'a mut Report,
}

impl Visitor for V<'_> {
    fn visit<C: BenchCounter>(&mut self) {
        let n = self
            .ctx
            .counters(self.ctx.pick(1_000_000, 100_000), C::size_hint(ncpu()));
        progress(NAME, C::name(), &format!("{n} counters, free 90%"));
        // The order is drawn before the baseline and kept to the end: allocated and freed in
        // between, it would stay in malloc's heap and count as the counters' memory.
        let mut order: Vec<usize> = (0..n).collect();
        fastrand::Rng::with_seed(0x5eed).shuffle(&mut order);
        let (mut slots, rss_full) = populate(n, || C::new(0));
        // `populate` measured against a trimmed baseline; measure the rest against the same.
        let base = crate::mem::resident_bytes() as f64 - rss_full;
        let handle = handle_bytes::<C>();
        let full = rss_full + n as f64 * handle;
        let freed = n * 9 / 10;
        for &i in &order[..freed] {
            slots[i] = None;
        }
        let live = n - freed;
        // Counter memory still resident (the handles' vector is outside it: prefaulted before
        // the baseline), plus the live counters' handles.
        let resident = || crate::mem::resident_bytes() as f64 - base + live as f64 * handle;
        let after_free = resident();
        let percpu_free = C::percpu_resident_ratio();
        C::compact();
        crate::mem::trim();
        let after_compact = resident();
        let percpu_compact = C::percpu_resident_ratio();
        let ideal = full / n as f64 * live as f64;
        let name = C::name();
        self.report.num(name, COLS[0].key, after_free / ideal);
        self.report.num(name, COLS[1].key, after_compact / ideal);
        if let (Some(free), Some(compact)) = (percpu_free, percpu_compact) {
            self.report.num(name, COLS[2].key, free);
            self.report.num(name, COLS[3].key, compact);
        }
        self.report.num(name, "waste_counters", n as f64);
        self.report.num(name, "waste_live", live as f64);
        self.report.num(name, "waste_full_mib", full / MIB);
        self.report
            .num(name, "waste_after_free_mib", after_free / MIB);
        self.report
            .num(name, "waste_after_compact_mib", after_compact / MIB);
        self.report.num(name, "waste_ideal_mib", ideal / MIB);
        self.report
            .num(name, "waste_after_compact_bytes", after_compact);
        drop(slots);
        drop(order);
    }
}

/// Runs the scenario for every peer.
pub fn run(ctx: &Ctx, report: &mut Report) {
    report.add_columns(&COLS);
    for_each(&mut V { ctx, report });
}
