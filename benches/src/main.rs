//! The pcpu benchmark binary. For now it measures the layer that exists: the per-CPU add of
//! pcpu-rseq against a shared atomic and `sched_getcpu` + atomic, on 1 and 2 threads.

use pcpu_rseq::sync::{AtomicI64, AtomicUsize, Ordering};
use std::time::Instant;

const ITERS: u64 = 20_000_000;

#[repr(align(64))]
struct Padded(AtomicI64);

fn time_threads(threads: usize, f: &(dyn Fn() + Sync)) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(f);
        }
    });
    start.elapsed().as_nanos() as f64 / ITERS as f64
}

fn main() {
    let ncpu = pcpu_rseq::possible_cpus();
    let cells: Vec<Padded> = (0..ncpu).map(|_| Padded(AtomicI64::new(0))).collect();
    let slot = AtomicUsize::new(cells.as_ptr() as usize);
    let shared = Padded(AtomicI64::new(0));
    let rseq_add = || {
        for _ in 0..ITERS {
            // SAFETY: `slot` addresses `ncpu` live cells, 64 bytes apart.
            let _ = unsafe { pcpu_rseq::add(&slot, 64, ncpu, 1) };
        }
    };
    let atomic_add = || {
        for _ in 0..ITERS {
            shared.0.fetch_add(1, Ordering::Relaxed);
        }
    };
    let getcpu_add = || {
        for _ in 0..ITERS {
            // SAFETY: sched_getcpu has no preconditions.
            let cpu = unsafe { libc::sched_getcpu() }.max(0) as usize % ncpu;
            cells[cpu].0.fetch_add(1, Ordering::Relaxed);
        }
    };
    println!("mode: {:?}, possible CPUs: {ncpu}", pcpu_rseq::mode());
    println!(
        "{:<28} {:>14} {:>14}",
        "add (ns/op per thread)", "1 thread", "2 threads"
    );
    let rows: [(&str, &(dyn Fn() + Sync)); 3] = [
        ("pcpu-rseq add", &rseq_add),
        ("shared AtomicI64::fetch_add", &atomic_add),
        ("sched_getcpu + fetch_add", &getcpu_add),
    ];
    for (name, f) in rows {
        let one = time_threads(1, f);
        let two = time_threads(2, f);
        println!("{name:<28} {one:>14.2} {two:>14.2}");
    }
}
