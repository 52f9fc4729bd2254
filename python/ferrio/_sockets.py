"""``loop.sock_recv``, ``sock_recv_into``, ``sock_sendall`` and (3.11+, as
in asyncio) ``sock_recvfrom``, ``sock_recvfrom_into``, ``sock_sendto`` on
ferrio's native socket operations (src/transports/sockops.rs).

asyncio's argument checks stay here (SSL sockets are refused, debug mode
refuses blocking sockets); the syscall, the wait for readiness and the
retry are Rust. The native call returns the result when the socket was
ready at once, else a future to await. The other ``sock_*`` methods
(accept, connect, sendfile) are asyncio's own, on ferrio's fd watching:
they run once per connection.
"""

from __future__ import annotations

from asyncio import base_events

from . import _ferrio

_check_ssl_socket = base_events._check_ssl_socket
_native_recv = _ferrio.sock_recv
_native_recv_into = _ferrio.sock_recv_into
_native_sendall = _ferrio.sock_sendall
_native_recvfrom = _ferrio.sock_recvfrom
_native_recvfrom_into = _ferrio.sock_recvfrom_into
_native_sendto = _ferrio.sock_sendto


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


async def sock_recvfrom(self, sock, bufsize):
    """Receive a datagram of up to ``bufsize`` bytes: ``(data, address)``."""
    _check(self, sock)
    r = _native_recvfrom(self, sock, bufsize)
    if r.__class__ is tuple:
        return r
    return await r


async def sock_recvfrom_into(self, sock, buf, nbytes=0):
    """Receive a datagram into ``buf``: ``(nbytes, address)``."""
    _check(self, sock)
    if not nbytes:
        nbytes = len(buf)
    r = _native_recvfrom_into(self, sock, buf, nbytes)
    if r.__class__ is tuple:
        return r
    return await r


async def sock_sendto(self, sock, data, address):
    """Send the datagram ``data`` to ``address``; returns the byte count."""
    _check(self, sock)
    r = _native_sendto(self, sock, data, address)
    if r.__class__ is int:
        return r
    return await r
