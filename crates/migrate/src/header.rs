//! The header: the stable address through which a relocatable per-CPU object is reached.
//!
//! | field | who writes it | who reads it |
//! |---|---|---|
//! | `slot` | attach, relocate, detach, set (state-exclusive) | adders, inside their critical section; readers, inside a `seq` read section |
//! | `seq` | set (odd while it zeroes cells in place) | readers |
//! | `state` | [`State`] transitions, each a method below (attach, relocate, set, detach) | the compactor, detach, set |
//!
//! `slot` holds both views. The adders' view is the word itself: the address of CPU 0's
//! cell marked [`LIVE`](pcpu_rseq::LIVE), or a word without the mark, that address or 0 (no
//! slot yet, or being relocated): then per-CPU operations report the slow path and the
//! owner's central fallback takes the update. The readers' view is the word without the mark:
//! the slot whose cells hold the per-CPU part of the value (0 if none). An all-zero header has
//! no slot in either view, and its state is [`State::Void`], which no transition takes: what
//! a moved header's tombstone reads once its page went back to the OS, so that nobody holding
//! its old address can attach, detach or claim it.
//!
//! A relocation disables the word, so while it copies, readers still read the old cells,
//! which no adder writes any more (the grace period saw to that) and which therefore hold
//! exactly what is being copied; one store then publishes the new slot to both.
//! That store sits in a `seq` write section, and so does `set`'s zeroing of cells in place.
//!
//! Readers take no guard and wait for no one: a reader that loaded the old slot may read its
//! cells after they were freed, zeroed or handed to another object, but every such write
//! comes after the write section (whose release fence it follows), so the reader's closing
//! `seq` check fails and it reads again. Reading a freed slot is harmless because its memory
//! stays mapped (the space's pool keeps the address space of emptied pagesets).

use crate::MigrateError;
use pcpu_rseq::sync::{yield_now, AtomicI64, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use pcpu_rseq::{slot_cells, slot_word, DISABLED};

/// Where a header is in its life. Every transition is one method of [`Header`], so the
/// protocol lives here, in one place, and the loom models (`src/loom_tests.rs`) drive the very
/// steps that [`Space`](crate::Space) runs.
///
/// ```text
/// Unattached --begin_attach--> Attaching --publish_first--> Attached
///      ^                            |                       |   ^
///      +------abort_attach----------+      try_claim / begin_take | finish / abort / finish_take
///                                                           v   |
///      Dead <--begin_detach-- (Unattached | Attached)    Relocating
///
/// (Unattached | Attached) --move_identity--> Moving --> Moved (for good; the header that
///                                  \                    took its place is Unattached or
///                                   +--(not claimable)   Attached as this one was)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Zeroed memory: no header here (a moved header's tombstone once its owner gave its page
    /// back to the OS reads so). No slot, and every transition refuses it, so that a late
    /// reader or dropper holding the old address cannot attach, detach or claim it.
    Void = 0,
    /// No per-CPU slot; updates take the owner's slow path.
    Unattached = 1,
    /// Being given its first slot.
    Attaching = 2,
    /// Has a slot; per-CPU operation on.
    Attached = 3,
    /// A compactor is moving its slot, or `set` is zeroing its cells.
    Relocating = 4,
    /// Detached for good (its owner is being dropped).
    Dead = 5,
    /// Being moved to another address ([`Space::move_header`](crate::Space::move_header)).
    Moving = 6,
    /// Moved to another address for good: a tombstone with no slot. Its owner finds the
    /// header that took its place through its own records (pcpu-counter's forward table).
    Moved = 7,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Void,
            1 => State::Unattached,
            2 => State::Attaching,
            3 => State::Attached,
            4 => State::Relocating,
            6 => State::Moving,
            7 => State::Moved,
            _ => State::Dead,
        }
    }
}

/// What [`Header::begin_detach`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detached {
    /// It was dead already.
    Already,
    /// It never had a slot: no compactor can know it.
    NoSlot,
    /// It had the slot at this address, which is now taken away from adders and readers.
    Slot(usize),
    /// It was moved to another address: nothing was detached.
    Moved,
}

