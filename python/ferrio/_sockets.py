"""``loop.sock_recv``, ``sock_recv_into``, ``sock_sendall`` and (3.11+, as
in asyncio) ``sock_recvfrom``, ``sock_recvfrom_into``, ``sock_sendto`` on
ferrio's native socket operations (src/transports/sockops.rs).

asyncio's argument checks (SSL sockets are refused, debug mode refuses
blocking sockets), the syscall, the wait for readiness and the retry are
all Rust: each method here is one native call, which returns the result
when the socket was ready at once, else a future to await. The other ``sock_*`` methods
(accept, connect, sendfile) are asyncio's own, on ferrio's fd watching:
they run once per connection.

Only a plain ``socket.socket`` (``type(sock) is socket.socket``, whose
methods are the C ones and which has no instance dict) takes the native
path. Anything else — a subclass, a wrapper, a ``Mock(sock)`` whose
``sendto`` a test patched — gets asyncio's own selector implementation,
which calls the object's methods exactly as asyncio's loop does. (``type``,
not ``__class__``: a ``Mock`` with a spec lies about ``__class__``.)
"""

from __future__ import annotations

import socket as _socket_module
from asyncio import selector_events as _selector_events

from . import _ferrio

_plain = _socket_module.socket
_selector = _selector_events.BaseSelectorEventLoop

_native_recv = _ferrio.sock_recv
_native_recv_into = _ferrio.sock_recv_into
_native_sendall = _ferrio.sock_sendall
_native_recvfrom = _ferrio.sock_recvfrom
_native_recvfrom_into = _ferrio.sock_recvfrom_into
_native_sendto = _ferrio.sock_sendto


async def sock_recv(self, sock, n):
    """Receive up to ``n`` bytes from the non-blocking socket ``sock``."""
    if type(sock) is not _plain:
        return await _selector.sock_recv(self, sock, n)
    r = _native_recv(self, sock, n)
    if r.__class__ is bytes:
        return r
    return await r


async def sock_recv_into(self, sock, buf):
    """Receive into the writable buffer ``buf``; returns the byte count."""
    if type(sock) is not _plain:
        return await _selector.sock_recv_into(self, sock, buf)
    r = _native_recv_into(self, sock, buf)
    if r.__class__ is int:
        return r
    return await r


async def sock_sendall(self, sock, data):
    """Send all of ``data`` on the non-blocking socket ``sock``."""
    if type(sock) is not _plain:
        return await _selector.sock_sendall(self, sock, data)
    r = _native_sendall(self, sock, data)
    if r is None:
        return None
    return await r


async def sock_recvfrom(self, sock, bufsize):
    """Receive a datagram of up to ``bufsize`` bytes: ``(data, address)``."""
    if type(sock) is not _plain:
        return await _selector.sock_recvfrom(self, sock, bufsize)
    r = _native_recvfrom(self, sock, bufsize)
    if r.__class__ is tuple:
        return r
    return await r


async def sock_recvfrom_into(self, sock, buf, nbytes=0):
    """Receive a datagram into ``buf``: ``(nbytes, address)``."""
    if type(sock) is not _plain:
        return await _selector.sock_recvfrom_into(self, sock, buf, nbytes)
    r = _native_recvfrom_into(self, sock, buf, nbytes)
    if r.__class__ is tuple:
        return r
    return await r


async def sock_sendto(self, sock, data, address):
    """Send the datagram ``data`` to ``address``; returns the byte count."""
    if type(sock) is not _plain:
        return await _selector.sock_sendto(self, sock, data, address)
    r = _native_sendto(self, sock, data, address)
    if r.__class__ is int:
        return r
    return await r
