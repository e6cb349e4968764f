//! A [`Space`]: relocatable per-CPU objects of one size class.
//!
//! The pool behind a space covers `ncpu + 1` lanes: lanes `0..ncpu` are the CPUs' cells, and
//! lane `ncpu` (the *owner lane*) holds, in its first word, the address of the object's
//! [`Header`] (and, in the top 16 bits, the slot's home lane: `owner.rs`). The owner lane is how the compactor finds the header of every live slot without
//! a lock on the create path: attach writes it with one store. It costs 8 bytes per object
//! (reported apart from per-CPU memory by [`Space::waste`]), as any owner table would.

use crate::error::MigrateError;
use crate::handshake::{Compactions, Release};
use crate::header::{Detached, Header};
use crate::owner;
use pcpu_cache::{CacheConfig, SlotCache, SlotSource};
use pcpu_pageset::{Pool, PoolConfig, SizeClass};
use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};

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
    /// Whether the space keeps a lane bound that its owner raises ([`Space::raise_lanes`])
    /// before any add to a lane at or above it: relocation's copy, [`Space::sum_words`] and
    /// [`Space::take_cells`] then walk the lanes below it only. Off (the default), the bound
    /// is `ncpu` for good.
    pub track_lanes: bool,
}

impl SpaceConfig {
    /// Defaults for `class`.
    pub fn new(class: SizeClass) -> Self {
        SpaceConfig {
            class,
            ncpu: pcpu_rseq::possible_cpus(),
            unit_bytes: None,
            cache: CacheConfig::new(),
            track_lanes: false,
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
    /// The lanes in use ([`Space::lanes`]): a high-water mark that only grows, at most
    /// `ncpu`.
    lanes: AtomicUsize,
    /// Serialises compactions (and `release`, which must not unmap under a compactor).
    pub(crate) compact_lock: pcpu_rseq::sync::Mutex<()>,
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
            lanes: AtomicUsize::new(if config.track_lanes { 0 } else { config.ncpu }),
            compact_lock: pcpu_rseq::sync::Mutex::new(()),
            compactions: Compactions::new(),
        })
    }

    /// CPUs covered (the per-CPU lanes; the owner lane is extra).
    #[inline(always)]
    pub fn ncpu(&self) -> usize {
        self.ncpu
    }

    /// The lane bound: every lane an add has reached in any object of this space is below it
    /// (with [`SpaceConfig::track_lanes`] off, `ncpu`). Relocation's copy,
    /// [`sum_words`](Self::sum_words) and [`take_cells`](Self::take_cells) walk the lanes
    /// below it.
    ///
    /// Loaded with `Acquire`: the owner raises it ([`raise_lanes`](Self::raise_lanes),
    /// `Release`) before the bound its sections check lets an add reach a new lane, so a
    /// reader that loads it after an add (or, as relocation does, after a grace period that
    /// every add to the slot precedes) reads that add's lane.
    #[inline]
    pub fn lanes(&self) -> usize {
        self.lanes.load(Ordering::Acquire).min(self.ncpu)
    }

    /// Raises the lane bound to `lanes` (capped at `ncpu`) unless it is already at least that;
    /// returns the bound in force. The owner must call it before its sections can add to a
    /// lane at or above the old bound (pcpu-counter does so on the slow path, before it raises
    /// a counter's own bound): a lane above the bound is neither copied by relocation nor
    /// summed nor zeroed by [`take_cells`](Self::take_cells), so an add there would be lost
    /// (a wrong count, never undefined behaviour: every walk stays within the slot).
    pub fn raise_lanes(&self, lanes: usize) -> usize {
        let lanes = lanes.min(self.ncpu);
        self.lanes.fetch_max(lanes, Ordering::Release).max(lanes)
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

    /// Statistics of the per-CPU slot caches. (The cache itself is not public: with its pool
    /// in hand, safe code could unassign a slot that a header still uses.)
    pub fn cache_stats(&self) -> pcpu_cache::CacheStats {
        self.cache.stats()
    }

    /// Objects one pageset holds.
    pub fn slots_per_pageset(&self) -> usize {
        self.cache.with_pool(|p| p.slots_per_pageset())
    }

    /// Pagesets mapped now (O(1)).
    pub fn pagesets_mapped(&self) -> usize {
        self.cache.with_pool(|p| p.pagesets_mapped())
    }

    /// Statistics of the pool (one `mincore` per pageset for the resident bytes).
    pub fn pool_stats(&self) -> pcpu_pageset::PoolStats {
        self.cache.with_pool(|p| p.stats())
    }

    /// Returns every slot cached on the CPUs to the pool (what a compaction does first), with
    /// their number.
    ///
    /// # Errors
    /// The pool refused a slot, or a fence failed; the other CPUs are still drained.
    pub fn drain_caches(&self) -> Result<usize, MigrateError> {
        self.cache.drain_all().map_err(MigrateError::from)
    }

    /// Returns cached slots to the pool until each CPU's cache holds at most `keep_per_cpu`,
    /// with their number.
    ///
    /// # Errors
    /// As for [`drain_caches`](Self::drain_caches).
    pub fn trim_caches(&self, keep_per_cpu: usize) -> Result<usize, MigrateError> {
        self.cache.trim(keep_per_cpu).map_err(MigrateError::from)
    }

    /// The owner word of the slot at `addr`.
    ///
    /// # Safety
    /// `addr` is a slot of this space's pool that is assigned, or was assigned at some time:
    /// its owner lane is mapped either way, since the pool keeps the address space of the
    /// pagesets it empties (see [`Space::new`]).
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
    ///
    /// # Safety
    /// From now on a compactor reaches the header through the slot's owner lane, at any time:
    /// the header must stay at this address, and its memory must not be freed or reused,
    /// until [`detach`](Self::detach) has returned and then as its [`Release`] says.
    pub unsafe fn attach(&self, header: &Header) -> Result<bool, MigrateError> {
        let header_addr = header as *const Header as usize;
        if !owner::fits(header_addr) {
            return Err(MigrateError::HeaderAddress(header_addr));
        }
        if !header.begin_attach() {
            return Ok(false);
        }
        // The lane the pop takes from: the lane before and after it, if they agree (a thread
        // that moved in between may have popped from either). Kept as the lane's id; `detach`
        // takes it modulo the magazines, as the portable backend picks one (with rseq, a lane
        // at or above that count pops and pushes nowhere: its home is refused either way).
        let before = pcpu_rseq::current_cpu();
        let slot = match self.cache.alloc() {
            Ok(slot) => slot,
            Err(e) => {
                header.abort_attach();
                return Err(e.into());
            }
        };
        let addr = <Pool as SlotSource>::slot_addr(slot);
        let home = owner::home_bits((before == pcpu_rseq::current_cpu()).then_some(before));
        // SAFETY: `slot` is assigned to us by the cache.
        unsafe { self.owner_word(addr) }.store(owner::word(header_addr, home), Ordering::Release);
        header.publish_first(addr);
        Ok(true)
    }

    /// The lane (the id the lanes follow, `pcpu_rseq::current_cpu`) of the thread that
    /// attached `header`'s slot, if it stayed on that lane during the attach, even if a
    /// relocation has moved the slot since; `None` if not known, forgotten, or the header has
    /// no slot. A placement hint, kept in the slot's owner lane: an owner whose own block came
    /// from a per-CPU cache in the same call as the slot may give the block back to that lane
    /// (pcpu-counter does, modulo its own magazine count). Read while a compactor moves the
    /// slot, it may say `None`.
    ///
    /// # Safety
    /// `header` is attached through this space, if at all (its slot word then addresses
    /// a slot of this space's pool, whose owner lane this reads).
    pub unsafe fn attach_lane(&self, header: &Header) -> Option<usize> {
        // SAFETY: forwarded from the caller.
        let lane = unsafe { self.owner_lane_of(header) }?;
        let word = lane.load(Ordering::Acquire);
        let named = owner::header_of(word) == header as *const Header as usize;
        named.then(|| owner::attach_lane(owner::home_of(word)))?
    }

    /// Forgets the home lane of `header`'s slot ([`attach_lane`](Self::attach_lane) says
    /// `None` from now on, and [`detach`](Self::detach) gives the slot to the pool): for an
    /// owner that learned the hint is wrong for it, as pcpu-counter does when its header
    /// block came from another lane's magazine than the slot (its thread moved between the
    /// two allocations). The slot then goes to the pool when detached, and so does the block,
    /// rather than one of them onto a magazine that holds neither's cache-line neighbours.
    /// A compactor moving the slot meanwhile may keep the old home: a hint either way.
    ///
    /// # Safety
    /// As for [`attach_lane`](Self::attach_lane).
    pub unsafe fn forget_home(&self, header: &Header) {
        // SAFETY: forwarded from the caller.
        let Some(lane) = (unsafe { self.owner_lane_of(header) }) else {
            return;
        };
        let mine = header as *const Header as usize;
        // Only while the lane still names this header: the slot may have been given back
        // and reused since the slot word was read.
        let _ = lane.fetch_update(Ordering::Release, Ordering::Acquire, |w| {
            (owner::header_of(w) == mine).then_some(owner::word(mine, owner::NO_HOME))
        });
    }

    /// The owner lane of `header`'s slot, if it has one; the caller checks that the lane
    /// still names `header` (the slot may have been given back and reused meanwhile).
    ///
    /// # Safety
    /// As for [`attach_lane`](Self::attach_lane).
    unsafe fn owner_lane_of(&self, header: &Header) -> Option<&AtomicUsize> {
        let addr = header.cells();
        if addr == 0 {
            return None;
        }
        // SAFETY: `addr` is a slot of this space's pool (caller), attached now or given back
        // since the slot word was read: either way inside the pool's mapping, which keeps
        // the address space of the pagesets it empties, so the owner lane is readable.
        Some(unsafe { self.owner_word(addr) })
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
    /// [`MigrateError::Moved`]: the header was moved ([`move_header`](Self::move_header));
    /// nothing changed, and the owner detaches the header that took its place. Else the cache
    /// refused the slot (a bug elsewhere); the header is dead anyway.
    ///
    /// # Safety
    /// `header` is unattached, dead, moved, or attached through this space; nobody adds
    /// through or reads it any more, or will.
    pub unsafe fn detach(&self, header: &Header) -> Result<Release, MigrateError> {
        let addr = match header.begin_detach() {
            Detached::Already => return Ok(Release::AfterEpoch),
            Detached::Moved => return Err(MigrateError::Moved),
            // Never in an owner lane: no compactor knows this header.
            Detached::NoSlot => return Ok(Release::Now),
            Detached::Slot(addr) => addr,
        };
        // SAFETY: as for the clear just below.
        let home = owner::home_of(unsafe { self.owner_word(addr) }.load(Ordering::Acquire));
        // SAFETY: the slot is still assigned to this header (it was attached through this
        // space, the caller says, and dead now: no compactor moves it any more).
        let release = unsafe { crate::relocate::clear_owner_lane(self, &self.compactions, addr) };
        // SAFETY: `addr` came from this cache; the caller guarantees nobody uses the header,
        // so nobody reaches the cells any more.
        let slot = unsafe { <Pool as SlotSource>::slot_from_addr(addr) };
        // The lanes to zero, read now that every add to the slot is done (the caller's
        // contract: they all happened before this call). Each add reached a lane below a bound
        // its owner raised after raising this one (`raise_lanes`), so the cells on lanes at or
        // above it were never written since the slot was handed out zeroed: by the cache, or
        // by a relocation that copied only the lanes below the bound into a fresh slot. The
        // owner lane (lane `ncpu`, above every bound) was cleared above.
        let lanes = self.lanes();
        #[cfg(feature = "count-lane-reads")]
        crate::lane_reads::add_freed(lanes);
        // A slot goes back to the magazine it came from, or to the pool: not to another
        // lane's magazine (its user moved between CPUs or `mm_cid`s since `attach`), where it
        // would be that lane's next allocation while its cache-line neighbours (the rest of
        // its magazine's refill) are still in the first lane's working set. Each add, sum,
        // creation and drop would then move those lines between the two CPUs for as long as
        // both reuse those slots (pcpu-bench's churn: 2t/1t 0.65-1.27 in every run where two
        // threads' working sets shared lines, 1.92-2.09 where they did not). A slot whose home
        // is not known (its thread moved during the attach, or a compactor chose it) goes to
        // the pool, for the same reason: on this lane's magazine it may join a working set
        // while its line neighbours are in another's.
        let freed = match owner::free_lane(home) {
            Some(lane) => {
                let home = Some(lane % self.cache.ncpu());
                // SAFETY: as above; the lanes at or above `lanes` hold zeros, as just argued.
                unsafe { self.cache.free_home(slot, lanes, home) }
            }
            // SAFETY: as for `free_home` just above.
            None => unsafe { self.cache.free_to_pool(slot, lanes) },
        };
        freed.map_err(MigrateError::from)?;
        Ok(release)
    }

    /// Adds up word `w` of every CPU's cell of `header` into `out[w]`, consistently with
    /// relocation: a relocation in progress is waited out (it takes microseconds), a finished
    /// one is seen whole. Exact when nothing adds concurrently.
    ///
    /// # Safety
    /// `header` is unattached, dead, or attached through this space (the cells of another
    /// space's slot may be laid out with another stride: reading them so may leave the slot).
    pub unsafe fn sum_words(&self, header: &Header, out: &mut [i64]) {
        let words = out.len().min(self.words);
        let lanes = self.lanes();
        // No guard: a slot freed under us stays mapped (the pool keeps its address space),
        // and the `seq` check throws away what was read from it.
        header.read_consistent(|addr| {
            for (w, o) in out.iter_mut().enumerate().take(words) {
                // SAFETY: the header's slots come from this space (caller), which lives;
                // w < words.
                *o = unsafe { crate::header::cells_total(addr, self.stride, lanes, w) };
            }
        });
    }

    /// Word `w` of every CPU's cell of `header`, added up, as [`sum_words`](Self::sum_words)
    /// reads it; 0 for a word out of range.
    ///
    /// # Safety
    /// As for [`sum_words`](Self::sum_words).
    #[inline]
    pub unsafe fn sum_word(&self, header: &Header, w: usize) -> i64 {
        if w >= self.words {
            return 0;
        }
        // SAFETY: the header's slots come from this space (caller); w < words, checked above;
        // the lane bound is at most `ncpu`.
        unsafe { header.sum_word(self.stride, self.lanes(), w) }
    }

    /// Zeroes the per-CPU part of `header` (for `set`): stops per-CPU operation, waits a grace
    /// period, zeroes every cell that is not zero, and turns it back on. Returns what the
    /// cells held, per word. Updates meanwhile take the owner's slow path.
    ///
    /// # Errors
    /// [`MigrateError::Moved`]: the header was moved ([`move_header`](Self::move_header)),
    /// nothing was zeroed. [`MigrateError::Fence`]: the grace period failed; nothing was
    /// zeroed and per-CPU operation is back on.
    ///
    /// # Safety
    /// `header` is unattached, dead, moved, or attached through this space (its cells are
    /// written).
    pub unsafe fn take_cells(&self, header: &Header, out: &mut [i64]) -> Result<(), MigrateError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.take_cells_below(header, || self.lanes(), out) }
    }

    /// [`take_cells`](Self::take_cells) over the lanes below `lanes()` only: the caller's
    /// lane bound (pcpu-counter's), read after the grace period, when every add that
    /// reached a cell has read a bound no higher. Lanes at or above it must hold zeros.
    ///
    /// # Errors
    /// As for [`take_cells`](Self::take_cells).
    ///
    /// # Safety
    /// As for [`take_cells`](Self::take_cells), and no add reaches a lane at or above the
    /// bound `lanes()` returns after the grace period.
    pub unsafe fn take_cells_below(
        &self,
        header: &Header,
        lanes: impl FnOnce() -> usize,
        out: &mut [i64],
    ) -> Result<(), MigrateError> {
        out.iter_mut().for_each(|o| *o = 0);
        header
            .take(|addr| {
                for cpu in 0..lanes().min(self.ncpu) {
                    for (w, o) in out.iter_mut().enumerate().take(self.words) {
                        // SAFETY: the slot is assigned to this header (a slot of this space,
                        // the caller says; the claim is ours, so nobody moves or frees it).
                        let cell = unsafe { self.cell(addr, cpu, w) };
                        let v = cell.load(Ordering::Relaxed);
                        if v != 0 {
                            cell.store(0, Ordering::Relaxed);
                            *o = o.wrapping_add(v);
                        }
                    }
                }
            })
            .map(drop)
    }

    /// Gives memory back: empty pages (`MADV_DONTNEED`) and the pages of empty pagesets (whose
    /// address space the pool keeps for reuse). Runs under the compaction mutex, because a
    /// compactor reads owner lanes without the pool lock.
    pub fn release(&self) -> pcpu_pageset::ReleaseStats {
        let _compacting = self.compact_lock.lock();
        // SAFETY: releases empty memory only: no slot the cache holds or handed out is touched.
        unsafe { self.cache.with_pool_mut(|pool| pool.release()) }
    }
}
