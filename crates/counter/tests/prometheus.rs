//! The `prometheus-client` feature: `pcpu_counter::prometheus::{Counter, Gauge}` updated from
//! several threads and encoded in the text exposition format, exact; the storage trait on
//! per-CPU counters; and the `prometheus_endpoint` example scraped over loopback.
//! Run: `cargo test -p pcpu-counter --features prometheus-client --test prometheus`.
#![cfg(feature = "prometheus-client")]

// The example's server, built here as a module: the test scrapes the example's own code.
mod common;
#[allow(dead_code)]
#[path = "../examples/prometheus_endpoint.rs"]
mod endpoint;

use pcpu_counter::prometheus::{Counter, Gauge, CONTENT_TYPE};
use pcpu_counter::{CounterMode, Domain, PercpuCounter};
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::{counter, family::Family, gauge};
use prometheus_client::registry::{Registry, Unit};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    method: &'static str,
    status: u16,
}

/// The exposition's lines, sorted: a family's label sets come out in hash order.
fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

/// Four threads update a labelled counter family, a counter with a unit and a gauge; the
/// encoded text is exactly the expected exposition.
#[test]
fn text_exposition_is_exact() {
    const THREADS: u64 = 4;
    const N: u64 = 25_000;
    let requests = Family::<Labels, Counter>::default();
    let bytes = Counter::default();
    let in_flight = Gauge::default();
    let mut registry = Registry::with_prefix("app");
    registry.register("requests", "Requests served", requests.clone());
    registry.register_with_unit("sent", "Bytes sent", Unit::Bytes, bytes.clone());
    registry.register("in_flight", "Requests in flight", in_flight.clone());

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (requests, bytes, in_flight) = (&requests, &bytes, &in_flight);
            s.spawn(move || {
                // One handle per label set, taken once: the family's lock stays off the loop.
                let ok = requests.get_or_create_owned(&Labels {
                    method: "GET",
                    status: 200,
                });
                let missing = requests.get_or_create_owned(&Labels {
                    method: "GET",
                    status: 404,
                });
                for k in 0..N {
                    in_flight.inc();
                    if (t + k) % 5 == 0 {
                        missing.inc();
                    } else {
                        ok.inc();
                    }
                    bytes.inc_by(k % 100);
                    in_flight.dec();
                }
            });
        }
    });
    // Requests left in flight at the end.
    in_flight.inc_by(3);

    let (mut ok, mut missing, mut sent) = (0u64, 0u64, 0u64);
    for t in 0..THREADS {
        for k in 0..N {
            if (t + k) % 5 == 0 {
                missing += 1;
            } else {
                ok += 1;
            }
            sent += k % 100;
        }
    }
    assert_eq!(ok + missing, THREADS * N);

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let expected = format!(
        "# HELP app_requests Requests served.\n\
         # TYPE app_requests counter\n\
         app_requests_total{{method=\"GET\",status=\"200\"}} {ok}\n\
         app_requests_total{{method=\"GET\",status=\"404\"}} {missing}\n\
         # HELP app_sent_bytes Bytes sent.\n\
         # TYPE app_sent_bytes counter\n\
         # UNIT app_sent_bytes bytes\n\
         app_sent_bytes_total {sent}\n\
         # HELP app_in_flight Requests in flight.\n\
         # TYPE app_in_flight gauge\n\
         app_in_flight 3\n\
         # EOF\n"
    );
    assert_eq!(sorted_lines(&text), sorted_lines(&expected), "{text}");
    assert!(text.ends_with("# EOF\n"));
    // Only the family's two lines may change places: everything else is in order.
    let without_family = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with("app_requests_total"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_family(&text), without_family(&expected));
}

/// A hot counter behind the metric goes per-CPU (on two CPUs or more), and loses nothing.
#[test]
fn a_contended_metric_goes_per_cpu() {
    let requests = Counter::default();
    assert!(requests.inner().is_inline(), "a new metric is inline");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (added, apart) = common::on_two_cpus(|_| {
        let mut n = 0;
        while !requests.inner().is_per_cpu() && Instant::now() < deadline {
            for _ in 0..1024 {
                requests.inc();
            }
            n += 1024;
        }
        // More adds on the per-CPU path.
        for _ in 0..10_000 {
            requests.inc();
        }
        n + 10_000
    });
    let added: u64 = added.iter().sum();
    assert_eq!(requests.get(), added);
    if apart {
        assert!(requests.inner().is_per_cpu(), "contended on two CPUs");
    }
}

