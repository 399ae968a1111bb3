"""The live-log wire formats: entries, progress and keep-alives as SSE events or WebSocket texts.

Every writer of a live log takes its bytes from here: the shared batches (``fanout.py``),
each follower's own loop (``routes/stream.py``) and the broadcaster (``broadcast.py``). One
encoder per thing keeps their bytes identical, so a follower handed between its own loop and
a broadcaster sees no seam. ``Frames`` is what a broadcaster writes in one delivery, framed
once for all its riders.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

from hookagent.models import EventKind, LogEntry

Wire = Literal["sse", "ws"]


def is_status(entry: LogEntry) -> bool:
    """Whether the entry is a status change (sent whatever the filter)."""
    return entry.kind is EventKind.STATUS


def sse_event(entry: LogEntry) -> str:
    """One entry as an SSE event: ``id: <seq>``, ``event: status`` for status changes."""
    data = entry.model_dump_json(exclude_none=True)
    kind = "event: status\n" if is_status(entry) else ""
    return f"id: {entry.seq}\n{kind}data: {data}\n\n"


def ws_frame(entry: LogEntry) -> str:
    """One entry as the WebSocket's JSON text (the same bytes ``send_json`` would write)."""
    body = {"type": "status" if is_status(entry) else "log"}
    body |= entry.model_dump(mode="json", exclude_none=True)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def sse_progress(progress: dict[str, Any] | None) -> bytes:
    """The task's progress as an SSE ``event: progress`` (a follower's loop and a broadcaster)."""
    return f"event: progress\ndata: {json.dumps(progress)}\n\n".encode()


def ws_progress(progress: dict[str, Any] | None) -> str:
    """The task's progress as the WebSocket's JSON text (what ``send_json`` would write)."""
    body = {"type": "progress", **(progress or {})}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


# The comment line a quiet SSE stream gets (see routes/stream.KEEPALIVE_S).
SSE_KEEPALIVE = b": keep-alive\n\n"


class Frames(NamedTuple):
    """What a broadcaster writes to its riders in one delivery, framed once for all of them."""

    direct: bytes  # for a transport: HTTP/1.1 chunks or WebSocket frames (b"": nothing due)
    bodies: tuple[bytes, ...]  # SSE through ``send``: one body per chunk a follower writes


NOTHING = Frames(b"", ())
