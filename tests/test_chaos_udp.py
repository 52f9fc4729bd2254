"""A UDP echo endpoint staying up under a mix of misbehaving senders, on
both loops (the datagram counterpart of test_chaos.py).

The server is an `asyncio.DatagramProtocol` echo. Its senders, one seeded
random mix run from a worker thread with blocking sockets: well-behaved
clients (payloads of 1 byte to 65507, the IPv4 maximum, every byte
checked), bursts far past the server's receive buffer (the kernel drops
datagrams; the server must keep up and answer the next probe), datagrams
the protocol raises on, datagrams that make the protocol call `sendto`
with an address that does not resolve (asyncio reports the error to
`error_received` and the endpoint carries on) or with a `str` (a
TypeError out of `datagram_received`, to the exception handler), empty
datagrams, and senders that close their socket before the echo comes
back.

Afterwards the endpoint must still echo, the exception handler must have
seen exactly the protocol's own failures, `error_received` exactly the
bad addresses, and no file descriptor may be left open.

Bounded: a fixed number of senders, every receive with a timeout, the
whole run under a time limit; everything on 127.0.0.1.
"""

import asyncio
import random
import socket
import sys

from conftest import open_fds

SENDERS = 600
LIMIT_S = 60
RECV_TIMEOUT = 5.0
MAX_PAYLOAD = 65507


class Boom(RuntimeError):
    """What the protocol raises on a b"RAISE" datagram."""


class ChaosEcho(asyncio.DatagramProtocol):
    def __init__(self):
        self.errors = []

    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        if data.startswith(b"RAISE"):
            raise Boom("asked to fail")
        if data.startswith(b"BADTYPE"):
            self.t.sendto("not bytes", addr)  # TypeError, as on asyncio
            return
        if data.startswith(b"BADADDR"):
            # Does not resolve: asyncio hands the error to error_received
            # and sendto returns normally.
            self.t.sendto(data, ("256.0.0.1", 9))
        self.t.sendto(data, addr)

    def error_received(self, exc):
        self.errors.append(exc)


def client_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(RECV_TIMEOUT)
    s.connect(("127.0.0.1", port))
    return s


def exchange(s, payload):
    """Sends one datagram and returns the first datagram that comes back
    (None on timeout)."""
    s.send(payload)
    try:
        return s.recv(MAX_PAYLOAD + 1)
    except socket.timeout:
        return None


def probe(port, tries=50):
    """An echo that gets through, retried while the server drains a burst
    (each datagram may be dropped by a full receive buffer)."""
    with client_socket(port) as s:
        s.settimeout(0.2)
        for i in range(tries):
            payload = b"probe-%d" % i
            s.send(payload)
            try:
                while True:
                    got = s.recv(MAX_PAYLOAD + 1)
                    if got == payload:
                        return True
            except socket.timeout:
                continue
    return False


def senders(port, seed):
    """The client side; returns counts of what it sent and saw."""
    rng = random.Random(seed)
    seen = {"ok": 0, "raise": 0, "badtype": 0, "badaddr": 0, "burst": 0, "gone": 0, "empty": 0}
    kept = client_socket(port)
    try:
        for i in range(SENDERS):
            kind = rng.choices(
                ["ok", "big", "raise", "badtype", "badaddr", "burst", "gone", "empty"],
                weights=[55, 5, 8, 8, 8, 2, 10, 4],
            )[0]
            if kind in ("ok", "big"):
                size = MAX_PAYLOAD if kind == "big" else rng.randint(1, 4096)
                payload = rng.randbytes(size)
                s = kept if rng.random() < 0.5 else client_socket(port)
                try:
                    got = exchange(s, payload)
                finally:
                    if s is not kept:
                        s.close()
                assert got == payload, f"sender {i}: echo of {size} bytes lost or wrong"
                seen["ok"] += 1
            elif kind == "raise":
                kept.send(b"RAISE %d" % i)
                seen["raise"] += 1
            elif kind == "badtype":
                kept.send(b"BADTYPE %d" % i)
                seen["badtype"] += 1
            elif kind == "badaddr":
                payload = b"BADADDR %d" % i
                assert exchange(kept, payload) == payload
                seen["badaddr"] += 1
            elif kind == "burst":
                with client_socket(port) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    chunk = rng.randbytes(4096)
                    for _ in range(500):
                        s.send(chunk)
                assert probe(port), f"sender {i}: no echo after a burst"
                seen["burst"] += 1
            elif kind == "empty":
                # An empty datagram reaches datagram_received on every
                # version; echoing it sends nothing before 3.13
                # (`sendto(b"")` returned early), an empty datagram since.
                # A stray echo would show up as the next exchange's reply.
                if sys.version_info >= (3, 13):
                    assert exchange(kept, b"") == b""
                else:
                    kept.send(b"")
                seen["empty"] += 1
            else:  # gone: the echo goes to a port nobody listens on any more
                with client_socket(port) as s:
                    s.send(b"gone %d" % i)
                seen["gone"] += 1
        assert probe(port), "no echo at the end"
    finally:
        kept.close()
    return seen


def test_datagram_endpoint_survives_misbehaving_senders(loop):
    fds_before = open_fds()

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            ChaosEcho, local_addr=("127.0.0.1", 0)
        )
        # A small receive buffer, so the bursts overflow it for certain.
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        port = transport.get_extra_info("sockname")[1]
        try:
            seen = await asyncio.wait_for(
                loop.run_in_executor(None, senders, port, 20261205), LIMIT_S
            )
        finally:
            transport.close()
        await asyncio.sleep(0)
        return seen, proto

    seen, proto = loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_default_executor())

    assert seen["ok"] > 200 and seen["burst"] > 0 and seen["gone"] > 0
    # The handler saw exactly the protocol's failures: each RAISE and each
    # BADTYPE, from datagram_received, with the right exception.
    boom = [c for c in loop.errors if isinstance(c.get("exception"), Boom)]
    bad_type = [c for c in loop.errors if isinstance(c.get("exception"), TypeError)]
    assert len(boom) == seen["raise"]
    assert len(bad_type) == seen["badtype"]
    assert len(loop.errors) == len(boom) + len(bad_type)
    assert all("data argument must be a bytes-like object" in str(c["exception"]) for c in bad_type)
    loop.errors.clear()
    # Every unresolvable address went to error_received as an OSError
    # (socket.gaierror); nothing else did.
    assert len(proto.errors) == seen["badaddr"]
    assert all(isinstance(e, socket.gaierror) for e in proto.errors)
    assert open_fds() == fds_before
