"""Libraries' own test suites on asyncio's loop and on ferrio's.

The people who would switch loops run aiohttp, uvicorn, anyio...; their
own suites are the widest statement of what those libraries expect from a
loop. This runner fetches the installed version's sdist (tests only), runs
the chosen part of its suite twice in a subprocess, once as it is and once
with ``ferrio_policy_plugin`` making every loop asyncio's default policy
creates a ferrio loop, and compares the outcomes: ferrio conforms when it
fails nothing that asyncio's loop passes. A test that fails on both (this
machine has no IPv6 name for localhost, say) is reported, not counted.

SUITES says what runs: test files, ``-k`` selection and extra options.
Chosen to keep the whole run near two minutes a library:
- anyio: its whole suite on the asyncio backend (sockets, UDP, Unix
  sockets, TLS, subprocesses, signals, threads; trio and uvloop excluded).
  Found on 2026-12-05: ``remove_reader`` of a socket closed while watched.
- aiohttp: the functional server/client/websocket/sendfile tests, helpers,
  streams, runners and the connector, on its ``pyloop`` (which is
  ``asyncio.new_event_loop``). Found on 2026-12-05: patched ``loop.time``
  and ``call_at(int)``.
uvicorn's suite (938 tests on ferrio, all passing on 2026-12-05) needs
packages only it uses (httpx2, zttp, a2wsgi); it is not run here.

Run by hand: ``python tests/suites/library_runner.py [anyio|aiohttp]``.
"""

from __future__ import annotations

import os
import sys
import tempfile

from common import fetch, installed_version, report, run_pytest

HERE = os.path.dirname(os.path.abspath(__file__))

SUITES: dict[str, dict] = {
    "anyio": {
        "args": ["-o", "anyio_mode=auto", "-k", "not trio and not uvloop", "tests"],
    },
    "aiohttp": {
        "args": ["--aiohttp-loop=pyloop", "-p", "no:codspeed"] + [
            f"tests/{name}.py" for name in (
                "test_web_functional", "test_client_functional", "test_helpers",
                "test_web_server", "test_client_ws_functional",
                "test_web_websocket_functional", "test_web_sendfile_functional",
                "test_run_app", "test_web_runner", "test_test_utils", "test_loop",
                "test_streams", "test_base_protocol", "test_web_protocol",
                "test_connector",
            )
        ],
    },
}


def run(root: str, name: str, loop: str, timeout: float = 600.0) -> dict:
    """Runs ``name``'s selection on ``loop`` ('asyncio' or 'ferrio'); the
    result also says how many ferrio loops were made ("ferrio_loops")."""
    count = os.path.join(root, f"count-{loop}")
    env = dict(
        os.environ,
        FERRIO_SUITE_LOOP=loop,
        FERRIO_SUITE_COUNT=count,
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")])),
    )
    args = ["-p", "ferrio_policy_plugin"]
    if installed_version("pytest-timeout") is not None:  # a test extra
        args.append("--timeout=120")
    res = run_pytest(root, args + SUITES[name]["args"], env,
                     os.path.join(root, f"junit-{loop}.xml"), timeout)
    try:
        with open(count) as f:
            res["ferrio_loops"] = int(f.read() or 0)
    except (OSError, ValueError):
        res["ferrio_loops"] = 0
    return res


def main(names: list[str]) -> int:
    rc = 0
    for name in names or list(SUITES):
        with tempfile.TemporaryDirectory() as d:
            root = fetch(name, d)
            base = run(root, name, "asyncio")
            fer = run(root, name, "ferrio")
        rc |= report(f"{name} {installed_version(name)}'s test suite "
                     f"({fer['ferrio_loops']} ferrio loops), python {sys.version.split()[0]}",
                     base, fer)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
