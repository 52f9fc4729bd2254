"""Stress for ferrio.sync, bounded in count and time: no lost wakeup, no
deadlock (every wait has a timeout and the test checks it was not hit),
no leaked permit. The assertions are exact counts, so a lost update or a
lost wakeup fails them. Run against ``threading`` too where it has the
primitive, so the numbers are the stdlib's own.
"""

import asyncio
import random
import threading
import time

import pytest

from ferrio import sync

MODULES = {"stdlib": threading, "ferrio": sync}


@pytest.fixture(params=list(MODULES))
def th(request):
    return MODULES[request.param]


def _run_threads(fns, timeout=120):
    errors = []

    def wrap(fn):
        def body():
            try:
                fn()
            except BaseException as e:  # reported by the assertion below
                errors.append(e)

        return body

    # Daemon threads: a deadlock fails the test instead of hanging pytest.
    ts = [threading.Thread(target=wrap(f), daemon=True) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    assert not any(t.is_alive() for t in ts), "deadlock: threads still running"
    assert not errors, errors


@pytest.mark.parametrize("which", ["Lock", "RLock"])
def test_eight_threads_lock_counter(th, which):
    lock = getattr(th, which)()
    counter = [0]
    N = 200_000

    def body():
        for _ in range(N):
            with lock:
                counter[0] += 1

    _run_threads([body] * 8)
    assert counter[0] == 8 * N
    assert lock.acquire(False)
    lock.release()


def test_condition_producer_consumer_with_timeouts(th):
    cond = th.Condition(th.Lock())
    buf = []
    CAP, PER, NP, NC = 8, 5_000, 4, 4
    consumed = []
    done = [0]
    stalls = [0]

    def producer(base):
        def body():
            for i in range(PER):
                with cond:
                    while len(buf) >= CAP:
                        if not cond.wait(0.005):
                            stalls[0] += 1
                    buf.append(base + i)
                    cond.notify()
            with cond:
                done[0] += 1
                cond.notify_all()

        return body

    def consumer():
        got = []
        while True:
            with cond:
                while not buf and done[0] < NP:
                    cond.wait(0.005)
                if not buf:
                    break
                got.append(buf.pop(0))
                cond.notify()
        consumed.extend(got)

    _run_threads([producer(p * PER) for p in range(NP)] + [consumer] * NC)
    assert sorted(consumed) == list(range(NP * PER))


def test_barrier_with_aborts(th):
    parties, rounds = 4, 300
    b = th.Barrier(parties, timeout=10)
    passed = [0] * parties
    broken = [0] * parties
    stop = threading.Event()

    def party(i):
        def body():
            for _ in range(rounds):
                try:
                    b.wait()
                    passed[i] += 1
                except threading.BrokenBarrierError:
                    broken[i] += 1
                    # wait for the aborter to reset, then go on
                    deadline = time.monotonic() + 10
                    while b.broken and time.monotonic() < deadline:
                        time.sleep(0.0005)

        return body

    def aborter():
        rnd = random.Random(7)
        while not stop.is_set():
            time.sleep(rnd.uniform(0.001, 0.005))
            b.abort()
            time.sleep(0.001)
            b.reset()

    a = threading.Thread(target=aborter)
    a.start()
    try:
        _run_threads([party(i) for i in range(parties)])
    finally:
        stop.set()
        a.join(10)
    assert all(p + k == rounds for p, k in zip(passed, broken))
    assert sum(broken) > 0


def test_ferrio_only_mixed_threads_and_coroutines_on_one_semaphore(loop):
    LIMIT = 3
    sem = sync.Semaphore(LIMIT)
    guard = threading.Lock()
    inside = [0]
    peak = [0]
    stop = threading.Event()

    def enter():
        with guard:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])

    def leave():
        with guard:
            inside[0] -= 1

    def thread_body(seed):
        rnd = random.Random(seed)

        def body():
            n = 0
            while not stop.is_set() and n < 3000:
                if sem.acquire(timeout=rnd.choice([0, 0.0001, 0.01])):
                    enter()
                    if rnd.random() < 0.1:
                        time.sleep(0.0001)
                    leave()
                    sem.release()
                n += 1

        return body

    async def coro_body(seed):
        rnd = random.Random(seed)
        ok = cancelled = 0
        for _ in range(300):
            try:
                await asyncio.wait_for(sem.acquire_async(), rnd.choice([0.0001, 0.001, 0.05]))
            except asyncio.TimeoutError:
                cancelled += 1
                continue
            enter()
            await asyncio.sleep(0)
            leave()
            sem.release()
            ok += 1
        return ok, cancelled

    async def main():
        return await asyncio.gather(*(coro_body(s) for s in range(6)))

    threads = [threading.Thread(target=thread_body(100 + s)) for s in range(3)]
    for t in threads:
        t.start()
    try:
        results = loop.run_until_complete(asyncio.wait_for(main(), 120))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert sum(ok for ok, _ in results) > 0
    assert peak[0] <= LIMIT
    # no leaked or duplicated permit after random cancellations
    assert sem._value == LIMIT


@pytest.mark.parametrize("how", ["event_set", "notify_all", "barrier", "release_n"])
def test_many_waiters_woken_together_all_return(th, how):
    """Sixteen threads released by one call, fifty rounds, some waiters
    with short timeouts: every released thread returns (a lost wake-up
    leaves threads asleep and fails the join)."""
    T, ROUNDS = 16, 50
    done = [0]
    count = threading.Lock()

    def finished():
        with count:
            done[0] += 1

    if how == "event_set":
        events = [th.Event() for _ in range(ROUNDS)]

        def body(i):
            for r in range(ROUNDS):
                if i % 5 == 0:
                    events[r].wait(0.0005)  # may time out: not counted
                else:
                    assert events[r].wait(30)
                    finished()

        def driver():
            for r in range(ROUNDS):
                time.sleep(0.001)
                events[r].set()

        expected = ROUNDS * (T - len(range(0, T, 5)))
    elif how == "notify_all":
        cond = th.Condition(th.Lock())
        gen = [0]

        def body(i):
            for r in range(ROUNDS):
                with cond:
                    assert cond.wait_for(lambda: gen[0] > r, 30)
                finished()

        def driver():
            for _ in range(ROUNDS):
                time.sleep(0.001)
                with cond:
                    gen[0] += 1
                    cond.notify_all()

        expected = ROUNDS * T
    elif how == "barrier":
        b = th.Barrier(T + 1)

        def body(i):
            for _ in range(ROUNDS):
                b.wait(30)
                finished()

        def driver():
            for _ in range(ROUNDS):
                b.wait(30)

        expected = ROUNDS * T
    else:
        sem = th.Semaphore(0)

        def body(i):
            for _ in range(ROUNDS):
                assert sem.acquire(timeout=30)
                finished()

        def driver():
            for _ in range(ROUNDS):
                time.sleep(0.001)
                sem.release(T)

        expected = ROUNDS * T
    _run_threads([lambda i=i: body(i) for i in range(T)] + [driver], timeout=60)
    assert done[0] == expected
