//! The forward table: where moved headers went.
//!
//! [`Domain::compact`](crate::Domain::compact) moves live counter headers out of sparse pages
//! of header storage (`pcpu_migrate::Space::move_headers`), but it cannot reach the counters'
//! state words that name them: a counter's two words move whenever the user moves the value.
//! So each move is recorded here, old address → new, and the counter fixes its own state word
//! the first time one of its slow paths (or a `sum`, `set`, drop, ...) finds its header moved:
//! a tombstone ([`pcpu_migrate::Header::is_moved`]), or all zeros once the tombstone's page
//! went back to the OS (a counter header's tag, its fold-table key, is never 0). Adds need no
//! check: a moved header's slot word is disabled, so an add through it takes the slow path.
//!
//! One table for the process (a tombstone whose page went back no longer says which domain
//! it was in; addresses are never reused, so they are unique keys). Every fix-up runs under
//! its lock: it re-reads the state word, follows the chain of moves (a header moved again
//! before the counter noticed the first move), stores the last address and removes the
//! chain's entries, which no other counter can need (each header belongs to one counter, and
//! the state word never named the intermediate ones). So an entry lives from the move until
//! the counter's first look at its header after it, and costs its bytes in the table until
//! then (a few tens of bytes each in `HashMap`).

use crate::CounterError;
use pcpu_rseq::sync::{AtomicUsize, Ordering};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Old header address → the header that took its place.
static TABLE: Mutex<Option<HashMap<usize, usize>>> = Mutex::new(None);

/// The table, locked, with this thread marked in a slow path for as long: a signal handler
/// that interrupts the holder and adds to a moved counter then goes to the central count
/// (`pcpu_rseq::in_slow_path`) instead of waiting for this lock, on its own thread, forever.
struct Table {
    // Field order: the lock goes before the mark.
    guard: MutexGuard<'static, Option<HashMap<usize, usize>>>,
    _slow: pcpu_rseq::SlowPathGuard,
}

impl Deref for Table {
    type Target = Option<HashMap<usize, usize>>;
    fn deref(&self) -> &Self::Target {
        &self.guard
    }
}

impl DerefMut for Table {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.guard
    }
}

fn table() -> Table {
    let slow = pcpu_rseq::enter_slow_path();
    Table {
        // A panic under the lock leaves the map whole (each step is one map operation).
        guard: TABLE.lock().unwrap_or_else(PoisonError::into_inner),
        _slow: slow,
    }
}

/// Makes room for `n` more moves, so that [`record`] does not allocate while a compaction
/// holds the header space's locks.
///
/// # Errors
/// [`CounterError::OutOfMemory`] if the heap cannot hold them.
pub(crate) fn reserve(n: usize) -> Result<(), CounterError> {
    table()
        .get_or_insert_with(HashMap::new)
        .try_reserve(n)
        .map_err(|_| CounterError::OutOfMemory)
}

/// Records that the header at `old` moved to `new` (after [`reserve`]).
pub(crate) fn record(old: usize, new: usize) {
    let previous = table().get_or_insert_with(HashMap::new).insert(old, new);
    debug_assert!(previous.is_none(), "a header moves out of an address once");
}

/// Fixes up a state word that held `seen`, the address of a header its caller found moved:
/// stores where the header is now and forgets the moves on the way. Returns what the word
/// holds afterwards (another thread may have fixed it first).
pub(crate) fn fix_up(word: &AtomicUsize, seen: usize) -> usize {
    let mut guard = table();
    let now = word.load(Ordering::Acquire);
    if now != seen {
        return now;
    }
    let Some(map) = guard.as_mut() else {
        return now;
    };
    let Some(mut to) = map.remove(&seen) else {
        // Not moved (its caller read a header that is merely unattached), or fixed up by
        // a thread that then saw `now` change: nothing to do.
        return now;
    };
    while let Some(next) = map.remove(&to) {
        to = next;
    }
    // Only fix-ups change a header counter's state word, and they hold this lock.
    word.store(to, Ordering::Release);
    // No shrinking here: a counter's drop fixes up, and dropping a counter never frees
    // memory ([`shrink_if_empty`] does it, at compaction).
    to
}

/// Gives the table's memory back if no move is pending (a compaction's, before it records
/// more).
pub(crate) fn shrink_if_empty() {
    if let Some(map) = table().as_mut() {
        if map.is_empty() {
            map.shrink_to(0);
        }
    }
}

/// Moves recorded and not yet fixed up.
pub(crate) fn pending() -> usize {
    table().as_ref().map_or(0, HashMap::len)
}

/// Holds the table's lock, for tests that show a path does not take it.
#[cfg(test)]
pub(crate) fn lock_for_test() -> impl Sized {
    table()
}
