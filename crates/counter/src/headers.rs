//! Header storage: the fixed 16-byte blocks (four to a cache line) behind counters that have
//! left the inline form (and behind counter groups), carved out of mmap'd pages of the
//! domain's own and handed out through per-CPU magazines, like per-CPU slots. No `malloc`
//! and no `free` per counter.
//!
//! It is a pcpu-pageset pool of one lane in the 16-byte class (densest pageset first, empty
//! pages given back by [`HeaderStore::release`]) behind a pcpu-cache slot cache with one
//! magazine per CPU: creating and destroying a header counter pops and pushes this CPU's
//! magazine, one rseq critical section each, with no lock on the common path. A magazine is
//! refilled with whole free cache lines first, and a block goes back to the magazine it came
//! from (see [`HeaderStore::retire`]), so two CPUs' counters do not share a header line.
//!
//! A counter's state word points at its header, and the user may move the counter (its two
//! words) at any time, so nothing can find the state words that name a header. Compaction
//! ([`HeaderStore::compact`], from [`Domain::compact`](crate::Domain::compact)) moves a
//! single counter's header all the same, by moving its *identity*: the live headers of a
//! sparse pageset get new blocks elsewhere (`pcpu_migrate::Space::move_headers`: same slot,
//! state and owner bytes), each move is recorded in [`crate::forward`], and the old block
//! becomes a tombstone that is never handed out again (`pcpu_pageset::Pool::retire`) while its
//! page goes back to the OS once no live block is left on it. A counter finds out the first
//! time a slow path of its own, a `sum`, `set` or drop looks at the header, and fixes its state
//! word up (an add through a tombstone takes the slow path, which does). Groups keep their
//! headers in a store of their own, which never moves. Retiring a header whose address a
//! compactor may have read waits for an epoch grace period first, exactly as the heap blocks
//! before it did ([`HeaderStore::retire`]).

use crate::words::Words;
use crate::CounterError;
use pcpu_cache::{CacheConfig, SlotCache, SlotSource};
use pcpu_migrate::{Header, HeaderMoves, MigrateError, Release, Space};
use pcpu_pageset::{PagesetId, Pool, PoolConfig, SizeClass};
use std::ptr::NonNull;

/// Bytes of one header block.
pub(crate) const BLOCK: usize = 16;

/// Bytes of header storage mapped at a time (8192 headers): few mappings even for millions
/// of counters, and pages are populated only as headers are handed out.
const UNIT: usize = 256 * 1024;

/// A header block type: its relocatable [`Header`] is its first field, so a header's
/// address is its block's.
pub(crate) trait Block {
    /// The block's header.
    fn header(&self) -> &Header;
}

/// The fixed blocks of one domain.
pub(crate) struct HeaderStore {
    cache: SlotCache<Pool>,
}

impl core::fmt::Debug for HeaderStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeaderStore").finish_non_exhaustive()
    }
}

impl HeaderStore {
    /// An empty store with a magazine for each of `ncpu` CPUs; maps nothing yet.
    pub(crate) fn new(ncpu: usize) -> Result<Self, CounterError> {
        let unit = UNIT.max(pcpu_pageset::page_size());
        let pool = Pool::new(
            PoolConfig::new(SizeClass::B16)
                .with_ncpu(1)
                .with_unit_bytes(unit),
        )
        .map_err(|e| CounterError::Space(e.into()))?;
        let cache = SlotCache::new(pool, CacheConfig::new().with_magazines(ncpu))
            .map_err(|e| CounterError::Space(e.into()))?;
        Ok(HeaderStore { cache })
    }

    /// A block holding `value`. `T` must have no padding bytes: a freed block is zeroed by
    /// reading and clearing its words, and padding is uninitialised after a typed write (the
    /// block types assert their size is the sum of their fields').
    ///
    /// Also returns the lane whose magazine the block came from: this thread's, if it was
    /// on the same one before and after (`None` if it moved meanwhile).
    ///
    /// # Errors
    /// [`CounterError::Space`] when no header page can be mapped.
    fn alloc<T>(&self, value: T) -> Result<(NonNull<T>, Option<usize>), CounterError> {
        const {
            assert!(core::mem::size_of::<T>() <= BLOCK && BLOCK % core::mem::align_of::<T>() == 0);
        }
        let lane = pcpu_rseq::current_cpu();
        let slot = self
            .cache
            .alloc()
            .map_err(|e| CounterError::Space(e.into()))?;
        let lane = (pcpu_rseq::current_cpu() == lane).then_some(lane);
        #[cfg(test)]
        seam::between_allocations();
        let raw = <Pool as SlotSource>::slot_addr(slot) as *mut T;
        // SAFETY: the slot is ours: BLOCK writable bytes, aligned to BLOCK (pool slots are
        // aligned to their class), which hold a `T` (checked above); nobody else refers to them.
        unsafe { raw.write(value) };
        // SAFETY: slot addresses are never 0.
        Ok((unsafe { NonNull::new_unchecked(raw) }, lane))
    }

