//! The owner-lane handshake: when may the memory of a detached header be reused?
//!
//! A compactor finds headers through the owner lanes of live slots, without a lock, so it may
//! hold the address of a header whose owner is detaching it at that very moment. Each side
//! makes one announcement behind a full fence and then looks at the other's:
//!
//! - the compactor [`announce`](Compactions::announce)s itself (counter up, `SeqCst` fence)
//!   before it reads any owner lane, and reads lanes inside a pinned epoch guard;
//! - detach clears the owner lane, then [`after_lane_cleared`](Compactions::after_lane_cleared)
//!   fences (`SeqCst`) and looks at the counter.
//!
//! Of two fenced stores and two loads, at least one load sees the other side's store: either
//! the compactor reads the cleared lane (and never learns the address), or detach sees a
//! compaction running and answers [`Release::AfterEpoch`], so the memory is reused only after
//! an epoch grace period, which waits for the compactor's guard. With no compaction running
//! the answer is [`Release::Now`] and nothing waits. pcpu-counter's header storage reuses a
//! block as soon as it is given back, so this handshake is what keeps a compactor off a block
//! that holds another counter; `src/loom_tests.rs` models it with a block that is reused.

use pcpu_rseq::sync::{fence, AtomicUsize, Ordering};

/// When a detached header's memory may be freed or reused (see `Space::detach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Release {
    /// No compactor can hold its address: free it now.
    Now,
    /// A compactor may have read its address: free it after a crossbeam-epoch grace period
    /// (e.g. `pcpu_rseq::epoch::pin().defer_unchecked`).
    AfterEpoch,
}

/// The compactions running on one space, as detach sees them.
#[derive(Debug, Default)]
pub struct Compactions {
    running: AtomicUsize,
}

impl Compactions {
    /// No compaction running.
    pub fn new() -> Self {
        Compactions {
            running: AtomicUsize::new(0),
        }
    }

    /// Marks a compaction as running until the guard drops. Call it before reading any owner
    /// lane.
    pub fn announce(&self) -> Announced<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Announced(&self.running)
    }

    /// Detach's side, right after it cleared the owner lane of the header's slot: when the
    /// header's memory may be reused.
    pub fn after_lane_cleared(&self) -> Release {
        fence(Ordering::SeqCst);
        if self.running.load(Ordering::Relaxed) == 0 {
            Release::Now
        } else {
            Release::AfterEpoch
        }
    }
}

/// A running compaction ([`Compactions::announce`]).
#[derive(Debug)]
pub struct Announced<'a>(&'a AtomicUsize);

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
