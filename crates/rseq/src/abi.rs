//! The kernel's rseq ABI (`include/uapi/linux/rseq.h`), as far as this crate uses it.
//!
//! A thread registers one 32-byte-aligned `struct rseq` with the kernel. The kernel keeps
//! `cpu_id` current whenever the thread returns to user space, and, when it preempts the thread
//! or delivers it a signal while its instruction pointer lies inside the critical section that
//! `rseq_cs` describes, it moves the instruction pointer to that section's abort handler.
//!
//! Fields read here and why:
//! - `cpu_id` (offset 4): the CPU this thread runs on, read *inside* a critical section so that
//!   the CPU cannot change between reading it and committing. It is -1 before registration and
//!   -2 when registration failed, both of which fail the unsigned bounds check.
//! - `rseq_cs` (offset 8): written by user space with the descriptor of the section about to
//!   run; the kernel clears it on abort, and every section here clears it again right after
//!   its commit. The kernel reads the descriptor it points at, and the signature before the
//!   descriptor's abort handler, whenever it preempts the thread or delivers it a signal, even
//!   long after the section ended; the ABI asks user space to clear it before that memory
//!   goes away. The descriptors and handlers live in the object that holds pcpu's code, which
//!   `dlclose` can unmap while glibc's area (and the thread) lives on: a stale `rseq_cs` would
//!   then kill the thread with SIGSEGV on its next preemption or signal (tested by
//!   `crates/cdylib-test`).
//!
//! - `mm_cid` (offset 24, Linux 6.3+): the thread's concurrency id, which lanes follow
//!   where the kernel provides it ([`crate::IdSource`]); read inside a section, like
//!   `cpu_id`, and bounds-checked the same way.
//!
//! Never written here: `cpu_id_start`, `cpu_id`, `node_id`, `mm_cid`. They belong to the
//! kernel, and recent kernels may kill a process that writes them.

/// Signature placed before every abort handler; the kernel refuses (SIGSEGV) to jump to an
/// abort handler whose preceding four bytes differ from the one given at registration.
///
/// It depends on the architecture: `0x53053053` on x86_64 (the operand of a `ud1`: the
/// sections put the bytes `0f b9 3d` before it), `0xd428bc00` on aarch64 (the word of
/// `brk #0x45e0`). Defined here, one `cfg` per value, and taken by the critical sections
/// (`src/arch/`) and the registration; architectures without sections have the x86_64 value,
/// never registered.
#[cfg(not(target_arch = "aarch64"))]
pub const RSEQ_SIG: u32 = 0x5305_3053;

/// Signature placed before every abort handler; the kernel refuses (SIGSEGV) to jump to an
/// abort handler whose preceding four bytes differ from the one given at registration.
///
/// It depends on the architecture: `0x53053053` on x86_64 (the operand of a `ud1`: the
/// sections put the bytes `0f b9 3d` before it), `0xd428bc00` on aarch64 (the word of
/// `brk #0x45e0`, `RSEQ_SIG_INSN` as the kernel reads it, as data: instructions are
/// little-endian even on a big-endian data configuration). Defined here, one `cfg` per value,
/// and taken by the critical sections (`src/arch/`) and the registration.
#[cfg(target_arch = "aarch64")]
pub const RSEQ_SIG: u32 = if cfg!(target_endian = "big") {
    RSEQ_SIG_INSN.swap_bytes()
} else {
    RSEQ_SIG_INSN
};

/// aarch64: the instruction word the sections place before every abort handler,
/// `brk #0x45e0` (the kernel reads it as [`RSEQ_SIG`]).
#[cfg(target_arch = "aarch64")]
pub(crate) const RSEQ_SIG_INSN: u32 = 0xd428_bc00;

/// Length of the area this crate registers itself (the original ABI size).
pub const RSEQ_AREA_LEN: u32 = 32;

/// Offset of `cpu_id` in `struct rseq`.
pub const CPU_ID_OFFSET: usize = 4;

