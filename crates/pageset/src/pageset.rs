//! One pageset: a mapping of `ncpu` units and the bookkeeping of its slots.
//!
//! Layout: the mapping is `ncpu × unit` bytes; CPU `c`'s unit starts at `base + c × unit`,
//! and slot `s` occupies bytes `[s × size, (s + 1) × size)` of every unit. So the cells of
//! one slot are `unit` bytes apart, and the cells of one CPU are packed together (a CPU only
//! touches its own unit: no false sharing between CPUs, and memory is populated only for the
//! CPUs that write).
//!
//! The mapping is never dereferenced as a Rust slice: other threads write cells through raw
//! addresses at any time, so a `&[u8]`/`&mut [u8]` over it would be unsound. Everything here
//! goes through raw pointers, atomics and syscalls.

use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapMut, MmapOptions};

use crate::{config::Geometry, resident, resident::PageProbe, PagesetError};

fn try_vec<T: Clone>(n: usize, value: T) -> Result<Vec<T>, PagesetError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| PagesetError::OutOfMemory {
            bytes: n.saturating_mul(size_of::<T>()),
        })?;
    v.resize(n, value);
    Ok(v)
}

#[derive(Debug)]
pub(crate) struct Pageset {
    /// Owns the mapping; unmapped on drop. Only its raw pointer is used.
    map: MmapMut,
    /// Assigned slots.
    pub assigned: usize,
    /// Retired slots ([`Pool::retire`](crate::Pool::retire)): not assigned, never assigned
    /// again. Free slots are `capacity - assigned - retired`.
    pub retired: usize,
    pub draining: bool,
    /// Bit `s` set = slot `s` is taken: assigned or retired. Every search for a free slot
    /// looks for a clear bit, so a retired slot is skipped by all of them for good.
    live: Vec<u64>,
    /// Bit `s` set = slot `s` is retired (its `live` bit is set too). Tells a retired slot
    /// from an assigned one: only assigned slots can be unassigned, retired or listed.
    retired_bits: Vec<u64>,
    /// Assigned slots on each page (of the unit; the same on every CPU). Retired slots do
    /// not count: a page with only free and retired slots is released like a free page.
    page_assigned: Vec<u32>,
    /// Page known to read zero and hold no memory on every CPU (never assigned since the
    /// mapping or the last `MADV_DONTNEED`): `release` skips it. A page is made unclean when
    /// a slot on it is assigned, so a page holding a retired slot (assigned before) stays
    /// unclean until it is released.
    page_clean: Vec<bool>,
}

impl Pageset {
    /// Maps a new pageset. Bookkeeping is allocated first, fallibly, so a failure of either
    /// leaves nothing behind.
    pub fn map(geom: &Geometry) -> Result<Pageset, PagesetError> {
        let live = try_vec(geom.capacity.div_ceil(64), 0u64)?;
        let retired_bits = try_vec(geom.capacity.div_ceil(64), 0u64)?;
        let page_assigned = try_vec(geom.pages_per_unit, 0u32)?;
        let page_clean = try_vec(geom.pages_per_unit, true)?;
        let map = MmapOptions::new()
            .len(geom.map_len)
            .map_anon()
            .map_err(|source| PagesetError::Map {
                bytes: geom.map_len,
                source,
            })?;
        // Linux only (other systems have no transparent huge pages to refuse). Not under Miri,
        // which has no `madvise` and no huge pages: the advice never changes contents.
        #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
        // SAFETY: the range is exactly our fresh private anonymous mapping. MADV_NOHUGEPAGE
        // only changes how future faults are served (no huge pages: a 2 MiB page would
        // populate many CPUs' units at once and defeat "memory follows the writing CPUs");
        // it never changes contents. Failure (THP not built in) is harmless and ignored.
        unsafe {
            libc::madvise(
                map.as_ptr() as *mut libc::c_void,
                geom.map_len,
                libc::MADV_NOHUGEPAGE,
            )
        };
        Ok(Pageset {
            map,
            assigned: 0,
            retired: 0,
            draining: false,
            live,
            retired_bits,
            page_assigned,
            page_clean,
        })
    }

    pub fn base(&self) -> usize {
        self.map.as_ptr() as usize
    }