    /// After `header` (of a block from lane `block_lane`'s magazine, if known) was attached:
    /// the header's home is where both its slot and its block go back when the counter is
    /// dropped ([`drop_block`](Self::drop_block)), so it must be both's. If the thread moved
    /// between the two allocations (or during one), the slot came from another lane's
    /// magazine than the block, or from an unknown one: forget the home, and both go to the
    /// pool. Else the block would go back onto the slot's lane, whose working set does not
    /// hold its line neighbour: two lanes' counters would then share a header line for as long
    /// as both reuse them (pcpu-bench's churn after its memory scenario: 2t/1t 0.90).
    ///
    /// # Safety
    /// `header` was just attached through `space`, if at all.
    unsafe fn settle_home(space: &Space, header: &Header, block_lane: Option<usize>) {
        // SAFETY: attached through `space` (caller).
        if unsafe { space.attach_lane(header) } != block_lane {
            // SAFETY: as above.
            unsafe { space.forget_home(header) };
        }
    }

    /// A block holding `value` whose header is attached to a slot of `space` (a per-CPU
    /// counter's or group's creation); returns the header's address, for a state word.
    ///
    /// # Errors
    /// No header block, or no slot: nothing is kept then.
    pub(crate) fn alloc_attached<T: Block>(
        &'static self,
        value: T,
        space: &Space,
    ) -> Result<usize, CounterError> {
        // Allocation and locks: a slow path a signal handler must not re-enter.
        let _slow = pcpu_rseq::enter_slow_path();
        let (block, lane) = self.alloc(value)?;
        // SAFETY: a live block from this store, ours alone.
        let header = unsafe { block.as_ref() }.header();
        // SAFETY: the header sits in a block of this store, whose address stays mapped and,
        // if a compaction moves the header, never holds another one (`compact`); the block is
        // given back only through `drop_block`, which detaches first and retires the block
        // as the detach's `Release` says.
        if let Err(e) = unsafe { space.attach(header) } {
            // SAFETY: never attached, never shared.
            unsafe { self.retire(block, Ok(Release::Now), lane) };
            return Err(CounterError::Space(e));
        }
        // SAFETY: just attached through `space`.
        unsafe { Self::settle_home(space, header, lane) };
        Ok(header as *const Header as usize)
    }

    /// The lazy upgrade ([`crate::lazy`]): switches `words` from the inline state `seen` to a
    /// new block holding `value`, then attaches its header to a slot of `space`. Nothing
    /// changes if another thread switched first; without memory the counter stays inline (no
    /// block) or its header atomic (no slot). Nothing is lost either way. True if this call
    /// switched the counter.
    pub(crate) fn upgrade<T: Block, const N: usize>(
        &'static self,
        words: &Words<N>,
        seen: usize,
        value: T,
        space: &Space,
    ) -> bool {
        // As in `alloc_attached`.
        let _slow = pcpu_rseq::enter_slow_path();
        let Ok((block, lane)) = self.alloc(value) else {
            crate::slow_path_event!(
                debug,
                counters = N,
                "pcpu: a counter stays inline: no header block"
            );
            return false;
        };
        // SAFETY: a live block from this store, not yet shared.
        let header = unsafe { block.as_ref() }.header();
        if words
            .publish(seen, header as *const Header as usize)
            .is_err()
        {
            // SAFETY: never published, never attached: ours alone.
            unsafe { self.retire(block, Ok(Release::Now), lane) };
            return false;
        }
        // SAFETY: as in `alloc_attached`: a block of this store, given back only through
        // `drop_block`.
        let attached = unsafe { space.attach(header) };
        // SAFETY: attached through `space`, if at all.
        unsafe { Self::settle_home(space, header, lane) };
        crate::slow_path_event!(
            debug,
            counters = N,
            per_cpu = attached.is_ok(),
            error = attached.as_ref().err().map(tracing::field::display),
            "pcpu: lazy upgrade: a counter went per-CPU"
        );
        let _ = attached;
        true
    }

