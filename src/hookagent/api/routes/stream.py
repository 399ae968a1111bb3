"""Live logs: Server-Sent Events and WebSocket, both on the entries' ``seq`` cursor."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Header, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from hookagent.api.broadcast import ride
from hookagent.api.deps import MAX_OFFSET, Q_MAX_CHARS, FeedsDep, FilterDep, OffsetQuery
from hookagent.api.direct import Direct, http_direct, ws_direct
from hookagent.api.errors import OK, ws_close_code
from hookagent.api.fanout import Follower
from hookagent.api.frames import SSE_KEEPALIVE, sse_progress, ws_progress
from hookagent.api.logfilter import LogFilter
from hookagent.api.rider import Rider
from hookagent.errors import HookagentError, InvalidControl, InvalidRequest, quoted
from hookagent.sources.payload import parse_json
from hookagent.store.feed import FeedHub, TaskFeed

log = logging.getLogger(__name__)

router = APIRouter(prefix="/tasks", tags=["live logs"])

# A quiet stream gets a comment line this often, well inside the idle timeouts of common
# reverse proxies (nginx: 60 s), so they do not close it.
KEEPALIVE_S = 15.0
CONTROL_SHAPES = 'send {"offset": N} or {"filter": {"stream": [...], "q": "..."}}'


@router.get(
    "/{task_id}/logs/stream",
    response_class=StreamingResponse,
    responses={OK: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
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

    async def events(
        feed: TaskFeed, send: Send, direct: Direct | None
    ) -> AsyncIterator[str | bytes]:
        cursor, progress_seen = offset, 0
        follower = Follower(feeds, feed, "sse")
        yield f"retry: 2000\n: following {task_id} from {cursor}\n\n"
        while True:
            batch = await follower.next_batch(cursor, flt)
            cursor, sent = batch.cursor, batch.sent
            if sent:
                yield batch.sse  # the same bytes for every follower here: one write
            if feed.progress_version != progress_seen:
                progress_seen = feed.progress_version
                yield sse_progress(feed.progress)
            if cursor >= feed.next_seq and feed.terminal:
                yield f"event: end\ndata: {json.dumps({'status': feed.status})}\n\n"
                return
            if sent or feed.progress_version != progress_seen:
                continue  # more to read, or progress that came while the last yield waited
            # Caught up: the feed's broadcaster writes the next batches, progress events and
            # keep-alives for us, until the end or a full socket hands us back.
            rider = Rider(cursor, send=send, direct=direct, progress=progress_seen)
            if await ride(feeds, feed, flt, rider, "sse", KEEPALIVE_S):
                cursor, progress_seen = rider.cursor, rider.progress
            elif not await feed.wait_beyond(cursor, KEEPALIVE_S):
                yield SSE_KEEPALIVE

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventStream(feeds.follow(task_id), events, headers=headers)


class EventStream(StreamingResponse):
    """An SSE response that follows the task's feed for exactly as long as it is served.

    The feed is taken when the response is called and released however the call ends (the
    stream's end, a gone client, a cancel while the headers are sent), never in the events
    generator: a generator that never started runs no ``finally``. Taken before anything is
    sent, so an unknown task is still a 404.
    """

    def __init__(
        self,
        follow: AbstractAsyncContextManager[TaskFeed],
        events: Callable[[TaskFeed, Send, Direct | None], AsyncIterator[str | bytes]],
        headers: dict[str, str],
    ) -> None:
        super().__init__((), media_type="text/event-stream", headers=headers)
        self._follow = follow
        self._events = events
        self._feed: TaskFeed | None = None
        self._direct: Direct | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream while holding the feed."""
        # Looked up here, in the server's own task for the request (the stream runs in a
        # task of Starlette's).
        self._direct = http_direct()
        async with self._follow as feed:
            self._feed = feed
            await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        """Stream the events, which may hand ``send`` to the feed's broadcaster meanwhile."""
        if self._feed is None:
            raise RuntimeError("EventStream streamed outside its __call__")
        self.body_iterator = self._events(self._feed, send, self._direct)
        await super().stream_response(send)


@router.websocket("/{task_id}/logs/ws")
async def websocket_logs(websocket: WebSocket, task_id: str, feeds: FeedsDep) -> None:
    """The same entries and status events as JSON; send ``{"offset": N}`` or ``{"filter": {…}}``.

    Query parameters as for the other log endpoints (``offset``, ``stream``, ``kind``,
    ``level``, ``q``, ``regex``); a bad one gets an error message and close code 4422.
    """
    # Accepted before anything is checked: a refusal during the handshake is a bare 403,
    # while an accepted socket can say what was wrong.
    await websocket.accept()
    try:
        offset, flt = _socket_params(websocket)
        async with feeds.follow(task_id) as feed:
            await _serve_socket(websocket, feeds, feed, offset, flt)
    except HookagentError as exc:
        await _close_with_error(websocket, exc)
    except WebSocketDisconnect:
        return
    except Exception:
        log.exception("WebSocket for %s failed", quoted(task_id))
        await _close_with_error(websocket, HookagentError("internal error; see the server log"))


async def _close_with_error(websocket: WebSocket, exc: HookagentError) -> None:
    await websocket.send_json({"type": "error", "error": exc.code, "detail": exc.message})
    # The reason (at most 123 bytes) is the short error code.
    await websocket.close(code=ws_close_code(exc), reason=exc.code)


def _socket_params(websocket: WebSocket) -> tuple[int, LogFilter]:
    """The offset and filter from the socket's query string (FastAPI would refuse with 403)."""
    params = websocket.query_params
    q = params.get("q")
    if q is not None and len(q) > Q_MAX_CHARS:
        raise InvalidRequest(f"q is longer than {Q_MAX_CHARS} characters")
    flt = LogFilter.build(
        stream=params.getlist("stream"),
        kind=params.getlist("kind"),
        level=params.get("level"),
        q=q,
        regex_text=params.get("regex"),
    )
    return _offset(params.get("offset", "0")), flt


def _offset(value: object) -> int:
    """A seek target: an int (or its digits) from 0 to MAX_OFFSET."""
    if isinstance(value, str) and value.isdigit() and len(value) <= len(str(MAX_OFFSET)):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_OFFSET:
        return value
    raise InvalidRequest(f"offset must be an integer from 0 to {MAX_OFFSET}, not {quoted(value)}")


async def _serve_socket(
    websocket: WebSocket, feeds: FeedHub, feed: TaskFeed, offset: int, flt: LogFilter
) -> None:
    state: dict[str, Any] = {"cursor": offset, "filter": flt, "progress": 0, "seeks": 0}
    control = asyncio.Event()
    direct = ws_direct()  # in the server's task for the socket, like the SSE stream's
    reader = asyncio.create_task(_read_controls(websocket, state, control))
    follower = Follower(feeds, feed, "ws")
    try:
        while not reader.done():
            batch = await follower.next_batch(state["cursor"], state["filter"])
            state["cursor"], sent = batch.cursor, batch.sent
            for frame in batch.frames:
                await websocket.send_text(frame)
            if feed.progress_version != state["progress"]:
                state["progress"] = feed.progress_version
                await websocket.send_text(ws_progress(feed.progress))
            if state["cursor"] >= feed.next_seq and feed.terminal:
                await websocket.send_json({"type": "end", "status": feed.status})
                await websocket.close()
                return
            if sent or feed.progress_version != state["progress"]:
                continue  # more to read, or progress that came while the last send waited
            waiting = asyncio.create_task(_ride_or_wait(feeds, feed, state, direct))
            woken = asyncio.create_task(control.wait())
            await asyncio.wait({waiting, woken, reader}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiting, woken):
                task.cancel()
            control.clear()
        reader.result()  # a disconnect ends the loop through here
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _ride_or_wait(
    feeds: FeedHub, feed: TaskFeed, state: dict[str, Any], direct: Direct | None
) -> None:
    """Until something is due: the broadcaster writes new batches for us, or we wait for them."""
    if direct is not None:
        rider = Rider(state["cursor"], direct=direct, progress=state["progress"])
        seeks, state["rider"] = state["seeks"], rider
        try:
            if await ride(feeds, feed, state["filter"], rider, "ws", KEEPALIVE_S):
                return
        finally:
            # However it ends (a control frame cancels it): what was written moved the
            # cursor, unless the client has sought elsewhere meanwhile, and the progress.
            state["rider"] = None
            state["progress"] = rider.progress
            if state["seeks"] == seeks:
                state["cursor"] = rider.cursor
    await feed.wait_beyond(state["cursor"], KEEPALIVE_S)


async def _read_controls(
    websocket: WebSocket, state: dict[str, Any], control: asyncio.Event
) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        try:
            _apply_control(state, message)
        except HookagentError as exc:
            await websocket.send_json({"type": "error", "error": exc.code, "detail": exc.message})
            continue
        if (rider := state.get("rider")) is not None:
            rider.release()  # nothing more under the old filter or from the old place
        control.set()


def _apply_control(state: dict[str, Any], message: Message) -> None:
    """Seek or refilter from one control frame; a bad frame raises and changes nothing."""
    text = message.get("text")
    if text is None:
        raise InvalidControl("binary frames are not understood; send JSON text")
    body = parse_json(text)
    if not isinstance(body, dict):
        raise InvalidControl(CONTROL_SHAPES)
    seeks = state["seeks"]
    if "offset" in body:
        cursor, seeks = _offset(body["offset"]), seeks + 1
    else:
        cursor = state["cursor"]
    flt = state["filter"]
    if "filter" in body:
        raw = body["filter"] or {}
        if not isinstance(raw, dict):
            raise InvalidControl(f"filter must be an object; {CONTROL_SHAPES}")
        try:
            flt = LogFilter.build(
                stream=_list(raw.get("stream")),
                kind=_list(raw.get("kind")),
                level=_text(raw.get("level")),
                q=_text(raw.get("q")),
                regex_text=_text(raw.get("regex")),
            )
        except (ValueError, TypeError, ValidationError) as exc:
            raise InvalidControl(f"bad filter: {str(exc)[:200]}") from None
    state["cursor"], state["filter"], state["seeks"] = cursor, flt, seeks


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
