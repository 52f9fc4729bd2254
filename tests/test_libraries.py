"""Real libraries, unchanged, on both loops: aiohttp (server and client),
uvicorn serving an ASGI app, httpx's async client (against uvicorn), websockets, anyio TCP streams, asyncpg
against a PostgreSQL server this module starts, and redis-py's asyncio
client against a Redis server this module starts (TCP and Unix socket).

The libraries are test extras (``pip install ".[test]"``), never ferrio
dependencies. A library that is not importable skips its test with the
reason; PostgreSQL and Redis skip only when no server binary can be found
(.ci/run installs Debian's ``postgresql`` and ``redis-server`` packages).
"""

import asyncio
import contextlib
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "suites"))
import servers  # noqa: E402

# -- aiohttp ------------------------------------------------------------------


def test_aiohttp_server_and_client(loop):
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    async def hello(request):
        return web.Response(text="hello " + request.match_info["name"])

    async def echo(request):
        body = await request.read()
        return web.Response(body=body[::-1])

    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            await sock.send_str(msg.data.upper())
        return sock

    async def main():
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        app.router.add_post("/echo", echo)
        app.router.add_get("/ws", ws)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                texts = []
                for i in range(20):  # keep-alive reuse
                    async with s.get(f"{base}/hello/{i}") as r:
                        texts.append(await r.text())
                big = os.urandom(300_000)
                async with s.post(f"{base}/echo", data=big) as r:
                    back = await r.read()
                results = await asyncio.gather(*(s.get(f"{base}/hello/c{i}") for i in range(50)))
                statuses = {r.status for r in results}
                for r in results:
                    r.release()
                async with s.ws_connect(f"{base}/ws") as w:
                    await w.send_str("ping")
                    reply = (await w.receive()).data
            return texts, back == big[::-1], statuses, reply
        finally:
            await runner.cleanup()

    texts, same, statuses, reply = loop.run_until_complete(main())
    assert texts == [f"hello {i}" for i in range(20)]
    assert same and statuses == {200} and reply == "PING"


# -- uvicorn ------------------------------------------------------------------


async def _http_get(port, path, n=1):
    """n sequential keep-alive GETs over one asyncio stream connection."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    bodies = []
    for _ in range(n):
        w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        bodies.append(await r.readexactly(length))
    w.close()
    await w.wait_closed()
    return bodies


def test_uvicorn_serves_asgi_app(loop):
    uvicorn = pytest.importorskip("uvicorn")

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        body = ("asgi " + scope["path"]).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="error", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()
        try:
            one = await _http_get(port, "/a", n=10)
            many = await asyncio.gather(*(_http_get(port, f"/p{i}") for i in range(20)))
        finally:
            server.should_exit = True
            await task
            sock.close()
        return one, many

    one, many = loop.run_until_complete(main())
    assert one == [b"asgi /a"] * 10
    assert many == [[f"asgi /p{i}".encode()] for i in range(20)]


# -- httpx (client) against uvicorn -----------------------------------------------


def test_httpx_client_against_uvicorn(loop):
    uvicorn = pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        path = scope["path"]
        if path == "/echo":  # the request body back, read in pieces
            body = b""
            more = True
            while more:
                msg = await receive()
                body += msg.get("body", b"")
                more = msg.get("more_body", False)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        elif path == "/stream":  # 2 MiB, chunked, in 64 KiB pieces
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(32):
                await send({"type": "http.response.body", "body": bytes([i]) * 65536, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:  # slow: the client times out first
            await asyncio.sleep(1)
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=10)) as client:
                bodies = [bytes([i % 251]) * (64 * 1024 + i) for i in range(50)]
                echoed = await asyncio.gather(*(client.post("/echo", content=b) for b in bodies))
                streamed = []
                async with client.stream("GET", "/stream") as resp:
                    async for piece in resp.aiter_bytes():
                        streamed.append(piece)
                try:
                    await client.get("/slow", timeout=0.2)
                    timed_out = False
                except httpx.ReadTimeout:
                    timed_out = True
                after = await client.post("/echo", content=b"still fine")
        finally:
            server.should_exit = True
            await task
            sock.close()
        return bodies, echoed, b"".join(streamed), timed_out, after

    bodies, echoed, streamed, timed_out, after = loop.run_until_complete(main())
    assert [r.status_code for r in echoed] == [200] * 50
    assert [r.content for r in echoed] == bodies
    assert streamed == b"".join(bytes([i]) * 65536 for i in range(32))
    assert timed_out
    assert after.content == b"still fine"


# -- websockets ---------------------------------------------------------------


def test_websockets_echo(loop):
    pytest.importorskip("websockets")
    try:
        from websockets.asyncio.client import connect
        from websockets.asyncio.server import serve
    except ImportError:  # websockets < 13
        from websockets import connect, serve

    async def handler(ws, *args):
        async for msg in ws:
            await ws.send(msg)

    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                out = []
                for i in range(50):
                    await ws.send(f"m{i}")
                    out.append(await ws.recv())
                big = os.urandom(200_000)
                await ws.send(big)
                back = await ws.recv()
        return out, back == big

    out, same = loop.run_until_complete(main())
    assert out == [f"m{i}" for i in range(50)] and same


# -- anyio --------------------------------------------------------------------


def test_anyio_tcp_streams(loop):
    anyio = pytest.importorskip("anyio")

    async def main():
        results = []
        async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)

            async def serve_one(stream):
                async with stream:
                    async for chunk in stream:
                        await stream.send(chunk.upper())

            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, serve_one)
                for i in range(5):
                    async with await anyio.connect_tcp("127.0.0.1", port) as client:
                        await client.send(b"hello %d" % i)
                        results.append(await client.receive())
                tg.cancel_scope.cancel()
        return results

    assert loop.run_until_complete(main()) == [b"HELLO %d" % i for i in range(5)]


# -- asyncpg + PostgreSQL ------------------------------------------------------


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth); its port."""
    with _server(servers.postgres()) as port:
        yield port


