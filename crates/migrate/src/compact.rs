//! The compactor: empty sparse pagesets by moving their live objects into dense ones, then
//! give the emptied memory back.
//!
//! One round (`Space::compact`), under the space's compaction mutex (compactors never run
//! concurrently; adders, creators and destroyers never take it):
//! 0. drain the per-CPU caches, so that occupancy counts live objects only;
//! 1. choose: sort pagesets by occupancy, keep the fullest ones whose free room can absorb
//!    the live objects of the others, and evacuate every other pageset below the threshold;
//!    mark those draining (the pool stops assigning from them);
//! 2. pull their free slots out of every CPU's cache (`SlotCache::remove_pageset`);
//! 3. claim the live objects: read each live slot's owner lane, CAS its header
//!    ATTACHED → RELOCATING (skipping headers being attached or dropped);
//! 4. for each batch: assign new slots from the pool (densest non-draining first), disable
//!    per-CPU operation on every header of the batch, run **one** grace period
//!    (`pcpu_rseq::synchronize`), copy the non-zero cells to the new slot (readers still read
//!    the old cells, which nobody writes now), publish the new slot inside the header's `seq`
//!    write section, and unassign the old slots at once: a reader still reading one sees
//!    `seq` changed and reads again;
//! 5. un-drain what could not be emptied, and release: empty pagesets give their pages back
//!    (their address space is kept, so a late reader never faults), empty pages too.

use crate::relocate::{self, Move, SlotMemory};
use crate::space::Space;
use crate::MigrateError;
use pcpu_cache::SlotSource;
use pcpu_pageset::{PagesetId, Pool};
use pcpu_rseq::sync::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Objects moved per grace period.
const BATCH: usize = 4096;

/// When a pageset is worth emptying.
#[derive(Debug, Clone, Copy)]
pub struct CompactPolicy {
    /// Evacuate pagesets whose occupancy is below this fraction (default 0.5).
    pub occupancy_below: f64,
}

