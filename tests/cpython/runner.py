"""Run CPython's own ``test_asyncio`` against ferrio.

Usage::

    python tests/cpython/runner.py                 # all configured modules
    python tests/cpython/runner.py test_tasks test_events --loop asyncio
    python tests/cpython/runner.py --json

Each module runs in its own interpreter (``--child``) with ferrio substituted
as the loop (../../../shared/CONFORMANCE.md explains how and why):

* ``_UnixDefaultEventLoopPolicy._loop_factory`` is replaced by ferrio's
  factory, which survives every module's ``set_event_loop_policy(None)``
  teardown and covers ``asyncio.new_event_loop``, ``asyncio.run``,
  ``Runner`` and ``IsolatedAsyncioTestCase``;
* modules whose tests hard-wire a selector loop get adapter classes built
  from the same mixins (``ADAPTERS``);
* tests that exercise another loop's internals are excluded (``EXCLUDED``),
  each with its reason.

Every test gets a watchdog: after ``--timeout`` seconds SIGUSR2 raises
``TestTimedOut`` in the main thread (interrupting a blocked poll); if the
test still does not finish the child exits and the test counts as failed.

Outcomes are compared with ``expected_failures.txt``: a failure not listed
is unexpected, and so is a listed test that passes (the list only shrinks).
Exit status 1 when anything is unexpected. With ``--loop asyncio`` the same
selection runs on asyncio's own loop (every selected test should pass).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED_FILE = os.path.join(HERE, "expected_failures.txt")

# Modules in scope (issue #2: the loop core).
MODULES = [
    "test_tasks",
    "test_locks",
    "test_queues",
    "test_taskgroups",
    "test_timeouts",
    "test_runners",
    "test_waitfor",
    "test_threads",
    "test_futures2",
    "test_context",
    "test_events",
    # networking (native stream/datagram transports and sock_*; issue #3)
    "test_streams",
    "test_sock_lowlevel",
    "test_server",
    "test_buffered_proto",
    "test_sendfile",
    "test_protocols",
    # TLS: asyncio's own SSLProtocol over ferrio's native transport (absent
    # from 3.10's test package: reported missing and skipped there)
    "test_ssl",
    # start_tls functional tests (BaseStartTLS through SelectorStartTLSTests,
    # its new_loop patched) and SSLProtocol handshake tests on a real loop
    "test_sslproto",
    # the real-loop classes of test_unix_events: Unix socket servers and
    # connections, add_reader argument checks (CLASS_FILTER)
    "test_unix_events",
    # subprocesses (asyncio's transports on ferrio's fd watching); the whole
    # module runs, every child-watcher class included
    "test_subprocess",
    # thread layer (issue #4): CPython's concurrent.futures tests, their
    # thread-pool classes only (CLASS_FILTER), with ferrio.ThreadPoolExecutor
    # substituted for the stdlib's. A module on 3.10, a package from 3.12
    # (absent from some installs: then reported missing and skipped).
    "test.test_concurrent_futures",
]

# Modules run only in part: a predicate on the test class name.
CLASS_FILTER = {
    "test_sslproto": lambda name: name in ("SelectorStartTLSTests", "SslProtoHandshakeTests"),
    "test_unix_events": lambda name: name in ("SelectorEventLoopUnixSocketTests", "TestFunctional"),
    "test.test_concurrent_futures": lambda name: "ThreadPool" in name,
}

# Modules that test a stdlib thread tool: ferrio's replaces it (_install_thread_layer).
THREAD_LAYER_MODULES = {"test.test_concurrent_futures"}

# Tests that exercise asyncio internals rather than loop behaviour, by
# "Class.method" or "Class" (module-relative), each with its reason. Empty:
# CONFORMANCE.md's test_events exclusions (policy/handle classes, mocked
# internals) all pass on ferrio since the native transports landed, so the
# whole module runs.
EXCLUDED: Dict[str, Dict[str, str]] = {}

_SELECTOR_CLASSES = [
    "EPollEventLoopTests",
    "PollEventLoopTests",
    "SelectEventLoopTests",
    "KqueueEventLoopTests",
]

# Selector-specific classes dropped from modules, replaced by ADAPTERS.
DROPPED_CLASSES = {
    "test_events": _SELECTOR_CLASSES,
    "test_sock_lowlevel": _SELECTOR_CLASSES,
    "test_sendfile": _SELECTOR_CLASSES,
}


_FACTORY = None  # the loop factory chosen by --loop (set in the child)


class TestTimedOut(Exception):
    """Raised in the main thread by the per-test watchdog."""


def _install_loop(kind: str) -> None:
    import asyncio
    import asyncio.unix_events as ue

    if kind == "ferrio":
        import ferrio

        factory = ferrio.new_event_loop
    else:
        factory = asyncio.SelectorEventLoop
    policy_cls = getattr(ue, "_UnixDefaultEventLoopPolicy", None) or getattr(
        asyncio.events, "_DefaultEventLoopPolicy"
    )
    global _FACTORY
    _FACTORY = factory
    policy_cls._loop_factory = staticmethod(factory)
    asyncio.set_event_loop_policy(None)


def _adapt_test_events(mod) -> None:
    import asyncio
    from test.test_asyncio import utils as test_utils

    base = getattr(mod, "UnixEventLoopTestsMixin", mod.EventLoopTestsMixin)

    # As the selector classes it replaces: the event-loop tests plus the
    # subprocess tests (SubprocessTestsMixin).
    class LoopEventLoopTests(base, mod.SubprocessTestsMixin, test_utils.TestCase):
        def create_event_loop(self):
            return asyncio.new_event_loop()

    LoopEventLoopTests.__module__ = mod.__name__
    LoopEventLoopTests.__qualname__ = "LoopEventLoopTests"
    mod.LoopEventLoopTests = LoopEventLoopTests


def _adapt_test_runners(mod) -> None:
    def new_loop(self):
        # The test installs a policy that calls new_loop, so call the factory
        # itself rather than asyncio.new_event_loop().
        loop = _FACTORY()
        loop.shutdown_ag_run = False

        async def shutdown_asyncgens():
            loop.shutdown_ag_run = True

        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop

    mod.BaseTest.new_loop = new_loop


def _mixin_adapter(mixin_name, class_name):
    """An adapter class: the module's mixin on a TestCase whose
    create_event_loop() returns asyncio.new_event_loop() (our loop)."""

    def adapt(mod) -> None:
        import asyncio
        from test.test_asyncio import utils as test_utils

        mixin = getattr(mod, mixin_name)

        def create_event_loop(self):
            return asyncio.new_event_loop()

        cls = type(class_name, (mixin, test_utils.TestCase), {"create_event_loop": create_event_loop})
        cls.__module__ = mod.__name__
        setattr(mod, class_name, cls)

    return adapt


def _new_loop_patch(class_name):
    """Keep the module's selector test class (it has tests of its own) but
    make its new_loop() return our loop."""

    def adapt(mod) -> None:
        import asyncio

        cls = getattr(mod, class_name)
        cls.new_loop = lambda self: asyncio.new_event_loop()

    return adapt


def _setup_patch(class_name):
    """Make a class whose setUp builds ``asyncio.SelectorEventLoop()``
    get our loop instead (the rest of its setUp is kept)."""

    def adapt(mod) -> None:
        import asyncio

        cls = getattr(mod, class_name)
        original = cls.setUp

        def setUp(self):
            selector_loop = asyncio.SelectorEventLoop
            asyncio.SelectorEventLoop = lambda *a, **k: asyncio.new_event_loop()
            try:
                original(self)
            finally:
                asyncio.SelectorEventLoop = selector_loop

        cls.setUp = setUp

    return adapt


ADAPTERS = {
    "test_events": _adapt_test_events,
    "test_runners": _adapt_test_runners,
    "test_sock_lowlevel": _mixin_adapter("BaseSockTestsMixin", "LoopSockTests"),
    "test_sendfile": _mixin_adapter("SendfileTestsBase", "LoopSendfileTests"),
    "test_server": _new_loop_patch("SelectorStartServerTests"),
    "test_buffered_proto": _new_loop_patch("BufferedProtocolSelectorTests"),
    "test_sslproto": _new_loop_patch("SelectorStartTLSTests"),
    "test_unix_events": _setup_patch("SelectorEventLoopUnixSocketTests"),
}


def _install_thread_layer() -> None:
    import concurrent.futures
    import concurrent.futures.thread

    import ferrio

    concurrent.futures.ThreadPoolExecutor = ferrio.ThreadPoolExecutor
    concurrent.futures.thread.ThreadPoolExecutor = ferrio.ThreadPoolExecutor


def _iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _iter_tests(t)
        else:
            yield t


def _short_id(test) -> str:
    # "test.test_asyncio.test_events.Class.method" -> "test_events.Class.method"
    tid = test.id()
    prefix = "test.test_asyncio."
    return tid[len(prefix):] if tid.startswith(prefix) else tid


def _excluded(modname: str, test) -> str | None:
    rules = EXCLUDED.get(modname, {})
    parts = _short_id(test).split(".")
    cls, meth = parts[-2], parts[-1]
    for key in (f"{cls}.{meth}", cls, meth):
        if key in rules:
            return rules[key]
    return None


class _Result(unittest.TestResult):
    def __init__(self, emit):
        super().__init__()
        self._emit = emit
        self._outcome: Dict[str, str] = {}

    def _set(self, test, outcome, detail=""):
        tid = _short_id(test)
        prev = self._outcome.get(tid)
        # A failing subtest or teardown error makes the whole test fail.
        if prev in ("fail",) and outcome == "pass":
            return
        self._outcome[tid] = outcome
        if outcome != "pass" or prev is None:
            self._emit(tid, outcome, detail)

    def addSuccess(self, test):
        self._set(test, "pass")

    def addFailure(self, test, err):
        self._set(test, "fail", self._exc_info_to_string(err, test)[-2000:])

    def addError(self, test, err):
        self._set(test, "fail", self._exc_info_to_string(err, test)[-2000:])

    def addSkip(self, test, reason):
        self._set(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        self._set(test, "pass")

    def addUnexpectedSuccess(self, test):
        self._set(test, "pass")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self._set(test, "fail", self._exc_info_to_string(err, test)[-2000:])


def child_main(modname: str, kind: str, timeout: float) -> int:
    """Runs one module, printing one JSON line per test outcome."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _install_loop(kind)

    def on_timeout(signum, frame):
        raise TestTimedOut(f"test exceeded {timeout}s")

    signal.signal(signal.SIGUSR2, on_timeout)

    import importlib

    try:
        from test import support

        # Not under regrtest: verbose defaults to on, and some tests then
        # print timings onto the JSON lines.
        support.verbose = False
    except ImportError:
        pass
    if modname in THREAD_LAYER_MODULES and kind == "ferrio":
        _install_thread_layer()
    try:
        full = modname if modname.startswith("test.") else f"test.test_asyncio.{modname}"
        mod = importlib.import_module(full)
    except ModuleNotFoundError:
        # e.g. test_taskgroups/test_timeouts are 3.11+: nothing to run.
        sys.__stdout__.write(json.dumps({"module_missing": modname}) + "\n")
        return 0
    for cls_name in DROPPED_CLASSES.get(modname, []):
        if hasattr(mod, cls_name):
            delattr(mod, cls_name)
    if modname in ADAPTERS:
        ADAPTERS[modname](mod)

    out = sys.__stdout__

    def emit(tid, outcome, detail=""):
        out.write(json.dumps({"id": tid, "outcome": outcome, "detail": detail}) + "\n")
        out.flush()

    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(mod)
    selected = []
    keep = CLASS_FILTER.get(modname, lambda name: True)
    for test in _iter_tests(suite):
        if hasattr(test, "_testMethodName") and not keep(type(test).__name__):
            continue
        reason = _excluded(modname, test)
        if reason is not None:
            emit(_short_id(test), "excluded", reason)
        else:
            selected.append(test)

    main_ident = threading.get_ident()
    current = {"id": None, "deadline": 0.0, "kicked": False}
    lock = threading.Lock()

    class WatchedResult(_Result):
        # unittest calls these around every test, inside one top-level
        # suite run (which also runs setUpClass/setUpModule fixtures).
        def startTest(self, test):
            super().startTest(test)
            with lock:
                current["id"] = _short_id(test)
                current["deadline"] = time.monotonic() + timeout
                current["kicked"] = False

        def stopTest(self, test):
            with lock:
                current["id"] = None
            super().stopTest(test)

    result = WatchedResult(emit)

    def watchdog():
        # First expiry: SIGUSR2 raises TestTimedOut in the main thread. A test
        # that is still running 10 s later ends the child (counted as failed).
        while True:
            time.sleep(0.5)
            with lock:
                tid, deadline, kicked = current["id"], current["deadline"], current["kicked"]
                if tid is None or time.monotonic() <= deadline:
                    continue
                if not kicked:
                    current["kicked"] = True
                    current["deadline"] = time.monotonic() + 10
                    signal.pthread_kill(main_ident, signal.SIGUSR2)
                    continue
            emit(tid, "fail", "hard timeout: test did not stop")
            out.write(json.dumps({"hard_timeout": tid}) + "\n")
            out.flush()
            os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        unittest.TestSuite(selected).run(result)
    except TestTimedOut:
        pass
    # Errors in class/module fixtures are reported against a pseudo-test.
    for test, err in result.errors:
        if not hasattr(test, "_testMethodName"):
            emit(str(test), "fail", err[-2000:])
    return 0


