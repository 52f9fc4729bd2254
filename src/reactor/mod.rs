//! The I/O reactor: epoll registration of file descriptors and the loop's
//! cross-thread waker.
//!
//! - `epoll.rs`: level-triggered epoll syscalls.
//! - `waker.rs`: the eventfd and the sleep/wake protocol.
//! - `fdhash.rs`: the fd table's hasher (no SipHash per event).
//!
//! This module owns the fd table behind `add_reader`/`add_writer`: per fd, at
//! most one reader and one writer handle, registered for exactly the events
//! that have a handle. Readiness maps to handles the way
//! `selectors.EpollSelector` maps it: any bit but EPOLLOUT (HUP, ERR, ...)
//! counts as readable and any bit but EPOLLIN as writable, so a hung-up fd
//! wakes both its reader and its writer.
//!
//! The fd table is a GIL cell (src/gilcell.rs): every caller holds the GIL,
//! so a lookup per event costs no locked instruction. Handles leave the
//! table by value and are freed after the borrow ends (freeing one may run
//! Python code). The event buffer stays a mutex: it is held across the
//! blocking `epoll_wait`, with the GIL released.

pub mod epoll;
mod fdhash;
pub mod waker;

use crate::oserror::OsResult;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::prelude::*;

use crate::gilcell::GilCell;
use crate::handles::HandleRef;
use epoll::{Epoll, Event, READABLE, WRITABLE};
use waker::Waker;

const WAKER_TOKEN: u64 = u64::MAX;
const MAX_EVENTS: usize = 1024;

#[derive(Default)]
struct FdEntry {
    reader: Option<HandleRef>,
    writer: Option<HandleRef>,
    /// Sides whose handle is *parked* (bit 0 read, bit 1 write): a finished
    /// native socket operation left its registration in place so the next
    /// operation on the same socket needs no `epoll_ctl` (see [`Reactor::park`]).
    /// A parked side is invisible to `events_of` and `remove`.
    parked: u8,
    /// Identity of the socket object the parked sides belong to.
    owner: usize,
    /// The last non-int file object `add_reader`/`add_writer` got for this
    /// fd (asyncio's `SelectorKey.fileobj`): once that object is closed its
    /// `fileno()` is -1, and `remove_reader(obj)` finds the fd by identity,
    /// as `selectors`' exhaustive lookup does. A strong reference, as
    /// asyncio's key holds; dropped outside the table borrow.
    fileobj: Option<Py<PyAny>>,
}

fn side_bit(side: Side) -> u8 {
    match side {
        Side::Read => 1,
        Side::Write => 2,
    }
}

impl FdEntry {
    fn slot(&mut self, side: Side) -> &mut Option<HandleRef> {
        match side {
            Side::Read => &mut self.reader,
            Side::Write => &mut self.writer,
        }
    }

    fn interest(&self) -> u32 {
        let mut ev = 0;
        if self.reader.is_some() {
            ev |= READABLE;
        }
        if self.writer.is_some() {
            ev |= WRITABLE;
        }
        ev
    }
}

/// Which side of an fd a handle watches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Read,
    Write,
}

pub struct Reactor {
    epoll: Epoll,
    pub waker: Waker,
    fds: GilCell<HashMap<RawFd, FdEntry, fdhash::FdBuildHasher>>,
    /// Event buffer; only the loop thread polls, the mutex is uncontended.
    events: Mutex<Vec<Event>>,
    /// A reader or writer was added or removed since the last poll (the
    /// loop then does not skip its next poll). Relaxed: set and read under
    /// the GIL on the loop thread; a stale value only costs or saves one poll.
    changed: AtomicBool,
}

impl Reactor {
    pub fn new() -> OsResult<Self> {
        let epoll = Epoll::new()?;
        let waker = Waker::new()?;
        epoll.add_or_modify(waker.raw(), READABLE, WAKER_TOKEN)?;
        Ok(Reactor {
            epoll,
            waker,
            fds: GilCell::new(HashMap::default()),
            events: Mutex::new(epoll::event_buffer(64)),
            changed: AtomicBool::new(false),
        })
    }

