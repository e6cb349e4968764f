//! The state word: the second of the two words a [`PercpuCounter`](crate::PercpuCounter)
//! value holds (the first is its inline count, an `AtomicI64`).
//!
//! | bit 0 | form | the rest of the word |
//! |---|---|---|
//! | 1 | *inline* | bit 1: atomic for good ([`CounterMode::Atomic`](crate::CounterMode::Atomic)); bits 2..13: the domain's index; bits 13..16: CPU switches in the current window; bits 16..32: the CPU that last updated the counter (`0xffff`: none yet); bits 32..64: when the window began, in microseconds of the window clock |
//! | 0 | *header* | the address of the counter's header in its domain's header storage |
//!
//! A counter starts inline: its adds are one `fetch_add` on the inline count, and the state
//! word only decides, from the CPUs the adds run on, when the counter should go per-CPU
//! ([`crate::lazy`]). The CPU sits in bits 16..32 so that the add compares it with this
//! thread's CPU in two instructions (a shift and a 16-bit compare). It moves to the header
//! form once (never back): the state word then holds the header's address, and the inline
//! count stays where it is, a part of the value that `read` and `sum` add in (adds that
//! loaded the inline state just before the switch land there, so none is lost and nothing has
//! to be moved). The header, unlike the counter's two words, stays at its address (or, moved
//! by a compaction, leaves a tombstone there that leads to its new one: [`crate::forward`]), so
//! relocation can reach it whatever the user does with the value.

/// Tag of the inline form.
pub(crate) const INLINE: usize = 1;
/// Inline flag: the counter never goes per-CPU.
const ATOMIC: usize = 2;
/// Bits of the domain index.
pub(crate) const DOMAIN_BITS: u32 = 11;
/// Most domains a process can build (index 0 is the global domain).
pub(crate) const MAX_DOMAINS: usize = 1 << DOMAIN_BITS;
const DOMAIN_SHIFT: u32 = 2;
const SWITCHES_SHIFT: u32 = DOMAIN_SHIFT + DOMAIN_BITS;
/// Most switches a window can count (3 bits).
pub(crate) const MAX_SWITCHES: u8 = 7;
const CPU_SHIFT: u32 = 16;
/// The CPU field of a counter no CPU updated yet ([`cpu_field`]).
const NO_CPU: u16 = u16::MAX;
const START_SHIFT: u32 = 32;

const _: () = assert!(SWITCHES_SHIFT + 3 == CPU_SHIFT);
const _: () = assert!(usize::BITS == 64, "the inline state needs a 64-bit word");

/// The inline state of a new counter of domain `domain`, or `None` for an index out of range.
#[inline]
pub(crate) const fn inline(domain: usize, atomic: bool) -> Option<usize> {
    if domain >= MAX_DOMAINS {
        return None;
    }
    let flag = if atomic { ATOMIC } else { 0 };
    Some((domain << DOMAIN_SHIFT) | ((NO_CPU as usize) << CPU_SHIFT) | flag | INLINE)
}

/// `state` (a new inline state) as made on `cpu`, if known: the counter's adds on that CPU
/// are unnoted from the first (a counter made and used by one thread never takes the cold
/// path; a `const` one, made with no CPU, notes its first add).
#[inline]
pub(crate) const fn made_on(state: usize, cpu: Option<u32>) -> usize {
    match cpu {
        Some(cpu) => with_sampling(state, cpu as usize, 0, 0),
        None => state,
    }
}

/// True for the inline form.
#[inline(always)]
pub(crate) const fn is_inline(state: usize) -> bool {
    state & INLINE != 0
}

/// True if an inline counter stays atomic for good.
#[inline(always)]
pub(crate) const fn is_atomic(state: usize) -> bool {
    state & ATOMIC != 0
}

/// The domain index of an inline state.
#[inline(always)]
pub(crate) const fn domain_index(state: usize) -> usize {
    (state >> DOMAIN_SHIFT) & (MAX_DOMAINS - 1)
}

/// True if an add of the inline counter in `state`, made on `cpu` (`None`: unknown here),
/// has nothing to note: the CPU is the one that last updated the counter. The add's whole
/// test (an [`Atomic`](crate::CounterMode::Atomic) counter too records its last CPU, so that
/// it passes): it compares only the low 16 bits of `cpu` ([`cpu_field`]), so a CPU 65536 apart
/// from the last one goes unseen (which only delays an upgrade).
#[inline(always)]
pub(crate) const fn adds_unnoted(state: usize, cpu: Option<u32>) -> bool {
    match cpu {
        Some(cpu) => (state >> CPU_SHIFT) as u16 == cpu as u16,
        None => false,
    }
}