/// The storage traits on a counter that is per-CPU from the start: updates from several
/// threads are exact, the "previous value" is within the error bound, `set` is exact. The
/// batch is wide enough that no CPU's cell folds here, so `read` (0) would not do for `get`.
#[test]
fn storage_traits_on_a_per_cpu_counter() {
    let domain = Domain::builder()
        .mode(CounterMode::PerCpu)
        .batch(1 << 20)
        .build()
        .unwrap();
    let c = PercpuCounter::new_in(domain, 0).unwrap();
    assert!(c.is_per_cpu());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    counter::Atomic::<u64>::inc_by(&c, 3);
                    counter::Atomic::<u64>::inc(&c);
                }
            });
        }
    });
    assert_eq!(counter::Atomic::<u64>::get(&c), 160_000);
    let before = counter::Atomic::<u64>::inc_by(&c, 1);
    assert!(before.abs_diff(160_000) <= c.error_bound() as u64);
    assert_eq!(c.sum(), 160_001);

    let g = PercpuCounter::new_in(domain, 0).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    gauge::Atomic::<i64>::inc_by(&g, 5);
                    gauge::Atomic::<i64>::dec(&g);
                    gauge::Atomic::<i64>::dec_by(&g, 6);
                    gauge::Atomic::<i64>::inc(&g);
                }
            });
        }
    });
    assert_eq!(gauge::Atomic::<i64>::get(&g), -40_000);
    assert_eq!(
        gauge::Atomic::<i64>::set(&g, 7),
        -40_000,
        "set returns the exact value"
    );
    assert_eq!(gauge::Atomic::<i64>::get(&g), 7);
    assert_eq!(gauge::Atomic::<i64>::dec_by(&g, i64::MIN), 7);
    assert_eq!(
        g.sum(),
        7i64.wrapping_sub(i64::MIN),
        "dec_by wraps like add"
    );
}

/// Out-of-range values: increments saturate at `i64::MAX`; a counter below zero reads 0.
#[test]
fn counter_values_out_of_range() {
    let big = Counter::default();
    big.inc_by(u64::MAX);
    assert_eq!(big.get(), i64::MAX as u64);
    let negative = Counter::default();
    negative.inner().add(-5);
    assert_eq!(negative.get(), 0);
    assert_eq!(negative.inc(), 0, "the previous value is never below 0");
}

/// One raw request: the whole response, head and body.
fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The example's server on 127.0.0.1: requests from three threads, then a scrape over
/// loopback whose response (status, headers, every sample) is exact.
#[test]
fn the_example_endpoint_serves_exact_totals() {
    let server = Arc::new(endpoint::Server::new());
    let addr = endpoint::start(Arc::clone(&server), 0).unwrap();
    assert!(addr.ip().is_loopback());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..40 {
                    assert_eq!(
                        endpoint::get(addr, "/").unwrap(),
                        (200, endpoint::HELLO.to_string())
                    );
                }
                assert_eq!(endpoint::get(addr, "/missing").unwrap().0, 404);
                let post = raw(addr, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
                assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
                let garbage = raw(addr, "hello\r\n\r\n");
                assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
            });
        }
    });

    let response = raw(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n",
    );
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut head = head.lines();
    assert_eq!(head.next(), Some("HTTP/1.1 200 OK"));
    let headers: Vec<&str> = head.collect();
    assert!(headers.contains(&format!("Content-Type: {CONTENT_TYPE}").as_str()));
    assert!(headers.contains(&format!("Content-Length: {}", body.len()).as_str()));

    let sent = 120 * endpoint::HELLO.len()
        + 3 * endpoint::NOT_FOUND.len()
        + 3 * "method not allowed\n".len()
        + 3 * "bad request\n".len();
    let expected = format!(
        "# HELP http_requests HTTP requests served.\n\
         # TYPE http_requests counter\n\
         http_requests_total{{route=\"/\",status=\"200\"}} 120\n\
         http_requests_total{{route=\"other\",status=\"404\"}} 3\n\
         http_requests_total{{route=\"/metrics\",status=\"405\"}} 3\n\
         http_requests_total{{route=\"other\",status=\"400\"}} 3\n\
         # HELP http_response_bytes HTTP response body bytes sent.\n\
         # TYPE http_response_bytes counter\n\
         # UNIT http_response_bytes bytes\n\
         http_response_bytes_total {sent}\n\
         # HELP http_requests_in_flight HTTP requests being served.\n\
         # TYPE http_requests_in_flight gauge\n\
         http_requests_in_flight 1\n\
         # EOF\n"
    );
    assert_eq!(sorted_lines(body), sorted_lines(&expected), "{body}");
    // The scrape itself is counted after it was encoded: the server's own handle sees it.
    assert_eq!(server.in_flight.get(), 0);
    let scrapes = server.requests.get_or_create(&endpoint::RequestLabels {
        route: "/metrics",
        status: 200,
    });
    assert_eq!(scrapes.get(), 1);
}