impl Default for CompactPolicy {
    fn default() -> Self {
        CompactPolicy {
            occupancy_below: 0.5,
        }
    }
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompactReport {
    /// Pagesets chosen for evacuation.
    pub pagesets_evacuated: usize,
    /// Live objects moved.
    pub slots_moved: usize,
    /// Live objects skipped (being created or dropped at that moment).
    pub slots_skipped: usize,
    /// Free cached slots pulled out of the caches.
    pub cached_removed: usize,
    /// Pagesets unmapped.
    pub pagesets_unmapped: usize,
    /// Bytes resident before and after (mincore).
    pub bytes_resident_before: usize,
    /// See `bytes_resident_before`.
    pub bytes_resident_after: usize,
    /// Grace periods run.
    pub grace_periods: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl Space {
    /// Runs one compaction round (see the module docs).
    ///
    /// # Errors
    /// A grace period or the pool failed. Objects already claimed are put back as they were
    /// (attached to their old slot), so nothing is lost.
    pub fn compact(&self, policy: &CompactPolicy) -> Result<CompactReport, MigrateError> {
        let started = Instant::now();
        // The compaction span (`tracing` feature): what moved, how long, the grace periods,
        // recorded when the round ends; events of the layers below nest in it.
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            "pcpu_compact",
            class_bytes = self.words * 8,
            pagesets_evacuated = tracing::field::Empty,
            slots_moved = tracing::field::Empty,
            slots_skipped = tracing::field::Empty,
            grace_periods = tracing::field::Empty,
            pagesets_unmapped = tracing::field::Empty,
            bytes_released = tracing::field::Empty,
            elapsed_us = tracing::field::Empty,
            failed = tracing::field::Empty,
        )
        .entered();
        let _serialised = self.compact_lock.lock();
        // Announce ourselves before reading any owner lane (pairs with the fence in detach).
        let _announced = self.compactions.announce();
        let mut report = CompactReport::default();
        // Free slots sitting in the caches count as assigned in the pool: give them back first
        // so that occupancy is what the live objects really use (the CPUs refill a batch on
        // their next create).
        report.cached_removed += self.cache.drain_all()?;
        // SAFETY: `choose` only reads and marks pagesets draining.
        let chosen = unsafe { self.cache.with_pool_mut(|pool| choose(pool, policy)) };
        report.bytes_resident_before = self.cache.with_pool(|p| p.stats().bytes_resident);
        report.pagesets_evacuated = chosen.len();
        let mut result = Ok(());
        for &id in &chosen {
            match self.cache.remove_pageset(id) {
                Ok(n) => report.cached_removed += n,
                // Keep going to the un-drain below: a pageset must not stay draining.
                Err(e) => result = Err(e.into()),
            }
        }
        let mut live: Vec<usize> = Vec::new();
        if result.is_ok() {
            // Fallible: the list can be large (8 bytes a live object), and a compaction under
            // memory pressure must fail with an error, not abort the process.
            result = self.cache.with_pool(|pool| {
                let n: usize = chosen
                    .iter()
                    .filter_map(|&id| pool.pageset_stats(id))
                    .map(|s| s.assigned)
                    .sum();
                try_reserve(&mut live, n)?;
                live.extend(
                    chosen
                        .iter()
                        .flat_map(|&id| pool.live_slots(id).map(|s| s.addr())),
                );
                Ok(())
            });
        }
        let mut moves: Vec<Move<'_>> = Vec::new();
        if let Err(e) = try_reserve(&mut moves, live.len().min(BATCH)) {
            result = result.and(Err(e));
            live.clear();
        }
        for chunk in live.chunks(BATCH) {
            // Claim under a pinned guard: a header is freed only after a grace period, so an
            // owner read from the lane stays valid until we have claimed or skipped it.
            moves.clear();
            {
                let _guard = pcpu_rseq::epoch::pin();
                moves.extend(chunk.iter().filter_map(|&old| {
                    // SAFETY: `old` was listed live under the pool lock. It may have been
                    // freed and even unassigned since (detach, then a spill), but its
                    // pageset stays mapped: only `release`, which runs under the compaction
                    // mutex we hold, unmaps. We announced this compaction before reading any
                    // lane and hold the guard.
                    unsafe { relocate::claim(self, old) }
                }));
            }
            report.slots_skipped += chunk.len() - moves.len();
            // SAFETY: every move was claimed just above on this space.
            match unsafe { relocate::relocate_batch(self, &moves, pcpu_rseq::synchronize) } {
                Ok(n) => {
                    report.slots_moved += n;
                    report.grace_periods += 1;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // SAFETY: un-drains and releases empty memory: no slot the cache holds or handed out
        // is touched.
        let released = unsafe {
            self.cache.with_pool_mut(|pool| {
                for &id in &chosen {
                    let _ = pool.set_draining(id, false);
                }
                pool.release()
            })
        };
        report.pagesets_unmapped = released.pagesets_unmapped;
        report.bytes_resident_after = self.cache.with_pool(|p| p.stats().bytes_resident);
        report.elapsed = started.elapsed();
        #[cfg(feature = "tracing")]
        {
            let bytes_released = report
                .bytes_resident_before
                .saturating_sub(report.bytes_resident_after);
            span.record("pagesets_evacuated", report.pagesets_evacuated)
                .record("slots_moved", report.slots_moved)
                .record("slots_skipped", report.slots_skipped)
                .record("grace_periods", report.grace_periods)
                .record("pagesets_unmapped", report.pagesets_unmapped)
                .record("bytes_released", bytes_released)
                .record("elapsed_us", report.elapsed.as_micros() as u64)
                .record("failed", result.is_err());
            tracing::info!(
                pagesets_evacuated = report.pagesets_evacuated,
                slots_moved = report.slots_moved,
                grace_periods = report.grace_periods,
                pagesets_unmapped = report.pagesets_unmapped,
                bytes_released,
                elapsed_us = report.elapsed.as_micros() as u64,
                "pcpu compaction"
            );
        }
        result.map(|()| report)
    }
}

/// A space's slots, for the relocation protocol: fresh slots from its pool (densest
/// non-draining pageset first), owner lanes after the cells, copies of every CPU's words.
impl SlotMemory for Space {
    fn assign(&self, n: usize, out: &mut Vec<usize>) -> Result<(), MigrateError> {
        let mut slots = Vec::new();
        try_reserve(&mut slots, n)?;
        try_reserve(out, n)?;
        // SAFETY: assigns new slots; nothing the cache holds changes.
        unsafe {
            self.cache
                .with_pool_mut(|pool| pool.assign_batch(n, &mut slots))
        }
        .map_err(MigrateError::from)?;
        out.extend(slots.iter().map(|s| s.addr()));
        Ok(())
    }

    unsafe fn unassign(&self, slots: &mut dyn Iterator<Item = usize>) {
        let give_back = |pool: &mut Pool| {
            for addr in slots {
                // SAFETY: the caller gives slots of this space's pool.
                let slot = unsafe { <Pool as SlotSource>::slot_from_addr(addr) };
                let _ = pool.unassign(slot);
            }
        };
        // SAFETY: the slots are ours (`SlotMemory::unassign`'s contract): fresh from `assign`,
        // or handed out by the cache to a header that no longer publishes them; none is in a
        // magazine.
        unsafe { self.cache.with_pool_mut(give_back) }
    }

    unsafe fn owner_lane(&self, slot: usize) -> &AtomicUsize {
        // SAFETY: the caller's contract is `owner_word`'s.
        unsafe { self.owner_word(slot) }
    }

    unsafe fn copy_cells(&self, old: usize, new: usize) {
        // The lanes in use, loaded after the grace period that every add to `old` precedes
        // (the caller's contract): each such add was allowed by a bound its owner raised after
        // raising this one (`raise_lanes`), so every lane an add reached is below it; the
        // lanes above hold zeros, as a fresh slot's do.
        let lanes = self.lanes();
        #[cfg(feature = "count-lane-reads")]
        crate::lane_reads::add_copied(lanes);
        for cpu in 0..lanes {
            for w in 0..self.words {
                // SAFETY: both slots are assigned to the caller; cpu/w in range.
                let v = unsafe { self.cell(old, cpu, w) }.load(Ordering::Relaxed);
                if v != 0 {
                    // SAFETY: as above.
                    unsafe { self.cell(new, cpu, w) }.store(v, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Reserves room for `n` more elements, or the error a compaction reports.
fn try_reserve<T>(v: &mut Vec<T>, n: usize) -> Result<(), MigrateError> {
    v.try_reserve_exact(n)
        .map_err(|_| MigrateError::OutOfMemory {
            bytes: n.saturating_mul(size_of::<T>()),
        })
}

/// Picks the pagesets to evacuate: keep the fullest whose free room holds the live objects of
/// the rest; evacuate the rest that are below the threshold. Marks them draining.
fn choose(pool: &mut Pool, policy: &CompactPolicy) -> Vec<PagesetId> {
    let mut sets = pool.pagesets();
    sets.sort_by_key(|s| std::cmp::Reverse(s.assigned));
    let total_live: usize = sets.iter().map(|s| s.assigned).sum();
    let mut kept_free = 0;
    let mut kept_live = 0;
    let mut keep = 0;
    while keep < sets.len() && kept_free < total_live - kept_live {
        kept_free += sets[keep].free;
        kept_live += sets[keep].assigned;
        keep += 1;
    }
    let chosen: Vec<PagesetId> = sets[keep..]
        .iter()
        .filter(|s| s.occupancy() < policy.occupancy_below)
        .map(|s| s.id)
        .collect();
    for &id in &chosen {
        let _ = pool.set_draining(id, true);
    }
    chosen
}
