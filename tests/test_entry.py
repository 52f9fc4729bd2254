"""ferrio.run, new_event_loop, EventLoopPolicy, install, Runner/loop_factory."""

import asyncio
import sys

import pytest

import ferrio


async def which_loop():
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_run_uses_ferrio():
    assert ferrio.run(which_loop()) is ferrio.Loop


def test_run_debug_flag():
    async def dbg():
        return asyncio.get_running_loop().get_debug()

    assert ferrio.run(dbg(), debug=True) is True
    assert ferrio.run(dbg(), debug=False) is False


def test_run_rejects_non_coroutine():
    with pytest.raises((ValueError, TypeError)):
        ferrio.run(42)


def test_run_inside_running_loop_raises():
    async def outer():
        coro = which_loop()
        try:
            ferrio.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
        ferrio.run(outer())


def test_run_cancels_leftover_tasks_and_closes():
    state = {}

    async def forever():
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async def main():
        state["loop"] = asyncio.get_running_loop()
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)

    ferrio.run(main())
    assert state["cancelled"] is True
    assert state["loop"].is_closed()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is 3.11+")
def test_runner_loop_factory():
    with asyncio.Runner(loop_factory=ferrio.new_event_loop) as r:
        assert r.run(which_loop()) is ferrio.Loop
        assert isinstance(r.get_loop(), ferrio.Loop)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_loop_factory():
    assert asyncio.run(which_loop(), loop_factory=ferrio.new_event_loop) is ferrio.Loop


def test_policy_and_install():
    old = asyncio.get_event_loop_policy()
    try:
        ferrio.install()
        assert isinstance(asyncio.get_event_loop_policy(), ferrio.EventLoopPolicy)
        lp = asyncio.new_event_loop()
        assert isinstance(lp, ferrio.Loop)
        lp.close()
        assert asyncio.run(which_loop()) is ferrio.Loop
    finally:
        asyncio.set_event_loop_policy(old)


def test_new_event_loop_returns_fresh_loops():
    a, b = ferrio.new_event_loop(), ferrio.new_event_loop()
    try:
        assert a is not b and isinstance(a, ferrio.Loop)
    finally:
        a.close()
        b.close()
