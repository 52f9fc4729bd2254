"""add_reader / add_writer / remove_*: asyncio's level-triggered meaning."""

import os
import socket

import pytest

import ferrio


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def run_for(loop, seconds):
    loop.call_later(seconds, loop.stop)
    loop.run_forever()


def test_reader_fires_on_data(loop, pair):
    a, b = pair
    got = []

    def on_read():
        got.append(a.recv(100))
        loop.remove_reader(a)
        loop.stop()

    assert loop.add_reader(a, on_read) is None
    b.send(b"hello")
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert got == [b"hello"]


def test_reader_is_level_triggered(loop, pair):
    """Data left unread makes the reader fire again on later iterations."""
    a, b = pair
    calls = []

    def on_read():
        calls.append(1)
        if len(calls) == 5:
            a.recv(100)
            loop.remove_reader(a.fileno())
            loop.stop()

    loop.add_reader(a.fileno(), on_read)
    b.send(b"x")
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert len(calls) == 5


def test_reader_args(loop, pair):
    a, b = pair
    got = []

    def on_read(x, y):
        got.append((x, y))
        a.recv(10)
        loop.remove_reader(a)
        loop.stop()

    loop.add_reader(a, on_read, 1, 2)
    b.send(b"!")
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert got == [(1, 2)]


def test_writer_fires_when_writable(loop, pair):
    a, _ = pair
    calls = []

    def on_write():
        calls.append(1)
        loop.remove_writer(a)
        loop.stop()

    loop.add_writer(a, on_write)
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert calls == [1]


def test_remove_return_values(loop, pair):
    a, _ = pair
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    loop.add_reader(a, print)
    loop.add_writer(a, print)
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is True
    assert loop.remove_writer(a) is False


