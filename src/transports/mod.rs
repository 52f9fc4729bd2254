//! Native transports: the per-packet half of asyncio's transports.
//!
//! - `stream/`: `StreamTransport`, the core of the TCP/Unix stream socket
//!   transport (`mod.rs`: state, writes, flow control, close/abort;
//!   `read.rs`: the read path).
//! - `streamfeed.rs`: reads fed straight into asyncio's own `StreamReader`
//!   (exact `StreamReaderProtocol` only).
//! - `writebuf.rs`: the write queue (bytes kept by reference, `writev`).
//! - `datagram.rs`: `DatagramTransport`, the core of the UDP/Unix datagram
//!   transport.
//! - `sockops.rs`: `sock_recv`, `sock_recv_into`, `sock_sendall`,
//!   `sock_recvfrom`, `sock_recvfrom_into`, `sock_sendto`.
//! - `sockaddr.rs`: AF_INET/AF_INET6 addresses between Python and the
//!   kernel (`recvfrom` with Python-style sender addresses, numeric
//!   `sendto` addresses parsed natively).
//! - `addrcache.rs`: a datagram transport's recent senders' address tuples.
//! - `fastmethods.rs`: the wrappers' `write`/`writelines`/`sendto`/
//!   `is_closing` as C method descriptors reading the core from a slot.
//! - `common.rs`: error reporting and flow-control calls shared by cores.
//! - `buffer.rs`: buffer-protocol views and `recv`/`send` helpers.
//!
//! Each core is wrapped by a Python class in `ferrio/_transports.py` that
//! subclasses the matching `asyncio` transport ABC (their `__slots__` rule
//! out a PyO3 subclass) and does the per-connection setup in Python.

pub mod addrcache;
pub mod buffer;
pub mod common;
pub mod datagram;
pub mod fastmethods;
pub mod sockaddr;
pub mod sockops;
pub mod stream;
pub mod streamfeed;
pub mod writebuf;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<stream::StreamTransport>()?;
    m.add_class::<sockops::SockOp>()?;
    m.add_class::<datagram::DatagramTransport>()?;
    m.add_function(wrap_pyfunction!(
        fastmethods::_install_transport_methods,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(sockops::sock_recv, m)?)?;
    m.add_function(wrap_pyfunction!(sockops::sock_recv_into, m)?)?;
    m.add_function(wrap_pyfunction!(sockops::sock_sendall, m)?)?;
    m.add_function(wrap_pyfunction!(sockops::sock_recvfrom, m)?)?;
    m.add_function(wrap_pyfunction!(sockops::sock_recvfrom_into, m)?)?;
    m.add_function(wrap_pyfunction!(sockops::sock_sendto, m)?)?;
    Ok(())
}
