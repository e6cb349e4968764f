//! The pool of one size class: pagesets, densest-first assignment, release.

use std::num::NonZeroUsize;

use crate::{
    buckets::Buckets,
    config::Geometry,
    pageset::Pageset,
    resident::PageProbe,
    stats::{PagesetStats, PoolStats, ReleaseStats},
    PagesetError, PagesetId, PoolConfig, SizeClass, Slot,
};

const NONE: u32 = u32::MAX;

#[derive(Debug)]
struct Entry {
    gen: u32,
    pageset: Option<Pageset>,
    /// Next vacant entry when `pageset` is `None`.
    next_vacant: u32,
}

/// Per-CPU slots of one [`SizeClass`], carved out of pagesets.
///
/// See the [crate documentation](crate) for the layout and the policies. A `Pool` is `Send`
/// and `Sync`, but every mutating call takes `&mut self`: share it behind a `Mutex`.
///
/// Dropping the pool unmaps every pageset, live slots included: whoever writes cells must
/// keep the pool alive for as long as they do.
#[derive(Debug)]
pub struct Pool {
    geom: Geometry,
    entries: Vec<Entry>,
    vacant: u32,
    /// `(base, entry index)` of every mapped pageset, sorted by base.
    by_addr: Vec<(usize, u32)>,
    buckets: Buckets,
    assigned: usize,
    /// Retired slots ([`Pool::retire`]) in mapped pagesets. Only grows: a pageset holding a
    /// retired slot is never unmapped.
    retired: usize,
    /// Pages (of one CPU's unit; the same on every CPU) holding at least one assigned slot.
    occupied_pages: usize,
    /// Free slots (neither assigned nor retired) in pagesets that are not draining: the sum
    /// of `capacity - assigned - retired` over the bucketed pagesets.
    assignable: usize,
    mapped: usize,
    draining: usize,
    pagesets_created: u64,
    pages_released: u64,
    pagesets_unmapped: u64,
    probe: PageProbe,
    probe_min_ncpu: usize,
    /// Emptied pagesets whose mapping is kept for reuse ([`PoolConfig::keep_address_space`]);
    /// their pages were given back. Capacity for every mapped pageset is reserved when it is
    /// mapped, so keeping one never allocates (and never has to fall back to unmapping).
    kept: Vec<Pageset>,
    /// [`unassign_batch`](Self::unassign_batch)'s working space, kept between calls: a slot
    /// cache spills through it every `batch` frees of a full magazine, and a free (a counter's
    /// drop) must not call the allocator (it did, twice per spill, before).
    batch_located: Vec<(u32, usize)>,
    /// The same for the batch's pagemap mask (one flag per CPU).
    batch_mask: Vec<bool>,
}

impl Pool {
    /// From this many CPUs up, unassign asks `/proc/self/pagemap` which CPUs' pages may hold
    /// data before zeroing (one `pread`, about 0.5–1 µs); below, it reads every CPU's cell
    /// directly, which is cheaper than the system call. Measured on a 2-CPU AMD EPYC:
    /// assign + unassign costs ~1 µs with the probe at 2 CPUs.
    pub const PROBE_MIN_NCPU: usize = 16;

    /// A pool for `config`. Maps nothing until the first assignment.
    pub fn new(config: PoolConfig) -> Result<Pool, PagesetError> {
        let geom = Geometry::new(&config)?;
        Ok(Pool {
            geom,
            entries: Vec::new(),
            vacant: NONE,
            by_addr: Vec::new(),
            buckets: Buckets::new(geom.capacity),
            assigned: 0,
            retired: 0,
            occupied_pages: 0,
            assignable: 0,
            mapped: 0,
            draining: 0,
            pagesets_created: 0,
            pages_released: 0,
            pagesets_unmapped: 0,
            probe: PageProbe::new(true),
            probe_min_ncpu: Pool::PROBE_MIN_NCPU,
            kept: Vec::new(),
            batch_located: Vec::new(),
            batch_mask: Vec::new(),
        })
    }

    /// CPUs covered: each slot has this many cells.
    pub fn ncpu(&self) -> usize {
        self.geom.ncpu
    }

    /// Bytes between two CPUs' cells of a slot (the unit size): CPU `c`'s cell of `s` is at
    /// `s.addr() + c * stride()`.
    pub fn stride(&self) -> usize {
        self.geom.unit
    }

