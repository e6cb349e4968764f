//! Finding or making this thread's rseq registration (Linux only).
//!
//! Order of preference:
//! 1. glibc's registration. glibc 2.35+ registers a `struct rseq` inside its thread control
//!    block for every thread and exports `__rseq_offset` (from the thread pointer) and
//!    `__rseq_size`. Both are looked up with `dlsym` at run time rather than linked, so the
//!    crate still links on musl and older glibc; a static glibc program (`crt-static`), where
//!    `dlsym` finds nothing, links them directly. A size of 0 means glibc did not register (it
//!    was told not to by `GLIBC_TUNABLES=glibc.pthread.rseq=0`, or the syscall failed, as under
//!    valgrind). glibc 2.36 reports 20 although it registers 32 bytes (the kernel accepts no
//!    shorter registration), so whether `mm_cid` (offset 24) is filled in is read from
//!    `getauxval(AT_RSEQ_FEATURE_SIZE)`, not from `__rseq_size`.
//! 2. Our own registration: a 32-byte-aligned area in a thread-local, registered lazily on
//!    the thread's first operation and unregistered by a TLS destructor (musl frees a
//!    detached thread's TLS before the thread is gone).
//! 3. Neither: the thread has no rseq, and the operations report
//!    [`SlowPath`](crate::SlowPath) (rseq mode) or run on atomics (portable mode).

use crate::abi::RseqArea;

/// What [`probe`] found: where the area comes from, and whether lanes can follow `mm_cid`
/// (`Ok`: how it was checked; `Err`: why not). Both strings go into the backend-choice event.
#[derive(Debug)]
pub struct Probe {
    /// Where this thread's area comes from.
    pub area: &'static str,
    /// Whether `mm_cid` is usable.
    #[cfg_attr(not(all(target_os = "linux", not(loom))), allow(dead_code))]
    pub mm_cid: Result<String, String>,
}

/// How this thread got its rseq area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Only Linux constructs the areas.
#[cfg_attr(not(all(target_os = "linux", not(loom))), allow(dead_code))]
pub enum Found {
    /// glibc's area.
    Glibc(*mut RseqArea),
    /// Our own area, registered now.
    Own(*mut RseqArea),
    /// No usable area.
    None,
}

#[cfg(all(target_os = "linux", not(loom)))]
mod imp {
    use super::Found;
    use crate::abi::{self, RseqArea};
    use crate::arch;
    use std::cell::UnsafeCell;
    use std::sync::OnceLock;

    /// What glibc exported about its rseq registration.
    #[derive(Debug, Clone, Copy)]
    pub struct GlibcRseq {
        /// `__rseq_offset`: the area's offset from the thread pointer.
        pub offset: isize,
        /// `__rseq_size`: the registered size glibc reports, 0 if it did not register.
        pub size: u32,
    }

    /// glibc's exported rseq symbols, if this libc has them.
    pub fn glibc_rseq() -> Option<GlibcRseq> {
        static GLIBC: OnceLock<Option<GlibcRseq>> = OnceLock::new();
        *GLIBC.get_or_init(glibc_symbols)
    }

