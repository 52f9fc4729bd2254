"""Destination addresses of unconnected datagram sends, in every form the
socket module takes or refuses: ferrio sends numeric ``(host, port)``
tuples with its own ``sendto(2)`` and hands everything else (hostnames,
``""``, bytes hosts, odd types, out-of-range values) to the socket
object, so each form must end as it does on asyncio's loop: delivered
to the same place, or the same exception raised (``sock_sendto``) or
passed to ``error_received`` (the transport). Replies to the address a
datagram came from (ferrio hands out a cached tuple for a known sender)
are covered too. Differential: both loops."""

import asyncio
import socket
import sys

import pytest

from conftest import INET_FAMILIES as FAMILIES


def forms(family, port):
    """(name, address) pairs to send to; ``port`` is a listening socket's."""
    if family == socket.AF_INET:
        return [
            ("numeric", ("127.0.0.1", port)),
            ("hostname", ("localhost", port)),
            ("short-form", ("127.1", port)),
            ("bytes-host", (b"127.0.0.1", port)),
            ("any", ("", port)),
            ("list", ["127.0.0.1", port]),
            ("triple", ("127.0.0.1", port, 0)),
            ("str-port", ("127.0.0.1", str(port))),
            ("port-too-big", ("127.0.0.1", 70000)),
            ("port-negative", ("127.0.0.1", -1)),
            ("bad-host", ("256.1.1.1", port)),
            ("ipv6-host", ("::1", port)),
            ("not-a-tuple", "127.0.0.1"),
        ]
    return [
        ("numeric", ("::1", port)),
        ("numeric-4", ("::1", port, 0, 0)),
        ("numeric-3", ("::1", port, 0)),
        ("long-form", ("0:0:0:0:0:0:0:1", port)),
        ("hostname", ("localhost", port)),
        ("flowinfo-too-big", ("::1", port, 0x100000, 0)),
        ("scope-negative", ("::1", port, 0, -1)),
        ("ipv4-host", ("127.0.0.1", port)),
        ("five", ("::1", port, 0, 0, 0)),
    ]


def outcome(exc):
    return type(exc).__name__


async def received(sock, loop, timeout=0.3):
    """The datagrams waiting on ``sock`` (non-blocking) after ``timeout``."""
    await asyncio.sleep(timeout)
    out = []
    while True:
        try:
            out.append(sock.recv(100))
        except BlockingIOError:
            return out


async def transport_sends(loop, family, host):
    """Sends each form from a fresh unconnected endpoint: {name: what
    happened}, and the datagrams that arrived (their payload is the form's
    name). A non-OSError from the socket is a fatal error (the exception
    handler is called and the transport closes), hence one endpoint each."""
    sink = socket.socket(family, socket.SOCK_DGRAM)
    sink.bind((host, 0))
    sink.setblocking(False)
    results = {}

    class Proto(asyncio.DatagramProtocol):
        def __init__(self):
            self.seen = []

        def error_received(self, exc):
            self.seen.append("error_received " + outcome(exc))

        def connection_lost(self, exc):
            if exc is not None:
                self.seen.append("lost " + outcome(exc))

    try:
        for name, addr in forms(family, sink.getsockname()[1]):
            tr, proto = await loop.create_datagram_endpoint(
                Proto, local_addr=(host, 0), family=family
            )
            try:
                tr.sendto(name.encode(), addr)
            except Exception as e:
                proto.seen.append("raised " + outcome(e))
            await asyncio.sleep(0.01)
            tr.close()
            await asyncio.sleep(0)
            results[name] = ", ".join(proto.seen) or "sent"
        return results, sorted(await received(sink, loop))
    finally:
        sink.close()


async def sock_sends(loop, family, host):
    """The same forms through ``loop.sock_sendto``."""
    sink = socket.socket(family, socket.SOCK_DGRAM)
    sink.bind((host, 0))
    sink.setblocking(False)
    src = socket.socket(family, socket.SOCK_DGRAM)
    src.bind((host, 0))
    src.setblocking(False)
    results = {}
    try:
        for name, addr in forms(family, sink.getsockname()[1]):
            try:
                n = await asyncio.wait_for(loop.sock_sendto(src, name.encode(), addr), 5)
                results[name] = "sent %d" % n
            except Exception as e:
                results[name] = "raised " + outcome(e)
        return results, sorted(await received(sink, loop))
    finally:
        src.close()
        sink.close()


def resolves(name, family):
    try:
        return bool(socket.getaddrinfo(name, 9, family, socket.SOCK_DGRAM))
    except socket.gaierror:
        return False


