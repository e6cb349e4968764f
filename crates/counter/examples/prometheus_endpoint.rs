//! A Prometheus `/metrics` endpoint on 127.0.0.1 whose counters are pcpu counters (feature
//! `prometheus-client`). A small HTTP server (std's `TcpListener`, a thread per connection)
//! counts the requests it serves by route and status, the bytes it sends and the requests
//! in flight, with `pcpu_counter::prometheus::{Counter, Gauge}`, and serves them in the
//! OpenMetrics text format at `/metrics`.
//!
//! ```sh
//! # Self-check (what CI runs): clients on 4 threads send requests over loopback, then the
//! # example scrapes its own /metrics and exits 1 unless every total is exact.
//! cargo run -p pcpu-counter --features prometheus-client --example prometheus_endpoint
//! # Serve until interrupted, for a browser, curl or a Prometheus server:
//! cargo run -p pcpu-counter --features prometheus-client --example prometheus_endpoint -- --serve 9898
//! curl http://127.0.0.1:9898/metrics
//! ```
//!
//! `tests/prometheus.rs` builds this file as a module and scrapes a `Server` of its own.

use pcpu_counter::prometheus::{Counter, Gauge, CONTENT_TYPE};
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// The labels of `http_requests_total`: a fixed set of routes, so that a client cannot grow
/// the family without bound.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `/`, `/metrics`, or `other`.
    pub route: &'static str,
    /// The HTTP status sent.
    pub status: u16,
}

/// The body of `/`.
pub const HELLO: &str = "hello\n";
/// The body of a 404.
pub const NOT_FOUND: &str = "not found\n";

/// The server: its registry and the metrics registered in it.
pub struct Server {
    registry: Registry,
    /// Requests served, by route and status: counted once the response is ready, before it
    /// is sent (a scrape's own request is in the next scrape).
    pub requests: Family<RequestLabels, Counter>,
    /// Body bytes sent.
    pub response_bytes: Counter,
    /// Requests read but not yet answered (a scrape sees itself: at least 1).
    pub in_flight: Gauge,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with its metrics registered.
    pub fn new() -> Server {
        let requests = Family::<RequestLabels, Counter>::default();
        let response_bytes = Counter::default();
        let in_flight = Gauge::default();
        let mut registry = Registry::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register_with_unit(
            "http_response",
            "HTTP response body bytes sent",
            Unit::Bytes,
            response_bytes.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served",
            in_flight.clone(),
        );
        Server {
            registry,
            requests,
            response_bytes,
            in_flight,
        }
    }

    /// Accepts connections on `listener` and answers each on a thread of its own, until
    /// `accept` fails.
    pub fn serve(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, _) = listener.accept()?;
            let server = Arc::clone(&self);
            std::thread::spawn(move || {
                // A client that went away is not the server's error.
                let _ = server.handle(stream);
            });
        }
    }

    /// Reads one request from `stream`, answers it and closes the connection.
    pub fn handle(&self, stream: TcpStream) -> io::Result<()> {
        self.in_flight.inc();
        let request = stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .and_then(|()| read_request(&mut BufReader::new(&stream)));
        let (route, status, content_type, body) = match request {
            Ok((method, path)) => self.route(&method, &path),
            Err(_) => ("other", 400, "text/plain", "bad request\n".to_string()),
        };
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.response_bytes.inc_by(body.len() as u64);
        // Before the response leaves: a client that has its answer sees this request done.
        self.in_flight.dec();
        write_response(&stream, status, content_type, &body)
    }

    /// The route label, status, content type and body for a request.
    fn route(&self, method: &str, path: &str) -> (&'static str, u16, &'static str, String) {
        let route = match path {
            "/" => "/",
            "/metrics" => "/metrics",
            _ => "other",
        };
        if method != "GET" {
            return (route, 405, "text/plain", "method not allowed\n".into());
        }
        match route {
            "/" => (route, 200, "text/plain", HELLO.into()),
            "/metrics" => {
                let mut text = String::new();
                match encode(&mut text, &self.registry) {
                    Ok(()) => (route, 200, CONTENT_TYPE, text),
                    Err(_) => (route, 500, "text/plain", "encoding failed\n".into()),
                }
            }
            _ => (route, 404, "text/plain", NOT_FOUND.into()),
        }
    }
}

