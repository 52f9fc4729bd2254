"""Real libraries, unchanged, on both loops: aiohttp (server and client),
uvicorn serving an ASGI app, websockets, anyio TCP streams, and asyncpg
against a PostgreSQL server this module starts.

The libraries are test extras (``pip install ".[test]"``), never ferrio
dependencies. A library that is not importable skips its test with the
reason; PostgreSQL skips only when no server binary can be found (.ci/run
installs Debian's ``postgresql`` package).
"""

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

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


def _pg_bindir():
    for cand in [os.path.dirname(shutil.which("initdb") or "")] + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), reverse=True
    ):
        if cand and os.path.exists(os.path.join(cand, "initdb")) and os.path.exists(os.path.join(cand, "postgres")):
            return os.path.realpath(cand)
    return None


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth)."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binary (initdb/postgres) found; install Debian's postgresql package")
    root = tempfile.mkdtemp(prefix="ferrio-pg-")
    data = os.path.join(root, "data")
    as_user = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        as_user + [os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc = subprocess.Popen(
        as_user
        + [
            os.path.join(bindir, "postgres"),
            "-D",
            data,
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            root,
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("PostgreSQL did not start")
            time.sleep(0.1)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


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
