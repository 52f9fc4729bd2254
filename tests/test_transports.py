"""Stream socket transports: the protocol-facing behaviour asyncio defines
(reads, writes, flow control, half-close, close/abort, resets, errors in
protocol methods, protocol swaps). Differential: each runs on both loops.
"""

import asyncio
import socket
import struct
import sys

import pytest


class Recorder(asyncio.Protocol):
    """Records every protocol call; `done` resolves on connection_lost."""

    def __init__(self, loop, eof_keep_open=False):
        self.loop = loop
        self.calls = []
        self.data = bytearray()
        self.transport = None
        self.eof_keep_open = eof_keep_open
        self.done = loop.create_future()
        self.made = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.calls.append("made")
        self.made.set_result(None)

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.calls.append("data")
        self.data += data

    def eof_received(self):
        self.calls.append("eof")
        return self.eof_keep_open

    def pause_writing(self):
        self.calls.append("pause")

    def resume_writing(self):
        self.calls.append("resume")

    def connection_lost(self, exc):
        self.calls.append(("lost", type(exc).__name__ if exc else None))
        if not self.done.done():
            self.done.set_result(exc)


async def pair(loop, proto_factory=None):
    """A connected (client transport, client protocol, server socket)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.setblocking(False)
    port = lsock.getsockname()[1]
    proto = (proto_factory or (lambda: Recorder(loop)))()
    conn_task = loop.create_task(loop.create_connection(lambda: proto, "127.0.0.1", port))
    peer, _ = await loop.sock_accept(lsock)
    lsock.close()
    tr, pr = await conn_task
    peer.setblocking(False)
    return tr, pr, peer


# 16 MiB in 64 KiB writes: more than loopback's socket buffers hold, so
# some of it stays in the transport's buffer.
N_CHUNKS = 256


async def read_exactly(loop, sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def test_transport_types_and_extra_info(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        info = (
            isinstance(tr, asyncio.Transport),
            isinstance(tr, asyncio.ReadTransport),
            isinstance(tr, asyncio.WriteTransport),
            tr.get_extra_info("peername") == peer.getsockname(),
            tr.get_extra_info("sockname") == peer.getpeername(),
            tr.get_extra_info("nope", 42),
            tr.get_protocol() is pr,
            tr.is_reading(),
            tr.is_closing(),
            tr.can_write_eof(),
            tr.get_write_buffer_size(),
            tr.get_write_buffer_limits(),
        )
        sock = tr.get_extra_info("socket")
        usable = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        tr.close()
        await pr.done
        peer.close()
        return info, usable, pr.calls

    info, usable, calls = loop.run_until_complete(main())
    assert info == (True, True, True, True, True, 42, True, True, False, True, 0, (16384, 65536))
    assert usable
    assert calls == ["made", ("lost", None)]


def test_tcp_nodelay_on_accepted_and_given_sockets(loop):
    """TCP_NODELAY on server-side and client-side transports. Sockets the
    loop makes (create_server/create_connection by host) get it on both
    loops. A listener made with `socket.socket()` has proto 0, and so has
    every socket accepted from it: asyncio then leaves Nagle on, ferrio
    sets TCP_NODELAY (docs/compatibility.md)."""
    from conftest import is_ferrio

    class Keep(asyncio.Protocol):
        def connection_made(self, transport):
            got.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
            transport.close()

    got = []

    async def serve_and_connect(**server_kw):
        srv = await loop.create_server(Keep, **server_kw)
        port = srv.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        client = tr.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        while not got:
            await asyncio.sleep(0.001)
        tr.close()
        srv.close()
        await srv.wait_closed()
        return client, got.pop()

    async def main():
        by_host = await serve_and_connect(host="127.0.0.1", port=0)
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        assert lsock.proto == 0
        given = await serve_and_connect(sock=lsock)
        return by_host, given

    by_host, given = loop.run_until_complete(main())
    assert by_host == (True, True)
    assert given == (True, is_ferrio(loop))


def test_read_write_roundtrip_and_eof(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        tr.write(b"hello ")
        tr.write(bytearray(b"big "))
        tr.write(memoryview(b"xworldx")[1:-1])
        tr.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
        got = await read_exactly(loop, peer, 18)
        await loop.sock_sendall(peer, b"x" * 300_000)
        while len(pr.data) < 300_000:
            await asyncio.sleep(0.001)
        peer.shutdown(socket.SHUT_WR)
        exc = await pr.done
        peer.close()
        return got, len(pr.data), exc, pr.calls[0], pr.calls[-2:]

    got, n, exc, first, last = loop.run_until_complete(main())
    assert got == b"hello big worldabc"
    assert n == 300_000
    assert exc is None
    assert first == "made"
    assert last == ["eof", ("lost", None)]


def test_reads_of_changing_sizes_keep_every_byte(loop):
    # Message sizes that shrink and grow around the transport's read sizing
    # (small reads, big reads, a read filling a size predicted from the last
    # one): the bytes received are exactly the bytes sent, in order.
    sizes = [1, 9000, 10240, 10240, 12289, 300_000, 20_000, 5, 70_000, 8192, 4096 * 3]
    import random

    rnd = random.Random(7)
    msgs = [rnd.randbytes(n) for n in sizes]

    async def main():
        tr, pr, peer = await pair(loop)
        total = 0
        for m in msgs:
            await loop.sock_sendall(peer, m)
            total += len(m)
            while len(pr.data) < total and not pr.done.done():
                await asyncio.sleep(0.001)
        tr.close()
        await pr.done
        peer.close()
        return bytes(pr.data)

    got = loop.run_until_complete(main())
    assert got == b"".join(msgs)


def test_write_errors_and_noops(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        errs = []
        for bad in ("str", 12, None, [b"x"]):
            try:
                tr.write(bad)
            except TypeError as e:
                errs.append(str(e))
        tr.write(b"")  # no-op
        size = tr.get_write_buffer_size()
        tr.write_eof()
        try:
            tr.write(b"x")
        except RuntimeError as e:
            errs.append("RuntimeError")
        tr.close()
        await pr.done
        peer.close()
        return errs, size, tr.is_closing()

    errs, size, closing = loop.run_until_complete(main())
    assert errs == [
        f"data argument must be a bytes-like object, not {name!r}"
        for name in ("str", "int", "NoneType", "list")
    ] + ["RuntimeError"]
    assert size == 0
    assert closing


@pytest.mark.parametrize("keep_open", [False, True])
def test_half_close_eof_received(loop, keep_open):
    async def main():
        tr, pr, peer = await pair(loop, lambda: Recorder(loop, eof_keep_open=keep_open))
        peer.shutdown(socket.SHUT_WR)
        while "eof" not in pr.calls:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        closing = tr.is_closing()
        if keep_open:
            tr.write(b"after eof")
            got = await read_exactly(loop, peer, 9)
            tr.close()
        else:
            got = await loop.sock_recv(peer, 10)
        await pr.done
        peer.close()
        return closing, got, pr.calls

    closing, got, calls = loop.run_until_complete(main())
    if keep_open:
        assert not closing and got == b"after eof"
    else:
        assert closing and got == b""
    assert calls == ["made", "eof", ("lost", None)]


def test_pause_resume_reading(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        tr.pause_reading()
        states = [tr.is_reading()]
        tr.pause_reading()  # idempotent
        await loop.sock_sendall(peer, b"queued")
        await asyncio.sleep(0.02)
        before = bytes(pr.data)
        tr.resume_reading()
        states.append(tr.is_reading())
        tr.resume_reading()
        while not pr.data:
            await asyncio.sleep(0.001)
        tr.close()
        states.append(tr.is_reading())
        await pr.done
        peer.close()
        return states, before, bytes(pr.data)

    states, before, after = loop.run_until_complete(main())
    assert states == [False, True, False]
    assert before == b""
    assert after == b"queued"


def test_flow_control_pause_and_resume_writing(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        tr.set_write_buffer_limits(high=1000, low=100)
        limits = tr.get_write_buffer_limits()
        chunk = b"z" * 65536
        for _ in range(N_CHUNKS):  # far more than the kernel buffers hold
            tr.write(chunk)
        buffered = tr.get_write_buffer_size()
        paused = "pause" in pr.calls
        total = await read_exactly(loop, peer, N_CHUNKS * 65536)
        while "resume" not in pr.calls:
            await asyncio.sleep(0.001)
        tr.close()
        await pr.done
        peer.close()
        return limits, buffered > 1000, paused, len(total), tr.get_write_buffer_size()

    limits, over, paused, n, left = loop.run_until_complete(main())
    assert limits == (100, 1000)
    assert over and paused
    assert n == N_CHUNKS * 65536
    assert left == 0


def test_set_write_buffer_limits_errors(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        out = []
        for kw in ({"high": 10, "low": 20}, {"high": -1}, {"low": -4}):
            try:
                tr.set_write_buffer_limits(**kw)
            except ValueError:
                out.append("ValueError")
        tr.set_write_buffer_limits(low=1000)
        out.append(tr.get_write_buffer_limits())
        tr.set_write_buffer_limits(high=800)
        out.append(tr.get_write_buffer_limits())
        tr.close()
        await pr.done
        peer.close()
        return out

    assert loop.run_until_complete(main()) == ["ValueError"] * 3 + [(1000, 4000), (200, 800)]


def test_abort_with_full_buffer(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        for _ in range(N_CHUNKS):
            tr.write(b"q" * 65536)
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        exc = await pr.done
        size = tr.get_write_buffer_size()
        peer.close()
        return exc, size, tr.is_closing(), pr.calls.count(("lost", None))

    exc, size, closing, lost = loop.run_until_complete(main())
    assert exc is None and size == 0 and closing and lost == 1


def test_writes_after_abort_warn_and_logging_may_reenter(loop):
    """write() after abort() is dropped; from the fifth one on asyncio logs
    'socket.send() raised exception.'. A logging handler that calls back
    into the transport while that warning is emitted must work (ferrio
    holds none of the transport's state meanwhile)."""
    from conftest import writes_after_abort

    async def main():
        tr, pr, peer = await pair(loop)
        seen = writes_after_abort(tr, tr.write, 7)
        await pr.done
        peer.close()
        return seen

    seen = loop.run_until_complete(main())
    # abort() sets conn_lost to 1; the 5th write after it and every later
    # one warn (conn_lost >= 5): 3 of the 7. (Not writelines: on 3.12+
    # asyncio's buffers the data and registers a writer on the aborted
    # transport instead; docs/compatibility.md.)
    assert [m for m, _, _ in seen] == ["socket.send() raised exception."] * 3
    assert all(closing is True and size == 0 for _, closing, size in seen)


def test_close_flushes_buffer_first(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        payload = bytes(range(256)) * 4096 * 16  # 16 MiB
        tr.write(payload)
        tr.close()
        got = await read_exactly(loop, peer, len(payload) + 1)
        await pr.done
        peer.close()
        return got == payload

    assert loop.run_until_complete(main())


def test_peer_reset_reports_connection_lost_with_error(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
        exc = await asyncio.wait_for(pr.done, 5)
        # writing after the reset: dropped, never raises
        for _ in range(10):
            tr.write(b"x")
        return exc

    exc = loop.run_until_complete(main())
    assert exc is None or isinstance(exc, ConnectionResetError)


def test_peer_reset_mid_write(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        for _ in range(N_CHUNKS):
            tr.write(b"w" * 65536)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        exc = await asyncio.wait_for(pr.done, 5)
        return exc, tr.is_closing(), tr.get_write_buffer_size()

    exc, closing, size = loop.run_until_complete(main())
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert closing and size == 0


def test_data_received_raising_goes_to_handler(loop):
    class Bad(Recorder):
        def data_received(self, data):
            raise ZeroDivisionError("boom")

    async def main():
        tr, pr, peer = await pair(loop, lambda: Bad(loop))
        await loop.sock_sendall(peer, b"x")
        exc = await asyncio.wait_for(pr.done, 5)
        peer.close()
        return exc

    exc = loop.run_until_complete(main())
    assert isinstance(exc, ZeroDivisionError)
    [ctx] = loop.errors
    loop.errors.clear()
    assert ctx["message"] == "Fatal error: protocol.data_received() call failed."
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert isinstance(ctx["transport"], asyncio.Transport)


def test_write_non_contiguous_memoryview_is_a_fatal_write_error(loop):
    # The socket refuses a strided buffer: asyncio reports it as a fatal
    # write error (exception handler, connection lost), write() returns.
    async def main():
        tr, pr, peer = await pair(loop)
        tr.write(memoryview(b"abcdef")[::2])
        exc = await asyncio.wait_for(pr.done, 5)
        peer.close()
        return exc, tr.is_closing()

    exc, closing = loop.run_until_complete(main())
    assert isinstance(exc, BufferError)
    assert closing
    [ctx] = loop.errors
    loop.errors.clear()
    assert ctx["message"] == "Fatal write error on socket transport"
    assert isinstance(ctx["exception"], BufferError)


def test_set_protocol_swaps_on_live_transport(loop):
    async def main():
        tr, first, peer = await pair(loop)
        second = Recorder(loop)
        tr.set_protocol(second)
        await loop.sock_sendall(peer, b"to second")
        while not second.data:
            await asyncio.sleep(0.001)
        current = tr.get_protocol() is second
        tr.close()
        await second.done
        peer.close()
        return bytes(first.data), bytes(second.data), current, first.done.done()

    assert loop.run_until_complete(main()) == (b"", b"to second", True, False)


def test_buffered_protocol(loop):
    class Buf(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(100)
            self.got = bytearray()
            self.hints = set()
            self.done = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            self.hints.add(sizehint)
            return self.buf

        def buffer_updated(self, nbytes):
            self.got += self.buf[:nbytes]

        def eof_received(self):
            return False

        def connection_lost(self, exc):
            self.done.set_result(exc)

    async def main():
        tr, pr, peer = await pair(loop, Buf)
        data = bytes(range(256)) * 40
        await loop.sock_sendall(peer, data)
        peer.shutdown(socket.SHUT_WR)
        await pr.done
        peer.close()
        return bytes(pr.got) == data, pr.hints

    same, hints = loop.run_until_complete(main())
    assert same and hints == {-1}


def test_buffered_protocol_empty_buffer_is_fatal(loop):
    class Empty(asyncio.BufferedProtocol):
        def __init__(self):
            self.done = loop.create_future()

        def get_buffer(self, sizehint):
            return bytearray()

        def buffer_updated(self, nbytes):
            pass

        def connection_lost(self, exc):
            self.done.set_result(exc)

    async def main():
        tr, pr, peer = await pair(loop, Empty)
        await loop.sock_sendall(peer, b"x")
        exc = await asyncio.wait_for(pr.done, 5)
        peer.close()
        return exc

    exc = loop.run_until_complete(main())
    assert isinstance(exc, RuntimeError)
    [ctx] = loop.errors
    loop.errors.clear()
    assert ctx["message"] == "Fatal error: protocol.get_buffer() call failed."


def test_connection_made_raising_server_keeps_serving(loop):
    made = []

    class Flaky(asyncio.Protocol):
        def connection_made(self, transport):
            made.append(transport)
            if len(made) == 1:
                raise ValueError("first connection fails")
            transport.write(b"ok")
            transport.close()

    async def main():
        srv = await loop.create_server(Flaky, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        results = []
        for _ in range(2):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            if len(made) < 1:
                await asyncio.sleep(0)
            try:
                results.append(await asyncio.wait_for(r.read(), 0.5))
            except asyncio.TimeoutError:
                results.append("timeout")
            w.close()
        made[0].close()
        srv.close()
        await srv.wait_closed()
        return results

    results = loop.run_until_complete(main())
    assert results[1] == b"ok"
    assert len(loop.errors) == 1
    assert isinstance(loop.errors[0]["exception"], ValueError)
    loop.errors.clear()


def test_unix_socket_echo(loop, tmp_path):
    path = str(tmp_path / "s.sock")

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport

        def data_received(self, data):
            self.t.write(data)

    async def main():
        srv = await loop.create_unix_server(Echo, path)
        tr, pr = await loop.create_unix_connection(lambda: Recorder(loop), path)
        tr.write(b"unix!" * 1000)
        while len(pr.data) < 5000:
            await asyncio.sleep(0.001)
        peer = tr.get_extra_info("peername")
        tr.close()
        await pr.done
        srv.close()
        await srv.wait_closed()
        return bytes(pr.data), isinstance(tr, asyncio.Transport), peer

    data, ok, peer = loop.run_until_complete(main())
    assert data == b"unix!" * 1000 and ok and peer == path


def test_transport_repr_states(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        open_repr = repr(tr)
        tr.close()
        closing_repr = repr(tr)
        await pr.done
        closed_repr = repr(tr)
        peer.close()
        return open_repr, closing_repr, closed_repr

    o, c, d = loop.run_until_complete(main())
    assert "read=polling" in o and "write=<idle, bufsize=0>" in o
    assert "closing" in c
    assert "closed" in d


def test_unclosed_transport_resource_warning(loop):
    async def main():
        tr, pr, peer = await pair(loop)
        return tr, peer

    tr, peer = loop.run_until_complete(main())
    loop.close()
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        tr.__del__()
    peer.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="StreamWriter.start_tls is 3.11+")
def test_tls_streams_and_start_tls(loop):
    from conftest import tls_contexts

    server_ctx, client_ctx = tls_contexts()

    async def handle(r, w):
        line = await r.readline()
        if line == b"STARTTLS\n":
            w.write(b"GO\n")
            await w.drain()
            await w.start_tls(server_ctx)
            line = await r.readline()
        w.write(line.upper())
        await w.drain()
        w.close()

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        w.write(b"over tls\n")
        first = await r.readline()
        cipher = w.get_extra_info("cipher")
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        # plain connection upgraded in place (asyncpg and SMTP do this)
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"STARTTLS\n")
        go = await r.readline()
        await w.start_tls(client_ctx)
        w.write(b"upgraded\n")
        second = await r.readline()
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        return first, cipher is not None, go, second

    assert loop.run_until_complete(main()) == (b"OVER TLS\n", True, b"GO\n", b"UPGRADED\n")


def test_socket_subclass_given_to_create_connection_has_its_methods_called(loop):
    """asyncio's transports call ``sock.recv``/``send`` (or ``recv_into``
    for a BufferedProtocol); a socket subclass a caller passes in sees
    those calls on both loops (ferrio hands such sockets to asyncio's
    selector transport)."""
    from test_sock_methods import Recording

    async def main():
        a, b = socket.socketpair()
        client = Recording(fileno=a.detach())
        client.setblocking(False)
        b.setblocking(False)
        got = loop.create_future()

        class Proto(asyncio.Protocol):
            def data_received(self, data):
                got.set_result(data)

        tr, _ = await loop.create_connection(Proto, sock=client)
        tr.write(b"out")
        await asyncio.sleep(0.01)
        sent = b.recv(10)
        b.send(b"in")
        data = await asyncio.wait_for(got, 5)
        tr.close()
        await asyncio.sleep(0.01)
        b.close()
        return sent, data, sorted(set(client.calls))

    sent, data, calls = loop.run_until_complete(main())
    assert (sent, data) == (b"out", b"in")
    assert calls == ["recv", "send"]


def test_socket_subclass_given_to_create_datagram_endpoint(loop):
    from test_sock_methods import Recording

    async def main():
        sock = Recording(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        got = loop.create_future()

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                got.set_result((data, addr))

        tr, _ = await loop.create_datagram_endpoint(Proto, sock=sock)
        tr.sendto(b"out", peer.getsockname())
        await asyncio.sleep(0.01)
        sent = peer.recvfrom(10)[0]
        peer.sendto(b"in", sock.getsockname())
        data, addr = await asyncio.wait_for(got, 5)
        same = addr == peer.getsockname()
        tr.close()
        await asyncio.sleep(0.01)
        peer.close()
        return sent, data, same, sorted(set(sock.calls))

    sent, data, same, calls = loop.run_until_complete(main())
    assert (sent, data, same) == (b"out", b"in", True)
    assert calls == ["recvfrom", "sendto"]
