//! Test support of pcpu-rseq's stress tests: the backend each needs and the ledger of what ran.
//! (Stress sizes, the signal storm and CPU affinity come from pcpu-testkit.)

#![allow(dead_code)]

/// The backend a test needs. Every stress test says which, through [`needs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Either backend: its checks hold on both (where they differ, the test says so).
    Any,
    /// rseq critical sections on this thread (the test observes aborts, say).
    Rseq,
}

/// Name of the environment variable naming a file where tests record whether they ran:
/// one line `RAN <test> on <backend>` or `SKIPPED <test>: <why>` each. CI reads it, lists the
/// skipped tests and fails the step if none ran.
pub const LEDGER_ENV: &str = "PCPU_TEST_LEDGER";

/// Whether `test` can run here with what it `needs`; records the answer. A test that cannot
/// is skipped loudly (see [`skip`]); one that can is recorded as run, with the backend.
pub fn needs(test: &str, needs: Needs) -> bool {
    let mode = pcpu_rseq::mode();
    let reg = pcpu_rseq::registration();
    let rseq = mode == pcpu_rseq::Mode::Rseq
        && matches!(
            reg,
            pcpu_rseq::Registration::Glibc | pcpu_rseq::Registration::Own
        );
    if needs == Needs::Rseq && !rseq {
        skip(
            test,
            &format!("needs rseq critical sections; this process runs {mode:?} ({reg:?})"),
        );
        return false;
    }
    record(&format!("RAN {test} on {mode:?} ({reg:?})"));
    true
}

/// Skips `test` loudly: `SKIPPED <test>: <why>` on the process's stderr (written directly,
/// so the test harness does not capture it) and in the ledger.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    record(&line);
}

/// Appends `line` to the ledger, if `PCPU_TEST_LEDGER` names one (one write: lines of
/// concurrent tests do not interleave).
fn record(line: &str) {
    let Some(path) = std::env::var_os(LEDGER_ENV) else {
        return;
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{LEDGER_ENV}={}: {e}", path.to_string_lossy()));
    std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).expect("ledger write");
}
