"""Methods ferrio's loop takes from asyncio's selector loop, resolved live.

ferrio's ``Loop`` is not a subclass of asyncio's ``BaseEventLoop`` (its base
is the Rust loop), yet most of its setup-time methods are asyncio's own
functions (``_loop._BORROWED``). Copying those function objects once would
miss a program or test that patches asyncio's class afterwards
(``mock.patch("asyncio.BaseEventLoop.create_connection", slow)``, as
asyncssh's suite does to inject a slow connect): asyncio's loop sees the
patch through inheritance, a copy would not. So each borrowed name is a
``Borrowed`` descriptor that looks the name up on asyncio's selector loop
class at every access, with asyncio's own MRO: a patch on any class between
``BaseEventLoop`` and ``SelectorEventLoop`` counts exactly where it would
count for asyncio's loop. Methods ferrio implements itself (``call_soon``,
timers, fd watching, the native ``sock_*``) do not follow such patches.
"""

from __future__ import annotations

from asyncio import unix_events

# asyncio's selector loop class on this platform (asyncio.SelectorEventLoop).
ASYNCIO_LOOP = unix_events._UnixSelectorEventLoop


def bind(attr, obj):
    """``attr`` (found on a class) as ordinary attribute lookup on ``obj``
    gives it: a function bound, anything without ``__get__`` (a patched-in
    Mock) as it is."""
    get = getattr(type(attr), "__get__", None)
    return attr if get is None else get(attr, obj, type(obj))


class Borrowed:
    """A borrowed method: ``getattr(ASYNCIO_LOOP, name)`` at each access,
    bound to the instance. One class lookup per access; none of the
    borrowed methods runs per callback."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __get__(self, obj, objtype=None):
        attr = getattr(ASYNCIO_LOOP, self._name)
        return attr if obj is None else bind(attr, obj)

    def __repr__(self):
        return f"<asyncio's {self._name}, borrowed by ferrio.Loop>"
