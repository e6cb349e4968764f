//! The owner lane's word: the address of the header that holds the slot, and in its top 16
//! bits the slot's *home*, the lane whose magazine it came from.
//!
//! The home is a placement hint for [`Space::detach`](crate::Space::detach): a slot goes back
//! to the magazine it came from, or to the pool. It lived in the header until the header had
//! to be 16 bytes with two of them the owner's ([`Header::tag`](crate::Header::tag)); the
//! owner lane, one word per slot that the protocol writes at every attach and relocation
//! anyway, has 16 bits to spare, since user-space addresses fit in 48 (x86_64 and aarch64
//! Linux hand out higher ones only to `mmap` calls that ask for them;
//! [`Space::attach`](crate::Space::attach) refuses a header above).

/// The home when it is not known (the thread moved during the attach, or forgotten).
pub(crate) const NO_HOME: u16 = u16::MAX;
/// Set in the home once a relocation gave the header this slot (one a compactor chose, from
/// no magazine); the bits below still name the attach lane.
pub(crate) const MOVED: u16 = 0x8000;

const HOME_SHIFT: u32 = 48;
const ADDR_MASK: usize = (1 << HOME_SHIFT) - 1;

// The home takes the top 16 bits of a 64-bit word.
const _: () = assert!(usize::BITS == 64);

/// True if a header at `addr` can be named in an owner lane.
pub(crate) fn fits(addr: usize) -> bool {
    addr & !ADDR_MASK == 0
}

/// The owner word for a header at `header` (which [`fits`]) with home `home`.
pub(crate) fn word(header: usize, home: u16) -> usize {
    debug_assert!(fits(header));
    header | usize::from(home) << HOME_SHIFT
}

/// The header address in owner word `word` (0: none).
pub(crate) fn header_of(word: usize) -> usize {
    word & ADDR_MASK
}

/// The home in owner word `word`.
pub(crate) fn home_of(word: usize) -> u16 {
    (word >> HOME_SHIFT) as u16
}

/// The home of a slot popped by a thread on lane `lane` (`None`: not known; so are lanes
/// from 32,767 up).
pub(crate) fn home_bits(lane: Option<usize>) -> u16 {
    lane.and_then(|l| u16::try_from(l).ok())
        // Below MOVED - 1: lane 0x7fff with MOVED set would read as NO_HOME.
        .filter(|&l| l < MOVED - 1)
        .unwrap_or(NO_HOME)
}

/// The lane the slot was popped on, even if a relocation moved the header since (`None` if
/// not known).
pub(crate) fn attach_lane(home: u16) -> Option<usize> {
    (home != NO_HOME).then_some(usize::from(home & !MOVED))
}

/// The magazine lane to give the slot back to: the attach lane, unless the slot is one a
/// relocation chose or the lane is not known.
pub(crate) fn free_lane(home: u16) -> Option<usize> {
    (home & MOVED == 0).then_some(usize::from(home))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_holds_the_header_and_the_home() {
        let h = 0x7fff_ffff_fff8;
        for home in [0, 1, 0x7ffd, NO_HOME, 3 | MOVED] {
            let w = word(h, home);
            assert_eq!(header_of(w), h);
            assert_eq!(home_of(w), home);
        }
        assert!(!fits(1 << 48));
    }

    #[test]
    fn homes_read_back() {
        assert_eq!(attach_lane(home_bits(Some(5))), Some(5));
        assert_eq!(free_lane(home_bits(Some(5))), Some(5));
        assert_eq!(attach_lane(home_bits(Some(5)) | MOVED), Some(5));
        assert_eq!(free_lane(home_bits(Some(5)) | MOVED), None);
        assert_eq!(attach_lane(home_bits(None)), None);
        assert_eq!(free_lane(home_bits(None)), None);
        assert_eq!(home_bits(Some(0x7fff)), NO_HOME);
        assert_eq!(home_bits(Some(1 << 20)), NO_HOME);
    }
}
