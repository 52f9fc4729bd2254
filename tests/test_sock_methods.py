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
                errs.append(type(e).__name__)

        try:
            await catch(loop.sock_recv(b, -1))
            await catch(loop.sock_recv(b, "x"))
            await catch(loop.sock_sendall(a, "text"))
            await catch(loop.sock_sendall(a, 123))
            await catch(loop.sock_recv_into(b, b"immutable"))
            await catch(loop.sock_recv(object(), 1))
        finally:
            a.close()
            b.close()
        await catch(loop.sock_recv(b, 1))
        await catch(loop.sock_sendall(a, b"x"))
        return errs

    errs = loop.run_until_complete(main())
    assert errs == ["ValueError", "TypeError", "TypeError", "TypeError", "TypeError", "AttributeError", "OSError", "OSError"]


def test_blocking_socket_rejected_in_debug_mode(loop):
    loop.set_debug(True)
    a, b = socket.socketpair()

    async def main():
        out = []
        for coro in (loop.sock_recv(b, 1), loop.sock_sendall(a, b"x"), loop.sock_recv_into(b, bytearray(1))):
            try:
                await coro
            except ValueError as e:
                out.append(str(e))
        return out

    try:
        assert loop.run_until_complete(main()) == ["the socket must be non-blocking"] * 3
    finally:
        a.close()
        b.close()


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