/// What [`Header::begin_take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// It had no slot (unattached or dead): nothing to zero.
    NoSlot,
    /// It was moved to another address: nothing was claimed.
    Moved,
    /// It is claimed (`Relocating`), with the slot at this address.
    Slot(usize),
}

/// Header of one relocatable per-CPU object. Put it at a stable address (a `Box`) and free it
/// only after a crossbeam-epoch grace period (a compactor may still look at it): see
/// [`Space::detach`](crate::Space::detach).
///
/// `repr(C)` with the slot word first: a header's address is its slot word's, so a user may
/// keep data for the add path at a fixed distance after it (see
/// `pcpu_rseq::add_fold_beside`, `add_fold_through` and `add_fold_indexed`). 16 bytes, three
/// of them the owner's ([`Header::spare`], [`Header::tag`]): pcpu-counter's whole header
/// block.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    pub(crate) slot: AtomicUsize,
    pub(crate) seq: AtomicU32,
    pub(crate) state: AtomicU8,
    /// The owner's byte ([`Header::spare`]); never read or written by the protocol. Also
    /// what keeps the header free of padding: its memory may be read back as plain words (a
    /// slot cache zeroes a freed block by reading and clearing its words), and padding bytes
    /// are uninitialised after a typed write.
    spare: AtomicU8,
    /// The owner's two bytes ([`Header::tag`]); never read or written by the protocol. A
    /// `core` atomic under loom too: `pcpu_rseq::add_fold_indexed` reads it as one, through
    /// a pointer, on every backend.
    tag: core::sync::atomic::AtomicU16,
}

/// The `seq` of a new header: even, and not 0, which is what zeroed memory reads. A reader
/// that began on a header whose page then went back to the OS must see `seq` change, or it
/// could accept cells it read meanwhile from the header's old slot, freed and reused since
/// (found by review: a header never relocated nor `set` kept its first `seq` until its move).
pub(crate) const FIRST_SEQ: u32 = 2;

const _: () = assert!(core::mem::offset_of!(Header, slot) == 0);
#[cfg(not(loom))]
const _: () = assert!(Header::TAG_OFFSET == 14);
// 16 bytes on real atomics (loom's are larger).
#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Header>() == 16);

impl Default for Header {
    fn default() -> Self {
        Self::new()
    }
}

impl Header {
    /// Bytes from the slot word to [`tag`](Self::tag): the `KEY_AFTER_SLOT` of
    /// `pcpu_rseq::add_fold_indexed` for an owner that keeps a fold-table key there.
    pub const TAG_OFFSET: usize = core::mem::offset_of!(Header, tag);

    /// A header with no slot: every per-CPU operation through it takes the slow path. All its
    /// bytes but the state are zero; zeroed memory is a [`State::Void`] header, which has no
    /// slot either but can never be attached (see the module docs).
    pub fn new() -> Self {
        Header {
            slot: AtomicUsize::new(DISABLED),
            seq: AtomicU32::new(FIRST_SEQ),
            state: AtomicU8::new(State::Unattached as u8),
            spare: AtomicU8::new(0),
            tag: core::sync::atomic::AtomicU16::new(0),
        }
    }

    /// The slot word to hand to `pcpu_rseq::add_fold_with` / `add_fold_with_offset`.
    #[inline(always)]
    pub fn slot_word(&self) -> &AtomicUsize {
        &self.slot
    }

    /// The slot word's address computed from a pointer to the header, keeping that pointer's
    /// provenance (a reference from [`slot_word`](Self::slot_word) covers the word alone), for
    /// `pcpu_rseq::add_fold_beside`, `add_fold_through` and `add_fold_indexed`, which also read
    /// data placed after the slot word (the last reads the header's own [`tag`](Self::tag)).
    #[inline(always)]
    pub const fn slot_word_ptr(this: *const Header) -> *const AtomicUsize {
        // The slot word is the first field of this repr(C) struct (asserted above).
        this.cast()
    }

    /// Two bytes that the header protocol never reads or writes, 0 in a new header: the
    /// owner's, at offset 14 from the slot word, where `pcpu_rseq::add_fold_indexed` can read
    /// them (pcpu-counter keeps its batch level's fold-table key there).
    #[inline(always)]
    pub fn tag(&self) -> &core::sync::atomic::AtomicU16 {
        &self.tag
    }

