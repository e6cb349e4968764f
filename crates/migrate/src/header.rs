//! The header: the stable address through which a relocatable per-CPU object is reached.
//!
//! | field | who writes it | who reads it |
//! |---|---|---|
//! | `slot` | attach, relocate, detach, set (state-exclusive) | adders, inside their critical section; readers, inside a `seq` read section |
//! | `seq` | set (odd while it zeroes cells in place) | readers |
//! | `state` | CAS by attach / relocate / detach | the compactor, detach |
//!
//! `slot` holds both views. The adders' view is the word itself: the address of CPU 0's
//! cell, or that address (or 0) with [`DISABLED`] set (no slot yet, or being relocated): then
//! per-CPU operations report the slow path and the owner's central fallback takes the update.
//! The readers' view is the word without the mark: the slot whose cells hold the per-CPU part
//! of the value (0 if none). A relocation disables the word, so while it copies, readers still
//! read the old cells, which no adder writes any more (the grace period saw to that) and which
//! therefore hold exactly what is being copied; one store then publishes the new slot to both.
//! That store sits in a `seq` write section, and so does `set`'s zeroing of cells in place.
//!
//! Readers take no guard and wait for no one: a reader that loaded the old slot may read its
//! cells after they were freed, zeroed or handed to another object, but every such write
//! comes after the write section (whose release fence it follows), so the reader's closing
//! `seq` check fails and it reads again. Reading a freed slot is harmless because its memory
//! stays mapped (the space's pool keeps the address space of emptied pagesets).

use pcpu_rseq::sync::{AtomicI64, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use pcpu_rseq::DISABLED;

/// No per-CPU slot; updates take the owner's slow path.
pub const UNATTACHED: u8 = 0;
/// Being given its first slot.
pub const ATTACHING: u8 = 1;
/// Has a slot; per-CPU operation on.
pub const ATTACHED: u8 = 2;
/// A compactor is moving its slot.
pub const RELOCATING: u8 = 3;
/// Detached for good (its owner is being dropped).
pub const DEAD: u8 = 4;

/// Header of one relocatable per-CPU object. Put it at a stable address (a `Box`) and free it
/// only after a crossbeam-epoch grace period (a compactor may still look at it): see
/// [`Space::detach`](crate::Space::detach).
///
/// `repr(C)` with the slot word first: a header's address is its slot word's, so a user may
/// keep data for the add path at a fixed distance after it (see
/// `pcpu_rseq::add_fold_beside`). 16 bytes.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    pub(crate) slot: AtomicUsize,
    pub(crate) seq: AtomicU32,
    pub(crate) state: AtomicU8,
    /// Explicit, so that the header has no padding: its memory may be read back as plain
    /// words (a slot cache zeroes a freed block by reading and clearing its words), and
    /// padding bytes are uninitialised after a typed write.
    _pad: [u8; 3],
}

const _: () = assert!(core::mem::offset_of!(Header, slot) == 0);
// 16 bytes on real atomics (loom's are larger).
#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Header>() == 16);

impl Default for Header {
    fn default() -> Self {
        Self::new()
    }
}

impl Header {
    /// A header with no slot: every per-CPU operation through it takes the slow path.
    pub fn new() -> Self {
        Header {
            slot: AtomicUsize::new(DISABLED),
            seq: AtomicU32::new(0),
            state: AtomicU8::new(UNATTACHED),
            _pad: [0; 3],
        }
    }

    /// The slot word to hand to `pcpu_rseq::add` / `add_fold` / `exchange`.
    #[inline(always)]
    pub fn slot_word(&self) -> &AtomicUsize {
        &self.slot
    }

    /// The slot word's address computed from a pointer to the header, keeping that pointer's
    /// provenance (a reference from [`slot_word`](Self::slot_word) covers the word alone), for
    /// `pcpu_rseq::add_fold_beside`, which also reads data placed after the header.
    #[inline(always)]
    pub const fn slot_word_ptr(this: *const Header) -> *const AtomicUsize {
        // The slot word is the first field of this repr(C) struct (asserted above).
        this.cast()
    }

    /// True once the object has a per-CPU slot (it may be mid-relocation).
    pub fn is_attached(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), ATTACHED | RELOCATING)
    }

    /// Current state (one of the constants of this module).
    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Begins a `seq` write section (cells are about to move).
    pub(crate) fn write_begin(&self) {
        self.seq.fetch_add(1, Ordering::Relaxed);
        // Orders the odd count before the cell stores that follow: a reader that sees any of
        // them (and fences Acquire after its loads) then sees the count changed.
        pcpu_rseq::sync::fence(Ordering::Release);
    }

    /// Ends a `seq` write section.
    pub(crate) fn write_end(&self) {
        self.seq.fetch_add(1, Ordering::Release);
    }
}

/// The relocation protocol's steps on one header. [`Space`](crate::Space) drives them over
/// pageset slots; they take plain cell addresses so that a loom model can drive the very same
/// code over loom atomics. `docs/PROTOCOLS.md` gives the argument for each step.
impl Header {
    /// The readers' view: the slot whose cells hold the per-CPU part (0 if none).
    #[inline]
    pub(crate) fn cells(&self) -> usize {
        self.slot.load(Ordering::Acquire) & !DISABLED
    }

