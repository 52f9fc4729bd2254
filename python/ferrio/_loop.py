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
* networking, pipes and subprocesses through asyncio's own selector-loop
  code (its transports, servers and ``sock_*`` methods), running on ferrio's
  native fd watching (``_add_reader``/``_add_writer``). This is an interim
  layer: it makes programs that use streams, servers and clients run
  unchanged, at asyncio's per-packet speed, until the native Rust transports
  (issue #3) replace the hot paths.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import sys
import threading
import weakref
from asyncio import base_events, coroutines, events, selector_events, unix_events
from asyncio.log import logger

from . import _borrow, _dns, _executor, _ferrio, _sockets, _transports
from asyncio import futures as _futures

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
        # fd -> transport, read by asyncio's transports and
        # _ensure_fd_no_transport (add_reader on a transport's fd raises).
        self._transports = weakref.WeakValueDictionary()
        # Unix server socket -> inode, for 3.13+'s cleanup_socket (read by the
        # borrowed create_unix_server/_stop_serving; unused before 3.13).
        self._unix_server_sockets = {}
        self._selector = _SelectorView(self)
        self.set_debug(coroutines._is_debug_mode())
        # A subclass's own time() makes the loop read its clock through it.
        self._sync_time_source()

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
        self._selector = None  # as asyncio's selector loop: transports' repr
        # then reports "open"/"closed" instead of polling state.
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

    def _stop_serving(self, sock) -> None:
        # 3.13's Unix loop: stop accepting, then remove the socket file of a
        # Unix server created with cleanup_socket=True (its own version uses
        # zero-argument super(), so it cannot be borrowed). Before 3.13
        # _unix_server_sockets stays empty and this is the selector version.
        path = sock.getsockname() if sock in self._unix_server_sockets else None
        _selector_stop_serving(self, sock)
        if path is not None:
            prev_ino = self._unix_server_sockets.pop(sock)
            try:
                if os.stat(path).st_ino == prev_ino:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)

    def run_in_executor(self, executor, func, *args):
        """asyncio's ``run_in_executor``; the default executor is a
        ``ferrio.ThreadPoolExecutor``, and a ferrio executor completes the
        returned future through the loop's batched inbox instead of a
        ``concurrent.futures.Future`` and a ``call_soon_threadsafe`` per
        call."""
        self._check_closed()
        if self._debug:
            self._check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            # Only check when the default executor is being used
            self._check_default_executor()
            if executor is None:
                executor = _executor.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        if type(executor).submit is _executor.ThreadPoolExecutor.submit:
            return executor._core.run_for_loop(self, func, args)
        return _futures.wrap_future(executor.submit(func, *args), loop=self)

    def _add_callback_signalsafe(self, handle) -> None:
        # ``handle`` is an asyncio.Handle made by the borrowed
        # add_signal_handler; its _run reports errors to our handler.
        if not handle._cancelled:
            self.call_soon_threadsafe(handle._run)


