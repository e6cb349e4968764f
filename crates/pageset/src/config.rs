//! Pool configuration and the geometry derived from it.

use std::sync::OnceLock;

use crate::{PagesetError, SizeClass};

/// The system page size (`sysconf(_SC_PAGESIZE)`), cached.
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        #[cfg(unix)]
        // SAFETY: sysconf has no preconditions; it only reads a system constant.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // Windows: 4 KiB pages on every architecture it runs on.
        #[cfg(not(unix))]
        let n = 4096;
        usize::try_from(n)
            .ok()
            .filter(|&n| n.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// How a [`Pool`](crate::Pool) lays out its pagesets.
///
/// Construct with [`PoolConfig::new`] and adjust with the `with_*` methods (or the public
/// fields); [`Pool::new`](crate::Pool::new) validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolConfig {
    /// Bytes per CPU of each slot.
    pub class: SizeClass,
    /// CPUs covered: every slot has this many cells. Default [`pcpu_rseq::possible_cpus`].
    /// May exceed the real count (tests simulate 256 CPUs on a 2-CPU machine): memory then
    /// follows the CPUs that write, not this number.
    pub ncpu: usize,
    /// Bytes of one CPU's unit in a pageset: the stride between two CPUs' cells of a slot. A
    /// multiple of the page size. Default [`PoolConfig::DEFAULT_UNIT_BYTES`] (or one page if
    /// pages are larger).
    pub unit_bytes: usize,
    /// Keep the address space of emptied pagesets instead of unmapping them: their memory is
    /// given back (`MADV_DONTNEED`) and the mapping is reused by the next pageset the pool
    /// needs. Default false.
    ///
    /// Why: a reader that does not synchronise with the pool (pcpu-migrate's `sum` reads a
    /// slot's cells and then checks a sequence count, without a grace period) may still load
    /// from a slot after it was freed. Such a load must return *some* value, which the
    /// reader then discards; with the mapping kept it does, where an unmapped range would
    /// fault. The cost is address space only, up to the most pagesets ever mapped at once.
    pub keep_address_space: bool,
}

impl PoolConfig {
    /// Default unit: 16 KiB per CPU, four pages where pages are 4 KiB (one page on 16 KiB-page
    /// kernels; [`PoolConfig::new`] takes one page where pages are larger still).
    ///
    /// Why 16 KiB: a pageset then holds 2048 8-byte slots (256 of 64 bytes), so even a
    /// process with 10⁵ counters needs only ~50 mappings (far below `vm.max_map_count`) and
    /// assignment rarely has to map; memory is given back per *page* (on every CPU) and
    /// populated per page on first write, so a larger unit does not cost resident memory,
    /// only address space (4 MiB per pageset at 256 CPUs) and bookkeeping. Four pages per
    /// unit (with 4 KiB pages) also lets a sparse pageset give back its tail pages before it is
    /// empty, because slots are assigned lowest-first.
    pub const DEFAULT_UNIT_BYTES: usize = 16 * 1024;

    /// The default configuration for `class`: [`pcpu_rseq::possible_cpus`] CPUs and
    /// `max(DEFAULT_UNIT_BYTES, page size)` bytes per unit.
    pub fn new(class: SizeClass) -> PoolConfig {
        PoolConfig {
            class,
            ncpu: pcpu_rseq::possible_cpus(),
            unit_bytes: PoolConfig::DEFAULT_UNIT_BYTES.max(page_size()),
            keep_address_space: false,
        }
    }

    /// The same configuration covering `ncpu` CPUs.
    pub fn with_ncpu(self, ncpu: usize) -> PoolConfig {
        PoolConfig { ncpu, ..self }
    }

    /// The same configuration with `unit_bytes` bytes per CPU unit.
    pub fn with_unit_bytes(self, unit_bytes: usize) -> PoolConfig {
        PoolConfig { unit_bytes, ..self }
    }

    /// The same configuration, keeping (or not) the address space of emptied pagesets; see
    /// [`keep_address_space`](Self::keep_address_space).
    pub fn with_keep_address_space(self, keep_address_space: bool) -> PoolConfig {
        PoolConfig {
            keep_address_space,
            ..self
        }
    }
}

/// Largest accepted CPU count (Linux's `NR_CPUS` maximum is 8192).
pub(crate) const MAX_NCPU: usize = 1 << 16;
/// Largest accepted unit (1 GiB): keeps slot indices in `u32` and pagesets sane.
pub(crate) const MAX_UNIT: usize = 1 << 30;

/// Everything derived from a validated [`PoolConfig`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub class: SizeClass,
    /// Class bytes.
    pub size: usize,
    pub ncpu: usize,
    /// Bytes per CPU unit (the stride).
    pub unit: usize,
    pub page: usize,
    /// Pages per unit.
    pub pages_per_unit: usize,
    /// Slots per pageset.
    pub capacity: usize,
    /// Slots per page.
    pub slots_per_page: usize,
    /// Bytes of one pageset mapping (`ncpu * unit`).
    pub map_len: usize,
    /// Emptied pagesets keep their mapping for reuse (see [`PoolConfig::keep_address_space`]).
    pub keep_address_space: bool,
}

impl Geometry {
    pub fn new(config: &PoolConfig) -> Result<Geometry, PagesetError> {
        let page = page_size();
        let size = config.class.bytes();
        if config.ncpu == 0 {
            return Err(PagesetError::InvalidConfig("ncpu must be at least 1"));
        }
        if config.ncpu > MAX_NCPU {
            return Err(PagesetError::InvalidConfig("ncpu is larger than 65536"));
        }
        if config.unit_bytes == 0 || config.unit_bytes % page != 0 {
            return Err(PagesetError::InvalidConfig(
                "unit_bytes must be a non-zero multiple of the page size",
            ));
        }
        if config.unit_bytes > MAX_UNIT {
            return Err(PagesetError::InvalidConfig(
                "unit_bytes is larger than 1 GiB",
            ));
        }
        let map_len = config
            .ncpu
            .checked_mul(config.unit_bytes)
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or(PagesetError::InvalidConfig("ncpu * unit_bytes overflows"))?;
        Ok(Geometry {
            class: config.class,
            size,
            ncpu: config.ncpu,
            unit: config.unit_bytes,
            page,
            pages_per_unit: config.unit_bytes / page,
            capacity: config.unit_bytes / size,
            slots_per_page: page / size,
            map_len,
            keep_address_space: config.keep_address_space,
        })
    }
}
