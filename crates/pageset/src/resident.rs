//! Asking the kernel which pages of a mapping hold memory.
//!
//! Two sources, for two questions:
//!
//! - **`mincore(2)`** answers "how many bytes are resident" for [`stats`](crate::Pool::stats).
//!   It is exact about present page-table entries. One caveat: a page that was only *read*
//!   maps the shared zero page, which `mincore` reports as resident although it costs no
//!   memory. This crate never reads a page it does not need to (see below), but a user that
//!   sums all CPUs' cells of a slot does, so `bytes_resident` is an upper bound in that case.
//! - **`/proc/self/pagemap`** answers "might this page hold non-zero data" when a slot is
//!   zeroed on unassign. An entry that is neither present (bit 63) nor swapped (bit 62) is a
//!   page that was never touched or was dropped with `MADV_DONTNEED`: in an anonymous
//!   private mapping it reads as zero, so its cell needs no zeroing and the page is not
//!   touched at all. `mincore` cannot answer this question: it reports a swapped-out page
//!   as not resident, and skipping it would leave stale data. If pagemap is unavailable
//!   (no procfs, a sandbox) zeroing falls back to reading every CPU's cell.

//!
//! Targets without `mincore` (Windows) report residency as unknown rather than guess, and
//! targets without pagemap (everything but Linux) zero by reading every CPU's cell.

use std::fs::File;

/// Bytes resident (per `mincore`) in `[addr, addr + len)`, a page-aligned range of a live
/// mapping. `None` if `mincore` failed or this target has none.
// Not under Miri, which has no `mincore` (nor page tables): residency is unknown there.
#[cfg(all(unix, not(miri)))]
pub(crate) fn mincore_bytes(addr: *const u8, len: usize, page: usize) -> Option<usize> {
    let pages = len.div_ceil(page);
    let mut vec: Vec<u8> = Vec::new();
    vec.try_reserve_exact(pages).ok()?;
    vec.resize(pages, 0);
    // SAFETY: `addr` is page-aligned and `[addr, addr + len)` is mapped (the caller holds the
    // mapping); `vec` has one byte for each of the `ceil(len / page)` pages, which is all
    // mincore writes. mincore only reads page tables, never the memory itself.
    // The vector's element type is `unsigned char` on Linux, `char` on the BSDs and macOS.
    let rc = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr().cast()) };
    if rc != 0 {
        return None;
    }
    Some(vec.iter().filter(|&&b| b & 1 != 0).count() * page)
}

/// Bytes resident in `[addr, addr + len)` per `mincore(2)`: `None` if the range is not
/// page-aligned or not mapped, or this target has no `mincore` (residency is then unknown,
/// never guessed). Only page tables are read, never the memory, so any range is safe to ask
/// about.
pub fn resident_bytes(addr: usize, len: usize) -> Option<usize> {
    let page = crate::page_size();
    if addr % page != 0 || len == 0 {
        return None;
    }
    mincore_bytes(addr as *const u8, len, page)
}

/// No `mincore` on this target (or under Miri): residency is unknown.
#[cfg(any(not(unix), miri))]
pub(crate) fn mincore_bytes(_addr: *const u8, _len: usize, _page: usize) -> Option<usize> {
    None
}

/// `pread` of exactly `buf.len()` bytes at `offset`; false on any failure.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> bool {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset).is_ok()
}

/// No pagemap off Unix (nor off Linux, where opening it already fails).
#[cfg(not(unix))]
fn read_exact_at(_file: &File, _buf: &mut [u8], _offset: u64) -> bool {
    false
}

const PM_PRESENT: u64 = 1 << 63;
const PM_SWAP: u64 = 1 << 62;

/// Reads `/proc/self/pagemap` to tell pages that surely read as zero.
#[derive(Debug)]
pub(crate) struct PageProbe {
    enabled: bool,
    /// The open pagemap and the pid it was opened in (a forked child must reopen: the old
    /// descriptor describes the parent's page tables).
    file: Option<(File, u32)>,
    buf: Vec<u8>,
}

impl PageProbe {
    pub fn new(enabled: bool) -> PageProbe {
        PageProbe {
            enabled,
            file: None,
            buf: Vec::new(),
        }
    }

    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        if !enabled {
            self.file = None;
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// For `n` pages at `first` + i × `step_bytes` (i < n), calls `f(i, may_hold_data)`.
    /// Returns false (and calls nothing) if pagemap cannot be read: then every page must be
    /// treated as possibly holding data.
    pub fn probe(
        &mut self,
        first: usize,
        step_bytes: usize,
        n: usize,
        page: usize,
        mut f: impl FnMut(usize, bool),
    ) -> bool {
        // Under Miri, /proc/self/pagemap would describe the host's page tables, not the
        // interpreted program's memory: zeroing reads every CPU's cell instead.
        if !self.enabled || n == 0 || cfg!(miri) {
            return false;
        }
        let pid = std::process::id();
        let stale = match &self.file {
            Some((_, opened_in)) => *opened_in != pid,
            None => true,
        };
        if stale {
            match File::open("/proc/self/pagemap") {
                Ok(file) => self.file = Some((file, pid)),
                Err(_) => {
                    self.enabled = false;
                    return false;
                }
            }
        }
        let step = step_bytes / page;
        let entries = (n - 1) * step + 1;
        let bytes = entries * 8;
        if self.buf.len() < bytes {
            if self.buf.try_reserve_exact(bytes - self.buf.len()).is_err() {
                return false;
            }
            self.buf.resize(bytes, 0);
        }
        let Some((file, _)) = self.file.as_ref() else {
            return false;
        };
        let offset = (first / page) as u64 * 8;
        if !read_exact_at(file, &mut self.buf[..bytes], offset) {
            return false;
        }
        for i in 0..n {
            let at = i * step * 8;
            let mut word = [0u8; 8];
            word.copy_from_slice(&self.buf[at..at + 8]);
            let entry = u64::from_ne_bytes(word);
            f(i, entry & (PM_PRESENT | PM_SWAP) != 0);
        }
        true
    }
}