/// Offset of `rseq_cs` in `struct rseq`.
pub const RSEQ_CS_OFFSET: usize = 8;

/// Offset of `node_id` in `struct rseq` (Linux 6.3+).
pub const NODE_ID_OFFSET: usize = 20;

/// Offset of `mm_cid` in `struct rseq` (Linux 6.3+). The kernel fills it in when
/// `getauxval(AT_RSEQ_FEATURE_SIZE)` is at least `MM_CID_OFFSET + 4` (28), in every
/// registered area: the kernel accepts no registration shorter than 32 bytes.
pub const MM_CID_OFFSET: usize = 24;

/// `cpu_id` before the thread registered.
pub const CPU_ID_UNINITIALIZED: i32 = -1;

/// `cpu_id` after registration failed (glibc writes this when the syscall fails).
pub const CPU_ID_REGISTRATION_FAILED: i32 = -2;

/// `getauxval` key of the feature size of the kernel's rseq (`AT_RSEQ_FEATURE_SIZE`).
pub const AT_RSEQ_FEATURE_SIZE: libc::c_ulong = 27;

/// `getauxval` key of the alignment the kernel requires (`AT_RSEQ_ALIGN`).
pub const AT_RSEQ_ALIGN: libc::c_ulong = 28;

/// `struct rseq` as registered by this crate when glibc did not register one.
#[repr(C, align(32))]
#[derive(Debug)]
pub struct RseqArea {
    /// Kernel-owned: CPU at the start of the last return to user space.
    pub cpu_id_start: u32,
    /// Kernel-owned: current CPU, or a negative marker.
    pub cpu_id: i32,
    /// User-owned: address of the active critical-section descriptor, or 0.
    pub rseq_cs: u64,
    /// Deprecated flags; always 0.
    pub flags: u32,
    /// Kernel-owned (newer kernels): NUMA node.
    pub node_id: u32,
    /// Kernel-owned (newer kernels): concurrency id.
    pub mm_cid: u32,
    /// Padding to the 32-byte registration length.
    pub _reserved: u32,
}

impl RseqArea {
    /// An area as it must be handed to the kernel: `cpu_id` marks "not registered".
    pub const fn new() -> Self {
        RseqArea {
            cpu_id_start: 0,
            cpu_id: CPU_ID_UNINITIALIZED,
            rseq_cs: 0,
            flags: 0,
            node_id: 0,
            mm_cid: 0,
            _reserved: 0,
        }
    }
}

impl Default for RseqArea {
    fn default() -> Self {
        Self::new()
    }
}

const _: () = assert!(core::mem::size_of::<RseqArea>() == RSEQ_AREA_LEN as usize);
const _: () = assert!(core::mem::offset_of!(RseqArea, cpu_id) == CPU_ID_OFFSET);
const _: () = assert!(core::mem::offset_of!(RseqArea, rseq_cs) == RSEQ_CS_OFFSET);
const _: () = assert!(core::mem::offset_of!(RseqArea, node_id) == NODE_ID_OFFSET);
const _: () = assert!(core::mem::offset_of!(RseqArea, mm_cid) == MM_CID_OFFSET);

/// Reads the kernel-maintained `cpu_id` of an area.
///
/// # Safety
/// `area` must point to a live, registered (or about to be registered) `struct rseq`.
#[inline(always)]
pub unsafe fn read_cpu_id(area: *const RseqArea) -> i32 {
    // SAFETY: the caller guarantees `area` is live; the kernel writes the field behind our back,
    // so the read must be volatile to be re-done every time.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*area).cpu_id)) }
}

/// Reads the kernel-maintained `mm_cid` of an area (meaningful only where the kernel's
/// feature size covers it, see [`MM_CID_OFFSET`]).
///
/// # Safety
/// As for [`read_cpu_id`].
#[inline(always)]
pub unsafe fn read_mm_cid(area: *const RseqArea) -> u32 {
    // SAFETY: as in `read_cpu_id`.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*area).mm_cid)) }
}
