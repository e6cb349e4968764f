//! Lazy mode: when does an inline counter deserve a per-CPU slot?
//!
//! A lazy counter starts inline ([`crate::word`]): one word, updated by compare-and-swap.
//! The CAS is its own contention detector. It fails only when another thread changed the
//! word between this add's load and its CAS: two threads updating the same counter at the
//! same moment, which on one CPU happens only if a thread is preempted inside those few
//! instructions. When one add sees [`FAILURES`] failures in a row, several CPUs really
//! update the counter at once, and it goes per-CPU.
//!
//! What this gives, by construction:
//! - a single-threaded program never upgrades (nothing else writes the word; a signal
//!   handler that adds in between costs one failure, not two);
//! - the signal is per counter: a thread looping `{ shared.inc(); mine.inc(); }` beside
//!   another thread doing the same upgrades `shared` and never `mine`, however the two
//!   interleave (`tests/modes.rs`);
//! - no sampling state at all: the uncontended add is one load and one CAS, the cost of an
//!   atomic `fetch_add`.

/// CAS failures within one add that make a lazy counter go per-CPU.
pub(crate) const FAILURES: u32 = 2;
