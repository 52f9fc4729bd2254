//! `netload`: the network side of `python -m ferrio bench net`.
//!
//! - `netload client HOST:PORT CONNS SIZE SECONDS [WARMUP]`: opens `CONNS`
//!   TCP connections and, on each, sends a `SIZE`-byte message and waits
//!   for the whole echo before sending the next (closed loop, one request
//!   in flight per connection). Every echoed byte is checked against the
//!   expected pattern. After `WARMUP` seconds it measures for `SECONDS` and
//!   prints one JSON line: requests, seconds, rps, p50/p99 latency (µs)
//!   of the measured window, `all_requests` (warm-up included: the server's
//!   CPU over the whole run is divided by it), errors.
//! - `netload server HOST:PORT`: a raw single-threaded epoll TCP echo
//!   server (the floor every loop is compared with). Prints its port, then
//!   serves until killed.
//! - `netload udp-client HOST:PORT SOCKETS SIZE SECONDS [WARMUP]` and
//!   `netload udp-server HOST:PORT`: the same over UDP, one datagram in
//!   flight per client socket (src/udp.rs says how losses are handled).
//! - `netload http-client HOST:PORT CONNS SIZE SECONDS [WARMUP]`: keep-alive
//!   HTTP/1.1 `POST /echo` requests with a `SIZE`-byte body, the response
//!   body checked byte by byte (src/http.rs).
//!
//! One thread, level-triggered epoll, non-blocking sockets: the generator
//! needs far less CPU per request than any server it measures, so it is
//! never the bottleneck on a 2-core machine.

mod closedloop;
mod http;
mod report;
mod sys;
mod tcp;
mod udp;

const USAGE: &str = "usage: netload client|udp-client|http-client HOST:PORT CONNS SIZE SECONDS [WARMUP] | netload server|udp-server [HOST:PORT]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("client") => tcp::client(&args[1..]),
        Some("server") => tcp::server(&args[1..]),
        Some("udp-client") => udp::client(&args[1..]),
        Some("udp-server") => udp::server(&args[1..]),
        Some("http-client") => http::client(&args[1..]),
        _ => sys::die(USAGE),
    }
}
