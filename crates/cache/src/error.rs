//! Errors of the cache.

use std::io;

/// An invalid [`CacheConfig`](crate::CacheConfig) (or a pool the cache cannot use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `capacity` was 0.
    ZeroCapacity,
    /// `batch` was 0.
    ZeroBatch,
    /// `max_cached` is below the number of CPUs: no CPU could cache even one slot.
    CapBelowNcpu {
        /// The configured cap.
        max_cached: usize,
        /// The pool's CPU count.
        ncpu: usize,
    },
    /// The pool reports 0 CPUs, or a cell size or stride that is not a non-zero multiple of 8.
    BadPoolGeometry,
    /// The per-CPU stacks could not be allocated at this size.
    TooLarge,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::ZeroCapacity => f.write_str("magazine capacity must be at least 1"),
            ConfigError::ZeroBatch => f.write_str("batch size must be at least 1"),
            ConfigError::CapBelowNcpu { max_cached, ncpu } => write!(
                f,
                "max_cached ({max_cached}) must be at least the CPU count ({ncpu})"
            ),
            ConfigError::BadPoolGeometry => {
                f.write_str("pool geometry unusable (0 CPUs, or cell/stride not a multiple of 8)")
            }
            ConfigError::TooLarge => f.write_str("magazines too large for the address space"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a cache operation failed. `E` is the pool's error (for the pageset pool,
/// [`pcpu_pageset::PagesetError`](https://docs.rs/pcpu-pageset)).
#[derive(Debug)]
pub enum CacheError<E> {
    /// The pool failed: it could not grow (alloc), or refused a slot back (free, drain).
    Pool(E),
    /// The configuration is invalid.
    Config(ConfigError),
    /// No magazine for this CPU.
    CpuOutOfRange {
        /// The CPU asked for.
        cpu: usize,
        /// The number of magazines.
        ncpu: usize,
    },
    /// The membarrier fence that stops a CPU's magazine failed (the magazine was restarted).
    Fence(io::Error),
    /// The pool returned fewer slots than asked without reporting an error.
    ShortBatch,
}

impl<E: core::fmt::Display> core::fmt::Display for CacheError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CacheError::Pool(e) => write!(f, "pool: {e}"),
            CacheError::Config(e) => write!(f, "bad cache config: {e}"),
            CacheError::CpuOutOfRange { cpu, ncpu } => {
                write!(f, "CPU {cpu} out of range (cache has {ncpu} magazines)")
            }
            CacheError::Fence(e) => write!(f, "fence failed: {e}"),
            CacheError::ShortBatch => f.write_str("pool returned a short batch"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CacheError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CacheError::Pool(e) => Some(e),
            CacheError::Config(e) => Some(e),
            CacheError::Fence(e) => Some(e),
            _ => None,
        }
    }
}

impl<E> From<ConfigError> for CacheError<E> {
    fn from(e: ConfigError) -> Self {
        CacheError::Config(e)
    }
}