/// The method and path of an HTTP/1 request; its headers are read and dropped.
fn read_request(reader: &mut impl BufRead) -> io::Result<(String, String)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP request");
    let mut line = String::new();
    // Bounded: a request line and headers of at most 8 KiB.
    let mut limited = Read::take(reader, 8192);
    limited.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(v)) if v.starts_with("HTTP/1.") => (m.to_string(), p.to_string()),
        _ => return Err(bad()),
    };
    loop {
        let mut header = String::new();
        if limited.read_line(&mut header)? == 0 {
            return Err(bad()); // the connection ended (or the limit) before the blank line
        }
        if header == "\r\n" || header == "\n" {
            return Ok((method, path));
        }
    }
}

fn write_response(
    mut stream: &TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// `GET path` on `addr`: the status code and the body.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_string()))
}

/// Binds `127.0.0.1:port` and serves `server` on a thread of its own; returns the address.
pub fn start(server: Arc<Server>, port: u16) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || server.serve(listener));
    Ok(addr)
}

/// The value of the sample line `name` (with its labels, as encoded) in an exposition.
pub fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

const CLIENTS: u64 = 4;
const HELLOS: u64 = 50;
const MISSES: u64 = 5;

/// Sends the self-check's requests and checks two scrapes of `/metrics` against them.
fn self_check(addr: SocketAddr) -> Result<(), String> {
    let failed = |e: io::Error| format!("request to {addr}: {e}");
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(move || -> io::Result<(u64, u64)> {
                    let (mut ok, mut missing) = (0, 0);
                    for _ in 0..HELLOS {
                        ok += u64::from(get(addr, "/")? == (200, HELLO.to_string()));
                    }
                    for _ in 0..MISSES {
                        missing += u64::from(get(addr, "/nowhere")?.0 == 404);
                    }
                    Ok((ok, missing))
                })
            })
            .collect();
        for c in clients {
            let answers = c.join().map_err(|_| "a client panicked".to_string())?;
            if answers.map_err(failed)? != (HELLOS, MISSES) {
                return Err("a client got a wrong answer".to_string());
            }
        }
        Ok(())
    })?;

    let (status, first) = get(addr, "/metrics").map_err(failed)?;
    let (_, second) = get(addr, "/metrics").map_err(failed)?;
    let hello_bytes = CLIENTS * HELLOS * HELLO.len() as u64;
    let miss_bytes = CLIENTS * MISSES * NOT_FOUND.len() as u64;
    let expected = [
        // The first scrape: every client request, and itself in flight.
        (
            &first,
            r#"http_requests_total{route="/",status="200"}"#,
            CLIENTS * HELLOS,
        ),
        (
            &first,
            r#"http_requests_total{route="other",status="404"}"#,
            CLIENTS * MISSES,
        ),
        (
            &first,
            "http_response_bytes_total",
            hello_bytes + miss_bytes,
        ),
        (&first, "http_requests_in_flight", 1),
        // The second: the first scrape too.
        (
            &second,
            r#"http_requests_total{route="/metrics",status="200"}"#,
            1,
        ),
        (
            &second,
            "http_response_bytes_total",
            hello_bytes + miss_bytes + first.len() as u64,
        ),
    ];
    let mut wrong = Vec::new();
    if status != 200 || !first.ends_with("# EOF\n") {
        wrong.push(format!(
            "/metrics answered {status}, body not ending in `# EOF`"
        ));
    }
    for (text, name, want) in expected {
        let got = sample(text, name);
        if got != Some(want) {
            wrong.push(format!("{name}: expected {want}, scraped {got:?}"));
        }
    }
    print!("{second}");
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let server = Arc::new(Server::new());
    match args.as_slice() {
        [] => {
            let addr = start(server, 0).map_err(|e| format!("bind 127.0.0.1: {e}"))?;
            self_check(addr)?;
            println!("prometheus_endpoint: every scraped total is exact");
            Ok(())
        }
        [flag, rest @ ..] if flag == "--serve" && rest.len() <= 1 => {
            let port = match rest.first() {
                Some(p) => p.parse().map_err(|_| format!("not a port: {p}"))?,
                None => 9898,
            };
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))?;
            println!("serving http://127.0.0.1:{port}/metrics (Ctrl-C stops)");
            server.serve(listener).map_err(|e| format!("accept: {e}"))
        }
        _ => Err("usage: prometheus_endpoint [--serve [PORT]]".to_string()),
    }
}
