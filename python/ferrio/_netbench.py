"""``python -m ferrio bench net``: echo servers on every loop, measured from
outside.

Each server runs in its own process (``python -m ferrio._netbench serve``)
on loopback; the load comes from ``netload``, a small Rust program in
``benches/netload`` (built with cargo on first use) that keeps one request
in flight per connection and checks every echoed byte. A raw Rust epoll
echo server (``netload server``) is the floor.

Server modes:
  protocol  asyncio.Protocol: data_received -> transport.write
  buffered  asyncio.BufferedProtocol: get_buffer/buffer_updated -> write
  streams   asyncio.start_server: reader.read -> writer.write + drain
  sock      loop.sock_accept / sock_recv / sock_sendall, a task per client
  udp       asyncio.DatagramProtocol: datagram_received -> transport.sendto
  udp_sock  loop.sock_recvfrom / sock_sendto on one socket (3.11+)
  aiohttp   an aiohttp.web app: POST /echo answers with the request body
  uvicorn   the same as a bare ASGI app under uvicorn (httptools parser
            when installed, else h11)

The two HTTP modes are what a web service puts on the loop per request
(HTTP parsing, the framework, one task per request in aiohttp); they run
when aiohttp / uvicorn are installed (``pip install ".[bench]"``) and are
not in the default set. Their client is ``netload http-client``
(keep-alive, the response body checked byte by byte); there is no raw
floor for them.

The TCP modes are measured against ``netload server``, the UDP ones
against ``netload udp-server`` (both raw epoll servers); a UDP "connection"
is one client socket with one datagram in flight. UDP server sockets get
4 MiB buffers on every server (``UDP_BUFFER``) so loopback drops stay rare;
the ``lost`` column counts datagrams the client had to send again.

Reported per (mode, size, connections) and loop: requests/s, p50/p99
latency and the server's CPU time per request: its threads' run time
(/proc/<pid>/task/*/schedstat, nanoseconds; user+sys from /proc/<pid>/stat
in clock ticks where schedstat is missing) over the whole client run,
divided by every request the client completed (warm-up included on both
sides). Repeats are interleaved across loops and
the median is reported. Nothing here is a test.

``--instructions`` measures something else, without this VM's noise: each
server runs under valgrind's callgrind, and a row reports the user-space
instructions it executed per request (counters zeroed after a warm-up
run, dumped after the measured one; ``callgrind_control -z``/``-d``).
Kernel work (the syscalls, the same on every loop) is not counted, so the
figure is the loop's own cost per request plus the Python it runs; with
one connection (the default there) every request takes the same path and
the count repeats to within a few parts in a thousand. Time under
valgrind is meaningless; only the counts are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

TCP_MODES = ("protocol", "buffered", "streams", "sock")
UDP_MODES = ("udp", "udp_sock")
HTTP_MODES = ("aiohttp", "uvicorn")
MODES = TCP_MODES + UDP_MODES + HTTP_MODES
# Run unless --modes says otherwise: udp_sock is one serial coroutine, a
# measure of sock_recvfrom/sock_sendto more than of a server anyone runs;
# the HTTP modes need the bench extras and measure the frameworks mostly.
DEFAULT_MODES = TCP_MODES + ("udp",)
# Receive and send buffer of every UDP server socket (raw one included).
UDP_BUFFER = 4 << 20
# The largest UDP payload over IPv4.
UDP_MAX = 65507
READ_SIZE = 256 * 1024

# -- servers (run in the child process) ---------------------------------------


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transport = None


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray(READ_SIZE)
        self.view = memoryview(self.buffer)

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        self.transport.write(self.view[:nbytes])

    def connection_lost(self, exc):
        self.transport = None


async def _stream_handler(reader, writer):
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _sock_client(loop, conn):
    try:
        while True:
            data = await loop.sock_recv(conn, READ_SIZE)
            if not data:
                break
            await loop.sock_sendall(conn, data)
    except ConnectionError:
        pass
    finally:
        conn.close()


class EchoDatagramProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def _udp_socket(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UDP_BUFFER)
    s.bind((host, 0))
    s.setblocking(False)
    return s


async def _serve_udp(mode: str, host: str) -> None:
    loop = asyncio.get_running_loop()
    sock = _udp_socket(host)
    if mode == "udp":
        await loop.create_datagram_endpoint(EchoDatagramProtocol, sock=sock)
        print(sock.getsockname()[1], flush=True)
        await loop.create_future()
    # uvloop's and rloop's sock_recvfrom raise NotImplementedError when
    # awaited: probe before printing the port (nothing can arrive yet), so
    # the driver skips this loop instead of measuring a dead server.
    probe = loop.create_task(loop.sock_recvfrom(sock, 1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    if probe.done() and isinstance(probe.exception(), NotImplementedError):
        # A line that is not a port, and a normal return: rloop swallows a
        # SystemExit raised in a task and would keep the process alive.
        print(f"udp_sock: {type(loop).__name__} has no sock_recvfrom", flush=True)
        return
    probe.cancel()
    try:
        await probe
    except asyncio.CancelledError:
        pass
    print(sock.getsockname()[1], flush=True)
    while True:
        data, addr = await loop.sock_recvfrom(sock, 65536)
        await loop.sock_sendto(sock, data, addr)


def _unavailable(mode: str, why: str) -> None:
    """A line that is not a port: the driver drops this server."""
    print(f"{mode}: {why}", flush=True)


async def _serve_aiohttp(host: str) -> None:
    try:
        from aiohttp import web
    except ImportError:
        _unavailable("aiohttp", "aiohttp is not installed")
        return

    async def echo(request):
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, backlog=1024)
    await site.start()
    server = site._server  # aiohttp has no public accessor for the port
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().create_future()


async def _echo_asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": bytes(body)})


async def _serve_uvicorn(host: str) -> None:
    try:
        import uvicorn
    except ImportError:
        _unavailable("uvicorn", "uvicorn is not installed")
        return
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    config = uvicorn.Config(
        _echo_asgi,
        host=host,
        port=0,
        http=http,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=1024,
    )
    server = uvicorn.Server(config)
    # No signal capture: the driver ends the process with SIGTERM, handled
    # in serve_main, without uvicorn's graceful shutdown.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    # uvicorn binds as `uvicorn.run` does (loop.create_server with host and
    # port, so accepted sockets get TCP_NODELAY on every loop; a socket
    # made with `socket.socket()` has proto 0, and asyncio's transport then
    # leaves Nagle on).
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    print(server.servers[0].sockets[0].getsockname()[1], flush=True)
    await task


async def _serve(mode: str, host: str) -> None:
    loop = asyncio.get_running_loop()
    if mode in UDP_MODES:
        await _serve_udp(mode, host)
        return
    if mode == "aiohttp":
        await _serve_aiohttp(host)
        return
    if mode == "uvicorn":
        await _serve_uvicorn(host)
        return
    if mode == "protocol":
        server = await loop.create_server(EchoProtocol, host, 0, backlog=1024)
    elif mode == "buffered":
        server = await loop.create_server(EchoBufferedProtocol, host, 0, backlog=1024)
    elif mode == "streams":
        server = await asyncio.start_server(_stream_handler, host, 0, backlog=1024)
    elif mode == "sock":
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, 0))
        lsock.listen(1024)
        lsock.setblocking(False)
        print(lsock.getsockname()[1], flush=True)
        tasks = set()
        while True:
            conn, _ = await loop.sock_accept(lsock)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setblocking(False)
            t = loop.create_task(_sock_client(loop, conn))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    print(server.sockets[0].getsockname()[1], flush=True)
    # Not `async with server: await server.serve_forever()`: on rloop 0.5
    # that stops the listener. The server already serves since creation.
    await loop.create_future()


def serve_main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m ferrio._netbench serve")
    p.add_argument("--loop", required=True)
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args(argv)
    from ._bench import available_loops

    factory = available_loops()[args.loop]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(args.mode, args.host))
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


# -- driver -------------------------------------------------------------------


def _repo_root() -> Optional[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    if os.path.exists(os.path.join(root, "benches", "netload", "Cargo.toml")):
        return root
    return None


def netload_binary() -> str:
    """Path of the netload binary, built with cargo if needed."""
    env = os.environ.get("FERRIO_NETLOAD")
    if env:
        return env
    root = _repo_root()
    if root is None:
        raise SystemExit(
            "bench net needs the ferrio source tree (benches/netload) or FERRIO_NETLOAD=<path to netload>"
        )
    manifest = os.path.join(root, "benches", "netload", "Cargo.toml")
    binary = os.path.join(root, "benches", "netload", "target", "release", "netload")
    cargo = shutil.which("cargo")
    if cargo is None and not os.path.exists(binary):
        raise SystemExit("bench net needs cargo to build benches/netload")
    if cargo is not None:
        subprocess.run(
            [cargo, "build", "--release", "--quiet", "--manifest-path", manifest],
            check=True,
        )
    return binary


_SCHEDSTAT = os.path.exists("/proc/self/schedstat")


def cpu_seconds(pid: int) -> float:
    """CPU time the process has run so far, in seconds.

    The sum of its threads' run time from schedstat (nanoseconds): the
    user+sys ticks of /proc/<pid>/stat move in 10 ms steps, ~0.5% of a
    2-second row, which is noise next to a "within 5%" target. A thread
    that exits takes its schedstat with it; the bench servers' threads live
    as long as the server. Without schedstat (a kernel built without it)
    the ticks are used.
    """
    if _SCHEDSTAT:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:
                continue  # the thread exited since listdir
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, loop: str, mode: str, netload: str, callgrind_dir: Optional[str] = None):
        self.name = loop
        self.mode = mode
        self.callgrind_dir = callgrind_dir
        if loop == "raw":
            kind = "udp-server" if mode in UDP_MODES else "server"
            cmd = [netload, kind, "127.0.0.1:0"]
        else:
            cmd = [sys.executable, "-m", "ferrio._netbench", "serve", "--loop", loop, "--mode", mode]
        if callgrind_dir is not None:
            out = os.path.join(callgrind_dir, f"{loop}-{mode}.%p")
            cmd = ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={out}"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = ""
        # Bounded: a server that hangs before printing its port must not
        # hang the bench (valgrind starts Python ~20x slower).
        wait = 30 if callgrind_dir is None else 300
        if self.proc.stdout and select.select([self.proc.stdout], [], [], wait)[0]:
            line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            why = f": {line.strip()}" if line.strip() else ""
            raise RuntimeError(f"server {loop}/{mode} failed to start{why}")
        self.port = int(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _client(netload: str, server: Server, conns: int, size: int, seconds: float, warmup: float) -> dict:
    """One netload run against `server`: its JSON report."""
    kind = "udp-client" if server.mode in UDP_MODES else "http-client" if server.mode in HTTP_MODES else "client"
    out = subprocess.run(
        [netload, kind, f"127.0.0.1:{server.port}", str(conns), str(size), str(seconds), str(warmup)],
        capture_output=True,
        text=True,
        timeout=seconds + warmup + 60,
    )
    if server.proc.poll() is not None:
        raise RuntimeError(f"server {server.name}/{server.mode} died during the run")
    if out.returncode != 0:
        raise RuntimeError(f"netload failed against {server.name}/{server.mode}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def run_client(netload: str, server: Server, conns: int, size: int, seconds: float, warmup: float) -> dict:
    cpu0 = cpu_seconds(server.proc.pid)
    res = _client(netload, server, conns, size, seconds, warmup)
    cpu1 = cpu_seconds(server.proc.pid)
    # Every completed request, warm-up included (the CPU window covers the
    # whole client run); older netload builds only report the measured ones.
    total = res.get("all_requests") or res["rps"] * (seconds + warmup)
    res["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / max(total, 1.0)
    return res


def _callgrind_control(flag: str, pid: int) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True, timeout=120)


def _newest_dump_total(server: Server) -> int:
    """Instructions in the server's newest callgrind dump (its
    ``summary:`` line, or ``totals:``)."""
    assert server.callgrind_dir is not None
    prefix = f"{server.name}-{server.mode}.{server.proc.pid}."
    deadline = time.monotonic() + 60
    while True:
        parts = [f for f in os.listdir(server.callgrind_dir) if f.startswith(prefix)]
        parts.sort(key=lambda f: int(f.rsplit(".", 1)[1]))
        if parts:
            path = os.path.join(server.callgrind_dir, parts[-1])
            with open(path) as f:
                text = f.read()
            for key in ("summary:", "totals:"):
                for line in text.splitlines():
                    if line.startswith(key):
                        return int(line.split()[1])
        if time.monotonic() > deadline:
            raise RuntimeError(f"no callgrind dump from {server.name}/{server.mode}")
        time.sleep(0.2)


def run_client_instructions(netload: str, server: Server, conns: int, size: int, seconds: float, warmup: float) -> dict:
    """One measured client run against a server under callgrind: the
    user-space instructions it ran per request, warm-up excluded (a
    client run of its own, before the counters are zeroed)."""
    _client(netload, server, conns, size, warmup, 0)
    _callgrind_control("-z", server.proc.pid)
    res = _client(netload, server, conns, size, seconds, 0)
    _callgrind_control("-d", server.proc.pid)
    total = res.get("all_requests") or res["requests"]
    res["instr_per_req"] = _newest_dump_total(server) / max(total, 1)
    return res


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ferrio bench net", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 KiB and 100 KiB, 10 connections, short runs, 3 repeats")
    p.add_argument("--repeat", type=int, default=None, help="repeats (median reported); default 3")
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 2, 1 with --quick)")
    p.add_argument(
        "--modes",
        default=",".join(DEFAULT_MODES),
        help=f"of {', '.join(MODES)}; default {','.join(DEFAULT_MODES)}",
    )
    p.add_argument("--sizes", default=None, help="message sizes in bytes (default 1024,10240,102400)")
    p.add_argument("--conns", default=None, help="concurrent connections (default 1,10,100)")
    p.add_argument("--loops", default=None, help="subset of loops (raw = the Rust floor)")
    p.add_argument(
        "--instructions",
        action="store_true",
        help="user-space instructions per request under callgrind instead of CPU time "
        "(needs valgrind; default 1 connection, 1 repeat, 1 KiB and 100 KiB)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.instructions and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        raise SystemExit("bench net --instructions needs valgrind (apt-get install valgrind)")

    from ._bench import available_loops, loop_versions

    loops = ["raw"] + list(available_loops())
    if args.loops:
        wanted = [x.strip() for x in args.loops.split(",") if x.strip()]
        unknown = [x for x in wanted if x not in loops]
        if unknown:
            p.error(f"unknown or unavailable loops: {', '.join(unknown)}")
        loops = [x for x in loops if x in wanted]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}")
    quick_sizes = args.quick or args.instructions
    sizes = [int(x) for x in (args.sizes or ("1024,102400" if quick_sizes else "1024,10240,102400")).split(",")]
    default_conns = "1" if args.instructions else "10" if args.quick else "1,10,100"
    conns = [int(x) for x in (args.conns or default_conns).split(",")]
    repeat = args.repeat or (1 if args.instructions else 3)
    seconds = args.seconds or (1.0 if args.quick else 2.0)
    warmup = 0.3 if args.quick else 0.5
    metric = "instr_per_req" if args.instructions else "cpu_us_per_req"
    measure = run_client_instructions if args.instructions else run_client
    callgrind_dir = None
    if args.instructions:
        import tempfile

        callgrind_dir = tempfile.mkdtemp(prefix="ferrio-callgrind-")

    netload = netload_binary()
    servers: Dict[Tuple[str, str], Server] = {}
    results = []
    try:
        skipped = []
        for mode in modes:
            for lp in loops_for(mode, loops):
                key = server_key(lp, mode)
                if key in servers:
                    continue
                try:
                    servers[key] = Server(lp, mode, netload, callgrind_dir)
                except RuntimeError as e:
                    # A loop without this mode (e.g. no datagram support)
                    # drops out of that mode's rows, not out of the run.
                    skipped.append(str(e))
        if not args.json and args.instructions:
            print(
                f"ferrio bench net --instructions: echo, median of {repeat} runs of {seconds:g}s under callgrind; "
                "ins = server user-space instructions per request; ratios ferrio/other (<1 = ferrio runs fewer)"
            )
        elif not args.json:
            print(
                f"ferrio bench net: echo, median of {repeat} runs of {seconds:g}s; "
                "cpu = server user+sys µs per request; ratios ferrio/other (<1 = ferrio uses less CPU)"
            )
            print("versions: " + ", ".join(f"{k} {v}" for k, v in loop_versions().items()))
            for msg in skipped:
                print(f"skipped: {msg}")
        for mode in modes:
            mode_loops = [lp for lp in loops_for(mode, loops) if server_key(lp, mode) in servers]
            for size in sizes:
                if mode in UDP_MODES and size > UDP_MAX:
                    if not args.json:
                        print(f"{mode:<8} {size // 1024:>3}KiB: skipped, larger than a UDP datagram")
                    continue
                for c in conns:
                    samples: Dict[str, List[dict]] = {lp: [] for lp in mode_loops}
                    for _ in range(repeat):
                        for lp in list(mode_loops):
                            srv = servers[server_key(lp, mode)]
                            try:
                                samples[lp].append(measure(netload, srv, c, size, seconds, warmup))
                            except RuntimeError as e:
                                # A server that dies mid-run leaves the
                                # table (said once) rather than ending it.
                                if not args.json:
                                    print(f"dropped: {e}", flush=True)
                                mode_loops.remove(lp)
                                del samples[lp]
                                del servers[server_key(lp, mode)]
                                srv.stop()
                    row = {"mode": mode, "size": size, "conns": c, "loops": {}}
                    for lp, ss in samples.items():
                        row["loops"][lp] = {
                            k: statistics.median(s.get(k, 0) for s in ss)
                            for k in ("rps", "p50_us", "p99_us", metric, "lost")
                        }
                    results.append(row)
                    if not args.json:
                        print(format_row(row, mode_loops, metric), flush=True)
    finally:
        for s in servers.values():
            s.stop()
        if callgrind_dir is not None:
            shutil.rmtree(callgrind_dir, ignore_errors=True)
    if args.json:
        json.dump(
            {"versions": loop_versions(), "python": platform.python_version(), "repeat": repeat, "results": results},
            sys.stdout,
            indent=2,
        )
        print()
    return 0


def loops_for(mode: str, loops: List[str]) -> List[str]:
    """The loops that serve `mode`: the HTTP modes have no raw floor."""
    return [lp for lp in loops if not (lp == "raw" and mode in HTTP_MODES)]


def server_key(lp: str, mode: str) -> Tuple[str, str]:
    """One raw server per transport, one Python server per (loop, mode)."""
    if lp == "raw":
        return (lp, "raw-udp" if mode in UDP_MODES else "raw-tcp")
    return (lp, mode)


def format_row(row: dict, loops: List[str], metric: str = "cpu_us_per_req") -> str:
    head = f"{row['mode']:<8} {row['size'] // 1024:>3}KiB x{row['conns']:<3}"
    parts = []
    f = row["loops"].get("ferrio")
    short = "ins" if metric == "instr_per_req" else "cpu"
    for lp in loops:
        r = row["loops"][lp]
        if metric == "instr_per_req":
            # Rates and latencies under valgrind mean nothing.
            parts.append(f"{lp} ins {r[metric]:,.0f}")
            continue
        lost = f" lost {r['lost']:g}" if r.get("lost") else ""
        parts.append(
            f"{lp} {r['rps'] / 1000:.1f}k/s p50 {r['p50_us']:.0f} p99 {r['p99_us']:.0f}us cpu {r[metric]:.2f}{lost}"
        )
    ratios = []
    if f:
        for lp in loops:
            if lp != "ferrio":
                o = row["loops"][lp][metric]
                ratios.append(f"{short}/{lp} {f[metric] / o:.2f}" if o else f"{short}/{lp} -")
    return head + " | " + " | ".join(parts) + ("  [" + ", ".join(ratios) + "]" if ratios else "")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve_main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
