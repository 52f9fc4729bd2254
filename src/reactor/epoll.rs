//! A thin, level-triggered wrapper over Linux epoll.
//!
//! Level-triggered on purpose: `add_reader`/`add_writer` promise asyncio's
//! meaning (the callback fires on every iteration while the fd is ready),
//! which edge-triggered polling would break.

use crate::oserror::{OsError, OsResult};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub use libc::epoll_event as Event;

pub const READABLE: u32 = libc::EPOLLIN as u32;
pub const WRITABLE: u32 = libc::EPOLLOUT as u32;

pub struct Epoll {
    fd: OwnedFd,
}

fn cvt(rc: libc::c_int) -> OsResult<libc::c_int> {
    if rc < 0 {
        Err(OsError::last())
    } else {
        Ok(rc)
    }
}

impl Epoll {
    pub fn new() -> OsResult<Self> {
        // SAFETY: plain syscall; on success we own the returned descriptor.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by no one else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> OsResult<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    /// Registers `fd`, or updates it if the kernel already knows it.
    pub fn add_or_modify(&self, fd: RawFd, events: u32, token: u64) -> OsResult<()> {
        match self.ctl(libc::EPOLL_CTL_ADD, fd, events, token) {
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
            }
            r => r,
        }
    }

    /// Updates `fd`, or registers it if the kernel forgot it (the fd was
    /// closed and its number reused behind our back).
    pub fn modify_or_add(&self, fd: RawFd, events: u32, token: u64) -> OsResult<()> {
        match self.ctl(libc::EPOLL_CTL_MOD, fd, events, token) {
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
            }
            r => r,
        }
    }

    /// Unregisters `fd`; errors (already closed, unknown) are ignored, as
    /// `selectors.EpollSelector.unregister` ignores them.
    pub fn delete(&self, fd: RawFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }
}

/// One `epoll_wait` on a raw epoll fd. Free function so it can run with the
/// GIL released (it touches no Python state).
pub fn wait(epfd: RawFd, buf: &mut [Event], timeout_ms: i32) -> OsResult<usize> {
    let cap = buf.len().min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `buf` is a valid writable slice of `cap` epoll_event records.
    let n = unsafe { libc::epoll_wait(epfd, buf.as_mut_ptr(), cap, timeout_ms) };
    cvt(n).map(|n| n as usize)
}

/// An all-zero event buffer of `n` entries.
pub fn event_buffer(n: usize) -> Vec<Event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; n]
}
