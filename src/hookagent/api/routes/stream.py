"""Live logs: Server-Sent Events and WebSocket, both on the entries' ``seq`` cursor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from hookagent.api.deps import MAX_OFFSET, FeedsDep, FilterDep, OffsetQuery
from hookagent.errors import HookagentError
from hookagent.logfilter import LogFilter
from hookagent.models import EventKind, LogEntry
from hookagent.store.feed import FeedHub, TaskFeed

router = APIRouter(prefix="/tasks", tags=["live logs"])

KEEPALIVE_S = 15.0
BATCH = 500


def _is_status(entry: LogEntry) -> bool:
    return entry.kind is EventKind.STATUS


async def _entries(
    feeds: FeedHub, feed: TaskFeed, cursor: int, flt: LogFilter
) -> tuple[list[LogEntry], int]:
    """The next batch from ``cursor``: matching entries plus every status change."""
    batch = await feeds.read(feed, cursor, BATCH)
    if batch:
        cursor = batch[-1].seq + 1
    return [e for e in batch if _is_status(e) or flt.matches(e)], cursor


def _sse(entry: LogEntry) -> str:
    data = entry.model_dump_json(exclude_none=True)
    kind = "event: status\n" if _is_status(entry) else ""
    return f"id: {entry.seq}\n{kind}data: {data}\n\n"


@router.get(
    "/{task_id}/logs/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def stream_logs(
    task_id: str,
    feeds: FeedsDep,
    flt: FilterDep,
    offset: OffsetQuery = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Entries as SSE events (``id: <seq>``), ``event: status`` changes, ``event: end`` at the end.

    Reconnecting clients send ``Last-Event-ID`` and resume right after it.
    """
    resume = (last_event_id or "").strip()
    if resume.isdigit() and len(resume) <= len(str(MAX_OFFSET)) and int(resume) < MAX_OFFSET:
        offset = int(resume) + 1
    # Entered here, not in the generator, so an unknown task is a 404 before streaming.
    follow = feeds.follow(task_id)
    feed = await follow.__aenter__()

    async def events() -> AsyncIterator[str]:
        try:
            cursor, progress_seen = offset, 0
            yield f"retry: 2000\n: following {task_id} from {cursor}\n\n"
            while True:
                sent, cursor = await _entries(feeds, feed, cursor, flt)
                for entry in sent:
                    yield _sse(entry)
                if feed.progress_version != progress_seen:
                    progress_seen = feed.progress_version
                    yield f"event: progress\ndata: {json.dumps(feed.progress)}\n\n"
                if cursor >= feed.next_seq and feed.terminal:
                    yield f"event: end\ndata: {json.dumps({'status': feed.status})}\n\n"
                    return
                if not sent and not await feed.wait_beyond(cursor, KEEPALIVE_S):
                    yield ": keep-alive\n\n"
        finally:
            # Starlette cancels this generator when the client goes: the feed is released
            # and, for the last follower, its Redis loop stops.
            await follow.__aexit__(None, None, None)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.websocket("/{task_id}/logs/ws")
async def websocket_logs(
    websocket: WebSocket,
    task_id: str,
    feeds: FeedsDep,
    flt: FilterDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> None:
    """The same entries and status events as JSON; send ``{"offset": N}`` or ``{"filter": {…}}``."""
    await websocket.accept()
    try:
        async with feeds.follow(task_id) as feed:
            await _serve_socket(websocket, feeds, feed, offset, flt)
    except HookagentError as exc:
        await websocket.send_json({"type": "error", "error": exc.code, "detail": exc.message})
        await websocket.close(code=4404 if exc.status_code == 404 else 4400)
    except WebSocketDisconnect:
        return


async def _serve_socket(
    websocket: WebSocket, feeds: FeedHub, feed: TaskFeed, offset: int, flt: LogFilter
) -> None:
    state: dict[str, Any] = {"cursor": offset, "filter": flt, "progress": 0}
    control = asyncio.Event()
    reader = asyncio.create_task(_read_controls(websocket, state, control))
    try:
        while not reader.done():
            sent, state["cursor"] = await _entries(feeds, feed, state["cursor"], state["filter"])
            for entry in sent:
                kind = "status" if _is_status(entry) else "log"
                await websocket.send_json(
                    {"type": kind, **entry.model_dump(mode="json", exclude_none=True)}
                )
            if feed.progress_version != state["progress"]:
                state["progress"] = feed.progress_version
                await websocket.send_json({"type": "progress", **(feed.progress or {})})
            if state["cursor"] >= feed.next_seq and feed.terminal:
                await websocket.send_json({"type": "end", "status": feed.status})
                await websocket.close()
                return
            if sent:
                continue
            waiting = asyncio.create_task(feed.wait_beyond(state["cursor"], KEEPALIVE_S))
            woken = asyncio.create_task(control.wait())
            await asyncio.wait({waiting, woken, reader}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiting, woken):
                task.cancel()
            control.clear()
        reader.result()  # a disconnect ends the loop through here
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _read_controls(
    websocket: WebSocket, state: dict[str, Any], control: asyncio.Event
) -> None:
    while True:
        message = await websocket.receive_json()
        try:
            if "offset" in message:
                state["cursor"] = max(0, int(message["offset"]))
            if "filter" in message:
                raw = message["filter"] or {}
                state["filter"] = LogFilter.build(
                    stream=_list(raw.get("stream")),
                    kind=_list(raw.get("kind")),
                    level=raw.get("level"),
                    q=raw.get("q"),
                    regex_text=raw.get("regex"),
                )
        except (HookagentError, ValueError, TypeError, ValidationError) as exc:
            detail = exc.message if isinstance(exc, HookagentError) else str(exc)
            await websocket.send_json(
                {"type": "error", "error": "invalid_control", "detail": detail}
            )
            continue
        control.set()


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
