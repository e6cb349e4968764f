//! Header storage: the fixed 64-byte blocks (one cache line) behind counters that have left the inline form
//! (and behind counter groups), carved out of mmap'd pages of the domain's own and handed
//! out through per-CPU magazines, like per-CPU slots. No `malloc` and no `free` per counter.
//!
//! It is a pcpu-pageset pool of one lane in the 64-byte class (densest pageset first, empty
//! pages given back by [`HeaderStore::release`]) behind a pcpu-cache slot cache with one
//! magazine per CPU: creating and destroying a header counter pops and pushes this CPU's
//! magazine, one rseq critical section each, with no lock on the common path.
//!
//! A header is never moved (a counter word points at it), so a header page stays resident
//! while it holds one live header; only the per-CPU cells, which relocation moves, are
//! compacted. Retiring a header whose address a compactor may have read waits for an epoch
//! grace period first, exactly as the heap blocks before it did ([`HeaderStore::retire`]).

use crate::CounterError;
use pcpu_cache::{CacheConfig, SlotCache, SlotSource};
use pcpu_migrate::{MigrateError, Release};
use pcpu_pageset::{Pool, PoolConfig, SizeClass};
use std::ptr::NonNull;

/// Bytes of one header block.
pub(crate) const BLOCK: usize = 64;

/// Bytes of header storage mapped at a time (4096 headers): few mappings even for millions
/// of counters, and pages are populated only as headers are handed out.
const UNIT: usize = 256 * 1024;

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
            PoolConfig::new(SizeClass::B64)
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
    /// # Errors
    /// [`CounterError::Space`] when no header page can be mapped.
    pub(crate) fn alloc<T>(&self, value: T) -> Result<NonNull<T>, CounterError> {
        const {
            assert!(core::mem::size_of::<T>() <= BLOCK && BLOCK % core::mem::align_of::<T>() == 0);
        }
        let slot = self
            .cache
            .alloc()
            .map_err(|e| CounterError::Space(e.into()))?;
        let raw = <Pool as SlotSource>::slot_addr(slot) as *mut T;
        // SAFETY: the slot is ours: 64 writable bytes, 64-aligned (pool slots are aligned to
        // their class), which hold a `T` (checked above); nobody else refers to them.
        unsafe { raw.write(value) };
        // SAFETY: slot addresses are never 0.
        Ok(unsafe { NonNull::new_unchecked(raw) })
    }

    /// Drops the `T` in `block` and gives the block back: now if `detached` says no compactor
    /// can hold its address, else after pcpu's epoch grace period.
    ///
    /// # Safety
    /// `block` came from [`alloc`](Self::alloc) of this store with this `T`, its header (if
    /// any) was just detached with result `detached`, and nothing else refers to it.
    pub(crate) unsafe fn retire<T>(
        &'static self,
        block: NonNull<T>,
        detached: Result<Release, MigrateError>,
    ) {
        let addr = block.as_ptr() as usize;
        // SAFETY: the caller's block holds a live `T` that nobody else uses.
        unsafe { block.as_ptr().drop_in_place() };
        if matches!(detached, Ok(Release::Now)) {
            // SAFETY: the caller's block, unused by anyone.
            unsafe { self.free(addr) };
            return;
        }
        let guard = pcpu_rseq::epoch::pin();
        // SAFETY: the closure gives the block back after pcpu's grace period, when no
        // compactor can still look at it; it captures an address and a `'static` store.
        unsafe { guard.defer_unchecked(move || self.free(addr)) };
    }

    /// # Safety
    /// `addr` is a block of this store that nobody refers to any more.
    unsafe fn free(&self, addr: usize) {
        // SAFETY: `addr` came from `slot_addr` of this store's pool (caller).
        let slot = unsafe { <Pool as SlotSource>::slot_from_addr(addr) };
        // SAFETY: nobody uses the block (caller). A refusal would be a bug in the cache; the
        // block is then lost, never handed out twice.
        let _ = unsafe { self.cache.free(slot) };
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
        self.cache.with_pool(|pool| pool.release());
        Ok(())
    }

    /// Live blocks and bytes resident in header pages.
    pub(crate) fn stats(&self) -> (usize, usize) {
        self.cache
            .with_pool(|pool| (SlotSource::assigned(pool), pool.stats().bytes_resident))
    }
}
