"""A TLS echo server (asyncio streams with an SSL context: asyncio's
SSLProtocol over the loop's transport) staying up under a mix of clients
that never complete a proper TLS session, on both loops.

The mix: well-behaved TLS clients (a line echoed upper-cased, every byte
checked), clients that speak plain text to the TLS port, clients that send
random bytes, clients that send the first bytes of a TLS ClientHello and
reset, clients that finish the handshake and reset without closing TLS,
and clients that connect and leave at once. Afterwards a TLS client must
still be served, every well-behaved client must have had its answer, and
the loop's exception handler must have seen exactly what asyncio's own
loop reports for the same mix: nothing (a failed handshake is an OSError,
which asyncio only logs in debug mode). No file descriptor may be left
open.

Bounded: a fixed, seeded number of clients, at most 20 at once, every
await under a timeout; everything on 127.0.0.1.
"""

import asyncio
import random
import socket
import struct

from conftest import open_fds


CLIENTS = 300
CONCURRENT = 20
TIMEOUT = 10


def test_tls_server_survives_misbehaving_clients(loop):
    from conftest import tls_contexts

    server_ctx, client_ctx = tls_contexts()
    served = []

    async def handle(r, w):
        try:
            line = await r.readline()
            if line:
                w.write(line.upper())
                await w.drain()
                served.append(line)
        except (ConnectionError, OSError):
            pass  # resets and TLS failures end the connection, as on asyncio
        finally:
            w.close()

    async def good(port, i):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        msg = b"client %d says hello\n" % i
        w.write(msg)
        got = await r.readline()
        w.close()
        try:
            await w.wait_closed()
        except (ConnectionError, OSError):
            pass
        assert got == msg.upper()
        return "good"

    async def raw(port, payload, reset):
        s = socket.socket()
        s.setblocking(False)
        try:
            await loop.sock_connect(s, ("127.0.0.1", port))
            if payload:
                await loop.sock_sendall(s, payload)
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                # wait for the server to give up on us (it closes), bounded
                try:
                    while await asyncio.wait_for(loop.sock_recv(s, 4096), 2):
                        pass
                except (asyncio.TimeoutError, ConnectionError):
                    pass
        finally:
            s.close()

    async def handshake_then_reset(port):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()

    async def one(port, rng, i):
        kind = rng.choices(
            ["good", "plain", "garbage", "hello_reset", "handshake_reset", "leave"],
            weights=[40, 12, 12, 12, 12, 12],
        )[0]
        if kind == "good":
            return await good(port, i)
        if kind == "plain":
            await raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", reset=False)
        elif kind == "garbage":
            await raw(port, rng.randbytes(rng.randint(1, 4000)), reset=rng.random() < 0.5)
        elif kind == "hello_reset":
            # a TLS handshake record header and part of a ClientHello
            await raw(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(40), reset=True)
        elif kind == "handshake_reset":
            await handshake_then_reset(port)
        else:
            await raw(port, b"", reset=rng.random() < 0.5)
        return kind

    fds_before = open_fds()

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        rng = random.Random(20261205)
        sem = asyncio.Semaphore(CONCURRENT)

        async def bounded(i):
            async with sem:
                return await asyncio.wait_for(one(port, rng, i), TIMEOUT)

        kinds = await asyncio.gather(*(bounded(i) for i in range(CLIENTS)))
        # still serving TLS afterwards
        last = await asyncio.wait_for(good(port, -1), TIMEOUT)
        srv.close()
        await srv.wait_closed()
        # let the server side of aborted connections finish closing
        for _ in range(50):
            await asyncio.sleep(0.01)
        return kinds, last

    kinds, last = loop.run_until_complete(main())
    assert last == "good"
    assert kinds.count("good") > 50 and len(set(kinds)) == 6
    assert len(served) == kinds.count("good") + 1
    assert open_fds() <= fds_before
