//! `AddrCache`: a datagram transport's recently seen senders, each as its
//! sockaddr and the Python address tuple built for it.
//!
//! Why: a UDP server answers the peer it just heard from. Without the
//! cache every datagram builds a new `(host, port)` tuple (an `inet_ntop`,
//! a `str`, a tuple) and every reply parses it back into a sockaddr. With
//! it, a datagram from a known sender gets the tuple it got last time, and
//! a `sendto` whose address *is* (by identity) the tuple handed out last
//! skips the parse.
//!
//! Invariants:
//! - Direct-mapped, `SLOTS` entries: a lookup is one hash and one compare;
//!   a miss replaces whatever shared the slot. Small on purpose: a server
//!   with many transports pays ~`SLOTS` × 40 bytes each, allocated on the
//!   first datagram only.
//! - The cache owns a reference to every tuple in it, so a pointer match in
//!   `find` can only be the same, immutable tuple (a freed tuple's address
//!   could otherwise be reused by a different one).
//! - Only tuples of `str` and `int` are held (what `python_address` builds): no
//!   reference cycles, so the garbage collector needs no traversal here.
//! - Sharing one tuple between datagrams is invisible to code that does
//!   not compare addresses with `is` (asyncio builds a new one each time).

use pyo3::prelude::*;

use super::sockaddr::SockAddr;

/// Entries per transport (a power of two).
const SLOTS: usize = 16;

struct Slot {
    sa: SockAddr,
    addr: Py<PyAny>,
}

#[derive(Default)]
pub struct AddrCache {
    /// Empty until the first insert, then `SLOTS` long.
    slots: Vec<Option<Slot>>,
    /// The slot of the address handed out last (the likely reply target).
    last: usize,
}

/// A slot for `sa`: FNV-1a over its bytes (port and address vary; the
/// family and padding do not, and cost little to include).
fn slot_of(sa: &SockAddr) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in sa.bytes() {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    (h as usize) & (SLOTS - 1)
}

impl AddrCache {
    /// The tuple cached for `sa`, if any.
    pub fn get(&mut self, py: Python<'_>, sa: &SockAddr) -> Option<Py<PyAny>> {
        let i = slot_of(sa);
        let slot = self.slots.get(i)?.as_ref()?;
        if slot.sa.bytes() != sa.bytes() {
            return None;
        }
        self.last = i;
        Some(slot.addr.clone_ref(py))
    }

    /// Caches `addr` as the tuple for `sa`; returns the entry it replaced,
    /// for the caller to drop once its borrow of the cache has ended.
    pub fn put(&mut self, sa: SockAddr, addr: Py<PyAny>) -> Option<Py<PyAny>> {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        let i = slot_of(&sa);
        self.last = i;
        self.slots[i].replace(Slot { sa, addr }).map(|old| old.addr)
    }

    /// The sockaddr of `addr` if it is the tuple handed out last.
    pub fn find(&self, addr: &Bound<'_, PyAny>) -> Option<SockAddr> {
        let slot = self.slots.get(self.last)?.as_ref()?;
        slot.addr.as_ptr().eq(&addr.as_ptr()).then_some(slot.sa)
    }
}