def load_expected(path: str = EXPECTED_FILE) -> Dict[str, str]:
    """``test id  # reason`` per line; blank lines and ``#`` lines ignored."""
    expected: Dict[str, str] = {}
    if not os.path.exists(path):
        return expected
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            tid, _, reason = line.partition("#")
            expected[tid.strip()] = reason.strip()
    return expected


def run_module(modname: str, kind: str, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", modname, "--loop", kind,
           "--timeout", str(timeout)]
    env = dict(os.environ)
    env.setdefault("PYTHONFAULTHANDLER", "1")
    t0 = time.monotonic()
    # CPython's tests create files (os_helper.TESTFN) in the working
    # directory: run each module in a scratch directory, removed afterwards.
    with tempfile.TemporaryDirectory(prefix="ferrio-cpython-") as scratch:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=scratch,
                              stdin=subprocess.DEVNULL, timeout=max(600, timeout * 200))
    outcomes: Dict[str, dict] = {}
    crashed = None
    for line in proc.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "module_missing" in rec:
            return {"module": modname, "outcomes": {}, "crashed": None, "missing": True,
                    "seconds": time.monotonic() - t0, "stderr": ""}
        if "hard_timeout" in rec:
            crashed = f"hard timeout in {rec['hard_timeout']}"
            continue
        prev = outcomes.get(rec["id"])
        if prev is not None and prev["outcome"] == "fail":
            continue
        outcomes[rec["id"]] = rec
    if proc.returncode != 0 and crashed is None:
        crashed = f"child exited with {proc.returncode}: {proc.stderr[-3000:]}"
    return {"module": modname, "outcomes": outcomes, "crashed": crashed,
            "seconds": time.monotonic() - t0, "stderr": proc.stderr[-3000:]}


