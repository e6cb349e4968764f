//! The fold table: fold parameters at fixed addresses, named by a 16-bit key.
//!
//! An object whose adds go through [`add_fold_indexed`](crate::add_fold_indexed) keeps the
//! *key* of its parameters in two bytes beside its slot word, where a pointer would take
//! eight: that is what lets pcpu-counter's header be 16 bytes.
//!
//! A key is the entry's byte offset in the table divided by 8 (its position × 8, entries
//! being 64 bytes): x86_64 addresses a field as `[table + key * 8 + field]`, one load with
//! the table's address in a register set off the add's critical path, so the section loads
//! nothing more, and waits for nothing more, than it would through a pointer (a plain
//! position would put a shift between the key's load and the parameters'; the layouts that
//! were measured are in `docs/PERFORMANCE.md`, issue-12 targets).
//!
//! The table is one static array of [`FOLD_TABLE_LEN`] entries of one cache line each, in
//! zero-initialised memory: only the pages of entries handed out are ever touched. Entries
//! are handed out in runs by [`reserve_fold_entries`], filled before they are handed out,
//! and never given back (their users, a domain's batch levels, live for the process).
//! Entry 0 (key 0) is never handed out: its lane bound is 0, so a section that reads a
//! zeroed key takes the slow path.
//!
//! Only the holder of an entry's [`FoldEntry`] can change its parameters (raise the lane
//! bound, widen the batch): a safe function given a bare key could otherwise make another
//! owner's sections address cells that are not there.

use crate::fold_params::FoldParams;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Entries in the fold table: every key a `u16` can hold (keys are multiples of 8).
pub const FOLD_TABLE_LEN: usize = 1 << (16 - KEY_SHIFT);

/// log2 of an entry's size in bytes.
const ENTRY_SHIFT: u32 = 6;
/// A key is an entry's position shifted left by this much.
const KEY_SHIFT: u32 = 3;
/// log2 of the factor from a key to its entry's byte offset, for the sections: 8, one of
/// x86_64's index scales. (Unused where there are no real sections: other targets, loom.)
#[allow(dead_code)]
pub(crate) const KEY_TO_OFFSET_SHIFT: u32 = ENTRY_SHIFT - KEY_SHIFT;

/// One entry: the parameters first (the sections address them at the entry's address), then
/// the owner's tag; one cache line, which only lane-bound raises and widenings write.
#[repr(C, align(64))]
pub(crate) struct Entry {
    pub(crate) params: FoldParams,
    tag: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<Entry>() == 1 << ENTRY_SHIFT);
const _: () = assert!(core::mem::offset_of!(Entry, params) == 0);

/// The table. Zero-initialised (stride, lane bound and thresholds 0), so it costs no memory
/// until entries are filled. The sections name it by symbol (`arch/`).
pub(crate) static TABLE: [Entry; FOLD_TABLE_LEN] = [const {
    Entry {
        params: FoldParams::new(0, 0, 1),
        tag: AtomicU64::new(0),
    }
}; FOLD_TABLE_LEN];

/// The next entry never handed out; entry 0 never is.
static NEXT: AtomicUsize = AtomicUsize::new(1);

/// [`reserve_fold_entries`] found fewer free entries than asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldTableFull;

impl core::fmt::Display for FoldTableFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "the fold table's {FOLD_TABLE_LEN} entries are all in use"
        )
    }
}

impl std::error::Error for FoldTableFull {}

/// One fold-table entry, held by whoever reserved it: the only way to its parameters, and
/// so to changing them. Neither `Clone` nor `Copy`.
#[derive(Debug)]
pub struct FoldEntry {
    key: u16,
}

impl FoldEntry {
    /// The entry's key: what an object keeps beside its slot word for
    /// [`add_fold_indexed`](crate::add_fold_indexed). A multiple of 8, never 0.
    #[inline]
    pub fn key(&self) -> u16 {
        self.key
    }

    /// The entry's parameters, at a fixed address for the process.
    #[inline]
    pub fn params(&self) -> &'static FoldParams {
        params_at(self.key)
    }

    /// Replaces the entry's tag ([`fold_entry_tag`]).
    pub fn set_tag(&self, tag: u64) {
        entry(self.key)
            .tag
            .store(tag.wrapping_add(1), Ordering::Release);
    }
}

