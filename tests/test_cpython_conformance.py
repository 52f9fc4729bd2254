"""CPython's own test_asyncio, run against ferrio (tests/cpython/runner.py).

One pytest test per module: it fails on any failure not listed in
tests/cpython/expected_failures.txt and on any listed test that now passes.
Skipped (with a message) where the running Python has no ``test`` package.
The per-module table is printed at the end of the pytest run.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "cpython"))
import runner  # noqa: E402

RESULTS = []

pytestmark = pytest.mark.skipif(
    not runner.has_test_package(),
    reason="this Python has no 'test' package, so CPython's test_asyncio cannot run",
)


@pytest.mark.parametrize("module", runner.MODULES)
def test_cpython_module(module):
    res = runner.run_module(module, "ferrio", timeout=60.0)
    if res.get("missing"):
        pytest.skip(f"{module} does not exist in this Python's test package")
    res["summary"] = runner.summarize(res, runner.load_expected())
    RESULTS.append(res)
    s = res["summary"]
    problems = []
    if res["crashed"]:
        problems.append(f"crashed: {res['crashed']}")
    for tid in s["unexpected_fail"]:
        detail = res["outcomes"][tid]["detail"]
        problems.append(f"UNEXPECTED FAIL {tid}\n{detail}")
    for tid in s["unexpected_pass"]:
        problems.append(f"UNEXPECTED PASS {tid}: remove it from expected_failures.txt")
    assert not problems, "\n".join(problems)
    assert s["counts"]["run"] > 0, "no test ran"