    /// A dynamically linked program: `dlsym`, so that the crate links where the symbols do
    /// not exist (musl, glibc before 2.35).
    #[cfg(not(all(target_env = "gnu", target_feature = "crt-static")))]
    fn glibc_symbols() -> Option<GlibcRseq> {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no preconditions;
        // it returns null when the symbol does not exist.
        let offset = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()) };
        // SAFETY: as above.
        let size = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()) };
        if offset.is_null() || size.is_null() {
            return None;
        }
        // SAFETY: glibc defines `__rseq_offset` as `const ptrdiff_t` and `__rseq_size` as
        // `const unsigned int`; both are initialised before any user code runs.
        let (offset, size) = unsafe { (*(offset as *const isize), *(size as *const u32)) };
        Some(GlibcRseq { offset, size })
    }

    /// A static glibc program (`-C target-feature=+crt-static`): `dlsym` finds nothing in
    /// a program without a dynamic symbol table, yet glibc registered its area, so that
    /// ours would be refused (EINVAL). The symbols are linked directly instead, which
    /// needs glibc 2.35 or later (older static glibc does not register rseq either, but
    /// then the link fails: build those without crt-static).
    #[cfg(all(target_env = "gnu", target_feature = "crt-static"))]
    fn glibc_symbols() -> Option<GlibcRseq> {
        extern "C" {
            static __rseq_offset: isize;
            static __rseq_size: u32;
        }
        // SAFETY: glibc (2.35+) defines both as constants (`const ptrdiff_t`,
        // `const unsigned int`) set before any user code runs; reading them has no side
        // effects.
        let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
        Some(GlibcRseq { offset, size })
    }

    /// `getauxval(AT_RSEQ_FEATURE_SIZE)`: how much of `struct rseq` this kernel fills in (0 on
    /// kernels that predate the auxv entry).
    pub fn kernel_feature_size() -> usize {
        // Miri has no `getauxval` (and runs no rseq): as on a kernel without the entry.
        if cfg!(miri) {
            return 0;
        }
        // SAFETY: getauxval has no preconditions and returns 0 for unknown keys.
        unsafe { libc::getauxval(abi::AT_RSEQ_FEATURE_SIZE) as usize }
    }

    std::thread_local! {
        // No destructor, const-initialised: a plain static-TLS object, never freed while the
        // thread runs Rust code. It may be freed *before the thread is gone*, though: musl's
        // detached threads unmap their stack and TLS and then run a few instructions before
        // the exit syscall, and the kernel, writing `cpu_id` on a return to user space in
        // between, would kill the process with SIGSEGV. So `UNREGISTER` below ends the
        // registration in the thread's TLS destructors, first.
        static OWN_AREA: UnsafeCell<RseqArea> = const { UnsafeCell::new(RseqArea::new()) };
        // Touched once our registration succeeds, so that its destructor runs at thread exit.
        static UNREGISTER: Unregister = const { Unregister };
    }

    /// `rseq(2)` flag: end the registration.
    const RSEQ_FLAG_UNREGISTER: libc::c_int = 1;

    /// Ends this thread's own registration when its TLS is destroyed (see `OWN_AREA`).
    struct Unregister;

    impl Drop for Unregister {
        fn drop(&mut self) {
            // Later operations on this thread (another TLS destructor dropping a counter) take
            // the slow path instead of running sections on an unregistered area.
            crate::thread_state::lost_area();
            let area = OWN_AREA.with(|a| a.get());
            // SAFETY: `area` is this thread's live, registered area (this guard exists only
            // after a successful registration); unregistering with the same length and
            // signature only ends the kernel's use of it.
            unsafe {
                libc::syscall(
                    libc::SYS_rseq,
                    area,
                    abi::RSEQ_AREA_LEN,
                    RSEQ_FLAG_UNREGISTER,
                    abi::RSEQ_SIG,
                )
            };
        }
    }

    /// Finds glibc's area for this thread, or registers our own (never on a target without
    /// sections: there an area would be of no use).
    pub fn find_or_register() -> Found {
        if !arch::HAS_RSEQ_ASM {
            return Found::None;
        }
        if let Some(g) = glibc_rseq().filter(|g| g.size > 0) {
            // glibc's offset is from the thread pointer of the architecture (positive on
            // x86_64, negative on aarch64, where the area sits below the TCB).
            let area = arch::thread_pointer().wrapping_add_signed(g.offset) as *mut RseqArea;
            // SAFETY: glibc reports a non-zero size, so `area` is this thread's registered
            // `struct rseq` inside its TCB, live for the life of the thread.
            if unsafe { abi::read_cpu_id(area) } >= 0 {
                return Found::Glibc(area);
            }
        }
        let area = OWN_AREA.with(|a| a.get());
        // SAFETY: `area` is this thread's live thread-local.
        if unsafe { abi::read_cpu_id(area) } >= 0 {
            // Registered by an earlier call on this thread.
            return Found::Own(area);
        }
        // SAFETY: `area` is a 32-byte-aligned, 32-byte `struct rseq` in this thread's static
        // TLS, valid until the thread exits; the kernel only writes its own fields. A failure
        // (ENOSYS, EINVAL because another area is registered, EPERM from seccomp) only returns
        // an error.
        let rc =
            unsafe { libc::syscall(libc::SYS_rseq, area, abi::RSEQ_AREA_LEN, 0, abi::RSEQ_SIG) };
        // SAFETY: `area` is the live thread-local above.
        if rc == 0 && unsafe { abi::read_cpu_id(area) } >= 0 {
            // During TLS destruction the guard cannot be set up: then keep no registration.
            if UNREGISTER.try_with(|_| ()).is_err() {
                drop(Unregister);
                return Found::None;
            }
            Found::Own(area)
        } else {
            Found::None
        }
    }

    /// Whether lanes can follow `mm_cid`: the kernel fills it in (`AT_RSEQ_FEATURE_SIZE`
    /// covers it), the registered area holds it, and this thread's value is below the
    /// possible CPU count (which the kernel guarantees; a check that the field is live).
    fn mm_cid_usable(area: *mut RseqArea, registered: usize) -> Result<String, String> {
        let need = abi::MM_CID_OFFSET + 4;
        let feature = kernel_feature_size();
        if feature < need {
            return Err(format!(
                "lanes by cpu_id: the kernel's rseq feature size is {feature}, mm_cid needs {need}"
            ));
        }
        if registered < need {
            return Err(format!(
                "lanes by cpu_id: the registered area is {registered} bytes, mm_cid needs {need}"
            ));
        }
        // SAFETY: `area` is this thread's registered area, live while the thread runs.
        let cid = unsafe { abi::read_mm_cid(area) } as usize;
        let ncpu = crate::possible_cpus();
        if cid >= ncpu {
            return Err(format!(
                "lanes by cpu_id: mm_cid reads {cid}, not below the {ncpu} possible CPUs"
            ));
        }
        Ok(format!("lanes by mm_cid (rseq feature size {feature})"))
    }

    /// Whether the process can run in rseq mode: this thread has an area and membarrier's
    /// rseq fence can be registered. `Ok` says where the area came from, `Err` why rseq
    /// cannot run (for the backend-choice event: [`crate::mode()`]).
    pub fn probe() -> Result<super::Probe, String> {
        let (area, found, len) = match find_or_register() {
            // glibc 2.35-2.39 report 20 in `__rseq_size` although they register 32 bytes;
            // the kernel accepts no registration shorter than 32 (its original size).
            Found::Glibc(area) => (area, "glibc's rseq registration", {
                let reported = glibc_rseq().map_or(0, |g| g.size as usize);
                reported.max(abi::RSEQ_AREA_LEN as usize)
            }),
            Found::Own(area) => (
                area,
                "pcpu's own rseq registration",
                abi::RSEQ_AREA_LEN as usize,
            ),
            Found::None => {
                return Err(
                    "this thread has no rseq area (glibc registered none and the rseq \
                     syscall failed)"
                        .to_owned(),
                )
            }
        };
        match crate::membarrier::register() {
            Ok(()) => Ok(super::Probe {
                area: found,
                mm_cid: mm_cid_usable(area, len),
            }),
            Err(e) => Err(format!(
                "membarrier(REGISTER_PRIVATE_EXPEDITED_RSEQ) failed: {e}"
            )),
        }
    }
}

#[cfg(not(all(target_os = "linux", not(loom))))]
mod imp {
    use super::Found;

    /// rseq is Linux-only (and never runs under loom).
    pub fn probe() -> Result<super::Probe, String> {
        Err("no rseq on this target".to_owned())
    }

    /// No rseq here.
    #[allow(dead_code)]
    pub fn find_or_register() -> Found {
        Found::None
    }

    /// No kernel rseq information on this target.
    pub fn kernel_feature_size() -> usize {
        0
    }
}

pub use imp::*;
