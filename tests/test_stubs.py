"""The type stubs name exactly what the built native module has."""

import ast
import os

import ferrio
from ferrio import _ferrio

STUB = os.path.join(os.path.dirname(ferrio.__file__), "_ferrio.pyi")


def stub_classes():
    tree = ast.parse(open(STUB).read())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AnnAssign)):
                    name = item.name if isinstance(item, ast.FunctionDef) else item.target.id
                    names.add(name)
            out[node.name] = names
    return out


def public_members(cls):
    names = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        names.update(n for n in vars(klass) if not (n.startswith("__") and n.endswith("__")))
    return names


def test_py_typed_present():
    assert os.path.exists(os.path.join(os.path.dirname(ferrio.__file__), "py.typed"))


def test_stub_matches_module():
    stubs = stub_classes()
    for name in ("Loop", "Handle", "TimerHandle", "StreamTransport", "SockOp", "DatagramTransport", "ThreadPool",
                 "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event", "Condition", "Barrier", "_Ready", "RWLock", "RWLockGuard", "_QueueBase", "MapIter"):
        cls = getattr(_ferrio, name)
        declared = set()
        # a class's stub also covers what it inherits from its stubbed bases
        for klass in cls.__mro__:
            declared |= stubs.get(klass.__name__, set())
        actual = public_members(cls)
        missing = actual - declared
        extra = {n for n in declared - actual if not (n.startswith("__") and n.endswith("__"))}
        assert not missing, f"{name}: not in the stub: {sorted(missing)}"
        assert not extra, f"{name}: in the stub but not in the module: {sorted(extra)}"


def test_stub_module_functions():
    tree = ast.parse(open(STUB).read())
    declared = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    actual = {n for n, v in vars(_ferrio).items() if callable(v) and not isinstance(v, type) and not n.startswith("_")}
    assert declared == actual
