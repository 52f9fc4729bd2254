"""Python faces of ferrio's native transports.

``SocketTransport`` is what ``create_connection``, ``create_server``,
``connect_accepted_socket`` and the Unix variants hand to protocols for a
stream socket. It subclasses ``asyncio.Transport`` (``isinstance`` checks in
libraries and in CPython's tests) and owns a Rust core,
``ferrio._ferrio.StreamTransport``, that does all per-packet work: the
loop calls the core directly when the socket is readable or writable, and
``write``/``writelines``/``is_closing`` (``sendto``/``is_closing`` on the
datagram wrapper) are C method descriptors on the class that read the
core from the ``_core`` slot (src/transports/fastmethods.rs), so a
protocol's ``transport.write(data)`` never runs Python code of ours and
CPython's ``LOAD_METHOD`` specialises on it.

What stays here is per-connection: building the extra-info dict,
``TCP_NODELAY``, attaching to the server, scheduling ``connection_made``,
``repr`` and the resource warning. Attribute names (``_sock``,
``_sock_fd``, ``_protocol``, ``_closing``, ...) are the ones asyncio's
selector transport has, because asyncio's own sendfile and TLS code and
some libraries read them.
"""

from __future__ import annotations

import selectors
import socket
import sys
import warnings
from asyncio import base_events, constants, futures, selector_events, transports, trsock

from . import _ferrio

__all__ = [
    "DatagramTransport",
    "SocketTransport",
    "make_datagram_transport",
    "make_socket_transport",
    "make_ssl_transport",
]


