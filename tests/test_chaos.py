"""Servers staying up under a mix of misbehaving clients, run on both
loops: well-behaved echo clients interleaved with clients that reset the
connection mid-stream, half-close, stop reading while sending a lot (the
server's writes back up and flow control pauses it), send a message the
protocol raises on, or connect and leave at once. Afterwards the server
must still serve a well-behaved client, every well-behaved client must
have had every byte echoed, the exception handler must have seen exactly
the protocol's own failures, and no file descriptor may be left open.
The same for an asyncio streams line server (whose reader ferrio feeds
natively): lines past the reader's limit, resets and EOF mid-line end
each connection exactly as on asyncio.

Bounded: a fixed number of clients (seeded random mix), at most 50 at
once, the whole run under a time limit; servers bind 127.0.0.1 only.
"""

import asyncio
import random
import socket
import struct

from conftest import open_fds

CLIENTS = 2000
CONCURRENT = 50
LIMIT_S = 60


class Boom(RuntimeError):
    """What the protocol raises on a b"RAISE" message."""


class FlakyEcho(asyncio.Protocol):
    """Echoes; pauses reading while its writes are backed up; raises from
    data_received on a message starting with b"RAISE"."""

    pauses = 0

    def connection_made(self, transport):
        self.t = transport
        transport.set_write_buffer_limits(high=64 * 1024)
        # small kernel buffers, so a client that does not read backs the
        # server's writes up quickly
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)

    def data_received(self, data):
        if data.startswith(b"RAISE"):
            raise Boom("asked to fail")
        self.t.write(data)

    def pause_writing(self):
        FlakyEcho.pauses += 1
        self.t.pause_reading()

    def resume_writing(self):
        self.t.resume_reading()


