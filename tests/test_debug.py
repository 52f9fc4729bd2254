"""Debug mode: slow callbacks, thread checks, callback checks, ResourceWarning."""

import asyncio
import gc
import logging
import os
import subprocess
import sys
import threading
import time

import pytest


def test_set_get_debug(loop):
    assert loop.get_debug() is False
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_slow_callback_warning(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def slow_callback():
        time.sleep(0.03)

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(slow_callback)
        loop.call_soon(loop.stop)
        loop.run_forever()
    msgs = [r.getMessage() for r in caplog.records]
    assert any("Executing" in m and "slow_callback" in m and "seconds" in m for m in msgs), msgs


def test_fast_callback_no_warning(loop, caplog):
    loop.set_debug(True)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(lambda: None)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert not [r for r in caplog.records if "Executing" in r.getMessage()]


def test_wrong_thread_raises_in_debug(loop):
    loop.set_debug(True)
    errors = []

    def other_thread():
        for call in (lambda: loop.call_soon(print), lambda: loop.call_later(1, print), lambda: loop.call_at(1, print)):
            try:
                call()
            except RuntimeError as e:
                errors.append(str(e))
        loop.call_soon_threadsafe(loop.stop)

    def start():
        threading.Thread(target=other_thread).start()

    loop.call_soon(start)
    loop.call_later(10, loop.stop)
    loop.run_forever()
    assert len(errors) == 3
    assert all("Non-thread-safe operation" in e for e in errors)


def test_debug_rejects_coroutine_and_non_callable(loop):
    loop.set_debug(True)

    async def coro_fn():
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
        loop.call_soon(coro_fn)
    with pytest.raises(TypeError, match="a callable object was expected by call_at"):
        loop.call_later(1, 42)
    coro = coro_fn()
    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon_threadsafe"):
        loop.call_soon_threadsafe(coro)
    coro.close()


def test_debug_handle_source_traceback(loop):
    loop.set_debug(True)

    def cb():
        pass

    h = loop.call_soon(cb)
    assert h._source_traceback
    assert "created at" in repr(h)
    assert __file__.rstrip("c") in repr(h)
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_unclosed_loop_resource_warning(loop_factory):
    lp = loop_factory()
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del lp
        gc.collect()


@pytest.mark.parametrize("how", ["env", "devmode"])
def test_debug_from_environment(how, loop_factory):
    kind = "ferrio" if loop_factory.__module__.startswith("ferrio") else "asyncio"
    code = (
        "import asyncio, ferrio;"
        f"lp = ferrio.new_event_loop() if {kind!r} == 'ferrio' else asyncio.SelectorEventLoop();"
        "print(lp.get_debug()); lp.close()"
    )
    env = dict(os.environ)
    args = [sys.executable]
    if how == "env":
        env["PYTHONASYNCIODEBUG"] = "1"
    else:
        args += ["-X", "dev"]
    out = subprocess.run(args + ["-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
