//! The handle word: what a [`PercpuCounter`](crate::PercpuCounter) value holds.
//!
//! One `usize`, in one of two forms told apart by bit 0:
//!
//! | bit 0 | form | the rest of the word |
//! |---|---|---|
//! | 1 | *inline* | the count (bits 13..64, signed), the domain's index (bits 2..13) and, in bit 1, whether the counter stays atomic for good ([`CounterMode::Atomic`](crate::CounterMode::Atomic)) |
//! | 0 | *header* | the address of the counter's header in its domain's header storage |
//!
//! A counter starts inline: it is then a plain atomic of its own, updated by compare-and-swap,
//! costs the 8 bytes of the word and nothing else, and may sit in a `static`. It becomes a
//! header counter once (never back): when it is contended, created per-CPU, or its count
//! leaves the inline range ([`INLINE_MIN`]..=[`INLINE_MAX`], ±2⁵⁰). The header, unlike the
//! word, never moves, so relocation can reach it whatever the user does with the word.
//!
//! The count sits in the high bits so that adding `delta << SHIFT` to the whole word adds
//! `delta` to the count and leaves the tag and the domain alone; a signed overflow of that
//! addition is exactly a count leaving the inline range.

/// Tag of the inline form.
pub(crate) const INLINE: usize = 1;
/// Inline flag: the counter never goes per-CPU.
const ATOMIC: usize = 2;
/// Bits of the domain index.
pub(crate) const DOMAIN_BITS: u32 = 11;
/// Most domains a process can build (index 0 is the global domain).
pub(crate) const MAX_DOMAINS: usize = 1 << DOMAIN_BITS;
/// Where the count starts.
const SHIFT: u32 = 2 + DOMAIN_BITS;
/// Largest count the inline form holds.
pub const INLINE_MAX: i64 = i64::MAX >> SHIFT;
/// Smallest count the inline form holds.
pub const INLINE_MIN: i64 = i64::MIN >> SHIFT;

/// The inline word for `count` in domain `domain` (atomic for good if `atomic`), or `None`
/// if `count` does not fit.
#[inline]
pub(crate) const fn inline(count: i64, domain: usize, atomic: bool) -> Option<usize> {
    if count < INLINE_MIN || count > INLINE_MAX || domain >= MAX_DOMAINS {
        return None;
    }
    let flag = if atomic { ATOMIC } else { 0 };
    Some(((count << SHIFT) as usize) | (domain << 2) | flag | INLINE)
}

/// True if an inline word stays atomic for good.
#[inline(always)]
pub(crate) const fn is_atomic(word: usize) -> bool {
    word & ATOMIC != 0
}

/// The same counter with another count, or `None` if `count` does not fit.
#[inline]
pub(crate) const fn with_count(word: usize, count: i64) -> Option<usize> {
    inline(count, domain(word), is_atomic(word))
}

/// True for the inline form.
#[inline(always)]
pub(crate) const fn is_inline(word: usize) -> bool {
    word & INLINE != 0
}

/// The count of an inline word.
#[inline(always)]
pub(crate) const fn count(word: usize) -> i64 {
    (word as i64) >> SHIFT
}

/// The domain index of an inline word.
#[inline(always)]
pub(crate) const fn domain(word: usize) -> usize {
    (word >> 2) & (MAX_DOMAINS - 1)
}

/// The inline word after adding `delta` to the count of `word`, or `None` if the count would
/// leave the inline range.
#[inline(always)]
pub(crate) const fn added(word: usize, delta: i64) -> Option<usize> {
    if delta < INLINE_MIN || delta > INLINE_MAX {
        return None;
    }
    match (word as i64).checked_add(delta << SHIFT) {
        Some(w) => Some(w as usize),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_at_the_edges() {
        for count in [0, 1, -1, INLINE_MAX, INLINE_MIN, 12345, -98765] {
            for domain in [0, 1, MAX_DOMAINS - 1] {
                for atomic in [false, true] {
                    let w = inline(count, domain, atomic).unwrap();
                    assert!(is_inline(w));
                    assert_eq!(
                        (count_of(w), super::domain(w), is_atomic(w)),
                        (count, domain, atomic)
                    );
                    assert_eq!(with_count(w, 5), inline(5, domain, atomic));
                }
            }
        }
        assert_eq!(inline(INLINE_MAX + 1, 0, false), None);
        assert_eq!(inline(INLINE_MIN - 1, 0, false), None);
        assert_eq!(inline(0, MAX_DOMAINS, false), None);
    }

    fn count_of(w: usize) -> i64 {
        count(w)
    }

    #[test]
    fn adding_past_the_range_is_refused() {
        let top = inline(INLINE_MAX, 7, false).unwrap();
        assert_eq!(added(top, 1), None);
        assert_eq!(count(added(top, -1).unwrap()), INLINE_MAX - 1);
        let bottom = inline(INLINE_MIN, 7, true).unwrap();
        assert_eq!(added(bottom, -1), None);
        assert_eq!(added(inline(0, 0, false).unwrap(), INLINE_MAX + 1), None);
        assert_eq!(added(inline(0, 0, false).unwrap(), i64::MIN), None);
    }

    proptest! {
        /// Adding to the word is adding to the count, tag and domain untouched, whenever the
        /// sum stays in range; out of range, the add is refused.
        #[test]
        fn add_is_add(
            start in INLINE_MIN..=INLINE_MAX,
            delta in any::<i64>(),
            domain in 0..MAX_DOMAINS,
            atomic in any::<bool>(),
        ) {
            let w = inline(start, domain, atomic).unwrap();
            let exact = start as i128 + delta as i128;
            match added(w, delta) {
                Some(n) => {
                    prop_assert!(is_inline(n));
                    prop_assert_eq!(count(n) as i128, exact);
                    prop_assert_eq!(super::domain(n), domain);
                    prop_assert_eq!(is_atomic(n), atomic);
                }
                None => prop_assert!(
                    !(INLINE_MIN as i128..=INLINE_MAX as i128).contains(&exact)
                        || !(INLINE_MIN..=INLINE_MAX).contains(&delta)
                ),
            }
        }
    }
}
