"""ferrio.sync: threading faces against ``threading``, async faces against
``asyncio``'s primitives, and threads sharing one primitive with coroutines.

Differential: ``kind`` is "stdlib" (``threading`` for thread tests,
``asyncio``'s primitive for async ones) or "ferrio"; async tests also run
on both loops (``loop`` fixture). Facts with no stdlib counterpart (a
primitive shared by threads and coroutines, a ferrio primitive awaited
from two loops) say "ferrio_only" in their name, and still run on both
loops. CPython's own lock tests run in test_sync_conformance.py.
"""

import asyncio
import os
import random
import signal
import sys
import threading
import time

import pytest

from ferrio import sync

from conftest import sigint_after

KINDS = ["stdlib", "ferrio"]


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


class Async:
    """One name for asyncio's and ferrio's async spellings."""

    def __init__(self, kind):
        self.kind = kind
        self.ferrio = kind == "ferrio"

    def Lock(self):
        return sync.Lock() if self.ferrio else asyncio.Lock()

    def Semaphore(self, n=1):
        return sync.Semaphore(n) if self.ferrio else asyncio.Semaphore(n)

    def BoundedSemaphore(self, n=1):
        return sync.BoundedSemaphore(n) if self.ferrio else asyncio.BoundedSemaphore(n)

    def Event(self):
        return sync.Event() if self.ferrio else asyncio.Event()

    def Condition(self, lock=None):
        if self.ferrio:
            return sync.Condition(lock)
        return asyncio.Condition(lock)

    def Barrier(self, n):
        return sync.Barrier(n) if self.ferrio else asyncio.Barrier(n)

    def acquire(self, prim):
        return prim.acquire_async() if self.ferrio else prim.acquire()

    def wait(self, prim):
        return prim.wait_async() if self.ferrio else prim.wait()

    def wait_for(self, cond, pred):
        return cond.wait_for_async(pred) if self.ferrio else cond.wait_for(pred)


@pytest.fixture
def a(kind):
    return Async(kind)


def run(loop, coro, timeout=30):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------- async: Lock


def test_async_lock_excludes_and_is_fifo(loop, a):
    lock = a.Lock()
    order = []

    async def worker(i):
        async with lock:
            order.append(("in", i))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append(("out", i))

    async def main():
        assert await a.acquire(lock) is True
        tasks = [asyncio.ensure_future(worker(i)) for i in range(5)]
        await asyncio.sleep(0.01)
        assert lock.locked()
        lock.release()
        await asyncio.gather(*tasks)
        assert not lock.locked()

    run(loop, main())
    assert order == [x for i in range(5) for x in (("in", i), ("out", i))]


def test_async_lock_cancelled_waiter_does_not_leak(loop, a):
    lock = a.Lock()

    async def main():
        await a.acquire(lock)
        t = asyncio.ensure_future(a.acquire(lock))
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        lock.release()
        assert not lock.locked()
        assert await a.acquire(lock) is True
        lock.release()

    run(loop, main())


def test_async_lock_woken_then_cancelled_passes_lock_on(loop, a):
    lock = a.Lock()
    got = []

    async def waiter(i):
        async with lock:
            got.append(i)

    async def main():
        await a.acquire(lock)
        t1 = asyncio.ensure_future(waiter(1))
        t2 = asyncio.ensure_future(waiter(2))
        await asyncio.sleep(0)
        lock.release()  # hands over to t1 ...
        t1.cancel()  # ... which is cancelled before it runs
        await asyncio.gather(t1, t2, return_exceptions=True)
        assert t1.cancelled()
        assert got == [2]
        assert not lock.locked()

    run(loop, main())


def test_async_lock_release_unlocked_raises(loop, a):
    lock = a.Lock()

    async def main():
        with pytest.raises(RuntimeError):
            lock.release()

    run(loop, main())


# ------------------------------------------------------------ async: Semaphore


def test_async_semaphore_counts(loop, a):
    sem = a.Semaphore(2)
    active = []
    peak = []

    async def worker():
        async with sem:
            active.append(1)
            peak.append(len(active))
            await asyncio.sleep(0.001)
            active.pop()

    async def main():
        await asyncio.gather(*(worker() for _ in range(10)))
        assert not sem.locked()

    run(loop, main())
    assert max(peak) == 2