@contextlib.contextmanager
def _server(cm):
    """Enters a tests/suites/servers.py server: skips where none can run
    here, fails where one should have started and did not."""
    with contextlib.ExitStack() as stack:
        try:
            value = stack.enter_context(cm)
        except servers.Unavailable as e:
            pytest.skip(str(e))
        except RuntimeError as e:
            pytest.fail(str(e))
        yield value


def test_asyncpg_queries(loop, postgres):
    asyncpg = pytest.importorskip("asyncpg")

    async def main():
        for _ in range(50):  # the server may still be finishing startup
            try:
                conn = await asyncpg.connect(host="127.0.0.1", port=postgres, user="postgres", database="postgres")
                break
            except (OSError, asyncpg.exceptions.CannotConnectNowError):
                await asyncio.sleep(0.1)
        try:
            one = await conn.fetchval("SELECT 1 + $1::int", 41)
            await conn.execute("CREATE TEMP TABLE t (id int primary key, name text)")
            await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(i, f"n{i}" * 10) for i in range(2000)])
            rows = await conn.fetch("SELECT id, name FROM t ORDER BY id")
            async with conn.transaction():
                await conn.execute("UPDATE t SET name = 'x' WHERE id < 10")
            stmt = await conn.prepare("SELECT count(*) FROM t WHERE name = $1")
            updated = await stmt.fetchval("x")
            big = await conn.fetchval("SELECT repeat('ab', 500000)")
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            host="127.0.0.1", port=postgres, user="postgres", database="postgres", min_size=2, max_size=4
        )
        try:
            vals = await asyncio.gather(*(pool.fetchval("SELECT $1::int * 2", i) for i in range(40)))
        finally:
            await pool.close()
        return one, len(rows), rows[1999]["name"], updated, len(big), vals

    one, n, last, updated, big, vals = loop.run_until_complete(main())
    assert (one, n, last, updated, big) == (42, 2000, "n1999" * 10, 10, 1_000_000)
    assert vals == [i * 2 for i in range(40)]


# -- redis-py (asyncio client) + a Redis server ---------------------------------


