"""``loop.sock_recvfrom``, ``sock_recvfrom_into`` and ``sock_sendto``
(3.11+) on both loops: results, addresses for every family, waiting,
cancellation and bad arguments."""

import asyncio
import socket
import sys

import pytest

from conftest import has_ipv6

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="sock_recvfrom/sock_sendto are 3.11+"
)


def udp_pair(family=socket.AF_INET, host="127.0.0.1"):
    a = socket.socket(family, socket.SOCK_DGRAM)
    b = socket.socket(family, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind((host, 0))
        s.setblocking(False)
    return a, b


async def raised(aw, timeout=5):
    """The type of the exception awaiting ``aw`` raised, or None."""
    try:
        await asyncio.wait_for(aw, timeout)
    except Exception as e:
        return type(e)
    return None


@pytest.mark.parametrize(
    "family,host",
    [
        (socket.AF_INET, "127.0.0.1"),
        pytest.param(
            socket.AF_INET6,
            "::1",
            marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback"),
        ),
    ],
    ids=["ipv4", "ipv6"],
)
def test_roundtrip_waits_and_gives_sender_address(loop, family, host):
    async def main():
        a, b = udp_pair(family, host)
        waiting = loop.create_task(loop.sock_recvfrom(a, 1024))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        sent = await loop.sock_sendto(b, b"hello", a.getsockname())
        data, addr = await asyncio.wait_for(waiting, 5)
        # Ready at once (queued already): no wait.
        await loop.sock_sendto(b, b"again", a.getsockname())
        await asyncio.sleep(0.01)
        again = await loop.sock_recvfrom(a, 1024)
        same = addr == b.getsockname()
        a.close()
        b.close()
        return sent, data, same, again[0]

    assert loop.run_until_complete(main()) == (5, b"hello", True, b"again")


def test_recvfrom_into_counts_and_checks(loop):
    async def main():
        a, b = udp_pair()
        buf = bytearray(16)
        t = loop.create_task(loop.sock_recvfrom_into(a, buf))
        await asyncio.sleep(0.01)
        b.sendto(b"0123456789", a.getsockname())
        n, addr = await asyncio.wait_for(t, 5)
        first = (n, bytes(buf[:n]), addr == b.getsockname())
        b.sendto(b"abcdef", a.getsockname())
        await asyncio.sleep(0.01)
        n2, _ = await loop.sock_recvfrom_into(a, buf, 3)  # truncated to nbytes
        errors = [await raised(loop.sock_recvfrom_into(a, buf, nbytes)) for nbytes in (17, -1)]
        a.close()
        b.close()
        return first, n2, bytes(buf[:3]), errors

    first, n2, head, errors = loop.run_until_complete(main())
    assert first == (10, b"0123456789", True)
    assert (n2, head) == (3, b"abc")
    assert errors == [ValueError, ValueError]


def test_buffer_shrunk_while_waiting(loop):
    # The buffer is not held while waiting; a datagram arriving after it
    # shrank below nbytes meets socket.recvfrom_into's own check.
    async def main():
        a, b = udp_pair()
        buf = bytearray(64)
        t = loop.create_task(loop.sock_recvfrom_into(a, buf, 64))
        await asyncio.sleep(0.01)
        del buf[8:]
        b.sendto(b"x" * 20, a.getsockname())
        err = await raised(t)
        a.close()
        b.close()
        return err

    assert loop.run_until_complete(main()) is ValueError


def test_truncation_and_empty_datagram(loop):
    async def main():
        a, b = udp_pair()
        b.sendto(b"abcdefgh", a.getsockname())
        b.sendto(b"", a.getsockname())
        await asyncio.sleep(0.02)
        short, _ = await loop.sock_recvfrom(a, 3)
        empty, addr = await loop.sock_recvfrom(a, 100)
        same = addr == b.getsockname()
        a.close()
        b.close()
        return short, empty, same

    assert loop.run_until_complete(main()) == (b"abc", b"", True)


def test_cancelled_recvfrom_leaves_datagram_for_next(loop):
    async def main():
        a, b = udp_pair()
        t = loop.create_task(loop.sock_recvfrom(a, 100))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        b.sendto(b"kept", a.getsockname())
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(a, 100), 5)
        a.close()
        b.close()
        return data

    assert loop.run_until_complete(main()) == b"kept"


