"""``ferrio.Queue``, ``LifoQueue``, ``PriorityQueue``: one queue for threads
and coroutines alike.

The state, the waiting and the hand-over are native (src/sync/queue.rs);
this module adds what is per queue or per wait, never per item on the fast
path: the classes' ``__init__`` (so subclasses can call
``super().__init__(maxsize)`` as with ``queue.Queue``), ``Queue[int]``
(``Generic``), the exceptions, and the small coroutine a contended async
wait runs in.

Decisions (see docs/locks.md, "Queue"):

* The exceptions are subclasses of both ``queue``'s and ``asyncio``'s
  (``QueueEmpty`` is a ``queue.Empty`` and an ``asyncio.QueueEmpty``;
  ``QueueShutDown`` is a ``queue.ShutDown`` and an
  ``asyncio.QueueShutDown`` where the running Python has them), so code
  written against either module catches them unchanged.
* Items live in Rust, not in a ``deque`` the class exposes: there is no
  ``queue``/``mutex``/``not_empty`` attribute, and overriding ``_put``/
  ``_get``/``_qsize`` is not supported (use ``queue.Queue`` for that).
* ``maxsize`` must be an integer; a non-integer raises ``TypeError`` at
  construction (``queue.Queue`` accepts anything and fails, or not, at
  the first ``put``).
* A cancelled ``put_async`` never puts its item; a ``get_async`` cancelled
  after an item was handed to it passes the item on to the next getter
  (or back to the front of the queue).
"""

from __future__ import annotations

import asyncio
import queue as _stdqueue
from typing import Generic, TypeVar

from ._ferrio import _QueueBase

_T = TypeVar("_T")


def _bases(*pairs):
    out = tuple(getattr(mod, name) for mod, name in pairs if hasattr(mod, name))
    return out or (Exception,)


class QueueEmpty(*_bases((_stdqueue, "Empty"), (asyncio, "QueueEmpty"))):  # type: ignore[misc]
    """Raised by ``get_nowait``/``get(block=False)``/a timed-out ``get`` on
    an empty ``ferrio.Queue``; a ``queue.Empty`` and an
    ``asyncio.QueueEmpty``."""


class QueueFull(*_bases((_stdqueue, "Full"), (asyncio, "QueueFull"))):  # type: ignore[misc]
    """Raised by ``put_nowait``/``put(block=False)``/a timed-out ``put`` on
    a full ``ferrio.Queue``; a ``queue.Full`` and an
    ``asyncio.QueueFull``."""


class QueueShutDown(*_bases((_stdqueue, "ShutDown"), (asyncio, "QueueShutDown"))):  # type: ignore[misc]
    """Raised by puts and gets on a ``ferrio.Queue`` after ``shutdown()``;
    a ``queue.ShutDown`` and an ``asyncio.QueueShutDown`` on Pythons that
    have them (3.13+)."""


_EXCEPTIONS = {"Empty": QueueEmpty, "Full": QueueFull, "ShutDown": QueueShutDown}


async def _wait(q, fut, kind):
    """A contended async put/get/join: await the native hand-over; if the
    task stops waiting, leave the line (or pass on an item already handed
    over)."""
    try:
        return await fut
    except BaseException:
        q._abandon(fut, kind)
        raise


class Queue(_QueueBase, Generic[_T]):
    """A FIFO queue for threads and coroutines at once.

    Threads: ``put(item, block=True, timeout=None)``, ``get(block=True,
    timeout=None)``, ``put_nowait``, ``get_nowait``, ``task_done()``,
    ``join()``, ``qsize()``, ``empty()``, ``full()``, ``maxsize``,
    ``shutdown(immediate=False)`` -- ``queue.Queue``'s API and semantics
    (3.13's ``shutdown`` on every Python).

    Coroutines, on any loop in any thread: ``await q.put_async(item)``,
    ``await q.get_async()``, ``await q.join_async()`` -- ``asyncio.Queue``'s
    ``put``/``get``/``join`` semantics (cancellation-safe). ``get_nowait``/
    ``put_nowait``/``task_done`` serve both sides.
    """

    _order = 0

    def __init__(self, maxsize: int = 0) -> None:
        self._init(maxsize, self._order)

    def __repr__(self) -> str:
        cls = type(self)
        return (
            f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x} "
            f"maxsize={self.maxsize!r} qsize={self.qsize()} "
            f"tasks={self.unfinished_tasks}{' shutdown' if self.is_shutdown else ''}>"
        )


class LifoQueue(Queue[_T]):
    """``Queue`` that returns the most recently added item first."""

    _order = 1


class PriorityQueue(Queue[_T]):
    """``Queue`` that returns the lowest item first (``heapq`` order, as
    ``queue.PriorityQueue``: items are usually ``(priority, data)``)."""

    _order = 2


for _cls in (Queue, LifoQueue, PriorityQueue, QueueEmpty, QueueFull, QueueShutDown):
    _cls.__module__ = "ferrio"
del _cls

__all__ = ["LifoQueue", "PriorityQueue", "Queue", "QueueEmpty", "QueueFull", "QueueShutDown"]
