//! Errors of the relocation layer.

use pcpu_cache::CacheError;
use pcpu_pageset::PagesetError;

/// Why a relocation-layer operation failed.
#[derive(Debug)]
pub enum MigrateError {
    /// The slot cache or its pool failed (no memory, bad configuration).
    Cache(CacheError<PagesetError>),
    /// The pool failed.
    Pool(PagesetError),
    /// A grace period (membarrier fence) failed.
    Fence(std::io::Error),
    /// The heap could not hold the compactor's bookkeeping (this many bytes).
    OutOfMemory {
        /// Bytes asked for.
        bytes: usize,
    },
    /// A header's address does not fit in 48 bits, which an owner lane needs (only memory
    /// from an `mmap` that asked for a higher address can be there).
    HeaderAddress(usize),
    /// The header was moved to another address ([`Space::move_header`](crate::Space::move_header)):
    /// nothing was done to it; its owner acts on the header that took its place.
    Moved,
}

impl core::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MigrateError::Cache(e) => write!(f, "slot cache: {e}"),
            MigrateError::Pool(e) => write!(f, "pageset pool: {e}"),
            MigrateError::Fence(e) => write!(f, "grace period: {e}"),
            MigrateError::OutOfMemory { bytes } => {
                write!(
                    f,
                    "out of memory for {bytes} bytes of compaction bookkeeping"
                )
            }
            MigrateError::HeaderAddress(a) => {
                write!(
                    f,
                    "header address {a:#x} is above the 48 bits an owner lane holds"
                )
            }
            MigrateError::Moved => write!(f, "the header was moved to another address"),
        }
    }
}

impl std::error::Error for MigrateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrateError::Cache(e) => Some(e),
            MigrateError::Pool(e) => Some(e),
            MigrateError::Fence(e) => Some(e),
            MigrateError::OutOfMemory { .. }
            | MigrateError::HeaderAddress(_)
            | MigrateError::Moved => None,
        }
    }
}

impl From<CacheError<PagesetError>> for MigrateError {
    fn from(e: CacheError<PagesetError>) -> Self {
        MigrateError::Cache(e)
    }
}

impl From<PagesetError> for MigrateError {
    fn from(e: PagesetError) -> Self {
        MigrateError::Pool(e)
    }
}
