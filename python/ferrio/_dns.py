"""``loop.getaddrinfo`` with a fast path for numeric hosts.

asyncio always resolves in the default executor (a thread hop, ~80 µs,
and a thread pool started on first use). When the host is a numeric
address (or None) and the port numeric, ``getaddrinfo(3)`` does no lookup
at all: ferrio calls it inline with ``AI_NUMERICHOST | AI_NUMERICSERV``,
which gives exactly the result the threaded call would, or fails at once
for a name, in which case asyncio's threaded path runs. Debug mode always
takes asyncio's path (it logs the call's duration), and so does a program
that patched asyncio's ``getaddrinfo`` on its loop class
(``mock.patch("asyncio.BaseEventLoop.getaddrinfo", fake)``): the patch is
called as asyncio's loop would call it.
"""

from __future__ import annotations

import socket
from asyncio import base_events

from . import _borrow

_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
_base_getaddrinfo = base_events.BaseEventLoop.getaddrinfo


def _numeric_port(port) -> bool:
    if port is None or isinstance(port, int):
        return True
    if isinstance(port, (str, bytes)):
        return port.isdigit()
    return False


async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
    """Resolve ``host``/``port`` like ``socket.getaddrinfo``, off the loop
    thread unless the host is numeric."""
    patched = _borrow.ASYNCIO_LOOP.getaddrinfo
    if patched is not _base_getaddrinfo:  # patched on asyncio's class
        return await _borrow.bind(patched, self)(host, port, family=family, type=type, proto=proto, flags=flags)
    if not self._debug and _numeric_port(port) and (host is None or isinstance(host, (str, bytes))):
        try:
            return socket.getaddrinfo(host, port, family, type, proto, flags | _NUMERIC)
        except socket.gaierror:
            pass  # a name (or an error the threaded call reports itself)
        except (TypeError, ValueError, OverflowError, UnicodeError):
            pass  # let asyncio's path raise its own error
    return await _base_getaddrinfo(self, host, port, family=family, type=type, proto=proto, flags=flags)
