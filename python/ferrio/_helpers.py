"""Cold-path helpers called from the Rust core.

Formatting and error reporting reuse asyncio's own helpers so that
messages, log lines and exception-handler contexts match the running
Python version exactly. Nothing here runs per callback on the fast path:
only on errors, in debug mode, or for ``repr()``.
"""

from __future__ import annotations

import sys
from asyncio import base_events, coroutines, format_helpers
from asyncio.log import logger

__all__ = [
    "check_callback",
    "extract_stack",
    "format_handle",
    "report_callback_error",
    "warn_slow_callback",
]


def _callback_source(callback, args) -> str:
    return format_helpers._format_callback_source(callback, args)


def format_handle(handle) -> str:
    """asyncio's ``Handle.__repr__`` / ``TimerHandle.__repr__``."""
    info = [type(handle).__name__]
    if handle._cancelled:
        info.append("cancelled")
    when = getattr(handle, "_when", None)
    if when is not None:
        info.insert(2 if handle._cancelled else 1, f"when={when}")
    callback = handle._callback
    if callback is not None:
        info.append(_callback_source(callback, handle._args))
    tb = handle._source_traceback
    if tb:
        frame = tb[-1]
        info.append(f"created at {frame[0]}:{frame[1]}")
    return "<{}>".format(" ".join(info))


def report_callback_error(loop, handle, exc) -> None:
    """What asyncio's ``Handle._run`` does when its callback raises."""
    callback = handle._callback
    cb = _callback_source(callback, handle._args) if callback is not None else repr(handle)
    context = {
        "message": f"Exception in callback {cb}",
        "exception": exc,
        "handle": handle,
    }
    tb = handle._source_traceback
    if tb:
        context["source_traceback"] = tb
    loop.call_exception_handler(context)


def extract_stack():
    """Creation stack of a handle (debug mode only)."""
    return format_helpers.extract_stack(sys._getframe(1))


def warn_slow_callback(handle, seconds: float) -> None:
    logger.warning("Executing %s took %.3f seconds", base_events._format_handle(handle), seconds)


def check_callback(callback, method: str) -> None:
    """asyncio's ``BaseEventLoop._check_callback`` (debug mode only)."""
    if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
        raise TypeError(f"coroutines cannot be used with {method}()")
    if not callable(callback):
        raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")


# -- transports (src/transports/) ------------------------------------------


def transport_fatal_error(loop, transport, protocol, exc, message) -> None:
    """asyncio's ``_SelectorTransport._fatal_error`` reporting part: OSErrors
    are only logged in debug mode, anything else goes to the loop's
    exception handler. (The Rust caller then force-closes the transport.)"""
    if isinstance(exc, OSError):
        if loop.get_debug():
            logger.debug("%r: %s", transport, message, exc_info=exc)
    else:
        loop.call_exception_handler(
            {
                "message": message,
                "exception": exc,
                "transport": transport,
                "protocol": protocol,
            }
        )


def protocol_call_failed(loop, transport, protocol, exc, message) -> None:
    """A flow-control callback (``pause_writing``/``resume_writing``)
    raised: asyncio reports it and carries on."""
    loop.call_exception_handler(
        {
            "message": message,
            "exception": exc,
            "transport": transport,
            "protocol": protocol,
        }
    )


def transport_debug(loop, message, transport) -> None:
    """Debug-mode log line about a transport (``"%r pauses reading"``...)."""
    if loop.get_debug():
        logger.debug(message, transport)


def warn_conn_lost_writes() -> None:
    logger.warning("socket.send() raised exception.")
