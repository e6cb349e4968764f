//! Per-thread backend state: which area this thread's critical sections use.
//!
//! The fast path reads one thread-local word, [`state`] (stored in `thread_state.rs`, with its
//! markers). Values above [`NO_RSEQ`] are the address of this thread's `struct rseq`; the
//! small values are markers. Resolving the state (choosing the process mode, finding or
//! registering the area) happens once per thread, on its first per-CPU operation; the end of
//! pcpu's own registration (`native.rs`) ends it.

#[cfg(not(loom))]
use crate::thread_state::{self, NO_RSEQ, UNRESOLVED};
use crate::thread_state::{Registration, PORTABLE};
use core::cell::Cell;
// A process-wide flag, not part of a modelled protocol: std atomics even under loom (loom
// atomics cannot live in statics). It is set before any portable operation runs.
use core::sync::atomic::{AtomicBool, Ordering};

/// Set once any thread has used the portable backend, so grace periods also wait for epochs.
pub(crate) static PORTABLE_USED: AtomicBool = AtomicBool::new(false);

#[cfg(not(loom))]
std::thread_local! {
    static ABORTS: Cell<u64> = const { Cell::new(0) };
    static SIM_CPU: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[cfg(loom)]
loom::thread_local! {
    static SIM_CPU: Cell<usize> = Cell::new(usize::MAX);
}

/// This thread's state word, resolving it on first use.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn state() -> usize {
    let s = thread_state::word();
    if s == UNRESOLVED {
        resolve()
    } else {
        s
    }
}

/// Under loom every thread is portable: asm cannot run inside a model.
#[cfg(loom)]
#[inline(always)]
pub(crate) fn state() -> usize {
    PORTABLE_USED.store(true, Ordering::Relaxed);
    PORTABLE
}

#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn resolve() -> usize {
    // Resolving may choose the process's mode (reading the environment allocates) and register
    // rseq (thread-local storage with a destructor may allocate): not in a signal handler
    // scope. Its operations take the slow path, unresolved, until the thread resolves
    // outside one.
    if crate::reentry::in_signal_handler() {
        return NO_RSEQ;
    }
    let (state, kind) = match crate::mode() {
        crate::Mode::Portable => (PORTABLE, Registration::Portable),
        crate::Mode::Rseq => resolve_rseq(),
    };
    if state == PORTABLE {
        PORTABLE_USED.store(true, Ordering::SeqCst);
    }
    thread_state::set(state, Some(kind));
    state
}

#[cfg(not(loom))]
fn resolve_rseq() -> (usize, Registration) {
    // Before this thread's state word lets it run a section: the id field its sections read.
    crate::arch::set_id_offset(match crate::id_source() {
        crate::IdSource::MmCid => crate::arch::MM_CID,
        crate::IdSource::CpuId => crate::arch::CPU_ID,
    });
    match crate::native::find_or_register() {
        crate::native::Found::Glibc(area) => (area as usize, Registration::Glibc),
        crate::native::Found::Own(area) => (area as usize, Registration::Own),
        crate::native::Found::None => {
            crate::mode::expectation_failed("a thread found no rseq area");
            (NO_RSEQ, Registration::Unavailable)
        }
    }
}

/// How the current thread runs per-CPU operations (resolving it now if needed).
///
/// ```
/// use pcpu_rseq::Registration;
/// let r = pcpu_rseq::registration();
/// if pcpu_rseq::mode() == pcpu_rseq::Mode::Portable {
///     assert_eq!(r, Registration::Portable);
/// }
/// ```
pub fn registration() -> Registration {
    #[cfg(not(loom))]
    {
        state();
        thread_state::kind().unwrap_or(Registration::Portable)
    }
    #[cfg(loom)]
    {
        Registration::Portable
    }
}