    /// Slots that can still be assigned: neither assigned nor retired.
    pub fn free(&self, geom: &Geometry) -> usize {
        geom.capacity - self.assigned - self.retired
    }

    /// Whether slot `s` is taken (assigned or retired): no assignment may hand it out.
    fn is_taken(&self, s: usize) -> bool {
        self.live[s / 64] & (1 << (s % 64)) != 0
    }

    /// Whether slot `s` is assigned (taken and not retired).
    pub fn is_assigned(&self, s: usize) -> bool {
        (self.live[s / 64] & !self.retired_bits[s / 64]) & (1 << (s % 64)) != 0
    }

    /// Assigns the lowest free slot (lowest-first packs live slots into the first pages, so
    /// the tail pages of a sparse pageset can be released). The pageset must have a free
    /// slot (retired slots are taken, never free).
    /// Returns the slot, and whether its page held no assigned slot before.
    pub fn take_lowest(&mut self, geom: &Geometry) -> (usize, bool) {
        let (w, word) = self
            .live
            .iter()
            .enumerate()
            .find(|(_, &w)| w != u64::MAX)
            .map(|(i, &w)| (i, w))
            .expect("take_lowest on a pageset with no free slot");
        let s = w * 64 + (!word).trailing_zeros() as usize;
        debug_assert!(s < geom.capacity, "bitmap tail bits are never free");
        self.mark_taken(geom, s)
    }

    /// Assigns a slot that shares no cache line with a slot assigned before: `s + 1` if it
    /// is free and on the same line as `after` (the previous slot of the same batch), else
    /// the first slot of the lowest line with no assigned slot. `None` if every line holds
    /// an assigned slot. Returns as [`take_lowest`](Self::take_lowest) does.
    ///
    /// A line is 64 bytes of one CPU's unit: `64 / class bytes` slots (one for 64-byte
    /// classes and up), aligned; every CPU's cells of a slot sit at the same offset of their
    /// unit, so slots that share a line on one CPU share it on all.
    pub fn take_on_free_line(
        &mut self,
        geom: &Geometry,
        after: Option<usize>,
    ) -> Option<(usize, bool)> {
        let per_line = (64 / geom.size).max(1);
        let next = after
            .map(|a| a + 1)
            .filter(|&n| n % per_line != 0 && n < geom.capacity && !self.is_taken(n));
        // A batch takes the lowest free line each time and only assigns in between, so no
        // line below the previous slot's has become free: the scan starts at its word.
        let s = match next {
            Some(n) => n,
            None => self.lowest_free_line(per_line, after.map_or(0, |a| a / 64))?,
        };
        Some(self.mark_taken(geom, s))
    }

