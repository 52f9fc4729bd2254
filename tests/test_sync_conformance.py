"""CPython's ``test.lock_tests`` mixins run against ``ferrio.sync``.

The same mixins run against ``threading``'s own classes here too, so a
failure that is CPython's (or this machine's) shows up on both sides. The
classes are built the way CPython's test_threading builds them
(``ConditionAsRLockTests`` included). Expected failures are listed below,
each with its reason; an unexpected pass fails the run, so the list only
shrinks.
"""

import sys
import threading
import unittest

from test import lock_tests

from ferrio import sync

from conftest import expected_failure

# (class name, test name) -> reason
EXPECTED_FAILURES = {
    ("FerrioEventTests", "test_repr"): (
        "repr names the module 'ferrio.sync' (dotted); the regex wants one "
        "word before '.Event'"
    ),
    ("FerrioEventTests", "test_at_fork_reinit"): (
        "inspects threading.Event's private _cond Condition; ferrio's Event "
        "has none (its _at_fork_reinit is tested in test_sync.py)"
    ),
    ("FerrioSemaphoreTests", "test_repr"): "as Event.test_repr ('ferrio.sync.Semaphore')",
    ("FerrioBarrierTests", "test_repr"): "as Event.test_repr ('ferrio.sync.Barrier')",
    ("FerrioBoundedSemaphoreTests", "test_repr"): (
        "as Event.test_repr ('ferrio.sync.BoundedSemaphore')"
    ),
}

SUITES = {
    "LockTests": (lock_tests.LockTests, "locktype", "Lock"),
    "RLockTests": (lock_tests.RLockTests, "locktype", "RLock"),
    "ConditionAsRLockTests": (lock_tests.RLockTests, "locktype", "Condition"),
    "EventTests": (lock_tests.EventTests, "eventtype", "Event"),
    "ConditionTests": (lock_tests.ConditionTests, "condtype", "Condition"),
    "SemaphoreTests": (lock_tests.SemaphoreTests, "semtype", "Semaphore"),
    "BoundedSemaphoreTests": (lock_tests.BoundedSemaphoreTests, "semtype", "BoundedSemaphore"),
    "BarrierTests": (lock_tests.BarrierTests, "barriertype", "Barrier"),
}


def _build(prefix, module):
    for name, (mixin, attr, typename) in SUITES.items():
        clsname = f"{prefix}{name}"
        ns = {attr: staticmethod(getattr(module, typename))}
        if name == "ConditionAsRLockTests":
            # As CPython's test_threading: Condition exports RLock's API but
            # not _recursion_count().
            def test_recursion_count(self):
                self.skipTest("Condition does not expose _recursion_count()")

            ns["test_recursion_count"] = test_recursion_count
        for (cname, tname), reason in EXPECTED_FAILURES.items():
            if cname == clsname and hasattr(mixin, tname):
                ns[tname] = expected_failure(getattr(mixin, tname))
        globals()[clsname] = type(clsname, (mixin,), ns)


_build("Threading", threading)
_build("Ferrio", sync)


def test_expected_failures_name_real_tests():
    for (cname, tname), reason in EXPECTED_FAILURES.items():
        assert cname in globals(), cname
        assert reason
        mixin = SUITES[cname[len("Ferrio"):]][0]
        # A test some Python version lacks is ignored there.
        assert hasattr(mixin, tname) or sys.version_info < (3, 11), (cname, tname)
