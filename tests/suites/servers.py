"""Throwaway PostgreSQL and Redis servers on loopback, for
tests/test_libraries.py (asyncpg and redis-py against a real server) and the
asyncpg and redis-py suites in library_runner.py.

Each is a context manager that yields once the server answers and stops it
(and removes its folder) afterwards. ``Unavailable`` means no server can run
here (no binary, or root without a ``postgres`` user): callers skip with its
message. ``RuntimeError`` means a server that should have run did not start.
.ci/run installs Debian's ``postgresql`` and ``redis-server`` packages.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Callable, Iterator


class Unavailable(Exception):
    """No server of this kind can run on this machine."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> str | None:
    for cand in [os.path.dirname(shutil.which("initdb") or "")] + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), reverse=True
    ):
        if cand and os.path.exists(os.path.join(cand, "initdb")) and os.path.exists(os.path.join(cand, "postgres")):
            return os.path.realpath(cand)
    return None


@contextlib.contextmanager
def postgres(max_connections: int = 100, settings: dict[str, str] | None = None) -> Iterator[int]:
    """A PostgreSQL server on 127.0.0.1 (trust auth, superuser
    ``postgres``, fsync off, and any further server ``settings``); yields
    its port."""
    bindir = _pg_bindir()
    if bindir is None:
        raise Unavailable("no PostgreSQL server binary (initdb/postgres) found; install Debian's postgresql package")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and no 'postgres' user to run the server as") from None
        owner = (pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    root = tempfile.mkdtemp(prefix="ferrio-pg-")
    if owner is not None:
        os.chown(root, *owner)
    data = os.path.join(root, "data")
    port = free_port()
    try:
        subprocess.run(
            as_user + [os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {e}") from e
    proc = subprocess.Popen(
        as_user + [
            os.path.join(bindir, "postgres"), "-D", data, "-p", str(port), "-h", "127.0.0.1",
            "-k", root, "-c", "fsync=off", "-c", f"max_connections={max_connections}",
            *[arg for k, v in (settings or {}).items() for arg in ("-c", f"{k}={v}")],
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def accepting() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    with _running(proc, root, accepting, "PostgreSQL"):
        yield port


def postgres_sql(port: int, sql: str, dbname: str = "postgres") -> None:
    """Runs ``sql`` with psql on the server at ``port``, retrying for up to
    30 s while the server is still starting. Raises RuntimeError when it
    keeps failing."""
    bindir = _pg_bindir()
    psql = os.path.join(bindir or "", "psql")
    if not os.path.exists(psql):
        psql = shutil.which("psql")
    if psql is None:
        raise Unavailable("no psql binary found; install Debian's postgresql package")
    deadline = time.monotonic() + 30
    while True:
        r = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", dbname,
             "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
            capture_output=True, text=True, timeout=60,
        )
        if r.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"psql failed: {r.stderr.strip()[-300:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def redis() -> Iterator[tuple[int, str]]:
    """A Redis server on 127.0.0.1 and a Unix socket (no persistence);
    yields (port, unix socket path)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise Unavailable("no redis-server binary found; install Debian's redis-server package")
    root = tempfile.mkdtemp(prefix="ferrio-redis-")
    path = os.path.join(root, "redis.sock")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--unixsocket", path,
         "--save", "", "--appendonly", "no", "--dir", root],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def answering() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
            c.sendall(b"PING\r\n")
            return c.recv(16).startswith(b"+PONG") and os.path.exists(path)

    with _running(proc, root, answering, "redis-server"):
        yield port, path


@contextlib.contextmanager
def _running(proc: subprocess.Popen, root: str, ready: Callable[[], bool], name: str) -> Iterator[None]:
    """Waits (up to 30 s) until ``ready()`` is true (an OSError counts as
    not yet), then yields; afterwards stops ``proc`` and removes ``root``."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if ready():
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.1)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
