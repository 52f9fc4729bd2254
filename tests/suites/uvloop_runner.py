"""uvloop's own test suite, run on asyncio's loop and on ferrio's.

uvloop's tests (its sdist's ``tests/`` folder; nothing of it is kept in
this repository) hold, for most areas, one class per implementation:
``Test_UV_TCP`` on uvloop and ``Test_AIO_TCP`` on asyncio's loop, both
from ``uvloop._testbase``. This runner fetches the sdist of the installed
uvloop version into a temporary folder, and runs the asyncio classes
(``-k AIO``, without uvloop's ``Test_UV_AioHTTP``) twice in a subprocess: once as they are, once with
``AIOTestCase.new_loop`` returning ``ferrio.new_event_loop()``. It reports
both outcome sets; ferrio conforms when it fails nothing that asyncio's
loop passes.

``is_asyncio_loop()`` is made true on ferrio: uvloop's tests use it to
skip asserts that asyncio does not meet (uvloop-only features such as
``sendto()`` without an address on a socketpair), and ferrio promises
asyncio's behaviour, not uvloop's.

Run by hand: ``python tests/suites/uvloop_runner.py`` (prints the table).
"""

from __future__ import annotations

import os
import sys
import tempfile

from common import fetch as _fetch, installed_version, report, run_pytest

CONFTEST = '''\
import os
import uvloop._testbase as tb

if os.environ.get("FERRIO_UVLOOP_SUITE_LOOP") == "ferrio":
    import ferrio

    tb.AIOTestCase.new_loop = lambda self: ferrio.new_event_loop()
    tb.AIOTestCase.new_policy = lambda self: ferrio.EventLoopPolicy()
    tb.BaseTestCase.is_asyncio_loop = lambda self: True
'''


# The asyncio classes. `-k` matches case-insensitively, so "AIO" alone
# would also pick uvloop's Test_UV_AioHTTP.
SELECT = "AIO and not Test_UV"


def uvloop_version() -> str | None:
    return installed_version("uvloop")


def fetch(dest: str) -> str:
    """Fetches the installed uvloop's tests into ``dest`` with the switch
    above as their conftest; returns the folder that holds ``tests/``."""
    root = _fetch("uvloop", dest)
    with open(os.path.join(root, "tests", "conftest.py"), "w") as f:
        f.write(CONFTEST)
    return root


def run(root: str, loop: str, timeout: float = 300.0) -> dict:
    """Runs the asyncio classes on ``loop`` ('asyncio' or 'ferrio')."""
    env = dict(os.environ, FERRIO_UVLOOP_SUITE_LOOP=loop, PYTHONDONTWRITEBYTECODE="1")
    xml = os.path.join(root, f"junit-{loop}.xml")
    return run_pytest(root, ["-k", SELECT, "tests"], env, xml, timeout)


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        root = fetch(d)
        base = run(root, "asyncio")
        fer = run(root, "ferrio")
    return report(f"uvloop {uvloop_version()}'s test suite, asyncio classes (-k '{SELECT}'), "
                  f"python {sys.version.split()[0]}", base, fer)


if __name__ == "__main__":
    sys.exit(main())