    /// Detaches the header at `h` from `space` and gives its block back (a header counter's
    /// or group's drop). False, with nothing done, if a compaction moved the header
    /// ([`compact`](Self::compact)): its owner drops the one that took its place.
    ///
    /// # Safety
    /// `h` is the header address of a block of this store holding a `T` (from
    /// [`alloc_attached`](Self::alloc_attached) or [`upgrade`](Self::upgrade)), its header
    /// attached to `space` if at all, and nobody adds through or reads it any more, or will.
    pub(crate) unsafe fn drop_block<T: Block>(&'static self, h: usize, space: &Space) -> bool {
        // Detach, free, and maybe an epoch deferral that allocates: as in `alloc_attached`.
        let _slow = pcpu_rseq::enter_slow_path();
        // The block's address is the header's (its first field), taken from the state word,
        // so with the store's provenance rather than that of a shared reference.
        let block = h as *mut T;
        // SAFETY: a live `T` (caller); the reference ends before the block is retired.
        let header = unsafe { (*block).header() };
        // The lane both the slot and the block came from (`settle_home`), if known: the
        // block's home even if a relocation moved the slot since (the slot then goes to the
        // pool in `detach`). Read first: it is kept in the slot's owner lane.
        // SAFETY: attached to `space` if at all (caller).
        let home = unsafe { space.attach_lane(header) };
        // SAFETY: nobody uses the header any more (caller).
        let detached = unsafe { space.detach(header) };
        if matches!(detached, Err(MigrateError::Moved)) {
            // A compaction moved it (`compact`): the block is a tombstone, never given back.
            return false;
        }
        // SAFETY: a block of this store holding a `T` (so not null), its header just
        // detached; nobody else refers to it.
        unsafe { self.retire(NonNull::new_unchecked(block), detached, home) };
        true
    }

    /// Drops the `T` in `block` and gives the block back: now if `detached` says no compactor
    /// can hold its address (onto lane `home`'s magazine, if given and this thread is still
    /// there, else to the pool), else to the pool after pcpu's epoch grace period.
    ///
    /// Why `home`: blocks are 16 bytes, four to a cache line, and each magazine is refilled
    /// with whole lines; a block freed onto another lane's magazine would be that lane's next
    /// header while its line neighbour is still in use on the first (two threads' creations,
    /// drops and folds writing one line: `pcpu-bench --scenario churn` scaled 1.37–1.50
    /// instead of ~2 in the runs where that happened).
    ///
    /// # Safety
    /// `block` came from [`alloc`](Self::alloc) of this store with this `T`, its header (if
    /// any) was just detached with result `detached`, and nothing else refers to it.
    unsafe fn retire<T>(
        &'static self,
        block: NonNull<T>,
        detached: Result<Release, MigrateError>,
        home: Option<usize>,
    ) {
        let addr = block.as_ptr() as usize;
        // SAFETY: the caller's block holds a live `T` that nobody else uses.
        unsafe { block.as_ptr().drop_in_place() };
        if matches!(detached, Ok(Release::Now)) {
            // SAFETY: the caller's block, unused by anyone.
            unsafe { self.free(addr, home) };
            return;
        }
        let guard = pcpu_rseq::epoch::pin();
        // SAFETY: the closure gives the block back after pcpu's grace period, when no
        // compactor can still look at it; it captures an address and a `'static` store.
        unsafe { guard.defer_unchecked(move || self.free(addr, None)) };
    }

