//! A counter created before `fork` keeps working in the child and in the parent, with
//! independent totals. This file holds one test so that no other test thread is inside a
//! critical section or pinned epoch when the process forks.
// fork: Unix only.
#![cfg(unix)]

use pcpu_counter::{CounterMode, Domain, PercpuCounter};

#[test]
fn counters_survive_fork_with_independent_totals() {
    let domain = Domain::builder().mode(CounterMode::PerCpu).build().unwrap();
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    let lazy = PercpuCounter::new(0);
    c.add(10);
    lazy.add(10);
    // SAFETY: this test binary runs this single test; the child only runs our code and leaves
    // with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Child: adds, set, a compaction (membarrier must be re-registered here) and new
        // counters must all work; the verdict is the exit code.
        let ok = (|| {
            c.add(5);
            lazy.add(5);
            if c.sum() != 15 || lazy.sum() != 15 {
                return false;
            }
            if domain.compact().is_err() {
                return false;
            }
            let fresh = PercpuCounter::new_in(domain, 1).unwrap();
            fresh.add(1);
            c.set(100).is_ok() && c.sum() == 100 && fresh.sum() == 2
        })();
        // SAFETY: _exit skips atexit handlers and destructors shared with the parent.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    c.add(7);
    lazy.add(7);
    let mut status = 0;
    // SAFETY: `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
    assert_eq!(c.sum(), 17, "the parent's total is its own");
    assert_eq!(lazy.sum(), 17);
    domain.compact().unwrap();
    assert_eq!(c.sum(), 17);
}