/// Read-only access to the parameters of a fold-table entry, by key: what a reader that
/// holds only the key (a counter's `sum`) needs, without the power to change them.
#[derive(Debug, Clone, Copy)]
pub struct FoldView(&'static FoldParams);

impl FoldView {
    /// [`FoldParams::stride`].
    #[inline]
    pub fn stride(self) -> usize {
        self.0.stride()
    }

    /// [`FoldParams::ncpu`].
    #[inline]
    pub fn ncpu(self) -> usize {
        self.0.ncpu()
    }

    /// [`FoldParams::batch`].
    #[inline]
    pub fn batch(self) -> i64 {
        self.0.batch()
    }

    /// [`FoldParams::with_batch`]: an owned copy with another batch.
    pub fn with_batch(self, batch: i64) -> FoldParams {
        self.0.with_batch(batch)
    }
}

/// The parameters of the entry with key `key`, read-only. A key never handed out (0 among
/// them) reads lane bound 0, stride 0, batch 1. Any `u16` is safe here: the low 3 bits are
/// ignored (unlike in [`add_fold_indexed`](crate::add_fold_indexed), whose contract
/// excludes such keys).
#[inline]
pub fn fold_entry_params(key: u16) -> FoldView {
    FoldView(params_at(key))
}

/// Reserves one entry per item of `entries`, at consecutive positions (keys 8 apart), each
/// filled with the item's parameters (a copy of them) and tag; returns them in order.
///
/// # Errors
/// [`FoldTableFull`] when fewer entries are left than `entries` has items; nothing is
/// reserved then.
///
/// ```
/// use pcpu_rseq::{reserve_fold_entries, fold_entry_tag, FoldParams};
/// let entries = reserve_fold_entries([(FoldParams::new(64, 2, 32), 7)]).unwrap();
/// assert_eq!(entries[0].params().batch(), 32);
/// assert_eq!(fold_entry_tag(entries[0].key()), Some(7));
/// ```
pub fn reserve_fold_entries(
    entries: impl IntoIterator<Item = (FoldParams, u64)>,
) -> Result<Vec<FoldEntry>, FoldTableFull> {
    let entries: Vec<(FoldParams, u64)> = entries.into_iter().collect();
    let n = entries.len();
    let first = NEXT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
            next.checked_add(n).filter(|&end| end <= FOLD_TABLE_LEN)
        })
        .map_err(|_| FoldTableFull)?;
    Ok(entries
        .into_iter()
        .enumerate()
        .map(|(i, (params, tag))| {
            let entry = FoldEntry {
                key: ((first + i) << KEY_SHIFT) as u16,
            };
            // Nobody else can name this entry yet: it was never handed out. The caller
            // publishes its key (with whatever release its own protocol has) before any
            // section reads it.
            entry.params().fill_from(&params);
            entry.set_tag(tag);
            entry
        })
        .collect())
}

/// The tag the entry with key `key` was reserved with (or last given by
/// [`FoldEntry::set_tag`]), if it was reserved.
pub fn fold_entry_tag(key: u16) -> Option<u64> {
    match entry(key).tag.load(Ordering::Acquire) {
        0 => None,
        t => Some(t - 1),
    }
}

/// The entry with key `key` (its low 3 bits ignored).
#[inline(always)]
fn entry(key: u16) -> &'static Entry {
    &TABLE[usize::from(key >> KEY_SHIFT)]
}

/// The parameters of the entry with key `key`, read-only: for a section's portable path and
/// the crate's own code. Entry 0 (and any entry never handed out) has lane bound 0.
#[inline(always)]
pub(crate) fn params_at(key: u16) -> &'static FoldParams {
    &entry(key).params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_consecutive_filled_and_tagged() {
        let entries =
            reserve_fold_entries((0..3).map(|i| (FoldParams::new(8 * (i + 1), 2, 16), i as u64)))
                .unwrap();
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(usize::from(e.key()), usize::from(entries[0].key()) + 8 * i);
            assert_eq!(e.params().stride(), 8 * (i + 1));
            assert_eq!(e.params().ncpu(), 2);
            assert_eq!(e.params().batch(), 16);
            assert_eq!(fold_entry_tag(e.key()), Some(i as u64));
            assert!(core::ptr::eq(e.params(), params_at(e.key())));
        }
        assert_ne!(entries[0].key(), 0);
    }

    #[test]
    fn a_key_times_8_is_its_entrys_offset() {
        let entries = reserve_fold_entries([(FoldParams::new(8, 1, 4), 0)]).unwrap();
        let key = entries[0].key();
        let offset =
            (entries[0].params() as *const FoldParams as usize) - (TABLE.as_ptr() as usize);
        assert_eq!(offset, usize::from(key) << KEY_TO_OFFSET_SHIFT);
    }

    #[test]
    fn entry_zero_is_closed_and_untagged() {
        assert_eq!(params_at(0).ncpu(), 0);
        assert_eq!(fold_entry_tag(0), None);
    }

    #[test]
    fn a_reservation_too_large_takes_nothing() {
        let before = NEXT.load(Ordering::Relaxed);
        let too_many = (0..FOLD_TABLE_LEN).map(|_| (FoldParams::new(8, 1, 1), 0));
        assert_eq!(reserve_fold_entries(too_many).unwrap_err(), FoldTableFull);
        assert!(NEXT.load(Ordering::Relaxed) < FOLD_TABLE_LEN);
        assert!(NEXT.load(Ordering::Relaxed) >= before);
    }
}