    /// Installs `handle` as the reader or writer of `fd`, returning the
    /// handle it replaces (the caller cancels it).
    pub fn set(
        &self,
        py: Python<'_>,
        fd: RawFd,
        side: Side,
        handle: HandleRef,
    ) -> OsResult<Option<HandleRef>> {
        self.changed.store(true, Ordering::Relaxed);
        let mut fds = self.fds.borrow(py);
        let existed = fds.contains_key(&fd);
        let entry = fds.entry(fd).or_default();
        entry.parked &= !side_bit(side);
        // A new watcher may belong to another object on a reused fd number:
        // the recorded file object no longer names this registration
        // (`io::add_obj` records it again when it still does).
        let stale = entry.fileobj.take();
        let old = entry.slot(side).replace(handle);
        let interest = entry.interest();
        let res = if existed {
            self.epoll.modify_or_add(fd, interest, fd as u64)
        } else {
            self.epoll.add_or_modify(fd, interest, fd as u64)
        };
        if let Err(e) = res {
            // Undo: put the table back the way the kernel sees it.
            let entry = fds.entry(fd).or_default();
            let slot = match side {
                Side::Read => &mut entry.reader,
                Side::Write => &mut entry.writer,
            };
            let failed = std::mem::replace(slot, old);
            if !existed {
                fds.remove(&fd);
            }
            drop(fds);
            drop(failed); // outside the table: freeing it may run Python code
            drop(stale);
            return Err(e);
        }
        drop(fds);
        drop(stale);
        Ok(old)
    }

    /// Re-arms a parked registration of the same socket (`owner`) with a
    /// new handle without a syscall; otherwise as [`Reactor::set`].
    ///
    /// Skipping the syscall is only sound while the kernel registration is
    /// still the one made for this socket: the caller passes the identity
    /// of a socket object that is still open on `fd` (the parked handle
    /// keeps that object alive, so the identity cannot be reused), hence
    /// the fd was not closed and reused in between.
    pub fn rearm(
        &self,
        py: Python<'_>,
        fd: RawFd,
        side: Side,
        handle: HandleRef,
        owner: usize,
    ) -> OsResult<Option<HandleRef>> {
        {
            let mut fds = self.fds.borrow(py);
            if let Some(entry) = fds.get_mut(&fd) {
                let bit = side_bit(side);
                if entry.parked & bit != 0 && entry.owner == owner {
                    entry.parked &= !bit;
                    return Ok(entry.slot(side).replace(handle));
                }
            }
        }
        self.set(py, fd, side, handle)
    }

    /// Parks `handle` (a finished operation of socket `owner`): it stays
    /// registered but counts as removed. Returns false if `handle` is no
    /// longer the watcher of that side.
    pub fn park(
        &self,
        py: Python<'_>,
        fd: RawFd,
        side: Side,
        handle: &HandleRef,
        owner: usize,
    ) -> bool {
        let mut fds = self.fds.borrow(py);
        let Some(entry) = fds.get_mut(&fd) else {
            return false;
        };
        let ours = matches!(entry.slot(side), Some(h) if h.as_py().is(handle.as_py()));
        if !ours {
            return false;
        }
        let other = match side {
            Side::Read => 2,
            Side::Write => 1,
        };
        if entry.parked & other != 0 && entry.owner != owner {
            return false;
        }
        entry.parked |= side_bit(side);
        entry.owner = owner;
        true
    }

    /// Removes the watcher of `side` only if it is `handle`.
    pub fn remove_if(
        &self,
        py: Python<'_>,
        fd: RawFd,
        side: Side,
        handle: &HandleRef,
    ) -> Option<HandleRef> {
        let ours = {
            let mut fds = self.fds.borrow(py);
            match fds.get_mut(&fd) {
                Some(entry) => matches!(entry.slot(side), Some(h) if h.as_py().is(handle.as_py())),
                None => false,
            }
        };
        if ours {
            self.remove_any(py, fd, side)
        } else {
            None
        }
    }

