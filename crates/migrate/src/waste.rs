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
}

impl Waste {
    /// Resident per-CPU bytes (owner lane excluded) per live byte; 0 with nothing live.
    ///
    /// The two resident figures come from separate `mincore` sweeps, so under concurrent
    /// use the owner lanes' share can exceed the total: the difference then counts as 0.
    pub fn ratio(&self) -> f64 {
        if self.live_bytes == 0 {
            0.0
        } else {
            self.resident_bytes.saturating_sub(self.owner_lane_bytes) as f64
                / self.live_bytes as f64
        }
    }
}

impl Space {
    /// Measures live against resident bytes (reads `mincore` over every mapping: a slow path).
    pub fn waste(&self) -> Waste {
        let cached = self.cache.stats().cached;
        let (assigned, stats, class, sets) = self
            .cache
            .with_pool(|p| (p.assigned(), p.stats(), p.cell_bytes(), p.pagesets()));
        let owner_lane_bytes = sets
            .iter()
            .map(|s| resident_in(s.base + self.ncpu * self.stride, self.stride))
            .sum();
        let live = assigned.saturating_sub(cached);
        Waste {
            live_objects: live,
            live_bytes: live * class * self.ncpu,
            resident_bytes: stats.bytes_resident,
            owner_lane_bytes,
            mapped_bytes: stats.bytes_mapped,
        }
    }
}

/// Resident bytes of `[start, start + len)` (page-aligned, inside a live mapping), by mincore.
fn resident_in(start: usize, len: usize) -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: mincore only reads page tables and writes one byte per page into `vec`, which
    // has that many; if a compactor unmapped the range meanwhile it fails with ENOMEM (no UB).
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, vec.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    vec.iter().filter(|&&b| b & 1 == 1).count() * page
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
        };
        assert_eq!(w.ratio(), 0.0);
    }
}
