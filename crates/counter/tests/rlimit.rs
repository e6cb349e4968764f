//! With `RLIMIT_AS` lowered, `try_new` returns an error and the existing counters keep
//! working. The parent test re-runs this binary as a child (`PCPU_COUNTER_RLIMIT_CHILD=1`)
//! that lowers its own limit; its exit code carries the verdict, so an abort fails the test.
// RLIMIT_AS and re-running itself as a child: Unix only.
#![cfg(unix)]

use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use std::process::Command;

const CHILD_ENV: &str = "PCPU_COUNTER_RLIMIT_CHILD";

#[test]
fn rlimit_parent() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["rlimit_child", "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({:?}):\n{text}",
        out.status
    );
    assert!(
        text.contains("1 passed") && text.contains("failed with"),
        "child did not run:\n{text}"
    );
}

fn vm_size() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

#[test]
fn rlimit_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // 256 simulated CPUs: each new pageset maps 256 x 16 KiB = 4 MiB of address space.
    let domain = Domain::builder()
        .ncpu(256)
        .mode(CounterMode::PerCpu)
        .build()
        .unwrap();
    let first = PercpuCounter::new_in(domain, 0).unwrap();
    first.add(1);
    let mut live = Vec::with_capacity(1 << 22);
    let limit = (vm_size() + (64 << 20)) as libc::rlim_t;
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
    let err = loop {
        match PercpuCounter::new_in(domain, 1) {
            Ok(c) => {
                if live.len() == live.capacity() {
                    panic!("the limit was never reached");
                }
                live.push(c);
            }
            Err(e) => break e,
        }
    };
    eprintln!("try_new failed with {err} after {} counters", live.len());
    assert!(!live.is_empty());
    // Existing counters keep working, exactly.
    first.add(2);
    assert_eq!(first.sum(), 3);
    for c in live.iter().take(1000) {
        c.add(1);
        assert_eq!(c.sum(), 2);
    }
    // Freeing makes room again.
    live.truncate(live.len() / 2);
    let again = PercpuCounter::new_in(domain, 5).unwrap();
    assert_eq!(again.sum(), 5);
}