def expected_outcomes(family, sent, failed):
    """{form: outcome} as asyncio's loop gives it; ``sent`` and
    ``failed(exc_name)`` spell an outcome for the API under test.
    "localhost" depends on the host's resolver, so it is asked."""
    if family == socket.AF_INET:
        out = {
            "numeric": sent,
            "hostname": sent if resolves("localhost", family) else failed("gaierror"),
            "short-form": sent,
            "bytes-host": sent,
            "any": sent,
            "list": failed("TypeError"),
            "triple": failed("TypeError"),
            "str-port": failed("TypeError"),
            "port-too-big": failed("OverflowError"),
            "port-negative": failed("OverflowError"),
            "bad-host": failed("gaierror"),
            "ipv6-host": failed("gaierror"),
            "not-a-tuple": failed("TypeError"),
        }
    else:
        out = {
            "numeric": sent,
            "numeric-4": sent,
            "numeric-3": sent,
            "long-form": sent,
            "hostname": sent if resolves("localhost", family) else failed("gaierror"),
            "flowinfo-too-big": failed("OverflowError"),
            # the socket module takes -1 as the unsigned scope 0xffffffff,
            # which the kernel ignores for loopback
            "scope-negative": sent,
            "ipv4-host": failed("gaierror"),
            "five": failed("TypeError"),
        }
    return out


def delivered(outcomes, sent):
    return sorted(name.encode() for name, o in outcomes.items() if o == sent)


@pytest.mark.parametrize("family,host", FAMILIES)
def test_transport_sendto_every_address_form(loop, family, host):
    results, got = loop.run_until_complete(transport_sends(loop, family, host))
    # OSErrors (gaierror) go to error_received; anything else is a fatal
    # error: the exception handler, then connection_lost(exc).
    fatal = {"TypeError", "OverflowError"}

    def failed(name):
        return ("lost " if name in fatal else "error_received ") + name

    expected = expected_outcomes(family, "sent", failed)
    assert results == expected
    assert got == delivered(expected, "sent")
    handled = sorted(type(ctx["exception"]).__name__ for ctx in loop.errors)
    loop.errors.clear()
    assert handled == sorted(o.split()[1] for o in expected.values() if o.startswith("lost "))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="sock_sendto is 3.11+")
@pytest.mark.parametrize("family,host", FAMILIES)
def test_sock_sendto_every_address_form(loop, family, host):
    results, got = loop.run_until_complete(sock_sends(loop, family, host))
    sent = {name: "sent %d" % len(name) for name, _ in forms(family, 9)}
    expected = expected_outcomes(family, "sent", lambda name: "raised " + name)
    expected = {name: sent[name] if o == "sent" else o for name, o in expected.items()}
    assert results == expected
    assert got == sorted(name.encode() for name, o in expected.items() if o.startswith("sent"))


@pytest.mark.parametrize("family,host", FAMILIES)
def test_replies_reach_many_senders(loop, family, host):
    """A server answering each datagram to its sender's address, with more
    senders than ferrio keeps address tuples for (16), interleaved: every
    reply reaches its sender, and the addresses the server saw are the
    senders' own."""
    senders = 40
    rounds = 3

    async def main():
        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport
                self.seen = set()

            def datagram_received(self, data, addr):
                self.seen.add(addr)
                self.transport.sendto(data + b"!", addr)

        srv_t, srv = await loop.create_datagram_endpoint(Echo, local_addr=(host, 0))
        dest = srv_t.get_extra_info("sockname")
        socks = []
        try:
            for _ in range(senders):
                s = socket.socket(family, socket.SOCK_DGRAM)
                s.bind((host, 0))
                s.setblocking(False)
                socks.append(s)
            replies = {i: [] for i in range(senders)}
            for r in range(rounds):
                for i, s in enumerate(socks):
                    s.sendto(b"%d-%d" % (i, r), dest)
                deadline = loop.time() + 5
                while loop.time() < deadline and any(len(v) <= r for v in replies.values()):
                    await asyncio.sleep(0.005)
                    for i, s in enumerate(socks):
                        try:
                            replies[i].append(s.recv(100))
                        except BlockingIOError:
                            pass
            own = {s.getsockname() for s in socks}
            return replies, srv.seen == own
        finally:
            for s in socks:
                s.close()
            srv_t.close()
            await asyncio.sleep(0)

    replies, same_addresses = loop.run_until_complete(main())
    assert replies == {i: [b"%d-%d!" % (i, r) for r in range(rounds)] for i in range(senders)}
    assert same_addresses
