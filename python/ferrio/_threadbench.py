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

Sync primitives and ``ferrio.Queue`` are not built yet (docs/next-threads.md);
their rows come with them. Nothing here is a test: speed is only reported.
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
}


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
