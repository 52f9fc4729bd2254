"""run_in_executor, default executor, shutdown_default_executor."""

import asyncio
import concurrent.futures
import inspect
import sys
import threading

import pytest


def test_run_in_executor_result(loop):
    async def main():
        return await loop.run_in_executor(None, lambda a, b: a + b, 2, 3)

    assert loop.run_until_complete(main()) == 5


def test_run_in_executor_runs_in_other_thread(loop):
    async def main():
        return await loop.run_in_executor(None, threading.get_ident)

    assert loop.run_until_complete(main()) != threading.get_ident()


def test_run_in_executor_exception(loop):
    def bad():
        raise ValueError("in thread")

    async def main():
        await loop.run_in_executor(None, bad)

    with pytest.raises(ValueError, match="in thread"):
        loop.run_until_complete(main())


def test_default_executor_attribute(loop):
    assert loop._default_executor is None
    loop.run_until_complete(loop.run_in_executor(None, int))
    assert isinstance(loop._default_executor, concurrent.futures.ThreadPoolExecutor)


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(ex)
    assert loop._default_executor is ex
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.close()
    ex.shutdown()


def test_set_default_executor_type_error(loop):
    if sys.version_info < (3, 11):
        # 3.10 only warns, then stores the object.
        with pytest.warns(DeprecationWarning):
            loop.set_default_executor(object())
        loop._default_executor = None
        return
    with pytest.raises(TypeError):
        loop.set_default_executor(object())


def test_explicit_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        r = loop.run_until_complete(loop.run_in_executor(ex, pow, 2, 10))
    assert r == 1024


def test_shutdown_default_executor(loop):
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError):
        loop.run_until_complete(loop.run_in_executor(None, int))


def test_shutdown_default_executor_timeout_param_matches_asyncio(loop):
    import asyncio.base_events as be

    has_timeout = "timeout" in inspect.signature(be.BaseEventLoop.shutdown_default_executor).parameters
    params = inspect.signature(loop.shutdown_default_executor).parameters
    assert ("timeout" in params) == has_timeout
    if has_timeout:
        loop.run_until_complete(loop.run_in_executor(None, int))
        loop.run_until_complete(loop.shutdown_default_executor(timeout=5))


def test_gathered_executor_calls(loop):
    async def main():
        return await asyncio.gather(*[loop.run_in_executor(None, abs, -i) for i in range(200)])

    assert loop.run_until_complete(main()) == list(range(200))


def test_executor_on_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError):
        loop.run_in_executor(None, int)


def test_getaddrinfo_numeric(loop):
    import socket

    async def main():
        return await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)

    res = loop.run_until_complete(main())
    assert res and res[0][4] == ("127.0.0.1", 80)