    /// One byte that the header protocol never reads or writes, 0 in a new header: the
    /// owner's, for a few flags of its own that would otherwise need room beside the header
    /// (pcpu-counter keeps a counter's `limited_add` lock and widest `add_batch` there, which
    /// lets its header block be the 16-byte header alone).
    #[inline]
    pub fn spare(&self) -> &AtomicU8 {
        &self.spare
    }

    /// True once the object has a per-CPU slot (it may be mid-relocation, or mid-move).
    pub fn is_attached(&self) -> bool {
        match self.state() {
            State::Attached | State::Relocating => true,
            State::Moving => self.cells() != 0,
            _ => false,
        }
    }

    /// True once the header was moved to another address: a tombstone ([`State::Moved`]), or
    /// the zeros it reads as once its owner gave its page back ([`State::Void`]).
    pub fn is_moved(&self) -> bool {
        matches!(self.state(), State::Moved | State::Void)
    }

    /// Current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The one state change: `from` → `to` if the state is `from` (`AcqRel`), else the state
    /// found.
    fn transition(&self, from: State, to: State) -> Result<(), State> {
        // Look before the compare-and-swap, which writes even when it fails (x86): a late
        // caller on a tombstone whose page went back must not bring the page back.
        let now = self.state.load(Ordering::Acquire);
        if now != from as u8 {
            return Err(State::from_u8(now));
        }
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(State::from_u8)
    }

    /// Sets the state; only for a transition the caller owns (it holds the state it leaves).
    fn set_state(&self, to: State) {
        self.state.store(to as u8, Ordering::Release);
    }

    /// Begins a `seq` write section (cells are about to move).
    fn write_begin(&self) {
        self.seq.fetch_add(1, Ordering::Relaxed);
        // Orders the odd count before the cell stores that follow: a reader that sees any of
        // them (and fences Acquire after its loads) then sees the count changed.
        pcpu_rseq::sync::fence(Ordering::Release);
    }

    /// Ends a `seq` write section.
    fn write_end(&self) {
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
        slot_cells(self.slot.load(Ordering::Acquire))
    }

    /// Attach step 1: claims an unattached header for attaching (`Unattached → Attaching`).
    /// False if it is attached, being attached, or dead.
    pub(crate) fn begin_attach(&self) -> bool {
        self.transition(State::Unattached, State::Attaching).is_ok()
    }

    /// Attach step 2: makes `addr` (a slot of zeroed cells) the header's slot, readers' and
    /// adders' view at once, and turns per-CPU operation on. The caller holds `Attaching`.
    pub(crate) fn publish_first(&self, addr: usize) {
        self.slot.store(slot_word(addr), Ordering::Release);
        self.set_state(State::Attached);
    }

    /// Attach failed (no slot): back to `Unattached`. The caller holds `Attaching`.
    pub(crate) fn abort_attach(&self) {
        self.set_state(State::Unattached);
    }

    /// Relocation step 0: claims an attached header whose slot is `expected` (`Attached →
    /// Relocating`). False if it is being attached, dropped or moved, or lives elsewhere.
    pub(crate) fn try_claim(&self, expected: usize) -> bool {
        if self.transition(State::Attached, State::Relocating).is_err() {
            return false;
        }
        if self.cells() != expected {
            self.set_state(State::Attached);
            return false;
        }
        true
    }

    /// `set` step 0: claims an attached header to zero its cells in place (`Attached →
    /// Relocating`), waiting out an attach, a relocation or a move in progress.
    pub(crate) fn begin_take(&self) -> Taken {
        loop {
            match self.transition(State::Attached, State::Relocating) {
                Ok(()) => return Taken::Slot(self.cells()),
                Err(State::Unattached | State::Dead) => return Taken::NoSlot,
                Err(State::Moved | State::Void) => return Taken::Moved,
                Err(_) => yield_now(), // briefly: attaching, relocating or moving
            }
        }
    }

