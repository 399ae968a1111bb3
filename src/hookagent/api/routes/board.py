"""``GET /tasks/events`` (SSE) and ``GET /tasks/counts``: what a live task board needs.

Included through ``routes/ui.py`` ahead of ``routes/tasks.py``, whose ``/tasks/{task_id}``
would otherwise take ``events`` and ``counts`` for task ids.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from hookagent.api.deps import StoreDep
from hookagent.models import TaskStatus
from hookagent.store.events import READ_COUNT, TaskEvents, stream_id

router = APIRouter(prefix="/tasks", tags=["board"])

# A quiet stream gets a comment line this often, well inside the idle timeouts of common
# reverse proxies (nginx: 60 s), so they do not close it.
KEEPALIVE_S = 15.0


class TaskCounts(BaseModel):
    """Tasks per status, and all of them."""

    counts: dict[TaskStatus, int]
    total: int


@router.get("/counts")
async def task_counts(store: StoreDep) -> TaskCounts:
    """How many tasks are in each status."""
    counts = await store.tasks.counts()
    return TaskCounts(counts=counts, total=sum(counts.values()))


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def task_events(
    store: StoreDep, last_event_id: Annotated[str | None, Header()] = None
) -> StreamingResponse:
    """Every task creation and status change as ``event: task`` (``id:`` the stream entry).

    Data: ``{"task_id", "status", "previous", "at"}``. A reconnecting client sends
    ``Last-Event-ID`` and gets what it missed, as far as the capped stream still holds it.
    """
    events = store.events
    follow = events.follow()
    await follow.__aenter__()
    resume = last_event_id is not None and stream_id(last_event_id.strip()) != (-1, -1)
    cursor = last_event_id.strip() if resume and last_event_id else await events.latest_id()
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    body = _stream(events, follow, cursor)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


async def _stream(
    events: TaskEvents, follow: AbstractAsyncContextManager[TaskEvents], cursor: str
) -> AsyncIterator[str]:
    try:
        # The id marks where this client stands even before its first event.
        yield f"retry: 2000\nid: {cursor}\n: task events after {cursor}\n\n"
        while True:
            batch = await events.after(cursor)
            for event in batch:
                data = {
                    "task_id": event.task_id,
                    "status": event.status,
                    "previous": event.previous,
                    "at": event.at,
                }
                yield f"id: {event.id}\nevent: task\ndata: {json.dumps(data)}\n\n"
                cursor = event.id
            if len(batch) == READ_COUNT:
                continue
            if not batch and not await events.wait_beyond(cursor, KEEPALIVE_S):
                yield ": keep-alive\n\n"
    finally:
        # Starlette cancels this generator when the client goes; the last one stops the loop.
        await follow.__aexit__(None, None, None)
