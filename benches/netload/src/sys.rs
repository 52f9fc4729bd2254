//! Thin wrappers over the syscalls both halves of netload use (epoll,
//! non-blocking read/send), and the fatal-error exit. netload is a bench
//! tool: any unexpected failure ends the run with a message, exit code 2.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::process::exit;

pub fn die(msg: &str) -> ! {
    eprintln!("netload: {msg}");
    exit(2)
}

pub fn epoll_create() -> RawFd {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        die("epoll_create1 failed");
    }
    fd
}

pub fn epoll_ctl(ep: RawFd, op: i32, fd: RawFd, events: u32, token: u64) {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event for the call.
    let r = unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
    if r < 0 && op != libc::EPOLL_CTL_DEL {
        die(&format!("epoll_ctl: {}", io::Error::last_os_error()));
    }
}

pub fn epoll_wait(ep: RawFd, evs: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
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
pub fn sys_read(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
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

pub fn sys_write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
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

pub fn resolve(addr: &str) -> SocketAddr {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| die(&format!("bad address {addr}")))
}