    /// Attach step: makes `addr` (a slot of zeroed cells) the header's slot, readers' and
    /// adders' view at once, and turns per-CPU operation on. The caller holds the
    /// `ATTACHING` state.
    pub fn publish_first(&self, addr: usize) {
        self.slot.store(addr, Ordering::Release);
        self.state.store(ATTACHED, Ordering::Release);
    }

    /// Relocation step 0: claims an attached header whose slot is `expected` (ATTACHED →
    /// RELOCATING). False if it is being attached, dropped or moved, or lives elsewhere.
    pub fn try_claim(&self, expected: usize) -> bool {
        if self
            .state
            .compare_exchange(ATTACHED, RELOCATING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        if self.cells() != expected {
            self.state.store(ATTACHED, Ordering::Release);
            return false;
        }
        true
    }

    /// Relocation step 1 (claimed header): per-CPU operation off; adders take the slow path
    /// from their next critical section on. Returns the old slot.
    pub fn disable(&self) -> usize {
        let old = self.cells();
        self.slot.store(old | DISABLED, Ordering::Release);
        old
    }

    /// Relocation step 3, after the grace period that follows [`disable`](Self::disable):
    /// `copy(old, new)` copies the cells, then one store publishes `new` to readers and
    /// adders. Readers meanwhile read the old cells, which nobody writes any more.
    ///
    /// The store is a `seq` write section: once this returns, the old slot may be freed and
    /// reused at once, because a reader that still reads it will see `seq` changed.
    pub fn move_to(&self, new: usize, copy: impl FnOnce(usize, usize)) {
        let old = self.cells();
        copy(old, new);
        self.write_begin();
        // Release: a reader or adder that sees `new` sees the copied cells.
        self.slot.store(new, Ordering::Release);
        self.write_end();
    }

    /// Last step (after the old slot was given back): the header is an ordinary attached one.
    pub fn finish(&self) {
        self.state.store(ATTACHED, Ordering::Release);
    }

    /// Gives a claimed header its old slot back (a failed relocation).
    pub fn abort(&self) {
        self.slot.store(self.cells(), Ordering::Release);
        self.state.store(ATTACHED, Ordering::Release);
    }

    /// Word `w` of the header's cells, added up over `ncpu` CPUs `stride` bytes apart (0 with
    /// no slot), read in a `seq` read section as [`read_consistent`](Self::read_consistent)
    /// does: what [`Space::sum_word`](crate::Space::sum_word) reads, for a caller that keeps
    /// the space's geometry beside the header (one pointer chase less).
    ///
    /// # Safety
    /// The header is attached through a [`Space`](crate::Space) that outlives the call and
    /// whose objects have `ncpu` CPUs, `stride` bytes apart, and more than `w` words.
    #[inline]
    pub unsafe fn sum_word(&self, stride: usize, ncpu: usize, w: usize) -> i64 {
        // SAFETY: forwarded from the caller.
        self.read_consistent(|addr| unsafe { cells_total(addr, stride, ncpu, w) })
    }

    /// Reader side: runs `read(cells)` (with `cells` 0 when there is no slot) until it ran
    /// inside one `seq` read section with no move in between, and returns its result.
    ///
    /// `read` may run on a slot that is being freed or reused meanwhile (its result is then
    /// thrown away): it must read the cells with atomic loads only, from memory that stays
    /// mapped (a [`Space`](crate::Space)'s pool keeps its address space), and have no other
    /// effect than its result.
    pub fn read_consistent<R>(&self, mut read: impl FnMut(usize) -> R) -> R {
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            if seq & 1 == 1 {
                crate::sync_yield();
                continue;
            }
            let result = read(self.cells());
            pcpu_rseq::sync::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == seq {
                return result;
            }
        }
    }
}

/// Word `w` of every CPU's cell of the slot at `addr` (0 for no slot), added up: `ncpu` cells
/// `stride` bytes apart. Each total is kept in a register: accumulating into memory after
/// zeroing it (a `memset`) stalls a sum on store forwarding.
///
/// # Safety
/// `addr` is 0 or was a slot of a [`Space`](crate::Space)'s pool that is still alive (the
/// slot may have been freed since: the pool keeps its address space mapped), whose objects
/// have `ncpu` CPUs `stride` bytes apart and more than `w` words.
#[inline]
pub(crate) unsafe fn cells_total(addr: usize, stride: usize, ncpu: usize, w: usize) -> i64 {
    if addr == 0 {
        return 0;
    }
    (0..ncpu).fold(0i64, |total, cpu| {
        // SAFETY: the cell lies in the pool's mapping, which stays mapped while the pool
        // lives even if the slot is freed meanwhile; it is an 8-aligned i64 word; the load is
        // atomic, so it races with no write (a value read from a reused slot is thrown away
        // by the caller's `seq` check).
        let cell = unsafe { &*((addr + cpu * stride + w * 8) as *const AtomicI64) };
        total.wrapping_add(cell.load(Ordering::Relaxed))
    })
}
