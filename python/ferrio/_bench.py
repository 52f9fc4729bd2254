"""``python -m ferrio bench``: loop micro-benchmarks, every loop in one run.

Each workload runs on asyncio's own loop, ferrio, and uvloop / rloop when
they are importable (they are bench extras, never ferrio dependencies).
Repeats are interleaved across loops (loop A, B, C, A, B, C, ...) so machine
drift hits every loop alike; the median of the repeats is reported as ops/s
with ferrio's ratio to each other loop (>1 means ferrio is faster).

Timing covers the workload only: loop creation, closing and input
preparation are outside the timed region. Nothing here is a test: speed is
never asserted, only reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import random
import socket
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List, Optional

perf = time.perf_counter

# -- loops -------------------------------------------------------------------


def available_loops() -> Dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: Dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.SelectorEventLoop,
    }
    try:
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    except ImportError:
        pass
    try:
        import rloop

        loops["rloop"] = rloop.new_event_loop
    except ImportError:
        pass
    import ferrio

    loops["ferrio"] = ferrio.new_event_loop
    return loops


def loop_versions() -> Dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("uvloop", "rloop", "ferrio"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        ver = getattr(mod, "__version__", None)
        if ver is None:
            try:
                from importlib.metadata import version

                ver = version(name)
            except Exception:
                ver = "?"
        out[name] = ver
    return out


# -- workloads ------------------------------------------------------------------
# Each takes (loop, n) and returns the elapsed seconds for n operations.


def _noop(*args):
    return None


def wl_call_soon(loop, n):
    cs = loop.call_soon
    cb = _noop
    t0 = perf()
    for _ in range(n):
        cs(cb)
    cs(loop.stop)
    loop.run_forever()
    return perf() - t0


def wl_call_soon_chain(loop, n):
    cs = loop.call_soon
    left = n

    def cb():
        nonlocal left
        left -= 1
        if left:
            cs(cb)
        else:
            loop.stop()

    t0 = perf()
    cs(cb)
    loop.run_forever()
    return perf() - t0


def wl_sleep0(loop, n):
    async def main():
        sleep = asyncio.sleep
        for _ in range(n):
            await sleep(0)

    coro = main()
    t0 = perf()
    loop.run_until_complete(coro)
    return perf() - t0


def wl_tasks_gather(loop, n):
    async def child():
        return None

    async def main():
        ct = loop.create_task
        await asyncio.gather(*[ct(child()) for _ in range(n)])

    coro = main()
    t0 = perf()
    loop.run_until_complete(coro)
    return perf() - t0


def wl_call_later(loop, n):
    rnd = random.Random(1234)
    delays = [rnd.random() * 0.001 for _ in range(n)]
    cl = loop.call_later
    left = n

    def cb():
        nonlocal left
        left -= 1
        if not left:
            loop.stop()

    t0 = perf()
    for d in delays:
        cl(d, cb)
    loop.run_forever()
    return perf() - t0


def wl_timer_cancel(loop, n):
    cl = loop.call_later
    t0 = perf()
    handles = [cl(3600.0, _noop) for _ in range(n)]
    for h in handles:
        h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    return perf() - t0


def wl_threadsafe(loop, n):
    cst = loop.call_soon_threadsafe
    left = n

    def cb():
        nonlocal left
        left -= 1
        if not left:
            loop.stop()

    def producer():
        for _ in range(n):
            cst(cb)

    th = threading.Thread(target=producer)
    t0 = perf()
    loop.call_soon(th.start)
    loop.run_forever()
    dt = perf() - t0
    th.join()
    return dt


def _warm_executor(loop):
    loop.run_until_complete(loop.run_in_executor(None, _noop))


def wl_executor_gather(loop, n):
    _warm_executor(loop)

    async def main():
        rie = loop.run_in_executor
        await asyncio.gather(*[rie(None, _noop) for _ in range(n)])

    coro = main()
    t0 = perf()
    loop.run_until_complete(coro)
    return perf() - t0


def wl_executor_single(loop, n):
    _warm_executor(loop)

    async def main():
        rie = loop.run_in_executor
        for _ in range(n):
            await rie(None, _noop)

    coro = main()
    t0 = perf()
    loop.run_until_complete(coro)
    return perf() - t0


def wl_sock_udp(loop, n):
    """UDP ping-pong on one loop: ``sock_sendto`` + ``sock_recvfrom`` on
    both ends, 100-byte datagrams, loopback. A loop without these methods
    (rloop 0.5) raises NotImplementedError: its column reads n/a."""
    if not hasattr(loop, "sock_recvfrom"):  # asyncio before 3.11
        raise NotImplementedError("sock_recvfrom")
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        a_addr = a.getsockname()
        payload = b"x" * 100

        async def echo():
            for _ in range(n):
                data, addr = await loop.sock_recvfrom(a, 2048)
                await loop.sock_sendto(a, data, addr)

        async def client():
            for _ in range(n):
                await loop.sock_sendto(b, payload, a_addr)
                await loop.sock_recvfrom(b, 2048)

        async def main():
            tasks = {loop.create_task(echo()), loop.create_task(client())}
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            errors = [t.exception() for t in done if t.exception() is not None]
            if errors:
                raise errors[0]

        coro = main()
        t0 = perf()
        loop.run_until_complete(coro)
        return perf() - t0
    finally:
        a.close()
        b.close()


# name -> (function, full n, quick n, description)
WORKLOADS = {
    "call_soon": (wl_call_soon, 1_000_000, 200_000, "1M call_soon, then run them"),
    "call_soon_chain": (wl_call_soon_chain, 1_000_000, 200_000, "each callback schedules the next"),
    "sleep0": (wl_sleep0, 500_000, 100_000, "await asyncio.sleep(0) in one task"),
    "tasks_gather": (wl_tasks_gather, 200_000, 50_000, "200k tasks + gather"),
    "call_later": (wl_call_later, 300_000, 100_000, "call_later, random 0-1 ms delays"),
    "timer_cancel": (wl_timer_cancel, 300_000, 100_000, "create then cancel 300k timers"),
    "threadsafe": (wl_threadsafe, 500_000, 100_000, "call_soon_threadsafe from a 2nd thread"),
    "executor_gather": (wl_executor_gather, 20_000, 5_000, "gathered run_in_executor"),
    "executor_single": (wl_executor_single, 5_000, 2_000, "sequence of awaited run_in_executor"),
    "sock_udp": (wl_sock_udp, 20_000, 5_000, "UDP ping-pong with sock_sendto/sock_recvfrom"),
}


def run_one(factory, fn, n) -> float:
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        gc.collect()
        return fn(loop, n)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        except Exception:
            pass
        loop.close()
        asyncio.set_event_loop(None)


def run_bench(
    workloads: List[str],
    loops: Dict[str, Callable],
    repeat: int,
    quick: bool,
    progress: Optional[Callable[[str], None]] = None,
) -> dict:
    results = {}
    for wname in workloads:
        fn, n_full, n_quick, desc = WORKLOADS[wname]
        n = n_quick if quick else n_full
        samples: Dict[str, List[float]] = {name: [] for name in loops}
        for _ in range(repeat):
            for lname, factory in loops.items():
                try:
                    dt = run_one(factory, fn, n)
                except NotImplementedError:
                    samples[lname].append(float("nan"))
                    continue
                samples[lname].append(n / dt)
        med = {lname: statistics.median(v) for lname, v in samples.items()}
        results[wname] = {"n": n, "description": desc, "ops_per_sec": med, "samples": samples}
        if progress:
            progress(format_row(wname, med, list(loops)))
    return results


def _fmt_ops(v: float) -> str:
    if v != v:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def header(loop_names: List[str]) -> str:
    cols = [f"{'workload':<17}"] + [f"{n:>9}" for n in loop_names]
    others = [n for n in loop_names if n != "ferrio"]
    cols += [f"{'vs ' + n:>11}" for n in others]
    return " ".join(cols)


def format_row(wname: str, med: Dict[str, float], loop_names: List[str]) -> str:
    cols = [f"{wname:<17}"] + [f"{_fmt_ops(med[n]):>9}" for n in loop_names]
    f = med.get("ferrio")
    for n in loop_names:
        if n == "ferrio":
            continue
        ratio = f / med[n] if f and med[n] else float("nan")
        cols.append(f"{'n/a':>11}" if ratio != ratio else f"{ratio:>10.2f}x")
    return " ".join(cols)


def pick_workloads(p: argparse.ArgumentParser, arg: Optional[str], known) -> List[str]:
    """The ``--workloads`` subset (all when not given); unknown names are
    a usage error."""
    if not arg:
        return list(known)
    workloads = [x.strip() for x in arg.split(",") if x.strip()]
    unknown = [x for x in workloads if x not in known]
    if unknown:
        p.error(f"unknown workloads: {', '.join(unknown)}")
    return workloads


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ferrio bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller inputs and 3 repeats")
    p.add_argument("--repeat", type=int, default=None, help="repeats per loop (median reported); default 5, 3 with --quick")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--loops", default=None, help="comma-separated subset of loops")
    p.add_argument("--workloads", default=None, help="comma-separated subset of: " + ", ".join(WORKLOADS))
    args = p.parse_args(argv)

    loops = available_loops()
    if args.loops:
        wanted = [x.strip() for x in args.loops.split(",") if x.strip()]
        unknown = [x for x in wanted if x not in loops]
        if unknown:
            p.error(f"unknown or unavailable loops: {', '.join(unknown)} (available: {', '.join(loops)})")
        loops = {k: v for k, v in loops.items() if k in wanted}
    workloads = pick_workloads(p, args.workloads, WORKLOADS)
    repeat = args.repeat or (3 if args.quick else 5)
    if repeat < 1:
        p.error("--repeat must be at least 1")

    names = list(loops)
    progress = None
    if not args.json:
        vers = loop_versions()
        print("ferrio bench: ops/s, median of %d; ratios are ferrio / other (>1 = ferrio faster)" % repeat)
        print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
        print(header(names))
        progress = lambda line: print(line, flush=True)  # noqa: E731
    results = run_bench(workloads, loops, repeat, args.quick, progress)
    if args.json:
        json.dump({"versions": loop_versions(), "repeat": repeat, "results": results}, sys.stdout, indent=2)
        print()
    return 0
