"""Networking through the interim layer (asyncio's selector transports on
ferrio's native fd watching): streams, servers, sock_*, datagrams, Unix
sockets, subprocess pipes. Differential: each runs on both loops."""

import asyncio
import os
import socket
import sys

import pytest


def test_tcp_streams_echo(loop):
    handled = []

    async def handle(r, w):
        while data := await r.readline():
            w.write(data.upper())
            await w.drain()
        w.close()
        await w.wait_closed()
        handled.append(True)

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        out = []
        for i in range(50):
            w.write(b"line %d\n" % i)
            await w.drain()
            out.append(await r.readline())
        w.close()
        await w.wait_closed()
        while not handled:  # the server side finishes on its own schedule
            await asyncio.sleep(0.001)
        srv.close()
        await srv.wait_closed()
        return out

    out = loop.run_until_complete(main())
    assert out == [b"LINE %d\n" % i for i in range(50)]


def test_transport_isinstance_and_extra_info(loop):
    async def main():
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        t = w.transport
        ok = isinstance(t, asyncio.Transport)
        peer = t.get_extra_info("peername")
        await r.read()  # server closed
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        return ok, peer, port

    ok, peer, port = loop.run_until_complete(main())
    assert ok and peer == ("127.0.0.1", port)


def test_sock_methods(loop):
    async def main():
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        csock = socket.socket()
        csock.setblocking(False)
        accept = loop.create_task(loop.sock_accept(lsock))
        await loop.sock_connect(csock, lsock.getsockname())
        ssock, _ = await accept
        ssock.setblocking(False)
        await loop.sock_sendall(csock, b"x" * 100_000)
        got = b""
        while len(got) < 100_000:
            got += await loop.sock_recv(ssock, 65536)
        buf = bytearray(10)
        await loop.sock_sendall(ssock, b"hello")
        n = await loop.sock_recv_into(csock, buf)
        for s in (csock, ssock, lsock):
            s.close()
        return len(got), bytes(buf[:n])

    assert loop.run_until_complete(main()) == (100_000, b"hello")


def test_sock_recv_blocking_socket_rejected_in_debug(loop):
    loop.set_debug(True)

    async def main():
        a, b = socket.socketpair()
        try:
            with pytest.raises(ValueError):
                await loop.sock_recv(a, 1)
        finally:
            a.close()
            b.close()

    loop.run_until_complete(main())


def test_datagram_endpoint(loop):
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t):
            self.t = t

        def datagram_received(self, data, addr):
            self.t.sendto(data.upper(), addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self, fut):
            self.fut = fut

        def datagram_received(self, data, addr):
            if not self.fut.done():
                self.fut.set_result(data)

    async def main():
        st, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = st.get_extra_info("sockname")
        fut = loop.create_future()
        ct, _ = await loop.create_datagram_endpoint(lambda: Client(fut), remote_addr=addr)
        ct.sendto(b"ping")
        data = await asyncio.wait_for(fut, 5)
        ct.close()
        st.close()
        return data

    assert loop.run_until_complete(main()) == b"PING"


def test_unix_streams(loop, tmp_path):
    path = str(tmp_path / "s.sock")

    async def handle(r, w):
        w.write(await r.read(5))
        await w.drain()
        w.close()

    async def main():
        srv = await asyncio.start_unix_server(handle, path)
        r, w = await asyncio.open_unix_connection(path)
        w.write(b"unix!")
        data = await r.read()
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        return data

    assert loop.run_until_complete(main()) == b"unix!"


def test_connection_refused_error_type(loop):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def main():
        await asyncio.open_connection("127.0.0.1", port)

    with pytest.raises(ConnectionRefusedError):
        loop.run_until_complete(main())


def test_add_reader_on_transport_fd_raises(loop):
    handled = []

    async def handle(r, w):
        await r.read()  # until the client closes; 3.12+ wait_closed waits for us
        w.close()
        handled.append(True)

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        fd = w.transport.get_extra_info("socket").fileno()
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(fd, print)
        w.close()
        await w.wait_closed()
        while not handled:
            await asyncio.sleep(0.001)
        srv.close()
        await srv.wait_closed()

    loop.run_until_complete(main())


def test_subprocess_exec(loop):
    async def main():
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await p.communicate(b"piped")
        return out, p.returncode

    if sys.version_info < (3, 12):
        # 3.11's default child watcher needs the loop attached in the main thread
        asyncio.get_child_watcher().attach_loop(loop)
    assert loop.run_until_complete(main()) == (b"PIPED", 0)


def test_read_pipe(loop):
    r, w = os.pipe()

    class P(asyncio.Protocol):
        def __init__(self):
            self.data = b""
            self.done = loop.create_future()

        def data_received(self, d):
            self.data += d

        def eof_received(self):
            self.done.set_result(self.data)

    async def main():
        proto = P()
        t, _ = await loop.connect_read_pipe(lambda: proto, os.fdopen(r, "rb", 0))
        os.write(w, b"through a pipe")
        os.close(w)
        data = await asyncio.wait_for(proto.done, 5)
        t.close()
        return data

    assert loop.run_until_complete(main()) == b"through a pipe"
