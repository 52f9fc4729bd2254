"""uvloop's own test suite (its asyncio classes) on asyncio's loop and on
ferrio's: ferrio must pass every test asyncio's loop passes
(tests/uvloop_suite/uvloop_runner.py fetches the suite; nothing of it is kept
here). Skipped, with the reason, where uvloop is not installed or its
sdist cannot be downloaded."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "uvloop_suite"))
import uvloop_runner as runner  # noqa: E402


def test_uvloop_suite_passes_what_asyncio_passes(tmp_path):
    if runner.uvloop_version() is None:
        pytest.skip("uvloop is not installed (a test extra)")
    try:
        root = runner.fetch(str(tmp_path))
    except RuntimeError as e:
        pytest.skip(str(e))
    base = runner.run(root, "asyncio")
    assert not base["crashed"], f"uvloop's suite crashed on asyncio's own loop: {base['crashed']}"
    fer = runner.run(root, "ferrio")
    print(runner.table(base, fer))
    assert not fer["crashed"], fer["crashed"]
    c = runner.compare(base, fer)
    assert not c["regressions"], "ferrio fails what asyncio passes:\n" + "\n".join(c["regressions"])
    # The suite really ran: most of it passes on asyncio's loop.
    assert list(base["outcomes"].values()).count("passed") > 100
