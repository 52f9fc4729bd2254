"""How the transports' hot methods can be called: `write`, `writelines`,
`is_closing` on a socket transport and `sendto`, `is_closing` on a datagram
transport take their arguments positionally or by keyword, refuse wrong
ones with TypeError, can be shadowed per instance (a test's
`mock.patch.object`), and the transport objects take arbitrary attributes
and weak references. Differential: each runs on both loops (ferrio's are C
method descriptors over a `_core` slot, src/transports/fastmethods.rs).
"""

import asyncio
import socket
import weakref
from unittest import mock

import pytest

TIMEOUT = 10


class Sink(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data):
        self.data += data


def _pair(loop):
    """(client transport, server-side Sink) over a loopback TCP pair."""

    async def go():
        server_side = Sink(loop)
        srv = await loop.create_server(lambda: server_side, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(lambda: Sink(loop), "127.0.0.1", port)
        await asyncio.wait_for(server_side.made, TIMEOUT)
        return srv, tr, server_side

    return loop.run_until_complete(go())


async def _until(cond):
    for _ in range(1000):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def test_write_writelines_arguments(loop):
    srv, tr, peer = _pair(loop)
    try:
        tr.write(b"a")
        tr.write(data=b"b")
        tr.writelines([b"c", b"d"])
        tr.writelines(list_of_data=[b"e"])
        tr.write(bytearray(b"f"))
        tr.write(memoryview(b"g"))
        loop.run_until_complete(_until(lambda: bytes(peer.data) == b"abcdefg"))
        for call in (
            lambda: tr.write(),
            lambda: tr.write(b"x", b"y"),
            lambda: tr.write(b"x", data=b"y"),
            lambda: tr.write(payload=b"x"),
            lambda: tr.writelines(),
            lambda: tr.is_closing(1),
        ):
            with pytest.raises(TypeError):
                call()
        with pytest.raises(TypeError):
            tr.write("text")
        assert tr.is_closing() is False
        tr.close()
        assert tr.is_closing() is True
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        srv.close()
        loop.run_until_complete(srv.wait_closed())


def test_methods_can_be_shadowed_per_instance(loop):
    srv, tr, peer = _pair(loop)
    try:
        with mock.patch.object(tr, "write") as fake:
            tr.write(b"never sent")
            fake.assert_called_once_with(b"never sent")
        tr.write(b"sent")
        loop.run_until_complete(_until(lambda: bytes(peer.data) == b"sent"))
        # Attributes and weak references, as on any Python object.
        tr.custom = 1
        assert tr.custom == 1
        assert weakref.ref(tr)() is tr
        tr.close()
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        srv.close()
        loop.run_until_complete(srv.wait_closed())


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self):
        self.got = []

    def datagram_received(self, data, addr):
        self.got.append(data)


def test_sendto_arguments(loop):
    async def go():
        recv = Datagrams()
        rtr, _ = await loop.create_datagram_endpoint(lambda: recv, local_addr=("127.0.0.1", 0))
        addr = rtr.get_extra_info("sockname")
        str_, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, family=socket.AF_INET)
        ctr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=addr)
        try:
            str_.sendto(b"1", addr)
            str_.sendto(b"2", addr=addr)
            str_.sendto(data=b"3", addr=addr)
            ctr.sendto(b"4")
            ctr.sendto(b"5", None)
            ctr.sendto(data=b"6")
            await _until(lambda: sorted(recv.got) == [b"1", b"2", b"3", b"4", b"5", b"6"])
            for call in (
                lambda: str_.sendto(),
                lambda: str_.sendto(b"x", addr, 1),
                lambda: str_.sendto(b"x", address=addr),
                lambda: str_.is_closing(1),
            ):
                with pytest.raises(TypeError):
                    call()
            with pytest.raises(TypeError):
                str_.sendto("text", addr)
            with pytest.raises(ValueError):
                ctr.sendto(b"x", ("127.0.0.1", 1))
            assert ctr.is_closing() is False
        finally:
            for t in (rtr, str_, ctr):
                t.close()
            assert ctr.is_closing() is True
            await asyncio.sleep(0.01)

    loop.run_until_complete(go())