    /// The size class.
    pub fn class(&self) -> SizeClass {
        self.geom.class
    }

    /// Slots in one pageset (`unit / class size`).
    pub fn slots_per_pageset(&self) -> usize {
        self.geom.capacity
    }

    /// Bytes of one pageset mapping (`ncpu × unit`).
    pub fn pageset_bytes(&self) -> usize {
        self.geom.map_len
    }

    /// Forces unassign to consult `/proc/self/pagemap` (`true`) or never to (`false`)
    /// before zeroing, whatever the CPU count. By default the probe is used from
    /// [`Pool::PROBE_MIN_NCPU`] CPUs up. Both ways are correct; this only changes which pages
    /// get touched and what unassign costs. For tests, and for sandboxes where reading
    /// pagemap is undesirable.
    pub fn set_pagemap_probe(&mut self, enabled: bool) {
        self.probe.set_enabled(enabled);
        self.probe_min_ncpu = if enabled { 1 } else { usize::MAX };
    }

    /// Whether unassign consults pagemap (it stops if pagemap cannot be opened).
    pub fn pagemap_probe(&self) -> bool {
        self.probe.enabled() && self.geom.ncpu >= self.probe_min_ncpu
    }

    /// Assigns one slot, zeroed on every CPU.
    ///
    /// Densest first: the slot comes from the fullest non-draining pageset with room, and
    /// within it the lowest free slot; a pageset is mapped only when none has room.
    pub fn assign(&mut self) -> Result<Slot, PagesetError> {
        let index = match self.buckets.densest() {
            Some(index) => index,
            None => self.map_pageset()?,
        };
        Ok(self.take(index))
    }

    /// [`assign_batch`](Self::assign_batch) for a batch that one CPU will use on its own (a
    /// slot cache's magazine refill): densest pageset first as always, but within it, slots
    /// on cache lines that hold no slot assigned before, filling each such line before the
    /// next; only when the pageset has no such line, its lowest free slots.
    ///
    /// Why: the slots of one line share that line on every CPU (cells and owner words). If
    /// one CPU's batch filled the free half of a line whose other half another CPU is using,
    /// every add, sum, creation and drop of either would move the line between them.
    /// Lowest-first would do exactly that after frees left holes: pcpu-bench's churn
    /// measured 2t/1t 0.65-1.27 whenever the two threads' slots shared a line, 1.9-2.1
    /// otherwise. The price: holes in partly used lines are filled last (by single
    /// [`assign`](Self::assign)s, compaction, or once the pageset has no free line left), so
    /// a batch may touch a page that lowest-first would have left untouched for a while; it
    /// never maps a pageset that lowest-first would not (the same densest pageset is used),
    /// and the scan for a free line is a slow path's cost (the pool lock is held anyway).
    ///
    /// # Errors
    /// As for [`assign_batch`](Self::assign_batch); nothing is assigned then.
    pub fn assign_lines(&mut self, n: usize, out: &mut Vec<Slot>) -> Result<(), PagesetError> {
        self.make_room(n, out)?;
        let mut prev: Option<(u32, usize)> = None;
        for _ in 0..n {
            let index = self.buckets.densest().expect("room was mapped above");
            let after = prev.and_then(|(i, s)| (i == index).then_some(s));
            let (slot, s) = self.take_with(index, |ps, geom| {
                ps.take_on_free_line(geom, after)
                    .unwrap_or_else(|| ps.take_lowest(geom))
            });
            out.push(slot);
            prev = Some((index, s));
        }
        Ok(())
    }

    /// Assigns `n` slots, appending them to `out`.
    ///
    /// All or nothing: on error nothing is assigned and `out` is unchanged (pagesets mapped
    /// for the batch are unmapped again).
    pub fn assign_batch(&mut self, n: usize, out: &mut Vec<Slot>) -> Result<(), PagesetError> {
        self.make_room(n, out)?;
        for _ in 0..n {
            let index = self.buckets.densest().expect("room was mapped above");
            out.push(self.take(index));
        }
        Ok(())
    }