    /// Removes the reader or writer of `fd`, returning it if there was one
    /// (a parked one is unregistered but not reported).
    pub fn remove(&self, py: Python<'_>, fd: RawFd, side: Side) -> Option<HandleRef> {
        let parked = self
            .fds
            .borrow(py)
            .get(&fd)
            .is_some_and(|e| e.parked & side_bit(side) != 0);
        let old = self.remove_any(py, fd, side);
        if parked {
            // Release the parked operation quietly: nothing "was removed".
            if let Some(h) = old {
                h.core().cancel(py);
                h.release_ref(py);
            }
            return None;
        }
        old
    }

    fn remove_any(&self, py: Python<'_>, fd: RawFd, side: Side) -> Option<HandleRef> {
        self.changed.store(true, Ordering::Relaxed);
        let mut fds = self.fds.borrow(py);
        let entry = fds.get_mut(&fd)?;
        entry.parked &= !side_bit(side);
        let old = entry.slot(side).take();
        let interest = entry.interest();
        let mut gone = None;
        if interest == 0 {
            gone = fds.remove(&fd);
            self.epoll.delete(fd);
        } else if self.epoll.modify_or_add(fd, interest, fd as u64).is_err() {
            // The fd is gone (closed): forget it entirely.
            gone = fds.remove(&fd);
            self.epoll.delete(fd);
        }
        drop(fds);
        drop(gone); // the other side's handle, freed outside the table
        old
    }

    /// Records `obj` as the file object watched on `fd` (see
    /// `FdEntry::fileobj`). Returns the object it replaces, for the caller
    /// to drop after this borrow.
    pub fn remember_fileobj(
        &self,
        py: Python<'_>,
        fd: RawFd,
        obj: Option<Py<PyAny>>,
    ) -> Option<Py<PyAny>> {
        let mut fds = self.fds.borrow(py);
        match fds.get_mut(&fd) {
            Some(entry) => std::mem::replace(&mut entry.fileobj, obj),
            None => obj,
        }
    }

    /// Takes the recorded file object of `fd` out of the table.
    pub fn take_fileobj(&self, py: Python<'_>, fd: RawFd) -> Option<Py<PyAny>> {
        self.fds.borrow(py).get_mut(&fd)?.fileobj.take()
    }

    /// The fd whose recorded file object is `obj` (identity), as
    /// `selectors`' `_fileobj_lookup` searches when `obj.fileno()` fails.
    pub fn fd_of_fileobj(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> Option<RawFd> {
        self.fds
            .borrow(py)
            .iter()
            .find(|(_, e)| e.fileobj.as_ref().is_some_and(|o| o.is(obj)))
            .map(|(fd, _)| *fd)
    }

    /// Which sides of `fd` have a handle: bit 1 reader, bit 2 writer
    /// (`selectors.EVENT_READ`/`EVENT_WRITE`); None if `fd` is not watched.
    pub fn events_of(&self, py: Python<'_>, fd: RawFd) -> Option<u32> {
        self.fds
            .borrow(py)
            .get(&fd)
            .map(|e| {
                u32::from(e.reader.is_some() && e.parked & 1 == 0)
                    | (u32::from(e.writer.is_some() && e.parked & 2 == 0) << 1)
            })
            .filter(|ev| *ev != 0)
    }

    /// Whether registrations changed since the last poll.
    #[inline]
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
    }

