//! Accounting reported by a [`Pool`](crate::Pool).

use crate::{PagesetId, SizeClass};

/// One pageset, as reported by [`Pool::pagesets`](crate::Pool::pagesets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagesetStats {
    /// Its id.
    pub id: PagesetId,
    /// Address of the mapping (CPU 0's unit).
    pub base: usize,
    /// Slots it holds (`unit / class size`).
    pub capacity: usize,
    /// Slots assigned.
    pub assigned: usize,
    /// Slots retired ([`Pool::retire`](crate::Pool::retire)): neither assigned nor
    /// assignable, ever again. The pageset stays mapped while it holds any.
    pub retired: usize,
    /// Slots that can still be assigned (`capacity - assigned - retired`).
    pub free: usize,
    /// Excluded from assignment (being emptied by a compactor).
    pub draining: bool,
    /// Bytes mapped (`ncpu × unit`).
    pub bytes_mapped: usize,
    /// Bytes resident, read from `mincore(2)`; 0 when not [`resident_known`](Self::resident_known).
    pub bytes_resident: usize,
    /// Whether `bytes_resident` was read: false on targets without `mincore` (Windows) or if
    /// it failed. Residency is then unavailable, never estimated.
    pub resident_known: bool,
}

impl PagesetStats {
    /// Fraction of the slots assigned, in `[0, 1]` (retired slots do not count).
    pub fn occupancy(&self) -> f64 {
        self.assigned as f64 / self.capacity as f64
    }
}

/// The whole pool, as reported by [`Pool::stats`](crate::Pool::stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Size class of the pool.
    pub class: SizeClass,
    /// Slots assigned.
    pub assigned: usize,
    /// Slots retired ([`Pool::retire`](crate::Pool::retire)) in mapped pagesets; never
    /// assigned again, so this only grows.
    pub retired: usize,
    /// Free slots (neither assigned nor retired) in mapped pagesets, including draining ones:
    /// pagesets mapped × capacity − `assigned` − `retired`.
    pub free: usize,
    /// Pagesets mapped now.
    pub pagesets_mapped: usize,
    /// Of those, marked draining.
    pub pagesets_draining: usize,
    /// Bytes mapped now.
    pub bytes_mapped: usize,
    /// Bytes resident now, read from `mincore(2)` over every mapping (see
    /// [`resident`](crate#memory-accounting) for what that counts); only the mappings whose
    /// residency could be read count, see [`resident_known`](Self::resident_known).
    pub bytes_resident: usize,
    /// Whether `bytes_resident` covers every mapping: false on targets without `mincore`
    /// (Windows), or if it failed for a mapping. Residency is then unavailable (0 for those
    /// mappings), never estimated.
    pub resident_known: bool,
    /// Pagesets mapped since the pool was created.
    pub pagesets_created: u64,
    /// CPU pages given back with `MADV_DONTNEED` since the pool was created (a page released
    /// on all 64 CPUs counts 64).
    pub pages_released: u64,
    /// Pagesets unmapped since the pool was created (with
    /// [`keep_address_space`](crate::PoolConfig::keep_address_space): emptied, their pages
    /// given back and their mapping kept for reuse).
    pub pagesets_unmapped: u64,
    /// Address space of emptied pagesets kept for reuse
    /// ([`keep_address_space`](crate::PoolConfig::keep_address_space)): mapped, holding no
    /// memory (where `MADV_DONTNEED` gives pages back: Linux), not counted in `bytes_mapped`.
    pub bytes_kept: usize,
    /// Pages of a CPU's unit holding at least one assigned slot ([`Pool::occupied_pages`](crate::Pool::occupied_pages)).
    pub pages_occupied: usize,
}

/// What one [`Pool::release`](crate::Pool::release) gave back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReleaseStats {
    /// CPU pages released with `MADV_DONTNEED`.
    pub pages_released: usize,
    /// Pagesets unmapped (they were empty), or kept for reuse with their pages given back
    /// ([`keep_address_space`](crate::PoolConfig::keep_address_space)).
    pub pagesets_unmapped: usize,
    /// Address space given back by the unmapped pagesets (or kept for reuse).
    pub bytes_unmapped: usize,
}
