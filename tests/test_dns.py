"""loop.getaddrinfo / getnameinfo: same results and errors as
socket.getaddrinfo on both loops; on ferrio numeric hosts skip the thread
pool."""

import asyncio
import socket

import pytest

from conftest import is_ferrio

CASES = [
    ("127.0.0.1", 80, {}),
    ("127.0.0.1", "8080", {"type": socket.SOCK_STREAM}),
    ("::1", 443, {"family": socket.AF_INET6}),
    (None, 0, {"flags": socket.AI_PASSIVE, "type": socket.SOCK_STREAM}),
    (b"10.1.2.3", None, {"proto": socket.IPPROTO_UDP, "type": socket.SOCK_DGRAM}),
    ("localhost", 22, {"type": socket.SOCK_STREAM}),
    ("127.0.0.1", "http", {"type": socket.SOCK_STREAM}),
]


@pytest.mark.parametrize("host,port,kw", CASES)
def test_getaddrinfo_matches_socket(loop, host, port, kw):
    got = loop.run_until_complete(loop.getaddrinfo(host, port, **kw))
    assert got == socket.getaddrinfo(host, port, **kw)


@pytest.mark.parametrize(
    "host,port,exc",
    [
        ("127.0.0.1", [], OSError),
        ("no-such-host.invalid", 80, socket.gaierror),
        ("127.0.0.1", "nope-not-a-service", socket.gaierror),
    ],
)
def test_getaddrinfo_errors(loop, host, port, exc):
    with pytest.raises(exc):
        loop.run_until_complete(loop.getaddrinfo(host, port))


def test_getnameinfo(loop):
    got = loop.run_until_complete(loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV))
    assert got == ("127.0.0.1", "80")


def test_numeric_host_skips_thread_pool(loop):
    loop.run_until_complete(loop.getaddrinfo("127.0.0.1", 80))
    if is_ferrio(loop):
        assert loop._default_executor is None
    else:  # asyncio resolves in its default executor
        assert loop._default_executor is not None
