//! TCP: the closed-loop echo client and the raw epoll echo server.
//!
//! Client: `CONNS` connections, each sending a `SIZE`-byte message and
//! waiting for the whole echo before the next (one request in flight per
//! connection), every byte checked. Server: single-threaded,
//! level-triggered epoll; reads into one reused buffer and writes back,
//! queueing only what the kernel did not take.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::report::{pattern, ClientArgs, Tally};
use crate::sys::{die, epoll_create, epoll_ctl, epoll_wait, resolve, sys_read, sys_write};

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

pub fn client(args: &[String]) {
    let ClientArgs {
        addr,
        count: nconn,
        size,
        secs,
        warm,
    } = ClientArgs::parse(
        args,
        "usage: netload client HOST:PORT CONNS SIZE SECONDS [WARMUP]",
        1..=usize::MAX,
    );

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
    let mut tally = Tally::new(warm, secs);

    // Kick off: send the first message on every connection.
    for (id, c) in conns.iter_mut().enumerate() {
        c.start = Instant::now();
        pump_write(ep, id, c, &mut tally.errors);
    }

    while tally.tick(Instant::now()) {
        let n = epoll_wait(ep, &mut evs, 100);
        for ev in evs.iter().take(n) {
            let id = ev.u64 as usize;
            let bits = ev.events;
            let c = &mut conns[id];
            if bits & libc::EPOLLOUT as u32 != 0 {
                pump_write(ep, id, c, &mut tally.errors);
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
                                tally.errors += 1;
                                break;
                            }
                        }
                        c.recvd += k;
                        if c.recvd > size {
                            die("server echoed more than was sent");
                        }
                        if c.recvd == size {
                            tally.done(c.start);
                            c.seq += 1;
                            c.fill(id);
                            c.start = Instant::now();
                            pump_write(ep, id, c, &mut tally.errors);
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
    tally.finish(nconn, size);
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

pub fn server(args: &[String]) {
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
