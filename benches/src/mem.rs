//! Resident memory of this process, measured: `/proc/self/statm` (resident pages × page size).

use std::fs;

/// Resident bytes of the whole process now.
pub fn resident_bytes() -> u64 {
    let text = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

/// The page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if ps > 0 {
        ps as u64
    } else {
        4096
    }
}

/// Hands free malloc memory back to the OS, so that a following baseline is not inflated by
/// memory that the next allocations would reuse (which would make them look free).
pub fn trim() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

/// Resident bytes after [`trim`]: the baseline to measure an allocation against.
pub fn baseline() -> u64 {
    trim();
    resident_bytes()
}

/// `after - before` as a signed number of bytes (resident memory can shrink).
pub fn delta(before: u64, after: u64) -> f64 {
    after as f64 - before as f64
}
