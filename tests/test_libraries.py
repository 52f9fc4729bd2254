"""Real libraries, unchanged, on both loops: aiohttp (server and client),
uvicorn serving an ASGI app, httpx's async client (against uvicorn), websockets, anyio TCP streams, asyncpg,
psycopg's async connection and pool and SQLAlchemy's asyncio extension
against a PostgreSQL server this module starts, redis-py's asyncio
client against a Redis server this module starts (TCP and Unix socket),
grpc.aio, hypercorn, aiofiles, and aiodns against a DNS server on the
test's own loop.

The libraries are test extras (``pip install ".[test]"``), never ferrio
dependencies. A library that is not importable skips its test with the
reason; PostgreSQL and Redis skip only when no server binary can be found
(.ci/run installs Debian's ``postgresql`` and ``redis-server`` packages).
"""

import asyncio
import contextlib
import os
import socket
import struct
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


# -- psycopg 3 (async) + PostgreSQL ---------------------------------------------
# psycopg waits on its socket with add_reader/add_writer (not a protocol),
# so it covers a different path of the loop than asyncpg does.


async def _psycopg_connect(psycopg, dsn):
    for _ in range(50):  # the server may still be finishing startup
        try:
            return await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            await asyncio.sleep(0.1)
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


def test_psycopg_async_queries_notify_cancel_copy_pool(loop, postgres):
    psycopg = pytest.importorskip("psycopg")
    psycopg_pool = pytest.importorskip("psycopg_pool")
    dsn = f"postgresql://postgres@127.0.0.1:{postgres}/postgres"

    async def main():
        conn = await _psycopg_connect(psycopg, dsn)
        async with conn:
            rows = await (await conn.execute("SELECT generate_series(1, 5000)")).fetchall()
            # Pipeline mode: 200 queries sent before their results are read.
            async with conn.pipeline():
                curs = [await conn.execute("SELECT %s::int * 3", (i,)) for i in range(200)]
            piped = [(await c.fetchone())[0] for c in curs]
            # LISTEN/NOTIFY: a notification from another connection arrives.
            await conn.execute("LISTEN ferrio_chan")
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as other:
                await other.execute("NOTIFY ferrio_chan, 'hello'")
            gen = conn.notifies(timeout=10)
            payload = None
            async for n in gen:
                payload = n.payload
                break
            await gen.aclose()
            # A query cancelled from the client side while it runs.
            running = asyncio.ensure_future(conn.execute("SELECT pg_sleep(10)"))
            await asyncio.sleep(0.2)
            await conn.cancel_safe()
            with pytest.raises(psycopg.errors.QueryCanceled):
                await running
            # COPY in: 20k rows through the write side, then counted.
            async with conn.cursor() as cur:
                await cur.execute("CREATE TEMP TABLE c (x int, t text)")
                async with cur.copy("COPY c FROM STDIN") as cp:
                    for i in range(20000):
                        await cp.write_row((i, "x" * 20))
                await cur.execute("SELECT count(*), sum(x) FROM c")
                copied = await cur.fetchone()
        # A pool of 4 connections serving 60 concurrent queries.
        async with psycopg_pool.AsyncConnectionPool(dsn, min_size=2, max_size=4, open=False) as pool:
            await pool.open(wait=True, timeout=30)

            async def one(i):
                async with pool.connection() as c:
                    return (await (await c.execute("SELECT %s::int + 1", (i,))).fetchone())[0]

            pooled = await asyncio.gather(*(one(i) for i in range(60)))
        return len(rows), piped, payload, copied, pooled

    n, piped, payload, copied, pooled = loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert n == 5000
    assert piped == [i * 3 for i in range(200)]
    assert payload == "hello"
    assert copied == (20000, sum(range(20000)))
    assert pooled == [i + 1 for i in range(60)]


