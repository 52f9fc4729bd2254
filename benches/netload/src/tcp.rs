//! TCP: the closed-loop echo client and the raw epoll echo server.
//!
//! Client: `CONNS` connections, each sending a `SIZE`-byte message and
//! waiting for the whole echo before the next (one request in flight per
//! connection), every byte checked. Server: single-threaded,
//! level-triggered epoll; reads into one reused buffer and writes back,
//! queueing only what the kernel did not take.

use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

use crate::closedloop::{self, Exchange};
use crate::report::pattern;
use crate::sys::{die, epoll_create, epoll_ctl, epoll_wait, resolve, sys_read, sys_write};

/// An echo exchange: the message, and how much of its echo came back.
struct Echo {
    msg: Vec<u8>,
    recvd: usize,
}

impl Exchange for Echo {
    fn start(&mut self, id: usize, seq: u64) {
        for (i, b) in self.msg.iter_mut().enumerate() {
            *b = pattern(id, seq, i);
        }
        self.recvd = 0;
    }

    fn request(&self) -> &[u8] {
        &self.msg
    }

    fn take(&mut self, id: usize, seq: u64, data: &[u8], errors: &mut u64) -> bool {
        for (j, b) in data.iter().enumerate() {
            if *b != pattern(id, seq, self.recvd + j) {
                *errors += 1;
                break;
            }
        }
        self.recvd += data.len();
        if self.recvd > self.msg.len() {
            die("server echoed more than was sent");
        }
        self.recvd == self.msg.len()
    }
}

pub fn client(args: &[String]) {
    let usage = "usage: netload client HOST:PORT CONNS SIZE SECONDS [WARMUP]";
    closedloop::run(args, usage, 1..=usize::MAX, |size| Echo {
        msg: vec![0; size],
        recvd: 0,
    });
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
