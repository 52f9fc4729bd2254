"""The benchmark code still runs: every loop workload of `python -m ferrio
bench` with a tiny count, and every server mode of `bench net` answering
one request, on both loops; every `bench threads` workload with a tiny
count, for each implementation it compares. (Speed is never asserted: benches print
ratios, tests check that what they measure is real work that completes.)

Bounded: small counts, every wait under a timeout, 127.0.0.1 only.
"""

import asyncio
import socket
import threading

import pytest

from ferrio import _bench, _netbench, _threadbench

TIMEOUT = 10


@pytest.mark.parametrize("name", list(_bench.WORKLOADS))
def test_loop_workload_completes(loop, name):
    fn = _bench.WORKLOADS[name][0]
    try:
        elapsed = fn(loop, 200)
    except NotImplementedError as e:  # sock_udp before 3.11: no sock_recvfrom
        pytest.skip(f"{name}: the loop has no {e}")
    assert elapsed > 0
    loop.run_until_complete(loop.shutdown_default_executor())


@pytest.mark.parametrize("name", list(_threadbench.WORKLOADS))
def test_thread_workload_completes(name):
    fn, impls_of = _threadbench.WORKLOADS[name][:2]
    for impl_name, impl in impls_of().items():
        result = []
        # A daemon thread, so a deadlocked workload fails the test instead
        # of hanging it.
        t = threading.Thread(target=lambda: result.append(fn(impl, 400)), daemon=True)
        t.start()
        t.join(60)
        assert result and result[0] > 0, f"{name} on {impl_name} did not complete"


def _serve_mode(loop, mode, monkeypatch):
    """Starts `bench net`'s server for `mode` on `loop`; returns (task,
    port), or skips when the mode's library is missing."""
    printed = []
    monkeypatch.setattr(_netbench, "print", lambda *a, **k: printed.append(a[0]), raising=False)
    task = loop.create_task(_netbench._serve(mode, "127.0.0.1"))

    async def port():
        while not printed:
            if task.done():
                task.result()
                break
            await asyncio.sleep(0.005)
        return printed[0] if printed else None

    got = loop.run_until_complete(asyncio.wait_for(port(), TIMEOUT))
    if not isinstance(got, int):
        task.cancel()
        pytest.skip(f"{mode}: {got}")
    return task, got


def _run_client(loop, mode, monkeypatch, client):
    """Starts `mode`'s server, runs `client(port)` against it, stops the
    server; returns what the client returned."""
    task, port = _serve_mode(loop, mode, monkeypatch)
    try:
        return loop.run_until_complete(asyncio.wait_for(client(port), TIMEOUT))
    finally:
        task.cancel()
        try:
            loop.run_until_complete(asyncio.wait_for(task, TIMEOUT))
        except (asyncio.CancelledError, SystemExit):
            pass


@pytest.mark.parametrize("mode", _netbench.TCP_MODES)
def test_echo_server_modes_echo(loop, mode, monkeypatch):
    payload = bytes(range(256)) * 40

    async def client(port):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(payload)
        got = await r.readexactly(len(payload))
        w.close()
        await w.wait_closed()
        return got

    assert _run_client(loop, mode, monkeypatch, client) == payload


def test_udp_server_mode_echoes(loop, monkeypatch):
    async def client(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            await loop.sock_connect(s, ("127.0.0.1", port))
            await loop.sock_sendall(s, b"ping" * 100)
            return await loop.sock_recv(s, 65536)
        finally:
            s.close()

    assert _run_client(loop, "udp", monkeypatch, client) == b"ping" * 100


@pytest.mark.parametrize("mode", _netbench.HTTP_MODES)
def test_http_server_modes_echo_the_body(loop, mode, monkeypatch):
    body = bytes(range(256)) * 8

    async def client(port):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        head = b"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % len(body)
        answers = []
        for _ in range(2):  # keep-alive: the same connection twice
            w.write(head + body)
            status = await r.readline()
            length = None
            while True:
                line = await r.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answers.append((status.split()[1], await r.readexactly(length)))
        w.close()
        await w.wait_closed()
        return answers

    assert _run_client(loop, mode, monkeypatch, client) == [(b"200", body), (b"200", body)]


_FAKE_CLIENT = r'''
import json, socket, sys, time
kind, target, conns, size, secs, _warm = sys.argv[1:7]
host, port = target.rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=60)
msg = bytes(range(256)) * (int(size) // 256)
n, deadline = 0, time.monotonic() + float(secs)
while n < 3 or (time.monotonic() < deadline and n < 200):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(len(msg) - len(got))
        assert chunk, "server closed"
        got += chunk
    assert got == msg
    n += 1
s.close()
print(json.dumps({"requests": n, "all_requests": n, "rps": n / float(secs)}))
'''


@pytest.mark.skipif(
    not (_netbench.shutil.which("valgrind") and _netbench.shutil.which("callgrind_control")),
    reason="bench net --instructions needs valgrind",
)
def test_instruction_count_driver(tmp_path):
    """`bench net --instructions`: a server under callgrind, counters zeroed
    after the warm-up run and dumped after the measured one, divided by the
    measured requests. A stand-in for netload (the same command line and
    JSON) keeps cargo out of the test; the count must be real work: more
    than the few instructions an idle dump would hold, and finite."""
    import sys

    client = tmp_path / "netload"
    client.write_text("#!" + sys.executable + "\n" + _FAKE_CLIENT)
    client.chmod(0o755)
    srv = _netbench.Server("ferrio", "protocol", str(client), str(tmp_path))
    try:
        res = _netbench.run_client_instructions(str(client), srv, 1, 1024, 0.5, 0.2)
    finally:
        srv.stop()
    assert res["requests"] >= 3
    # A Python data_received per request on any loop costs far more than
    # this; an empty or misread dump gives 0 or a startup-sized total.
    assert 300 < res["instr_per_req"] < 1_000_000
