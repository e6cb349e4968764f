//! CPU affinity for tests that need threads on given CPUs: pcpu-rseq's pinned stress tests
//! (every add lands in its CPU's cell), and pcpu-counter's lazy-mode tests, whose two threads
//! must run at once on two CPUs. Left to the scheduler, two busy threads can share one CPU for
//! a whole test (CI saw it: another test's two threads held the other CPU), and then never
//! update a counter at the same time.

/// The CPUs this thread may run on (its affinity mask), or `None` where it cannot be read.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: all-zero bytes are an empty `cpu_set_t`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a writable `cpu_set_t` of `size` bytes; pid 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return None;
    }
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE, within `set`.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    Some(cpus)
}

/// No affinity masks off Linux.
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> Option<Vec<usize>> {
    None
}

/// Pins the calling thread to `cpu`; false if the kernel refused (or `cpu` is past
/// `CPU_SETSIZE`).
#[cfg(target_os = "linux")]
pub fn pin_to(cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: all-zero bytes are an empty `cpu_set_t`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), within `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid `cpu_set_t` of `size` bytes; pid 0 is the calling thread.
    unsafe { libc::sched_setaffinity(0, size, &set) == 0 }
}

/// No affinity masks off Linux.
#[cfg(not(target_os = "linux"))]
pub fn pin_to(_cpu: usize) -> bool {
    false
}

/// Two distinct CPUs this process may run on, for two threads that must run at the same time
/// ([`pin_to`] one on each); `None` with fewer than two (or where the mask cannot be read),
/// when no test can make two threads overlap.
pub fn two_cpus() -> Option<[usize; 2]> {
    match allowed_cpus()?.as_slice() {
        [a, b, ..] => Some([*a, *b]),
        _ => None,
    }
}