async def connect(loop, port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    return sock


async def recv_exactly(loop, sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, min(65536, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


async def recv_until_eof(loop, sock):
    """Everything up to EOF; a reset counts as the end too."""
    buf = bytearray()
    while True:
        try:
            chunk = await loop.sock_recv(sock, 65536)
        except ConnectionResetError:
            return bytes(buf), "reset"
        if not chunk:
            return bytes(buf), "eof"
        buf += chunk


async def well_behaved(loop, port, rng):
    payload = rng.randbytes(rng.choice([1, 100, 4096, 70000]))
    sock = await connect(loop, port)
    try:
        await loop.sock_sendall(sock, payload)
        return await recv_exactly(loop, sock, len(payload)) == payload
    finally:
        sock.close()


async def resets(loop, port, rng):
    sock = await connect(loop, port)
    await loop.sock_sendall(sock, rng.randbytes(rng.choice([10, 50000])))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return True


async def half_closes(loop, port, rng):
    payload = rng.randbytes(rng.choice([10, 20000]))
    sock = await connect(loop, port)
    try:
        await loop.sock_sendall(sock, payload)
        sock.shutdown(socket.SHUT_WR)
        # The echo server does not close on EOF (eof_received returns
        # None: the transport closes itself after a half-close).
        got, _ = await recv_until_eof(loop, sock)
        return got == payload
    finally:
        sock.close()


async def slow_reader(loop, port, rng):
    """Sends 1 MiB before reading anything back: the server's writes back
    up past its limit, it pauses reading, and both sides wait on each
    other until this client reads."""
    payload = rng.randbytes(1024 * 1024)
    sock = await connect(loop, port)
    try:
        send = loop.create_task(loop.sock_sendall(sock, payload))
        await asyncio.sleep(0.05)
        got = await recv_exactly(loop, sock, len(payload))
        await send
        return got == payload
    finally:
        sock.close()


async def raiser(loop, port, rng):
    sock = await connect(loop, port)
    try:
        await loop.sock_sendall(sock, b"RAISE" + rng.randbytes(10))
        got, _ = await recv_until_eof(loop, sock)
        return got == b""  # closed by the fatal error, nothing echoed
    finally:
        sock.close()


async def leaves_at_once(loop, port, rng):
    sock = await connect(loop, port)
    sock.close()
    return True


KINDS = [
    (well_behaved, 8),
    (resets, 2),
    (half_closes, 2),
    (slow_reader, 1),
    (raiser, 2),
    (leaves_at_once, 2),
]


def test_server_survives_misbehaving_clients(loop):
    rng = random.Random(20261204)
    plan = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS], k=CLIENTS)
    before = open_fds()
    FlakyEcho.pauses = 0

    async def main():
        server = await loop.create_server(FlakyEcho, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sem = asyncio.Semaphore(CONCURRENT)

        async def run(kind, seed):
            async with sem:
                return kind.__name__, await kind(loop, port, random.Random(seed))

        results = await asyncio.wait_for(
            asyncio.gather(*(run(k, rng.random()) for k in plan)), LIMIT_S
        )
        # still serving after all that
        last = await well_behaved(loop, port, random.Random(1))
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # connection_lost callbacks of the last transports
        return results, last

    results, last = loop.run_until_complete(main())
    failed = [name for name, ok in results if not ok]
    assert failed == []
    assert last
    assert FlakyEcho.pauses > 0  # the slow readers did back the server up
    raised = sum(1 for k in plan if k is raiser)
    reports = [ctx.get("exception") for ctx in loop.errors]
    loop.errors.clear()
    assert len(reports) == raised
    assert all(isinstance(e, Boom) for e in reports)
    assert open_fds() == before


# -- the same for an asyncio streams server (ferrio feeds its StreamReader
# natively): a line-echo handler that records how each connection ended.

LIMIT = 16 * 1024


async def line_client(loop, port, rng, kind):
    sock = await connect(loop, port)
    try:
        if kind == "lines":
            lines = [rng.randbytes(rng.choice([0, 10, 3000])).replace(b"\n", b"") + b"\n" for _ in range(5)]
            for line in lines:
                await loop.sock_sendall(sock, line)
                if await recv_exactly(loop, sock, len(line)) != line:
                    return False
            return True
        if kind == "too-long":
            await loop.sock_sendall(sock, b"x" * (LIMIT * 2))
        elif kind == "reset-mid-line":
            await loop.sock_sendall(sock, b"no newline yet")
            await asyncio.sleep(0.01)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif kind == "eof-mid-line":
            await loop.sock_sendall(sock, b"partial")
            sock.shutdown(socket.SHUT_WR)
            got, _ = await recv_until_eof(loop, sock)
            return got == b""
        return True
    finally:
        sock.close()


LINE_KINDS = ["lines"] * 6 + ["too-long", "reset-mid-line", "eof-mid-line"]


def test_streams_server_survives_misbehaving_clients(loop):
    rng = random.Random(4122026)
    plan = rng.choices(LINE_KINDS, k=600)
    before = open_fds()
    endings = []

    async def handler(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line.endswith(b"\n"):
                    endings.append("eof" if not line else "eof-partial")
                    break
                writer.write(line)
                await writer.drain()
        except Exception as e:
            endings.append(type(e).__name__)
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0, limit=LIMIT)
        port = server.sockets[0].getsockname()[1]
        sem = asyncio.Semaphore(CONCURRENT)

        async def run(kind, seed):
            async with sem:
                return kind, await line_client(loop, port, random.Random(seed), kind)

        results = await asyncio.wait_for(
            asyncio.gather(*(run(k, rng.random()) for k in plan)), LIMIT_S
        )
        last = await line_client(loop, port, random.Random(2), "lines")
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)
        return results, last

    results, last = loop.run_until_complete(main())
    assert [k for k, ok in results if not ok] == []
    assert last
    expected = {
        "eof": plan.count("lines") + 1,
        "ValueError": plan.count("too-long"),
        "ConnectionResetError": plan.count("reset-mid-line"),
        "eof-partial": plan.count("eof-mid-line"),
    }
    got = {k: endings.count(k) for k in set(endings)}
    assert got == {k: v for k, v in expected.items() if v}
    assert open_fds() == before
