"""``ferrio.Queue`` from coroutines (differential against ``asyncio.Queue``
on both loops), from threads (against ``queue.Queue``), and shared by
threads and coroutines at once (``ferrio_only`` in the name: the stdlib has
no such queue). CPython's own queue tests run in test_queue_conformance.py.
"""

import asyncio
import gc
import queue
import random
import signal
import sys
import threading
import time
import typing

import pytest

import ferrio

from conftest import sigint_after

KINDS = ["stdlib", "ferrio"]
HAS_SHUTDOWN = sys.version_info >= (3, 13)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


class AsyncQ:
    """asyncio's and ferrio's queue, one spelling: ``put``/``get``/``join``
    are awaitables (``put_async``/``get_async``/``join_async`` on ferrio)."""

    def __init__(self, kind, cls="Queue", maxsize=0):
        self.ferrio = kind == "ferrio"
        mod = ferrio if self.ferrio else asyncio
        self.q = getattr(mod, cls)(maxsize)

    def put(self, x):
        return self.q.put_async(x) if self.ferrio else self.q.put(x)

    def get(self):
        return self.q.get_async() if self.ferrio else self.q.get()

    def join(self):
        return self.q.join_async() if self.ferrio else self.q.join()

    def __getattr__(self, name):
        return getattr(self.q, name)


def run(loop, coro, timeout=30):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def settle(n=5):
    for _ in range(n):
        await asyncio.sleep(0)


# ----------------------------------------------------------- coroutine face


@pytest.mark.parametrize("cls,expected", [
    ("Queue", [3, 1, 2]),
    ("LifoQueue", [2, 1, 3]),
    ("PriorityQueue", [1, 2, 3]),
])
def test_async_order(loop, kind, cls, expected):
    async def main():
        q = AsyncQ(kind, cls)
        for x in (3, 1, 2):
            await q.put(x)
        assert q.qsize() == 3 and not q.empty() and not q.full()
        return [await q.get() for _ in range(3)]

    assert run(loop, main()) == expected


def test_async_get_waits_for_put(loop, kind):
    async def main():
        q = AsyncQ(kind)
        got = []

        async def getter(i):
            got.append((i, await q.get()))

        tasks = [asyncio.create_task(getter(i)) for i in range(3)]
        await settle()
        assert got == []
        for x in "abc":
            q.put_nowait(x)
        await asyncio.gather(*tasks)
        return got

    # oldest getter first
    assert run(loop, main()) == [(0, "a"), (1, "b"), (2, "c")]


def test_async_put_waits_while_full_in_order(loop, kind):
    async def main():
        q = AsyncQ(kind, maxsize=2)
        await q.put(0)
        await q.put(1)
        assert q.full()
        putters = [asyncio.create_task(q.put(i)) for i in (2, 3, 4)]
        await settle()
        assert not any(p.done() for p in putters)
        out = []
        for _ in range(5):
            out.append(await q.get())
            await settle()
        await asyncio.gather(*putters)
        return out, q.qsize()

    assert run(loop, main()) == ([0, 1, 2, 3, 4], 0)


def test_async_nowait_errors(loop, kind):
    async def main():
        q = AsyncQ(kind, maxsize=1)
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()
        q.put_nowait(1)
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait(2)
        return q.get_nowait()

    assert run(loop, main()) == 1


def test_async_cancelled_getter_loses_nothing(loop, kind):
    async def main():
        q = AsyncQ(kind)
        g1 = asyncio.create_task(q.get())
        g2 = asyncio.create_task(q.get())
        await settle()
        g1.cancel()
        q.put_nowait("x")
        with pytest.raises(asyncio.CancelledError):
            await g1
        return await asyncio.wait_for(g2, 5), q.qsize()

    assert run(loop, main()) == ("x", 0)


def test_async_getter_cancelled_after_handoff_passes_item_on(loop, kind):
    async def main():
        q = AsyncQ(kind)
        g1 = asyncio.create_task(q.get())
        await settle()
        q.put_nowait("x")
        g1.cancel()  # in the same step as the put: the item must survive
        with pytest.raises(asyncio.CancelledError):
            await g1
        return q.qsize(), q.get_nowait()

    assert run(loop, main()) == (1, "x")