def test_unix_datagram_addresses(loop, tmp_path):
    # Not AF_INET: the socket object's own methods build the address.
    async def main():
        pa, pb = str(tmp_path / "a"), str(tmp_path / "b")
        a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.bind(pa)
        b.bind(pb)
        a.setblocking(False)
        b.setblocking(False)
        t = loop.create_task(loop.sock_recvfrom(a, 100))
        await asyncio.sleep(0.01)
        n = await loop.sock_sendto(b, b"unix", pa)
        data, addr = await asyncio.wait_for(t, 5)
        buf = bytearray(10)
        await loop.sock_sendto(b, b"into", pa)
        await asyncio.sleep(0.01)
        m, addr2 = await loop.sock_recvfrom_into(a, buf)
        a.close()
        b.close()
        return n, data, addr == pb, m, bytes(buf[:m]), addr2 == pb

    assert loop.run_until_complete(main()) == (4, b"unix", True, 4, b"into", True)


def test_recvfrom_on_a_stream_socket_has_no_address(loop):
    async def main():
        x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock = socket.create_server(("127.0.0.1", 0))
        c = socket.create_connection(lsock.getsockname())
        s, _ = lsock.accept()
        s.setblocking(False)
        c.sendall(b"tcp")
        await asyncio.sleep(0.01)
        got = await loop.sock_recvfrom(s, 100)
        for sock in (x, y, lsock, c, s):
            sock.close()
        return got

    assert loop.run_until_complete(main()) == (b"tcp", None)


def test_bad_arguments_raise_what_asyncio_raises(loop):
    async def main():
        a, b = udp_pair()
        results = [
            await raised(loop.sock_recvfrom(a, -1)),
            await raised(loop.sock_recvfrom(a, "x")),
            await raised(loop.sock_sendto(b, b"x", "not an address")),
            await raised(loop.sock_sendto(b, "text", a.getsockname())),
            await raised(loop.sock_recvfrom_into(a, b"read-only", 4)),
        ]
        a.close()
        b.close()
        closed = [
            await raised(loop.sock_recvfrom(a, 10)),
            await raised(loop.sock_sendto(b, b"x", ("127.0.0.1", 9))),
        ]
        return results, closed

    results, closed = loop.run_until_complete(main())
    assert results == [ValueError, TypeError, TypeError, TypeError, TypeError]
    assert closed == [OSError, OSError]


def test_many_datagrams_in_order(loop):
    async def main():
        a, b = udp_pair()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        got = []

        async def receiver():
            while len(got) < 500:
                data, _ = await loop.sock_recvfrom(a, 2048)
                got.append(data)

        r = loop.create_task(receiver())
        for i in range(500):
            await loop.sock_sendto(b, i.to_bytes(2, "big") * 100, a.getsockname())
            if i % 50 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(r, 10)
        a.close()
        b.close()
        return got

    got = loop.run_until_complete(main())
    assert got == [i.to_bytes(2, "big") * 100 for i in range(500)]


def test_no_fd_left_registered(loop):
    async def main():
        a, b = udp_pair()
        for i in range(20):
            t = loop.create_task(loop.sock_recvfrom(a, 100))
            await asyncio.sleep(0)
            b.sendto(bytes([i]), a.getsockname())
            await asyncio.wait_for(t, 5)
        a.close()
        b.close()
        # A new socket on the same fd number is free for add_reader.
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.setblocking(False)
        fut = loop.create_future()
        loop.add_reader(c.fileno(), fut.set_result, None)
        ok = loop.remove_reader(c.fileno())
        c.close()
        return ok

    assert loop.run_until_complete(main()) is True


def test_sock_datagram_on_transport_fd_raises(loop):
    async def main():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        tr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=s)
        err = await raised(loop.sock_recvfrom(s, 10))
        tr.close()
        await asyncio.sleep(0)
        return err

    assert loop.run_until_complete(main()) is RuntimeError

