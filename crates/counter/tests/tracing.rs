//! The `tracing` feature's events, captured by a small subscriber written here (no
//! tracing-subscriber): the backend choice with its reason, a lazy upgrade, a batch widening,
//! the compaction span with what moved, how long and the grace periods, and pcpu-pageset's
//! growth and release events, which the feature turns on too.
//!
//! Needs `--features tracing` (Cargo.toml's `required-features`). The subscriber is the
//! process-wide default, installed by every test before its first per-CPU operation, so that
//! it sees the backend choice whichever test makes it. Tests run concurrently: each looks
//! only at what its own thread recorded.

mod common;

use common::{alternate, per_cpu_domain, sparse_counters, widen_to};
use pcpu_counter::{Domain, PercpuCounter};
use std::collections::BTreeMap;
use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One span or event as the subscriber saw it.
#[derive(Debug, Clone)]
struct Rec {
    /// The span's name, or the event's message.
    name: String,
    is_span: bool,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
    /// The span the thread was in (innermost), for events.
    parent: Option<String>,
    thread: ThreadId,
}

static LOG: Mutex<Vec<Rec>> = Mutex::new(Vec::new());

thread_local! {
    /// Indexes (into LOG) of the spans this thread is in, innermost last.
    static STACK: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

struct Capture;

fn log() -> std::sync::MutexGuard<'static, Vec<Rec>> {
    LOG.lock().unwrap_or_else(|p| p.into_inner())
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut log = log();
        log.push(Rec {
            name: attrs.metadata().name().to_owned(),
            is_span: true,
            level: *attrs.metadata().level(),
            fields,
            parent: None,
            thread: std::thread::current().id(),
        });
        Id::from_u64(log.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut log = log();
        let rec = &mut log[span.into_u64() as usize - 1];
        values.record(&mut Fields(&mut rec.fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let name = fields.remove("message").unwrap_or_default();
        let parent = STACK.with(|s| s.borrow().last().copied());
        let mut log = log();
        let parent = parent.map(|i| log[i].name.clone());
        log.push(Rec {
            name,
            is_span: false,
            level: *event.metadata().level(),
            fields,
            parent,
            thread: std::thread::current().id(),
        });
    }
    fn enter(&self, span: &Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64() as usize - 1));
    }
    fn exit(&self, _: &Id) {
        STACK.with(|s| s.borrow_mut().pop());
    }
}

/// Installs the subscriber (once per process); every test calls it first.
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| tracing::subscriber::set_global_default(Capture).unwrap());
}

/// What this thread recorded whose name (span name or event message) starts with `prefix`.
fn mine(prefix: &str) -> Vec<Rec> {
    let me = std::thread::current().id();
    log()
        .iter()
        .filter(|r| r.thread == me && r.name.starts_with(prefix))
        .cloned()
        .collect()
}

fn field<'a>(rec: &'a Rec, name: &str) -> &'a str {
    rec.fields
        .get(name)
        .unwrap_or_else(|| panic!("{rec:?} has no field {name}"))
}