def test_async_cancelled_putter_does_not_put(loop, kind):
    async def main():
        q = AsyncQ(kind, maxsize=1)
        await q.put("a")
        p = asyncio.create_task(q.put("b"))
        p2 = asyncio.create_task(q.put("c"))
        await settle()
        p.cancel()
        with pytest.raises(asyncio.CancelledError):
            await p
        assert q.get_nowait() == "a"
        await asyncio.wait_for(p2, 5)
        return [q.get_nowait() for _ in range(q.qsize())]

    assert run(loop, main()) == ["c"]


def test_async_get_timeout_leaves_queue_usable(loop, kind):
    async def main():
        q = AsyncQ(kind)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.get(), 0.05)
        q.put_nowait(1)
        return await q.get()

    assert run(loop, main()) == 1


def test_async_join_and_task_done(loop, kind):
    async def main():
        q = AsyncQ(kind)
        with pytest.raises(ValueError):
            q.task_done()
        await q.join()  # nothing unfinished: returns at once
        done = []

        async def worker():
            while True:
                x = await q.get()
                await asyncio.sleep(0.001)
                done.append(x)
                q.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(3)]
        for i in range(20):
            await q.put(i)
        await q.join()
        n = len(done)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return n, q.unfinished_tasks if q.ferrio else q._unfinished_tasks

    assert run(loop, main()) == (20, 0)


def test_async_faces_are_coroutines_for_create_task(loop, kind):
    async def main():
        q = AsyncQ(kind)
        t = asyncio.create_task(q.put(1))
        await t
        t = asyncio.create_task(q.get())
        r1 = await t
        t = asyncio.create_task(q.get())
        await settle()
        q.put_nowait(2)
        r2 = await t
        q.task_done()
        q.task_done()
        return r1, r2, await asyncio.create_task(q.join())

    assert run(loop, main()) == (1, 2, None)


def test_async_many_producers_consumers(loop, kind):
    async def main():
        q = AsyncQ(kind, maxsize=4)
        total = []

        async def producer(base):
            for i in range(200):
                await q.put(base + i)

        async def consumer():
            while True:
                x = await q.get()
                if x is None:
                    return
                total.append(x)

        cons = [asyncio.create_task(consumer()) for _ in range(4)]
        await asyncio.gather(*(producer(k * 1000) for k in range(5)))
        for _ in cons:
            await q.put(None)
        await asyncio.gather(*cons)
        return sorted(total) == sorted(k * 1000 + i for k in range(5) for i in range(200))

    assert run(loop, main())


@pytest.mark.skipif(not HAS_SHUTDOWN, reason="asyncio.Queue.shutdown is 3.13+")
@pytest.mark.parametrize("immediate", [False, True])
def test_async_shutdown(loop, kind, immediate):
    async def main():
        q = AsyncQ(kind, maxsize=2)
        getter_q = AsyncQ(kind)
        await q.put(1)
        await q.put(2)
        putter = asyncio.create_task(q.put(3))
        getter = asyncio.create_task(getter_q.get())
        joiner = asyncio.create_task(q.join())
        await settle()
        q.shutdown(immediate=immediate)
        getter_q.shutdown(immediate=immediate)
        await settle()
        res = await asyncio.gather(putter, getter, return_exceptions=True)
        out = {
            "putter": isinstance(res[0], asyncio.QueueShutDown),
            "getter": isinstance(res[1], asyncio.QueueShutDown),
        }
        with pytest.raises(asyncio.QueueShutDown):
            q.put_nowait(9)
        if immediate:
            with pytest.raises(asyncio.QueueShutDown):
                await q.get()
            await asyncio.wait_for(joiner, 5)
        else:
            out["left"] = [await q.get(), await q.get()]
            with pytest.raises(asyncio.QueueShutDown):
                await q.get()
            q.task_done()
            q.task_done()
            await asyncio.wait_for(joiner, 5)
        return out

    left = {} if immediate else {"left": [1, 2]}
    assert run(loop, main()) == {"putter": True, "getter": True, **left}