def test_replace_reader(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(a, lambda: got.append("first"))

    def second():
        got.append("second")
        a.recv(10)
        loop.remove_reader(a)
        loop.stop()

    loop.add_reader(a, second)
    b.send(b"x")
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert got == ["second"]


def test_reader_and_writer_same_fd(loop, pair):
    a, b = pair
    events = []

    def on_read():
        events.append("r")
        a.recv(10)
        loop.remove_reader(a)

    def on_write():
        events.append("w")
        loop.remove_writer(a)

    loop.add_reader(a, on_read)
    loop.add_writer(a, on_write)
    b.send(b"x")
    run_for(loop, 0.05)
    assert sorted(events) == ["r", "w"]


def test_reader_hangup(loop, pair):
    a, b = pair
    got = []

    def on_read():
        got.append(a.recv(10))
        loop.remove_reader(a)
        loop.stop()

    loop.add_reader(a, on_read)
    b.close()
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert got == [b""]


def test_pipe_reader(loop):
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        got = []

        def on_read():
            got.append(os.read(r, 100))
            loop.remove_reader(r)
            loop.stop()

        loop.add_reader(r, on_read)
        os.write(w, b"pipe")
        loop.call_later(5, loop.stop)
        loop.run_forever()
        assert got == [b"pipe"]
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("huge", [2**31, 2**70])
def test_remove_fd_out_of_range_is_false(loop, huge):
    # No such fd can be registered: removing it removes nothing.
    assert loop.remove_reader(huge) is False
    assert loop.remove_writer(huge) is False


@pytest.mark.parametrize("bad", [-1, "x", 1.5, object()])
def test_invalid_fd_value_error(loop, bad):
    with pytest.raises(ValueError):
        loop.add_reader(bad, print)
    with pytest.raises(ValueError):
        loop.remove_reader(bad)
    with pytest.raises(ValueError):
        loop.add_writer(bad, print)


def test_fileno_raising_value_error(loop):
    class Bad:
        def fileno(self):
            raise ValueError("closed")

    with pytest.raises(ValueError):
        loop.add_reader(Bad(), print)


def test_closed_fd_os_error(loop):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        loop.add_reader(r, print)
    assert loop.remove_reader(r) is False


@pytest.mark.parametrize("side", ["reader", "writer"])
def test_remove_after_socket_closed(loop, side):
    """A socket closed while watched (fileno() is now -1) is still removed
    by identity, as selectors' exhaustive lookup finds it (anyio closes a
    raw socket, then its done-callback calls remove_reader)."""
    add = getattr(loop, "add_" + side)
    remove = getattr(loop, "remove_" + side)
    a, b = socket.socketpair()
    b.close()
    add(a, print)
    a.close()
    assert a.fileno() == -1
    assert remove(a) is True
    with pytest.raises(ValueError, match="-1"):  # no longer registered
        remove(a)
    # A fresh socket that may reuse the fd number is not watched.
    c, d = socket.socketpair()
    try:
        assert remove(c) is False
    finally:
        c.close()
        d.close()


def test_remove_closed_socket_never_added(loop):
    a, b = socket.socketpair()
    a.close()
    b.close()
    with pytest.raises(ValueError, match="-1"):
        loop.remove_reader(a)
    with pytest.raises(ValueError, match="-1"):
        loop.remove_writer(a)


def test_remove_closed_socket_added_by_fd(loop):
    # Registered by number: nothing ties the closed object to it.
    a, b = socket.socketpair()
    b.close()
    fd = a.fileno()
    loop.add_reader(fd, print)
    a.close()
    with pytest.raises(ValueError):
        loop.remove_reader(a)
    assert loop.remove_reader(fd) is True


def test_closed_socket_reader_and_writer(loop):
    a, b = socket.socketpair()
    b.close()
    loop.add_reader(a, print)
    loop.add_writer(a, print)
    a.close()
    if isinstance(loop, ferrio.Loop):
        # ferrio: the writer is removed and the dead fd forgotten.
        assert loop.remove_writer(a) is True
    else:
        # asyncio: re-arming the dead fd for the reader alone fails
        # (EBADF), and the selector forgets the key.
        with pytest.raises(OSError):
            loop.remove_writer(a)
    # Either way nothing is registered any more.
    with pytest.raises(ValueError, match="-1"):
        loop.remove_reader(a)


def test_fd_reused_after_close_without_remove(loop):
    """A socket closed while watched and never removed, then its fd number
    reused and watched by number: asyncio's selector key still names the
    closed object, so removing that object removes the new watcher. ferrio
    re-checks the recorded object when the fd is watched again and refuses
    (documented in docs/compatibility.md)."""
    a, b = socket.socketpair()
    b.close()
    c, d = socket.socketpair()  # while a is open: neither takes a's number
    n = a.fileno()
    loop.add_reader(a, print)
    a.close()
    os.dup2(c.fileno(), n)  # fd n now names c's socket
    try:
        loop.add_reader(n, print)
        if isinstance(loop, ferrio.Loop):
            with pytest.raises(ValueError, match="-1"):
                loop.remove_reader(a)
            assert loop.remove_reader(n) is True
        else:
            assert loop.remove_reader(a) is True  # the new watcher is gone
            assert loop.remove_reader(n) is False
    finally:
        os.close(n)
        c.close()
        d.close()


def test_closed_loop_remove_invalid_fd(loop):
    loop.close()
    assert loop.remove_reader(-1) is False
    assert loop.remove_writer(-1) is False


def test_regular_file_not_pollable(loop, tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x")
    with open(p, "rb") as f:
        with pytest.raises(PermissionError):
            loop.add_reader(f, print)


def test_closed_loop(loop, pair):
    a, _ = pair
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_reader(a, print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_writer(a, print)
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False


def test_reader_exception_goes_to_handler(loop, pair):
    a, b = pair

    def on_read():
        a.recv(10)
        loop.remove_reader(a)
        loop.call_soon(loop.stop)
        raise ZeroDivisionError

    loop.add_reader(a, on_read)
    b.send(b"x")
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert len(loop.errors) == 1
    assert isinstance(loop.errors[0]["exception"], ZeroDivisionError)
    loop.errors.clear()