    /// `set`'s protocol on this header: claim it ([`begin_take`](Self::begin_take)), turn
    /// per-CPU operation off, wait one grace period (no adder writes the cells after it), run
    /// `zero(cells)` inside a `seq` write section (readers retry around it), and turn per-CPU
    /// operation back on, same slot. `Ok(None)` if it has no slot.
    ///
    /// # Errors
    /// [`MigrateError::Moved`]: the header was moved to another address; nothing was zeroed
    /// (its owner takes the one that took its place). [`MigrateError::Fence`]: the grace
    /// period failed; nothing was zeroed, and per-CPU operation is back on.
    pub(crate) fn take<R>(&self, zero: impl FnOnce(usize) -> R) -> Result<Option<R>, MigrateError> {
        let addr = match self.begin_take() {
            Taken::Slot(addr) => addr,
            Taken::NoSlot => return Ok(None),
            Taken::Moved => return Err(MigrateError::Moved),
        };
        self.disable();
        if let Err(e) = pcpu_rseq::synchronize() {
            self.abort();
            return Err(MigrateError::Fence(e));
        }
        self.write_begin();
        let r = zero(addr);
        self.write_end();
        self.abort(); // per-CPU operation back on, same slot
        Ok(Some(r))
    }

    /// Runs `f` with per-CPU operation off: adds meanwhile take the owner's slow path (what a
    /// relocation in progress looks like to adders, for tests of slow paths). Waits out an
    /// attach, relocation or `set` in progress; `None` (and `f` not run) if the header has no
    /// slot (or was moved). Safe: the slot stays the header's, and turning it back on needs no
    /// grace period.
    pub fn with_per_cpu_off<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let Taken::Slot(_) = self.begin_take() else {
            return None;
        };
        self.disable();
        let r = f();
        self.abort();
        Some(r)
    }

    /// Detach: takes the header out of service for good (`Unattached | Attached → Dead`),
    /// waiting out an attach, a relocation or a move in progress; with a slot, both views of
    /// it are cleared (adders take the slow path, readers read nothing). A moved header is
    /// left as it is ([`Detached::Moved`]).
    pub(crate) fn begin_detach(&self) -> Detached {
        loop {
            match self.state() {
                State::Dead => return Detached::Already,
                State::Moved | State::Void => return Detached::Moved,
                s @ (State::Unattached | State::Attached) => {
                    if self.transition(s, State::Dead).is_err() {
                        continue;
                    }
                    if s == State::Unattached {
                        return Detached::NoSlot;
                    }
                    let addr = self.cells();
                    self.slot.store(DISABLED, Ordering::Release);
                    return Detached::Slot(addr);
                }
                State::Attaching | State::Relocating | State::Moving => yield_now(), // briefly
            }
        }
    }

    /// Relocation step 1, and `set` step 1 (claimed header): per-CPU operation off; adders
    /// take the slow path from their next critical section on. Returns the old slot.
    pub(crate) fn disable(&self) -> usize {
        let old = self.cells();
        // The cells without the live mark: readers still find them, adders do not.
        self.slot.store(old, Ordering::Release);
        old
    }

    /// Relocation step 3, after the grace period that follows [`disable`](Self::disable):
    /// `copy(old, new)` copies the cells, then one store publishes `new` to readers and
    /// adders. Readers meanwhile read the old cells, which nobody writes any more.
    ///
    /// The store is a `seq` write section: once this returns, the old slot may be freed and
    /// reused at once, because a reader that still reads it will see `seq` changed.
    pub(crate) fn move_to(&self, new: usize, copy: impl FnOnce(usize, usize)) {
        let old = self.cells();
        copy(old, new);
        self.write_begin();
        // Release: a reader or adder that sees `new` sees the copied cells.
        self.slot.store(slot_word(new), Ordering::Release);
        self.write_end();
    }

    /// Last step of a relocation (after the old slot was given back): the header is an
    /// ordinary attached one.
    pub(crate) fn finish(&self) {
        self.set_state(State::Attached);
    }

    /// Gives a claimed header its slot back and turns per-CPU operation on again: a failed
    /// relocation, and the last step of `set`.
    pub(crate) fn abort(&self) {
        self.slot.store(slot_word(self.cells()), Ordering::Release);
        self.set_state(State::Attached);
    }

    /// Moves this header's identity (its slot and its state) to `new`, a header that nobody
    /// else reaches yet: [`Space::move_header`](crate::Space::move_header) runs it, with the
    /// slot's owner lane; a loom model runs it with its own. False, with nothing changed, if
    /// this header is neither unattached nor attached (being attached, relocated, taken or
    /// moved, or dead).
    ///
    /// 1. Claim: `Unattached | Attached → Moving`, which every other transition waits out or
    ///    refuses.
    /// 2. `new` gets the slot word, in state `Moving` (so that a compactor that finds it
    ///    through the owner lane cannot claim it yet), and `retarget_owner(cells)` points the
    ///    slot's owner lane at it. Adders that still load this header add to the same cells.
    /// 3. `forward()`: the owner records where the header went, before anyone can see it moved.
    /// 4. The tombstone: state `Moved`, then the slot word cleared inside a `seq` write section.
    ///    Adders through this header take the slow path from now on (no grace period: the cells
    ///    are the same). A reader that began before sees `seq` change and reads again; a reader
    ///    that then finds no cells sees `Moved` too (the state is stored before the write section
    ///    begins, and its read section's first `seq` load is `Acquire`), and asks the owner.
    /// 5. `new` takes the state this header had.
    pub(crate) fn move_identity(
        &self,
        new: &Header,
        retarget_owner: impl FnOnce(usize),
        forward: impl FnOnce(),
    ) -> bool {
        let Some(attached) = self.begin_move(None) else {
            return false;
        };
        self.complete_move(attached, new, retarget_owner, forward);
        true
    }

    /// Move step 1 ([`move_identity`](Self::move_identity)): claims the header for a move
    /// (`Unattached | Attached → Moving`); `Some(attached)` if claimed. With `expected`, only
    /// an attached header whose slot is `expected` is claimed (a compactor that found the
    /// header through that slot's owner lane).
    pub(crate) fn begin_move(&self, expected: Option<usize>) -> Option<bool> {
        if self.transition(State::Attached, State::Moving).is_ok() {
            if expected.is_some_and(|e| e != self.cells()) {
                self.set_state(State::Attached);
                return None;
            }
            return Some(true);
        }
        if expected.is_none() && self.transition(State::Unattached, State::Moving).is_ok() {
            return Some(false);
        }
        None
    }

    /// Gives a header claimed by [`begin_move`](Self::begin_move) back as it was.
    pub(crate) fn abort_move(&self, attached: bool) {
        self.set_state(if attached {
            State::Attached
        } else {
            State::Unattached
        });
    }

    /// Move steps 2–5 ([`move_identity`](Self::move_identity)) on a header claimed by
    /// [`begin_move`](Self::begin_move).
    pub(crate) fn complete_move(
        &self,
        attached: bool,
        new: &Header,
        retarget_owner: impl FnOnce(usize),
        forward: impl FnOnce(),
    ) {
        self.complete_move_holding(attached, new, retarget_owner, forward);
        new.abort_move(attached);
    }

    /// [`complete_move`](Self::complete_move) up to step 4: `new` stays `Moving` (nobody
    /// detaches, zeroes, relocates or moves it) until the caller's
    /// [`abort_move`](Self::abort_move) on it, so that the caller can still write the owner's
    /// bytes in it, knowing it is alive.
    pub(crate) fn complete_move_holding(
        &self,
        attached: bool,
        new: &Header,
        retarget_owner: impl FnOnce(usize),
        forward: impl FnOnce(),
    ) {
        let word = self.slot.load(Ordering::Acquire);
        new.slot.store(word, Ordering::Relaxed);
        // Zeroed memory (a new block) reads `seq` 0: make it a new header's.
        new.seq.store(FIRST_SEQ, Ordering::Relaxed);
        new.set_state(State::Moving);
        if attached {
            retarget_owner(slot_cells(word));
        }
        forward();
        self.set_state(State::Moved);
        self.write_begin();
        self.slot.store(DISABLED, Ordering::Release);
        self.write_end();
    }

    /// Word `w` of the header's cells and the slot they were read from (0: none), read as
    /// [`sum_word`](Self::sum_word) reads them: for an owner whose headers may move
    /// ([`Space::move_header`](crate::Space::move_header)), which asks where a header with no
    /// slot went.
    ///
    /// # Safety
    /// As for [`sum_word`](Self::sum_word).
    #[inline]
    pub unsafe fn sum_word_at(&self, stride: usize, ncpu: usize, w: usize) -> (usize, i64) {
        self.read_consistent(|addr| {
            // SAFETY: forwarded from the caller.
            (addr, unsafe { cells_total(addr, stride, ncpu, w) })
        })
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
                yield_now();
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
    #[cfg(feature = "count-lane-reads")]
    crate::lane_reads::add(ncpu);
    let (mut total, mut cell, mut left) = (0i64, addr + w * 8, ncpu);
    while left != 0 {
        // SAFETY: the cell lies in the pool's mapping, which stays mapped while the pool
        // lives even if the slot is freed meanwhile; it is an 8-aligned i64 word; the load is
        // atomic, so it races with no write (a value read from a reused slot is thrown away
        // by the caller's `seq` check).
        let word = unsafe { &*(cell as *const AtomicI64) };
        total = total.wrapping_add(word.load(Ordering::Relaxed));
        cell += stride;
        left -= 1;
    }
    total
}

/// Entry points for other crates' loom models (built only under `--cfg loom`): the steps a
/// [`Space`](crate::Space) runs, over cells the model provides. pcpu-counter's model drives
/// its counter words against them.
#[cfg(loom)]
impl Header {
    /// Attaches to the slot at `addr`, as `Space::attach` does once it has a slot.
    pub fn model_attach(&self, addr: usize) {
        assert!(self.begin_attach(), "a model attaches an unattached header");
        self.publish_first(addr);
    }

    /// What a moved header's tombstone becomes when its owner gives its page back to the OS
    /// (`MADV_DONTNEED`): every field reads 0. The page changes at once for every later load
    /// (the kernel flushes every CPU's TLB before the call returns); loom has no such store,
    /// so `seq`, the first field a reader loads, is zeroed last with `Release`: a reader that
    /// finds it 0 finds the rest 0 too, one that finds it as it was may find any field either
    /// way, as on a real machine.
    pub fn model_release_page(&self) {
        assert_eq!(
            self.state(),
            State::Moved,
            "only a tombstone's page goes back"
        );
        self.slot.store(0, Ordering::Relaxed);
        self.state.store(0, Ordering::Relaxed);
        self.spare.store(0, Ordering::Relaxed);
        self.tag.store(0, core::sync::atomic::Ordering::Relaxed);
        self.seq.store(0, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Zeroed memory is a void header: no slot, its slot word sends per-CPU operations to
    /// the slow path, it reads as moved, and no transition takes it (no attach, detach, claim
    /// or move). What a late user of a tombstone whose page went back to the OS finds.
    #[test]
    fn zeroed_memory_is_a_void_header() {
        // SAFETY: all zeros is a valid value of every atomic field.
        let zeroed: Header = unsafe { core::mem::zeroed() };
        assert_eq!(zeroed.state(), State::Void);
        assert!(!zeroed.is_attached());
        assert!(zeroed.is_moved());
        assert_eq!(zeroed.cells(), 0);
        assert!(!zeroed.begin_attach());
        assert_eq!(zeroed.begin_detach(), Detached::Moved);
        assert_eq!(zeroed.begin_take(), Taken::Moved);
        assert_eq!(zeroed.begin_move(None), None);
        assert!(!zeroed.try_claim(0));
        // SAFETY: `Header` is repr(C) atomics with no padding (asserted above: 16 bytes of
        // fields), so its 16 bytes may be read as plain bytes: none was written.
        let bytes: [u8; 16] = unsafe { core::mem::transmute_copy(&zeroed) };
        assert_eq!(bytes, [0; 16], "no refusal wrote to it");
        let new = Header::new();
        assert_eq!(new.state(), State::Unattached);
        assert_eq!(new.cells(), 0);
        let params = pcpu_rseq::FoldParams::new(8, pcpu_rseq::possible_cpus(), 4);
        // SAFETY: the slot word is zero: no cell is addressed.
        assert!(unsafe { pcpu_rseq::add_fold_with(zeroed.slot_word(), &params, 1) }.is_err());
    }
}
