//! `netload`: the network side of `python -m ferrio bench net`.
//!
//! - `netload client HOST:PORT CONNS SIZE SECONDS [WARMUP]`: opens `CONNS`
//!   connections and, on each, sends a `SIZE`-byte message and waits for the
//!   whole echo before sending the next (closed loop, one request in flight
//!   per connection). Every echoed byte is checked against the expected
//!   pattern. After `WARMUP` seconds it measures for `SECONDS` and prints
//!   one JSON line: requests, seconds, rps, p50/p99 latency (µs), errors.
//! - `netload server HOST:PORT`: a raw single-threaded epoll echo server
//!   (the floor every loop is compared with). Prints its port, then serves
//!   until killed.
//!
//! One thread, level-triggered epoll, non-blocking sockets: the generator
//! needs far less CPU per request than any server it measures, so it is
//! never the bottleneck on a 2-core machine.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::process::exit;
use std::time::{Duration, Instant};

fn die(msg: &str) -> ! {
    eprintln!("netload: {msg}");
    exit(2)
}

fn epoll_create() -> RawFd {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        die("epoll_create1 failed");
    }
    fd
}

fn epoll_ctl(ep: RawFd, op: i32, fd: RawFd, events: u32, token: u64) {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event for the call.
    let r = unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
    if r < 0 && op != libc::EPOLL_CTL_DEL {
        die(&format!("epoll_ctl: {}", io::Error::last_os_error()));
    }
}

fn epoll_wait(ep: RawFd, evs: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
    // SAFETY: `evs` is a valid, writable buffer of that many events.
    let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return 0;
        }
        die(&format!("epoll_wait: {e}"));
    }
    n as usize
}

/// Ok(Some(n)), Ok(None) on EAGAIN, Err on anything else.
fn sys_read(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is valid and writable for its length.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(r as usize))
}

fn sys_write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for its length.
    let r = unsafe {
        libc::send(
            fd,
            buf.as_ptr() as *const libc::c_void,
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
            _ => Err(e),
        };
    }
    Ok(r as usize)
}

fn resolve(addr: &str) -> SocketAddr {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| die(&format!("bad address {addr}")))
}

/// The byte at offset `i` of request `seq` on connection `conn`.
#[inline]
fn pattern(conn: usize, seq: u64, i: usize) -> u8 {
    (conn as u64)
        .wrapping_mul(131)
        .wrapping_add(seq.wrapping_mul(17))
        .wrapping_add(i as u64) as u8
}

struct Conn {
    fd: RawFd,
    _stream: TcpStream,
    seq: u64,
    msg: Vec<u8>,
    sent: usize,
    recvd: usize,
    start: Instant,
    want_write: bool,
}

impl Conn {
    fn fill(&mut self, id: usize) {
        for (i, b) in self.msg.iter_mut().enumerate() {
            *b = pattern(id, self.seq, i);
        }
        self.sent = 0;
        self.recvd = 0;
    }
}

fn client(args: &[String]) {
    if args.len() < 4 {
        die("usage: netload client HOST:PORT CONNS SIZE SECONDS [WARMUP]");
    }
    let addr = resolve(&args[0]);
    let nconn: usize = args[1].parse().unwrap_or_else(|_| die("bad CONNS"));
    let size: usize = args[2].parse().unwrap_or_else(|_| die("bad SIZE"));
    let secs: f64 = args[3].parse().unwrap_or_else(|_| die("bad SECONDS"));
    let warm: f64 = args.get(4).map(|s| s.parse().unwrap_or(0.5)).unwrap_or(0.5);
    if nconn == 0 || size == 0 {
        die("CONNS and SIZE must be positive");
    }

    let ep = epoll_create();
    let mut conns = Vec::with_capacity(nconn);
    for id in 0..nconn {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| die(&format!("connect: {e}")));
        let _ = s.set_nodelay(true);
        s.set_nonblocking(true)
            .unwrap_or_else(|e| die(&format!("nonblocking: {e}")));
        let fd = s.as_raw_fd();
        epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, id as u64);
        let mut c = Conn {
            fd,
            _stream: s,
            seq: 0,
            msg: vec![0; size],
            sent: 0,
            recvd: 0,
            start: Instant::now(),
            want_write: false,
        };
        c.fill(id);
        conns.push(c);
    }

    let mut rbuf = vec![0u8; 256 * 1024];
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut errors = 0u64;
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs_f64(warm);
    let end = measure_from + Duration::from_secs_f64(secs);
    let mut measuring = false;
    let mut m_start = measure_from;
    let mut count = 0u64;

    // Kick off: send the first message on every connection.
    for (id, c) in conns.iter_mut().enumerate() {
        c.start = Instant::now();
        pump_write(ep, id, c, &mut errors);
    }

    loop {
        let now = Instant::now();
        if !measuring && now >= measure_from {
            measuring = true;
            m_start = now;
            count = 0;
            lat.clear();
        }
        if now >= end {
            break;
        }
        let n = epoll_wait(ep, &mut evs, 100);
        for ev in evs.iter().take(n) {
            let id = ev.u64 as usize;
            let bits = ev.events;
            let c = &mut conns[id];
            if bits & libc::EPOLLOUT as u32 != 0 {
                pump_write(ep, id, c, &mut errors);
            }
            if bits & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 == 0 {
                continue;
            }
            loop {
                match sys_read(c.fd, &mut rbuf) {
                    Ok(None) => break,
                    Ok(Some(0)) => die("server closed a connection"),
                    Ok(Some(k)) => {
                        for (j, b) in rbuf[..k].iter().enumerate() {
                            if *b != pattern(id, c.seq, c.recvd + j) {
                                errors += 1;
                                break;
                            }
                        }
                        c.recvd += k;
                        if c.recvd > size {
                            die("server echoed more than was sent");
                        }
                        if c.recvd == size {
                            let dt = c.start.elapsed();
                            if measuring {
                                count += 1;
                                lat.push(dt.as_nanos().min(u32::MAX as u128) as u32);
                            }
                            c.seq += 1;
                            c.fill(id);
                            c.start = Instant::now();
                            pump_write(ep, id, c, &mut errors);
                        }
                        if k < rbuf.len() {
                            break;
                        }
                    }
                    Err(e) => die(&format!("read: {e}")),
                }
            }
        }
    }
    let elapsed = m_start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i] as f64 / 1000.0
    };
    println!(
        "{{\"requests\": {count}, \"seconds\": {elapsed:.6}, \"rps\": {:.1}, \"p50_us\": {:.2}, \"p99_us\": {:.2}, \"errors\": {errors}, \"conns\": {nconn}, \"size\": {size}}}",
        count as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    let _ = io::stdout().flush();
    if errors > 0 {
        exit(1);
    }
}

