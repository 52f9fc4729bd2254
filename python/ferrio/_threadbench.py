"""``python -m ferrio bench threads``: the thread layer against the stdlib.

Executor workloads (issue #4, section 5), each run with the stdlib's tool
and ferrio's in one process, repeats interleaved, median reported as ops/s
with ferrio's ratio (>1 = ferrio faster):

* ``rie_single``: one awaited ``loop.run_in_executor(None, f)`` at a time:
  asyncio's loop with its default executor (and uvloop's / rloop's when
  installed) against a ferrio loop with its default (ferrio) executor.
* ``rie_gather``: many gathered ``run_in_executor`` calls, same loops.
* ``submit_result``: ``ex.submit(f).result()`` from the main thread, one at
  a time (``concurrent.futures.ThreadPoolExecutor`` vs ferrio's).
* ``submit_many``: submit a batch, then wait for every result.
* ``map``: ``list(ex.map(f, range(n)))`` over trivial items.

Sync primitives (``threading`` vs ``ferrio.sync``), each under 1, 2 and 8
threads (suffix ``_1``/``_2``/``_8``; n is the total operations):

* ``lock``: ``with lock: counter += 1``.
* ``sem``: the same with ``Semaphore(max(1, threads // 2))``.
* ``cond``: a turn-taking ring: each thread waits (``wait_for``) for its
  turn, takes it and ``notify_all``s (every op is a wake-up handoff).
* ``condpc`` (2 and 8 threads only): the common case, a bounded buffer
  (capacity 16) over one Lock and two Conditions, as ``queue.Queue`` is
  built: producers ``wait()`` while it is full, consumers while it is
  empty, each side ``notify()``s one waiter of the other.
* ``event``: set/wait ping-pong between pairs of threads.
* ``barrier``: every thread waits at a ``Barrier(threads)``; n rounds.

Queues (n items through the queue, ``maxsize=64``):

* ``queue_1x1``: one producer thread, one consumer thread: ``queue.Queue``
  vs ``ferrio.Queue``.
* ``queue_4x4``: four producer threads, four consumer threads.
* ``queue_t2c``: a producer thread, a consumer coroutine; ``janus`` (on
  asyncio's loop, where its users run it; a bench extra, the row is skipped
  without it) vs ``ferrio.Queue`` (``get_async``) on ferrio's loop, and
  ``ferrio@asyncio``: ferrio's queue on asyncio's loop.
* ``queue_c2t``: a producer coroutine (``put_async``), a consumer thread.

Nothing here is a test: speed is only reported.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import statistics
import sys
import time
from collections import deque
from typing import Callable, Dict, List, Optional

from ._bench import available_loops, loop_versions, pick_workloads

perf = time.perf_counter


def _noop(*_a):
    return None


def _on_loop(factory, main) -> float:
    """Times ``main(loop)`` on a new loop whose default executor already
    has a worker; shuts the executor down and closes the loop after."""
    loop = factory()
    try:
        loop.run_until_complete(loop.run_in_executor(None, _noop))
        coro = main(loop)
        t0 = perf()
        loop.run_until_complete(coro)
        return perf() - t0
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _rie_single(factory, n: int) -> float:
    async def main(loop):
        rie = loop.run_in_executor
        for _ in range(n):
            await rie(None, _noop)

    return _on_loop(factory, main)


def _rie_gather(factory, n: int) -> float:
    async def main(loop):
        rie = loop.run_in_executor
        await asyncio.gather(*[rie(None, _noop) for _ in range(n)])

    return _on_loop(factory, main)


def _submit_result(cls, n: int) -> float:
    with cls() as ex:
        ex.submit(_noop).result()
        submit = ex.submit
        t0 = perf()
        for _ in range(n):
            submit(_noop).result()
        return perf() - t0


def _submit_many(cls, n: int) -> float:
    with cls() as ex:
        ex.submit(_noop).result()
        submit = ex.submit
        t0 = perf()
        futs = [submit(_noop) for _ in range(n)]
        for f in futs:
            f.result()
        return perf() - t0


def _map(cls, n: int) -> float:
    with cls() as ex:
        ex.submit(_noop).result()
        t0 = perf()
        for _ in ex.map(_noop, range(n)):
            pass
        return perf() - t0


def _threaded(nthreads: int, body: Callable[[int], None]) -> float:
    """Runs ``body(i)`` in ``nthreads`` threads released together; the time
    from the release to the last one's end (thread start-up excluded)."""
    import threading

    gate = threading.Barrier(nthreads + 1)

    def run_one(i):
        gate.wait()
        body(i)

    ts = [threading.Thread(target=run_one, args=(i,)) for i in range(nthreads)]
    for t in ts:
        t.start()
    gate.wait()
    t0 = perf()
    for t in ts:
        t.join()
    return perf() - t0


def _guarded(prim, n: int, nthreads: int) -> float:
    """``with prim: counter += 1`` from every thread, n in total."""
    box = [0]
    per = n // nthreads

    def body(_i):
        for _ in range(per):
            with prim:
                box[0] += 1

    return _threaded(nthreads, body)


