"""Exceptions from callbacks, the exception handler, and BaseExceptions."""

import asyncio
import logging
import socket

import pytest


def test_callback_exception_context(loop):
    def bad():
        raise ValueError("oops")

    h = loop.call_soon(bad)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(loop.errors) == 1
    ctx = loop.errors[0]
    assert set(ctx) >= {"message", "exception", "handle"}
    assert ctx["message"].startswith("Exception in callback ")
    assert "bad" in ctx["message"]
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["handle"] is h
    loop.errors.clear()


def test_loop_keeps_running_after_callback_error(loop):
    out = []
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(out.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["after"]
    assert len(loop.errors) == 1
    loop.errors.clear()


def test_timer_exception_goes_to_handler(loop):
    loop.call_later(0.001, lambda: 1 / 0)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert len(loop.errors) == 1
    assert isinstance(loop.errors[0]["exception"], ZeroDivisionError)
    loop.errors.clear()


def test_handler_called_with_loop_and_context(loop):
    calls = []

    def handler(lp, ctx):
        calls.append((lp, ctx))

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(calls) == 1 and calls[0][0] is loop


def test_set_exception_handler_type_error(loop):
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)


def test_default_handler_logs(loop, caplog):
    loop.set_exception_handler(None)

    def bad():
        raise KeyError("logged")

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(bad)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert any("Exception in callback" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_call_exception_handler_direct(loop):
    loop.call_exception_handler({"message": "hello"})
    assert loop.errors == [{"message": "hello"}]
    loop.errors.clear()


def test_handler_raising_is_logged_not_propagated(loop, caplog):
    def handler(lp, ctx):
        raise RuntimeError("handler broke")

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert any("Unhandled error in exception handler" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_propagates_and_loop_stays_usable(loop, exc_type):
    out = []

    def boom():
        raise exc_type()

    loop.call_soon(out.append, 1)
    loop.call_soon(boom)
    loop.call_soon(out.append, 2)
    loop.call_soon(out.append, 3)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert out == [1]
    assert not loop.is_running()
    # Nothing lost: the rest of the pass runs on the next run.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == [1, 2, 3]


def test_keyboard_interrupt_in_run_until_complete(loop):
    async def main():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(main())
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_other_base_exception_goes_to_handler(loop):
    class MyBase(BaseException):
        pass

    def boom():
        raise MyBase()

    loop.call_soon(boom)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(loop.errors) == 1
    assert isinstance(loop.errors[0]["exception"], MyBase)
    loop.errors.clear()


def test_base_exception_from_handler_propagates(loop):
    def handler(lp, ctx):
        raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    out = []
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(out.append, "kept")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    loop.set_exception_handler(None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["kept"]


def test_unretrieved_task_exception_reported(loop):
    async def bad():
        raise ValueError("never retrieved")

    async def main():
        loop.create_task(bad())
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    import gc

    gc.collect()
    loop.run_until_complete(asyncio.sleep(0))
    msgs = [e["message"] for e in loop.errors]
    assert any("Task exception was never retrieved" in m for m in msgs)
    loop.errors.clear()


class RaisingProtocol(asyncio.Protocol, asyncio.DatagramProtocol):
    """Raises ``exc_type`` from the method named ``where`` (stream and
    datagram protocol methods alike)."""

    def __init__(self, where, exc_type):
        self.where, self.exc_type = where, exc_type

    def _maybe(self, name):
        if name == self.where:
            raise self.exc_type()

    def connection_made(self, transport):
        self._maybe("connection_made")

    def data_received(self, data):
        self._maybe("data_received")

    def connection_lost(self, exc):
        self._maybe("connection_lost")

    def datagram_received(self, data, addr):
        self._maybe("datagram_received")

    def error_received(self, exc):
        self._maybe("error_received")


async def exercise_stream(loop, factory, held):
    """A connection that receives data, then is closed (``held`` collects
    what to close if an interrupt cuts this short)."""
    lst = socket.socket()
    held.append(lst)
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    tr, _ = await loop.create_connection(factory, *lst.getsockname())
    held.append(tr)
    peer, _ = lst.accept()
    held.append(peer)
    peer.sendall(b"x")
    await asyncio.sleep(0.05)
    tr.close()
    await asyncio.sleep(0.05)


async def exercise_datagram(loop, factory, held):
    """A datagram received, and an ICMP refusal reported (error_received)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    dead = probe.getsockname()  # nobody listens here once closed
    probe.close()
    server, _ = await loop.create_datagram_endpoint(factory, local_addr=("127.0.0.1", 0))
    held.append(server)
    refused, _ = await loop.create_datagram_endpoint(factory, remote_addr=dead)
    held.append(refused)
    refused.sendto(b"x")  # error_received(ConnectionRefusedError) follows
    await asyncio.sleep(0.05)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"hi", server.get_extra_info("sockname"))
    await asyncio.sleep(0.05)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(
    "where",
    ["connection_made", "data_received", "connection_lost", "datagram_received", "error_received"],
)
def test_base_exception_from_protocol_method_propagates(loop, where, exc_type):
    """A KeyboardInterrupt/SystemExit out of a protocol method ends
    run_until_complete with it (the exception handler sees nothing), and
    the loop stays usable; an ordinary exception there would go to the
    handler instead."""
    exercise = exercise_stream if where in ("connection_made", "data_received", "connection_lost") else exercise_datagram
    made = []

    def factory():
        made.append(RaisingProtocol(where, exc_type))
        return made[-1]

    held = []
    with pytest.raises(exc_type):
        loop.run_until_complete(exercise(loop, factory, held))
    assert loop.run_until_complete(asyncio.sleep(0, "usable")) == "usable"
    # Clean up what the interrupt left: the interrupted task, sockets and
    # transports (their protocols no longer raise).
    for p in made:
        p.where = None
    for task in asyncio.all_tasks(loop):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
    for h in held:
        h.close()
    loop.run_until_complete(asyncio.sleep(0.01))
