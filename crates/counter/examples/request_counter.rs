//! A web server's request counters through the `metrics` facade, with pcpu's recorder
//! (feature `metrics`): `metrics::counter!` and `metrics::gauge!` updates from every worker
//! thread go to per-CPU cells once a metric is contended, instead of one shared atomic.
//!
//! ```sh
//! cargo run -p pcpu-counter --features metrics --example request_counter
//! ```
//!
//! Four workers take simulated requests off a shared queue, as the threads of a server
//! take connections, and record each one: a counter by route and status, the response
//! bytes, and the requests in flight. The requests are a fixed sequence, so the totals are
//! known: the example replays the sequence on one thread and exits 1 unless every value the
//! recorder holds is exact.

use pcpu_counter::PcpuRecorder;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

const WORKERS: usize = 4;
const REQUESTS: u64 = 200_000;
const ROUTES: [&str; 3] = ["/", "/api/items", "/static/app.js"];

/// Request `i` of the sequence: its route, status and response size.
fn request(i: u64) -> (&'static str, &'static str, u64) {
    let route = ROUTES[(i % 3) as usize];
    let status = if i % 97 == 0 {
        "500"
    } else if i % 13 == 0 {
        "404"
    } else {
        "200"
    };
    (route, status, 100 + i % 1000)
}

/// A worker: takes requests off the queue until it is empty.
fn worker(queue: &AtomicU64) {
    // Handles taken once, as a server keeps them; labelled series are looked up per
    // request, since their labels vary.
    let in_flight = metrics::gauge!("http_requests_in_flight");
    let bytes = metrics::counter!("http_response_bytes_total");
    loop {
        let i = queue.fetch_add(1, Ordering::Relaxed);
        if i >= REQUESTS {
            return;
        }
        in_flight.increment(1.0);
        let (route, status, size) = request(i);
        metrics::counter!("http_requests_total", "route" => route, "status" => status).increment(1);
        bytes.increment(size);
        metrics::histogram!("http_response_size").record(size as f64);
        in_flight.decrement(1.0);
    }
}

/// A series as `name{label=value,...}`, its labels in the order the macro gave them.
fn series(key: &metrics::Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    if labels.is_empty() {
        key.name().to_string()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

fn main() -> Result<(), String> {
    let recorder: &'static PcpuRecorder = Box::leak(Box::new(PcpuRecorder::new()));
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;

    let queue = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| worker(&queue));
        }
    });

    // The same sequence on one thread, with plain integers.
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    let mut bytes = 0;
    for i in 0..REQUESTS {
        let (route, status, size) = request(i);
        *want
            .entry(format!(
                "http_requests_total{{route={route},status={status}}}"
            ))
            .or_default() += 1;
        bytes += size as i64;
    }
    want.insert("http_response_bytes_total".into(), bytes);
    want.insert("http_requests_in_flight".into(), 0);

    // Every counter and gauge the recorder holds (the histogram is not pcpu's).
    let got: BTreeMap<String, i64> = (recorder.counters().into_iter())
        .chain(recorder.gauges())
        .map(|(key, value)| (series(&key), value))
        .collect();
    for (name, value) in &got {
        println!("{name} {value}");
    }
    let names: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    let wrong: Vec<String> = (names.into_iter())
        .filter(|name| want.get(*name) != got.get(*name))
        .map(|name| {
            let (w, g) = (want.get(name), got.get(name));
            format!("{name}: expected {w:?}, recorded {g:?}")
        })
        .collect();
    if !wrong.is_empty() {
        return Err(wrong.join("; "));
    }
    println!("request_counter: {REQUESTS} requests on {WORKERS} workers, every total exact");
    Ok(())
}
