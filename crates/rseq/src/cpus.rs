//! How many CPUs per-CPU memory must cover.
//!
//! The count is the highest id in `/sys/devices/system/cpu/possible` plus one: not the online
//! count (CPUs may come online later and the kernel will report their ids) and not the affinity
//! mask (another thread may run elsewhere). This is what Linux's `nr_cpu_ids` means.

use std::sync::OnceLock;

/// The sysfs file that lists the possible CPUs, e.g. `0-1` or `0-3,8-11`.
pub const POSSIBLE_PATH: &str = "/sys/devices/system/cpu/possible";

/// Number of possible CPUs: the highest possible CPU id plus one.
///
/// Read once from [`POSSIBLE_PATH`] and cached. If the file is missing or unreadable (a
/// sandbox without sysfs), falls back to [`std::thread::available_parallelism`], and to 1 if
/// even that fails, so the result is always at least 1.
///
/// ```
/// let n = pcpu_rseq::possible_cpus();
/// assert!(n >= 1);
/// ```
pub fn possible_cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| {
        std::fs::read_to_string(POSSIBLE_PATH)
            .ok()
            .and_then(|text| parse_cpu_list(&text))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Parses a kernel CPU list (`0-3,5,7-9`) and returns its highest id plus one.
///
/// Returns `None` for an empty or malformed list.
///
/// ```
/// assert_eq!(pcpu_rseq::parse_cpu_list("0-1\n"), Some(2));
/// assert_eq!(pcpu_rseq::parse_cpu_list("0,4-5"), Some(6));
/// assert_eq!(pcpu_rseq::parse_cpu_list("x"), None);
/// ```
pub fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut highest: Option<usize> = None;
    for part in text.trim().split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.trim().parse::<usize>().ok()?,
                hi.trim().parse::<usize>().ok()?,
            ),
            None => {
                let id = part.trim().parse::<usize>().ok()?;
                (id, id)
            }
        };
        if lo > hi {
            return None;
        }
        highest = Some(highest.map_or(hi, |h| h.max(hi)));
    }
    highest.and_then(|h| h.checked_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_kernel_formats() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0-3,8-11"), Some(12));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-"), None);
    }

    #[test]
    fn this_machine_has_at_least_one_cpu() {
        assert!(possible_cpus() >= 1);
    }

    proptest! {
        #[test]
        fn highest_of_ranges(ranges in proptest::collection::vec((0usize..4096, 0usize..64), 1..8)) {
            let text = ranges
                .iter()
                .map(|&(lo, len)| if len == 0 { lo.to_string() } else { format!("{lo}-{}", lo + len) })
                .collect::<Vec<_>>()
                .join(",");
            let want = ranges.iter().map(|&(lo, len)| lo + len).max().unwrap() + 1;
            prop_assert_eq!(parse_cpu_list(&text), Some(want));
        }
    }
}
