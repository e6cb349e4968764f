//! The bits a single counter keeps in its header's spare byte ([`pcpu_migrate::Header::spare`]),
//! and what a header compaction does with them ([`header_moves`]): its own module, so that
//! both the counter and the domain's compaction can use them without importing each other.

/// The counter's bits in its header's spare byte.
pub(crate) struct Flags;

impl Flags {
    /// The `limited_add` / `raise_to` lock.
    pub(crate) const LOCK: u8 = 0x80;
    /// Below it: the largest batch ever passed to `add_batch` above the domain's, as the
    /// log2 of a power of two it does not exceed (0 if none); it widens the error bound.
    pub(crate) const WIDEST_LOG2: u8 = 0x7f;
}

/// What [`Domain::compact`](crate::Domain::compact) needs to move counter headers
/// ([`crate::headers`]'s `compact`): keep a header whose lock is held where it is, copy the
/// owner's bytes (the level and the widest `add_batch`, not the lock), and after the grace
/// period merge what adds through the old header widened meanwhile (levels and batches only
/// widen: the wider one wins).
pub(crate) mod header_moves {
    use crate::flags::Flags;
    use pcpu_migrate::Header;
    use pcpu_rseq::sync::Ordering;

    /// True to leave `old` in place: a `limited_add` or `raise_to` holds its lock.
    pub(crate) fn keep_in_place(old: &Header) -> bool {
        old.spare().load(Ordering::SeqCst) & Flags::LOCK != 0
    }

    /// The owner's bytes of `old`, into `new` (nobody else reaches it yet).
    pub(crate) fn copy_owner(old: &Header, new: &Header) {
        new.tag()
            .store(old.tag().load(Ordering::Relaxed), Ordering::Relaxed);
        let flags = old.spare().load(Ordering::Relaxed) & !Flags::LOCK;
        new.spare().store(flags, Ordering::Relaxed);
    }

    /// Widening done through `old` after the copy, into `new`.
    pub(crate) fn merge_owner(old: &Header, new: &Header) {
        // A domain's level keys are consecutive, narrowest first.
        let level = old.tag().load(Ordering::Relaxed);
        if level != 0 {
            new.tag().fetch_max(level, Ordering::Relaxed);
        }
        let widest = old.spare().load(Ordering::Relaxed) & Flags::WIDEST_LOG2;
        let _ = new
            .spare()
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                (widest > f & Flags::WIDEST_LOG2).then_some((f & Flags::LOCK) | widest)
            });
    }
}