# -- SQLAlchemy's asyncio extension (greenlets inside tasks) ----------------------


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_sqlalchemy_async_engine(loop, postgres, driver):
    pytest.importorskip("sqlalchemy.ext.asyncio")
    pytest.importorskip("greenlet")
    pytest.importorskip(driver)
    from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    table = f"sa_{driver}_{type(loop).__module__.replace('.', '_')}"

    async def main():
        engine = create_async_engine(
            f"postgresql+{driver}://postgres@127.0.0.1:{postgres}/postgres", pool_size=5, max_overflow=0
        )
        md = MetaData()
        t = Table(table, md, Column("id", Integer, primary_key=True), Column("name", String))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(md.drop_all)
                await conn.run_sync(md.create_all)

            # 60 sessions, each its own transaction, over a pool of 5.
            async def insert(i):
                async with AsyncSession(engine) as s, s.begin():
                    await s.execute(t.insert().values(id=i, name=f"n{i}"))

            await asyncio.gather(*(insert(i) for i in range(60)))
            # A transaction rolled back by an exception leaves nothing.
            with pytest.raises(ZeroDivisionError):
                async with AsyncSession(engine) as s, s.begin():
                    await s.execute(t.insert().values(id=1000, name="gone"))
                    1 / 0
            # A query cancelled while it runs; the pool stays usable.
            async with engine.connect() as conn:
                running = asyncio.ensure_future(conn.execute(text("SELECT pg_sleep(10)")))
                await asyncio.sleep(0.2)
                running.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await running
            async with AsyncSession(engine) as s:
                rows = (await s.execute(select(t).order_by(t.c.id))).all()
                streamed = [r.id async for r in await s.stream(select(t.c.id).order_by(t.c.id))]
            async with engine.begin() as conn:
                await conn.run_sync(md.drop_all)
        finally:
            await engine.dispose()
        return rows, streamed

    rows, streamed = loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert [(r.id, r.name) for r in rows] == [(i, f"n{i}") for i in range(60)]
    assert streamed == list(range(60))


# -- grpc.aio ---------------------------------------------------------------------


