//! A [`Space`]: relocatable per-CPU objects of one size class.
//!
//! The pool behind a space covers `ncpu + 1` lanes: lanes `0..ncpu` are the CPUs' cells, and
//! lane `ncpu` (the *owner lane*) holds, in its first word, the address of the object's
//! [`Header`]. The owner lane is how the compactor finds the header of every live slot without
//! a lock on the create path: attach writes it with one store. It costs 8 bytes per object
//! (reported apart from per-CPU memory by [`Space::waste`]), as any owner table would.

use crate::error::MigrateError;
use crate::handshake::{Compactions, Release};
use crate::header::{Header, ATTACHED, ATTACHING, DEAD, RELOCATING, UNATTACHED};
use pcpu_cache::{CacheConfig, SlotCache, SlotSource};
use pcpu_pageset::{Pool, PoolConfig, SizeClass, Slot};
use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
use pcpu_rseq::DISABLED;

/// How a [`Space`] is built.
#[derive(Debug, Clone, Copy)]
pub struct SpaceConfig {
    /// Bytes per CPU of each object.
    pub class: SizeClass,
    /// CPUs the objects cover (default: the possible CPUs).
    pub ncpu: usize,
    /// Bytes per CPU unit of a pageset (default: the pageset crate's).
    pub unit_bytes: Option<usize>,
    /// The per-CPU caches of free slots.
    pub cache: CacheConfig,
}

impl SpaceConfig {
    /// Defaults for `class`.
    pub fn new(class: SizeClass) -> Self {
        SpaceConfig {
            class,
            ncpu: pcpu_rseq::possible_cpus(),
            unit_bytes: None,
            cache: CacheConfig::new(),
        }
    }
}

/// Relocatable per-CPU objects of one size class: slots come from per-CPU caches over a
/// pageset pool, and live objects can be moved ([`Space::compact`](crate::Space::compact)).
pub struct Space {
    pub(crate) cache: SlotCache<Pool>,
    pub(crate) ncpu: usize,
    pub(crate) stride: usize,
    pub(crate) words: usize,
    /// Serialises compactions (and `release`, which must not unmap under a compactor).
    pub(crate) compact_lock: std::sync::Mutex<()>,
    /// Compactions that may hold header addresses read from owner lanes.
    pub(crate) compactions: Compactions,
}

impl core::fmt::Debug for Space {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Space")
            .field("ncpu", &self.ncpu)
            .field("words", &self.words)
            .finish_non_exhaustive()
    }
}

impl Space {
    /// Builds a space; maps nothing until the first object is attached.
    ///
    /// # Errors
    /// [`MigrateError`] for an invalid configuration.
    pub fn new(config: SpaceConfig) -> Result<Space, MigrateError> {
        // Keep the address space of emptied pagesets: readers (`sum_words`) take no guard
        // and may load from a slot a compactor has just freed; that memory must stay mapped.
        let mut pool_config = PoolConfig::new(config.class)
            .with_ncpu(config.ncpu.saturating_add(1))
            .with_keep_address_space(true);
        if let Some(unit) = config.unit_bytes {
            pool_config = pool_config.with_unit_bytes(unit);
        }
        let pool = Pool::new(pool_config)?;
        let stride = pool.stride();
        let cache = SlotCache::new(pool, config.cache)?;
        Ok(Space {
            cache,
            ncpu: config.ncpu,
            stride,
            words: config.class.bytes() / 8,
            compact_lock: std::sync::Mutex::new(()),
            compactions: Compactions::new(),
        })
    }

    /// CPUs covered (the per-CPU lanes; the owner lane is extra).
    #[inline(always)]
    pub fn ncpu(&self) -> usize {
        self.ncpu
    }

    /// Bytes from one CPU's cell of an object to the next CPU's.
    #[inline(always)]
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// 8-byte words per CPU of each object.
    pub fn words(&self) -> usize {
        self.words
    }

    /// The slot cache (for statistics and draining). Do not call the pool's `release` through
    /// it while a compaction may run: use [`release`](Self::release).
    pub fn cache(&self) -> &SlotCache<Pool> {
        &self.cache
    }

