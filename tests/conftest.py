"""Shared fixtures: every behaviour test runs on asyncio's own loop and on
ferrio's, so each assertion states what asyncio really does.

``loop`` records exception-handler calls in ``loop.errors``; a test that
expects some must clear the list, since teardown fails on leftovers.
"""

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import socket
import threading
import time
import unittest

import pytest

import ferrio

FACTORIES = {
    "asyncio": asyncio.SelectorEventLoop,
    "ferrio": ferrio.new_event_loop,
}


@pytest.fixture(params=list(FACTORIES))
def loop_factory(request):
    return FACTORIES[request.param]


@pytest.fixture
def loop(loop_factory):
    lp = loop_factory()
    lp.errors = []
    lp.set_exception_handler(lambda _loop, ctx: lp.errors.append(ctx))
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        asyncio.set_event_loop(None)
        if not lp.is_closed():
            if not lp.is_running():
                lp.run_until_complete(lp.shutdown_asyncgens())
            lp.close()
        errors, lp.errors = lp.errors, []
        gc.collect()
        assert not errors, f"unexpected exception handler calls: {errors}"


@contextlib.contextmanager
def sigint_after(delay=0.2, limit=20):
    """SIGINT to the main thread after ``delay`` seconds, as a Ctrl-C would
    arrive; the body must end (by KeyboardInterrupt) within ``limit``."""
    timer = threading.Timer(delay, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    try:
        yield
        assert time.monotonic() - t0 < limit
    finally:
        timer.cancel()


def expected_failure(f):
    """``unittest.expectedFailure`` on a copy of ``f``: it marks the function
    object itself, which CPython's mixins share between our classes and the
    stdlib's."""

    @functools.wraps(f)
    def wrapper(self):
        return f(self)

    return unittest.expectedFailure(wrapper)


@contextlib.contextmanager
def asyncio_log_probe(transport):
    """Records every message the 'asyncio' logger emits inside the block as
    ``(message, transport.is_closing(), transport.get_write_buffer_size())``,
    calling back into the transport from inside the log call (as a handler
    shipping logs over that very transport would)."""
    seen = []

    class Probe(logging.Handler):
        def emit(self, record):
            seen.append((record.getMessage(), transport.is_closing(), transport.get_write_buffer_size()))

    handler = Probe()
    log = logging.getLogger("asyncio")
    log.addHandler(handler)
    try:
        yield seen
    finally:
        log.removeHandler(handler)


def writes_after_abort(transport, write, n):
    """Aborts `transport`, then calls `write(b"after abort")` `n` times
    under `asyncio_log_probe`; returns what the probe saw."""
    transport.abort()
    with asyncio_log_probe(transport) as seen:
        for _ in range(n):
            write(b"after abort")
    return seen


def open_fds() -> int:
    """File descriptors this process has open now."""
    return len(os.listdir("/proc/self/fd"))


def tls_contexts():
    """(server, client) SSL contexts with CPython's test certificate; skips
    where this Python has no `test` package."""
    utils = pytest.importorskip("test.test_asyncio.utils", reason="CPython's test package (for its test certificate)")
    return utils.simple_server_sslcontext(), utils.simple_client_sslcontext()


def is_ferrio(loop) -> bool:
    return isinstance(loop, ferrio.Loop)


def scheduled_timers(loop) -> int:
    """Timers still held by the loop (cancelled ones included)."""
    if is_ferrio(loop):
        return loop._timers_len()
    return len(loop._scheduled)


def pytest_terminal_summary(terminalreporter):
    try:
        from test_cpython_conformance import RESULTS
        import runner
    except ImportError:
        return
    if RESULTS:
        terminalreporter.section("CPython test_asyncio on ferrio")
        terminalreporter.write_line(runner.format_table(RESULTS))


def has_ipv6() -> bool:
    """Whether a datagram socket can bind the IPv6 loopback here."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


#: ``(family, loopback host)`` parameters for IPv4 and (where the host has
#: it) IPv6 tests.
INET_FAMILIES = [
    pytest.param(socket.AF_INET, "127.0.0.1", id="ipv4"),
    pytest.param(
        socket.AF_INET6,
        "::1",
        id="ipv6",
        marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback"),
    ),
]
