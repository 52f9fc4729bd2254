"""run_forever / run_until_complete / stop / close / time and their errors."""

import asyncio
import sys
import threading
import time
import weakref

import pytest


def test_run_until_complete_returns_result(loop):
    async def coro():
        await asyncio.sleep(0)
        return 42

    assert loop.run_until_complete(coro()) == 42
    assert not loop.is_running()


def test_run_until_complete_raises_exception(loop):
    async def coro():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(coro())


def test_run_until_complete_future_from_other_loop(loop, loop_factory):
    other = loop_factory()
    try:
        fut = other.create_future()
        with pytest.raises(ValueError):
            loop.run_until_complete(fut)
    finally:
        other.close()


def test_stop_before_future_done(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)


def test_is_running_inside_and_outside(loop):
    seen = []
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [True]
    assert not loop.is_running()


def test_running_loop_registered(loop):
    seen = []

    def cb():
        seen.append(asyncio.get_running_loop() is loop)
        seen.append(asyncio._get_running_loop() is loop)

    loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [True, True]
    assert asyncio._get_running_loop() is None


def test_set_running_loop_looked_up_at_call_time(loop, monkeypatch):
    calls = []
    real = asyncio.events._set_running_loop

    def spy(lp):
        calls.append(lp)
        real(lp)

    monkeypatch.setattr(asyncio.events, "_set_running_loop", spy)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [loop, None]


def test_run_forever_while_running_raises(loop):
    errors = []

    def cb():
        try:
            loop.run_forever()
        except RuntimeError as e:
            errors.append(str(e))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == ["This event loop is already running"]


def test_run_until_complete_while_running_raises_before_wrapping(loop):
    errors = []

    async def inner():
        return 1

    def cb():
        coro = inner()
        try:
            loop.run_until_complete(coro)
        except RuntimeError as e:
            errors.append(str(e))
        finally:
            coro.close()
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == ["This event loop is already running"]


def test_another_loop_running_raises(loop, loop_factory):
    other = loop_factory()
    errors = []

    def cb():
        try:
            other.run_forever()
        except RuntimeError as e:
            errors.append(str(e))
        loop.stop()

    try:
        loop.call_soon(cb)
        loop.run_forever()
    finally:
        other.close()
    assert errors == ["Cannot run the event loop while another loop is running"]


def test_closed_loop_errors(loop):
    loop.close()
    assert loop.is_closed()
    loop.close()  # idempotent
    for call in (
        lambda: loop.call_soon(print),
        lambda: loop.call_later(1, print),
        lambda: loop.call_at(1, print),
        lambda: loop.call_soon_threadsafe(print),
        loop.run_forever,
    ):
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            call()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.create_task(coro)
    coro.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        coro = asyncio.sleep(0)
        try:
            loop.run_until_complete(coro)
        finally:
            coro.close()


def test_close_running_loop_raises(loop):
    errors = []

    def cb():
        try:
            loop.close()
        except RuntimeError as e:
            errors.append(str(e))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()


def test_loop_runs_again_after_stop(loop):
    out = []
    for i in range(3):
        loop.call_soon(out.append, i)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert out == [0, 1, 2]


def test_stop_lets_current_pass_finish(loop):
    out = []
    loop.call_soon(out.append, 1)
    loop.call_soon(loop.stop)
    loop.call_soon(out.append, 2)
    loop.run_forever()
    assert out == [1, 2]


def test_stop_before_run_runs_one_pass(loop):
    out = []
    loop.call_soon(out.append, 1)
    loop.stop()
    loop.run_forever()
    assert out == [1]
    # and the loop is not stuck in "stopping"
    loop.call_soon(out.append, 2)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == [1, 2]


def test_time_is_monotonic_clock(loop):
    a = time.monotonic()
    t = loop.time()
    b = time.monotonic()
    assert a <= t <= b
    assert isinstance(t, float)


def test_time_sub_millisecond(loop):
    samples = {loop.time() for _ in range(1000)}
    # a millisecond clock would give at most a handful of distinct values
    assert len(samples) > 10


def test_weakref_and_attributes(loop):
    ref = weakref.ref(loop)
    assert ref() is loop
    loop.some_attribute = 1
    assert loop.some_attribute == 1
    assert isinstance(loop, asyncio.AbstractEventLoop)


def test_repr(loop):
    r = repr(loop)
    assert "running=False" in r and "closed=False" in r


def test_asyncgen_hooks_installed_while_running(loop):
    before = sys.get_asyncgen_hooks()
    seen = []

    def cb():
        hooks = sys.get_asyncgen_hooks()
        seen.append(hooks.firstiter is not None and hooks.finalizer is not None)

    loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [True]
    assert sys.get_asyncgen_hooks() == before


def test_shutdown_asyncgens(loop):
    closed = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def main():
        g = agen()
        assert await g.__anext__() == 1
        return g

    g = loop.run_until_complete(main())
    assert closed == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert closed == [True]
    del g


def test_asyncgen_after_shutdown_warns(loop):
    async def agen():
        yield 1

    async def main():
        g = agen()
        with pytest.warns(ResourceWarning, match="scheduled after loop.shutdown_asyncgens"):
            await g.__anext__()
        await g.aclose()

    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(main())


def test_run_in_thread_loop(loop_factory):
    out = []

    def worker():
        lp = loop_factory()
        try:
            out.append(lp.run_until_complete(asyncio.sleep(0, "done")))
        finally:
            lp.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert out == ["done"]
