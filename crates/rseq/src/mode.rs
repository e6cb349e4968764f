//! The process-wide choice between the rseq backend and the portable backend.
//!
//! The choice is made once, on the first per-CPU operation of the process, and never changes:
//! the two backends must not update the same cells at the same time (an rseq add is a plain
//! read-modify-write that a concurrent atomic add on another CPU could lose). Within rseq mode a
//! thread whose own registration fails gets [`SlowPath`](crate::SlowPath) from every operation,
//! so it falls back to the caller's shared slow path instead of touching per-CPU cells.

// Process-wide configuration, not part of any modelled protocol: plain std atomics even under
// loom (loom atomics cannot live in statics).
use core::sync::atomic::{AtomicU8, Ordering};

/// Which backend per-CPU operations use in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Restartable sequences: a plain add to this CPU's cell, no lock prefix.
    Rseq,
    /// Atomics on the cell of the CPU the thread last ran on, and epoch-based grace periods.
    Portable,
}

/// Which id the rseq sections index lanes (cells, stack lanes, magazines) by.
///
/// - [`IdSource::MmCid`]: the rseq area's `mm_cid` (Linux 6.3+), a per-process *concurrency
///   id*: below the smaller of the process's thread count and the number of CPUs it may run
///   on, and never held by two running threads of the process at once. A process limited to
///   2 CPUs of 256 uses lanes 0 and 1 only, so its writes (and resident memory) pack into the
///   low lanes. Like `cpu_id`, it is stable inside a critical section only.
/// - [`IdSource::CpuId`]: the rseq area's `cpu_id`, the CPU the thread runs on. Used when the
///   kernel does not provide `mm_cid` (`getauxval(AT_RSEQ_FEATURE_SIZE)` below 28), when
///   [`ID_ENV_VAR`]`=cpu` asks for it, and always on the portable backend, which uses the
///   CPU the thread last ran on (`sched_getcpu`).
///
/// Chosen once, with the backend ([`mode()`](crate::mode())), and never changed: two threads indexing by
/// different ids could both be in the same lane at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdSource {
    /// Lanes follow the rseq area's `mm_cid`.
    MmCid,
    /// Lanes follow the CPU id (`cpu_id` in rseq mode, `sched_getcpu` on the portable
    /// backend).
    CpuId,
}

/// Name of the environment variable that forces lanes to follow CPU ids in rseq mode when set
/// to `cpu` (also accepted: `cpu_id`). Unset, or `mm_cid`/`auto`: `mm_cid` where the kernel
/// provides it. Read once, when the backend is chosen.
pub const ID_ENV_VAR: &str = "PCPU_RSEQ_ID";

/// True when `PCPU_RSEQ_ID` asks for CPU ids.
pub fn env_forces_cpu_id() -> bool {
    std::env::var(ID_ENV_VAR)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "cpu" | "cpu_id"))
}

/// Why the portable backend could not be forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeAlreadyChosen(pub Mode);

impl core::fmt::Display for ModeAlreadyChosen {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "the per-CPU backend was already chosen as {:?}", self.0)
    }
}

impl std::error::Error for ModeAlreadyChosen {}

/// Name of the environment variable that forces the portable backend when set to `off`
/// (also accepted: `0`, `false`, `no`, `portable`).
pub const ENV_VAR: &str = "PCPU_RSEQ";

const UNDECIDED: u8 = 0;
/// rseq, lanes by `cpu_id`.
const RSEQ: u8 = 1;
const PORTABLE: u8 = 2;
/// rseq, lanes by `mm_cid`: the id source is part of the one decision, so no thread can see
/// the mode without it.
const RSEQ_MM_CID: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);

fn decode(raw: u8) -> Option<Mode> {
    match raw {
        RSEQ | RSEQ_MM_CID => Some(Mode::Rseq),
        PORTABLE => Some(Mode::Portable),
        _ => None,
    }
}

/// True when `PCPU_RSEQ` asks for the portable backend.
pub fn env_forces_portable() -> bool {
    std::env::var(ENV_VAR).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no" | "portable"
        )
    })
}

/// The backend in use, choosing it now if no per-CPU operation has run yet.
///
/// ```
/// let mode = pcpu_rseq::mode();
/// // The choice is stable for the life of the process.
/// assert_eq!(mode, pcpu_rseq::mode());
/// ```
pub fn mode() -> Mode {
    match decode(MODE.load(Ordering::Acquire)) {
        Some(m) => m,
        None => decide(),
    }
}

