"""Writes that skip the ASGI send chain: a batch's framed bytes straight to uvicorn's transport.

Why: through ``send``, every chunk of every follower passes each middleware's wrapper and
uvicorn's ``send``, which copies the body into a new chunk frame; with 1,000 followers of a
task that was a third of the server's CPU per line. The broadcaster frames a batch once (one
HTTP/1.1 chunk, or WebSocket text frames) and writes the same bytes object to the transport
of every caught-up follower: one ``transport.write`` per follower per batch.

Only where the server is known: uvicorn runs each request in a task whose coroutine is its
connection object's ``run_asgi`` (the httptools request cycle for HTTP, the sans-I/O protocol
for WebSocket), and that object holds the transport and the flow-control state. Any other
server, uvicorn's h11 or wsproto protocols, or an in-process test transport gets None, and
its followers are written through ``send`` as before. A direct write is made only while the
connection takes it at once: when its transport has asked to pause (the client reads slowly)
the follower goes back to its own loop, whose ``send`` waits on uvicorn's flow control.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

_HTTP = ("uvicorn.protocols.http.httptools_impl", "RequestResponseCycle")
_WS = ("uvicorn.protocols.websockets.websockets_sansio_impl", "WebSocketsSansIOProtocol")


class Direct:
    """One connection's transport, and a check of whether it takes a write right now."""

    __slots__ = ("_flow", "_ready", "_transport")

    def __init__(
        self, transport: asyncio.Transport, ready: Callable[[], bool], flow: Any = None
    ) -> None:
        self._transport = transport
        self._ready = ready
        # uvicorn's flow control (``write_paused``) where it is all that can change while a
        # follower rides: ``offer`` then reads one flag instead of the whole ``ready``.
        self._flow = flow

    def ready(self) -> bool:
        """Whether a write now goes out without breaking the protocol or the flow control."""
        return not self._transport.is_closing() and self._ready()

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the transport (it sends at once, or buffers what the socket refused)."""
        self._transport.write(data)

    def offer(self, data: bytes) -> bool:
        """Write ``data`` if the connection takes it now; whether it did.

        For a rider whose ``ready`` held when it joined (see ``broadcast.ride``): the
        broadcaster's one call per rider per batch, which with 1,000 riders touches 1,000
        connections' objects, each of them cold in the CPU's cache by the next batch.
        """
        flow = self._flow
        if self._transport.is_closing() or (
            flow.write_paused if flow is not None else not self._ready()
        ):
            return False
        self._transport.write(data)
        return True


def _connection(kind: tuple[str, str]) -> Any:
    """The uvicorn object serving the current task's request when it is of ``kind``, else None."""
    task = asyncio.current_task()
    coro = task.get_coro() if task is not None else None
    frame = getattr(coro, "cr_frame", None)
    owner = frame.f_locals.get("self") if frame is not None else None
    cls = type(owner)
    if (cls.__module__, cls.__qualname__) != kind or not hasattr(owner, "transport"):
        return None
    return owner


def http_direct() -> Direct | None:
    """The current HTTP response's transport, for chunked body writes (None: use ``send``)."""
    cycle = _connection(_HTTP)
    if cycle is None:
        return None

    def ready() -> bool:
        return (
            cycle.response_started
            and cycle.chunked_encoding is True
            and not cycle.response_complete
            and not cycle.disconnected
            and not cycle.flow.write_paused
        )

    # While a follower rides, its response has started (chunked or not) and cannot complete
    # (only its own loop ends it), and a disconnect closes the transport: only the flow
    # control can change.
    return Direct(cycle.transport, ready, cycle.flow)


def ws_direct() -> Direct | None:
    """The current WebSocket's transport, for whole unmasked text frames (None: use ``send``)."""
    proto = _connection(_WS)
    if proto is None:
        return None

    def ready() -> bool:
        return (
            proto.handshake_complete
            and proto.initial_response is None
            and not proto.close_sent
            and not proto.disconnected
            and proto.writable.is_set()
        )

    return Direct(proto.transport, ready)


def http_chunk(body: bytes) -> bytes:
    """``body`` as one HTTP/1.1 chunk (``Transfer-Encoding: chunked``), as uvicorn frames it."""
    return b"%x\r\n%b\r\n" % (len(body), body)


def ws_text_frame(text: str) -> bytes:
    """One final, unmasked, uncompressed WebSocket text frame (RFC 6455, 5.2).

    Uncompressed frames are allowed on a connection with permessage-deflate (RFC 7692, 6:
    RSV1 clear), and they touch neither side's compression window.
    """
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload
