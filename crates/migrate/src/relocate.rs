//! The relocation protocol, written once over any slot memory: the steps a compactor runs on
//! the headers it moves ([`claim`], [`relocate_batch`]) and the owner-lane step of detach
//! ([`clear_owner_lane`]).
//!
//! [`Space`](crate::Space) runs them over its pool and per-CPU cache; the loom models
//! (`src/loom_tests.rs`) run the very same functions over a few cells of their own, so a
//! change to the order of the steps here is a change the models check. What differs between
//! the two is only what [`SlotMemory`] abstracts: where fresh slots come from, where a slot's
//! owner lane and cells are, and how a slot is given back. The grace period is a parameter
//! too: the models pass a no-op where no adder can run, because loom cannot schedule a
//! thread's wait loop across another thread's (see [`relocate_batch`]).

use crate::handshake::{Compactions, Release};
use crate::header::Header;
use crate::owner;
use crate::MigrateError;
use pcpu_rseq::sync::{AtomicUsize, Ordering};

/// What relocation needs of the memory it moves headers between.
///
/// Slots are named by their address (CPU 0's cell), as a header's slot word holds them.
pub(crate) trait SlotMemory {
    /// Appends `n` fresh slots to `out`, zeroed and assigned to the caller; nothing on error
    /// (an allocation failure included: [`MigrateError::OutOfMemory`], not an abort).
    fn assign(&self, n: usize, out: &mut Vec<usize>) -> Result<(), MigrateError>;

    /// Gives back slots that [`assign`](Self::assign) handed out or that relocation emptied.
    ///
    /// # Safety
    /// Every slot is assigned to the caller, and no header publishes it any more.
    unsafe fn unassign(&self, slots: &mut dyn Iterator<Item = usize>);

    /// The owner lane of `slot`: the owner word ([`crate::owner`]: the address of the header
    /// that owns it in the low 48 bits, the slot's home above), or 0.
    ///
    /// # Safety
    /// `slot` is a slot of this memory whose lanes are mapped (assigned now, or assigned at
    /// some point and not released since).
    unsafe fn owner_lane(&self, slot: usize) -> &AtomicUsize;

    /// Copies every cell of `old` to `new`.
    ///
    /// # Safety
    /// Both are slots of this memory assigned to the caller; nobody writes `old` any more
    /// (its header is disabled and a grace period has passed).
    unsafe fn copy_cells(&self, old: usize, new: usize);
}

/// A header a compactor claimed (ATTACHED → RELOCATING) on slot `old`.
pub(crate) struct Move<'h> {
    pub(crate) header: &'h Header,
    pub(crate) old: usize,
    /// The old slot's home ([`crate::owner`]), which the new slot's owner lane keeps with
    /// [`owner::MOVED`] set.
    pub(crate) home: u16,
}

/// The compactor's claim of the live slot `old`: reads its owner lane and claims the header
/// found there, or `None` (no owner any more, or a header being attached, detached or
/// relocated: skipped).
///
/// # Safety
/// `old` is a slot of `mem` listed live under the pool's lock, whose pageset stays mapped
/// until the caller is done (only the compactor releases pagesets, and the caller is it). The
/// caller announced the compaction ([`Compactions::announce`]) before reading any owner lane,
/// and holds an epoch guard ([`pcpu_rseq::epoch::pin`]) across this call: a header is freed
/// or reused only after a grace period when a compactor may have read its address (the
/// handshake), so the address read from the lane stays a header until the claim is decided.
/// A claimed header stays alive until the move finishes: its detach waits for RELOCATING to
/// end.
pub(crate) unsafe fn claim<'h, M: SlotMemory + ?Sized>(mem: &M, old: usize) -> Option<Move<'h>> {
    // SAFETY: the caller says `old`'s lanes are mapped.
    let word = unsafe { mem.owner_lane(old) }.load(Ordering::Acquire);
    let owner = owner::header_of(word);
    if owner == 0 {
        return None;
    }
    // SAFETY: a non-zero owner lane names a live header, or one whose memory the handshake
    // keeps from reuse while the caller's guard is held (see above).
    let header: &Header = unsafe { &*(owner as *const Header) };
    if !header.try_claim(old) {
        return None;
    }
    // SAFETY: RELOCATING is held by us, so detach waits for us (caller's contract): the header
    // outlives the guard, until `finish` or `abort`.
    let header = unsafe { &*(header as *const Header) };
    Some(Move {
        header,
        old,
        home: owner::home_of(word),
    })
}

