"""ferrio.ThreadPoolExecutor against concurrent.futures.ThreadPoolExecutor.

Differential: every test takes ``pool_cls`` (the stdlib's class and
ferrio's) and states the stdlib's behaviour. The few ferrio-only facts
(idle workers retire) say so in their name.
"""

import asyncio
import concurrent.futures
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import ferrio
from concurrent.futures.thread import BrokenThreadPool

POOLS = {
    "stdlib": concurrent.futures.ThreadPoolExecutor,
    "ferrio": ferrio.ThreadPoolExecutor,
}


@pytest.fixture(params=list(POOLS))
def pool_cls(request):
    return POOLS[request.param]


def test_is_a_thread_pool_executor(pool_cls):
    with pool_cls(max_workers=2) as ex:
        assert isinstance(ex, concurrent.futures.ThreadPoolExecutor)
        assert isinstance(ex, concurrent.futures.Executor)
        assert ex._max_workers == 2


def test_submit_result_exception_and_kwargs(pool_cls):
    def f(a, b=0, *, c=0):
        if a < 0:
            raise ValueError(a)
        return a + b + c

    with pool_cls(max_workers=3) as ex:
        futs = [ex.submit(f, i, b=1, c=2) for i in range(50)]
        bad = ex.submit(f, -1)
        assert all(isinstance(x, concurrent.futures.Future) for x in futs)
        assert [x.result(timeout=10) for x in futs] == [i + 3 for i in range(50)]
        with pytest.raises(ValueError):
            bad.result(timeout=10)
        assert isinstance(bad.exception(), ValueError)
        # fn is positional-only: a keyword named fn goes to the callable.
        assert ex.submit(lambda **kw: kw, fn=1).result(timeout=10) == {"fn": 1}
        with pytest.raises(TypeError):
            ex.submit()


def test_base_exceptions_go_to_the_future(pool_cls):
    def exit_():
        raise SystemExit(3)

    with pool_cls(max_workers=1) as ex:
        f = ex.submit(exit_)
        assert isinstance(f.exception(timeout=10), SystemExit)
        # The worker survived it.
        assert ex.submit(int, "5").result(timeout=10) == 5


