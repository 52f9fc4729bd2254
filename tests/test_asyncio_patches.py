"""Patches of asyncio's loop classes reach the loop, on both loops.

Test suites inject faults by patching asyncio's classes rather than a loop
object: asyncssh's patches ``asyncio.BaseEventLoop.create_connection`` with a
slow connect to test its connect timeout. asyncio's loop sees such a patch
through inheritance; ferrio's loop takes those methods from asyncio
(python/ferrio/_borrow.py) and must see it too.
"""

import asyncio
import socket
from unittest import mock

import pytest


async def _slow_create_connection(*args, **kwargs):
    await asyncio.sleep(30)


def test_patched_create_connection_is_used(loop):
    async def main():
        with mock.patch("asyncio.BaseEventLoop.create_connection", _slow_create_connection):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(loop.create_connection(asyncio.Protocol, "127.0.0.1", 9), 0.1)
            # A patch on the concrete selector class counts too.
            with mock.patch.object(asyncio.SelectorEventLoop, "create_connection", _slow_create_connection):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(loop.create_connection(asyncio.Protocol, "127.0.0.1", 9), 0.1)

    loop.run_until_complete(main())


def test_create_connection_works_again_after_the_patch(loop):
    async def main():
        with mock.patch("asyncio.BaseEventLoop.create_connection", _slow_create_connection):
            pass
        srv = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        peer = tr.get_extra_info("peername")
        tr.close()
        srv.close()
        await srv.wait_closed()
        return peer[1] == port

    assert loop.run_until_complete(main())


def test_patched_getaddrinfo_resolves_for_create_connection(loop):
    """A fake resolver patched on asyncio's class answers ``getaddrinfo``,
    numeric hosts included, and create_connection goes through it."""
    calls = []

    async def fake_getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        calls.append((host, port))
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

    async def main():
        srv = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            with mock.patch("asyncio.BaseEventLoop.getaddrinfo", fake_getaddrinfo):
                numeric = await loop.getaddrinfo("10.1.2.3", port)
                tr, _ = await loop.create_connection(asyncio.Protocol, "db.invalid", port)
                peer = tr.get_extra_info("peername")
                tr.close()
        finally:
            srv.close()
            await srv.wait_closed()
        return numeric, peer

    numeric, peer = loop.run_until_complete(main())
    assert numeric[0][4] == ("127.0.0.1", peer[1])
    assert peer == ("127.0.0.1", peer[1])
    assert calls[0] == ("10.1.2.3", peer[1])
    assert ("db.invalid", peer[1]) in calls


def test_patched_with_a_mock_is_returned_unbound(loop):
    """A Mock patched onto the class is what ``loop.create_server`` gives
    (Mocks are not descriptors), so calls reach it without ``self``."""
    with mock.patch("asyncio.BaseEventLoop.create_server", new=mock.Mock()) as m:
        loop.create_server("factory", "h", 1)
    m.assert_called_once_with("factory", "h", 1)
