//! The layout of one CPU's stack, shared by [`PercpuStacks`](crate::PercpuStacks)
//! (`stack.rs`) and the pop and push sections (`arch/`, which take the byte offsets):
//!
//! | word | holds |
//! |---|---|
//! | [`TOP`] | number of items |
//! | [`FLAGS`] | [`STOPPED`](crate::STOPPED) (another thread owns the stack) and [`LOCKED`](crate::LOCKED) (portable backend); the sections take the slow path unless it is 0 |
//! | [`ITEMS`].. | the items, bottom first |

/// Word index of `top`, the item count.
pub(crate) const TOP: usize = 0;
/// Word index of `flags`.
pub(crate) const FLAGS: usize = 1;
/// Word index of item 0.
pub(crate) const ITEMS: usize = 2;
