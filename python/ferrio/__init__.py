"""ferrio: Python's concurrency runtime rebuilt in Rust.

Use it as asyncio's event loop::

    import ferrio
    ferrio.run(main())

or ``asyncio.Runner(loop_factory=ferrio.new_event_loop)``, or (3.12+)
``asyncio.run(main(), loop_factory=ferrio.new_event_loop)``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Coroutine, TypeVar

from ._ferrio import Handle, TimerHandle, __version__
from ._executor import ThreadPoolExecutor
from ._loop import Loop
from ._queue import LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull, QueueShutDown

__all__ = [
    "EventLoopPolicy",
    "Handle",
    "LifoQueue",
    "Loop",
    "PriorityQueue",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "QueueShutDown",
    "ThreadPoolExecutor",
    "TimerHandle",
    "__version__",
    "install",
    "new_event_loop",
    "run",
]

_T = TypeVar("_T")


def new_event_loop() -> Loop:
    """Return a new ferrio event loop."""
    return Loop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An asyncio event loop policy whose loops are ferrio loops."""

    def _loop_factory(self) -> Loop:  # type: ignore[override]
        return new_event_loop()


def install() -> None:
    """Make ferrio the loop ``asyncio.new_event_loop()`` and ``asyncio.run()``
    create, by installing :class:`EventLoopPolicy`."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new ferrio loop, like ``asyncio.run``: cancel the
    tasks left over, shut down async generators and the default executor,
    and close the loop."""
    if asyncio.events._get_running_loop() is not None:
        # asyncio.run checks this before creating anything (and so the
        # coroutine is left un-awaited, with the usual warning).
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    return _run_310(main, debug=debug)


def _run_310(main, *, debug=None):
    # Python 3.10 has no asyncio.Runner: this is 3.10's asyncio.run with the
    # loop factory swapped.
    from asyncio import coroutines, events, tasks

    if not coroutines.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            to_cancel = tasks.all_tasks(loop)
            for task in to_cancel:
                task.cancel()
            if to_cancel:
                loop.run_until_complete(tasks.gather(*to_cancel, return_exceptions=True))
                for task in to_cancel:
                    if task.cancelled():
                        continue
                    if task.exception() is not None:
                        loop.call_exception_handler(
                            {
                                "message": "unhandled exception during asyncio.run() shutdown",
                                "exception": task.exception(),
                                "task": task,
                            }
                        )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()