def summarize(res: dict, expected: Dict[str, str]) -> dict:
    counts = {"run": 0, "passed": 0, "failed": 0, "skipped": 0, "excluded": 0}
    unexpected_fail: List[str] = []
    unexpected_pass: List[str] = []
    for tid, rec in res["outcomes"].items():
        o = rec["outcome"]
        if o == "excluded":
            counts["excluded"] += 1
            continue
        if o == "skip":
            counts["skipped"] += 1
            continue
        counts["run"] += 1
        if o == "pass":
            counts["passed"] += 1
            if tid in expected:
                unexpected_pass.append(tid)
        else:
            counts["failed"] += 1
            if tid not in expected:
                unexpected_fail.append(tid)
    return {"counts": counts, "unexpected_fail": unexpected_fail,
            "unexpected_pass": unexpected_pass}


def format_table(rows: List[dict]) -> str:
    lines = [f"{'module':<30}{'run':>6}{'passed':>8}{'failed':>8}{'skipped':>9}{'excluded':>10}  unexpected"]
    for r in rows:
        c = r["summary"]["counts"]
        unexpected = len(r["summary"]["unexpected_fail"]) + len(r["summary"]["unexpected_pass"])
        flag = str(unexpected) + (" (crashed)" if r["crashed"] else "")
        lines.append(f"{r['module']:<30}{c['run']:>6}{c['passed']:>8}{c['failed']:>8}"
                     f"{c['skipped']:>9}{c['excluded']:>10}  {flag}")
    return "\n".join(lines)


