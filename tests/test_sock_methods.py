"""loop.sock_recv / sock_recv_into / sock_sendall (native on ferrio) and
their neighbours: results, waits, cancellation, fd bookkeeping and the
exceptions asyncio raises for bad input. Differential: both loops."""

import asyncio
import socket

import pytest


def socketpair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def every_sock_method(loop, stream_a, stream_b, dgram):
    """One call of each ``sock_*`` data method (the datagram ones on 3.11+),
    as zero-argument callables."""
    calls = [
        lambda: loop.sock_recv(stream_b, 1),
        lambda: loop.sock_sendall(stream_a, b"x"),
        lambda: loop.sock_recv_into(stream_b, bytearray(1)),
    ]
    if hasattr(loop, "sock_recvfrom"):  # 3.11+
        calls += [
            lambda: loop.sock_recvfrom(dgram, 1),
            lambda: loop.sock_recvfrom_into(dgram, bytearray(1)),
            lambda: loop.sock_sendto(dgram, b"x", ("127.0.0.1", 9)),
        ]
    return calls


async def messages(calls, exc_type):
    """The message of the ``exc_type`` each call raised when awaited."""
    out = []
    for call in calls:
        try:
            await call()
        except exc_type as e:
            out.append(str(e))
    return out


def test_recv_sendall_roundtrip_and_waits(loop):
    async def main():
        a, b = socketpair()
        try:
            await loop.sock_sendall(a, b"ping")
            first = await loop.sock_recv(b, 100)
            # a receive that has to wait
            task = loop.create_task(loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            waiting = not task.done()
            await loop.sock_sendall(a, bytearray(b"later"))
            second = await task
            # recv_into, immediate and waiting
            buf = bytearray(10)
            await loop.sock_sendall(a, memoryview(b"abc"))
            n1 = await loop.sock_recv_into(b, buf)
            t2 = loop.create_task(loop.sock_recv_into(b, memoryview(buf)[3:]))
            await asyncio.sleep(0.01)
            await loop.sock_sendall(a, b"defg")
            n2 = await t2
            # EOF
            a.shutdown(socket.SHUT_WR)
            eof = await loop.sock_recv(b, 10)
            return first, waiting, second, n1, n2, bytes(buf[:7]), eof
        finally:
            a.close()
            b.close()

    assert loop.run_until_complete(main()) == (b"ping", True, b"later", 3, 4, b"abcdefg", b"")


def test_sendall_large_waits_for_reader(loop):
    async def main():
        a, b = socketpair()
        payload = bytes(range(256)) * 40000  # ~10 MB, more than the socket buffers
        try:
            send = loop.create_task(loop.sock_sendall(a, payload))
            got = bytearray()
            while len(got) < len(payload):
                got += await loop.sock_recv(b, 65536)
            await send
            return bytes(got) == payload, send.result()
        finally:
            a.close()
            b.close()

    assert loop.run_until_complete(main()) == (True, None)


def test_fd_not_left_registered(loop):
    """After an operation (finished or cancelled) the fd is not watched:
    remove_reader/remove_writer report nothing to remove."""

    async def main():
        a, b = socketpair()
        try:
            t = loop.create_task(loop.sock_recv(b, 10))
            await asyncio.sleep(0.01)
            await loop.sock_sendall(a, b"x")
            await t
            after_done = loop.remove_reader(b)
            t = loop.create_task(loop.sock_recv(b, 10))
            await asyncio.sleep(0.01)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            await asyncio.sleep(0)
            after_cancel = loop.remove_reader(b)
            # the fd is usable with add_reader afterwards
            fired = loop.create_future()
            loop.add_reader(b, lambda: fired.done() or fired.set_result(b.recv(10)))
            await loop.sock_sendall(a, b"y")
            got = await asyncio.wait_for(fired, 2)
            removed = loop.remove_reader(b)
            return after_done, after_cancel, got, removed
        finally:
            a.close()
            b.close()

    assert loop.run_until_complete(main()) == (False, False, b"y", True)


def test_socket_closed_and_reused_fd(loop):
    """A finished op's socket closed, a new socket on the same fd number:
    waiting on the new one must still work."""

    async def main():
        out = []
        for _ in range(20):
            a, b = socketpair()
            t = loop.create_task(loop.sock_recv(b, 10))
            await asyncio.sleep(0)
            await loop.sock_sendall(a, b"m")
            out.append(await asyncio.wait_for(t, 2))
            a.close()
            b.close()
        return out

    assert loop.run_until_complete(main()) == [b"m"] * 20


def test_bad_arguments(loop):
    async def main():
        a, b = socketpair()
        errs = []

        async def catch(coro):
            try:
                await coro
            except Exception as e:  # noqa: BLE001
                errs.append((type(e).__name__, str(e)))

        try:
            await catch(loop.sock_recv(b, -1))
            await catch(loop.sock_recv(b, "x"))
            await catch(loop.sock_sendall(a, "text"))
            await catch(loop.sock_sendall(a, 123))
            await catch(loop.sock_recv_into(b, b"immutable"))
            await catch(loop.sock_recv_into(b, 5))
            await catch(loop.sock_recv(object(), 1))
        finally:
            a.close()
            b.close()
        await catch(loop.sock_recv(b, 1))
        await catch(loop.sock_sendall(a, b"x"))
        return errs

    errs = loop.run_until_complete(main())
    assert errs == [
        ("ValueError", "negative buffersize in recv"),
        ("TypeError", "'str' object cannot be interpreted as an integer"),
        ("TypeError", "a bytes-like object is required, not 'str'"),
        ("TypeError", "a bytes-like object is required, not 'int'"),
        ("TypeError", "recv_into() argument 1 must be read-write bytes-like object, not bytes"),
        ("TypeError", "recv_into() argument 1 must be read-write bytes-like object, not int"),
        ("AttributeError", "'object' object has no attribute 'recv'"),
        ("OSError", "[Errno 9] Bad file descriptor"),
        ("OSError", "[Errno 9] Bad file descriptor"),
    ]


def test_blocking_socket_rejected_in_debug_mode(loop):
    loop.set_debug(True)
    a, b = socket.socketpair()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    calls = every_sock_method(loop, a, b, u)

    try:
        assert loop.run_until_complete(messages(calls, ValueError)) == ["the socket must be non-blocking"] * len(calls)
    finally:
        a.close()
        b.close()
        u.close()


def test_sock_recv_on_transport_fd_raises(loop):
    async def main():
        srv = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        sock = tr.get_extra_info("socket")
        raw = socket.socket(fileno=sock.fileno())
        try:
            await loop.sock_recv(raw, 10)
        except RuntimeError as e:
            msg = str(e)
        finally:
            raw.detach()
        tr.close()
        srv.close()
        await srv.wait_closed()
        return msg

    assert "is used by transport" in loop.run_until_complete(main())


def test_ssl_socket_refused_by_every_sock_method(loop):
    ssl = pytest.importorskip("ssl")
    a, b = socket.socketpair()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    s = ctx.wrap_socket(b, do_handshake_on_connect=False, server_hostname="localhost")
    s.setblocking(False)
    calls = every_sock_method(loop, s, s, s)

    try:
        assert loop.run_until_complete(messages(calls, TypeError)) == ["Socket cannot be of type SSLSocket"] * len(calls)
    finally:
        a.close()
        s.close()


def test_recv_sizes_and_socket_subclass(loop):
    """recv(0) and recv_into(empty) on an idle socket (ferrio waited forever
    for data before), a reply bigger than the first try's read, and a subclass of
    socket.socket (which takes asyncio's SSL check) all behave as sock.recv."""

    class MySocket(socket.socket):
        pass

    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    c = MySocket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(("127.0.0.1", port))
    s, _ = lsock.accept()
    lsock.close()
    c.setblocking(False)
    s.setblocking(False)
    payload = bytes(range(256)) * 800  # 200 KiB

    async def main():
        # Nothing queued: the socket module answers these without waiting.
        assert await asyncio.wait_for(loop.sock_recv(c, 0), 5) == b""
        assert await asyncio.wait_for(loop.sock_recv_into(c, bytearray()), 5) == 0
        send = loop.create_task(loop.sock_sendall(s, payload))
        await asyncio.sleep(0.05)  # let the kernel queue what it will take
        got = bytearray()
        sizes = []
        while len(got) < len(payload):
            chunk = await asyncio.wait_for(loop.sock_recv(c, 1 << 20), 5)
            assert chunk
            sizes.append(len(chunk))
            got += chunk
        await send
        s.shutdown(socket.SHUT_WR)
        eof = await asyncio.wait_for(loop.sock_recv(c, 1 << 20), 5)
        return bytes(got), sizes, eof

    try:
        got, sizes, eof = loop.run_until_complete(main())
        assert got == payload
        assert eof == b""
        # Everything queued arrives in one call, as sock.recv(n) gives it:
        # fewer reads than 4 KiB pieces.
        assert len(sizes) < len(payload) // 4096
    finally:
        c.close()
        s.close()


class Recording(socket.socket):
    """A socket subclass whose data methods record their calls: asyncio's
    loop calls them, so a loop must not go around them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []


def _recorded(name):
    def method(self, *args):
        self.calls.append(name)
        return getattr(super(Recording, self), name)(*args)

    method.__name__ = name
    return method


for _name in ("recv", "recv_into", "send", "recvfrom", "recvfrom_into", "sendto"):
    setattr(Recording, _name, _recorded(_name))


def test_socket_subclass_methods_are_called(loop):
    async def main():
        a, b = socket.socketpair()
        ra = Recording(fileno=a.detach())
        rb = Recording(fileno=b.detach())
        for s in (ra, rb):
            s.setblocking(False)
        got = []
        try:
            await loop.sock_sendall(ra, b"abc")
            got.append(await loop.sock_recv(rb, 10))
            waiting = loop.create_task(loop.sock_recv(rb, 10))  # has to wait
            await asyncio.sleep(0.01)
            await loop.sock_sendall(ra, b"later")
            got.append(await waiting)
            await loop.sock_sendall(ra, b"xy")
            buf = bytearray(10)
            n = await loop.sock_recv_into(rb, buf)
            got.append(bytes(buf[:n]))
            calls = [ra.calls, rb.calls]
            if hasattr(loop, "sock_recvfrom"):  # 3.11+
                u1 = Recording(socket.AF_INET, socket.SOCK_DGRAM)
                u2 = Recording(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    for s in (u1, u2):
                        s.bind(("127.0.0.1", 0))
                        s.setblocking(False)
                    await loop.sock_sendto(u1, b"d1", u2.getsockname())
                    got.append((await loop.sock_recvfrom(u2, 10))[0])
                    await loop.sock_sendto(u1, b"d2", u2.getsockname())
                    buf = bytearray(10)
                    n, _ = await loop.sock_recvfrom_into(u2, buf)
                    got.append(bytes(buf[:n]))
                    calls += [u1.calls, u2.calls]
                finally:
                    u1.close()
                    u2.close()
            return got, calls
        finally:
            ra.close()
            rb.close()

    got, calls = loop.run_until_complete(main())
    assert got[:3] == [b"abc", b"later", b"xy"]
    assert calls[0] == ["send", "send", "send"]
    assert calls[1][0] == "recv" and calls[1][-1] == "recv_into"
    assert set(calls[1][:-1]) == {"recv"}  # once more after the wait
    if len(calls) > 2:
        assert got[3:] == [b"d1", b"d2"]
        assert calls[2:] == [["sendto", "sendto"], ["recvfrom", "recvfrom_into"]]


def test_mock_socket_with_patched_sendto(loop):
    """As CPython's test_sock_lowlevel does: a ``Mock(sock)`` whose sendto
    first says BlockingIOError, then is the real one."""
    if not hasattr(loop, "sock_sendto"):
        pytest.skip("sock_sendto is 3.11+")
    from unittest import mock

    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, socket.socket(
            socket.AF_INET, socket.SOCK_DGRAM
        ) as sock:
            sink.bind(("127.0.0.1", 0))
            sink.setblocking(False)
            sock.setblocking(False)
            fake = mock.Mock(sock)
            fake.gettimeout = sock.gettimeout
            fake.fileno = sock.fileno
            fake.sendto.configure_mock(side_effect=BlockingIOError)
            loop.call_soon(lambda: setattr(fake, "sendto", sock.sendto))
            n = await loop.sock_sendto(fake, b"hello", sink.getsockname())
            data, _ = await loop.sock_recvfrom(sink, 10)
            return n, data

    assert loop.run_until_complete(main()) == (5, b"hello")