    /// The owner word of the slot at `addr`.
    ///
    /// # Safety
    /// `addr` is a slot of this space's pool that is assigned (so its owner lane is mapped).
    pub(crate) unsafe fn owner_word(&self, addr: usize) -> &AtomicUsize {
        // SAFETY: an assigned slot has `ncpu + 1` mapped, 8-aligned lanes; the owner lane is
        // the last, and AtomicUsize has usize's layout.
        unsafe { &*((addr + self.ncpu * self.stride) as *const AtomicUsize) }
    }

    /// Cell word `w` of CPU `cpu` of the slot at `addr`.
    ///
    /// # Safety
    /// As for [`owner_word`](Self::owner_word); `cpu < ncpu`, `w < words`.
    pub(crate) unsafe fn cell(&self, addr: usize, cpu: usize, w: usize) -> &AtomicI64 {
        // SAFETY: as documented; cells are 8-aligned i64 words.
        unsafe { &*((addr + cpu * self.stride + w * 8) as *const AtomicI64) }
    }

    /// Gives `header` a per-CPU slot and turns per-CPU operation on. Returns `Ok(false)` if the
    /// header was not unattached (someone else attached it, or it is dead).
    ///
    /// Lock-free in the common case: one pop from this CPU's slot cache and a few stores.
    ///
    /// # Errors
    /// The cache could not get a slot (the pool cannot grow); the header stays unattached.
    pub fn attach(&self, header: &Header) -> Result<bool, MigrateError> {
        if header
            .state
            .compare_exchange(UNATTACHED, ATTACHING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(false);
        }
        let slot = match self.cache.alloc() {
            Ok(slot) => slot,
            Err(e) => {
                header.state.store(UNATTACHED, Ordering::Release);
                return Err(e.into());
            }
        };
        let addr = <Pool as SlotSource>::slot_addr(slot);
        // SAFETY: `slot` is assigned to us by the cache.
        unsafe { self.owner_word(addr) }.store(header as *const Header as usize, Ordering::Release);
        header.publish_first(addr);
        Ok(true)
    }

    /// Takes `header`'s slot away for good and gives it back to the cache, first waiting out a
    /// compactor that is moving it. Afterwards the header is dead: attach refuses it.
    ///
    /// Returns when the header's memory may be freed. A compactor reads header addresses from
    /// owner lanes; detach clears the lane and then checks, behind a full fence, whether a
    /// compaction is running (the compactor announces itself, behind a full fence, before it
    /// reads any lane). Either the compactor sees the cleared lane, or detach sees the
    /// compactor and answers [`Release::AfterEpoch`]. With no compaction running, the answer is
    /// [`Release::Now`] and no epoch garbage piles up.
    ///
    /// # Errors
    /// The cache refused the slot (a bug elsewhere); the header is dead anyway.
    ///
    /// # Safety
    /// Nobody adds through or reads `header` any more, or will.
    pub unsafe fn detach(&self, header: &Header) -> Result<Release, MigrateError> {
        loop {
            match header.state.load(Ordering::Acquire) {
                DEAD => return Ok(Release::AfterEpoch),
                s @ (UNATTACHED | ATTACHED) => {
                    if header
                        .state
                        .compare_exchange(s, DEAD, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        if s == UNATTACHED {
                            // Never in an owner lane: no compactor knows this header.
                            return Ok(Release::Now);
                        }
                        break;
                    }
                }
                _ => std::thread::yield_now(), // ATTACHING or RELOCATING: briefly
            }
        }
        let addr = header.cells();
        // Both views at once: no slot for adders, nothing to read for readers.
        header.slot.store(DISABLED, Ordering::Release);
        // SAFETY: the slot is still assigned to this header (state was ATTACHED).
        unsafe { self.owner_word(addr) }.store(0, Ordering::Release);
        let release = self.compactions.after_lane_cleared();
        // SAFETY: `addr` came from this cache; the caller guarantees nobody uses the header,
        // so nobody reaches the cells any more.
        let slot = unsafe { <Pool as SlotSource>::slot_from_addr(addr) };
        // SAFETY: as above.
        unsafe { self.cache.free(slot) }.map_err(MigrateError::from)?;
        Ok(release)
    }