/// Makes the current thread act as if it ran on `cpu`, on the portable backend; `None` undoes
/// it. For tests and models that simulate more CPUs than the machine has.
///
/// A simulated thread stands for an rseq thread on lane `cpu`: an add whose lane bound (the
/// [`FoldParams`](crate::FoldParams) `ncpu`) is at or below `cpu` takes the slow path
/// (`Err(SlowPath)`), as the rseq section does, so that the caller's lane-raising slow path
/// runs under simulation too. (Real portable threads, which file adds under `sched_getcpu`,
/// use the CPU modulo the bound instead.)
///
/// ```
/// // SAFETY: this doctest's thread touches no per-CPU memory that rseq threads update.
/// unsafe { pcpu_rseq::simulate_cpu(Some(3)) };
/// assert_eq!(pcpu_rseq::current_cpu(), 3);
/// // SAFETY: as above.
/// unsafe { pcpu_rseq::simulate_cpu(None) };
/// ```
///
/// It is `unsafe` because a simulated thread runs the portable backend whatever the process
/// mode: it updates cells with atomic read-modify-writes and stacks under a try-lock, while a
/// thread on the rseq backend updates the same memory with plain loads and stores that are
/// atomic only against its own CPU. A safe call must not be able to start that data race:
///
/// ```compile_fail,E0133
/// pcpu_rseq::simulate_cpu(Some(0)); // needs `unsafe` and a reason
/// ```
///
/// # Safety
/// Until it calls `simulate_cpu(None)` (or exits), the calling thread must not run per-CPU
/// operations ([`add_fold_with`](crate::add_fold_with) and its kin, [`PercpuStacks`]'s `pop`
/// and `push`, and everything built on them in the crates above) on cells or stacks that a
/// thread on the rseq backend updates at the same time. It holds when the process runs the
/// portable backend ([`crate::mode()`] is [`Mode::Portable`](crate::Mode::Portable), as under
/// loom and Miri and with `PCPU_RSEQ=off`), or when the memory the simulated thread updates is
/// used by simulated threads only (a domain, space or slot of the caller's own that no rseq
/// thread reaches). A relocator's grace period does not wait for a simulated thread against
/// rseq threads either, nor the other way round.
///
/// [`PercpuStacks`]: crate::PercpuStacks
pub unsafe fn simulate_cpu(cpu: Option<usize>) {
    PORTABLE_USED.store(true, Ordering::SeqCst);
    SIM_CPU.with(|c| c.set(cpu.unwrap_or(usize::MAX)));
    #[cfg(not(loom))]
    {
        let (state, kind) = if cpu.is_some() {
            (PORTABLE, Some(Registration::Portable))
        } else {
            (UNRESOLVED, None)
        };
        thread_state::set(state, kind);
    }
}

/// The CPU this thread simulates ([`simulate_cpu`]), if any.
pub(crate) fn simulated_cpu() -> Option<usize> {
    let sim = SIM_CPU.with(Cell::get);
    (sim != usize::MAX).then_some(sim)
}

/// The CPU index the portable backend uses for this thread: the simulated CPU if set, else the
/// CPU the thread last ran on (any index is correct there, since every update is atomic; the
/// CPU only spreads contention).
pub(crate) fn portable_cpu() -> usize {
    if let Some(sim) = simulated_cpu() {
        return sim;
    }
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        // SAFETY: sched_getcpu has no preconditions; it returns -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).unwrap_or(0)
    }
    // Miri has no `sched_getcpu` (nor CPUs): each thread keeps one CPU index, handed out
    // round-robin, so that concurrent threads still update different cells.
    #[cfg(all(miri, not(loom)))]
    {
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static MIRI_CPU: usize = NEXT.fetch_add(1, Ordering::Relaxed) % crate::possible_cpus();
        }
        MIRI_CPU.with(|c| *c)
    }
    #[cfg(all(not(all(target_os = "linux", not(loom))), not(all(miri, not(loom)))))]
    {
        0
    }
}

/// Aborted critical sections of every thread: [`aborts_total`]. One shared atomic, but only
/// the abort path (a section the kernel restarted: preemption, migration, a signal) touches
/// it, never a committed section. A plain std atomic: not part of any modelled protocol.
static ABORTS_TOTAL: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Adds to this thread's count of aborted critical sections, and to the process's (cold:
/// aborts are rare).
#[cold]
pub(crate) fn record_aborts(n: usize) {
    #[cfg(not(loom))]
    {
        ABORTS.with(|c| c.set(c.get() + n as u64));
        ABORTS_TOTAL.fetch_add(n as u64, core::sync::atomic::Ordering::Relaxed);
    }
    #[cfg(loom)]
    let _ = n;
}

/// How many rseq critical sections of every thread of the process were aborted and retried
/// so far ([`aborts_on_this_thread`] added up over threads, those that exited included).
/// Always 0 on the portable backend.
pub fn aborts_total() -> u64 {
    ABORTS_TOTAL.load(core::sync::atomic::Ordering::Relaxed)
}

/// How many rseq critical sections of this thread were aborted (by preemption, migration or a
/// signal) and retried. Always 0 on the portable backend.
pub fn aborts_on_this_thread() -> u64 {
    #[cfg(not(loom))]
    {
        ABORTS.with(Cell::get)
    }
    #[cfg(loom)]
    {
        0
    }
}

#[cfg(all(test, not(loom)))]
mod abort_tests {
    #[test]
    fn aborts_count_on_the_thread_and_in_the_total() {
        let (thread, total) = (super::aborts_on_this_thread(), super::aborts_total());
        super::record_aborts(3);
        assert_eq!(super::aborts_on_this_thread(), thread + 3);
        // Other tests may abort meanwhile: the total grows by 3 at least.
        assert!(super::aborts_total() >= total + 3);
        let other = std::thread::spawn(|| {
            super::record_aborts(2);
            super::aborts_on_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(other, 2, "per thread");
        assert_eq!(super::aborts_on_this_thread(), thread + 3);
        assert!(
            super::aborts_total() >= total + 5,
            "the other thread's count stays"
        );
    }
}