/// Which id the lanes follow in this process ([`IdSource`]), choosing the backend now if no
/// per-CPU operation has run yet. Always [`IdSource::CpuId`] on the portable backend.
///
/// ```
/// use pcpu_rseq::{IdSource, Mode};
/// let ids = pcpu_rseq::id_source();
/// if pcpu_rseq::mode() == Mode::Portable {
///     assert_eq!(ids, IdSource::CpuId);
/// }
/// assert_eq!(ids, pcpu_rseq::id_source());
/// ```
pub fn id_source() -> IdSource {
    let mut raw = MODE.load(Ordering::Acquire);
    if raw == UNDECIDED {
        decide();
        raw = MODE.load(Ordering::Acquire);
    }
    if raw == RSEQ_MM_CID {
        IdSource::MmCid
    } else {
        IdSource::CpuId
    }
}

/// Forces the portable backend for the whole process.
///
/// Succeeds if no per-CPU operation has chosen the rseq backend yet (calling it twice is fine).
/// Call it at the start of `main` or of a test binary; `PCPU_RSEQ=off` does the same from the
/// environment.
///
/// # Errors
/// [`ModeAlreadyChosen`] if the process already runs in rseq mode.
pub fn force_portable() -> Result<(), ModeAlreadyChosen> {
    match MODE.compare_exchange(UNDECIDED, PORTABLE, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            chosen(
                Mode::Portable,
                IdSource::CpuId,
                "force_portable() was called",
            );
            Ok(())
        }
        Err(PORTABLE) => Ok(()),
        Err(other) => Err(ModeAlreadyChosen(decode(other).unwrap_or(Mode::Rseq))),
    }
}

#[cold]
fn decide() -> Mode {
    // The reason is built on this cold path only, once per process (or per racing thread).
    let (wanted, reason) = if cfg!(miri) {
        // Miri cannot run the rseq sections (inline asm), nor the rseq and membarrier
        // syscalls and the `dlsym` lookup that probing makes.
        (
            PORTABLE,
            "Miri: no inline asm, no rseq or membarrier".to_owned(),
        )
    } else if env_forces_portable() {
        (PORTABLE, format!("{ENV_VAR} asks for the portable backend"))
    } else {
        match crate::native::probe() {
            Ok(found) => {
                let (ids, why) = if env_forces_cpu_id() {
                    (RSEQ, format!("{ID_ENV_VAR} asks for cpu_id"))
                } else {
                    match found.mm_cid {
                        Ok(how) => (RSEQ_MM_CID, how),
                        Err(why) => (RSEQ, why),
                    }
                };
                (ids, format!("{}; {why}", found.area))
            }
            Err(why) => (PORTABLE, why),
        }
    };
    let mode =
        match MODE.compare_exchange(UNDECIDED, wanted, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                let mode = decode(wanted).unwrap_or(Mode::Portable);
                let ids = if wanted == RSEQ_MM_CID {
                    IdSource::MmCid
                } else {
                    IdSource::CpuId
                };
                chosen(mode, ids, &reason);
                Some(mode)
            }
            Err(chosen) => decode(chosen),
        }
        .unwrap_or(Mode::Portable);
    if mode != Mode::Rseq {
        expectation_failed("the portable backend was chosen");
    }
    mode
}

/// The backend-choice event (`tracing` feature): which backend, which id the lanes follow,
/// and why. Emitted once per process, by the thread whose choice was stored.
#[cold]
fn chosen(mode: Mode, ids: IdSource, reason: &str) {
    #[cfg(feature = "tracing")]
    tracing::info!(backend = ?mode, ids = ?ids, reason, "pcpu: per-CPU backend chosen");
    #[cfg(not(feature = "tracing"))]
    let _ = (mode, ids, reason);
}

/// Name of the environment variable with which a test run demands the rseq backend:
/// `PCPU_EXPECT_MODE=rseq` aborts the process (after a message on stderr) if the backend
/// chosen on the first per-CPU operation is not rseq, or if a thread in rseq mode finds no
/// rseq area. CI sets it wherever rseq must run (on real kernels, in virtual machines, with
/// musl or static binaries), so that a test that would pass on the portable backend cannot
/// hide a fast path that silently did not run. Choosing the portable backend explicitly
/// ([`force_portable`]) is not checked.
pub const EXPECT_ENV_VAR: &str = "PCPU_EXPECT_MODE";

/// Aborts if `PCPU_EXPECT_MODE=rseq` (see [`EXPECT_ENV_VAR`]); `what` says what went wrong.
#[cold]
pub(crate) fn expectation_failed(what: &str) {
    if std::env::var(EXPECT_ENV_VAR).is_ok_and(|v| v == "rseq") {
        // Straight to stderr: a test harness captures `eprintln!`, and the abort would lose it.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("pcpu-rseq: {EXPECT_ENV_VAR}=rseq, but {what}; aborting\n").as_bytes(),
        );
        std::process::abort();
    }
}
