"""``ferrio.ThreadPoolExecutor``: ``concurrent.futures.ThreadPoolExecutor``'s
API over a Rust worker pool (src/executor/).

What is native: the work queue, worker waiting (spin briefly, then park,
GIL released), starting workers on demand and retiring idle ones, running
each job, and, for ``loop.run_in_executor`` on a ferrio loop, completing the
asyncio future through the loop's batched inbox (no
``concurrent.futures.Future``, no ``call_soon_threadsafe`` per item).

``map`` is native too: one job per item whose outcome goes to a slot of
the map's iterator (src/executor/map.rs), and ``submit`` returns a
``Future`` (below) whose condition is native.

What stays Python: this facade (construction, ``shutdown`` joining threads),
the worker threads'
``threading.Thread`` objects (names, ``threading.current_thread()``, exit
joining) and the interpreter-exit hook.

The class subclasses ``concurrent.futures.ThreadPoolExecutor`` so that
``isinstance`` checks (``loop.set_default_executor`` requires one) hold,
but shares none of its state: ``_threads``, ``_max_workers``,
``_thread_name_prefix``, ``_shutdown`` and ``_broken`` are read from the
core.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import sys
import threading
import weakref
from concurrent.futures import _base
from typing import Any, Callable, Iterable, Optional, Tuple

from . import _ferrio
from ._ferrio import Condition as _Condition

__all__ = ["Future", "ThreadPoolExecutor"]

# Idle workers exit after this long without work (the stdlib keeps them
# until shutdown). Long enough that bursts a few seconds apart reuse them.
IDLE_TIMEOUT = 60.0

_BROKEN_MSG = "A thread initializer failed, the thread pool is not usable anymore"

_cores: "weakref.WeakSet[_ferrio.ThreadPool]" = weakref.WeakSet()


class Future(concurrent.futures.Future):
    """The futures ``ferrio.ThreadPoolExecutor.submit`` returns: a
    ``concurrent.futures.Future`` (every method is the stdlib's, so
    ``wait()``, ``as_completed()`` and ``asyncio.wrap_future`` see the same
    ``_condition``/``_state``/``_waiters`` protocol) whose ``_condition`` is
    a native ``ferrio.sync.Condition``: ``result()`` waits with the GIL
    released, spinning briefly before it sleeps, and ``set_result``'s
    ``notify_all`` is native. A hand-over from a worker to a thread blocked
    in ``result()`` is the hot path of ``submit(f).result()`` and ``map``.
    """

    def __init__(self) -> None:
        self._condition = _Condition()
        self._state = _base.PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []


def _default_max_workers() -> int:
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return min(32, (count or 1) + 4)


def _initializer_failed(exc: BaseException) -> None:
    """Logged as the stdlib's worker does (called from the Rust worker)."""
    _base.LOGGER.critical("Exception in initializer:", exc_info=exc)


def _start_worker(prefix: str, core: "_ferrio.ThreadPool", index: int) -> threading.Thread:
    t = threading.Thread(name=f"{prefix}_{index}", target=core._worker)
    t.start()
    return t


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ``concurrent.futures.ThreadPoolExecutor`` whose pool is native.

    Same constructor and methods as the stdlib's. Worker threads start on
    demand and retire after ``IDLE_TIMEOUT`` seconds idle.
    """

    _counter = itertools.count().__next__

    def __init__(
        self,
        max_workers: Optional[int] = None,
        thread_name_prefix: str = "",
        initializer: Optional[Callable[..., object]] = None,
        initargs: Tuple[Any, ...] = (),
        *,
        _idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        if max_workers is None:
            max_workers = _default_max_workers()
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._max_workers = max_workers
        self._thread_name_prefix = thread_name_prefix or ("ThreadPoolExecutor-%d" % self._counter())
        self._initializer = initializer
        self._initargs = initargs
        prefix = self._thread_name_prefix
        # The stdlib compares against max_workers as given, so an infinite
        # or huge bound means "no bound": the largest count here.
        workers = max_workers
        if workers == float("inf") or (isinstance(workers, int) and workers > sys.maxsize):
            workers = sys.maxsize
        core = _ferrio.ThreadPool(
            int(workers),
            initializer,
            tuple(initargs),
            lambda c, i: _start_worker(prefix, c, i),
            float(_idle_timeout),
        )
        self._core = core
        _cores.add(core)
        if type(self).submit is ThreadPoolExecutor.submit:
            # No Python frame per submit (a subclass overriding submit
            # keeps its own).
            self.submit = core.submit  # type: ignore[method-assign]
        # Like the stdlib's workers holding only a weak reference: a pool
        # dropped without shutdown() lets its workers finish and exit. Not
        # a shutdown: `ThreadPoolExecutor().submit(f)` drops this object
        # before `core.submit` runs, and the job must still be taken.
        weakref.finalize(self, core._orphan)

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        return self._core.submit(fn, *args, **kwargs)

    submit.__doc__ = _base.Executor.submit.__doc__

    def map(self, fn, *iterables, timeout=None, chunksize=1, **kwargs):  # type: ignore[override]
        if kwargs or type(self).submit is not ThreadPoolExecutor.submit:
            # A later Python's new keyword (3.14's buffersize), or a
            # subclass's own submit: the stdlib's map over self.submit.
            return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize, **kwargs)
        # Native: one job per item, results through an iterator that waits
        # natively (no concurrent.futures.Future per item).
        return self._core.map(fn, iterables, timeout)

    map.__doc__ = _base.Executor.map.__doc__

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._core.shutdown(bool(cancel_futures))
        if wait:
            for t in self._core.threads():
                if t is not threading.current_thread():
                    t.join()

    shutdown.__doc__ = _base.Executor.shutdown.__doc__

    # The stdlib's attribute names, read by code that inspects pools
    # (and by CPython's own tests).
    @property
    def _threads(self) -> set:
        return set(self._core.threads())

    @property
    def _shutdown(self) -> bool:
        return self._core.shutdown_called

    @property
    def _broken(self):
        return _BROKEN_MSG if self._core.broken else False

    def _run_for_loop(self, loop, func, args):
        return self._core.run_for_loop(loop, func, args)


def _python_exit() -> None:
    # The stdlib's exit hook for its pools: refuse new work, let queued
    # work finish, join the workers (before non-daemon threads are joined).
    _ferrio._set_interpreter_exiting()
    cores = list(_cores)
    for c in cores:
        c.shutdown(False)
    for c in cores:
        for t in c.threads():
            t.join()


def _after_fork_in_child() -> None:
    for c in list(_cores):
        c._after_fork_in_child()


_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_python_exit)
else:  # pragma: no cover - every supported Python has it
    import atexit

    atexit.register(_python_exit)

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

