"""CPython's ``test.test_queue`` mixins run against ``ferrio.Queue``.

``BaseQueueTestMixin`` (FIFO, LIFO and priority; 3.13's shutdown tests
where the running Python has them) and ``FailingQueueTest`` run with
ferrio's classes, and, side by side, with the stdlib's pure-Python
``queue`` classes, so a failure that is CPython's (or this machine's) shows
up on both sides. The mixins look the classes and exceptions up on
``self.queue``: ferrio's namespace maps ``Empty``/``Full``/``ShutDown`` to
``ferrio.QueueEmpty``/``QueueFull``/``QueueShutDown``. Expected failures
are listed with their reasons; an unexpected pass fails the run.
"""

import queue
import types
import unittest

from test import test_queue

import ferrio

from conftest import expected_failure

FERRIO = types.SimpleNamespace(
    Queue=ferrio.Queue,
    LifoQueue=ferrio.LifoQueue,
    PriorityQueue=ferrio.PriorityQueue,
    Empty=ferrio.QueueEmpty,
    Full=ferrio.QueueFull,
    ShutDown=ferrio.QueueShutDown,
)

# (class name, test name) -> reason
EXPECTED_FAILURES = {
    ("FerrioFailingQueueTest", "test_failing_queue"): (
        "subclasses Queue and overrides _put/_get to raise; ferrio.Queue keeps "
        "its items in Rust and does not call those hooks (documented in "
        "ferrio/_queue.py: use queue.Queue to override them)"
    ),
}


def _build(prefix, module):
    for kind in ("Queue", "LifoQueue", "PriorityQueue"):
        clsname = f"{prefix}{kind}Test"

        def setUp(self, kind=kind, module=module):
            self.queue = module
            self.type2test = getattr(module, kind)
            test_queue.BaseQueueTestMixin.setUp(self)

        globals()[clsname] = type(clsname, (test_queue.BaseQueueTestMixin, unittest.TestCase), {"setUp": setUp})

    clsname = f"{prefix}FailingQueueTest"

    def setUp(self, module=module):
        self.queue = module
        test_queue.FailingQueueTest.setUp(self)

    ns = {"setUp": setUp}
    for (cname, tname), reason in EXPECTED_FAILURES.items():
        if cname == clsname:
            ns[tname] = expected_failure(getattr(test_queue.FailingQueueTest, tname))
    globals()[clsname] = type(clsname, (test_queue.FailingQueueTest, unittest.TestCase), ns)


_build("Stdlib", test_queue.py_queue or queue)
_build("Ferrio", FERRIO)


def test_expected_failures_name_real_tests():
    for (cname, tname), reason in EXPECTED_FAILURES.items():
        assert cname in globals(), cname
        assert reason
        assert hasattr(globals()[cname], tname), (cname, tname)