    /// The first slot of the lowest line of `per_line` slots (a power of two up to 64, so
    /// lines never straddle bitmap words) none of which is taken (assigned or retired),
    /// looking from bitmap word `from` on.
    fn lowest_free_line(&self, per_line: usize, from: usize) -> Option<usize> {
        let mask = if per_line >= 64 {
            u64::MAX
        } else {
            (1u64 << per_line) - 1
        };
        self.live
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(w, &word)| {
                (0..64 / per_line)
                    .find(|k| (word >> (k * per_line)) & mask == 0)
                    .map(|k| w * 64 + k * per_line)
            })
    }

    /// Marks free slot `s` assigned; returns it and whether its page held no assigned slot.
    fn mark_taken(&mut self, geom: &Geometry, s: usize) -> (usize, bool) {
        debug_assert!(s < geom.capacity && !self.is_taken(s));
        self.live[s / 64] |= 1 << (s % 64);
        let page = s / geom.slots_per_page;
        self.page_assigned[page] += 1;
        self.page_clean[page] = false;
        self.assigned += 1;
        (s, self.page_assigned[page] == 1)
    }

    /// Marks slot `s` free. It must be assigned and already zeroed. Returns whether its page
    /// holds no assigned slot any more.
    pub fn put(&mut self, geom: &Geometry, s: usize) -> bool {
        debug_assert!(self.is_assigned(s));
        self.live[s / 64] &= !(1 << (s % 64));
        self.unassigned(geom, s)
    }

    /// Marks assigned slot `s` retired: no longer assigned, and never free again (its `live`
    /// bit stays set). Its contents are left as they are. Returns whether its page holds no
    /// assigned slot any more (the page's `page_clean` stays false: it was set false when
    /// `s` was assigned, and only a release makes the page clean again).
    pub fn retire(&mut self, geom: &Geometry, s: usize) -> bool {
        debug_assert!(self.is_assigned(s));
        self.retired_bits[s / 64] |= 1 << (s % 64);
        self.retired += 1;
        self.unassigned(geom, s)
    }

    /// The counts of slot `s` going from assigned to free or retired.
    fn unassigned(&mut self, geom: &Geometry, s: usize) -> bool {
        let page = s / geom.slots_per_page;
        self.page_assigned[page] -= 1;
        self.assigned -= 1;
        self.page_assigned[page] == 0
    }

    /// Zeroes slot `s` on every CPU without touching pages that surely read zero.
    ///
    /// Each cell is read first and written only if non-zero (read-before-write), so a CPU
    /// that never wrote the slot costs at most a read; with pagemap available, pages that
    /// were never touched (or were released) are skipped without any access, so they stay
    /// unpopulated and not even the zero page gets mapped. `probe` is `None` when the pool
    /// decided the probe costs more than it saves (few CPUs).
    pub fn zero_slot(&mut self, geom: &Geometry, s: usize, probe: Option<&mut PageProbe>) {
        let probed = probe.is_some_and(|probe| {
            probe.probe(
                self.first_page(geom, s),
                geom.unit,
                geom.ncpu,
                geom.page,
                |cpu, data| {
                    if data {
                        self.zero_cell(geom, s, cpu);
                    }
                },
            )
        });
        if !probed {
            (0..geom.ncpu).for_each(|cpu| self.zero_cell(geom, s, cpu));
        }
    }

    /// Fills `mask[cpu]` with "CPU `cpu`'s page holding slot `s` may hold data" for every
    /// CPU; false if pagemap could not tell (then every page may). `mask` must have room for
    /// `ncpu` entries. Valid for every slot on the same page until this pool releases
    /// pages: a page cannot lose data behind our back, and if it gains some, that data is
    /// not in the cells of slots being freed.
    pub fn probe_page(
        &self,
        geom: &Geometry,
        s: usize,
        probe: &mut PageProbe,
        mask: &mut Vec<bool>,
    ) -> bool {
        mask.clear();
        mask.resize(geom.ncpu, true);
        probe.probe(
            self.first_page(geom, s),
            geom.unit,
            geom.ncpu,
            geom.page,
            |cpu, data| mask[cpu] = data,
        )
    }

    /// Zeroes slot `s` on the CPUs `mask` marks (all CPUs without a mask), read-before-write.
    pub fn zero_slot_masked(&mut self, geom: &Geometry, s: usize, mask: Option<&[bool]>) {
        for cpu in 0..geom.ncpu {
            if mask.is_none_or(|m| m[cpu]) {
                self.zero_cell(geom, s, cpu);
            }
        }
    }

    /// Address of the page holding CPU 0's cell of slot `s`.
    fn first_page(&self, geom: &Geometry, s: usize) -> usize {
        (self.base() + s * geom.size) & !(geom.page - 1)
    }

    /// Zeroes CPU `cpu`'s cell of slot `s`, writing only non-zero words.
    fn zero_cell(&mut self, geom: &Geometry, s: usize, cpu: usize) {
        assert!(cpu < geom.ncpu && s < geom.capacity);
        let base = self.map.as_mut_ptr();
        for w in 0..geom.size / 8 {
            let offset = cpu * geom.unit + s * geom.size + w * 8;
            // SAFETY: `offset` < ncpu × unit = the mapping's length (cpu < ncpu and s <
            // capacity, asserted above; w < size / 8), and the mapping stays alive while we
            // hold `&mut self`. The address is 8-aligned: the base is page-aligned and unit,
            // size and 8·w are multiples of 8. No Rust reference to the mapping exists (it is
            // never viewed as a slice); the cell belongs to a slot being freed, whose owner
            // has given it up, so only atomic accesses (or none) race with this.
            let cell = unsafe { AtomicU64::from_ptr(base.add(offset).cast::<u64>()) };
            if cell.load(Ordering::Relaxed) != 0 {
                cell.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Gives back (`MADV_DONTNEED`, on every CPU) each page with no assigned slot (only free
    /// and retired ones) that may hold memory. Returns the number of CPU pages released.
    pub fn release_pages(&mut self, geom: &Geometry) -> usize {
        let mut released = 0;
        let mut p = 0;
        while p < geom.pages_per_unit {
            if self.page_assigned[p] != 0 || self.page_clean[p] {
                p += 1;
                continue;
            }
            let start = p;
            while p < geom.pages_per_unit && self.page_assigned[p] == 0 && !self.page_clean[p] {
                p += 1;
            }
            let len = (p - start) * geom.page;
            let base = self.map.as_mut_ptr();
            let mut ok = true;
            for cpu in 0..geom.ncpu {
                // SAFETY: pages [start, p) of CPU `cpu`'s unit lie inside the live mapping
                // (cpu < ncpu, p ≤ pages_per_unit) and the offset is page-aligned. No slot
                // on them is assigned, so no owner may access them: free slots read zero and
                // read zero again after (or nothing changes), and the contents of retired
                // slots were given up by `Pool::retire`'s caller (they read zero after, or
                // keep their contents if this fails). The range stays mapped, so a stray
                // reader of a retired slot still reads memory. No Rust reference into the
                // mapping exists.
                let done = unsafe { discard(base.add(cpu * geom.unit + start * geom.page), len) };
                if done {
                    released += p - start;
                } else {
                    ok = false;
                }
            }
            if ok {
                self.page_clean[start..p].iter_mut().for_each(|c| *c = true);
            } else {
                crate::slow_path_event!(pageset = self.base(), "madvise(MADV_DONTNEED) failed");
            }
        }
        released
    }

    /// Bytes resident (mincore) in this pageset; `None` if mincore failed or this target has
    /// none.
    pub fn resident_bytes(&self, geom: &Geometry) -> Option<usize> {
        resident::mincore_bytes(self.map.as_ptr(), geom.map_len, geom.page)
    }

    /// The next assigned slot at index ≥ `from`, if any (retired slots are skipped).
    pub fn next_live(&self, from: usize) -> Option<usize> {
        let assigned = |w: usize| Some(*self.live.get(w)? & !self.retired_bits[w]);
        let mut w = from / 64;
        let mut word = assigned(w)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(w * 64 + word.trailing_zeros() as usize);
            }
            w += 1;
            word = assigned(w)?;
        }
    }
}

/// Gives the pages of `[addr, addr + len)` back to the system so that they read zero again;
/// false if it did not (the pages then keep their memory and their contents, and the caller
/// keeps treating them as possibly written).
///
/// Linux: `MADV_DONTNEED`, which on private anonymous memory drops the pages and makes them
/// read zero. Elsewhere `MADV_DONTNEED` is only a hint that may keep the contents (macOS,
/// the BSDs), so nothing is released there: memory comes back when a whole pageset is
/// unmapped.
///
/// # Safety
/// `[addr, addr + len)` is a page-aligned range of a live private anonymous mapping with no
/// Rust reference into it, whose contents nobody needs (every slot on it is free).
unsafe fn discard(addr: *mut u8, len: usize) -> bool {
    // Miri has no `madvise`: it gets what `MADV_DONTNEED` does to the contents of private
    // anonymous memory (every byte reads zero afterwards), so the code that relies on
    // released pages reading zero runs under Miri too.
    #[cfg(miri)]
    {
        // SAFETY: as the caller guarantees: the range is mapped, writable, and referenced by
        // nobody.
        unsafe { core::ptr::write_bytes(addr, 0, len) };
        true
    }
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    {
        // SAFETY: as the caller guarantees; MADV_DONTNEED on private anonymous memory only
        // replaces the pages with zero pages.
        unsafe { libc::madvise(addr.cast::<libc::c_void>(), len, libc::MADV_DONTNEED) == 0 }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", miri)))]
    {
        let _ = (addr, len);
        false
    }
}
