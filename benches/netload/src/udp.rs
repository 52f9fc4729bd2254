//! UDP: the closed-loop datagram echo client and the raw echo server.
//!
//! Client: `SOCKETS` UDP sockets, each `connect`ed to the server and
//! keeping one `SIZE`-byte datagram in flight. A datagram carries its
//! sequence number (bytes 0..8) and socket index (8..16) ahead of the
//! pattern, so a late echo of a datagram sent again is told apart from a
//! wrong one: late echoes are dropped silently, wrong lengths, indexes or
//! bytes count as errors. UDP may drop: a datagram with no echo after
//! `RESEND` is sent again and counted in `lost` (its latency includes the
//! wait, as a real client's would). Server sockets get 4 MiB buffers in
//! every server the bench starts, so loopback drops are rare and `lost`
//! says when they were not.
//!
//! Server: one socket, level-triggered epoll; on readiness it drains the
//! socket with `recvfrom` until EAGAIN and answers each datagram with one
//! `sendto` (a reply the kernel refuses is dropped, as UDP does).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::report::{pattern, ClientArgs, Tally};
use crate::sys::{die, epoll_create, epoll_ctl, epoll_wait, resolve};

/// Header: sequence number, then socket index, little endian.
const HEADER: usize = 16;
/// No echo after this long: send the datagram again.
const RESEND: Duration = Duration::from_millis(50);
/// Socket buffers asked for on the server side (net.core.rmem_max caps it).
pub const SERVER_BUFFER: i32 = 4 << 20;

struct Peer {
    sock: UdpSocket,
    seq: u64,
    msg: Vec<u8>,
    /// When the current request was first sent (latency start).
    start: Instant,
    /// When it was last sent (resend clock).
    sent_at: Instant,
}

impl Peer {
    fn fill(&mut self, id: usize) {
        self.msg[..8].copy_from_slice(&self.seq.to_le_bytes());
        self.msg[8..HEADER].copy_from_slice(&(id as u64).to_le_bytes());
        for i in HEADER..self.msg.len() {
            self.msg[i] = pattern(id, self.seq, i);
        }
    }

    fn send(&mut self) {
        match self.sock.send(&self.msg) {
            Ok(_) => {}
            // A full send buffer: the resend clock retries it.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            // The server's port not (yet) listening shows up here as
            // ECONNREFUSED on a connected socket: the resend retries too.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => die(&format!("send: {e}")),
        }
        self.sent_at = Instant::now();
    }
}

/// What an echoed datagram is, for the peer that received it.
enum Echo {
    Current,
    Late,
    Wrong,
}

fn check(peer: &Peer, id: usize, data: &[u8]) -> Echo {
    if data.len() != peer.msg.len() {
        return Echo::Wrong;
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&data[..8]);
    let seq = u64::from_le_bytes(word);
    word.copy_from_slice(&data[8..HEADER]);
    if u64::from_le_bytes(word) != id as u64 {
        return Echo::Wrong;
    }
    if seq < peer.seq {
        return Echo::Late;
    }
    if seq > peer.seq || data[HEADER..] != peer.msg[HEADER..] {
        return Echo::Wrong;
    }
    Echo::Current
}

pub fn client(args: &[String]) {
    let ClientArgs {
        addr,
        count: npeer,
        size,
        secs,
        warm,
    } = ClientArgs::parse(
        args,
        "usage: netload udp-client HOST:PORT SOCKETS SIZE SECONDS [WARMUP]",
        HEADER..=65507,
    );
    let local: SocketAddr = if addr.is_ipv4() {
        "127.0.0.1:0"
            .parse()
            .unwrap_or_else(|_| die("bad local address"))
    } else {
        "[::1]:0"
            .parse()
            .unwrap_or_else(|_| die("bad local address"))
    };

    let ep = epoll_create();
    let now = Instant::now();
    let mut peers = Vec::with_capacity(npeer);
    for id in 0..npeer {
        let sock = UdpSocket::bind(local).unwrap_or_else(|e| die(&format!("bind: {e}")));
        sock.connect(addr)
            .unwrap_or_else(|e| die(&format!("connect: {e}")));
        sock.set_nonblocking(true)
            .unwrap_or_else(|e| die(&format!("nonblocking: {e}")));
        epoll_ctl(
            ep,
            libc::EPOLL_CTL_ADD,
            sock.as_raw_fd(),
            libc::EPOLLIN as u32,
            id as u64,
        );
        let mut p = Peer {
            sock,
            seq: 0,
            msg: vec![0; size],
            start: now,
            sent_at: now,
        };
        p.fill(id);
        peers.push(p);
    }

    let mut rbuf = vec![0u8; 65536];
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut tally = Tally::new(warm, secs);
    let mut last_scan = Instant::now();

    for p in peers.iter_mut() {
        p.start = Instant::now();
        p.send();
    }

    loop {
        let now = Instant::now();
        if !tally.tick(now) {
            break;
        }
        // Resend scan, at most every 10 ms (it walks every socket).
        if now.duration_since(last_scan) >= Duration::from_millis(10) {
            last_scan = now;
            for p in peers.iter_mut() {
                if now.duration_since(p.sent_at) >= RESEND {
                    tally.lost += 1;
                    p.send();
                }
            }
        }
        let n = epoll_wait(ep, &mut evs, 10);
        for ev in evs.iter().take(n) {
            let id = ev.u64 as usize;
            let Some(p) = peers.get_mut(id) else {
                die("epoll returned an unknown token")
            };
            loop {
                let k = match p.sock.recv(&mut rbuf) {
                    Ok(k) => k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
                    Err(e) => die(&format!("recv: {e}")),
                };
                match check(p, id, &rbuf[..k]) {
                    Echo::Late => {}
                    Echo::Wrong => tally.errors += 1,
                    Echo::Current => {
                        tally.done(p.start);
                        p.seq += 1;
                        p.fill(id);
                        p.start = Instant::now();
                        p.send();
                    }
                }
            }
        }
    }
    tally.finish(npeer, size);
}

/// Asks for `SERVER_BUFFER`-byte receive and send buffers on `sock`.
pub fn big_buffers(sock: &UdpSocket) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        let v: libc::c_int = SERVER_BUFFER;
        // SAFETY: `v` is a live c_int and its size is passed with it.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

pub fn server(args: &[String]) {
    let addr = args.first().map(String::as_str).unwrap_or("127.0.0.1:0");
    let sock = UdpSocket::bind(resolve(addr)).unwrap_or_else(|e| die(&format!("bind: {e}")));
    big_buffers(&sock);
    sock.set_nonblocking(true)
        .unwrap_or_else(|e| die(&format!("{e}")));
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("{port}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let ep = epoll_create();
    epoll_ctl(
        ep,
        libc::EPOLL_CTL_ADD,
        sock.as_raw_fd(),
        libc::EPOLLIN as u32,
        0,
    );
    let mut buf = vec![0u8; 65536];
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 16];
    loop {
        if epoll_wait(ep, &mut evs, -1) == 0 {
            continue;
        }
        loop {
            match sock.recv_from(&mut buf) {
                Ok((k, from)) => {
                    let _ = sock.send_to(&buf[..k], from);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP errors from a client that went away: keep serving.
                Err(_) => break,
            }
        }
    }
}
