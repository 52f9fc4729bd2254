"""Shared by the third-party suite runners (uvloop_runner.py,
library_runner.py): fetch a package's sdist, run pytest on it in a
subprocess, and compare two runs' outcomes.

Nothing of a fetched suite is kept in this repository: it is downloaded
into a temporary folder at test time, for the version that is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from importlib import metadata


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def fetch(dist: str, dest: str, keep: tuple[str, ...] = ("tests",)) -> str:
    """Downloads the installed ``dist``'s sdist and extracts the top-level
    entries named in ``keep`` into ``dest``/suite; returns that folder.
    Raises RuntimeError when it cannot."""
    ver = installed_version(dist)
    if ver is None:
        raise RuntimeError(f"{dist} is not installed")
    dl = os.path.join(dest, "sdist")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
         "--no-binary", ":all:", f"{dist}=={ver}", "-d", dl],
        capture_output=True, text=True, timeout=300,
    )
    tars = [f for f in os.listdir(dl) if f.endswith(".tar.gz")] if os.path.isdir(dl) else []
    if r.returncode != 0 or not tars:
        raise RuntimeError(f"could not download {dist} {ver}'s sdist: {r.stderr.strip()[-300:]}")
    root = os.path.join(dest, "suite")
    os.makedirs(root)
    with tarfile.open(os.path.join(dl, tars[0])) as tf:
        members = [m for m in tf.getmembers()
                   if m.name.split("/")[1:2] and m.name.split("/")[1] in keep
                   and (m.isfile() or m.isdir())]
        for m in members:
            m.name = "/".join(m.name.split("/")[1:])
        tf.extractall(root, members=members)
    if not os.path.isdir(os.path.join(root, keep[0])):
        raise RuntimeError(f"{dist} {ver}'s sdist has no {keep[0]}/")
    return root


def run_pytest(root: str, args: list[str], env: dict, xml: str, timeout: float,
               pytest_asyncio: bool = False) -> dict:
    """Runs pytest in ``root``; returns {"outcomes": {test id:
    passed/failed/skipped}, "crashed": str}. pytest-asyncio (a test extra,
    for redis-py's and asgiref's suites) is loaded only when asked: every other suite runs
    as its own CI runs it, without that plugin."""
    crashed = ""
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             *([] if pytest_asyncio else ["-p", "no:asyncio"]),
             "-o", "addopts=", f"--junitxml={xml}", *args],
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


def report(title: str, base: dict, fer: dict) -> int:
    """Prints the table and the differences; 1 if ferrio regressed."""
    print(title)
    print(table(base, fer))
    c = compare(base, fer)
    for t in c["regressions"]:
        print("ferrio fails, asyncio passes:", t)
    for t in c["improvements"]:
        print("ferrio passes, asyncio fails:", t)
    for t in sorted(t for t, o in fer["outcomes"].items()
                    if o == "failed" and base["outcomes"].get(t) == "failed"):
        print("fails on both:", t)
    return 1 if c["regressions"] or fer["crashed"] else 0
