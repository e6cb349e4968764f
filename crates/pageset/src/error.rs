//! The one error type of the crate.

use std::{fmt, io};

use crate::{PagesetId, Slot};

/// What went wrong in a [`Pool`](crate::Pool) operation.
///
/// No operation that returns an error has changed the pool: a failed
/// [`assign_batch`](crate::Pool::assign_batch) hands out nothing, a rejected
/// [`unassign`](crate::Pool::unassign) frees nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum PagesetError {
    /// The [`PoolConfig`](crate::PoolConfig) is unusable; the text says why.
    InvalidConfig(&'static str),
    /// Mapping a new pageset failed (`ENOMEM`, `RLIMIT_AS`, `vm.max_map_count`, ...).
    Map {
        /// Size of the mapping that was asked for.
        bytes: usize,
        /// The error `mmap` returned.
        source: io::Error,
    },
    /// Allocating the pool's own bookkeeping failed (the heap is exhausted, typically under
    /// `RLIMIT_AS`). Reported instead of aborting the process.
    OutOfMemory {
        /// Bytes that could not be allocated.
        bytes: usize,
    },
    /// The slot does not belong to a pageset of this pool, or is not at a slot boundary.
    ForeignSlot(Slot),
    /// The slot belongs to this pool but is not assigned (a double unassign, a stale slot, or
    /// a retired one).
    NotAssigned(Slot),
    /// No pageset with this id is mapped (it was unmapped, or belongs to another pool).
    UnknownPageset(PagesetId),
}

impl fmt::Display for PagesetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagesetError::InvalidConfig(why) => write!(f, "invalid pool configuration: {why}"),
            PagesetError::Map { bytes, source } => {
                write!(f, "mapping a pageset of {bytes} bytes failed: {source}")
            }
            PagesetError::OutOfMemory { bytes } => {
                write!(f, "allocating {bytes} bytes of pool bookkeeping failed")
            }
            PagesetError::ForeignSlot(slot) => {
                write!(f, "slot {:#x} does not belong to this pool", slot.addr())
            }
            PagesetError::NotAssigned(slot) => {
                write!(
                    f,
                    "slot {:#x} is not assigned (double unassign?)",
                    slot.addr()
                )
            }
            PagesetError::UnknownPageset(id) => write!(f, "pageset {id} is not mapped"),
        }
    }
}

impl std::error::Error for PagesetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PagesetError::Map { source, .. } => Some(source),
            _ => None,
        }
    }
}
