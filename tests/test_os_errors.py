"""OS errors from the loop's own syscalls reach Python as asyncio's loop
raises them: the errno's subclass of OSError *with* ``errno``,
``strerror`` and ``args`` set (``ConnectionResetError(104, 'Connection
reset by peer')``), whether raised from a ``sock_*`` call, passed to
``connection_lost``/``error_received``, or raised by ``add_reader``.
Libraries branch on ``exc.errno``. Differential: both loops."""

import asyncio
import errno
import os
import socket
import struct

import pytest


def described(exc):
    """What a caller can see of an OS error."""
    return type(exc), exc.args, exc.errno, exc.strerror


def as_raised(exc_type, code):
    """``described`` of the error the socket module raises for ``code``."""
    return exc_type, (code, os.strerror(code)), code, os.strerror(code)


async def reset_peer(connect):
    """Awaits ``connect(address)``, then resets the connection from the
    server side (SO_LINGER 0: an RST); returns what ``connect`` gave."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    try:
        client = await connect(lst.getsockname())
        s, _ = lst.accept()
    finally:
        lst.close()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return client


async def reset_socket():
    """A non-blocking client socket whose peer has reset the connection."""

    async def connect(addr):
        return socket.create_connection(addr)

    c = await reset_peer(connect)
    c.setblocking(False)
    await asyncio.sleep(0.01)
    return c


def test_sock_recv_on_reset_connection(loop):
    async def main():
        c = await reset_socket()
        try:
            with pytest.raises(ConnectionResetError) as info:
                await loop.sock_recv(c, 100)
            return described(info.value)
        finally:
            c.close()

    assert loop.run_until_complete(main()) == as_raised(ConnectionResetError, errno.ECONNRESET)


def test_sock_sendall_on_reset_connection(loop):
    async def main():
        c = await reset_socket()
        try:
            with pytest.raises(OSError) as info:
                for _ in range(100):  # the first send may still be taken
                    await loop.sock_sendall(c, b"x" * 1024)
            return info.value
        finally:
            c.close()

    exc = loop.run_until_complete(main())
    assert exc.errno in (errno.ECONNRESET, errno.EPIPE)
    assert exc.args == (exc.errno, os.strerror(exc.errno))
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))


class Lost(asyncio.Protocol):
    """Records the exception ``connection_lost`` gets in ``self.lost``;
    with ``paused``, reads are paused so an error can only come from a
    write."""

    def __init__(self, loop, paused=False):
        self.lost = loop.create_future()
        self.paused = paused

    def connection_made(self, transport):
        if self.paused:
            transport.pause_reading()

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def test_connection_lost_gets_errno_on_reset(loop):
    async def main():
        proto = Lost(loop)
        tr, _ = await reset_peer(lambda addr: loop.create_connection(lambda: proto, *addr))
        exc = await asyncio.wait_for(proto.lost, 5)
        tr.close()
        return described(exc)

    assert loop.run_until_complete(main()) == as_raised(ConnectionResetError, errno.ECONNRESET)


def test_write_to_reset_connection_reports_errno(loop):
    """A write that fails is a fatal error: connection_lost gets the
    errno-carrying exception."""

    async def main():
        proto = Lost(loop, paused=True)
        tr, _ = await reset_peer(lambda addr: loop.create_connection(lambda: proto, *addr))
        await asyncio.sleep(0.05)
        for _ in range(50):
            if proto.lost.done():
                break
            tr.write(b"x" * 1024)
            await asyncio.sleep(0.01)
        exc = await asyncio.wait_for(proto.lost, 5)
        tr.close()
        return exc

    exc = loop.run_until_complete(main())
    loop.errors.clear()  # asyncio logs fatal write errors in debug mode only
    assert exc.errno in (errno.ECONNRESET, errno.EPIPE)
    assert exc.args == (exc.errno, os.strerror(exc.errno))


@pytest.mark.skipif(not hasattr(asyncio.AbstractEventLoop, "sock_sendto"), reason="3.11+")
def test_sock_sendto_oversized_datagram(loop):
    async def main():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            with pytest.raises(OSError) as info:
                await loop.sock_sendto(s, b"x" * 70000, ("127.0.0.1", 9))
            return described(info.value)
        finally:
            s.close()

    assert loop.run_until_complete(main()) == as_raised(OSError, errno.EMSGSIZE)


@pytest.mark.parametrize("connected", [False, True], ids=["unconnected", "connected"])
def test_datagram_error_received_gets_errno(loop, connected):
    async def main():
        got = loop.create_future()

        class Proto(asyncio.DatagramProtocol):
            def error_received(self, exc):
                if not got.done():
                    got.set_result(exc)

        kw = {"remote_addr": ("127.0.0.1", 9)} if connected else {"local_addr": ("127.0.0.1", 0)}
        tr, _ = await loop.create_datagram_endpoint(Proto, **kw)
        try:
            if connected:
                tr.sendto(b"x" * 70000)
            else:
                tr.sendto(b"x" * 70000, ("127.0.0.1", 9))
            return described(await asyncio.wait_for(got, 5))
        finally:
            tr.close()
            await asyncio.sleep(0)

    assert loop.run_until_complete(main()) == as_raised(OSError, errno.EMSGSIZE)


def test_add_reader_on_a_regular_file(loop, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        with pytest.raises(PermissionError) as info:
            loop.add_reader(f.fileno(), lambda: None)
    assert described(info.value) == as_raised(PermissionError, errno.EPERM)
