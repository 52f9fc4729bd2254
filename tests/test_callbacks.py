"""call_soon, Handle objects, contexts and the ready-queue generations."""

import asyncio
import contextvars
import gc
import weakref

import pytest

from conftest import is_ferrio


def run_pass(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_call_soon_fifo_with_args(loop):
    out = []
    for i in range(100):
        loop.call_soon(out.append, i)
    loop.call_soon(lambda *a: out.append(a), 1, 2, 3)
    run_pass(loop)
    assert out == list(range(100)) + [(1, 2, 3)]


def test_generations(loop):
    """What a pass schedules runs in the next pass, not the current one."""
    out = []

    def a():
        out.append("a")
        loop.call_soon(c)

    def b():
        out.append("b")

    def c():
        out.append("c")

    loop.call_soon(a)
    loop.call_soon(b)
    loop.call_soon(loop.stop)
    loop.run_forever()
    # stop() was in the first pass, so c (scheduled during it) runs in the
    # next run only.
    assert out == ["a", "b"]
    run_pass(loop)
    assert out == ["a", "b", "c"]


def test_handle_api(loop):
    h = loop.call_soon(print)
    assert not h.cancelled()
    if hasattr(asyncio.Handle, "get_context") or is_ferrio(loop):  # 3.12+ on asyncio
        assert isinstance(h.get_context(), contextvars.Context)
    h.cancel()
    assert h.cancelled()
    h.cancel()  # idempotent
    assert "cancelled" in repr(h)
    run_pass(loop)


def test_handle_cancel_prevents_run_and_releases_callback(loop):
    out = []

    class Big:
        pass

    big = Big()
    ref = weakref.ref(big)
    h = loop.call_soon(out.append, big)
    del big
    h.cancel()
    gc.collect()
    assert ref() is None, "cancel() must drop the callback's arguments"
    run_pass(loop)
    assert out == []


def test_handle_repr(loop):
    def my_callback():
        pass

    h = loop.call_soon(my_callback)
    r = repr(h)
    assert r.startswith("<Handle ")
    assert "my_callback" in r
    run_pass(loop)


def test_context_captured_at_call_time(loop):
    var = contextvars.ContextVar("var", default="default")
    seen = []
    var.set("at-schedule")
    loop.call_soon(lambda: seen.append(var.get()))
    var.set("later")
    run_pass(loop)
    assert seen == ["at-schedule"]


def test_explicit_context(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in-ctx")
    seen = []

    def cb():
        seen.append(var.get())
        var.set("changed-by-callback")

    h = loop.call_soon(cb, context=ctx)
    assert h._context is ctx
    run_pass(loop)
    assert seen == ["in-ctx"]
    assert ctx[var] == "changed-by-callback"
    assert var.get() == "default"


def test_context_changes_isolated_between_callbacks(loop):
    var = contextvars.ContextVar("var", default=0)
    seen = []

    def setter():
        var.set(99)

    loop.call_soon(setter)
    loop.call_soon(lambda: seen.append(var.get()))
    run_pass(loop)
    assert seen == [0]


def test_context_already_entered_goes_to_handler(loop, caplog):
    ctx = contextvars.copy_context()

    def outer():
        loop.call_soon(print, context=ctx)

    # Run the whole loop pass inside ctx: the handle's ctx.run then fails.
    loop.call_soon(loop.stop)
    ctx.run(outer)
    with caplog.at_level("ERROR", logger="asyncio"):
        ctx.run(loop.run_forever)
    run_pass(loop)
    # 3.11 calls the handler; 3.12+ runs the handler inside the handle's
    # (already entered) context, fails, and logs instead. Either way the
    # RuntimeError is reported and the loop keeps running.
    reported = [e["exception"] for e in loop.errors]
    logged = [r for r in caplog.records if "cannot enter context" in r.getMessage() or
              (r.exc_info and "cannot enter context" in str(r.exc_info[1]))]
    assert (len(reported) == 1 and isinstance(reported[0], RuntimeError)) or logged
    loop.errors.clear()


def test_callback_not_callable_reported_at_run(loop):
    loop.call_soon(1)  # not debug mode: accepted, fails when run
    run_pass(loop)
    assert len(loop.errors) == 1
    assert isinstance(loop.errors[0]["exception"], TypeError)
    loop.errors.clear()


def test_call_soon_signature_errors(loop):
    with pytest.raises(TypeError):
        loop.call_soon()
    with pytest.raises(TypeError):
        loop.call_soon(print, bogus=1)


def test_handle_types(loop):
    h = loop.call_soon(print)
    t = loop.call_later(10, print)
    if is_ferrio(loop):
        import ferrio

        assert isinstance(h, ferrio.Handle)
        assert isinstance(t, ferrio.TimerHandle)
    else:
        assert isinstance(h, asyncio.Handle)
        assert isinstance(t, asyncio.TimerHandle)
    t.cancel()
    h.cancel()


def test_many_callbacks_scheduled_from_callbacks(loop):
    count = 0
    n = 10_000

    def cb():
        nonlocal count
        count += 1
        if count < n:
            loop.call_soon(cb)
        else:
            loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert count == n


# Enough pending callbacks that ferrio represents their (empty) contexts
# lazily (LAZY_CONTEXT_FROM in src/event_loop/mod.rs), and timers, which are
# always lazy: each such callback must still run in its own context.
BURST = 300


def test_burst_context_changes_isolated_between_callbacks(loop):
    var = contextvars.ContextVar("var", default=0)
    seen = []

    def setter(i):
        var.set(i)

    def getter():
        seen.append(var.get())

    handles = []
    for i in range(BURST):
        handles.append(loop.call_soon(setter, i + 1))
        handles.append(loop.call_soon(getter))
    run_pass(loop)
    assert seen == [0] * BURST
    # A setter's handle keeps the context its callback changed.
    assert [h._context[var] for h in handles[0:10:2]] == [1, 2, 3, 4, 5]
    assert all(var not in h._context for h in handles[1:10:2])


def test_timer_context_changes_isolated_between_callbacks(loop):
    var = contextvars.ContextVar("var", default=0)
    seen = []

    def setter():
        var.set(7)
        var.set(8)

    def resetter():
        var.reset(var.set(9))  # leaves the context empty again

    t1 = loop.call_later(0, setter)
    loop.call_later(0, lambda: seen.append(var.get()))
    t3 = loop.call_later(0, resetter)
    loop.call_later(0, lambda: seen.append(var.get()))
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == [0, 0]
    assert t1._context[var] == 8
    assert var not in t3._context