def test_async_semaphore_locked_and_acquire(loop, a):
    sem = a.Semaphore(1)

    async def main():
        assert not sem.locked()
        assert await a.acquire(sem) is True
        assert sem.locked()
        t = asyncio.ensure_future(a.acquire(sem))
        await asyncio.sleep(0.01)
        assert not t.done()
        sem.release()
        assert await t is True
        sem.release()
        assert not sem.locked()

    run(loop, main())


def test_async_bounded_semaphore_over_release(loop, a):
    sem = a.BoundedSemaphore(1)

    async def main():
        with pytest.raises(ValueError):
            sem.release()

    run(loop, main())


def test_async_semaphore_cancel_does_not_lose_permit(loop, a):
    sem = a.Semaphore(0)

    async def main():
        ts = [asyncio.ensure_future(a.acquire(sem)) for _ in range(3)]
        await asyncio.sleep(0)
        ts[0].cancel()
        sem.release()
        await asyncio.sleep(0.01)
        results = await asyncio.gather(ts[0], ts[1], return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert results[1] is True
        # the one permit went to the second waiter; the third still waits
        assert not ts[2].done()
        sem.release()
        assert await ts[2] is True

    run(loop, main())


# ---------------------------------------------------------------- async: Event


def test_async_event(loop, a):
    ev = a.Event()

    async def main():
        assert not ev.is_set()
        ts = [asyncio.ensure_future(a.wait(ev)) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert not any(t.done() for t in ts)
        ev.set()
        assert await asyncio.gather(*ts) == [True, True, True]
        assert await a.wait(ev) is True
        ev.clear()
        t = asyncio.ensure_future(a.wait(ev))
        await asyncio.sleep(0.01)
        assert not t.done()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run(loop, main())


# ------------------------------------------------------------ async: Condition


def test_async_condition_notify_one_and_all(loop, a):
    cond = a.Condition()
    woke = []

    async def waiter(i):
        async with cond:
            assert await a.wait(cond) is True
            woke.append(i)

    async def main():
        ts = [asyncio.ensure_future(waiter(i)) for i in range(4)]
        await asyncio.sleep(0.01)
        async with cond:
            cond.notify(1)
        await asyncio.sleep(0.01)
        assert woke == [0]
        async with cond:
            cond.notify_all()
        await asyncio.gather(*ts)
        assert sorted(woke) == [0, 1, 2, 3]

    run(loop, main())


def test_async_condition_wait_for(loop, a):
    cond = a.Condition()
    state = []

    async def main():
        async def setter():
            for i in range(3):
                await asyncio.sleep(0.001)
                async with cond:
                    state.append(i)
                    cond.notify_all()

        t = asyncio.ensure_future(setter())
        async with cond:
            r = await a.wait_for(cond, lambda: len(state) == 3)
        assert r is True
        await t

    run(loop, main())


def test_async_condition_unacquired(loop, a):
    cond = a.Condition()

    async def main():
        with pytest.raises(RuntimeError):
            await a.wait(cond)
        with pytest.raises(RuntimeError):
            cond.notify()

    run(loop, main())


def test_async_condition_cancelled_wait_reacquires(loop, a):
    lock = a.Lock()
    cond = a.Condition(lock)

    async def main():
        async def w():
            async with cond:
                await a.wait(cond)

        t = asyncio.ensure_future(w())
        await asyncio.sleep(0.01)
        async with cond:
            t.cancel()
            await asyncio.sleep(0.01)
            # the cancelled waiter needs the lock back before it can finish
            assert not t.done()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert not lock.locked()

    run(loop, main())


# -------------------------------------------------------------- async: Barrier

needs_asyncio_barrier = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.Barrier is 3.11+"
)


@needs_asyncio_barrier
def test_async_barrier(loop, a):
    b = a.Barrier(3)

    async def main():
        for _ in range(2):
            idx = await asyncio.gather(*(a.wait(b) for _ in range(3)))
            assert sorted(idx) == [0, 1, 2]
        assert b.n_waiting == 0
        assert not b.broken

    run(loop, main())


@needs_asyncio_barrier
def test_async_barrier_abort(loop, a):
    b = a.Barrier(3)

    async def main():
        ts = [asyncio.ensure_future(a.wait(b)) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert b.n_waiting == 2
        r = b.abort()
        if asyncio.iscoroutine(r):
            await r
        res = await asyncio.gather(*ts, return_exceptions=True)
        assert all(isinstance(x, asyncio.BrokenBarrierError) for x in res)
        assert b.broken

    run(loop, main())


@needs_asyncio_barrier
def test_async_barrier_cancelled_waiter_leaves(loop, a):
    b = a.Barrier(2)

    async def main():
        t = asyncio.ensure_future(a.wait(b))
        await asyncio.sleep(0.01)
        assert b.n_waiting == 1
        t.cancel()
        await asyncio.gather(t, return_exceptions=True)
        assert b.n_waiting == 0
        assert not b.broken

    run(loop, main())


# ------------------------------------------------------- threads: extra checks


THREADING = {"stdlib": threading, "ferrio": sync}


@pytest.fixture
def th(kind):
    return THREADING[kind]


def test_lock_bad_arguments(th):
    lock = th.Lock()
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(True, -2)
    with pytest.raises(OverflowError):
        lock.acquire(True, 1e10)
    with pytest.raises(TypeError):
        lock.acquire(timeout=None)
    assert not lock.locked()
    sem = th.Semaphore(1)
    with pytest.raises(ValueError):
        sem.acquire(False, 1)
    with pytest.raises(ValueError):
        sem.release(0)
    with pytest.raises(ValueError):
        th.Semaphore(-1)
    assert sem.acquire(timeout=-1) is True
    assert sem.acquire(timeout=-1) is False


@pytest.mark.parametrize("cls", ["Lock", "RLock"])
def test_lock_acquire_argument_conversion(th, cls):
    # _thread converts the timeout first (NaN, out of range), then checks
    # it against blocking; blocking is an int before 3.12, any truth after.
    lock = getattr(th, cls)()
    with pytest.raises(ValueError):
        lock.acquire(True, float("nan"))
    with pytest.raises(OverflowError):
        lock.acquire(False, float("inf"))
    with pytest.raises(OverflowError):
        lock.acquire(False, 2**70)
    with pytest.raises(TypeError):
        lock.acquire(True, "x")
    if sys.version_info < (3, 12):
        with pytest.raises(TypeError):
            lock.acquire(1.5)
        with pytest.raises(OverflowError):
            lock.acquire(2**70)
    else:
        assert lock.acquire(1.5) is True
        lock.release()
    assert lock.acquire(0) is True
    lock.release()


def test_condition_needs_a_lock_with_acquire_and_release(th):
    class HalfLock:
        def acquire(self, *a):
            return True

    for bad in (1, object(), HalfLock()):
        with pytest.raises(AttributeError):
            th.Condition(bad)


def test_event_at_fork_reinit_keeps_flag(th):
    ev = th.Event()
    ev.set()
    ev._at_fork_reinit()
    assert ev.is_set()
    assert ev.wait(0)


def test_condition_over_plain_threading_lock(th):
    cond = th.Condition(threading.Lock())
    hits = []

    def waiter():
        with cond:
            hits.append(cond.wait(10))

    t = threading.Thread(target=waiter)
    t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with cond:
            cond.notify()
        if hits:
            break
        time.sleep(0.001)
    t.join(10)
    assert hits == [True]


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
@pytest.mark.parametrize("what", ["lock", "rlock", "sem", "event", "cond", "barrier"])
def test_ctrl_c_interrupts_a_blocked_wait(th, what):
    lock = th.Lock()
    lock.acquire()
    rlock = th.RLock()
    holder_ready = threading.Event()
    release_holder = threading.Event()

    def hold():
        with rlock:
            holder_ready.set()
            release_holder.wait(30)

    h = threading.Thread(target=hold)
    h.start()
    holder_ready.wait(10)
    sem = th.Semaphore(0)
    ev = th.Event()
    cond = th.Condition()
    barrier = th.Barrier(2)
    blocked = {
        "lock": lambda: lock.acquire(timeout=30),
        "rlock": lambda: rlock.acquire(timeout=30),
        "sem": lambda: sem.acquire(timeout=30),
        "event": lambda: ev.wait(30),
        "cond": lambda: cond.__enter__() and cond.wait(30),
        "barrier": lambda: barrier.wait(30),
    }[what]
    try:
        with sigint_after(), pytest.raises(KeyboardInterrupt):
            blocked()
    finally:
        release_holder.set()
        h.join(10)
    if what == "cond":
        # threading takes the lock back before the exception leaves wait()
        assert cond._is_owned()
        cond.release()
    if what == "lock":
        lock.release()
        assert lock.acquire(False)
    if what == "sem":
        sem.release()
        assert sem.acquire(False)


# ------------------------------------------ threads and coroutines, one object


def test_ferrio_only_lock_shared_by_threads_and_coroutines(loop):
    lock = sync.Lock()
    counter = [0]
    N = 2000

    def thread_body():
        for _ in range(N):
            with lock:
                v = counter[0]
                counter[0] = v + 1

    async def coro_body():
        for _ in range(N // 10):
            async with lock:
                v = counter[0]
                await asyncio.sleep(0)
                counter[0] = v + 1

    threads = [threading.Thread(target=thread_body) for _ in range(3)]
    for t in threads:
        t.start()
    run(loop, asyncio.gather(*(coro_body() for _ in range(4))), timeout=60)
    for t in threads:
        t.join(60)
    assert counter[0] == 3 * N + 4 * (N // 10)
    assert not lock.locked()


def test_ferrio_only_event_set_from_a_thread_wakes_coroutines(loop):
    ev = sync.Event()

    async def main():
        ts = [asyncio.ensure_future(ev.wait_async()) for _ in range(5)]
        await asyncio.sleep(0.01)
        threading.Timer(0.01, ev.set).start()
        return await asyncio.gather(*ts)

    assert run(loop, main()) == [True] * 5


def test_ferrio_only_semaphore_awaited_from_two_loops(loop_factory):
    sem = sync.Semaphore(1)
    inside = [0]
    peak = [0]
    errors = []

    async def body():
        for _ in range(200):
            async with sem:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
                await asyncio.sleep(0)
                inside[0] -= 1

    async def both():
        await asyncio.wait_for(asyncio.gather(body(), body()), 60)

    def in_thread():
        lp = loop_factory()
        try:
            lp.run_until_complete(both())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            lp.close()

    ts = [threading.Thread(target=in_thread) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    assert not errors
    assert peak[0] == 1
    assert sem._value == 1


def test_ferrio_only_async_waiter_on_closed_loop_gives_permit_back(loop_factory):
    sem = sync.Semaphore(0)
    lp = loop_factory()

    async def park():
        asyncio.ensure_future(sem.acquire_async())
        await asyncio.sleep(0.01)

    lp.run_until_complete(park())
    lp.close()
    sem.release()  # the waiter's loop is closed: the permit comes back
    assert sem._value == 1


def test_ferrio_only_rlock_async_reentrant_per_task(loop):
    rlock = sync.RLock()

    async def main():
        async def other_task():
            async with rlock:
                return rlock._recursion_count()

        async with rlock:
            async with rlock:
                assert rlock._is_owned()
                assert rlock._recursion_count() == 2
            other = asyncio.ensure_future(other_task())
            await asyncio.sleep(0.01)
            assert not other.done()

            async def release_elsewhere():
                rlock.release()

            with pytest.raises(RuntimeError):
                await asyncio.ensure_future(release_elsewhere())
        assert await other == 1
        assert not rlock._is_owned()
        assert not rlock.locked()

    run(loop, main())


# ------------------------------------------------------------------- RWLock
# No stdlib counterpart: ferrio-only, the async ones still on both loops.


def _wait_until(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_ferrio_only_rwlock_readers_share_writer_excludes():
    rw = sync.RWLock()
    assert rw.acquire_read() and rw.acquire_read(False)
    assert not rw.acquire_write(False)
    assert not rw.acquire_write(timeout=0.01)
    rw.release_read()
    rw.release_read()
    with pytest.raises(RuntimeError):
        rw.release_read()
    with rw.write():
        assert not rw.acquire_read(False)
        assert not rw.acquire_write(False)
    with pytest.raises(RuntimeError):
        rw.release_write()
    with pytest.raises(ValueError):
        rw.acquire_read(False, 1)


def test_ferrio_only_rwlock_writer_preferring_blocks_new_readers():
    rw = sync.RWLock()
    rw.acquire_read()
    got = []
    w = threading.Thread(target=lambda: (rw.acquire_write(), got.append("w"), rw.release_write()))
    w.start()
    _wait_until(lambda: "writers=1" in repr(rw))
    # a writer waits: a new reader must queue behind it
    assert not rw.acquire_read(False)
    r = threading.Thread(target=lambda: (rw.acquire_read(), got.append("r"), rw.release_read()))
    r.start()
    _wait_until(lambda: "readers=1" in repr(rw))
    rw.release_read()
    w.join(10)
    r.join(10)
    assert got == ["w", "r"]


def test_ferrio_only_rwlock_reader_preferring_lets_readers_in():
    rw = sync.RWLock(prefer_writers=False)
    rw.acquire_read()
    w = threading.Thread(target=lambda: (rw.acquire_write(), rw.release_write()))
    w.start()
    _wait_until(lambda: "writers=1" in repr(rw))
    assert rw.acquire_read(False)  # readers still enter
    rw.release_read()
    rw.release_read()
    w.join(10)
    assert not w.is_alive()


def test_ferrio_only_rwlock_timed_out_writer_unblocks_readers():
    rw = sync.RWLock()
    rw.acquire_read()
    res = []
    w = threading.Thread(target=lambda: res.append(rw.acquire_write(timeout=0.05)))
    w.start()
    _wait_until(lambda: "writers=1" in repr(rw))
    r = threading.Thread(target=lambda: res.append(rw.acquire_read(timeout=10)))
    r.start()
    w.join(10)
    r.join(10)
    assert sorted(res) == [False, True]
    rw.release_read()
    rw.release_read()
    assert rw.acquire_write(False)
    rw.release_write()


def test_ferrio_only_rwlock_async_and_threads(loop):
    rw = sync.RWLock()
    state = {"readers": 0, "writer": 0, "bad": 0}
    guard = threading.Lock()

    def check():
        if state["writer"] > 1 or (state["writer"] and state["readers"]):
            state["bad"] += 1

    def enter(kind, d):
        with guard:
            state[kind] += d
            check()

    async def coro(i):
        for k in range(100):
            if (i + k) % 4 == 0:
                async with rw.write():
                    enter("writer", 1)
                    await asyncio.sleep(0)
                    enter("writer", -1)
            else:
                async with rw.read():
                    enter("readers", 1)
                    await asyncio.sleep(0)
                    enter("readers", -1)

    def thread_body(i):
        for k in range(300):
            if (i + k) % 5 == 0:
                with rw.write():
                    enter("writer", 1)
                    enter("writer", -1)
            else:
                with rw.read():
                    enter("readers", 1)
                    enter("readers", -1)

    ts = [threading.Thread(target=thread_body, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()

    async def main():
        await asyncio.gather(*(coro(i) for i in range(4)))
        assert await rw.acquire_write_async() is True
        rw.release_write()

    run(loop, main(), timeout=60)
    for t in ts:
        t.join(60)
    assert state == {"readers": 0, "writer": 0, "bad": 0}


def test_ferrio_only_rwlock_cancelled_async_writer_unblocks_readers(loop):
    rw = sync.RWLock()

    async def main():
        rw.acquire_read()
        wt = asyncio.ensure_future(rw.acquire_write_async())
        await asyncio.sleep(0)
        assert not rw.acquire_read(False)  # writer queued
        wt.cancel()
        await asyncio.gather(wt, return_exceptions=True)
        await asyncio.sleep(0)
        assert rw.acquire_read(False)
        rw.release_read()
        rw.release_read()

    run(loop, main())
