//! Slot and pageset handles.

use std::{fmt, num::NonZeroUsize};

/// One per-CPU slot: the address of CPU 0's cell.
///
/// CPU `c`'s cell is at `slot.addr() + c * pool.stride()`, for `c < pool.ncpu()`. Cells are
/// aligned to the class size (so at least 8), zeroed on every CPU when handed out, and stay
/// mapped until the slot is unassigned *and* its pageset released (or the pool dropped).
///
/// A `Slot` is a plain address: copying it does not keep memory alive, and using its cells
/// needs `unsafe` code whose `// SAFETY:` comment must name who keeps the pool alive and the
/// slot assigned.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(NonZeroUsize);

impl Slot {
    /// Address of CPU 0's cell.
    pub fn addr(self) -> usize {
        self.0.get()
    }

    /// Turns an address from [`Slot::addr`] back into a slot; `None` for 0.
    ///
    /// # Safety
    ///
    /// `addr` must be the [`addr`](Slot::addr) of a slot handed out by a [`Pool`](crate::Pool)
    /// (for instance one stored as a `usize` in a per-CPU cache). The pool checks every slot
    /// it is given and rejects foreign ones with an error, but code that writes through the
    /// cells of a forged slot writes to arbitrary memory: this function is where that
    /// obligation is taken on.
    pub unsafe fn from_addr(addr: usize) -> Option<Slot> {
        NonZeroUsize::new(addr).map(Slot)
    }

    pub(crate) fn from_nonzero(addr: NonZeroUsize) -> Slot {
        Slot(addr)
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slot({:#x})", self.0)
    }
}

/// Names one mapped pageset of a [`Pool`](crate::Pool).
///
/// Ids are never reused within a pool: an id of an unmapped pageset stays invalid even if its
/// storage is recycled (a generation number tells them apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PagesetId {
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl fmt::Display for PagesetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.gen)
    }
}
