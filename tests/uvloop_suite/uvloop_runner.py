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

Run by hand: ``python tests/uvloop_suite/uvloop_runner.py`` (prints the table).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET

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
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.__version__


def fetch(dest: str) -> str:
    """Downloads the installed uvloop's sdist and extracts its tests into
    ``dest``; returns the folder that holds ``tests/``. Raises
    RuntimeError when it cannot."""
    ver = uvloop_version()
    if ver is None:
        raise RuntimeError("uvloop is not installed")
    dl = os.path.join(dest, "sdist")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
         "--no-binary", ":all:", f"uvloop=={ver}", "-d", dl],
        capture_output=True, text=True, timeout=300,
    )
    tars = [f for f in os.listdir(dl) if f.endswith(".tar.gz")] if os.path.isdir(dl) else []
    if r.returncode != 0 or not tars:
        raise RuntimeError(f"could not download uvloop {ver}'s sdist: {r.stderr.strip()[-300:]}")
    tar = os.path.join(dl, tars[0])
    root = os.path.join(dest, "suite")
    os.makedirs(root)
    with tarfile.open(tar) as tf:
        members = [m for m in tf.getmembers()
                   if m.name.split("/")[1:2] == ["tests"] and (m.isfile() or m.isdir())]
        for m in members:
            m.name = "/".join(m.name.split("/")[1:])
        tf.extractall(root, members=members)
    with open(os.path.join(root, "tests", "conftest.py"), "w") as f:
        f.write(CONFTEST)
    return root


def run(root: str, loop: str, timeout: float = 300.0) -> dict:
    """Runs the asyncio classes on ``loop`` ('asyncio' or 'ferrio');
    returns {"outcomes": {test id: passed/failed/skipped}, "crashed": str}."""
    xml = os.path.join(root, f"junit-{loop}.xml")
    env = dict(os.environ, FERRIO_UVLOOP_SUITE_LOOP=loop, PYTHONDONTWRITEBYTECODE="1")
    crashed = ""
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-k", SELECT, "-p", "no:cacheprovider",
             "-o", "addopts=", f"--junitxml={xml}", "tests"],
            cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
        )
        if r.returncode not in (0, 1):
            crashed = f"pytest exited with {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    except subprocess.TimeoutExpired:
        crashed = f"timed out after {timeout:.0f} s"
    outcomes: dict[str, str] = {}
    if os.path.exists(xml):
        for case in ET.parse(xml).getroot().iter("testcase"):
            tid = f"{case.get('classname')}.{case.get('name')}"
            kinds = {child.tag for child in case}
            if kinds & {"failure", "error"}:
                outcomes[tid] = "failed"
            elif "skipped" in kinds:
                outcomes.setdefault(tid, "skipped")
            else:
                outcomes.setdefault(tid, "passed")
    elif not crashed:
        crashed = "no results"
    return {"outcomes": outcomes, "crashed": crashed}


def compare(base: dict, ferrio: dict) -> dict:
    """Tests that pass on asyncio's loop and not on ferrio's, and the
    reverse. A test asyncio's run errors in setup or teardown counts as
    failed there."""
    b, f = base["outcomes"], ferrio["outcomes"]
    return {
        "regressions": sorted(t for t, o in b.items() if o == "passed" and f.get(t) != "passed"),
        "improvements": sorted(t for t, o in f.items() if o == "passed" and b.get(t) == "failed"),
    }


def table(base: dict, ferrio: dict) -> str:
    rows = []
    for name, res in (("asyncio", base), ("ferrio", ferrio)):
        o = list(res["outcomes"].values())
        rows.append(f"{name:8} run {len(o):4}  passed {o.count('passed'):4}  "
                    f"failed {o.count('failed'):3}  skipped {o.count('skipped'):3}"
                    + (f"  CRASHED: {res['crashed'][:200]}" if res["crashed"] else ""))
    return "\n".join(rows)


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        root = fetch(d)
        base = run(root, "asyncio")
        fer = run(root, "ferrio")
    print(f"uvloop {uvloop_version()}'s test suite, asyncio classes (-k '{SELECT}'), python "
          f"{sys.version.split()[0]}")
    print(table(base, fer))
    c = compare(base, fer)
    for t in c["regressions"]:
        print("ferrio fails, asyncio passes:", t)
    for t in c["improvements"]:
        print("ferrio passes, asyncio fails:", t)
    failed_both = sorted(t for t, o in fer["outcomes"].items()
                         if o == "failed" and base["outcomes"].get(t) == "failed")
    for t in failed_both:
        print("fails on both:", t)
    return 1 if c["regressions"] or fer["crashed"] else 0


if __name__ == "__main__":
    sys.exit(main())
