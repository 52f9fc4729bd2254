//! `OsError`: an errno from a syscall ferrio makes itself, raised in
//! Python exactly as the socket module and `os` raise it.
//!
//! Why a type of our own: PyO3's `From<std::io::Error> for PyErr` builds
//! `ConnectionResetError('Connection reset by peer (os error 104)')`, with
//! `errno` and `strerror` None. asyncio's loop raises (and passes to
//! `connection_lost`) `ConnectionResetError(104, 'Connection reset by
//! peer')`, and libraries test `exc.errno`. Every native syscall path
//! returns `OsResult`, so `?` into a `PyResult` goes through the
//! conversion below and never through PyO3's.
//!
//! The Python exception is `OSError(errno, strerror)`: CPython's
//! `OSError.__new__` picks the subclass from the errno (ECONNRESET →
//! `ConnectionResetError`, EAGAIN → `BlockingIOError`, ...), as for the
//! socket module's own errors.

use std::ffi::CStr;
use std::fmt;
use std::io;

use pyo3::exceptions::PyOSError;
use pyo3::PyErr;

/// An OS error from a native syscall (see the module doc).
pub struct OsError(io::Error);

pub type OsResult<T> = Result<T, OsError>;

impl OsError {
    /// The calling thread's last errno.
    pub fn last() -> Self {
        OsError(io::Error::last_os_error())
    }

    /// The errno, if this came from the OS.
    pub fn errno(&self) -> Option<i32> {
        self.0.raw_os_error()
    }
}

impl From<io::Error> for OsError {
    fn from(e: io::Error) -> Self {
        OsError(e)
    }
}

impl fmt::Debug for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The C library's text for `errno`, as `os.strerror` gives it.
pub fn strerror(errno: i32) -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: `buf` is writable for the length we pass; the XSI
    // strerror_r (what the libc crate binds on Linux) NUL-terminates it on
    // success and touches no shared state.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return format!("Unknown error {errno}");
    }
    // SAFETY: NUL-terminated on success (above).
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

impl From<OsError> for PyErr {
    fn from(e: OsError) -> PyErr {
        match e.errno() {
            Some(n) => PyOSError::new_err((n, strerror(n))),
            // Not from the OS (none of ferrio's paths make these): PyO3's
            // mapping by kind is the best there is.
            None => e.0.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_matches_the_c_library() {
        assert_eq!(strerror(libc::ECONNRESET), "Connection reset by peer");
        assert_eq!(strerror(libc::EPIPE), "Broken pipe");
    }

    #[test]
    fn errno_survives() {
        let e: OsError = io::Error::from_raw_os_error(libc::EMSGSIZE).into();
        assert_eq!(e.errno(), Some(libc::EMSGSIZE));
    }
}
