//! The state word: the second of the two words a [`PercpuCounter`](crate::PercpuCounter)
//! value holds (the first is its inline count, an `AtomicI64`).
//!
//! | bit 0 | form | the rest of the word |
//! |---|---|---|
//! | 1 | *inline* | bit 1: atomic for good ([`CounterMode::Atomic`](crate::CounterMode::Atomic)); bits 2..13: the domain's index; bits 13..29: the CPU of the last sampled add, plus 1 (0: none yet); bits 29..37: CPU switches in the current window; bits 37..45: samples in it |
//! | 0 | *header* | the address of the counter's header in its domain's header storage |
//!
//! A counter starts inline: its adds are one `fetch_add` on the inline count, and the state
//! word only decides, from sampled adds, when the counter should go per-CPU
//! ([`crate::lazy`]). It moves to the header form once (never back): the state word then
//! holds the header's address, and the inline count stays where it is, a part of the value
//! that `read` and `sum` add in (adds that loaded the inline state just before the switch
//! land there, so none is lost and nothing has to be moved). The header, unlike the
//! counter's two words, never moves, so relocation can reach it whatever the user does with
//! the value.

/// Tag of the inline form.
pub(crate) const INLINE: usize = 1;
/// Inline flag: the counter never goes per-CPU.
const ATOMIC: usize = 2;
/// Bits of the domain index.
pub(crate) const DOMAIN_BITS: u32 = 11;
/// Most domains a process can build (index 0 is the global domain).
pub(crate) const MAX_DOMAINS: usize = 1 << DOMAIN_BITS;
const DOMAIN_SHIFT: u32 = 2;
const CPU_SHIFT: u32 = DOMAIN_SHIFT + DOMAIN_BITS;
const CPU_MASK: usize = 0xffff;
const SWITCHES_SHIFT: u32 = CPU_SHIFT + 16;
const SAMPLES_SHIFT: u32 = SWITCHES_SHIFT + 8;
const BYTE: usize = 0xff;

/// The inline state of a new counter of domain `domain`, or `None` for an index out of range.
#[inline]
pub(crate) const fn inline(domain: usize, atomic: bool) -> Option<usize> {
    if domain >= MAX_DOMAINS {
        return None;
    }
    let flag = if atomic { ATOMIC } else { 0 };
    Some((domain << DOMAIN_SHIFT) | flag | INLINE)
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

/// The sampling part of an inline state: the CPU of the last sample (`None` before the
/// first), switches and samples in the current window.
#[inline]
pub(crate) const fn sampling(state: usize) -> (Option<u16>, u8, u8) {
    let cpu = (state >> CPU_SHIFT) & CPU_MASK;
    let cpu = if cpu == 0 {
        None
    } else {
        Some((cpu - 1) as u16)
    };
    (
        cpu,
        ((state >> SWITCHES_SHIFT) & BYTE) as u8,
        ((state >> SAMPLES_SHIFT) & BYTE) as u8,
    )
}

/// `state` with its sampling part replaced. CPU ids above 65534 share the top value: a
/// switch between two of them goes unseen, which only delays an upgrade.
#[inline]
pub(crate) const fn with_sampling(state: usize, cpu: usize, switches: u8, samples: u8) -> usize {
    let cpu = if cpu >= CPU_MASK - 1 {
        CPU_MASK
    } else {
        cpu + 1
    };
    let keep = state & ((1 << CPU_SHIFT) - 1);
    keep | (cpu << CPU_SHIFT)
        | ((switches as usize) << SWITCHES_SHIFT)
        | ((samples as usize) << SAMPLES_SHIFT)
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

    proptest! {
        /// Sampling fields round-trip and never disturb the tag, the flag or the domain.
        #[test]
        fn sampling_round_trips(
            domain in 0..MAX_DOMAINS,
            atomic in any::<bool>(),
            cpu in 0usize..70_000,
            switches in any::<u8>(),
            samples in any::<u8>(),
        ) {
            let s = with_sampling(inline(domain, atomic).unwrap(), cpu, switches, samples);
            prop_assert!(is_inline(s));
            prop_assert_eq!((domain_index(s), is_atomic(s)), (domain, atomic));
            let want_cpu = cpu.min(CPU_MASK - 1) as u16;
            prop_assert_eq!(sampling(s), (Some(want_cpu), switches, samples));
        }
    }
}
