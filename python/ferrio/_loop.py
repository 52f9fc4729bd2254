"""``ferrio.Loop``: the Python face of the Rust event loop.

The hot paths (``call_soon``, timers, polling, the run iteration, fd
watching, ``time()``) are methods of the Rust base class
``ferrio._ferrio.Loop``. This subclass adds:

* ``asyncio.AbstractEventLoop`` as a base, so ``isinstance`` checks hold, and
  a ``__dict__`` and weak-reference support (libraries and tests set
  attributes on loops);
* the setup-time and rarely used methods. Where asyncio's own implementation
  only needs state this loop provides, its function object is reused as is
  (``_BORROWED`` below), so behaviour, messages and per-version differences
  match the running Python exactly;
* explicit ``NotImplementedError`` for the networking, pipe and subprocess
  APIs, which are not implemented yet (see README "Status").
"""

from __future__ import annotations

import asyncio
import sys
import threading
import weakref
from asyncio import base_events, coroutines, events, selector_events, unix_events
from asyncio.log import logger

from . import _ferrio

__all__ = ["Loop"]


class Loop(_ferrio.Loop, asyncio.AbstractEventLoop):
    """A drop-in asyncio event loop whose core runs in Rust."""

    def __init__(self) -> None:
        # Python-side state read by the borrowed asyncio methods.
        self._default_executor = None
        self._internal_fds = 0
        self._exception_handler = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._executor_shutdown_called = False
        self._old_agen_hooks = None
        self._signal_handlers = {}
        self._ssock = None
        self._csock = None
        self.set_debug(coroutines._is_debug_mode())

    # -- running ---------------------------------------------------------

    def _run_forever_setup(self) -> None:
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        self._old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter_hook,
            finalizer=self._asyncgen_finalizer_hook,
        )
        events._set_running_loop(self)

    def _run_forever_cleanup(self) -> None:
        self._stopping = False
        self._thread_id = None
        events._set_running_loop(None)
        self._set_coroutine_origin_tracking(False)
        if self._old_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._old_agen_hooks)
            self._old_agen_hooks = None

    def run_forever(self) -> None:
        """Run until stop() is called."""
        try:
            self._run_forever_setup()
            self._run_forever_native()
        finally:
            self._run_forever_cleanup()

    def close(self) -> None:
        """Close the loop: drop pending callbacks, timers and fd watchers,
        remove signal handlers, and shut the default executor down without
        waiting. Idempotent; refuses while running."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self._debug:
            logger.debug("Close %r", self)
        if self._signal_handlers:
            if not sys.is_finalizing():
                for sig in list(self._signal_handlers):
                    self.remove_signal_handler(sig)
            else:
                self._signal_handlers.clear()
        if self._ssock is not None:
            self._close_self_pipe()
        self._close_native()
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    # -- signals (Unix) --------------------------------------------------

    def _ensure_self_pipe(self) -> None:
        if self._ssock is None:
            self._make_self_pipe()

    def add_signal_handler(self, sig, callback, *args) -> None:
        """Run ``callback(*args)`` on the loop when signal ``sig`` arrives.
        Main thread only; asyncio's errors for invalid or uncatchable
        signals."""
        if not self.is_closed():
            self._ensure_self_pipe()
        return _unix_add_signal_handler(self, sig, callback, *args)

    def _add_callback_signalsafe(self, handle) -> None:
        # ``handle`` is an asyncio.Handle made by the borrowed
        # add_signal_handler; its _run reports errors to our handler.
        if not handle._cancelled:
            self.call_soon_threadsafe(handle._run)

    # -- not implemented yet ---------------------------------------------

    def _not_implemented(name: str):  # noqa: N805 - helper used at class creation
        def method(self, *args, **kwargs):
            raise NotImplementedError(
                f"ferrio.Loop.{name}() is not implemented yet: ferrio's networking, "
                "pipes and subprocesses arrive in a later release. Use asyncio's "
                "default loop for programs that need it (see README, 'Status')."
            )

        method.__name__ = name
        method.__qualname__ = f"Loop.{name}"
        return method

    for _name in (
        "create_connection",
        "create_server",
        "create_unix_connection",
        "create_unix_server",
        "create_datagram_endpoint",
        "connect_accepted_socket",
        "start_tls",
        "sendfile",
        "sock_recv",
        "sock_recv_into",
        "sock_recvfrom",
        "sock_recvfrom_into",
        "sock_sendall",
        "sock_sendto",
        "sock_connect",
        "sock_accept",
        "sock_sendfile",
        "connect_read_pipe",
        "connect_write_pipe",
        "subprocess_exec",
        "subprocess_shell",
    ):
        locals()[_name] = _not_implemented(_name)
    del _name, _not_implemented


# asyncio's own implementations, reused where they only touch state that
# ferrio.Loop provides. Looked up per class so each Python version gets its
# own behaviour (e.g. 3.12's shutdown_default_executor(timeout=)).
_BORROWED = {
    base_events.BaseEventLoop: (
        "__repr__",
        "__del__",
        "_check_running",
        "run_until_complete",
        "create_future",
        "set_task_factory",
        "get_task_factory",
        "shutdown_asyncgens",
        "shutdown_default_executor",
        "_do_shutdown",
        "run_in_executor",
        "set_default_executor",
        "_check_default_executor",
        "getaddrinfo",
        "getnameinfo",
        "_getaddrinfo_debug",
        "get_exception_handler",
        "set_exception_handler",
        "default_exception_handler",
        "call_exception_handler",
        "_asyncgen_finalizer_hook",
        "_asyncgen_firstiter_hook",
        "set_debug",
        "_set_coroutine_origin_tracking",
        "_check_callback",
    ),
    selector_events.BaseSelectorEventLoop: (
        "_make_self_pipe",
        "_close_self_pipe",
        "_read_from_self",
    ),
    unix_events._UnixSelectorEventLoop: (
        "_process_self_data",
        "_handle_signal",
        "remove_signal_handler",
        "_check_signal",
    ),
}

for _cls, _names in _BORROWED.items():
    for _name in _names:
        _fn = _cls.__dict__.get(_name)
        if _fn is not None:
            setattr(Loop, _name, _fn)
del _cls, _names, _name, _fn

_unix_add_signal_handler = unix_events._UnixSelectorEventLoop.add_signal_handler
