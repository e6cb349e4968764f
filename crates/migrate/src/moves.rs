//! Moving headers to other addresses (`docs/PROTOCOLS.md`, "Moving a header"): one at a time
//! ([`Space::move_header`]), or every attached header an owner wants out of the way, found
//! through the owner lanes of this space's slots ([`Space::move_headers`]), which is how
//! pcpu-counter empties sparse pages of its header storage.

use crate::header::Header;
use crate::owner;
use crate::space::Space;
use crate::MigrateError;
use pcpu_rseq::sync::Ordering;
use std::ptr::NonNull;

/// Headers looked at per epoch guard.
const BATCH: usize = 4096;

/// What [`Space::move_headers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderMoves {
    /// Headers moved.
    pub moved: usize,
    /// Headers wanted but left where they are: being attached, relocated, zeroed or dropped
    /// at that moment, or kept by the owner.
    pub skipped: usize,
    /// True if the owner ran out of new headers (`place` said `None`) before the end.
    pub out_of_room: bool,
}

impl Space {
    /// Moves `old`'s identity (its slot, attached or not) to `new`, a header at another stable
    /// address, so that the memory `old` sits in can be given back: for an owner that keeps
    /// its headers densely and empties sparse pages of them (pcpu-counter's header storage).
    /// `forward()` runs before anyone can see `old` moved: the owner records there where it
    /// went. Afterwards `old` is a tombstone ([`State::Moved`](crate::State::Moved), no slot):
    /// adders through it take the slow path, readers find no cells, and `detach` and
    /// `take_cells` answer [`MigrateError::Moved`]; the owner goes to `new` instead.
    ///
    /// Returns `Ok(false)`, with nothing changed and `forward` not run, if `old` is neither
    /// unattached nor attached (being attached, relocated, zeroed or moved, or dead).
    ///
    /// # Errors
    /// [`MigrateError::HeaderAddress`]: `new` is above the 48 bits an owner lane holds.
    ///
    /// # Safety
    /// - `old` is unattached, or attached through this space;
    /// - `new` is a new header ([`Header::new`], or zeroed memory), that nobody else reaches
    ///   before `forward`
    ///   publishes it, and from now on obeys [`attach`](Self::attach)'s contract;
    /// - `old`'s memory stays mapped for the life of the space and never holds another header:
    ///   an adder or reader that loaded its address before the move may still read it, and
    ///   must find it moved (or, once the owner has given its page back, all zero).
    pub unsafe fn move_header(
        &self,
        old: &Header,
        new: &Header,
        forward: impl FnOnce(),
    ) -> Result<bool, MigrateError> {
        let new_addr = new as *const Header as usize;
        if !owner::fits(new_addr) {
            return Err(MigrateError::HeaderAddress(new_addr));
        }
        // No compaction lock: a compactor that read `old` from the owner lane fails to claim
        // it (`Moving`, then `Moved`), one that reads `new` fails until the move is over (`new`
        // is `Moving` until then), and a header a compactor claimed first is not moved.
        let retarget = |cells: usize| {
            // SAFETY: `cells` is the slot `old` was attached to through this space (caller),
            // still assigned to it: `old` is claimed, so nobody detaches or moves it.
            let lane = unsafe { self.owner_word(cells) };
            // No home: `new` came from elsewhere than the slot's magazine, so when its owner
            // drops it, neither goes back to a magazine (where the block could share a line
            // with another lane's working set). Release: a compactor that reads `new` from the
            // lane sees it initialised.
            lane.store(owner::word(new_addr, owner::NO_HOME), Ordering::Release);
        };
        Ok(old.move_identity(new, retarget, forward))
    }