def test_ferrio_exceptions_are_both_modules():
    assert issubclass(ferrio.QueueEmpty, queue.Empty)
    assert issubclass(ferrio.QueueEmpty, asyncio.QueueEmpty)
    assert issubclass(ferrio.QueueFull, queue.Full)
    assert issubclass(ferrio.QueueFull, asyncio.QueueFull)
    if HAS_SHUTDOWN:
        assert issubclass(ferrio.QueueShutDown, queue.ShutDown)
        assert issubclass(ferrio.QueueShutDown, asyncio.QueueShutDown)


# --------------------------------------------------------------- thread face


@pytest.fixture
def tq(kind):
    return queue if kind == "stdlib" else ferrio


def test_thread_bad_arguments(tq):
    q = tq.Queue(2)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    with pytest.raises(TypeError):
        q.get(timeout="1")
    u = tq.Queue()
    u.put(1, timeout=-1)  # unbounded: put never checks the timeout
    assert u.get() == 1


def test_thread_huge_maxsize_is_as_good_as_unbounded(tq):
    q = tq.Queue(2**70)
    for i in range(100):
        q.put_nowait(i)
    assert not q.full()
    q.maxsize = -(2**70)
    q.put_nowait(100)
    assert q.qsize() == 101 and not q.full()


def test_thread_timeouts(tq):
    q = tq.Queue(1)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.05)
    assert time.monotonic() - t0 >= 0.09
    with pytest.raises(queue.Full):
        q.put(2, timeout=0)
    assert q.get(timeout=0) == 1


def test_thread_generic_alias_and_subclass_init(tq):
    assert typing.get_origin(tq.Queue[int]) is tq.Queue
    assert typing.get_args(tq.Queue[int]) == (int,)

    class MyQueue(tq.Queue):
        def __init__(self, maxsize=0):
            super().__init__(maxsize)
            self.extra = True

    q = MyQueue(1)
    q.put(1)
    assert q.full() and q.extra and q.maxsize == 1


def test_thread_maxsize_growth_admits_blocked_putter(tq):
    q = tq.Queue(1)
    q.put(0)
    done = threading.Event()

    def putter():
        q.put(1)
        done.set()

    t = threading.Thread(target=putter)
    t.start()
    time.sleep(0.05)
    assert not done.is_set()
    q.maxsize = 2
    if tq is queue:
        # queue.Queue only re-checks on its next notify
        q.get()
    assert done.wait(5)
    t.join(5)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
@pytest.mark.parametrize("what", ["get", "put", "join"])
def test_ctrl_c_interrupts_blocked_queue_call(tq, what):
    q = tq.Queue(1)
    if what != "get":
        q.put(0)
    blocked = {
        "get": lambda: q.get(timeout=30),
        "put": lambda: q.put(1, timeout=30),
        "join": q.join,
    }[what]
    with sigint_after(), pytest.raises(KeyboardInterrupt):
        blocked()
    # the queue still works after the interrupted call
    assert q.qsize() == (0 if what == "get" else 1)
    if what == "get":
        q.put(5)
        assert q.get() == 5


def test_thread_producer_consumer_exact(tq):
    q = tq.Queue(8)
    n = 20_000
    out = []

    def consumer():
        while True:
            x = q.get()
            if x is None:
                return
            out.append(x)
            q.task_done()

    cons = [threading.Thread(target=consumer) for _ in range(3)]
    for c in cons:
        c.start()
    prods = [threading.Thread(target=lambda k=k: [q.put(k * n + i) for i in range(n)]) for k in range(2)]
    for p in prods:
        p.start()
    for p in prods:
        p.join(60)
    q.join()
    for _ in cons:
        q.put(None)
    for c in cons:
        c.join(60)
    assert sorted(out) == list(range(2 * n))


# ----------------------------------------- threads and coroutines, one queue


