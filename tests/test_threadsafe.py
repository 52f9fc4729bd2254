"""call_soon_threadsafe: wakes a sleeping loop, many producers, no lost wakeup."""

import threading
import time


def test_wakes_sleeping_loop(loop):
    out = []

    def producer():
        time.sleep(0.05)
        loop.call_soon_threadsafe(lambda: (out.append("woke"), loop.stop()))

    # Nothing else is scheduled: without a wakeup the loop would sleep forever
    # (guard with a far timer so a broken loop fails instead of hanging).
    guard = loop.call_later(10, loop.stop)
    t = threading.Thread(target=producer)
    t.start()
    t0 = time.monotonic()
    loop.run_forever()
    t.join()
    guard.cancel()
    assert out == ["woke"]
    assert time.monotonic() - t0 < 5


def test_many_producers_no_lost_callbacks(loop):
    producers, per = 4, 5000
    total = producers * per
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == total:
            loop.stop()

    def produce():
        for i in range(per):
            loop.call_soon_threadsafe(cb)
            if i % 500 == 0:
                time.sleep(0.0005)  # let the loop fall asleep now and then

    guard = loop.call_later(30, loop.stop)
    threads = [threading.Thread(target=produce) for _ in range(producers)]
    for t in threads:
        t.start()
    loop.run_forever()
    for t in threads:
        t.join()
    guard.cancel()
    assert count == total


def test_repeated_sleep_wake_cycles(loop):
    """Each round the loop goes to sleep, then one threadsafe call wakes it."""
    rounds = 200
    done = []

    def one_round(i):
        fut = loop.create_future()

        def later():
            time.sleep(0.0002)
            loop.call_soon_threadsafe(fut.set_result, i)

        threading.Thread(target=later).start()
        return fut

    async def main():
        for i in range(rounds):
            done.append(await one_round(i))

    guard = loop.call_later(60, loop.stop)
    loop.run_until_complete(main())
    guard.cancel()
    assert done == list(range(rounds))


def test_threadsafe_from_loop_thread_keeps_order(loop):
    out = []

    def cb():
        loop.call_soon(out.append, 1)
        loop.call_soon_threadsafe(out.append, 2)
        loop.call_soon(out.append, 3)

    loop.call_soon(cb)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert out == [1, 2, 3]


def test_threadsafe_returns_handle_and_cancel(loop):
    out = []
    h = loop.call_soon_threadsafe(out.append, 1)
    h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == []


def test_other_threads_cancel_and_inspect_handles_while_loop_runs(loop):
    """Threads cancel, repr and inspect handles (plain and timers) while the
    loop runs and reschedules: every callback either runs once or was
    cancelled first, nothing is lost, nothing raises."""
    import contextvars

    n = 4000
    ran = []
    handles = []
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def cb(i):
        ran.append(i)

    def schedule():
        # On the loop thread: a mix of plain handles and timers.
        for i in range(n):
            if i % 2:
                h = loop.call_soon(cb, i)
            else:
                h = loop.call_later(0.001 * (i % 5), cb, i)
            with lock:
                handles.append(h)
        # After the last timer (4 ms) is due: however long scheduling took
        # with the other threads contending for the GIL.
        loop.call_later(0.05, loop.stop)

    def meddle(k):
        try:
            j = k
            while not stop.is_set():
                with lock:
                    h = handles[j % len(handles)] if handles else None
                if h is not None:
                    repr(h)
                    h.cancelled()
                    if hasattr(h, "get_context"):
                        assert isinstance(h.get_context(), contextvars.Context)
                    if j % 3 == 0:
                        h.cancel()
                j += 7
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=meddle, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        loop.call_soon(schedule)
        guard = loop.call_later(30, loop.stop)
        loop.run_forever()
        guard.cancel()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, errors
    assert len(ran) == len(set(ran))
    cancelled = {i for i, h in enumerate(handles) if h.cancelled()}
    assert set(ran) | cancelled == set(range(n))


def test_context_of_the_calling_thread_is_captured(loop):
    """A callback runs in a copy of the context of the thread that called
    call_soon_threadsafe (asyncio's rule; rloop 0.5 runs it in an empty
    one), whether the burst is short or long enough for ferrio's lazy
    empty-context path (64+ pending), and a later change in that thread
    does not leak in."""
    import contextvars

    var = contextvars.ContextVar("var", default="unset")
    seen = []
    n = 200

    def producer():
        for i in range(n):
            if i == n // 2:
                var.set("thread")
            loop.call_soon_threadsafe(lambda: seen.append(var.get()))
        var.set("changed-after")
        loop.call_soon_threadsafe(loop.stop)

    guard = loop.call_later(10, loop.stop)
    t = threading.Thread(target=producer)
    loop.call_soon(t.start)
    loop.run_forever()
    t.join()
    guard.cancel()
    assert seen == ["unset"] * (n // 2) + ["thread"] * (n // 2)


def test_scheduling_methods_check_self(loop):
    """The scheduling methods refuse an object that is not a loop of their
    class with TypeError, called unbound or bound by hand."""
    cls = type(loop)
    for name in ("call_soon", "call_soon_threadsafe", "call_later", "call_at"):
        meth = getattr(cls, name)
        args = (print,) if name.startswith("call_soon") else (1, print)
        try:
            meth(object(), *args)
        except (TypeError, AttributeError):
            pass  # asyncio's Python methods fail on the attribute lookup
        else:
            raise AssertionError(f"{name} accepted a foreign self")
        get = getattr(meth, "__get__", None)
        if get is not None:
            try:
                get(object())(*args)
            except (TypeError, AttributeError):
                pass
            else:
                raise AssertionError(f"{name} bound to a foreign self")