def test_map_order_timeout_and_errors(pool_cls):
    with pool_cls(max_workers=4) as ex:
        assert list(ex.map(pow, range(20), range(20))) == [pow(i, i) for i in range(20)]
        assert list(ex.map(abs, range(-5, 5), chunksize=3)) == [abs(i) for i in range(-5, 5)]
        it = ex.map(lambda x: 1 // x, [1, 0, 2])
        assert next(it) == 1
        with pytest.raises(ZeroDivisionError):
            next(it)
        ev = threading.Event()
        slow = ex.map(lambda _: ev.wait(10), [0], timeout=0.05)
        with pytest.raises(concurrent.futures.TimeoutError):
            list(slow)
        ev.set()


def test_map_error_ends_iteration_and_cancels_the_rest(pool_cls):
    ev = threading.Event()
    ran = []

    def f(x):
        if x == 0:
            raise KeyError(x)
        ev.wait(10)
        ran.append(x)
        return x

    with pool_cls(max_workers=1) as ex:
        it = ex.map(f, [0, 1, 2, 3])
        with pytest.raises(KeyError):
            next(it)
        ev.set()
        # the generator is finished; items not started were cancelled
        assert list(it) == []
    assert len(ran) <= 1


def test_map_close_after_first_result_cancels_unstarted_items(pool_cls):
    ev = threading.Event()
    ran = []

    def f(x):
        if x:
            ev.wait(10)
        ran.append(x)

    with pool_cls(max_workers=1) as ex:
        it = ex.map(f, range(50))
        next(it)
        it.close()
        ev.set()
    assert len(ran) <= 3
    with pytest.raises(StopIteration):
        next(it)


def test_map_never_advanced_still_runs_every_item(pool_cls):
    ran = []
    with pool_cls(max_workers=2) as ex:
        ex.map(ran.append, range(200))  # result dropped at once
        gc.collect()
    assert sorted(ran) == list(range(200))
    with pool_cls(max_workers=2) as ex:
        it = ex.map(ran.append, range(200, 300))
        it.close()  # an unstarted generator's close() cancels nothing
    assert sorted(ran) == list(range(300))


def test_map_pulls_items_while_submitting(pool_cls):
    done = []

    def items():
        yield 1
        yield 2
        raise ValueError("bad iterable")

    with pool_cls(max_workers=2) as ex:
        with pytest.raises(ValueError, match="bad iterable"):
            ex.map(done.append, items())
    # what was submitted before the iterable failed still ran
    assert sorted(done) == [1, 2]


def test_map_after_shutdown_raises(pool_cls):
    ex = pool_cls(max_workers=1)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.map(abs, [1])
    assert list(ex.map(abs, [])) == []


def test_map_shutdown_cancel_futures_raises_cancelled(pool_cls):
    ev = threading.Event()
    ex = pool_cls(max_workers=1)
    it = ex.map(lambda _: ev.wait(10), range(3))
    time.sleep(0.05)
    ex.shutdown(wait=False, cancel_futures=True)
    ev.set()
    assert next(it) is True
    with pytest.raises(concurrent.futures.CancelledError):
        next(it)
    ex.shutdown()


def test_map_timeout_counts_from_the_call(pool_cls):
    with pool_cls(max_workers=2) as ex:
        it = ex.map(time.sleep, [0.2, 0.0], timeout=0.1)
        t0 = time.monotonic()
        with pytest.raises(concurrent.futures.TimeoutError):
            next(it)
        assert time.monotonic() - t0 < 5
        ready = ex.map(abs, [-1, -2], timeout=0.2)
        time.sleep(0.3)
        # results already there are returned even after the deadline
        assert list(ready) == [1, 2]


def test_map_from_many_threads(pool_cls):
    with pool_cls(max_workers=4) as ex:
        out = {}

        def consume(k):
            out[k] = list(ex.map(lambda x: x * k, range(2000)))

        ts = [threading.Thread(target=consume, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
    assert out == {k: [x * k for x in range(2000)] for k in range(4)}


def test_futures_work_with_wait_and_as_completed(pool_cls):
    with pool_cls(max_workers=4) as ex:
        fs = [ex.submit(time.sleep, 0.01 * (i % 3)) for i in range(12)]
        done, pending = concurrent.futures.wait(fs, timeout=10)
        assert len(done) == 12 and not pending
        fs = [ex.submit(pow, i, 2) for i in range(12)]
        assert sorted(f.result() for f in concurrent.futures.as_completed(fs, timeout=10)) == [
            i * i for i in range(12)
        ]
        ev = threading.Event()
        slow = ex.submit(ev.wait, 10)
        first = ex.submit(int)
        done, pending = concurrent.futures.wait([slow, first], return_when=concurrent.futures.FIRST_COMPLETED)
        assert first in done and slow in pending
        ev.set()
        assert isinstance(slow, concurrent.futures.Future)
        assert slow.result(timeout=10) is True
        assert repr(first).startswith("<Future at")


def test_submit_after_shutdown_raises(pool_cls):
    ex = pool_cls(max_workers=1)
    ex.submit(int).result(timeout=10)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(int)
    ex.shutdown()  # twice is fine


def test_shutdown_cancel_futures(pool_cls):
    ev = threading.Event()
    ex = pool_cls(max_workers=1)
    first = ex.submit(ev.wait, 10)
    while not first.running():
        time.sleep(0.001)
    pending = [ex.submit(int) for _ in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in pending)
    ev.set()
    assert first.result(timeout=10) is True
    ex.shutdown(wait=True)


def test_shutdown_wait_runs_queued_work(pool_cls):
    out = []
    ex = pool_cls(max_workers=2)
    for i in range(100):
        ex.submit(out.append, i)
    ex.shutdown(wait=True)
    assert sorted(out) == list(range(100))
    assert all(not t.is_alive() for t in ex._threads)


def test_cancelled_before_start_never_runs(pool_cls):
    ev = threading.Event()
    ran = []
    with pool_cls(max_workers=1) as ex:
        blocker = ex.submit(ev.wait, 10)
        f = ex.submit(ran.append, 1)
        assert f.cancel()
        ev.set()
        blocker.result(timeout=10)
    assert f.cancelled() and ran == []


def test_constructor_errors(pool_cls):
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        pool_cls(max_workers=0)
    with pytest.raises(ValueError):
        pool_cls(max_workers=-1)
    with pytest.raises(TypeError, match="initializer must be a callable"):
        pool_cls(initializer=42)


@pytest.mark.parametrize("bound", [float("inf"), 2**70])
def test_unbounded_max_workers(pool_cls, bound):
    # The stdlib only compares against max_workers: infinity or a huge int
    # is no bound at all.
    with pool_cls(max_workers=bound) as ex:
        assert sorted(ex.map(abs, range(-20, 0))) == list(range(1, 21))


def test_default_max_workers(pool_cls):
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    with pool_cls() as ex:
        assert ex._max_workers == min(32, (count or 1) + 4)


def test_initializer_runs_in_each_worker(pool_cls):
    seen = []
    lock = threading.Lock()
    local = threading.local()

    def init(tag):
        with lock:
            seen.append((tag, threading.current_thread().name))
        local.tag = tag

    barrier = threading.Barrier(3)

    def job():
        barrier.wait(10)
        return local.tag

    with pool_cls(max_workers=3, initializer=init, initargs=("x",)) as ex:
        results = [f.result(timeout=10) for f in [ex.submit(job) for _ in range(3)]]
    assert results == ["x"] * 3
    assert len(seen) == 3 and {t for t, _ in seen} == {"x"}


def test_failing_initializer_breaks_the_pool(pool_cls, caplog):
    def init():
        raise ValueError("no")

    ex = pool_cls(max_workers=2, initializer=init)
    futs = []
    for _ in range(5):
        try:
            futs.append(ex.submit(int))
        except BrokenThreadPool:
            # Already broken by a worker that started meanwhile.
            break
    assert futs
    for f in futs:
        with pytest.raises(BrokenThreadPool):
            f.result(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            ex.submit(int)
        except BrokenThreadPool as e:
            assert "initializer failed" in str(e)
            break
        time.sleep(0.01)
    else:
        pytest.fail("the pool never reported itself broken")
    ex.shutdown()
    assert "Exception in initializer" in caplog.text


def test_thread_names(pool_cls):
    barrier = threading.Barrier(2)

    def name():
        barrier.wait(10)
        return threading.current_thread().name

    with pool_cls(max_workers=2, thread_name_prefix="SpecialPool") as ex:
        names = {f.result(timeout=10) for f in [ex.submit(name) for _ in range(2)]}
    assert len(names) == 2
    assert all(n.startswith("SpecialPool_") for n in names)
    with pool_cls(max_workers=1) as ex:
        assert ex.submit(lambda: threading.current_thread().name).result(timeout=10).startswith(
            "ThreadPoolExecutor-"
        )


def test_runs_concurrently_up_to_max_workers(pool_cls):
    barrier = threading.Barrier(4)
    with pool_cls(max_workers=4) as ex:
        futs = [ex.submit(barrier.wait, 10) for _ in range(4)]
        assert sorted(f.result(timeout=15) for f in futs) == [0, 1, 2, 3]
        assert len(ex._threads) == 4


def test_idle_thread_reuse(pool_cls):
    with pool_cls(max_workers=8) as ex:
        for _ in range(20):
            ex.submit(int).result(timeout=10)
            time.sleep(0.002)
        assert len(ex._threads) == 1


def test_dropped_pool_lets_workers_exit(pool_cls):
    ex = pool_cls(max_workers=2)
    ex.submit(int).result(timeout=10)
    threads = list(ex._threads)
    del ex
    gc.collect()
    for t in threads:
        t.join(10)
        assert not t.is_alive()


def test_unreferenced_pool_still_runs_what_was_submitted(pool_cls):
    # The pool object can be collected as soon as its bound method is
    # looked up; the work must still be taken and run.
    assert pool_cls().submit(abs, -7).result(timeout=10) == 7
    assert list(pool_cls(max_workers=2).map(abs, [-1, -2, -3], timeout=10)) == [1, 2, 3]
    submit = pool_cls().submit
    gc.collect()
    assert submit(abs, -3).result(timeout=10) == 3
    # Jobs racing the exit of an orphaned pool's last worker are not lost.
    for i in range(200):
        f = submit(abs, -i)
        if i % 7 == 0:
            time.sleep(0.0005)
        assert f.result(timeout=10) == i


def test_ferrio_idle_workers_retire():
    ex = ferrio.ThreadPoolExecutor(max_workers=4, _idle_timeout=0.05)
    barrier = threading.Barrier(4)
    futs = [ex.submit(barrier.wait, 10) for _ in range(4)]
    [f.result(timeout=10) for f in futs]
    deadline = time.monotonic() + 10
    while ex._core._counts()[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ex._core._counts() == (0, 0)
    # And new work starts a worker again.
    assert ex.submit(int, "7").result(timeout=10) == 7
    ex.shutdown()


def test_stress_many_small_jobs(pool_cls):
    total = 0
    with pool_cls(max_workers=8) as ex:
        for chunk in range(10):
            futs = [ex.submit(pow, i, 2) for i in range(2000)]
            total += sum(f.result(timeout=30) for f in futs)
    assert total == 10 * sum(i * i for i in range(2000))


# --- run_in_executor with each pool, on each loop -------------------------


def test_run_in_executor_with_pool(loop, pool_cls):
    def f(a, b):
        if b == 0:
            raise ZeroDivisionError
        return a // b

    async def main():
        with pool_cls(max_workers=4) as ex:
            ok = await asyncio.gather(*[loop.run_in_executor(ex, f, i * 7, 7) for i in range(300)])
            with pytest.raises(ZeroDivisionError):
                await loop.run_in_executor(ex, f, 1, 0)
            return ok

    assert loop.run_until_complete(main()) == list(range(300))


def test_run_in_executor_cancel_before_start_skips_the_call(loop, pool_cls):
    ran = []
    ev = threading.Event()

    async def main():
        with pool_cls(max_workers=1) as ex:
            blocker = loop.run_in_executor(ex, ev.wait, 10)
            fut = loop.run_in_executor(ex, ran.append, 1)
            fut.cancel()
            await asyncio.sleep(0.01)
            ev.set()
            await blocker
            await asyncio.sleep(0.01)
            return fut.cancelled()

    assert loop.run_until_complete(main()) is True
    assert ran == []


def test_run_in_executor_cancel_while_running_keeps_loop_sane(loop, pool_cls):
    ev = threading.Event()

    async def main():
        with pool_cls(max_workers=1) as ex:
            fut = loop.run_in_executor(ex, ev.wait, 10)
            await asyncio.sleep(0.01)
            fut.cancel()
            ev.set()
            await asyncio.sleep(0.05)
            return fut.cancelled(), await loop.run_in_executor(ex, int, "9")

    assert loop.run_until_complete(main()) == (True, 9)


def test_run_in_executor_on_shut_down_pool(loop, pool_cls):
    ex = pool_cls(max_workers=1)
    ex.shutdown()

    async def main():
        loop.run_in_executor(ex, int)

    with pytest.raises(RuntimeError, match="after shutdown"):
        loop.run_until_complete(main())


def test_run_in_executor_finishing_after_loop_closed_keeps_pool_usable(loop, pool_cls):
    # A job finishing after its loop closed cannot complete its future
    # (asyncio's loop: call_soon_threadsafe raises in the worker's callback
    # and concurrent.futures logs it; ferrio's: the outcome is dropped), but
    # the worker and the pool carry on.
    ev = threading.Event()
    with pool_cls(max_workers=1) as ex:
        fut = loop.run_in_executor(ex, ev.wait, 10)
        loop.close()
        ev.set()
        assert ex.submit(int, "3").result(timeout=10) == 3
        assert not fut.done()


def _run_script(src: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(src)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", list(POOLS))
def test_interpreter_exit_finishes_queued_work_and_joins(name):
    r = _run_script(
        f"""
        import atexit, concurrent.futures, time, ferrio
        out = []
        # atexit hooks run after the pools' exit hook joined the workers.
        atexit.register(lambda: print("\\n".join(sorted(out))))
        cls = {{"stdlib": concurrent.futures.ThreadPoolExecutor, "ferrio": ferrio.ThreadPoolExecutor}}[{name!r}]
        ex = cls(max_workers=2)
        for i in range(6):
            ex.submit(lambda i=i: (time.sleep(0.02), out.append(f"done {{i}}")))
        """
    )
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:-1]) == [f"done {i}" for i in range(6)]


def test_default_executor_is_ferrio_and_exits_cleanly():
    r = _run_script(
        """
        import asyncio, threading, ferrio
        async def main():
            loop = asyncio.get_running_loop()
            name = await loop.run_in_executor(None, lambda: threading.current_thread().name)
            print(type(loop._default_executor).__module__, name.startswith("asyncio_"))
        ferrio.run(main())
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ferrio._executor", "True"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_ferrio_pool_usable_in_forked_child():
    # ferrio-only: the stdlib's pool in a forked child still counts the
    # parent's (absent) workers as idle and can leave a job unrun.
    r = _run_script(
        """
        import os, warnings, ferrio
        warnings.simplefilter("ignore", DeprecationWarning)
        ex = ferrio.ThreadPoolExecutor(max_workers=2)
        assert ex.submit(int, "1").result(timeout=10) == 1
        pid = os.fork()
        if pid == 0:
            ok = ex.submit(int, "2").result(timeout=10) == 2
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        ex.shutdown()
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


def test_run_in_executor_converts_concurrent_cancelled_error(loop, pool_cls):
    def f():
        raise concurrent.futures.CancelledError()

    async def main():
        with pool_cls(max_workers=1) as ex:
            try:
                await loop.run_in_executor(ex, f)
            except BaseException as e:  # noqa: B036 - the type is the point
                return type(e)

    assert loop.run_until_complete(main()) is asyncio.CancelledError


def test_map_iterator_refuses_overlapping_next_and_close(pool_cls):
    """A second thread's next() (or close()) while the first waits in next()
    raises ValueError, as a generator does (ferrio's once deadlocked)."""
    release = threading.Event()
    with pool_cls(max_workers=2) as ex:
        it = ex.map(release.wait, [10, 10])
        got = []
        first = threading.Thread(target=lambda: got.append(next(it)))
        first.start()
        time.sleep(0.2)  # the first thread is now waiting inside next()
        try:
            with pytest.raises(ValueError, match="already executing"):
                next(it)
            with pytest.raises(ValueError, match="already executing"):
                it.close()
        finally:
            release.set()
            first.join(10)
        assert got == [True]
        assert next(it) is True


def test_loop_waiting_for_a_job_still_serves_io_timers_and_short_jobs(loop, pool_cls):
    # While a long job is unfinished (ferrio's loop spins briefly for
    # executor completions before sleeping), timers fire on time, reads
    # arrive, and short jobs awaited one at a time complete in order.
    ev = threading.Event()
    a, b = __import__("socket").socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def main():
        with pool_cls(max_workers=2) as ex:
            long_job = loop.run_in_executor(ex, ev.wait, 10)
            t0 = loop.time()
            fired = loop.create_future()
            loop.call_later(0.02, fired.set_result, None)
            await asyncio.wait_for(fired, 5)
            timer_late = loop.time() - t0
            got = []
            for i in range(200):
                got.append(await loop.run_in_executor(ex, int, str(i)))
            loop.call_later(0.01, b.send, b"ping")
            data = await asyncio.wait_for(loop.sock_recv(a, 10), 5)
            done_early = long_job.done()
            ev.set()
            assert await asyncio.wait_for(long_job, 10) is True
            return timer_late, got, data, done_early

    try:
        timer_late, got, data, done_early = loop.run_until_complete(main())
    finally:
        ev.set()
        a.close()
        b.close()
    assert timer_late < 2.0
    assert got == list(range(200))
    assert data == b"ping"
    assert done_early is False


def test_ferrio_loop_gives_back_every_unfinished_job_count():
    # ferrio-only bookkeeping: each run_in_executor job on a ferrio pool
    # counts as unfinished (the loop spins for it before sleeping) until
    # it ends, whichever way it ends.
    lp = ferrio.new_event_loop()
    ev = threading.Event()
    ran = []

    def boom():
        raise ValueError("x")

    async def main():
        with ferrio.ThreadPoolExecutor(max_workers=1) as ex:
            assert await lp.run_in_executor(ex, int, "1") == 1
            with pytest.raises(ValueError):
                await lp.run_in_executor(ex, boom)
            blocker = lp.run_in_executor(ex, ev.wait, 10)
            skipped = lp.run_in_executor(ex, ran.append, 1)
            assert lp._executor_jobs() == 2
            skipped.cancel()
            await asyncio.sleep(0.01)
            blocker.cancel()  # cancelled while running
            ev.set()
            for _ in range(500):
                if lp._executor_jobs() == 0:
                    break
                await asyncio.sleep(0.01)
            assert lp._executor_jobs() == 0
        ev.clear()
        ex = ferrio.ThreadPoolExecutor(max_workers=1)
        blocker = lp.run_in_executor(ex, ev.wait, 10)
        queued = [lp.run_in_executor(ex, int, "2") for _ in range(3)]
        assert lp._executor_jobs() == 4
        ex.shutdown(wait=False, cancel_futures=True)
        ev.set()
        await asyncio.gather(blocker, *queued, return_exceptions=True)
        ex.shutdown(wait=True)
        assert all(q.cancelled() for q in queued)
        assert lp._executor_jobs() == 0

        def bad_init():
            raise RuntimeError("init")

        ex = ferrio.ThreadPoolExecutor(max_workers=1, initializer=bad_init)
        failed = lp.run_in_executor(ex, int, "3")
        with pytest.raises(BrokenThreadPool):
            await asyncio.wait_for(failed, 10)
        ex.shutdown(wait=True)
        assert lp._executor_jobs() == 0

    try:
        lp.run_until_complete(main())
        assert ran == []
        ev.clear()
        with ferrio.ThreadPoolExecutor(max_workers=1) as ex:
            orphan = lp.run_in_executor(ex, ev.wait, 10)
            lp.close()  # the job finishes after its loop closed
            ev.set()
        assert not orphan.done()
        assert lp._executor_jobs() == 0
    finally:
        ev.set()
        if not lp.is_closed():
            lp.close()
