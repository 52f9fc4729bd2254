"""add_signal_handler / remove_signal_handler and Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest


def test_signal_handler_runs_on_loop(loop):
    got = []

    def handler(*args):
        got.append(args)
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "a")
    try:
        loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
        loop.call_later(5, loop.stop)
        loop.run_forever()
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert got == [("a",)]
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_signal_from_other_thread_wakes_loop(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR2, lambda: (got.append(1), loop.stop()))
    try:
        t = threading.Thread(target=lambda: (time.sleep(0.05), os.kill(os.getpid(), signal.SIGUSR2)))
        t.start()
        loop.call_later(5, loop.stop)
        loop.run_forever()
        t.join()
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
    assert got == [1]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_uncatchable_signal_runtime_error(loop, sig):
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(sig, print)


@pytest.mark.parametrize("sig", [0, -1, 1000])
def test_invalid_signal_value_error(loop, sig):
    with pytest.raises(ValueError):
        loop.add_signal_handler(sig, print)
    with pytest.raises(ValueError):
        loop.remove_signal_handler(sig)


def test_signal_type_error(loop):
    with pytest.raises(TypeError):
        loop.add_signal_handler("SIGINT", print)


def test_coroutine_handler_type_error(loop):
    async def coro():
        pass

    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, coro)


def test_signal_handler_off_main_thread(loop_factory):
    errors = []

    def worker():
        lp = loop_factory()
        try:
            lp.add_signal_handler(signal.SIGUSR1, print)
        except RuntimeError as e:
            errors.append(e)
        finally:
            lp.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert len(errors) == 1


def test_close_removes_signal_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


CTRL_C = textwrap.dedent(
    """
    import asyncio, os, signal, sys, ferrio
    kind, mode = sys.argv[1], sys.argv[2]
    factory = ferrio.new_event_loop if kind == "ferrio" else asyncio.SelectorEventLoop
    signal.signal(signal.SIGINT, signal.default_int_handler)

    async def main():
        asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            print("main cancelled", flush=True)
            raise

    if mode == "loop":
        loop = factory()
        try:
            loop.run_until_complete(main())
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            # the loop is still usable
            print(loop.run_until_complete(asyncio.sleep(0, "usable")), flush=True)
        finally:
            loop.close()
    else:
        try:
            with asyncio.Runner(loop_factory=factory) as r:
                r.run(main())
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
    """
)


@pytest.mark.parametrize("mode", ["loop", "runner"])
def test_ctrl_c(loop_factory, mode):
    if mode == "runner" and sys.version_info < (3, 11):
        pytest.skip("asyncio.Runner is 3.11+")
    kind = "ferrio" if loop_factory.__module__.startswith("ferrio") else "asyncio"
    out = subprocess.run(
        [sys.executable, "-c", CTRL_C, kind, mode], capture_output=True, text=True, timeout=60
    )
    lines = out.stdout.split()
    if mode == "loop":
        assert out.stdout.splitlines() == ["KeyboardInterrupt", "usable"], out.stderr
    else:
        assert out.stdout.splitlines() == ["main cancelled", "KeyboardInterrupt"], out.stderr
    assert lines