def test_grpc_aio_unary_streaming_deadline_cancel(loop):
    grpc = pytest.importorskip("grpc")
    from grpc import aio

    def raw(b):
        return b

    async def reverse(req, ctx):
        return req[::-1]

    async def count(req, ctx):
        for i in range(50):
            yield req + b"%d" % i

    async def upper(requests, ctx):
        async for m in requests:
            yield m.upper()

    async def slow(req, ctx):
        await asyncio.sleep(5)
        return req

    handlers = grpc.method_handlers_generic_handler("ferrio.Test", {
        "Reverse": grpc.unary_unary_rpc_method_handler(reverse, raw, raw),
        "Count": grpc.unary_stream_rpc_method_handler(count, raw, raw),
        "Upper": grpc.stream_stream_rpc_method_handler(upper, raw, raw),
        "Slow": grpc.unary_unary_rpc_method_handler(slow, raw, raw),
    })

    async def main():
        server = aio.server()
        server.add_generic_rpc_handlers((handlers,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                rev = ch.unary_unary("/ferrio.Test/Reverse", raw, raw)
                unary = await asyncio.gather(*(rev(b"abc%d" % i) for i in range(300)))
                counted = [m async for m in ch.unary_stream("/ferrio.Test/Count", raw, raw)(b"x")]

                async def requests():
                    for i in range(100):
                        yield b"m%d" % i

                bidi = [m async for m in ch.stream_stream("/ferrio.Test/Upper", raw, raw)(requests())]
                slow = ch.unary_unary("/ferrio.Test/Slow", raw, raw)
                with pytest.raises(aio.AioRpcError) as err:
                    await slow(b"z", timeout=0.3)
                call = slow(b"z")
                await asyncio.sleep(0.1)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
        finally:
            await server.stop(1)
        return unary, counted, bidi, err.value.code()

    unary, counted, bidi, code = loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert unary == [(b"abc%d" % i)[::-1] for i in range(300)]
    assert counted == [b"x%d" % i for i in range(50)]
    assert bidi == [b"M%d" % i for i in range(100)]
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


# -- hypercorn serving an ASGI app (HTTP/1.1 over asyncio streams) ------------------


def test_hypercorn_serves_asgi_app(loop):
    pytest.importorskip("hypercorn")
    httpx = pytest.importorskip("httpx")
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif m["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        # The body echoed back in two parts.
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        await send({"type": "http.response.body", "body": body[len(body) // 2:]})

    port = servers.free_port()

    async def main():
        cfg = Config()
        cfg.bind = [f"127.0.0.1:{port}"]
        cfg.accesslog = None
        cfg.errorlog = None
        stop = asyncio.Event()
        serving = asyncio.ensure_future(serve(app, cfg, shutdown_trigger=stop.wait))
        try:
            for _ in range(100):
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", port)
                    w.close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            bodies = [os.urandom(n) for n in (0, 1, 1000, 100_000, 1_000_000)] * 4
            async with httpx.AsyncClient(timeout=30) as client:
                replies = await asyncio.gather(
                    *(client.post(f"http://127.0.0.1:{port}/echo", content=b) for b in bodies)
                )
        finally:
            stop.set()
            await asyncio.wait_for(serving, 10)
        return bodies, replies

    bodies, replies = loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert [r.status_code for r in replies] == [200] * len(bodies)
    assert [r.content for r in replies] == bodies


# -- aiofiles (the loop's default executor) ---------------------------------------


def test_aiofiles_read_write(loop, tmp_path):
    aiofiles = pytest.importorskip("aiofiles")
    import aiofiles.os
    path = tmp_path / "data.bin"
    chunks = [os.urandom(4096) for _ in range(100)]

    async def main():
        async with aiofiles.open(path, "wb") as f:
            for c in chunks:
                await f.write(c)
        async with aiofiles.open(path, "rb") as f:
            whole = await f.read()
        async with aiofiles.open(path, "rb") as f:
            lines = [line async for line in f]
        stat = await aiofiles.os.stat(path)
        return whole, b"".join(lines), stat.st_size

    whole, joined, size = loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert whole == joined == b"".join(chunks)
    assert size == 409600


# -- aiodns (c-ares) against a DNS server on the same loop --------------------------


class _DNSServer(asyncio.DatagramProtocol):
    """A tiny DNS server: A records for names under ``ferrio.test`` (the
    address's last byte is the name's label count), NXDOMAIN for any other
    name. Counts the queries it answers."""

    def connection_made(self, transport):
        self.transport = transport
        self.queries = 0

    def datagram_received(self, data, addr):
        self.queries += 1
        qid = struct.unpack("!H", data[:2])[0]
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode())
            i += 1 + data[i]
        question = data[12:i + 5]
        qtype = struct.unpack("!H", data[i + 1:i + 3])[0]
        name = ".".join(labels)
        if name.endswith("ferrio.test") and qtype == 1:
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, len(labels)])
            self.transport.sendto(struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer, addr)
        else:
            rcode = 0 if name.endswith("ferrio.test") else 3
            self.transport.sendto(struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, 0, 0, 0) + question, addr)


def test_aiodns_against_local_dns_server(loop):
    aiodns = pytest.importorskip("aiodns")
    import warnings

    async def main():
        transport, server = await loop.create_datagram_endpoint(_DNSServer, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            resolver = aiodns.DNSResolver(nameservers=[f"127.0.0.1:{port}"], timeout=5, tries=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # query() -> query_dns() in aiodns 4
                answers = await asyncio.gather(*(resolver.query(f"h{i}.x.ferrio.test", "A") for i in range(100)))
                with pytest.raises(aiodns.error.DNSError) as err:
                    await resolver.query("missing.example", "A")
        finally:
            transport.close()
        return answers, err.value.args[0], server.queries

    answers, code, queries = loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert [[a.host for a in ans] for ans in answers] == [["10.0.0.4"]] * 100
    assert code == aiodns.error.ARES_ENOTFOUND
    assert queries >= 101
