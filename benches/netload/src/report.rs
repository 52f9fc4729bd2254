//! A client run's arguments, the bytes it expects back, and the one JSON
//! line it prints (the format `python -m ferrio bench net` parses).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::exit;
use std::time::{Duration, Instant};

use crate::sys::{die, resolve};

/// `HOST:PORT COUNT SIZE SECONDS [WARMUP]`, shared by the TCP and UDP clients.
pub struct ClientArgs {
    pub addr: SocketAddr,
    /// Connections (TCP) or sockets (UDP), each with one request in flight.
    pub count: usize,
    pub size: usize,
    pub secs: f64,
    pub warm: f64,
}

impl ClientArgs {
    /// Parses `args` or exits with `usage`; SIZE must lie in `sizes`.
    pub fn parse(args: &[String], usage: &str, sizes: std::ops::RangeInclusive<usize>) -> Self {
        if args.len() < 4 {
            die(usage);
        }
        fn num<T: std::str::FromStr>(s: &str, what: &str, usage: &str) -> T {
            s.parse()
                .unwrap_or_else(|_| die(&format!("bad {what}: {s}; {usage}")))
        }
        let out = ClientArgs {
            addr: resolve(&args[0]),
            count: num(&args[1], "COUNT", usage),
            size: num(&args[2], "SIZE", usage),
            secs: num(&args[3], "SECONDS", usage),
            warm: args.get(4).map_or(0.5, |s| num(s, "WARMUP", usage)),
        };
        if out.count == 0 || !sizes.contains(&out.size) {
            die(&format!(
                "COUNT must be positive and SIZE within {}..={}; {usage}",
                sizes.start(),
                sizes.end()
            ));
        }
        out
    }
}

/// The byte at offset `i` of request `seq` on connection `conn`.
#[inline]
pub fn pattern(conn: usize, seq: u64, i: usize) -> u8 {
    (conn as u64)
        .wrapping_mul(131)
        .wrapping_add(seq.wrapping_mul(17))
        .wrapping_add(i as u64) as u8
}

/// What a client run counts: warm-up first, then a measured window.
pub struct Tally {
    measure_from: Instant,
    end: Instant,
    measuring: bool,
    m_start: Instant,
    count: u64,
    /// Every request that came back whole, warm-up included: what the
    /// server's CPU time over the whole client run is divided by.
    all: u64,
    /// Latencies of the measured requests, nanoseconds.
    lat: Vec<u32>,
    /// Echoes that did not match what was sent (never reset).
    pub errors: u64,
    /// Datagrams sent again after a timeout (UDP only; 0 for TCP).
    pub lost: u64,
}

impl Tally {
    pub fn new(warm: f64, secs: f64) -> Self {
        let measure_from = Instant::now() + Duration::from_secs_f64(warm);
        Tally {
            measure_from,
            end: measure_from + Duration::from_secs_f64(secs),
            measuring: false,
            m_start: measure_from,
            count: 0,
            all: 0,
            lat: Vec::with_capacity(1 << 20),
            errors: 0,
            lost: 0,
        }
    }

    /// Called once per event-loop turn: starts the measured window when the
    /// warm-up is over; false once the run is over.
    pub fn tick(&mut self, now: Instant) -> bool {
        if !self.measuring && now >= self.measure_from {
            self.measuring = true;
            self.m_start = now;
            self.count = 0;
            self.lost = 0;
            self.lat.clear();
        }
        now < self.end
    }

    /// One request, sent at `start`, came back whole and right.
    pub fn done(&mut self, start: Instant) {
        self.all += 1;
        if self.measuring {
            self.count += 1;
            let ns = start.elapsed().as_nanos();
            self.lat.push(ns.min(u32::MAX as u128) as u32);
        }
    }

    /// Prints the JSON line; exits 1 if any echo was wrong.
    pub fn finish(mut self, conns: usize, size: usize) {
        let elapsed = self.m_start.elapsed().as_secs_f64();
        self.lat.sort_unstable();
        let lat = &self.lat;
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
            lat[i] as f64 / 1000.0
        };
        println!(
            "{{\"requests\": {}, \"all_requests\": {}, \"seconds\": {:.6}, \"rps\": {:.1}, \"p50_us\": {:.2}, \"p99_us\": {:.2}, \"errors\": {}, \"lost\": {}, \"conns\": {}, \"size\": {}}}",
            self.count,
            self.all,
            elapsed,
            self.count as f64 / elapsed,
            pct(0.50),
            pct(0.99),
            self.errors,
            self.lost,
            conns,
            size,
        );
        let _ = io::stdout().flush();
        if self.errors > 0 {
            exit(1);
        }
    }
}
