"""create_future, create_task and task factories."""

import asyncio
import contextvars
import sys

import pytest


def test_create_future_is_c_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    fut.cancel()


def test_create_task_name_and_result(loop):
    async def coro():
        return "r"

    async def main():
        t = loop.create_task(coro(), name="my-task")
        assert t.get_name() == "my-task"
        assert isinstance(t, asyncio.Task)
        return await t

    assert loop.run_until_complete(main()) == "r"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="create_task(context=) is 3.11+")
def test_create_task_context(loop):
    var = contextvars.ContextVar("v", default="outer")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inner")

    async def coro():
        return var.get()

    async def main():
        return await loop.create_task(coro(), context=ctx)

    assert loop.run_until_complete(main()) == "inner"


def test_create_task_rejects_non_coroutine(loop):
    with pytest.raises(TypeError):
        loop.create_task(42)


def test_task_factory_legacy_contract(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append((lp, kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def coro():
        return 1

    with_context = sys.version_info >= (3, 11)

    async def main():
        await loop.create_task(coro())
        if with_context:
            await loop.create_task(coro(), context=contextvars.copy_context())

    loop.run_until_complete(main())
    kwargs = [c[1] for c in calls[1:]]  # calls[0] is run_until_complete's task
    assert all(c[0] is loop for c in calls)
    if not with_context:
        assert kwargs == [{}]
    elif sys.version_info >= (3, 14):
        assert "context" in kwargs[1]
    else:
        assert kwargs[0] == {}
        assert set(kwargs[1]) == {"context"}
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None


def test_create_task_extra_keywords(loop):
    """A keyword create_task does not know: TypeError before 3.14; on 3.14+
    asyncio passes it on (to the factory, or to Task: `eager_start`)."""

    async def coro():
        return 7

    c = coro()
    if sys.version_info < (3, 14):
        with pytest.raises(TypeError):
            loop.create_task(c, eager_start=True)
        c.close()
        # with a factory as well: asyncio's create_task refuses it first
        loop.set_task_factory(lambda lp, co, **kw: asyncio.Task(co, loop=lp, **kw))
        c = coro()
        with pytest.raises(TypeError):
            loop.create_task(c, bogus=1)
        c.close()
        loop.set_task_factory(None)
        return
    seen = []

    def factory(lp, co, **kw):
        seen.append(kw)
        kw.pop("bogus", None)
        return asyncio.Task(co, loop=lp, **kw)

    async def main():
        t = loop.create_task(coro(), eager_start=True)
        loop.set_task_factory(factory)
        u = loop.create_task(coro(), bogus=1, name="n")
        loop.set_task_factory(None)
        return await t, await u, u.get_name()

    assert loop.run_until_complete(main()) == (7, 7, "n")
    assert seen[-1] == {"bogus": 1, "name": "n"}


def test_task_factory_must_be_callable(loop):
    with pytest.raises(TypeError):
        loop.set_task_factory(1)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager_task_factory is 3.12+")
def test_eager_task_factory(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    order = []

    async def child():
        order.append("child-start")
        return 5

    async def main():
        t = loop.create_task(child())
        order.append("after-create")
        return await t

    assert loop.run_until_complete(main()) == 5
    assert order == ["child-start", "after-create"]


def test_gather_many_tasks(loop):
    async def child(i):
        await asyncio.sleep(0)
        return i

    async def main():
        return await asyncio.gather(*[child(i) for i in range(1000)])

    assert loop.run_until_complete(main()) == list(range(1000))


def test_sleep_and_wait_for(loop):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        return await asyncio.wait_for(asyncio.sleep(0.001, "ok"), 1)

    assert loop.run_until_complete(main()) == "ok"


def test_task_cancellation(loop):
    async def sleeper():
        await asyncio.sleep(10)

    async def main():
        t = loop.create_task(sleeper())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return t.cancelled()

    assert loop.run_until_complete(main()) is True


def test_current_and_all_tasks(loop):
    async def main():
        me = asyncio.current_task()
        assert me is not None and me in asyncio.all_tasks()
        return me.get_loop() is loop

    assert loop.run_until_complete(main())


def test_debug_task_source_traceback_names_caller(loop):
    loop.set_debug(True)

    async def coro():
        return 1

    async def main():
        t = loop.create_task(coro())
        tb = t._source_traceback
        await t
        return tb

    tb = loop.run_until_complete(main())
    assert tb, "debug mode records where the task was created"
    assert tb[-1][2] == "main", tb[-1]  # the caller's frame, not create_task's


def test_create_task_closed_loop_and_bad_coro(loop):
    with pytest.raises(TypeError):
        loop.create_task(lambda: None)
    loop.close()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.create_task(coro)
    coro.close()


def test_task_factory_sees_name(loop):
    seen = []

    def factory(lp, coro, **kw):
        t = asyncio.Task(coro, loop=lp, **kw)
        seen.append(t)
        return t

    loop.set_task_factory(factory)

    async def coro():
        return 2

    async def main():
        return await loop.create_task(coro(), name="named")

    assert loop.run_until_complete(main()) == 2
    assert seen[-1].get_name() == "named"


def test_create_future(loop, monkeypatch):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future) and fut.get_loop() is loop and not fut.done()
    fut.cancel()

    # asyncio looks `futures.Future` up at each call; so does ferrio.
    class MyFuture(asyncio.Future):
        pass

    monkeypatch.setattr(asyncio.futures, "Future", MyFuture)
    mine = loop.create_future()
    assert type(mine) is MyFuture and mine.get_loop() is loop
    mine.cancel()
