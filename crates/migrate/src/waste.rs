//! Waste accounting: live per-CPU bytes against resident per-CPU bytes.

use crate::space::Space;
use pcpu_cache::SlotSource;

/// Memory of a [`Space`], measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Waste {
    /// Live objects (assigned slots not sitting in a cache).
    pub live_objects: usize,
    /// What they need on the CPUs that exist: `live × class bytes × ncpu`.
    pub live_bytes: usize,
    /// Bytes resident in the pool's mappings (mincore), per-CPU lanes and owner lane.
    pub resident_bytes: usize,
    /// Of `resident_bytes`, the owner lanes' share (mincore over those lanes alone).
    pub owner_lane_bytes: usize,
    /// Bytes mapped.
    pub mapped_bytes: usize,
    /// Whether the resident figures were read: false on targets without `mincore`
    /// (Windows) or when it failed; the resident figures are then 0 and [`ratio`](Self::ratio)
    /// is NaN (unavailable, never guessed).
    pub resident_known: bool,
}

impl Waste {
    /// Resident per-CPU bytes (owner lane excluded) per live byte; 0 with nothing live; NaN
    /// when residency is unavailable (a NaN ratio is above no limit, so a waste policy never
    /// compacts on it).
    ///
    /// The two resident figures come from separate `mincore` sweeps, so under concurrent
    /// use the owner lanes' share can exceed the total: the difference then counts as 0.
    pub fn ratio(&self) -> f64 {
        if !self.resident_known {
            f64::NAN
        } else if self.live_bytes == 0 {
            0.0
        } else {
            self.resident_bytes.saturating_sub(self.owner_lane_bytes) as f64
                / self.live_bytes as f64
        }
    }
}

impl Space {
    /// Estimates [`Waste::ratio`] from counts the allocator keeps, without `mincore`: the
    /// slots that the pages holding live objects could hold, per live object (0 with nothing
    /// live). 1.0 means dense; [`compact`](Space::compact) brings it down towards that.
    ///
    /// It equals the measured ratio when every CPU writes every object, and is above it when
    /// fewer CPUs write (the measured ratio counts only pages that were written). Pages freed
    /// since the last release are not counted, though they may still be resident. Costs one
    /// pool lock and a walk over the CPUs' cache lengths: cheap enough to poll.
    pub fn waste_estimate(&self) -> f64 {
        let cached = self.cache.stats().cached;
        let (assigned, occupied, per_page) = self
            .cache
            .with_pool(|p| (p.assigned(), p.occupied_pages(), p.slots_per_page()));
        let live = assigned.saturating_sub(cached);
        if live == 0 {
            return 0.0;
        }
        (occupied * per_page) as f64 / live as f64
    }

    /// Measures live against resident bytes (reads `mincore` over every mapping: a slow path).
    pub fn waste(&self) -> Waste {
        let cached = self.cache.stats().cached;
        let (assigned, stats, class, sets) = self
            .cache
            .with_pool(|p| (p.assigned(), p.stats(), p.cell_bytes(), p.pagesets()));
        let owner_lanes: Option<usize> = sets
            .iter()
            .map(|s| pcpu_pageset::resident_bytes(s.base + self.ncpu * self.stride, self.stride))
            .sum();
        let live = assigned.saturating_sub(cached);
        Waste {
            live_objects: live,
            live_bytes: live * class * self.ncpu,
            resident_bytes: stats.bytes_resident,
            owner_lane_bytes: owner_lanes.unwrap_or(0),
            mapped_bytes: stats.bytes_mapped,
            resident_known: stats.resident_known && owner_lanes.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Waste;

    /// Two racy snapshots: the owner lanes measured after pages became resident, the total
    /// before. The ratio must not underflow (a panic in debug builds, a huge ratio and a
    /// spurious compaction in release builds, before this was saturating).
    #[test]
    fn ratio_of_racy_snapshots_does_not_underflow() {
        let w = Waste {
            live_objects: 1,
            live_bytes: 16,
            resident_bytes: 4096,
            owner_lane_bytes: 8192,
            mapped_bytes: 1 << 20,
            resident_known: true,
        };
        assert_eq!(w.ratio(), 0.0);
        let unknown = Waste {
            resident_known: false,
            ..w
        };
        assert!(unknown.ratio().is_nan(), "unavailable, not guessed");
        assert_eq!(
            unknown.ratio().partial_cmp(&1.0),
            None,
            "a waste policy compares the ratio with its limit: never above it"
        );
    }
}
