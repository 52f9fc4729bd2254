//! The write queue of a stream transport.
//!
//! Data that the kernel did not take at once waits here until the socket is
//! writable again. `bytes` objects are immutable, so they are queued by
//! reference (no copy); anything else (`bytearray`, `memoryview`) is copied,
//! because the caller may mutate it after `write()` returns (asyncio 3.11
//! copies too). The queue is flushed with one `writev(2)` of up to
//! [`MAX_IOV`] chunks.
//!
//! Invariant: `len` is the sum of the unsent bytes of all chunks, and no
//! chunk is empty.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use crate::oserror::{OsError, OsResult};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Chunks per `writev` (Linux's IOV_MAX is 1024; 64 keeps the iovec array
/// on the stack and is far more than a loopback write ever drains).
pub const MAX_IOV: usize = 64;

enum Data {
    Bytes(Py<PyBytes>),
    Owned(Vec<u8>),
}

struct Chunk {
    data: Data,
    /// Bytes of `data` already sent.
    off: usize,
}

impl Chunk {
    fn slice<'a>(&'a self, py: Python<'a>) -> &'a [u8] {
        let all = match &self.data {
            Data::Bytes(b) => b.bind(py).as_bytes(),
            Data::Owned(v) => v.as_slice(),
        };
        &all[self.off.min(all.len())..]
    }
}

#[derive(Default)]
pub struct WriteBuffer {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl WriteBuffer {
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `bytes[off..]` by reference.
    pub fn push_bytes(&mut self, py: Python<'_>, b: Py<PyBytes>, off: usize) {
        let total = b.bind(py).as_bytes().len();
        if off < total {
            self.len += total - off;
            self.chunks.push_back(Chunk {
                data: Data::Bytes(b),
                off,
            });
        }
    }

    /// Queues a copy of `data`.
    pub fn push_copy(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // Coalesce small writes into the last owned chunk.
        if let Some(Chunk {
            data: Data::Owned(v),
            ..
        }) = self.chunks.back_mut()
        {
            if v.len() < 16 * 1024 {
                v.extend_from_slice(data);
                self.len += data.len();
                return;
            }
        }
        self.len += data.len();
        self.chunks.push_back(Chunk {
            data: Data::Owned(data.to_vec()),
            off: 0,
        });
    }

    /// Drops everything queued; the objects are returned so the caller
    /// releases them outside any lock.
    pub fn take_all(&mut self) -> Vec<Py<PyBytes>> {
        self.len = 0;
        self.chunks
            .drain(..)
            .filter_map(|c| match c.data {
                Data::Bytes(b) => Some(b),
                Data::Owned(_) => None,
            })
            .collect()
    }

    /// One `writev` of the queue's head. Returns the bytes written (0 when
    /// the socket would block) and the fully sent `bytes` objects to
    /// release, or the OS error.
    pub fn flush(&mut self, py: Python<'_>, fd: RawFd) -> OsResult<(usize, Vec<Py<PyBytes>>)> {
        let n = {
            let mut iov: [libc::iovec; MAX_IOV] = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOV];
            let mut cnt = 0;
            for c in self.chunks.iter().take(MAX_IOV) {
                let s = c.slice(py);
                iov[cnt] = libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: s.len(),
                };
                cnt += 1;
            }
            if cnt == 0 {
                return Ok((0, Vec::new()));
            }
            // SAFETY: each iovec points into a chunk owned by self.chunks,
            // alive and unmodified for the duration of the call (we hold
            // &mut self and the GIL, so no Python code can run meanwhile).
            let r = unsafe { libc::writev(fd, iov.as_ptr(), cnt as libc::c_int) };
            if r < 0 {
                let e = OsError::last();
                return match e.errno() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => Ok((0, Vec::new())),
                    _ => Err(e),
                };
            }
            r as usize
        };
        Ok((n, self.consume(py, n)))
    }

    fn consume(&mut self, py: Python<'_>, mut n: usize) -> Vec<Py<PyBytes>> {
        let mut done = Vec::new();
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let avail = front.slice(py).len();
            if n >= avail {
                n -= avail;
                if let Some(c) = self.chunks.pop_front() {
                    if let Data::Bytes(b) = c.data {
                        done.push(b);
                    }
                }
            } else {
                front.off += n;
                n = 0;
            }
        }
        done
    }

    /// Reports queued `bytes` objects to the garbage collector.
    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        for c in &self.chunks {
            if let Data::Bytes(b) = &c.data {
                visit.call(b)?;
            }
        }
        Ok(())
    }
}
