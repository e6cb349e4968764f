//! Size classes: how many bytes one slot takes on each CPU.

use std::fmt;

/// Bytes per CPU of a slot. Every pageset (and every [`Pool`](crate::Pool)) serves one class.
///
/// A counter needs 8 bytes per CPU; the larger classes hold small per-CPU structs (a counter
/// plus a batch, a histogram bucket pair, ...). Cells of a slot are aligned to their size, so a
/// cell never straddles a page or (for [`SizeClass::B64`]) a cache line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SizeClass {
    /// 8 bytes per CPU (one `i64`/`u64` counter).
    B8,
    /// 16 bytes per CPU.
    B16,
    /// 32 bytes per CPU.
    B32,
    /// 64 bytes per CPU (one cache line on x86_64).
    B64,
    /// 128 bytes per CPU: objects of one lane, such as pcpu-counter's counter headers, which
    /// keep two cache lines apart.
    B128,
}

impl SizeClass {
    /// All classes, smallest first.
    pub const ALL: [SizeClass; 5] = [
        SizeClass::B8,
        SizeClass::B16,
        SizeClass::B32,
        SizeClass::B64,
        SizeClass::B128,
    ];

    /// Bytes per CPU of a slot of this class.
    ///
    /// ```
    /// assert_eq!(pcpu_pageset::SizeClass::B16.bytes(), 16);
    /// ```
    pub const fn bytes(self) -> usize {
        match self {
            SizeClass::B8 => 8,
            SizeClass::B16 => 16,
            SizeClass::B32 => 32,
            SizeClass::B64 => 64,
            SizeClass::B128 => 128,
        }
    }

    /// The smallest class that holds `bytes` bytes per CPU, or `None` above 128.
    ///
    /// ```
    /// use pcpu_pageset::SizeClass;
    /// assert_eq!(SizeClass::for_bytes(1), Some(SizeClass::B8));
    /// assert_eq!(SizeClass::for_bytes(24), Some(SizeClass::B32));
    /// assert_eq!(SizeClass::for_bytes(65), Some(SizeClass::B128));
    /// assert_eq!(SizeClass::for_bytes(129), None);
    /// ```
    pub fn for_bytes(bytes: usize) -> Option<SizeClass> {
        SizeClass::ALL.into_iter().find(|c| c.bytes() >= bytes)
    }
}

impl fmt::Display for SizeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.bytes())
    }
}