@pytest.fixture(scope="module")
def redis_server():
    """A throwaway Redis server on 127.0.0.1 and a Unix socket (no
    persistence); yields (port, unix socket path)."""
    with _server(servers.redis()) as addr:
        yield addr


def test_redis_commands_pipeline_pool(loop, redis_server):
    aioredis = pytest.importorskip("redis.asyncio")
    port, _ = redis_server
    prefix = f"{type(loop).__module__}:"

    async def main():
        # A blocking pool: past 20 connections, commands wait for one.
        pool = aioredis.BlockingConnectionPool(host="127.0.0.1", port=port, max_connections=20, timeout=20)
        r = aioredis.Redis.from_pool(pool)
        try:
            await r.delete(prefix + "n", prefix + "big")
            assert await r.set(prefix + "k", "v")
            got = await r.get(prefix + "k")
            # Many keys at once: one big request and one big reply.
            await r.mset({f"{prefix}m{i}": i for i in range(1000)})
            many = await r.mget([f"{prefix}m{i}" for i in range(1000)])
            async with r.pipeline(transaction=True) as p:
                for i in range(500):
                    p.incr(prefix + "p")
                piped = await p.execute()
            # A 4 MiB value both ways: the write buffer and flow control on
            # the way out, many reads on the way in.
            big = os.urandom(4 << 20)
            await r.set(prefix + "big", big)
            back = await r.get(prefix + "big")
            # 200 concurrent commands over a pool of at most 20 connections.
            await asyncio.gather(*(r.incr(prefix + "n") for _ in range(200)))
            n = int(await r.get(prefix + "n"))
            summed = await r.eval("return tonumber(ARGV[1]) + tonumber(ARGV[2])", 0, 40, 2)
        finally:
            await r.aclose()
        return got, many, piped, back == big, n, summed

    got, many, piped, same, n, summed = loop.run_until_complete(main())
    assert got == b"v"
    assert many == [str(i).encode() for i in range(1000)]
    assert piped[-1] - piped[0] == 499
    assert same
    assert n == 200
    assert summed == 42


def test_redis_pubsub_blocking_and_cancel(loop, redis_server):
    aioredis = pytest.importorskip("redis.asyncio")
    port, path = redis_server
    prefix = f"{type(loop).__module__}:"

    async def main():
        # Over the Unix socket: redis-py's UnixDomainSocketConnection.
        r = aioredis.Redis(unix_socket_path=path)
        pub = aioredis.Redis(host="127.0.0.1", port=port)
        try:
            await r.delete(prefix + "q")
            ps = r.pubsub()
            await ps.subscribe(prefix + "chan")
            first = await ps.get_message(timeout=5)  # the subscribe confirmation
            for i in range(20):
                await pub.publish(prefix + "chan", f"m{i}")
            msgs = []
            while len(msgs) < 20:
                m = await ps.get_message(ignore_subscribe_messages=True, timeout=5)
                assert m is not None, "a published message did not arrive"
                msgs.append(m["data"])
            await ps.unsubscribe()
            await ps.aclose()

            # BLPOP that times out on the server, then one a pusher satisfies.
            empty = await r.blpop([prefix + "q"], timeout=0.2)

            async def push_later():
                await asyncio.sleep(0.1)
                await pub.rpush(prefix + "q", "x")

            pusher = asyncio.ensure_future(push_later())
            popped = await r.blpop([prefix + "q"], timeout=5)
            await pusher
            # A command cancelled mid-wait; the client must stay usable.
            waiting = asyncio.ensure_future(r.blpop([prefix + "never"], timeout=5))
            await asyncio.sleep(0.1)
            waiting.cancel()
            try:
                await waiting
            except asyncio.CancelledError:
                cancelled = True
            else:
                cancelled = False
            after = await r.ping()
        finally:
            for c in (r, pub):
                await c.aclose()
        return first["type"], msgs, empty, popped, cancelled, after

    first, msgs, empty, popped, cancelled, after = loop.run_until_complete(main())
    assert first in ("subscribe", b"subscribe")
    assert msgs == [f"m{i}".encode() for i in range(20)]
    assert empty is None
    assert popped == ((prefix + "q").encode(), b"x")
    assert cancelled and after is True