def _lock(mod, n: int, nthreads: int) -> float:
    return _guarded(mod.Lock(), n, nthreads)


def _sem(mod, n: int, nthreads: int) -> float:
    return _guarded(mod.Semaphore(max(1, nthreads // 2)), n, nthreads)


def _cond(mod, n: int, nthreads: int) -> float:
    cond = mod.Condition(mod.Lock())
    turn = [0]
    per = n // nthreads

    def body(i):
        for _ in range(per):
            with cond:
                cond.wait_for(lambda: turn[0] % nthreads == i)
                turn[0] += 1
                cond.notify_all()

    return _threaded(nthreads, body)


def _condpc(mod, n: int, nthreads: int) -> float:
    lock = mod.Lock()
    not_empty = mod.Condition(lock)
    not_full = mod.Condition(lock)
    buf: deque = deque()
    cap = 16
    per = n // (nthreads // 2)

    def body(i):
        if i % 2 == 0:
            for k in range(per):
                with not_full:
                    while len(buf) >= cap:
                        not_full.wait()
                    buf.append(k)
                    not_empty.notify()
        else:
            for _ in range(per):
                with not_empty:
                    while not buf:
                        not_empty.wait()
                    buf.popleft()
                    not_full.notify()

    return _threaded(nthreads, body)


def _event(mod, n: int, nthreads: int) -> float:
    if nthreads == 1:
        ev = mod.Event()

        def solo(_i):
            for _ in range(n):
                ev.set()
                ev.wait()
                ev.clear()

        return _threaded(1, solo)
    pairs = [(mod.Event(), mod.Event()) for _ in range(nthreads // 2)]
    per = n // nthreads

    def body(i):
        ping, pong = pairs[i // 2]
        if i % 2 == 0:
            for _ in range(per):
                ping.set()
                pong.wait()
                pong.clear()
        else:
            for _ in range(per):
                ping.wait()
                ping.clear()
                pong.set()

    return _threaded(nthreads, body)


def _barrier(mod, n: int, nthreads: int) -> float:
    b = mod.Barrier(nthreads)
    rounds = n // nthreads

    def body(_i):
        for _ in range(rounds):
            b.wait()

    return _threaded(nthreads, body)


_QSIZE = 64


def _queue_threads(cls, n: int, pairs: int) -> float:
    q = cls(_QSIZE)
    per = n // pairs

    def body(i):
        if i % 2 == 0:
            put = q.put
            for k in range(per):
                put(k)
        else:
            get = q.get
            for _ in range(per):
                get()

    return _threaded(2 * pairs, body)


def _queue_1x1(cls, n: int) -> float:
    return _queue_threads(cls, n, 1)


def _queue_4x4(cls, n: int) -> float:
    return _queue_threads(cls, n, 4)


class _Janus:
    """janus' thread face and coroutine face, one spelling."""

    def __init__(self, mod):
        self.mod = mod

    def make(self):
        q = self.mod.Queue(_QSIZE)
        return q, q.sync_q.put, q.sync_q.get, q.async_q.put, q.async_q.get

    async def close(self, q):
        await q.aclose()


class _Ferrio:
    def make(self):
        import ferrio

        q = ferrio.Queue(_QSIZE)
        return q, q.put, q.get, q.put_async, q.get_async

    async def close(self, q):
        return None


def _mixed(impl, n: int, to_coroutine: bool) -> float:
    kind, factory = impl
    import threading

    async def main():
        q, sput, sget, aput, aget = kind.make()
        if to_coroutine:
            t = threading.Thread(target=lambda: [sput(k) for k in range(n)])
        else:
            t = threading.Thread(target=lambda: [sget() for _ in range(n)])
        t0 = perf()
        t.start()
        if to_coroutine:
            for _ in range(n):
                await aget()
        else:
            for k in range(n):
                await aput(k)
        while t.is_alive():
            await asyncio.sleep(0.0005)
        dt = perf() - t0
        t.join()
        await kind.close(q)
        return dt

    loop = factory()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def _queue_t2c(impl, n: int) -> float:
    return _mixed(impl, n, True)


def _queue_c2t(impl, n: int) -> float:
    return _mixed(impl, n, False)


def _queue_impls() -> Dict[str, Callable]:
    import queue

    import ferrio

    return {"stdlib": queue.Queue, "ferrio": ferrio.Queue}


def _mixed_impls() -> Dict[str, Callable]:
    import ferrio

    out = {}
    try:
        import janus

        out["janus"] = (_Janus(janus), asyncio.new_event_loop)
    except ImportError:
        pass
    out["ferrio@asyncio"] = (_Ferrio(), asyncio.new_event_loop)
    out["ferrio"] = (_Ferrio(), ferrio.new_event_loop)
    return out


def _sync_impls() -> Dict[str, Callable]:
    import threading

    from . import sync

    return {"stdlib": threading, "ferrio": sync}


def _per_threads(fn, nthreads):
    def run_it(mod, n):
        return fn(mod, n, nthreads)

    return run_it


def _loop_impls() -> Dict[str, Callable]:
    return dict(available_loops())


def _pool_impls() -> Dict[str, Callable]:
    import ferrio

    return {"stdlib": concurrent.futures.ThreadPoolExecutor, "ferrio": ferrio.ThreadPoolExecutor}


# name -> (function, impls factory, full n, quick n, description)
WORKLOADS = {
    "rie_single": (_rie_single, _loop_impls, 5_000, 2_000, "awaited run_in_executor, one at a time"),
    "rie_gather": (_rie_gather, _loop_impls, 20_000, 5_000, "gathered run_in_executor"),
    "submit_result": (_submit_result, _pool_impls, 20_000, 5_000, "submit(f).result() from a thread"),
    "submit_many": (_submit_many, _pool_impls, 50_000, 10_000, "submit a batch, then every result()"),
    "map": (_map, _pool_impls, 100_000, 20_000, "list(map(f, range(n)))"),
    "queue_1x1": (_queue_1x1, _queue_impls, 200_000, 50_000, "Queue(64): 1 producer thread, 1 consumer thread"),
    "queue_4x4": (_queue_4x4, _queue_impls, 200_000, 50_000, "Queue(64): 4 producer threads, 4 consumer threads"),
    "queue_t2c": (_queue_t2c, _mixed_impls, 100_000, 20_000, "Queue(64): producer thread -> consumer coroutine"),
    "queue_c2t": (_queue_c2t, _mixed_impls, 100_000, 20_000, "Queue(64): producer coroutine -> consumer thread"),
}
# name -> (function, full n, quick n, description)
_PRIMITIVES = {
    "lock": (_lock, 400_000, 100_000, "with lock: counter += 1"),
    "sem": (_sem, 400_000, 100_000, "with Semaphore(max(1, threads//2))"),
    "cond": (_cond, 40_000, 10_000, "Condition turn-taking ring (wait_for + notify_all)"),
    "event": (_event, 40_000, 10_000, "Event set/wait ping-pong"),
    "barrier": (_barrier, 20_000, 5_000, "Barrier(threads).wait() rounds"),
    "condpc": (_condpc, 200_000, 50_000, "Condition producer/consumer, buffer of 16 (wait + notify(1))"),
}
# Thread counts each primitive runs under; a producer/consumer needs pairs.
_THREAD_COUNTS = {"condpc": (2, 8)}
for _name, (_fn, _full, _quick, _desc) in _PRIMITIVES.items():
    for _t in _THREAD_COUNTS.get(_name, (1, 2, 8)):
        WORKLOADS[f"{_name}_{_t}"] = (
            _per_threads(_fn, _t),
            _sync_impls,
            _full,
            _quick,
            f"{_desc}, {_t} thread{'s' if _t > 1 else ''}",
        )


def _fmt(v: float) -> str:
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e3 else f"{v:.0f}"


def run(workloads: List[str], repeat: int, quick: bool, progress=None) -> dict:
    results = {}
    for w in workloads:
        fn, impls_of, n_full, n_quick, desc = WORKLOADS[w]
        n = n_quick if quick else n_full
        impls = impls_of()
        samples: Dict[str, List[float]] = {k: [] for k in impls}
        for _ in range(repeat):
            for name, impl in impls.items():
                gc.collect()
                samples[name].append(n / fn(impl, n))
        med = {k: statistics.median(v) for k, v in samples.items()}
        results[w] = {"n": n, "description": desc, "ops_per_sec": med, "samples": samples}
        if progress:
            f = med["ferrio"]
            parts = [f"{k} {_fmt(v)}/s" for k, v in med.items()]
            ratios = [f"vs {k} {f / v:.2f}x" for k, v in med.items() if k != "ferrio"]
            progress(f"{w:<14} | " + " | ".join(parts) + "  [" + ", ".join(ratios) + "]")
    return results


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ferrio bench threads", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller inputs, 3 repeats")
    p.add_argument("--repeat", type=int, default=None, help="repeats (median reported); default 5, 3 with --quick")
    p.add_argument("--workloads", default=None, help="comma-separated subset of: " + ", ".join(WORKLOADS))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    workloads = pick_workloads(p, args.workloads, WORKLOADS)
    repeat = args.repeat or (3 if args.quick else 5)
    progress = None
    if not args.json:
        print(f"ferrio bench threads: ops/s, median of {repeat}; ratios ferrio / other (>1 = ferrio faster)")
        print("versions: " + ", ".join(f"{k} {v}" for k, v in loop_versions().items()))
        progress = lambda line: print(line, flush=True)  # noqa: E731
    results = run(workloads, repeat, args.quick, progress)
    if args.json:
        json.dump({"versions": loop_versions(), "repeat": repeat, "results": results}, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
