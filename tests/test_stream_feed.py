"""asyncio streams over the transport, on both loops: what a
``StreamReaderProtocol`` does with each read.

On ferrio an exact ``StreamReaderProtocol``/``StreamReader`` pair is fed
natively (src/transports/streamfeed.rs); everything here states the stdlib's
behaviour (asyncio's loop runs the same tests), including the cases where
ferrio must fall back to the stdlib's Python: a patched or subclassed
reader, an exported buffer, data after ``feed_eof()``.
"""

import asyncio
import gc
import random
import socket

import pytest


async def stream_pair(loop, limit=2**16, reader_cls=asyncio.StreamReader):
    """(reader, writer, peer): asyncio streams on one end of a loopback TCP
    connection, a non-blocking socket on the other."""
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setblocking(False)
    port = lsock.getsockname()[1]
    reader = reader_cls(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    conn = loop.create_task(loop.create_connection(lambda: protocol, "127.0.0.1", port))
    peer, _ = await loop.sock_accept(lsock)
    lsock.close()
    peer.setblocking(False)
    transport, _ = await conn
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer, peer


async def wait_until(cond, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


async def fatal_protocol_error(loop, writer, peer, then=lambda: None):
    """Waits for the exception handler call and the forced close."""
    await wait_until(lambda: loop.errors)
    then()
    await wait_until(writer.transport.is_closing)
    peer.close()


def fatal_exception(loop):
    """The one exception-handler call: a failed data_received."""
    [ctx] = loop.errors
    loop.errors.clear()
    assert ctx["message"] == "Fatal error: protocol.data_received() call failed."
    return ctx["exception"]


def close(writer, peer):
    writer.close()
    peer.close()


def test_every_byte_of_changing_sizes(loop):
    # Small reads, big reads, reads around the transport's size prediction:
    # readexactly() returns exactly what was sent, in order.
    sizes = [1, 9000, 10240, 10240, 12289, 300_000, 20_000, 5, 70_000, 8192, 12288, 3]
    rnd = random.Random(11)
    msgs = [rnd.randbytes(n) for n in sizes]

    async def main():
        reader, writer, peer = await stream_pair(loop)
        got = []
        for m in msgs:
            await loop.sock_sendall(peer, m)
            got.append(await asyncio.wait_for(reader.readexactly(len(m)), 10))
        close(writer, peer)
        return got

    assert loop.run_until_complete(main()) == msgs


def test_data_waits_in_buffer_when_read_was_cancelled(loop):
    async def main():
        reader, writer, peer = await stream_pair(loop)
        t = loop.create_task(reader.read(100))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await loop.sock_sendall(peer, b"kept")
        await wait_until(lambda: len(reader._buffer) == 4)
        data = await reader.read(100)
        close(writer, peer)
        return data

    assert loop.run_until_complete(main()) == b"kept"


def test_over_twice_the_limit_pauses_reading_until_consumed(loop):
    async def main():
        reader, writer, peer = await stream_pair(loop, limit=1024)
        payload = bytes(range(256)) * 64  # 16 KiB, over 2 * limit
        await loop.sock_sendall(peer, payload)
        await wait_until(lambda: reader._paused)
        paused_reading = writer.transport.is_reading()
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        resumed = writer.transport.is_reading()
        close(writer, peer)
        return paused_reading, got == payload, resumed

    assert loop.run_until_complete(main()) == (False, True, True)


def test_eof_then_read_returns_rest(loop):
    async def main():
        reader, writer, peer = await stream_pair(loop)
        await loop.sock_sendall(peer, b"tail")
        peer.shutdown(socket.SHUT_WR)
        data = await asyncio.wait_for(reader.read(), 5)
        close(writer, peer)
        return data, reader.at_eof()

    assert loop.run_until_complete(main()) == (b"tail", True)


@pytest.mark.skipif(not __debug__, reason="the stdlib's check is an assert")
def test_data_after_feed_eof_is_a_fatal_protocol_error(loop):
    async def main():
        reader, writer, peer = await stream_pair(loop)
        reader.feed_eof()
        await loop.sock_sendall(peer, b"late")
        await fatal_protocol_error(loop, writer, peer)

    loop.run_until_complete(main())
    assert isinstance(fatal_exception(loop), AssertionError)


@pytest.mark.parametrize("first", [0, 20_000], ids=["small-read", "big-read"])
def test_exported_buffer_makes_data_received_fail(loop, first):
    # A live memoryview of the reader's buffer: the stdlib's extend() raises
    # BufferError inside data_received, a fatal protocol error. `first`
    # makes the transport's next read a small or a big (in-place) one.
    async def main():
        reader, writer, peer = await stream_pair(loop)
        if first:
            await loop.sock_sendall(peer, b"a" * first)
            await reader.readexactly(first)
        view = memoryview(reader._buffer)
        await loop.sock_sendall(peer, b"b" * 20_000)
        await fatal_protocol_error(loop, writer, peer, view.release)

    loop.run_until_complete(main())
    assert isinstance(fatal_exception(loop), BufferError)


def test_subclassed_reader_feed_data_is_called(loop):
    seen = []

    class Reader(asyncio.StreamReader):
        def feed_data(self, data):
            seen.append(bytes(data))
            super().feed_data(data.upper())

    async def main():
        reader, writer, peer = await stream_pair(loop, reader_cls=Reader)
        await loop.sock_sendall(peer, b"abc")
        data = await asyncio.wait_for(reader.readexactly(3), 5)
        close(writer, peer)
        return data

    assert loop.run_until_complete(main()) == b"ABC"
    assert seen == [b"abc"]


@pytest.mark.parametrize("when", ["before", "after"])
def test_patched_feed_data_is_called(loop, monkeypatch, when):
    # Patching the class before the connection is made, or while it is
    # open, takes effect for the next read, as with the stdlib's Python.
    seen = []
    original = asyncio.StreamReader.feed_data

    def feed_data(self, data):
        seen.append(bytes(data))
        original(self, data)

    async def main():
        if when == "before":
            monkeypatch.setattr(asyncio.StreamReader, "feed_data", feed_data)
        reader, writer, peer = await stream_pair(loop)
        await loop.sock_sendall(peer, b"one")
        first = await asyncio.wait_for(reader.readexactly(3), 5)
        if when == "after":
            monkeypatch.setattr(asyncio.StreamReader, "feed_data", feed_data)
        await loop.sock_sendall(peer, b"two")
        second = await asyncio.wait_for(reader.readexactly(3), 5)
        close(writer, peer)
        return first + second

    assert loop.run_until_complete(main()) == b"onetwo"
    assert seen == ([b"one", b"two"] if when == "before" else [b"two"])


def test_reader_gone_drops_data_quietly(loop):
    async def main():
        reader, writer, peer = await stream_pair(loop)
        protocol = writer.transport.get_protocol()
        del reader
        writer._reader = None
        gc.collect()
        assert protocol._stream_reader is None
        await loop.sock_sendall(peer, b"nobody reads this")
        await asyncio.sleep(0.05)
        still_open = not writer.transport.is_closing()
        close(writer, peer)
        return still_open

    assert loop.run_until_complete(main()) is True


def test_start_server_echo_many_connections(loop):
    async def handler(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def client(port, seed):
        rnd = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(20):
            msg = rnd.randbytes(rnd.choice([1, 100, 4000, 9000, 30_000]))
            writer.write(msg)
            assert await reader.readexactly(len(msg)) == msg
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await asyncio.wait_for(asyncio.gather(*(client(port, i) for i in range(10))), 30)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