#[test]
fn backend_choice_is_reported_once_with_its_reason() {
    setup();
    let mode = pcpu_rseq::mode();
    // The thread that made the choice stores it, then emits the event: another test's thread
    // may have chosen a moment ago, so wait (a bound, not a timing) for its event.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let choices = loop {
        let choices: Vec<Rec> = log()
            .iter()
            .filter(|r| r.name == "pcpu: per-CPU backend chosen")
            .cloned()
            .collect();
        if !choices.is_empty() || std::time::Instant::now() > deadline {
            break choices;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert_eq!(choices.len(), 1, "one choice per process: {choices:?}");
    let choice = &choices[0];
    assert_eq!(choice.level, tracing::Level::INFO);
    assert_eq!(field(choice, "backend"), format!("{mode:?}"));
    // The id the lanes follow, and the reason says why (mm_cid, or why not).
    let ids = pcpu_rseq::id_source();
    assert_eq!(field(choice, "ids"), format!("{ids:?}"));
    let reason = field(choice, "reason");
    match mode {
        pcpu_rseq::Mode::Rseq => {
            assert!(reason.contains("rseq registration"), "{reason}");
            let lanes = match ids {
                pcpu_rseq::IdSource::MmCid => "lanes by mm_cid",
                pcpu_rseq::IdSource::CpuId => "cpu_id",
            };
            assert!(reason.contains(lanes), "{reason}");
        }
        pcpu_rseq::Mode::Portable => assert!(!reason.is_empty()),
    }
}

#[test]
fn lazy_upgrade_is_reported() {
    setup();
    let domain = Domain::builder().ncpu(4).build().unwrap();
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    // SAFETY: the counter is of a domain this test built, which no other thread uses.
    unsafe { alternate(64, || c.inc()) };
    assert!(c.is_per_cpu(), "alternating CPUs must upgrade the counter");
    let upgrades = mine("pcpu: lazy upgrade");
    assert_eq!(upgrades.len(), 1, "{upgrades:?}");
    assert_eq!(field(&upgrades[0], "per_cpu"), "true");
    assert_eq!(field(&upgrades[0], "counters"), "1");
}

#[test]
fn a_counter_used_from_one_cpu_reports_no_upgrade() {
    setup();
    let domain = Domain::builder().ncpu(4).build().unwrap();
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    // SAFETY: the counters used until `simulate_cpu(None)` belong to a domain this test built,
    // which no other thread uses.
    unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
    for _ in 0..64 * 64 {
        c.inc();
    }
    // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
    unsafe { pcpu_rseq::simulate_cpu(None) };
    assert!(!c.is_per_cpu());
    assert!(mine("pcpu: lazy upgrade").is_empty());
}

#[test]
fn batch_widening_is_reported() {
    setup();
    let domain = per_cpu_domain(32, 64);
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    // SAFETY: the counter is of a domain this test built, which no other thread uses.
    unsafe { widen_to(&c, 64) };
    assert_eq!(c.batch(), 64, "never widened");
    let widened = mine("pcpu: batch widened");
    assert_eq!(widened.len(), 1, "{widened:?}");
    assert_eq!(field(&widened[0], "from"), "32");
    assert_eq!(field(&widened[0], "to"), "64");
    assert_eq!(field(&widened[0], "max_batch"), "64");
}

#[test]
fn compaction_span_records_what_moved() {
    setup();
    let domain = per_cpu_domain(32, 4096);
    let counters = sparse_counters(domain);
    let report = domain.compact().unwrap();
    assert!(report.slots_moved > 0, "{report:?}");
    let spans = mine("pcpu_compact");
    assert!(!spans.is_empty());
    for span in &spans {
        assert!(span.is_span);
        assert_eq!(field(span, "failed"), "false");
        field(span, "elapsed_us").parse::<u64>().unwrap();
        field(span, "bytes_released").parse::<u64>().unwrap();
    }
    let sum = |name: &str| -> usize {
        spans
            .iter()
            .map(|s| field(s, name).parse::<usize>().unwrap())
            .sum()
    };
    assert_eq!(sum("slots_moved"), report.slots_moved);
    assert_eq!(sum("grace_periods"), report.grace_periods);
    assert_eq!(sum("pagesets_evacuated"), report.pagesets_evacuated);
    let single = spans
        .iter()
        .find(|s| field(s, "class_bytes") == "8")
        .expect("a span for the single counters' space");
    assert_eq!(field(single, "slots_moved"), report.slots_moved.to_string());
    // The end-of-round event sits inside the span.
    let ends = mine("pcpu compaction");
    assert_eq!(ends.len(), spans.len());
    assert!(ends
        .iter()
        .all(|e| e.parent.as_deref() == Some("pcpu_compact")));
    // pcpu-pageset's events, forwarded by the feature: growth while the counters were made
    // (four pagesets of 8-byte slots at least), the release inside the compaction's span.
    let mapped = mine("mapped a pageset");
    assert!(mapped.len() >= 4, "{mapped:?}");
    let released = mine("released memory");
    assert!(
        released
            .iter()
            .any(|e| e.parent.as_deref() == Some("pcpu_compact") && field(e, "unmapped") != "0"),
        "{released:?}"
    );
    let values: Vec<i64> = counters.iter().map(PercpuCounter::sum).collect();
    let expected: Vec<i64> = (0..8192).filter(|i| (i + 1) % 10 == 0).collect();
    assert_eq!(values, expected, "nothing lost in the move");
}