/// The CPU field for `cpu`: its low 16 bits, as the add's test compares them, except that
/// the CPUs whose low bits are `NO_CPU` (65535, 131071, ...) get `NO_CPU - 1` (their adds
/// always take the cold path, which only costs them time).
#[inline]
pub(crate) const fn cpu_field(cpu: usize) -> u16 {
    let low = cpu as u16;
    if low == NO_CPU {
        NO_CPU - 1
    } else {
        low
    }
}

/// The sampling part of an inline state: the CPU field of the CPU that last updated the
/// counter ([`cpu_field`]; `None` before the first), the switches in the current window, and
/// when the window began (microseconds of the window clock, wrapping).
#[inline]
pub(crate) const fn sampling(state: usize) -> (Option<u16>, u8, u32) {
    let cpu = (state >> CPU_SHIFT) as u16;
    let cpu = if cpu == NO_CPU { None } else { Some(cpu) };
    (
        cpu,
        ((state >> SWITCHES_SHIFT) as u8) & MAX_SWITCHES,
        (state >> START_SHIFT) as u32,
    )
}

/// `state` with its sampling part replaced: last updated on `cpu`, `switches` (at most
/// [`MAX_SWITCHES`]) in the window that began at `start`.
#[inline]
pub(crate) const fn with_sampling(state: usize, cpu: usize, switches: u8, start: u32) -> usize {
    debug_assert!(switches <= MAX_SWITCHES);
    let keep = state & ((1 << SWITCHES_SHIFT) - 1);
    keep | (((switches & MAX_SWITCHES) as usize) << SWITCHES_SHIFT)
        | ((cpu_field(cpu) as usize) << CPU_SHIFT)
        | ((start as usize) << START_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_states_have_no_samples() {
        for domain in [0, 1, MAX_DOMAINS - 1] {
            for atomic in [false, true] {
                let s = inline(domain, atomic).unwrap();
                assert!(is_inline(s));
                assert_eq!((domain_index(s), is_atomic(s)), (domain, atomic));
                assert_eq!(sampling(s), (None, 0, 0));
            }
        }
        assert_eq!(inline(MAX_DOMAINS, false), None);
    }

    #[test]
    fn only_the_last_cpu_or_an_atomic_counter_adds_unnoted() {
        let fresh = inline(3, false).unwrap();
        assert!(!adds_unnoted(fresh, Some(0)), "the first add is noted");
        assert!(!adds_unnoted(fresh, None));
        let on_5 = with_sampling(fresh, 5, 2, 77);
        assert!(adds_unnoted(on_5, Some(5)));
        assert!(!adds_unnoted(on_5, Some(6)));
        assert!(!adds_unnoted(on_5, None), "an unknown CPU is noted");
        let atomic = inline(3, true).unwrap();
        assert!(
            !adds_unnoted(atomic, Some(9)),
            "an atomic counter's first add is noted"
        );
        assert!(adds_unnoted(with_sampling(atomic, 9, 0, 0), Some(9)));
    }

    proptest! {
        /// Sampling fields round-trip and never disturb the tag, the flag or the domain.
        #[test]
        fn sampling_round_trips(
            domain in 0..MAX_DOMAINS,
            atomic in any::<bool>(),
            cpu in prop_oneof![0usize..300, 65_530usize..65_540, 131_068usize..131_076],
            switches in 0..=MAX_SWITCHES,
            start in any::<u32>(),
        ) {
            let s = with_sampling(inline(domain, atomic).unwrap(), cpu, switches, start);
            prop_assert!(is_inline(s));
            prop_assert_eq!((domain_index(s), is_atomic(s)), (domain, atomic));
            prop_assert_eq!(sampling(s), (Some(cpu_field(cpu)), switches, start));
            // The add's test agrees with the field for every CPU but those whose low 16 bits
            // are all ones (always noted).
            let all_ones = cpu as u16 == NO_CPU;
            prop_assert_eq!(adds_unnoted(s, Some(cpu as u32)), !all_ones);
            prop_assert!(!adds_unnoted(s, Some(cpu as u32 + 1)));
        }
    }
}