def has_test_package() -> bool:
    try:
        import test.test_asyncio  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run CPython's test_asyncio against ferrio.")
    p.add_argument("modules", nargs="*", help="modules (default: all configured)")
    p.add_argument("--loop", choices=["ferrio", "asyncio"], default="ferrio")
    p.add_argument("--timeout", type=float, default=60.0, help="per-test watchdog, seconds")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verbose", "-v", action="store_true", help="print unexpected outcomes' details")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        return child_main(args.child, args.loop, args.timeout)
    if not has_test_package():
        print("skipped: this Python has no 'test' package (test.test_asyncio)")
        return 0
    expected = load_expected() if args.loop == "ferrio" else {}
    rows = []
    for m in args.modules or MODULES:
        res = run_module(m, args.loop, args.timeout)
        res["summary"] = summarize(res, expected)
        rows.append(res)
        if not args.json:
            print(format_table([res]).splitlines()[-1] if rows[1:] else format_table([res]), flush=True)
    bad = False
    for r in rows:
        s = r["summary"]
        if r["crashed"] or s["unexpected_fail"] or s["unexpected_pass"]:
            bad = True
        if not args.json:
            if r["crashed"]:
                print(f"\n{r['module']}: {r['crashed']}")
            for tid in s["unexpected_fail"]:
                print(f"UNEXPECTED FAIL {tid}")
                if args.verbose:
                    print("    " + r["outcomes"][tid]["detail"].replace("\n", "\n    "))
            for tid in s["unexpected_pass"]:
                print(f"UNEXPECTED PASS {tid} (remove it from expected_failures.txt)")
    if args.json:
        json.dump([{"module": r["module"], "crashed": r["crashed"], **r["summary"]} for r in rows],
                  sys.stdout, indent=2)
        print()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
