"""A pytest plugin for third-party test suites (library_runner.py): with
``FERRIO_SUITE_LOOP=ferrio`` every loop asyncio's default policy makes is a
ferrio loop, so a suite that runs "on asyncio" runs on ferrio unchanged.

The switch is the policy class's loop factory (not a policy object), so a
test that resets the policy with ``set_event_loop_policy(None)`` still gets
ferrio loops. Loops a suite builds from an explicit class
(``asyncio.SelectorEventLoop()``) stay asyncio's. The number of ferrio loops
made is written to ``FERRIO_SUITE_COUNT`` at the end, so the runner can tell
that the suite really ran on ferrio.
"""

import asyncio
import os

_made = 0


def _new_ferrio_loop():
    global _made
    import ferrio

    _made += 1
    return ferrio.new_event_loop()


def pytest_configure(config):
    if os.environ.get("FERRIO_SUITE_LOOP") != "ferrio":
        return
    policy = asyncio.DefaultEventLoopPolicy
    policy._loop_factory = staticmethod(_new_ferrio_loop)


def pytest_unconfigure(config):
    path = os.environ.get("FERRIO_SUITE_COUNT")
    if path:
        with open(path, "w") as f:
            f.write(str(_made))
