"""Threading-compatible synchronization primitives that coroutines can use
too: ``Lock``, ``RLock``, ``Condition``, ``Semaphore``, ``BoundedSemaphore``,
``Event``, ``Barrier``, and a readers-writer lock ``RWLock``
(writer-preferring by default; ``RWLock(prefer_writers=False)`` for
reader preference; ``with rw.read():`` / ``with rw.write():``).

Each has ``threading``'s API and semantics (timeouts, ``blocking=False``,
context managers, ``Condition.wait_for``/``notify(n)``, ``Barrier.abort``/
``reset``, ``Semaphore.release(n)``) and an async face usable from any loop
in any thread at the same time as threads use it::

    async with lock: ...
    await sem.acquire_async()
    await event.wait_async()
    async with cond:
        await cond.wait_async()
    await barrier.wait_async()

The native core (src/sync/, design in docs/locks.md) waits with the GIL
released, stays interruptible by Ctrl-C, hands a lock to a waiter that has
waited ~1 ms (eventual fairness) and hands it directly to coroutines.
"""

from ._ferrio import (
    Barrier,
    BoundedSemaphore,
    Condition,
    Event,
    Lock,
    RLock,
    RWLock,
    Semaphore,
)
from ._synchelpers import BrokenBarrierError

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Condition",
    "Event",
    "Lock",
    "RLock",
    "RWLock",
    "Semaphore",
]
