//! Errors of the counter API.

/// Why a counter could not be created or changed.
#[derive(Debug)]
pub enum CounterError {
    /// The heap could not hold the counter's header.
    OutOfMemory,
    /// The per-CPU layer failed (no memory for a slot, a failed grace period).
    Space(pcpu_migrate::MigrateError),
    /// An invalid domain configuration; the text says why.
    Config(&'static str),
    /// A counter group of this size is not supported (1..=8).
    GroupSize(usize),
    /// A thread could not be started (the compactor's).
    Thread(std::io::Error),
    /// Too many domains: their batch levels fill pcpu-rseq's fold table (8,191 levels).
    FoldTable(pcpu_rseq::FoldTableFull),
    /// No counter with this index in the group.
    Index {
        /// The index given.
        index: usize,
        /// The group's size.
        len: usize,
    },
}

impl core::fmt::Display for CounterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CounterError::OutOfMemory => f.write_str("out of memory for a counter header"),
            CounterError::Space(e) => write!(f, "per-CPU memory: {e}"),
            CounterError::Config(why) => write!(f, "invalid domain configuration: {why}"),
            CounterError::Thread(e) => write!(f, "cannot start a thread: {e}"),
            CounterError::FoldTable(e) => write!(f, "no room for the domain's batch levels: {e}"),
            CounterError::GroupSize(n) => {
                write!(f, "a counter group holds 1 to 8 counters, not {n}")
            }
            CounterError::Index { index, len } => {
                write!(f, "counter {index} does not exist in a group of {len}")
            }
        }
    }
}

impl std::error::Error for CounterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CounterError::Space(e) => Some(e),
            CounterError::Thread(e) => Some(e),
            CounterError::FoldTable(e) => Some(e),
            _ => None,
        }
    }
}
