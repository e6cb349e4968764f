//! A process table's memory counters as groups: each process has Linux's four RSS counters
//! (file, anon, swap, shmem pages) in one `PercpuCounterGroup`, so that creating, destroying
//! and relocating a process's counters costs what one counter costs, and a page fault is
//! one per-CPU add.
//!
//! ```sh
//! cargo run -p pcpu-counter --example memory_counters
//! ```
//!
//! 2,000 processes are made in a domain whose counters are per-CPU from the start (as in a
//! kernel, where every process's counters are); four threads, standing for CPUs, take page
//! faults, swap-outs and unmaps for processes all over the table. The events are a fixed
//! sequence, so every process's totals are known. Then 90 % of the processes exit, and
//! `Domain::compact` moves the survivors' slots out of the emptied memory and gives it back.
//! The example exits 1 unless every total is exact, before and after the move.

use pcpu_counter::{CounterMode, Domain, PercpuCounterGroup};

const FILE: usize = 0;
const ANON: usize = 1;
const SWAP: usize = 2;
const SHMEM: usize = 3;
const NAMES: [&str; 4] = ["file", "anon", "swap", "shmem"];

const PROCESSES: usize = 2_000;
const CPUS: usize = 4;
const EVENTS: usize = 100_000; // per CPU

/// One memory event: which process, and the page counts it changes.
fn event(cpu: usize, k: usize) -> (usize, [(usize, i64); 2]) {
    let pid = (k * 31 + cpu * 17) % PROCESSES;
    // The kind of event from a multiplicative hash, so that it does not follow the pid.
    let kind = ((k as u64 | (cpu as u64) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61) as u8;
    let change = match kind {
        0..=3 => [(ANON, 1), (ANON, 0)], // anonymous page fault
        4 | 5 => [(FILE, 1), (FILE, 0)], // file page fault
        6 => [(ANON, -1), (SWAP, 1)],    // an anonymous page swapped out
        _ => [(SHMEM, 1), (FILE, -1)],   // a shared page in, a file page unmapped
    };
    (pid, change)
}

/// Every process's totals that `sum_all` must show, from the events on one thread.
fn expected() -> Vec<[i64; 4]> {
    let mut want = vec![[0i64; 4]; PROCESSES];
    for cpu in 0..CPUS {
        for k in 0..EVENTS {
            let (pid, change) = event(cpu, k);
            for (i, delta) in change {
                want[pid][i] += delta;
            }
        }
    }
    want
}

/// Checks each process's totals against `want` (by pid): the first that differs, or whose
/// `read` strays beyond the error bound, is the error.
fn check<'a>(
    table: impl Iterator<Item = (usize, &'a PercpuCounterGroup)>,
    want: &[[i64; 4]],
) -> Result<(), String> {
    for (pid, rss) in table {
        let got = rss.sum_all();
        if got != want[pid] {
            return Err(format!("process {pid}: {got:?}, expected {:?}", want[pid]));
        }
        // `read` is O(1): within the error bound of the exact value.
        for (i, &exact) in got.iter().enumerate() {
            let approx = rss.read(i).map_err(|e| e.to_string())?;
            if approx.abs_diff(exact) > rss.error_bound() as u64 {
                return Err(format!("process {pid}: read({i}) {approx} vs sum {exact}"));
            }
        }
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let domain = Domain::builder()
        .mode(CounterMode::PerCpu)
        .build()
        .map_err(|e| e.to_string())?;
    let table: Vec<PercpuCounterGroup> = (0..PROCESSES)
        .map(|_| PercpuCounterGroup::new_in(domain, NAMES.len()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("creating the process table: {e}"))?;

    std::thread::scope(|s| {
        for cpu in 0..CPUS {
            let table = &table;
            s.spawn(move || {
                for k in 0..EVENTS {
                    let (pid, change) = event(cpu, k);
                    for (i, delta) in change {
                        // `i` is one of the four: the add cannot fail.
                        let _ = table[pid].add(i, delta);
                    }
                }
            });
        }
    });
    let want = expected();
    check(table.iter().enumerate(), &want)?;
    // A fifth counter does not exist: an error, and nothing changes.
    if table[0].add(NAMES.len(), 1).is_ok() || table[0].sum_all() != want[0] {
        return Err("an add to a counter past the group's end was not refused".into());
    }

    // 90 % of the processes exit; the survivors' slots are scattered over the memory.
    let survivors: Vec<(usize, PercpuCounterGroup)> = table
        .into_iter()
        .enumerate()
        .filter(|(pid, _)| pid % 10 == 0)
        .collect();
    let report = domain.compact().map_err(|e| format!("compact: {e}"))?;
    check(survivors.iter().map(|(pid, rss)| (*pid, rss)), &want)?;

    let totals = survivors.iter().fold([0i64; 4], |mut t, (_, rss)| {
        for (t, v) in t.iter_mut().zip(rss.sum_all()) {
            *t += v;
        }
        t
    });
    println!(
        "{} of {PROCESSES} processes left; their pages: {}",
        survivors.len(),
        NAMES
            .iter()
            .zip(totals)
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "compact: {} groups moved, {} pagesets unmapped, per-CPU memory resident {} -> {} bytes",
        report.slots_moved,
        report.pagesets_unmapped,
        report.bytes_resident_before,
        report.bytes_resident_after
    );
    println!("memory_counters: every process's totals exact, before and after compaction");
    Ok(())
}