    /// Polls once. `timeout_ms` < 0 blocks, 0 returns at once. The GIL is
    /// released only for a blocking poll. Fired reader/writer handles are
    /// appended to `out`; cancelled ones are unregistered, as asyncio does.
    ///
    /// `spin`: before a blocking poll, spin up to that long for a
    /// cross-thread wake-up (the loop expects an executor job to finish
    /// soon; see event_loop/run.rs). Returns `Some(caught)` if it spun,
    /// None if not (no spin asked, a zero timeout, or no spin slot free).
    pub fn poll(
        &self,
        py: Python<'_>,
        timeout_ms: i32,
        out: &mut Vec<HandleRef>,
        spin: Option<Duration>,
    ) -> PyResult<Option<bool>> {
        self.changed.store(false, Ordering::Relaxed);
        let mut buf = self.events.lock();
        let epfd = self.epoll.raw();
        let mut spun = None;
        let res = if timeout_ms == 0 {
            epoll::wait(epfd, &mut buf, 0)
        } else {
            let slice: &mut [Event] = &mut buf;
            let waker = &self.waker;
            let spun = &mut spun;
            py.detach(move || {
                crate::sync::waiter::gil_released();
                if let Some(limit) = spin {
                    if let Some(slot) = crate::sync::waiter::SpinSlot::take() {
                        let limit = if timeout_ms > 0 {
                            limit.min(Duration::from_millis(timeout_ms as u64))
                        } else {
                            limit
                        };
                        let caught = waker.spin_until_woken(limit);
                        *spun = Some(caught);
                        if caught {
                            // The producer (a pool worker) woke us holding
                            // the GIL: wait for it to let go rather than
                            // sleep on the GIL's condition variable.
                            crate::sync::waiter::spin_for_gil_release(false);
                            drop(slot);
                            return epoll::wait(epfd, slice, 0);
                        }
                    }
                }
                epoll::wait(epfd, slice, timeout_ms)
            })
        };
        let n = match res {
            Ok(n) => n,
            Err(e) if e.errno() == Some(libc::EINTR) => {
                // Run Python-level signal handlers now (Ctrl-C raises here),
                // exactly where select.epoll.poll would.
                py.check_signals()?;
                0
            }
            Err(e) => return Err(e.into()),
        };
        let full = n == buf.len();
        let mut cancelled: Vec<(RawFd, Side)> = Vec::new();
        {
            let fds = self.fds.borrow(py);
            for ev in buf.iter().take(n) {
                let token = ev.u64;
                let bits = ev.events;
                if token == WAKER_TOKEN {
                    self.waker.drain();
                    continue;
                }
                let fd = token as RawFd;
                let Some(entry) = fds.get(&fd) else { continue };
                if bits & !WRITABLE != 0 {
                    if let Some(h) = &entry.reader {
                        if h.core().is_cancelled() {
                            cancelled.push((fd, Side::Read));
                        } else {
                            out.push(h.clone_ref(py));
                        }
                    }
                }
                if bits & !READABLE != 0 {
                    if let Some(h) = &entry.writer {
                        if h.core().is_cancelled() {
                            cancelled.push((fd, Side::Write));
                        } else {
                            out.push(h.clone_ref(py));
                        }
                    }
                }
            }
        }
        for (fd, side) in cancelled {
            if let Some(h) = self.remove(py, fd, side) {
                h.release_ref(py);
            }
        }
        if full && buf.len() < MAX_EVENTS {
            let grown = (buf.len() * 2).min(MAX_EVENTS);
            *buf = epoll::event_buffer(grown);
        }
        Ok(spun)
    }

    /// Reports reader/writer handles to the garbage collector (skips the
    /// table if it is locked: under-reporting is safe, blocking is not).
    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        // SAFETY: the collector runs holding the GIL.
        if let Some(fds) = unsafe { self.fds.try_borrow_unattached() } {
            for e in fds.values() {
                if let Some(h) = &e.reader {
                    visit.call(h.as_py())?;
                }
                if let Some(h) = &e.writer {
                    visit.call(h.as_py())?;
                }
                if let Some(o) = &e.fileobj {
                    visit.call(o)?;
                }
            }
        }
        Ok(())
    }

    /// Drops every registration (loop close). Returns the handles so they are
    /// released outside the lock.
    pub fn clear(&self, py: Python<'_>) -> Vec<HandleRef> {
        let mut fds = self.fds.borrow(py);
        let mut out = Vec::new();
        let mut objs = Vec::new();
        for (fd, e) in fds.drain() {
            self.epoll.delete(fd);
            out.extend(e.reader);
            out.extend(e.writer);
            objs.extend(e.fileobj);
        }
        drop(fds);
        drop(objs); // freeing a file object may run Python code
        out
    }
}