# asyncio's own implementations, reused where they only touch state that
# ferrio.Loop provides. Looked up per class so each Python version gets its
# own behaviour (e.g. 3.12's shutdown_default_executor(timeout=)). Classes go
# from base to most derived; a name listed under several (_sendfile_native,
# _sock_sendfile_native) ends up with the most derived version, as in
# asyncio's own MRO. Never add a function that uses zero-argument super():
# its __class__ cell is asyncio's class (see Loop._stop_serving). Each name is
# resolved on asyncio's class at access time (_borrow.py), so patches of
# asyncio's loop classes reach ferrio's loops.
_BORROWED = {
    base_events.BaseEventLoop: (
        "__repr__",
        "__del__",
        "_check_running",
        "run_until_complete",
        "set_task_factory",
        "get_task_factory",
        "shutdown_asyncgens",
        "shutdown_default_executor",
        "_do_shutdown",
        "set_default_executor",
        "_check_default_executor",
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
        "create_connection",
        "_create_connection_transport",
        "_connect_sock",
        "_ensure_resolved",
        "_create_server_getaddrinfo",
        "create_server",
        "connect_accepted_socket",
        "create_datagram_endpoint",
        "start_tls",
        "sendfile",
        "_sendfile_native",
        "_sendfile_fallback",
        "_check_sendfile_params",
        "sock_sendfile",
        "_sock_sendfile_native",
        "_sock_sendfile_fallback",
        "connect_read_pipe",
        "connect_write_pipe",
        "subprocess_shell",
        "subprocess_exec",
        "_log_subprocess",
    ),
    selector_events.BaseSelectorEventLoop: (
        "_make_self_pipe",
        "_close_self_pipe",
        "_read_from_self",
        # networking on ferrio's native fd watching (interim, see module doc)
        "_start_serving",
        "_accept_connection",
        "_accept_connection2",
        "_ensure_fd_no_transport",
        "add_reader",
        "remove_reader",
        "add_writer",
        "remove_writer",
        "_sock_read_done",
        "sock_connect",
        "_sock_connect",
        "_sock_write_done",
        "_sock_connect_cb",
        "sock_accept",
        "_sock_accept",
        # the per-packet sock_* methods' selector versions, for sockets
        # that are not plain socket.socket objects (see _sockets.py)
        "_sock_recv",
        "_sock_recv_into",
        "_sock_sendall",
        "_sock_recvfrom",
        "_sock_recvfrom_into",
        "_sock_sendto",
        "_sendfile_native",
    ),
    unix_events._UnixSelectorEventLoop: (
        "_process_self_data",
        "_handle_signal",
        "remove_signal_handler",
        "_check_signal",
        "create_unix_connection",
        "create_unix_server",
        "_make_read_pipe_transport",
        "_make_write_pipe_transport",
        "_make_subprocess_transport",
        "_child_watcher_callback",
        "_sock_sendfile_native",
        "_sock_sendfile_native_impl",
        "_sock_add_cancellation_callback",
        "_sock_sendfile_update_filepos",
    ),
}

for _cls, _names in _BORROWED.items():
    for _name in _names:
        _fn = _cls.__dict__.get(_name)
        if _fn is None:
            continue
        # Special methods (looked up on the type by the interpreter) and
        # names a more derived asyncio class overrides (replaced on its turn)
        # are copied; the rest follow patches of asyncio's class (_borrow.py).
        if _name.startswith("__") or getattr(_borrow.ASYNCIO_LOOP, _name) is not _fn:
            setattr(Loop, _name, _fn)
        else:
            setattr(Loop, _name, _borrow.Borrowed(_name))
del _cls, _names, _name, _fn

# Stream sockets get ferrio's native transport.
Loop._make_socket_transport = _transports.make_socket_transport
Loop._make_ssl_transport = _transports.make_ssl_transport
Loop._make_datagram_transport = _transports.make_datagram_transport
Loop.getaddrinfo = _dns.getaddrinfo
# The per-packet sock_* methods are native (see _sockets.py).
Loop.sock_recv = _sockets.sock_recv
Loop.sock_recv_into = _sockets.sock_recv_into
Loop.sock_sendall = _sockets.sock_sendall
if hasattr(selector_events.BaseSelectorEventLoop, "sock_recvfrom"):  # 3.11+
    Loop.sock_recvfrom = _sockets.sock_recvfrom
    Loop.sock_recvfrom_into = _sockets.sock_recvfrom_into
    Loop.sock_sendto = _sockets.sock_sendto

_unix_add_signal_handler = unix_events._UnixSelectorEventLoop.add_signal_handler
_selector_stop_serving = selector_events.BaseSelectorEventLoop._stop_serving


class _SelectorView:
    """The one `selectors` call asyncio's transports make on a loop:
    ``loop._selector.get_key(fd)`` in their ``repr`` (polling or idle)."""

    __slots__ = ("_loop",)

    def __init__(self, loop):
        self._loop = weakref.proxy(loop)

    def get_key(self, fd):
        events = self._loop._fd_events(fd)
        if events is None:
            raise KeyError(fd)
        return selectors.SelectorKey(fd, fd, events, None)