    /// Gives the block at `addr` back to lane `home`'s magazine (a lane id: taken modulo the
    /// magazine count here); to the pool if this thread
    /// is not on `home`, `home` has no magazine, or is not known (`None`: on this lane's
    /// magazine the block could join this lane's working set while its line neighbour is in
    /// another's).
    ///
    /// # Safety
    /// `addr` is a block of this store that nobody refers to any more.
    unsafe fn free(&self, addr: usize, home: Option<usize>) {
        // SAFETY: `addr` came from `slot_addr` of this store's pool (caller).
        let slot = unsafe { <Pool as SlotSource>::slot_from_addr(addr) };
        // A refusal would be a bug in the cache; the block is then lost, never handed out
        // twice.
        let _ = match home {
            // Lane ids past the magazine count share magazines, as their pops did.
            // SAFETY: nobody uses the block (caller).
            Some(lane) => unsafe {
                self.cache
                    .free_home(slot, usize::MAX, Some(lane % self.cache.ncpu()))
            },
            // SAFETY: as above.
            None => unsafe { self.cache.free_to_pool(slot, usize::MAX) },
        };
    }

    /// Empties the magazines and gives empty header pages back to the OS.
    ///
    /// Must not run while a compactor of the same domain may read headers whose blocks are
    /// free (only blocks retired after an epoch are such, and they are not free until then):
    /// so it is safe at any time.
    pub(crate) fn release(&self) -> Result<(), CounterError> {
        self.cache
            .drain_all()
            .map_err(|e| CounterError::Space(e.into()))?;
        // SAFETY: releases empty memory only: no block the cache holds or handed out is
        // touched.
        unsafe { self.cache.with_pool_mut(|pool| pool.release()) };
        Ok(())
    }

    /// Moves the live headers attached through `space` out of the sparse pages of this store
    /// (pagesets below `occupancy_below`, among those whose room the fullest ones cannot
    /// spare), and gives those pages back: each old block becomes a tombstone, retired in the
    /// pool (its address never handed out again, so that a late reader finds it or zeros,
    /// never another header), and every page left with no live block is released. Counters
    /// fix their state words up through [`crate::forward`] when they next look.
    ///
    /// For each header: `keep(old)` runs after the claim behind a full fence (true leaves it
    /// where it is: the owner holds a lock in it); `copy_owner(old, new)` copies the owner's
    /// bytes into the new header before anyone can reach it; after a batch of moves and one
    /// grace period (no add through an old header is still in flight), `merge_owner(old, new)`
    /// brings over what an add through the old one changed meanwhile, while `new` is still
    /// claimed (its counter cannot drop it yet).
    ///
    /// Unattached headers are not moved (they are found through the slots' owner lanes).
    ///
    /// # Errors
    /// The heap cannot hold the bookkeeping, the pool or the grace period failed. Headers
    /// moved before the error stay moved (and recorded); nothing is lost.
    pub(crate) fn compact(
        &self,
        space: &Space,
        occupancy_below: f64,
        keep: impl Fn(&Header) -> bool,
        copy_owner: impl Fn(&Header, &Header),
        merge_owner: impl FnMut(&Header, &Header),
    ) -> Result<HeaderMoves, CounterError> {
        let space_err =
            |e: pcpu_cache::CacheError<pcpu_pageset::PagesetError>| CounterError::Space(e.into());
        // Free blocks in the magazines count as assigned: give them back first, so that
        // occupancy is live headers only.
        self.cache.drain_all().map_err(space_err)?;
        // SAFETY: only reads the pool and marks pagesets draining.
        let chosen = unsafe {
            self.cache
                .with_pool_mut(|pool| choose(pool, occupancy_below))
        };
        let mut result = Ok(HeaderMoves::default());
        for &(id, _, _) in &chosen {
            if let Err(e) = self.cache.remove_pageset(id) {
                result = Err(space_err(e));
            }
        }
        let wanted_count: usize = chosen.iter().map(|&(_, _, live)| live).sum();
        crate::forward::shrink_if_empty();
        let mut moved: Vec<(usize, usize)> = Vec::new();
        if result.is_ok() && wanted_count > 0 {
            result = moved
                .try_reserve_exact(wanted_count)
                .map_err(|_| CounterError::OutOfMemory)
                .and_then(|()| crate::forward::reserve(wanted_count))
                .map(|()| HeaderMoves::default());
        }
        if result.is_ok() && wanted_count > 0 {
            let wanted = |addr: usize| chosen.iter().any(|(_, range, _)| range.contains(&addr));
            let place = || {
                // SAFETY: assigns a block (from a non-draining pageset); the cache's blocks are
                // untouched.
                let slot = unsafe { self.cache.with_pool_mut(|pool| pool.assign()) }.ok()?;
                NonNull::new(<Pool as SlotSource>::slot_addr(slot) as *mut Header)
            };
            let unplace = |new: NonNull<Header>| {
                // SAFETY: a block `place` assigned just now, never published.
                let slot = unsafe { <Pool as SlotSource>::slot_from_addr(new.as_ptr() as usize) };
                // SAFETY: gives back that block only.
                let _ = unsafe { self.cache.with_pool_mut(|pool| pool.unassign(slot)) };
            };
            let forward = |old: &Header, new: &Header| {
                copy_owner(old, new);
                let (old, new) = (old as *const Header as usize, new as *const Header as usize);
                crate::forward::record(old, new);
                moved.push((old, new));
            };
            // SAFETY: this store's blocks stay mapped for its life (a pageset holding a
            // retired block is never unmapped) and a moved-out block is retired below, never
            // reused; `place` gives zeroed blocks of this store (pool slots are zeroed), which
            // are given back only through `drop_block` (detach first) or `unplace`.
            result =
                unsafe { space.move_headers(wanted, keep, place, unplace, forward, merge_owner) }
                    .map_err(CounterError::Space);
        }
        if !moved.is_empty() {
            // SAFETY: retires the moved-out blocks, each a block this store handed out that
            // nobody will use again but late readers, who accept zeros.
            unsafe {
                self.cache.with_pool_mut(|pool| {
                    for &(old, _) in &moved {
                        let _ = pool.retire(<Pool as SlotSource>::slot_from_addr(old));
                    }
                })
            };
        }
        // SAFETY: un-drains, and releases memory no live block is on.
        unsafe {
            self.cache.with_pool_mut(|pool| {
                for &(id, _, _) in &chosen {
                    let _ = pool.set_draining(id, false);
                }
                pool.release();
            })
        };
        result
    }