    /// Adds up word `w` of every CPU's cell of `header` into `out[w]`, consistently with
    /// relocation: a relocation in progress is waited out (it takes microseconds), a finished
    /// one is seen whole. Exact when nothing adds concurrently.
    ///
    /// `header` must be attached through this space (a header of another space gives a
    /// wrong total, and may read past a slot).
    pub fn sum_words(&self, header: &Header, out: &mut [i64]) {
        let words = out.len().min(self.words);
        // No guard: a slot freed under us stays mapped (the pool keeps its address space),
        // and the `seq` check throws away what was read from it.
        header.read_consistent(|addr| {
            for (w, o) in out.iter_mut().enumerate().take(words) {
                // SAFETY: the header is attached through this space (documented above), which
                // lives; w < words.
                *o = unsafe { crate::header::cells_total(addr, self.stride, self.ncpu, w) };
            }
        });
    }

    /// Word `w` of every CPU's cell of `header`, added up, as [`sum_words`](Self::sum_words)
    /// reads it; 0 for a word out of range.
    #[inline]
    pub fn sum_word(&self, header: &Header, w: usize) -> i64 {
        if w >= self.words {
            return 0;
        }
        // SAFETY: as in `sum_words`; w < words, checked above.
        unsafe { header.sum_word(self.stride, self.ncpu, w) }
    }

    /// Zeroes the per-CPU part of `header` (for `set`): stops per-CPU operation, waits a grace
    /// period, zeroes every cell that is not zero, and turns it back on. Returns what the
    /// cells held, per word. Updates meanwhile take the owner's slow path.
    ///
    /// # Errors
    /// The grace period failed; nothing was zeroed and per-CPU operation is back on.
    pub fn take_cells(&self, header: &Header, out: &mut [i64]) -> Result<(), MigrateError> {
        out.iter_mut().for_each(|o| *o = 0);
        loop {
            match header.state.compare_exchange(
                ATTACHED,
                RELOCATING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(UNATTACHED) | Err(DEAD) => return Ok(()),
                Err(_) => std::thread::yield_now(),
            }
        }
        let addr = header.cells();
        header.slot.store(addr | DISABLED, Ordering::Release);
        let fenced = pcpu_rseq::synchronize();
        if let Err(e) = fenced {
            header.slot.store(addr, Ordering::Release);
            header.state.store(ATTACHED, Ordering::Release);
            return Err(MigrateError::Fence(e));
        }
        header.write_begin();
        for cpu in 0..self.ncpu {
            for (w, o) in out.iter_mut().enumerate().take(self.words) {
                // SAFETY: the slot is assigned to this header (RELOCATING is ours).
                let cell = unsafe { self.cell(addr, cpu, w) };
                let v = cell.load(Ordering::Relaxed);
                if v != 0 {
                    cell.store(0, Ordering::Relaxed);
                    *o = o.wrapping_add(v);
                }
            }
        }
        header.write_end();
        header.slot.store(addr, Ordering::Release);
        header.state.store(ATTACHED, Ordering::Release);
        Ok(())
    }

    /// Gives memory back: empty pages (`MADV_DONTNEED`) and empty pagesets (unmapped). Runs
    /// under the compaction mutex, because a compactor reads owner lanes without the pool lock
    /// and relies on nothing being unmapped meanwhile. Use this rather than calling
    /// `release` on the pool through [`cache`](Self::cache).
    pub fn release(&self) -> pcpu_pageset::ReleaseStats {
        let _compacting = self.compact_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.cache.with_pool(|pool| pool.release())
    }

    /// The slot handle of an address handed out by this space (for tests and tools).
    ///
    /// # Safety
    /// `addr` came from this space's pool.
    pub unsafe fn slot_of(addr: usize) -> Slot {
        // SAFETY: forwarded.
        unsafe { <Pool as SlotSource>::slot_from_addr(addr) }
    }
}
