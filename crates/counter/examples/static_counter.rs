//! Counters in `static`s, made by `PercpuCounter::new_const`: no lifetime, no allocation,
//! no initialisation at run time. Each starts inline (a plain atomic count in its own two
//! words) and goes per-CPU by itself once several CPUs update it at the same time.
//!
//! ```sh
//! cargo run -p pcpu-counter --example static_counter
//! ```
//!
//! Four threads handle requests and count them, their errors and their bytes in three
//! statics; each thread also keeps its own plain tally. A compaction runs while they add.
//! The example exits 1 unless every static's sum equals the tallies.

use pcpu_counter::{Domain, PercpuCounter};
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTS: PercpuCounter = PercpuCounter::new_const(0);
static ERRORS: PercpuCounter = PercpuCounter::new_const(0);
/// Starts below zero: `new_const` takes any initial value.
static BYTES: PercpuCounter = PercpuCounter::new_const(-1_000);

const THREADS: u64 = 4;
const PER_THREAD: u64 = 250_000;

/// A thread's requests: what it added to each static.
fn handle_requests(thread: u64) -> (i64, i64, i64) {
    let (mut requests, mut errors, mut bytes) = (0, 0, 0);
    for k in 0..PER_THREAD {
        REQUESTS.inc();
        requests += 1;
        if (k + thread) % 50 == 0 {
            ERRORS.inc();
            errors += 1;
        }
        let size = ((k * 7 + thread) % 512) as i64;
        BYTES.add(size);
        bytes += size;
    }
    (requests, errors, bytes)
}

fn main() -> Result<(), String> {
    if !(REQUESTS.is_inline() && ERRORS.is_inline() && BYTES.is_inline()) {
        return Err("a static must start inline".into());
    }
    let done = AtomicBool::new(false);
    let tallies: Vec<(i64, i64, i64)> = std::thread::scope(|s| {
        // Relocation runs while the statics are updated; nothing may be lost to it.
        let compactor = s.spawn(|| {
            let mut runs = 0u32;
            while !done.load(Ordering::Relaxed) || runs == 0 {
                Domain::global().compact().map_err(|e| e.to_string())?;
                runs += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok::<u32, String>(runs)
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || handle_requests(t)))
            .collect();
        let tallies = workers
            .into_iter()
            .map(|w| w.join().expect("a worker panicked"))
            .collect();
        done.store(true, Ordering::Relaxed);
        compactor.join().expect("the compactor panicked")?;
        Ok::<_, String>(tallies)
    })?;

    let sum = |f: fn(&(i64, i64, i64)) -> i64| tallies.iter().map(f).sum::<i64>();
    let want = [
        ("requests", &REQUESTS, sum(|t| t.0)),
        ("errors", &ERRORS, sum(|t| t.1)),
        ("bytes", &BYTES, -1_000 + sum(|t| t.2)),
    ];
    let mut wrong = Vec::new();
    for (name, counter, want) in want {
        let got = counter.sum();
        let form = if counter.is_per_cpu() {
            "per-CPU"
        } else {
            "inline"
        };
        println!("{name}: {got} ({form})");
        if got != want {
            wrong.push(format!("{name}: {got}, expected {want}"));
        }
        if (counter.read() - got).abs() > counter.error_bound() {
            wrong.push(format!(
                "{name}: read {} beyond the error bound",
                counter.read()
            ));
        }
    }
    if !wrong.is_empty() {
        return Err(wrong.join("; "));
    }
    println!("static_counter: every static's sum exact");
    Ok(())
}
