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

Reported per (mode, size, connections) and loop: requests/s, p50/p99
latency and the server's CPU time per request, user+sys from
/proc/<pid>/stat over the whole client run divided by the requests it made
(warm-up included on both sides). Repeats are interleaved across loops and
the median is reported. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

MODES = ("protocol", "buffered", "streams", "sock")
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


async def _serve(mode: str, host: str) -> None:
    loop = asyncio.get_running_loop()
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


def cpu_seconds(pid: int) -> float:
    """user+sys CPU time of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, loop: str, mode: str, netload: str):
        self.name = loop
        self.mode = mode
        if loop == "raw":
            cmd = [netload, "server", "127.0.0.1:0"]
        else:
            cmd = [sys.executable, "-m", "ferrio._netbench", "serve", "--loop", loop, "--mode", mode]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"server {loop}/{mode} failed to start")
        self.port = int(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_client(netload: str, server: Server, conns: int, size: int, seconds: float, warmup: float) -> dict:
    cpu0 = cpu_seconds(server.proc.pid)
    out = subprocess.run(
        [netload, "client", f"127.0.0.1:{server.port}", str(conns), str(size), str(seconds), str(warmup)],
        capture_output=True,
        text=True,
        timeout=seconds + warmup + 60,
    )
    cpu1 = cpu_seconds(server.proc.pid)
    if out.returncode != 0:
        raise RuntimeError(f"netload failed against {server.name}/{server.mode}: {out.stderr.strip()}")
    res = json.loads(out.stdout)
    total = res["rps"] * (seconds + warmup)
    res["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / max(total, 1.0)
    return res


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ferrio bench net", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 KiB and 100 KiB, 10 connections, short runs, 3 repeats")
    p.add_argument("--repeat", type=int, default=None, help="repeats (median reported); default 3")
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 2, 1 with --quick)")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--sizes", default=None, help="message sizes in bytes (default 1024,10240,102400)")
    p.add_argument("--conns", default=None, help="concurrent connections (default 1,10,100)")
    p.add_argument("--loops", default=None, help="subset of loops (raw = the Rust floor)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

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
    sizes = [int(x) for x in (args.sizes or ("1024,102400" if args.quick else "1024,10240,102400")).split(",")]
    conns = [int(x) for x in (args.conns or ("10" if args.quick else "1,10,100")).split(",")]
    repeat = args.repeat or 3
    seconds = args.seconds or (1.0 if args.quick else 2.0)
    warmup = 0.3 if args.quick else 0.5

    netload = netload_binary()
    servers: Dict[Tuple[str, str], Server] = {}
    results = []
    try:
        for mode in modes:
            for lp in loops:
                key = (lp, "raw" if lp == "raw" else mode)
                if key not in servers:
                    servers[key] = Server(lp, mode, netload)
        if not args.json:
            print(
                f"ferrio bench net: echo, median of {repeat} runs of {seconds:g}s; "
                "cpu = server user+sys µs per request; ratios ferrio/other (<1 = ferrio uses less CPU)"
            )
            print("versions: " + ", ".join(f"{k} {v}" for k, v in loop_versions().items()))
        for mode in modes:
            for size in sizes:
                for c in conns:
                    samples: Dict[str, List[dict]] = {lp: [] for lp in loops}
                    for _ in range(repeat):
                        for lp in loops:
                            srv = servers[(lp, "raw" if lp == "raw" else mode)]
                            samples[lp].append(run_client(netload, srv, c, size, seconds, warmup))
                    row = {"mode": mode, "size": size, "conns": c, "loops": {}}
                    for lp, ss in samples.items():
                        row["loops"][lp] = {
                            k: statistics.median(s[k] for s in ss)
                            for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req")
                        }
                    results.append(row)
                    if not args.json:
                        print(format_row(row, loops), flush=True)
    finally:
        for s in servers.values():
            s.stop()
    if args.json:
        json.dump(
            {"versions": loop_versions(), "python": platform.python_version(), "repeat": repeat, "results": results},
            sys.stdout,
            indent=2,
        )
        print()
    return 0


def format_row(row: dict, loops: List[str]) -> str:
    head = f"{row['mode']:<8} {row['size'] // 1024:>3}KiB x{row['conns']:<3}"
    parts = []
    f = row["loops"].get("ferrio")
    for lp in loops:
        r = row["loops"][lp]
        parts.append(
            f"{lp} {r['rps'] / 1000:.1f}k/s p50 {r['p50_us']:.0f} p99 {r['p99_us']:.0f}us cpu {r['cpu_us_per_req']:.2f}"
        )
    ratios = []
    if f:
        for lp in loops:
            if lp != "ferrio":
                o = row["loops"][lp]["cpu_us_per_req"]
                ratios.append(f"cpu/{lp} {f['cpu_us_per_req'] / o:.2f}" if o else f"cpu/{lp} -")
    return head + " | " + " | ".join(parts) + ("  [" + ", ".join(ratios) + "]" if ratios else "")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve_main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