/// Sends as much of the pending message as the socket takes; watches for
/// writability while some is left.
fn pump_write(ep: RawFd, id: usize, c: &mut Conn, errors: &mut u64) {
    while c.sent < c.msg.len() {
        match sys_write(c.fd, &c.msg[c.sent..]) {
            Ok(0) => break,
            Ok(k) => c.sent += k,
            Err(_) => {
                *errors += 1;
                die("write failed");
            }
        }
    }
    let want = c.sent < c.msg.len();
    if want != c.want_write {
        c.want_write = want;
        let ev = if want {
            (libc::EPOLLIN | libc::EPOLLOUT) as u32
        } else {
            libc::EPOLLIN as u32
        };
        epoll_ctl(ep, libc::EPOLL_CTL_MOD, c.fd, ev, id as u64);
    }
}

struct Peer {
    fd: RawFd,
    pending: Vec<u8>,
}

fn server(args: &[String]) {
    let addr = args.first().map(String::as_str).unwrap_or("127.0.0.1:0");
    let l = TcpListener::bind(resolve(addr)).unwrap_or_else(|e| die(&format!("bind: {e}")));
    l.set_nonblocking(true)
        .unwrap_or_else(|e| die(&format!("{e}")));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("{port}");
    let _ = io::stdout().flush();
    let ep = epoll_create();
    let lfd = l.as_raw_fd();
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, lfd, libc::EPOLLIN as u32, u64::MAX);
    let mut peers: std::collections::HashMap<RawFd, Peer> = Default::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    loop {
        let n = epoll_wait(ep, &mut evs, -1);
        for ev in evs.iter().take(n) {
            if ev.u64 == u64::MAX {
                while let Ok((s, _)) = l.accept() {
                    let _ = s.set_nodelay(true);
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let fd = s.into_raw_fd();
                    epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, fd as u64);
                    peers.insert(
                        fd,
                        Peer {
                            fd,
                            pending: Vec::new(),
                        },
                    );
                }
                continue;
            }
            let fd = ev.u64 as RawFd;
            let mut close = false;
            if let Some(p) = peers.get_mut(&fd) {
                if ev.events & libc::EPOLLOUT as u32 != 0 && !p.pending.is_empty() {
                    match sys_write(p.fd, &p.pending) {
                        Ok(k) => {
                            p.pending.drain(..k);
                        }
                        Err(_) => close = true,
                    }
                    if p.pending.is_empty() {
                        epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32, fd as u64);
                    }
                }
                if !close
                    && p.pending.is_empty()
                    && ev.events & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
                {
                    match sys_read(p.fd, &mut buf) {
                        Ok(None) => {}
                        Ok(Some(0)) | Err(_) => close = true,
                        Ok(Some(k)) => match sys_write(p.fd, &buf[..k]) {
                            Ok(w) if w == k => {}
                            Ok(w) => {
                                p.pending.extend_from_slice(&buf[w..k]);
                                epoll_ctl(
                                    ep,
                                    libc::EPOLL_CTL_MOD,
                                    fd,
                                    (libc::EPOLLIN | libc::EPOLLOUT) as u32,
                                    fd as u64,
                                );
                            }
                            Err(_) => close = true,
                        },
                    }
                }
            }
            if close {
                if let Some(p) = peers.remove(&fd) {
                    epoll_ctl(ep, libc::EPOLL_CTL_DEL, p.fd, 0, 0);
                    // SAFETY: we own this fd (taken with into_raw_fd).
                    unsafe { libc::close(p.fd) };
                }
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("client") => client(&args[1..]),
        Some("server") => server(&args[1..]),
        _ => die("usage: netload client HOST:PORT CONNS SIZE SECONDS [WARMUP] | netload server [HOST:PORT]"),
    }
}