    /// Live blocks and bytes resident in header pages.
    pub(crate) fn stats(&self) -> (usize, usize) {
        self.cache
            .with_pool(|pool| (SlotSource::assigned(pool), pool.stats().bytes_resident))
    }
}

/// The pagesets to empty: keep the fullest ones whose free room holds the live blocks of the
/// rest, and take the rest that are below `occupancy_below`; marks them draining. Each with
/// its address range and live blocks.
fn choose(
    pool: &mut Pool,
    occupancy_below: f64,
) -> Vec<(PagesetId, core::ops::Range<usize>, usize)> {
    let mut sets = pool.pagesets();
    sets.sort_by_key(|s| core::cmp::Reverse(s.assigned));
    let total_live: usize = sets.iter().map(|s| s.assigned).sum();
    let (mut kept_free, mut kept_live, mut keep) = (0, 0, 0);
    while keep < sets.len() && kept_free < total_live - kept_live {
        kept_free += sets[keep].free;
        kept_live += sets[keep].assigned;
        keep += 1;
    }
    let chosen: Vec<_> = sets[keep..]
        .iter()
        .filter(|s| s.assigned > 0 && s.occupancy() < occupancy_below)
        .map(|s| (s.id, s.base..s.base + s.bytes_mapped, s.assigned))
        .collect();
    for &(id, _, _) in &chosen {
        let _ = pool.set_draining(id, true);
    }
    chosen
}

/// Unit tests' seam: what runs between a header block's pop and its slot's, where a thread
/// may move to another lane (the test is `counter.rs`'s
/// `a_block_from_another_lane_than_its_slot_goes_to_the_pool`, since this file's tests may not
/// import the counter, which imports this file).
#[cfg(test)]
pub(crate) mod seam {
    use std::cell::Cell;

    thread_local! {
        /// What [`between_allocations`] runs next on this thread, once.
        static BETWEEN: Cell<Option<fn()>> = const { Cell::new(None) };
    }

    /// Runs, once, what [`set_between`] set on this thread.
    pub(crate) fn between_allocations() {
        if let Some(f) = BETWEEN.with(Cell::take) {
            f();
        }
    }

    /// The next block allocation of this thread runs `f` once it has its block.
    pub(crate) fn set_between(f: fn()) {
        BETWEEN.with(|b| b.set(Some(f)));
    }

    /// Whether the `f` of [`set_between`] has not run yet.
    pub(crate) fn pending() -> bool {
        BETWEEN.with(Cell::get).is_some()
    }
}
