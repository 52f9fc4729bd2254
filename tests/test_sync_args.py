"""Odd arguments to the thread faces of ferrio.sync and ferrio.Queue,
against ``threading`` and ``queue``.

Differential: ``kind`` is "stdlib" or "ferrio", and every test states what
the stdlib does. What it pins down: an explicit ``None`` for
``blocking``/``block`` is not the default (PyO3 maps both to None), a
timeout is only read when a call really has to wait (the stdlib's Python
primitives evaluate it lazily), infinite or huge timeouts raise where the
stdlib's do instead of blocking forever, and ownership is checked before
arguments. A sweep of ~13 bad values through every method found each of
these (2026-12-05).
"""

import decimal
import math
import queue
import sys
import threading

import pytest

import ferrio
from ferrio import sync

KINDS = ["stdlib", "ferrio"]
PY312 = sys.version_info >= (3, 12)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def mod(kind):
    return threading if kind == "stdlib" else sync


def Queue(kind, maxsize=0):
    return queue.Queue(maxsize) if kind == "stdlib" else ferrio.Queue(maxsize)


def outcome(fn, wait=1.0):
    """What `fn()` does within `wait` seconds, run in a helper thread:
    ("ok", value), (exception type,) or ("blocks",)."""
    box = []

    def run():
        try:
            box.append(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - the outcome is the point
            # ferrio's queue exceptions subclass queue's (and asyncio's)
            for base in (queue.Empty, queue.Full):
                if isinstance(e, base):
                    box.append((base,))
                    return
            box.append((type(e),))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(wait)
    return box[0] if box else ("blocks",)


@pytest.mark.parametrize("name", ["Lock", "RLock"])
def test_lock_acquire_explicit_none_blocking(kind, name):
    # 3.10/3.11 parse `blocking` as a C int; 3.12+ take its truth, so None
    # means "don't block".
    lk = getattr(mod(kind), name)()
    if PY312:
        assert outcome(lambda: lk.acquire(None)) == ("ok", True)
        held = getattr(mod(kind), name)()
        held.acquire()
        assert outcome(lambda: held.acquire(blocking=None)) == ("ok", False)
    else:
        assert outcome(lambda: lk.acquire(None)) == (TypeError,)
        assert outcome(lambda: lk.acquire(blocking=None)) == (TypeError,)


@pytest.mark.parametrize("name", ["Lock", "RLock"])
@pytest.mark.parametrize(
    "timeout, exc",
    [
        (None, TypeError),
        ("1", TypeError),
        (decimal.Decimal(1), TypeError),
        (math.nan, ValueError),
        (math.inf, OverflowError),
        (2**70, OverflowError),
        (1e10, OverflowError),
        (-2, ValueError),
    ],
)
def test_lock_acquire_bad_timeouts(kind, name, timeout, exc):
    lk = getattr(mod(kind), name)()
    assert outcome(lambda: lk.acquire(timeout=timeout)) == (exc,)
    assert outcome(lambda: lk.acquire(True, timeout)) == (exc,)
    assert not lk.locked() if name == "Lock" else True


def test_lock_acquire_int_timeout(kind):
    lk = mod(kind).Lock()
    assert lk.acquire(timeout=1) is True
    assert lk.acquire(timeout=0) is False


def test_semaphore_explicit_none_does_not_block(kind):
    empty = mod(kind).Semaphore(0)
    assert outcome(lambda: empty.acquire(None)) == ("ok", False)
    assert outcome(lambda: empty.acquire(blocking=None)) == ("ok", False)
    one = mod(kind).Semaphore(1)
    assert outcome(lambda: one.acquire(None)) == ("ok", True)
    # not blocking and a timeout: ValueError, even with a permit free
    assert outcome(lambda: mod(kind).Semaphore(1).acquire(None, 1)) == (ValueError,)
    assert outcome(lambda: mod(kind).Semaphore(1).acquire(False, -1)) == (ValueError,)


def test_semaphore_timeout_read_only_when_waiting(kind):
    # A free permit: the timeout is never looked at.
    for t in ("x", math.inf, math.nan, object()):
        assert outcome(lambda: mod(kind).Semaphore(1).acquire(timeout=t)) == ("ok", True)
    # No permit: `_time() + timeout`, then Condition.wait's conversion.
    empty = mod(kind).Semaphore(0)
    assert outcome(lambda: empty.acquire(timeout="x")) == (TypeError,)
    assert outcome(lambda: empty.acquire(timeout=math.inf)) == (OverflowError,)
    assert outcome(lambda: empty.acquire(timeout=2**70)) == (OverflowError,)
    assert outcome(lambda: empty.acquire(timeout=-1)) == ("ok", False)
    assert outcome(lambda: empty.acquire(timeout=0)) == ("ok", False)
    assert outcome(lambda: empty.acquire(timeout=0.01)) == ("ok", False)


@pytest.mark.parametrize("n, exc", [(0.5, ValueError), (0, ValueError), (-1, ValueError), ("x", TypeError), (None, TypeError)])
def test_semaphore_release_bad_n(kind, n, exc):
    sem = mod(kind).Semaphore(0)
    assert outcome(lambda: sem.release(n)) == (exc,)
    assert outcome(lambda: sem.acquire(False)) == ("ok", False)


def test_bounded_semaphore_release_float_past_bound(kind):
    sem = mod(kind).BoundedSemaphore(2)
    assert outcome(lambda: sem.release(math.inf)) == (ValueError,)
    assert outcome(lambda: sem.release(None)) == (TypeError,)
    assert outcome(lambda: sem.release(1)) == (ValueError,)


def test_semaphore_release_big_n(kind):
    sem = mod(kind).Semaphore(0)
    sem.release(3)
    assert [sem.acquire(False) for _ in range(4)] == [True, True, True, False]


def test_event_wait_timeouts(kind):
    ev = mod(kind).Event()
    assert outcome(lambda: ev.wait(math.inf)) == (OverflowError,)
    assert outcome(lambda: ev.wait(2**70)) == (OverflowError,)
    assert outcome(lambda: ev.wait("x")) == (TypeError,)
    assert outcome(lambda: ev.wait(decimal.Decimal("0.01"))) == (TypeError,)
    for t in (0, -1, math.nan, 0.01):
        assert outcome(lambda: ev.wait(t)) == ("ok", False)
    ev.set()
    # set: the timeout is never read
    for t in ("x", math.inf, object()):
        assert outcome(lambda: ev.wait(t)) == ("ok", True)


def test_condition_checks_ownership_before_arguments(kind):
    cond = mod(kind).Condition()
    assert outcome(lambda: cond.wait("x")) == (RuntimeError,)
    assert outcome(lambda: cond.wait(math.inf)) == (RuntimeError,)
    assert outcome(lambda: cond.notify(None)) == (RuntimeError,)
    assert outcome(lambda: cond.notify(2**70)) == (RuntimeError,)
    assert outcome(lambda: cond.notify_all()) == (RuntimeError,)


def test_condition_owned_bad_arguments(kind):
    def owned(fn):
        def run():
            cond = mod(kind).Condition()
            with cond:
                return fn(cond)

        return outcome(run)

    assert owned(lambda c: c.wait("x")) == (TypeError,)
    assert owned(lambda c: c.wait(math.inf)) == (OverflowError,)
    assert owned(lambda c: c.wait(-1)) == ("ok", False)
    assert owned(lambda c: c.wait(math.nan)) == ("ok", False)
    # no waiters: `n` is never read
    assert owned(lambda c: c.notify(None)) == ("ok", None)
    assert owned(lambda c: c.notify("x")) == ("ok", None)
    assert owned(lambda c: c.notify(2**70)) == ("ok", None)
    # wait_for: the timeout is read only if the predicate is false
    assert owned(lambda c: c.wait_for(lambda: 7, timeout="x")) == ("ok", 7)
    assert owned(lambda c: c.wait_for(lambda: 0, timeout="x")) == (TypeError,)
    assert owned(lambda c: c.wait_for(lambda: 0, timeout=math.inf)) == (OverflowError,)
    assert owned(lambda c: c.wait_for(lambda: 0, timeout=-1)) == ("ok", 0)
    assert owned(lambda c: c.wait_for(lambda: "", timeout=0.01)) == ("ok", "")


def test_condition_notify_with_waiters_reads_n_as_python(kind):
    """notify(1.5) wakes two waiters (`n > 0; n -= 1` twice); notify(None)
    with a waiter is a TypeError."""
    cond = mod(kind).Condition()
    woken = []
    ready = threading.Semaphore(0)

    def waiter(i):
        with cond:
            ready.release()
            if cond.wait(5):
                woken.append(i)

    threads = [threading.Thread(target=waiter, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for _ in threads:
        ready.acquire()
    with cond:
        with pytest.raises(TypeError):
            cond.notify(None)
        cond.notify(1.5)
    with cond:
        pass
    deadline = threading.Event()
    deadline.wait(0.3)
    assert len(woken) == 2
    with cond:
        cond.notify_all()
    for t in threads:
        t.join(5)
    assert len(woken) == 3


def test_barrier_timeout_read_only_when_waiting(kind):
    assert outcome(lambda: mod(kind).Barrier(1).wait("x")) == ("ok", 0)
    b = mod(kind).Barrier(2)
    assert outcome(lambda: b.wait("x")) == (TypeError,)
    assert outcome(lambda: b.wait(math.inf)) == (OverflowError,)
    # the bad timeout left the barrier usable, not broken
    assert not b.broken and b.n_waiting == 0
    t = threading.Thread(target=b.wait, args=(5,))
    t.start()
    assert b.wait(5) in (0, 1)
    t.join(5)


def test_queue_explicit_none_block(kind):
    q = Queue(kind)
    assert outcome(lambda: q.get(None)) == (queue.Empty,)
    assert outcome(lambda: q.get(block=None)) == (queue.Empty,)
    full = Queue(kind, 1)
    full.put(1)
    assert outcome(lambda: full.put(2, None)) == (queue.Full,)
    # not blocking: the timeout is ignored
    assert outcome(lambda: q.get(False, "x")) == (queue.Empty,)


def test_queue_get_timeouts(kind):
    q = Queue(kind)
    q.put(1)
    # checked at once, item or not
    assert outcome(lambda: q.get(timeout=-1)) == (ValueError,)
    assert outcome(lambda: q.get(timeout="x")) == (TypeError,)
    # an infinite timeout is only converted when the queue is empty
    assert outcome(lambda: q.get(timeout=math.inf)) == ("ok", 1)
    assert outcome(lambda: q.get(timeout=math.inf)) == (OverflowError,)
    assert outcome(lambda: q.get(timeout=2**70)) == (OverflowError,)
    assert outcome(lambda: q.get(timeout=0)) == (queue.Empty,)
    assert outcome(lambda: q.get(timeout=0.01)) == (queue.Empty,)
    q.put(2)
    assert outcome(lambda: q.get(timeout=1)) == ("ok", 2)


def test_queue_put_timeouts(kind):
    # unbounded: block and timeout are never read
    q = Queue(kind)
    assert outcome(lambda: q.put(1, timeout=-1)) == ("ok", None)
    assert outcome(lambda: q.put(2, timeout="x")) == ("ok", None)
    assert q.qsize() == 2
    b = Queue(kind, 1)
    assert outcome(lambda: b.put(1, timeout=-1)) == (ValueError,)
    assert outcome(lambda: b.put(1, timeout=math.inf)) == ("ok", None)
    assert outcome(lambda: b.put(2, timeout=math.inf)) == (OverflowError,)
    assert outcome(lambda: b.put(2, timeout=0.01)) == (queue.Full,)
    assert b.qsize() == 1