    /// Room in `out` for `n` more slots, and pagesets mapped until `n` slots are assignable;
    /// after it, assigning `n` slots cannot fail. On error nothing changed.
    fn make_room(&mut self, n: usize, out: &mut Vec<Slot>) -> Result<(), PagesetError> {
        out.try_reserve(n).map_err(|_| PagesetError::OutOfMemory {
            bytes: n.saturating_mul(8),
        })?;
        let missing = n.saturating_sub(self.assignable);
        let new = missing.div_ceil(self.geom.capacity);
        let mut mapped: Vec<u32> = Vec::new();
        mapped
            .try_reserve_exact(new)
            .map_err(|_| PagesetError::OutOfMemory { bytes: new * 4 })?;
        for _ in 0..new {
            match self.map_pageset() {
                Ok(index) => mapped.push(index),
                Err(e) => {
                    for index in mapped {
                        self.unmap(index);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Gives a slot back. Its cells are zeroed on every CPU (see the crate docs); its pages
    /// are not released until [`release`](Pool::release).
    ///
    /// Errors with [`PagesetError::NotAssigned`] on a double unassign and
    /// [`PagesetError::ForeignSlot`] for a slot of another pool; the pool is unchanged then.
    pub fn unassign(&mut self, slot: Slot) -> Result<(), PagesetError> {
        let (index, s) = self.locate_live(slot)?;
        let geom = self.geom;
        let ps = self.entries[index as usize]
            .pageset
            .as_mut()
            .expect("located");
        let probe = (geom.ncpu >= self.probe_min_ncpu).then_some(&mut self.probe);
        ps.zero_slot(&geom, s, probe);
        let emptied_page = ps.put(&geom, s);
        let (assigned, draining) = (ps.assigned, ps.draining);
        self.account_put(index, assigned, draining, emptied_page);
        Ok(())
    }

    /// Bookkeeping after one slot of pageset `index` went back: the pool's count, and the
    /// pageset's occupancy bucket unless it is draining (draining pagesets are in none).
    fn account_put(&mut self, index: u32, assigned: usize, draining: bool, emptied_page: bool) {
        self.assigned -= 1;
        self.occupied_pages -= usize::from(emptied_page);
        if !draining {
            // It has a free slot now (this one), so it belongs in a bucket.
            self.buckets.remove(index);
            self.buckets.insert(index, assigned);
            self.assignable += 1;
        }
    }

    /// Retires an assigned slot: it stops being assigned, and its address is never handed
    /// out again for the life of the pool.
    ///
    /// Why: a layer that moves a live object out of a sparse pageset (pcpu-migrate's header
    /// storage) cannot know when the last thread that loaded the old address has stopped
    /// reading it; such a reader must find the contents it was left (a "moved" mark) or
    /// zeros, never a new object that reused the address. So a retired slot:
    ///
    /// - is not zeroed (unlike [`unassign`](Self::unassign)): the caller left its contents
    ///   there on purpose;
    /// - is skipped by every assignment ([`assign`](Self::assign),
    ///   [`assign_batch`](Self::assign_batch), [`assign_lines`](Self::assign_lines)) and not
    ///   listed by [`live_slots`](Self::live_slots); it cannot be unassigned or retired again;
    /// - stays mapped: [`release`](Self::release) never unmaps (or keeps for reuse, with
    ///   [`PoolConfig::keep_address_space`]) a pageset holding a retired slot, so reading it
    ///   never faults while the pool lives;
    /// - still gives its memory back: `release` discards a page whose slots are all free or
    ///   retired with `MADV_DONTNEED` (on Linux), after which the retired slot reads zero.
    ///   Its readers must therefore accept zeros as well as the contents left; nobody may
    ///   write it (memory written after such a release is not given back again until a
    ///   slot of the page is assigned and the page emptied again).
    ///
    /// The free slots of its pageset stay assignable, draining or not; the pageset's free
    /// count is `capacity - assigned - retired`. A retired slot costs its address space for
    /// good: retire only what may still be read.
    ///
    /// # Errors
    /// As [`unassign`](Self::unassign): [`PagesetError::NotAssigned`] for a slot that is free
    /// or already retired, [`PagesetError::ForeignSlot`] for one that is not a slot of this
    /// pool; the pool is unchanged then.
    pub fn retire(&mut self, slot: Slot) -> Result<(), PagesetError> {
        let (index, s) = self.locate_live(slot)?;
        let geom = self.geom;
        let ps = self.entries[index as usize]
            .pageset
            .as_mut()
            .expect("located");
        let emptied_page = ps.retire(&geom, s);
        let (assigned, free, draining) = (ps.assigned, ps.free(&geom), ps.draining);
        self.assigned -= 1;
        self.retired += 1;
        self.occupied_pages -= usize::from(emptied_page);
        // Its free slots are as many as before (one assigned slot became retired), so
        // `assignable` stays; only its occupancy bucket changes.
        if !draining && free > 0 {
            self.buckets.remove(index);
            self.buckets.insert(index, assigned);
        }
        Ok(())
    }

    /// Gives many slots back at once, as [`unassign`](Pool::unassign) does one by one, but
    /// with one pagemap probe per page instead of one per slot (the cheaper way for a cache
    /// that spills a batch).
    ///
    /// All or nothing: if any slot is foreign, not assigned, or listed twice, the error
    /// names it and no slot is unassigned.
    pub fn unassign_batch(&mut self, slots: &[Slot]) -> Result<(), PagesetError> {
        // Working space kept in the pool: only a batch larger than every one before allocates.
        let mut located = core::mem::take(&mut self.batch_located);
        let mut mask = core::mem::take(&mut self.batch_mask);
        located.clear();
        let result = self.unassign_batch_in(slots, &mut located, &mut mask);
        self.batch_located = located;
        self.batch_mask = mask;
        result
    }

    /// [`unassign_batch`](Self::unassign_batch) with its working space (`located` empty).
    fn unassign_batch_in(
        &mut self,
        slots: &[Slot],
        located: &mut Vec<(u32, usize)>,
        mask: &mut Vec<bool>,
    ) -> Result<(), PagesetError> {
        let oom = PagesetError::OutOfMemory {
            bytes: slots.len() * 16,
        };
        located.try_reserve_exact(slots.len()).map_err(|_| oom)?;
        for &slot in slots {
            located.push(self.locate_live(slot)?);
        }
        located.sort_unstable();
        if let Some(w) = located.windows(2).find(|w| w[0] == w[1]) {
            let (index, s) = w[0];
            let ps = self.entries[index as usize]
                .pageset
                .as_ref()
                .expect("located");
            let addr = NonZeroUsize::new(ps.base() + s * self.geom.size).expect("not at 0");
            return Err(PagesetError::NotAssigned(Slot::from_nonzero(addr)));
        }
        let geom = self.geom;
        let use_probe = geom.ncpu >= self.probe_min_ncpu
            && mask
                .try_reserve_exact(geom.ncpu.saturating_sub(mask.len()))
                .is_ok();
        let mut probed_page: Option<(u32, usize)> = None;
        let mut have_mask = false;
        for &(index, s) in located.iter() {
            let ps = self.entries[index as usize]
                .pageset
                .as_mut()
                .expect("located");
            if use_probe {
                let page = (index, s / geom.slots_per_page);
                if probed_page != Some(page) {
                    have_mask = ps.probe_page(&geom, s, &mut self.probe, mask);
                    probed_page = Some(page);
                }
            }
            ps.zero_slot_masked(&geom, s, have_mask.then_some(&mask[..]));
            let emptied_page = ps.put(&geom, s);
            let (assigned, draining) = (ps.assigned, ps.draining);
            self.account_put(index, assigned, draining, emptied_page);
        }
        Ok(())
    }

    /// The pageset `slot` lies in (assigned or not); `None` for an address outside every
    /// pageset of this pool or off a slot boundary.
    pub fn pageset_of(&self, slot: Slot) -> Option<PagesetId> {
        let (index, _) = self.locate(slot).ok()?;
        Some(PagesetId {
            index,
            gen: self.entries[index as usize].gen,
        })
    }

    /// Every mapped pageset, with occupancy and residency (one `mincore` call each), in
    /// address order.
    pub fn pagesets(&self) -> Vec<PagesetStats> {
        self.by_addr
            .iter()
            .map(|&(_, index)| {
                let entry = &self.entries[index as usize];
                let ps = entry.pageset.as_ref().expect("indexed pagesets are mapped");
                let resident = ps.resident_bytes(&self.geom);
                PagesetStats {
                    id: PagesetId {
                        index,
                        gen: entry.gen,
                    },
                    base: ps.base(),
                    capacity: self.geom.capacity,
                    assigned: ps.assigned,
                    retired: ps.retired,
                    free: ps.free(&self.geom),
                    draining: ps.draining,
                    bytes_mapped: self.geom.map_len,
                    bytes_resident: resident.unwrap_or(0),
                    resident_known: resident.is_some(),
                }
            })
            .collect()
    }

    /// Statistics of one pageset; `None` if `id` is not mapped.
    pub fn pageset_stats(&self, id: PagesetId) -> Option<PagesetStats> {
        let ps = self.get(id)?;
        let resident = ps.resident_bytes(&self.geom);
        Some(PagesetStats {
            id,
            base: ps.base(),
            capacity: self.geom.capacity,
            assigned: ps.assigned,
            retired: ps.retired,
            free: ps.free(&self.geom),
            draining: ps.draining,
            bytes_mapped: self.geom.map_len,
            bytes_resident: resident.unwrap_or(0),
            resident_known: resident.is_some(),
        })
    }

    /// The live (assigned) slots of pageset `id`, in address order (empty if `id` is not
    /// mapped). Retired slots are not listed: they hold nothing to move.
    pub fn live_slots(&self, id: PagesetId) -> LiveSlots<'_> {
        LiveSlots {
            pageset: self.get(id),
            size: self.geom.size,
            next: 0,
        }
    }

    /// Marks pageset `id` draining (no slot is assigned from it; for a compactor that is
    /// emptying it) or assignable again.
    pub fn set_draining(&mut self, id: PagesetId, draining: bool) -> Result<(), PagesetError> {
        let geom = self.geom;
        let ps = self.get_mut(id).ok_or(PagesetError::UnknownPageset(id))?;
        if ps.draining == draining {
            return Ok(());
        }
        ps.draining = draining;
        // Retired slots are not free: a pageset whose slots are all assigned or retired goes
        // in no bucket (assignment would find no slot in it).
        let (assigned, free) = (ps.assigned, ps.free(&geom));
        if draining {
            self.buckets.remove(id.index);
            self.assignable -= free;
            self.draining += 1;
        } else {
            if free > 0 {
                self.buckets.insert(id.index, assigned);
            }
            self.assignable += free;
            self.draining -= 1;
        }
        Ok(())
    }

    /// Gives memory back: unmaps every empty pageset (draining or not) and, in the others,
    /// releases with `MADV_DONTNEED` on every CPU each page whose slots are all free (or
    /// retired).
    ///
    /// A pageset holding a retired slot ([`retire`](Self::retire)) is never unmapped (nor
    /// kept for reuse), even with no slot assigned: its retired addresses stay mapped and
    /// are never handed out again. Its pages are released like any other's.
    ///
    /// Unassign never releases by itself: one unassign/assign pair at a page boundary would
    /// otherwise cost `ncpu` madvise calls and `ncpu` page faults. Call this periodically or
    /// after a burst of unassigns (a compactor calls it after emptying pagesets).
    pub fn release(&mut self) -> ReleaseStats {
        let mut stats = ReleaseStats::default();
        let geom = self.geom;
        let mut i = 0;
        while i < self.by_addr.len() {
            let index = self.by_addr[i].1;
            let ps = self.entries[index as usize]
                .pageset
                .as_mut()
                .expect("indexed");
            if ps.assigned == 0 && ps.retired == 0 {
                self.unmap(index);
                stats.pagesets_unmapped += 1;
                stats.bytes_unmapped += geom.map_len;
                continue; // by_addr shifted down
            }
            stats.pages_released += ps.release_pages(&geom);
            i += 1;
        }
        self.pages_released += stats.pages_released as u64;
        if stats != ReleaseStats::default() {
            crate::slow_path_event!(
                class = %geom.class,
                pages = stats.pages_released,
                unmapped = stats.pagesets_unmapped,
                "released memory"
            );
        }
        stats
    }

    /// Pages of a CPU's unit (the same pages on every CPU) that hold at least one assigned
    /// slot, kept as slots come and go: O(1). `occupied_pages() × page size × ncpu` bounds
    /// what assigned slots can keep resident (before a release, freed pages may stay
    /// resident too; after it they do not).
    pub fn occupied_pages(&self) -> usize {
        self.occupied_pages
    }

    /// Pagesets mapped now (O(1); [`stats`](Self::stats) reads `mincore` besides).
    pub fn pagesets_mapped(&self) -> usize {
        self.mapped
    }

    /// Slots one page holds (of one CPU's unit).
    pub fn slots_per_page(&self) -> usize {
        self.geom.slots_per_page
    }

    /// Statistics of the whole pool; `bytes_resident` costs one `mincore` per pageset.
    pub fn stats(&self) -> PoolStats {
        let mut resident_known = true;
        let bytes_resident = self
            .by_addr
            .iter()
            .map(|&(_, index)| {
                let ps = self.entries[index as usize]
                    .pageset
                    .as_ref()
                    .expect("indexed");
                let r = ps.resident_bytes(&self.geom);
                resident_known &= r.is_some();
                r.unwrap_or(0)
            })
            .sum();
        PoolStats {
            class: self.geom.class,
            assigned: self.assigned,
            retired: self.retired,
            free: self.mapped * self.geom.capacity - self.assigned - self.retired,
            pagesets_mapped: self.mapped,
            pagesets_draining: self.draining,
            bytes_mapped: self.mapped * self.geom.map_len,
            bytes_resident,
            resident_known,
            pagesets_created: self.pagesets_created,
            pages_released: self.pages_released,
            pagesets_unmapped: self.pagesets_unmapped,
            bytes_kept: self.kept.len() * self.geom.map_len,
            pages_occupied: self.occupied_pages,
        }
    }

    fn get(&self, id: PagesetId) -> Option<&Pageset> {
        let entry = self.entries.get(id.index as usize)?;
        if entry.gen != id.gen {
            return None;
        }
        entry.pageset.as_ref()
    }

    fn get_mut(&mut self, id: PagesetId) -> Option<&mut Pageset> {
        let entry = self.entries.get_mut(id.index as usize)?;
        if entry.gen != id.gen {
            return None;
        }
        entry.pageset.as_mut()
    }

    /// The pageset index and slot index of `slot`.
    fn locate(&self, slot: Slot) -> Result<(u32, usize), PagesetError> {
        let addr = slot.addr();
        let at = self.by_addr.partition_point(|&(base, _)| base <= addr);
        let &(base, index) = at
            .checked_sub(1)
            .and_then(|i| self.by_addr.get(i))
            .ok_or(PagesetError::ForeignSlot(slot))?;
        let offset = addr - base;
        if offset >= self.geom.unit || offset % self.geom.size != 0 {
            return Err(PagesetError::ForeignSlot(slot));
        }
        Ok((index, offset / self.geom.size))
    }

    /// [`locate`](Self::locate), for a slot that must be assigned (not free, not retired).
    fn locate_live(&self, slot: Slot) -> Result<(u32, usize), PagesetError> {
        let (index, s) = self.locate(slot)?;
        let live = self.entries[index as usize]
            .pageset
            .as_ref()
            .is_some_and(|ps| ps.is_assigned(s));
        if live {
            Ok((index, s))
        } else {
            Err(PagesetError::NotAssigned(slot))
        }
    }

    /// Assigns the lowest free slot of assignable pageset `index`.
    fn take(&mut self, index: u32) -> Slot {
        self.take_with(index, |ps, geom| ps.take_lowest(geom)).0
    }

    /// [`take`](Self::take) with the slot chosen by `choose` (which must assign one free
    /// slot of the pageset, as [`Pageset::take_lowest`] does); also returns its index in the
    /// pageset.
    fn take_with(
        &mut self,
        index: u32,
        choose: impl FnOnce(&mut Pageset, &Geometry) -> (usize, bool),
    ) -> (Slot, usize) {
        let geom = self.geom;
        let ps = self.entries[index as usize]
            .pageset
            .as_mut()
            .expect("bucketed");
        debug_assert!(!ps.draining && ps.free(&geom) > 0);
        let (s, first_on_page) = choose(ps, &geom);
        let (assigned, free, base) = (ps.assigned, ps.free(&geom), ps.base());
        self.buckets.remove(index);
        // Bucketed only while it has a free slot: retired slots fill it as assigned ones do.
        if free > 0 {
            self.buckets.insert(index, assigned);
        }
        self.assigned += 1;
        self.occupied_pages += usize::from(first_on_page);
        self.assignable -= 1;
        let addr = NonZeroUsize::new(base + s * geom.size).expect("mappings are not at 0");
        (Slot::from_nonzero(addr), s)
    }

    /// Maps a new, empty, assignable pageset and returns its entry index.
    fn map_pageset(&mut self) -> Result<u32, PagesetError> {
        let oom = |bytes| PagesetError::OutOfMemory { bytes };
        // Reserve all bookkeeping first so nothing below can fail after the mapping exists.
        self.by_addr.try_reserve(1).map_err(|_| oom(16))?;
        if self.geom.keep_address_space {
            // Room to keep every pageset mapped now, this one included (`unmap` pushes).
            let room = self.mapped + 1;
            self.kept
                .try_reserve(room)
                .map_err(|_| oom(room * size_of::<Pageset>()))?;
        }
        let index = if self.vacant != NONE {
            self.vacant
        } else {
            if self.entries.len() >= NONE as usize {
                return Err(PagesetError::OutOfMemory {
                    bytes: self.geom.map_len,
                });
            }
            self.entries
                .try_reserve(1)
                .map_err(|_| oom(size_of::<Entry>()))?;
            self.entries.len() as u32
        };
        self.buckets.reserve_index(index)?;
        let gen = match self.entries.get(index as usize) {
            Some(entry) => entry.gen.wrapping_add(1),
            None => 0,
        };
        let ps = match self.kept.pop() {
            Some(ps) => ps,
            None => Pageset::map(&self.geom).inspect_err(|_e| {
                crate::slow_path_event!(class = %self.geom.class, error = %_e, "mapping a pageset failed");
            })?,
        };
        let base = ps.base();
        if index == self.vacant {
            let entry = &mut self.entries[index as usize];
            self.vacant = entry.next_vacant;
            *entry = Entry {
                gen,
                pageset: Some(ps),
                next_vacant: NONE,
            };
        } else {
            self.entries.push(Entry {
                gen,
                pageset: Some(ps),
                next_vacant: NONE,
            });
        }
        let at = self.by_addr.partition_point(|&(b, _)| b < base);
        self.by_addr.insert(at, (base, index));
        self.buckets.insert(index, 0);
        self.mapped += 1;
        self.assignable += self.geom.capacity;
        self.pagesets_created += 1;
        crate::slow_path_event!(class = %self.geom.class, base, bytes = self.geom.map_len, "mapped a pageset");
        Ok(index)
    }

    /// Unmaps empty pageset `index`, or gives its pages back and keeps its mapping for reuse
    /// ([`PoolConfig::keep_address_space`]).
    fn unmap(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        let mut ps = entry.pageset.take().expect("mapped");
        debug_assert_eq!(
            (ps.assigned, ps.retired),
            (0, 0),
            "retired slots stay mapped"
        );
        entry.next_vacant = self.vacant;
        self.vacant = index;
        self.buckets.remove(index);
        if ps.draining {
            self.draining -= 1;
        } else {
            self.assignable -= self.geom.capacity;
        }
        let base = ps.base();
        let at = self.by_addr.partition_point(|&(b, _)| b < base);
        debug_assert_eq!(self.by_addr[at], (base, index));
        self.by_addr.remove(at);
        self.mapped -= 1;
        self.pagesets_unmapped += 1;
        if self.geom.keep_address_space {
            self.pages_released += ps.release_pages(&self.geom) as u64;
            ps.draining = false;
            debug_assert!(
                self.kept.len() < self.kept.capacity(),
                "reserved when mapped"
            );
            self.kept.push(ps);
        } else {
            drop(ps); // munmap
        }
    }
}

/// Iterator over the live (assigned) slots of one pageset; see [`Pool::live_slots`].
#[derive(Debug)]
pub struct LiveSlots<'a> {
    pageset: Option<&'a Pageset>,
    size: usize,
    next: usize,
}

impl Iterator for LiveSlots<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        let ps = self.pageset?;
        let s = ps.next_live(self.next)?;
        self.next = s + 1;
        let addr = NonZeroUsize::new(ps.base() + s * self.size).expect("mappings are not at 0");
        Some(Slot::from_nonzero(addr))
    }
}