/// Moves every claimed header of `moves` to a fresh slot of `mem` behind one grace period for
/// adders (`grace`; readers need none, see [`Header::move_to`]), and gives the old slots back
/// at once. On error every header is restored to its old slot and nothing is lost.
///
/// The order, which the loom models check on this very code: fresh slots; disable per-CPU
/// operation on every header (adders then go to the central count); `grace` (no adder still
/// writes an old slot after it); for each header, the new slot's owner lane, then the copy
/// and the publication inside the header's write section; then the old owner lanes cleared
/// and the old slots given back, with no second grace period (a reader still on an old slot
/// fails its `seq` check); then every header finishes (RELOCATING → ATTACHED).
///
/// # Safety
/// Every move comes from [`claim`] on `mem` and is not finished or aborted yet.
pub(crate) unsafe fn relocate_batch<M: SlotMemory + ?Sized>(
    mem: &M,
    moves: &[Move<'_>],
    grace: impl FnOnce() -> std::io::Result<()>,
) -> Result<usize, MigrateError> {
    if moves.is_empty() {
        return Ok(0);
    }
    let restore = || moves.iter().for_each(|m| m.header.abort());
    let mut fresh = Vec::new();
    if let Err(e) = mem.assign(moves.len(), &mut fresh) {
        restore();
        return Err(e);
    }
    for m in moves {
        m.header.disable();
    }
    // The grace period: no adder still writes an old slot after this.
    if let Err(e) = grace() {
        restore();
        // SAFETY: fresh from `assign`, never published.
        unsafe { mem.unassign(&mut fresh.iter().copied()) };
        return Err(MigrateError::Fence(e));
    }
    for (m, &new) in moves.iter().zip(&fresh) {
        // The new slot came from no magazine: `MOVED`; the attach lane stays known.
        let word = owner::word(m.header as *const Header as usize, m.home | owner::MOVED);
        // SAFETY: `new` is fresh from `mem` and assigned to us.
        unsafe { mem.owner_lane(new) }.store(word, Ordering::Release);
        m.header.move_to(new, |old, new| {
            // SAFETY: `old` is held through the claimed, disabled header after the grace
            // period; `new` is fresh and ours.
            unsafe { mem.copy_cells(old, new) }
        });
    }
    for m in moves {
        // SAFETY: `old` is still assigned to the claimed header, which publishes `new` now.
        unsafe { mem.owner_lane(m.old) }.store(0, Ordering::Relaxed);
    }
    // SAFETY: the old slots are assigned and no header publishes them any more.
    unsafe { mem.unassign(&mut moves.iter().map(|m| m.old)) };
    moves.iter().for_each(|m| m.header.finish());
    Ok(moves.len())
}

/// Detach's owner-lane step, after [`Header::begin_detach`] returned the header's last slot
/// `slot`: clears the lane so that no compactor learns the header's address any more, and
/// says when the header's memory may be reused.
///
/// # Safety
/// `slot` is a slot of `mem` still assigned to the dead header.
pub(crate) unsafe fn clear_owner_lane<M: SlotMemory + ?Sized>(
    mem: &M,
    compactions: &Compactions,
    slot: usize,
) -> Release {
    // SAFETY: the caller says `slot` is assigned.
    unsafe { mem.owner_lane(slot) }.store(0, Ordering::Release);
    compactions.after_lane_cleared()
}

/// The two-slot memory behind [`Header::model_relocate`](crate::Header::model_relocate):
/// pcpu-counter's loom models move their headers with the code above through it.
#[cfg(loom)]
pub(crate) mod model {
    use super::*;
    use core::cell::Cell;

    /// Slots `old` and `new` with an owner lane each; the cells are the model's, reached
    /// through its `copy` and `retire`.
    struct TwoSlots<C, R> {
        slots: [usize; 2],
        lanes: [AtomicUsize; 2],
        copy: Cell<Option<C>>,
        retire: Cell<Option<R>>,
    }

    impl<C: FnOnce(usize, usize), R: FnOnce(usize)> SlotMemory for TwoSlots<C, R> {
        fn assign(&self, n: usize, out: &mut Vec<usize>) -> Result<(), MigrateError> {
            assert_eq!(n, 1, "a model moves one header");
            out.push(self.slots[1]);
            Ok(())
        }

        unsafe fn unassign(&self, slots: &mut dyn Iterator<Item = usize>) {
            for slot in slots {
                if slot == self.slots[0] {
                    (self.retire.take().expect("the old slot is given back once"))(slot);
                }
            }
        }

        unsafe fn owner_lane(&self, slot: usize) -> &AtomicUsize {
            &self.lanes[usize::from(slot == self.slots[1])]
        }

        unsafe fn copy_cells(&self, old: usize, new: usize) {
            (self.copy.take().expect("one copy per move"))(old, new);
        }
    }

    /// See [`Header::model_relocate`](crate::Header::model_relocate).
    pub(crate) fn relocate_one(
        header: &Header,
        old: usize,
        new: usize,
        copy: impl FnOnce(usize, usize),
        retire: impl FnOnce(usize),
        adders: bool,
    ) {
        let mem = TwoSlots {
            slots: [old, new],
            lanes: [
                AtomicUsize::new(header as *const Header as usize),
                AtomicUsize::new(0),
            ],
            copy: Cell::new(Some(copy)),
            retire: Cell::new(Some(retire)),
        };
        // SAFETY: the model's header outlives the call and is never detached meanwhile, so
        // neither the announcement nor the guard that `claim` asks for has anything to
        // protect here (header reuse against a compactor is modelled on its own).
        let claimed = unsafe { claim(&mem, old) }.expect("a model relocates an attached header");
        let grace = || {
            if adders {
                pcpu_rseq::synchronize()
            } else {
                Ok(())
            }
        };
        // SAFETY: claimed just above on `mem`.
        let moved = unsafe { relocate_batch(&mem, &[claimed], grace) }.expect("relocation");
        assert_eq!(moved, 1);
        assert_eq!(mem.lanes[0].load(Ordering::Relaxed), 0, "old lane cleared");
        let new_lane = mem.lanes[1].load(Ordering::Relaxed);
        assert_eq!(
            owner::header_of(new_lane),
            header as *const Header as usize,
            "new lane names the header"
        );
        assert_ne!(
            owner::home_of(new_lane) & owner::MOVED,
            0,
            "new lane is marked moved"
        );
    }
}

/// Relocation entry points for other crates' loom models (built only under `--cfg loom`),
/// beside [`Header::model_attach`](crate::Header::model_attach): here, with the code they
/// run, so that the header's module does not depend on the compactor's.
#[cfg(loom)]
impl Header {
    /// Moves the header from its slot `old` to `new` by the compactor's own code
    /// ([`crate::relocate`]'s `claim` and `relocate_batch`, a batch of one): `copy(old, new)`
    /// copies the cells inside the publishing write section, `retire(old)` runs when the old
    /// slot is given back (at once: a model scribbles on it, as a reuse would). The adders'
    /// grace period runs only if `adders` may run: loom never preempts a thread across
    /// another's wait loop, so without adders it is left out to let a reader span the move.
    pub fn model_relocate(
        &self,
        old: usize,
        new: usize,
        copy: impl FnOnce(usize, usize),
        retire: impl FnOnce(usize),
        adders: bool,
    ) {
        model::relocate_one(self, old, new, copy, retire, adders);
    }

    /// [`model_relocate`](Self::model_relocate) between two cell arrays of a model, `old` the
    /// header's slot: copies `old` into `new`, and when the old slot is given back scribbles
    /// 1,000,000 into each of its cells (as the slot's next owner would), so that a late write
    /// to it or a late read of it shows in the model's totals.
    pub fn model_relocate_cells(
        &self,
        old: &[pcpu_rseq::sync::AtomicI64],
        new: &[pcpu_rseq::sync::AtomicI64],
        adders: bool,
    ) {
        let (from, to) = (old.as_ptr() as usize, new.as_ptr() as usize);
        self.model_relocate(
            from,
            to,
            |f, t| {
                assert_eq!((f, t), (from, to), "the model's two slots");
                for (o, n) in old.iter().zip(new) {
                    n.store(o.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            },
            |_| {
                for o in old {
                    o.store(1_000_000, Ordering::Relaxed);
                }
            },
            adders,
        );
    }
}
