//! membarrier(2) rseq fences: the grace period of the rseq backend.
//!
//! `MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ` interrupts every CPU that runs a thread of this
//! process (or, with `MEMBARRIER_CMD_FLAG_CPU`, one CPU) and restarts any rseq critical section
//! it is in. When the call returns, every critical section that began before it has either
//! committed or aborted, and its effects are visible to the caller. The process must first
//! register with `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ`.
//!
//! Fallback: when registration fails (kernels before 5.10, seccomp filters, valgrind) the
//! process never enters rseq mode ([`crate::mode()`] picks the portable backend, whose grace
//! periods are crossbeam-epoch's), so an rseq section is never left without a fence. A fork
//! child starts unregistered (the kernel resets the membarrier state of a new mm); a fence that
//! fails with `EPERM` therefore registers again and retries once.

#[cfg(all(target_os = "linux", not(loom)))]
mod imp {
    use std::io;

    const CMD_PRIVATE_EXPEDITED_RSEQ: libc::c_int = 1 << 7;
    const CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ: libc::c_int = 1 << 8;
    const CMD_FLAG_CPU: libc::c_uint = 1;

    fn membarrier(cmd: libc::c_int, flags: libc::c_uint, cpu: libc::c_int) -> io::Result<()> {
        // SAFETY: membarrier takes three integers and touches no user memory.
        let rc = unsafe { libc::syscall(libc::SYS_membarrier, cmd, flags, cpu) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Registers the process for rseq fences (idempotent).
    pub fn register() -> io::Result<()> {
        membarrier(CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0)
    }

    fn with_reregister(f: impl Fn() -> io::Result<()>) -> io::Result<()> {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                register()?;
                f()
            }
            other => other,
        }
    }

    /// Restarts or waits out every rseq critical section of this process, on every CPU.
    pub fn fence_all() -> io::Result<()> {
        with_reregister(|| membarrier(CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0))
    }

    /// The same for one CPU. A CPU that does not exist (`ENXIO`, or `EINVAL` for an id beyond
    /// the kernel's range) runs nothing of ours, so there is nothing to fence.
    pub fn fence_cpu(cpu: usize) -> io::Result<()> {
        let Ok(cpu) = libc::c_int::try_from(cpu) else {
            return Ok(());
        };
        match with_reregister(|| membarrier(CMD_PRIVATE_EXPEDITED_RSEQ, CMD_FLAG_CPU, cpu)) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO) | Some(libc::EINVAL)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(not(all(target_os = "linux", not(loom))))]
mod imp {
    use std::io;

    fn unsupported() -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "membarrier is Linux-only",
        ))
    }

    /// Unsupported off Linux.
    pub fn register() -> io::Result<()> {
        unsupported()
    }

    /// Unsupported off Linux.
    pub fn fence_all() -> io::Result<()> {
        unsupported()
    }

    /// Unsupported off Linux.
    pub fn fence_cpu(_cpu: usize) -> io::Result<()> {
        unsupported()
    }
}

pub use imp::*;
