//! Tests under a lowered `RLIMIT_AS`: the limit cannot be raised back safely for the other
//! tests of the binary (and an abort on allocation failure must fail one test, not the run),
//! so the parent test re-runs its own test binary with [`CHILD_ENV`] set, running only the
//! child test, which lowers the limit of its own process. Its exit status carries the verdict.

use std::process::Command;

/// Set in the child's environment.
pub const CHILD_ENV: &str = "PCPU_TESTKIT_RLIMIT_CHILD";

/// True in the child process (a child test returns at once where this is false).
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs test `name` of this test binary in a child process with [`CHILD_ENV`] set, checks
/// that it ran (`1 passed`) and succeeded, and returns its stdout and stderr. A crash (an
/// abort on allocation failure, SIGSEGV) fails as a failed assertion does.
pub fn run_child(name: &str) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("spawning the child test");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({:?}):\n{text}",
        out.status
    );
    assert!(text.contains("1 passed"), "child did not run:\n{text}");
    text
}

/// Sets the soft `RLIMIT_AS` to `bytes` (the hard limit stays infinite, so it can be raised
/// again).
pub fn set_address_space_limit(bytes: usize) {
    let rl = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass; changing our own soft limit below the
    // (infinite) hard limit is always permitted.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
}

/// This process's address-space size in bytes, from `/proc/self/statm`.
pub fn address_space_size() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("statm's first field");
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}