    /// Moves every attached header of this space that `wanted(address)` accepts, as
    /// [`move_header`](Self::move_header) moves one, finding them through the owner lanes of
    /// the space's slots (so unattached headers are never moved). For each: the header is
    /// claimed (one being attached, relocated, zeroed, moved or dropped is skipped); `keep`
    /// may still leave it where it is (it runs behind a full fence after the claim, so an
    /// owner's lock taken before its own fence and check of [`Header::state`] is seen, or sees
    /// `Moving`); `place()` gives its new header ([`Header::new`] or zeroed memory; `None` ends the
    /// round);
    /// `forward(old, new)` records the move before anyone can see `old` moved. Then, per batch,
    /// one grace period (`pcpu_rseq::synchronize`: no add through an old header is in flight
    /// after it), and `merge(old, new)` for each move, with `new` still claimed (alive: its
    /// owner cannot drop it yet), for what adds through `old` changed in the owner's bytes
    /// meanwhile.
    ///
    /// Runs under the compaction mutex and the owner-lane handshake, as a compaction does: a
    /// header named by an owner lane is not freed while it may be read here (detach answers
    /// [`Release::AfterEpoch`](crate::Release::AfterEpoch) meanwhile).
    ///
    /// # Errors
    /// The heap could not hold the bookkeeping (nothing was moved), or a grace period failed
    /// (the batch's moves stand, merged anyway, and the round stops).
    ///
    /// # Safety
    /// - every header attached through this space obeys [`move_header`](Self::move_header)'s
    ///   contract for `old` when `wanted` accepts its address: its memory stays mapped and
    ///   never holds another header once moved;
    /// - each header `place` gives is new ([`Header::new`] or zeroed memory), reached by nobody
    ///   else, and from
    ///   now on obeys [`attach`](Self::attach)'s contract; the ones not used are handed to
    ///   `unplace`.
    pub unsafe fn move_headers(
        &self,
        wanted: impl Fn(usize) -> bool,
        keep: impl Fn(&Header) -> bool,
        mut place: impl FnMut() -> Option<NonNull<Header>>,
        mut unplace: impl FnMut(NonNull<Header>),
        mut forward: impl FnMut(&Header, &Header),
        mut merge: impl FnMut(&Header, &Header),
    ) -> Result<HeaderMoves, MigrateError> {
        let oom = |n: usize, each: usize| MigrateError::OutOfMemory {
            bytes: n.saturating_mul(each),
        };
        let _serialised = self.compact_lock.lock();
        // Announce before reading any owner lane (pairs with the fence in detach).
        let _announced = self.compactions.announce();
        let mut slots: Vec<usize> = Vec::new();
        self.cache.with_pool(|pool| {
            let n = pool.stats().assigned;
            slots
                .try_reserve_exact(n)
                .map_err(|_| oom(n, size_of::<usize>()))?;
            for set in pool.pagesets() {
                slots.extend(pool.live_slots(set.id).map(|s| s.addr()));
            }
            Ok::<(), MigrateError>(())
        })?;
        let mut batch: Vec<(&Header, &Header)> = Vec::new();
        let n = slots.len().min(BATCH);
        batch
            .try_reserve_exact(n)
            .map_err(|_| oom(n, size_of::<(usize, usize)>()))?;
        let mut report = HeaderMoves::default();
        for chunk in slots.chunks(BATCH) {
            batch.clear();
            {
                let _guard = pcpu_rseq::epoch::pin();
                for &slot in chunk {
                    // SAFETY: listed live under the pool lock; its pageset stays mapped, since
                    // only `release`, which takes the compaction mutex we hold, unmaps.
                    let lane = unsafe { self.owner_word(slot) };
                    let named = owner::header_of(lane.load(Ordering::Acquire));
                    if named == 0 || !wanted(named) {
                        continue;
                    }
                    // SAFETY: a non-zero owner lane names a live header, or one whose memory
                    // the handshake keeps from reuse while our guard is held (we announced
                    // first). Once claimed, it outlives the guard: its detach waits for
                    // `Moving` to end, and a moved header's memory is never freed (caller).
                    let old = unsafe { &*(named as *const Header) };
                    let Some(attached) = old.begin_move(Some(slot)) else {
                        report.skipped += 1;
                        continue;
                    };
                    debug_assert!(attached, "claimed through its slot");
                    pcpu_rseq::sync::fence(Ordering::SeqCst);
                    if keep(old) {
                        old.abort_move(attached);
                        report.skipped += 1;
                        continue;
                    }
                    let Some(new) = place() else {
                        old.abort_move(attached);
                        report.out_of_room = true;
                        break;
                    };
                    // SAFETY: a new header from `place`, ours until `forward` publishes it,
                    // and claimed (`Moving`) by us from then until the merge below.
                    let new: &Header = unsafe { &*new.as_ptr() };
                    let new_addr = new as *const Header as usize;
                    if !owner::fits(new_addr) {
                        old.abort_move(attached);
                        unplace(NonNull::from(new));
                        report.skipped += 1;
                        continue;
                    }
                    old.complete_move_holding(
                        attached,
                        new,
                        |cells| {
                            debug_assert_eq!(cells, slot);
                            // No home, as in `move_header`. Release: a compactor that reads
                            // `new` from the lane sees it.
                            lane.store(owner::word(new_addr, owner::NO_HOME), Ordering::Release);
                        },
                        || forward(old, new),
                    );
                    batch.push((old, new));
                }
            }
            // Not pinned: on the portable backend the grace period waits for every pin.
            let grace = if batch.is_empty() {
                Ok(())
            } else {
                pcpu_rseq::synchronize()
            };
            for &(old, new) in &batch {
                merge(old, new);
                new.abort_move(true);
            }
            report.moved += batch.len();
            grace.map_err(MigrateError::Fence)?;
            if report.out_of_room {
                break;
            }
        }
        Ok(report)
    }
}
