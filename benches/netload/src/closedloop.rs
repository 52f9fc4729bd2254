//! The closed-loop driver shared by the TCP echo client and the HTTP
//! client: `CONNS` connections, one request in flight on each, the next
//! sent as soon as the whole response is in.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::report::{ClientArgs, Tally};
use crate::sys::{die, epoll_create, epoll_ctl, epoll_wait, sys_read, sys_write};

/// One connection's request/response state; the driver owns the socket,
/// the request number and how much of the request was sent.
pub trait Exchange {
    /// Fills request number `seq` of connection `id` and forgets the last
    /// response.
    fn start(&mut self, id: usize, seq: u64);
    /// The current request, whole.
    fn request(&self) -> &[u8];
    /// Response bytes: true once the response is complete (`errors`
    /// counts responses with a byte other than the one expected).
    fn take(&mut self, id: usize, seq: u64, data: &[u8], errors: &mut u64) -> bool;
}

/// A whole client run: parses `HOST:PORT CONNS SIZE SECONDS [WARMUP]`
/// (or exits with `usage`; SIZE within `sizes`), connects, runs the
/// exchange `make(size)` builds on every connection, prints the report.
pub fn run<C: Exchange>(
    args: &[String],
    usage: &str,
    sizes: std::ops::RangeInclusive<usize>,
    make: impl Fn(usize) -> C,
) {
    let a = ClientArgs::parse(args, usage, sizes);
    let ep = epoll_create();
    let streams = connect_all(a.addr, a.count, ep);
    let mut tally = Tally::new(a.warm, a.secs);
    drive(ep, streams, |_| make(a.size), &mut tally);
    tally.finish(a.count, a.size);
}

/// Connects `n` non-blocking, TCP_NODELAY streams to `addr`, each watched
/// for reading by `ep` under its index.
fn connect_all(addr: SocketAddr, n: usize, ep: RawFd) -> Vec<TcpStream> {
    (0..n)
        .map(|id| {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .unwrap_or_else(|e| die(&format!("connect: {e}")));
            let _ = s.set_nodelay(true);
            s.set_nonblocking(true)
                .unwrap_or_else(|e| die(&format!("nonblocking: {e}")));
            epoll_ctl(
                ep,
                libc::EPOLL_CTL_ADD,
                s.as_raw_fd(),
                libc::EPOLLIN as u32,
                id as u64,
            );
            s
        })
        .collect()
}

struct Slot<C> {
    c: C,
    fd: RawFd,
    _stream: TcpStream,
    seq: u64,
    sent: usize,
    start: Instant,
    want_write: bool,
}

/// Runs one exchange per stream (made by `make` for connection `id`)
/// until `tally` says the measured window is over.
fn drive<C: Exchange>(
    ep: RawFd,
    streams: Vec<TcpStream>,
    make: impl Fn(usize) -> C,
    tally: &mut Tally,
) {
    let mut slots: Vec<Slot<C>> = streams
        .into_iter()
        .enumerate()
        .map(|(id, stream)| {
            let mut c = make(id);
            c.start(id, 0);
            Slot {
                c,
                fd: stream.as_raw_fd(),
                _stream: stream,
                seq: 0,
                sent: 0,
                start: Instant::now(),
                want_write: false,
            }
        })
        .collect();
    let mut rbuf = vec![0u8; 256 * 1024];
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];

    // Kick off: send the first request on every connection.
    for (id, s) in slots.iter_mut().enumerate() {
        s.start = Instant::now();
        pump(ep, id, s);
    }
    while tally.tick(Instant::now()) {
        let n = epoll_wait(ep, &mut evs, 100);
        for ev in evs.iter().take(n) {
            let id = ev.u64 as usize;
            let bits = ev.events;
            let s = &mut slots[id];
            if bits & libc::EPOLLOUT as u32 != 0 {
                pump(ep, id, s);
            }
            if bits & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 == 0 {
                continue;
            }
            loop {
                match sys_read(s.fd, &mut rbuf) {
                    Ok(None) => break,
                    Ok(Some(0)) => die("server closed a connection"),
                    Ok(Some(k)) => {
                        if s.c.take(id, s.seq, &rbuf[..k], &mut tally.errors) {
                            tally.done(s.start);
                            s.seq += 1;
                            s.sent = 0;
                            s.c.start(id, s.seq);
                            s.start = Instant::now();
                            pump(ep, id, s);
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
}

/// Sends as much of the pending request as the socket takes; watches for
/// writability exactly while some is left.
fn pump<C: Exchange>(ep: RawFd, id: usize, s: &mut Slot<C>) {
    let fd = s.fd;
    let buf = s.c.request();
    while s.sent < buf.len() {
        match sys_write(fd, &buf[s.sent..]) {
            Ok(0) => break,
            Ok(k) => s.sent += k,
            Err(e) => die(&format!("write: {e}")),
        }
    }
    let want = s.sent < buf.len();
    if want != s.want_write {
        s.want_write = want;
        let ev = if want {
            (libc::EPOLLIN | libc::EPOLLOUT) as u32
        } else {
            libc::EPOLLIN as u32
        };
        epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, ev, id as u64);
    }
}
