"""``loop.sock_recv``, ``sock_recv_into`` and ``sock_sendall`` on ferrio's
native socket operations (src/transports/sockops.rs).

asyncio's argument checks stay here (SSL sockets are refused, debug mode
refuses blocking sockets); the syscall, the wait for readiness and the
retry are Rust. The native call returns the result when the socket was
ready at once, else a future to await. The other ``sock_*`` methods
(accept, connect, recvfrom, sendto, sendfile) are asyncio's own, on
ferrio's fd watching: they run once per connection or per datagram call.
"""

from __future__ import annotations

from asyncio import base_events

from . import _ferrio

_check_ssl_socket = base_events._check_ssl_socket
_native_recv = _ferrio.sock_recv
_native_recv_into = _ferrio.sock_recv_into
_native_sendall = _ferrio.sock_sendall


def _check(loop, sock):
    """asyncio's checks: no SSL sockets; in debug mode, non-blocking only."""
    _check_ssl_socket(sock)
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")


async def sock_recv(self, sock, n):
    """Receive up to ``n`` bytes from the non-blocking socket ``sock``."""
    _check(self, sock)
    r = _native_recv(self, sock, n)
    if r.__class__ is bytes:
        return r
    return await r


async def sock_recv_into(self, sock, buf):
    """Receive into the writable buffer ``buf``; returns the byte count."""
    _check(self, sock)
    r = _native_recv_into(self, sock, buf)
    if r.__class__ is int:
        return r
    return await r


async def sock_sendall(self, sock, data):
    """Send all of ``data`` on the non-blocking socket ``sock``."""
    _check(self, sock)
    r = _native_sendall(self, sock, data)
    if r is None:
        return None
    return await r
