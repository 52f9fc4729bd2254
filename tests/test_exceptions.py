"""Exceptions from callbacks, the exception handler, and BaseExceptions."""

import asyncio
import logging

import pytest


def test_callback_exception_context(loop):
    def bad():
        raise ValueError("oops")

    h = loop.call_soon(bad)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(loop.errors) == 1
    ctx = loop.errors[0]
    assert set(ctx) >= {"message", "exception", "handle"}
    assert ctx["message"].startswith("Exception in callback ")
    assert "bad" in ctx["message"]
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["handle"] is h
    loop.errors.clear()


def test_loop_keeps_running_after_callback_error(loop):
    out = []
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(out.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["after"]
    assert len(loop.errors) == 1
    loop.errors.clear()


def test_timer_exception_goes_to_handler(loop):
    loop.call_later(0.001, lambda: 1 / 0)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert len(loop.errors) == 1
    assert isinstance(loop.errors[0]["exception"], ZeroDivisionError)
    loop.errors.clear()


def test_handler_called_with_loop_and_context(loop):
    calls = []

    def handler(lp, ctx):
        calls.append((lp, ctx))

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(calls) == 1 and calls[0][0] is loop


def test_set_exception_handler_type_error(loop):
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)


def test_default_handler_logs(loop, caplog):
    loop.set_exception_handler(None)

    def bad():
        raise KeyError("logged")

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(bad)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert any("Exception in callback" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_call_exception_handler_direct(loop):
    loop.call_exception_handler({"message": "hello"})
    assert loop.errors == [{"message": "hello"}]
    loop.errors.clear()


def test_handler_raising_is_logged_not_propagated(loop, caplog):
    def handler(lp, ctx):
        raise RuntimeError("handler broke")

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert any("Unhandled error in exception handler" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_propagates_and_loop_stays_usable(loop, exc_type):
    out = []

    def boom():
        raise exc_type()

    loop.call_soon(out.append, 1)
    loop.call_soon(boom)
    loop.call_soon(out.append, 2)
    loop.call_soon(out.append, 3)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert out == [1]
    assert not loop.is_running()
    # Nothing lost: the rest of the pass runs on the next run.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == [1, 2, 3]


def test_keyboard_interrupt_in_run_until_complete(loop):
    async def main():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(main())
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_other_base_exception_goes_to_handler(loop):
    class MyBase(BaseException):
        pass

    def boom():
        raise MyBase()

    loop.call_soon(boom)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(loop.errors) == 1
    assert isinstance(loop.errors[0]["exception"], MyBase)
    loop.errors.clear()


def test_base_exception_from_handler_propagates(loop):
    def handler(lp, ctx):
        raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    out = []
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(out.append, "kept")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    loop.set_exception_handler(None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["kept"]


def test_unretrieved_task_exception_reported(loop):
    async def bad():
        raise ValueError("never retrieved")

    async def main():
        loop.create_task(bad())
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    import gc

    gc.collect()
    loop.run_until_complete(asyncio.sleep(0))
    msgs = [e["message"] for e in loop.errors]
    assert any("Task exception was never retrieved" in m for m in msgs)
    loop.errors.clear()
