"""pytest plugin for tornado's own suite (library_runner.py): what
``tornado.test.runtests`` sets before its tests run. Its tests fail on
any unexpected log line, and the access log logs every request at INFO."""

import logging


def pytest_configure(config):
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)