class _NativeTransport(transports._FlowControlMixin, transports.BaseTransport):
    """What the stream and datagram wrappers share: the extra-info dict,
    ``repr``, the ResourceWarning, and forwarding to the Rust core
    (``self._core``). The flow-control state lives in the core; the mixin
    is a base for isinstance checks (``loop.sendfile``'s fallback requires
    it) and its slots are shadowed by the properties below."""

    # `_core` is a slot: the C methods installed below find the core at its
    # fixed offset. `__dict__` and `__weakref__` keep what a class without
    # __slots__ has (libraries set attributes on transports).
    __slots__ = ("_core", "__dict__", "__weakref__")

    max_size = 256 * 1024

    def _setup(self, loop, sock, extra):
        transports.BaseTransport.__init__(self, extra)
        self._extra["socket"] = trsock.TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._loop = loop
        self._sock_fd = sock.fileno()

    def _start(self, loop, protocol, waiter):
        loop._transports[self._sock_fd] = self
        loop.call_soon(protocol.connection_made, self)
        # only start reading when connection_made() has been called
        loop.call_soon(self._core._start_reading)
        if waiter is not None:
            # only wake up the waiter when connection_made() has been called
            loop.call_soon(futures._set_result_unless_cancelled, waiter, None)

    def __repr__(self):
        info = [self.__class__.__name__]
        core = getattr(self, "_core", None)
        if core is None or core._sock is None:
            info.append("closed")
        elif core._closing:
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        loop = self._loop
        if loop is not None and not loop.is_closed() and core is not None:
            events = loop._fd_events(self._sock_fd) or 0
            info.append("read=polling" if events & selectors.EVENT_READ else "read=idle")
            state = "polling" if events & selectors.EVENT_WRITE else "idle"
            info.append(f"write=<{state}, bufsize={core.get_write_buffer_size()}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn=warnings.warn):
        core = getattr(self, "_core", None)
        sock = core._sock if core is not None else None
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()

    # -- state asyncio's transports expose as attributes ------------------

    @property
    def _sock(self):
        return self._core._sock

    @property
    def _protocol(self):
        return self._core.get_protocol()

    @property
    def _closing(self):
        return self._core._closing

    @property
    def _conn_lost(self):
        return self._core._conn_lost

    @property
    def _protocol_paused(self):
        return self._core._protocol_paused

    @property
    def _high_water(self):
        return self._core.get_write_buffer_limits()[1]

    @property
    def _low_water(self):
        return self._core.get_write_buffer_limits()[0]

    # -- the BaseTransport API (is_closing: see _install_transport_methods) --

    def close(self):
        self._core.close()

    def abort(self):
        self._core.abort()

    def is_reading(self):
        return self._core.is_reading()

    def pause_reading(self):
        self._core.pause_reading()

    def resume_reading(self):
        self._core.resume_reading()

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def get_protocol(self):
        return self._core.get_protocol()

    def get_write_buffer_size(self):
        return self._core.get_write_buffer_size()

    def get_write_buffer_limits(self):
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        # asyncio's _FlowControlMixin._set_write_buffer_limits
        if high is None:
            if low is None:
                high = 64 * 1024
            else:
                high = 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._core._set_write_buffer_limits(int(high), int(low))

    # -- internals used by asyncio's own code -------------------------------

    def _force_close(self, exc):
        self._core._force_close(exc)

    def _fatal_error(self, exc, message="Fatal error on transport"):
        self._core._fatal_error(exc, message)

    def _call_connection_lost(self, exc):
        self._core._call_connection_lost(exc)


class SocketTransport(_NativeTransport, transports.Transport):
    """A TCP or Unix stream socket transport (asyncio.Transport)."""

    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE

    def __init__(self, loop, sock, protocol, waiter=None, extra=None, server=None):
        self._setup(loop, sock, extra)
        core = _ferrio.StreamTransport(loop, self, sock, protocol, server)
        self._core = core
        if server is not None:
            if _ATTACH_TAKES_TRANSPORT:
                server._attach(self)
            else:
                server._attach()
        _set_nodelay(sock)
        self._start(loop, protocol, waiter)

    @property
    def _paused(self):
        return self._core._paused

    @property
    def _eof(self):
        return self._core._eof

    @property
    def _server(self):
        return self._core._server

    @property
    def _empty_waiter(self):
        return self._core._empty_waiter

    def write_eof(self):
        self._core.write_eof()

    def can_write_eof(self):
        return True

    def _make_empty_waiter(self):
        return self._core._make_empty_waiter()

    def _reset_empty_waiter(self):
        self._core._reset_empty_waiter()


class DatagramTransport(_NativeTransport, transports.DatagramTransport):
    """A UDP or Unix datagram transport (asyncio.DatagramTransport);
    ``sendto`` is the core's bound method."""

    def __init__(self, loop, sock, protocol, address=None, waiter=None, extra=None):
        self._setup(loop, sock, extra)
        core = _ferrio.DatagramTransport(
            loop, self, sock, protocol, address, bool(self._extra["peername"]), _DATAGRAM_HEADER
        )
        self._core = core
        self._start(loop, protocol, waiter)

    @property
    def _address(self):
        return self._core._address


# write/writelines/is_closing and sendto/is_closing: C method descriptors
# (src/transports/fastmethods.rs).
_ferrio._install_transport_methods(SocketTransport, DatagramTransport)


# 3.13 sends empty datagrams and counts 8 header bytes per queued one.
_DATAGRAM_HEADER = 8 if sys.version_info >= (3, 13) else 0

_ATTACH_TAKES_TRANSPORT = base_events.Server._attach.__code__.co_argcount > 1


def _set_nodelay(sock):
    """TCP_NODELAY on a TCP socket, as asyncio's transports do, and also on
    one whose ``proto`` reads 0.

    asyncio sets it only when ``sock.proto == IPPROTO_TCP``. Sockets the
    loop makes via getaddrinfo say 6, but one made with ``socket.socket()``
    (and every socket accepted from it) says 0: a gunicorn listener handed
    to uvicorn workers, ``sock=`` arguments, ``--fd``. Those transports
    kept Nagle on, and a response written in two pieces (uvicorn writes
    head and body separately) waited for the peer's delayed ACK: ~40 ms
    per request (measured with ``python -m ferrio bench net --modes
    uvicorn`` before its server bound by host/port). An AF_INET/AF_INET6
    ``SOCK_STREAM`` socket with protocol 0 is TCP, so ferrio sets it there
    too (uvloop does as well; CPython issue #148783 is the same check
    failing on macOS). Other protocols (SCTP) are left alone.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return
    if sock.proto == socket.IPPROTO_TCP:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    elif sock.proto == 0:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # asyncio would not have tried


def make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
    """``loop._make_socket_transport``: asyncio's factory hook, used by
    create_connection, create_server, connect_accepted_socket and the
    Unix variants."""
    return _stream_transport_class(sock)(self, sock, protocol, waiter, extra, server)


def _stream_transport_class(sock):
    """ferrio's native transport for a plain ``socket.socket``; asyncio's
    own selector transport for anything else a caller passed in (a
    subclass or wrapper whose ``recv``/``send`` asyncio would call, which
    the native transport's syscalls would go around). The same rule as
    the ``sock_*`` methods (_sockets.py); accepted and created sockets are
    always plain."""
    if type(sock) is socket.socket:
        return SocketTransport
    return selector_events._SelectorSocketTransport


def make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False,
                       server_hostname=None, extra=None, server=None, **timeouts):
    """``loop._make_ssl_transport``: asyncio's TLS protocol (``SSLProtocol``,
    the stdlib ``ssl`` module's memory BIO) over ferrio's native socket
    transport. ``timeouts`` are the handshake/shutdown timeouts the running
    Python's ``SSLProtocol`` accepts."""
    from asyncio import sslproto

    ssl_protocol = sslproto.SSLProtocol(
        self, protocol, sslcontext, waiter, server_side, server_hostname, **timeouts
    )
    _stream_transport_class(rawsock)(self, rawsock, ssl_protocol, None, extra, server)
    return ssl_protocol._app_transport


def make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
    """``loop._make_datagram_transport``, used by create_datagram_endpoint
    (asyncio's selector transport for a socket that is not a plain
    ``socket.socket``, as for stream sockets)."""
    if type(sock) is not socket.socket:
        return selector_events._SelectorDatagramTransport(self, sock, protocol, address, waiter, extra)
    return DatagramTransport(self, sock, protocol, address, waiter, extra)
