"""Whether a stream transport may feed asyncio's ``StreamReader`` natively.

asyncio's streams (``start_server``, ``open_connection``) put a
``StreamReaderProtocol`` on the transport, and every read runs four Python
frames of the stdlib: ``data_received`` -> the ``_stream_reader`` property ->
``StreamReader.feed_data`` -> ``_wakeup_waiter``. ferrio's stream transport
(src/transports/streamfeed.rs) does what those frames do itself, receiving
straight into the reader's ``_buffer`` bytearray, but only when the code it
stands in for is exactly the stdlib's:

- the protocol's type is exactly ``asyncio.StreamReaderProtocol`` and its
  reader's type exactly ``asyncio.StreamReader`` (subclasses may override
  anything);
- the four methods on those classes are the stdlib's own functions (not
  replaced, not wrapped: a monkeypatch or a tracing wrapper turns the fast
  path off), and neither instance shadows them;
- the running Python is one whose ``streams.py`` was read for this (3.10 to
  3.13; their ``data_received``/``feed_data``/``_wakeup_waiter`` are
  identical). A newer Python takes the ordinary path until its
  ``streams.py`` has been checked and the bound below raised.

Checked once per protocol (when it is set on the transport), so this is
per-connection Python, as the design rules allow. The answer is the weakref
to the reader (``protocol._stream_reader_wr``), which the transport keeps:
the stdlib sets that attribute only in ``__init__`` and, to None, in
``connection_lost``, after which the transport reads no more.
"""

from __future__ import annotations

import sys
import types
import weakref
from asyncio import streams

__all__ = ["reader_ref"]

# The newest Python whose asyncio/streams.py was compared with the native
# feed (src/transports/streamfeed.rs) statement by statement.
_CHECKED_UP_TO = (3, 13)

_STREAMS_FILE = streams.start_server.__code__.co_filename

_METHODS = (
    (streams.StreamReaderProtocol, "data_received"),
    (streams.StreamReader, "feed_data"),
    (streams.StreamReader, "_wakeup_waiter"),
)


def _is_stdlib(cls: type, name: str) -> bool:
    fn = cls.__dict__.get(name)
    return (
        isinstance(fn, types.FunctionType)
        and fn.__module__ == "asyncio.streams"
        and fn.__qualname__ == f"{cls.__name__}.{name}"
        and fn.__code__.co_filename == _STREAMS_FILE
        and not hasattr(fn, "__wrapped__")
    )


def _stdlib_property() -> bool:
    prop = streams.StreamReaderProtocol.__dict__.get("_stream_reader")
    if type(prop) is not property or prop.fget is None:
        return False
    fget = prop.fget
    return (
        isinstance(fget, types.FunctionType)
        and fget.__module__ == "asyncio.streams"
        and fget.__code__.co_filename == _STREAMS_FILE
        and not hasattr(fget, "__wrapped__")
    )


def _unshadowed(obj: object, cls: type, name: str) -> bool:
    # Not through ``obj.__dict__``: reading it makes CPython 3.11+ give the
    # object a real dict, which slows every later attribute access on it.
    bound = getattr(obj, name, None)
    return getattr(bound, "__func__", None) is cls.__dict__.get(name)


def reader_ref(protocol: object) -> weakref.ref | None:
    """The weakref to ``protocol``'s reader when reads may be fed to it
    natively, else None."""
    if sys.version_info[:2] > _CHECKED_UP_TO:
        return None
    if type(protocol) is not streams.StreamReaderProtocol:
        return None
    if not _unshadowed(protocol, streams.StreamReaderProtocol, "data_received"):
        return None
    wr = getattr(protocol, "_stream_reader_wr", None)
    if type(wr) is not weakref.ref:
        return None
    reader = wr()
    if type(reader) is not streams.StreamReader:
        return None
    if not (
        _unshadowed(reader, streams.StreamReader, "feed_data")
        and _unshadowed(reader, streams.StreamReader, "_wakeup_waiter")
    ):
        return None
    if not _classes_are_stdlib():
        return None
    return wr


# The class attributes last found to be the stdlib's own (a replaced one is
# a different object, so identity says whether the answer still holds).
_checked: tuple = ()


def _classes_are_stdlib() -> bool:
    global _checked
    current = (streams.StreamReaderProtocol.__dict__.get("_stream_reader"),) + tuple(
        cls.__dict__.get(name) for cls, name in _METHODS
    )
    if len(current) == len(_checked) and all(a is b for a, b in zip(current, _checked)):
        return True
    if _stdlib_property() and all(_is_stdlib(c, n) for c, n in _METHODS):
        _checked = current
        return True
    return False
