"""Third-party test suites on asyncio's loop and on ferrio's: ferrio must
pass every test asyncio's loop passes.

- uvloop's own suite (its asyncio classes; tests/suites/uvloop_runner.py).
- anyio's, aiohttp's, asgiref's, asyncpg's, asyncssh's, redis-py's,
  SQLAlchemy's and tornado's suites (tests/suites/library_runner.py says
  which parts and why; asyncpg's, SQLAlchemy's and redis-py's run against
  a PostgreSQL or a Redis server started for each run).

The suites are fetched from PyPI at test time for the installed version
(tornado's ships inside its package); nothing of them is kept here. Each test skips, with the reason, where its
library is not installed, its sdist cannot be downloaded or its server
cannot run here. Slow (about
two minutes each), so .ci/run runs them on the main Python only.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "suites"))
import common  # noqa: E402
import library_runner  # noqa: E402
import servers  # noqa: E402
import uvloop_runner  # noqa: E402


def _fetch(fetcher, *args):
    try:
        return fetcher(*args)
    except RuntimeError as e:
        pytest.skip(str(e))


def test_uvloop_suite_passes_what_asyncio_passes(tmp_path):
    if uvloop_runner.uvloop_version() is None:
        pytest.skip("uvloop is not installed (a test extra)")
    root = _fetch(uvloop_runner.fetch, str(tmp_path))
    base = uvloop_runner.run(root, "asyncio")
    assert not base["crashed"], f"uvloop's suite crashed on asyncio's own loop: {base['crashed']}"
    fer = uvloop_runner.run(root, "ferrio")
    print(common.table(base, fer))
    assert not fer["crashed"], fer["crashed"]
    c = common.compare(base, fer)
    assert not c["regressions"], "ferrio fails what asyncio passes:\n" + "\n".join(c["regressions"])
    # The suite really ran: most of it passes on asyncio's loop.
    assert list(base["outcomes"].values()).count("passed") > 100


@pytest.mark.parametrize("name", sorted(library_runner.SUITES))
def test_library_suite_passes_what_asyncio_passes(tmp_path, name):
    if common.installed_version(name) is None:
        pytest.skip(f"{name} is not installed (a test extra)")
    root = _fetch(library_runner.prepare, name, str(tmp_path))
    try:
        base = library_runner.run(root, name, "asyncio")
    except servers.Unavailable as e:
        pytest.skip(str(e))
    assert not base["crashed"], f"{name}'s suite crashed on asyncio's own loop: {base['crashed']}"
    assert base["ferrio_loops"] == 0
    fer = library_runner.run(root, name, "ferrio")
    print(common.table(base, fer))
    assert not fer["crashed"], fer["crashed"]
    c = common.compare(base, fer)
    assert not c["regressions"], "ferrio fails what asyncio passes:\n" + "\n".join(c["regressions"])
    # The suite really ran, and on ferrio.
    suite = library_runner.SUITES[name]
    assert list(base["outcomes"].values()).count("passed") > suite.get("min_passed", 300)
    assert fer["ferrio_loops"] > suite.get("min_loops", 300)
