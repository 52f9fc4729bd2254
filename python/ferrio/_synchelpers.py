"""The coroutine halves of ``ferrio.sync``'s async faces.

The primitives are native (src/sync/); what a wait does after its future
resolves (reacquire a condition's lock, step a barrier's state machine) is
per-wait control flow, kept here as small coroutines that call back into
the native object. Nothing here runs per lock operation on the fast path.
"""

from __future__ import annotations

import asyncio
import threading

_bases = (threading.BrokenBarrierError,)
if hasattr(asyncio, "BrokenBarrierError"):  # 3.11+
    _bases += (asyncio.BrokenBarrierError,)


class BrokenBarrierError(*_bases):  # type: ignore[misc]
    """A broken ``ferrio.sync.Barrier``: both ``threading``'s and
    ``asyncio``'s ``BrokenBarrierError`` catch it."""


async def cond_wait(cond, fut, saved):
    """``Condition.wait_async`` after queueing and releasing the lock: wait
    for the notification, then take the lock back, even when cancelled
    (asyncio.Condition's rule), and pass on a notification this task got
    but cannot use."""
    try:
        try:
            await fut
            return True
        finally:
            err = None
            while True:
                try:
                    await cond._reacquire_async(saved)
                    break
                except asyncio.CancelledError as e:
                    err = e
            if err is not None:
                try:
                    raise err
                finally:
                    err = None
    except BaseException:
        if fut.done() and not fut.cancelled():
            cond._pass_on()
        raise


async def cond_wait_for(cond, predicate):
    """``Condition.wait_for_async``: asyncio.Condition.wait_for."""
    result = predicate()
    while not result:
        await cond.wait_async()
        result = predicate()
    return result


async def barrier_wait(barrier, timeout):
    """``Barrier.wait_async``: ``threading.Barrier.wait``'s steps with
    awaits instead of sleeps. A timeout breaks the barrier (threading's
    rule); a cancelled waiter just leaves (asyncio.Barrier's)."""
    loop = asyncio.get_running_loop()
    while True:
        step = barrier._arrive()
        if isinstance(step, int):
            index = step
            break
        await step
    if index + 1 == barrier.parties:
        try:
            barrier._release_last()
        finally:
            barrier._leave(False)
        return index
    deadline = None if timeout is None else loop.time() + timeout
    try:
        while True:
            fut = barrier._released()
            if fut is None:
                break
            if deadline is None:
                await fut
                continue
            try:
                await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                if barrier._time_out():
                    raise BrokenBarrierError from None
    except BaseException:
        barrier._leave(False)
        raise
    barrier._leave(True)
    return index


async def acquire_slow(owner, fut, value, tag):
    """The contended async acquire: await the handoff; if the task is
    cancelled after the grant was already delivered (the future has its
    result but the coroutine gets CancelledError, e.g. a timeout firing at
    that moment), give the grant back, as asyncio.Semaphore does."""
    try:
        return await fut
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled():
            owner._settle(None, value, tag)
        raise