def test_ferrio_only_thread_producer_coroutine_consumer(loop):
    q = ferrio.Queue(16)
    n = 5_000

    def producer():
        for i in range(n):
            q.put(i)
        q.put(None)

    async def main():
        t = threading.Thread(target=producer)
        t.start()
        got = []
        while (x := await q.get_async()) is not None:
            got.append(x)
        t.join(10)
        return got

    assert run(loop, main()) == list(range(n))


def test_ferrio_only_coroutine_producer_thread_consumer(loop):
    q = ferrio.Queue(4)
    n = 5_000
    got = []

    def consumer():
        while (x := q.get()) is not None:
            got.append(x)
            q.task_done()
        q.task_done()

    async def main():
        t = threading.Thread(target=consumer)
        t.start()
        for i in range(n):
            await q.put_async(i)
        await q.put_async(None)
        await q.join_async()
        await loop.run_in_executor(None, t.join, 10)

    run(loop, main())
    assert got == list(range(n))


def test_ferrio_only_two_loops_and_threads_share_a_queue(loop_factory):
    q = ferrio.Queue(3)
    per = 1_000
    results = []
    lock = threading.Lock()

    def loop_consumer():
        lp = loop_factory()
        got = []

        async def main():
            while (x := await q.get_async()) is not None:
                got.append(x)

        try:
            lp.run_until_complete(main())
        finally:
            lp.close()
        with lock:
            results.extend(got)

    def loop_producer(base):
        lp = loop_factory()

        async def main():
            for i in range(per):
                await q.put_async(base + i)

        try:
            lp.run_until_complete(main())
        finally:
            lp.close()

    def thread_consumer():
        got = []
        while (x := q.get()) is not None:
            got.append(x)
        with lock:
            results.extend(got)

    def thread_producer(base):
        for i in range(per):
            q.put(base + i)

    consumers = [threading.Thread(target=loop_consumer) for _ in range(2)]
    consumers += [threading.Thread(target=thread_consumer) for _ in range(2)]
    producers = [threading.Thread(target=loop_producer, args=(k * 10_000,)) for k in range(2)]
    producers += [threading.Thread(target=thread_producer, args=((k + 2) * 10_000,)) for k in range(2)]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join(60)
    for _ in consumers:
        q.put(None)
    for t in consumers:
        t.join(60)
    assert not any(t.is_alive() for t in consumers + producers)
    assert sorted(results) == sorted(k * 10_000 + i for k in range(4) for i in range(per))


def test_ferrio_only_item_handed_to_dead_loop_is_given_back(loop_factory):
    q = ferrio.Queue()
    lp = loop_factory()
    parked = threading.Event()

    async def waiter():
        parked.set()
        await q.get_async()

    # a coroutine getter queued on a loop that then stops and closes
    task = lp.create_task(waiter())
    lp.run_until_complete(asyncio.sleep(0.01))
    assert parked.is_set() and not task.done()
    lp.close()
    q.put("x")  # handed to the dead getter; it must come back
    assert q.get(timeout=5) == "x"
    del task
    gc.collect()


def test_ferrio_only_mixed_random_cancellation_stress(loop):
    q = ferrio.Queue(5)
    n_thread = 3_000
    received = []
    rng = random.Random(7)

    def thread_producer():
        for i in range(n_thread):
            if i % 50 == 0:
                time.sleep(0.003)  # let getters time out now and then
            q.put(("t", i))

    async def main():
        t = threading.Thread(target=thread_producer)
        t.start()
        got = []
        cancelled = 0
        while len(got) < n_thread:
            timeout = rng.choice([0.0005, 0.002, 1.0])
            try:
                got.append(await asyncio.wait_for(q.get_async(), timeout))
            except asyncio.TimeoutError:
                cancelled += 1
        t.join(10)
        received.extend(got)
        return cancelled

    assert run(loop, main(), timeout=120) > 0
    assert sorted(received) == [("t", i) for i in range(n_thread)]
    assert q.qsize() == 0 and q.unfinished_tasks == n_thread
