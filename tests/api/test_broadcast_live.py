"""The broadcaster against a real uvicorn server: direct transport writes, stalls, WebSocket."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI

from hookagent.api import broadcast
from hookagent.api.direct import http_chunk, ws_text_frame
from hookagent.api.frames import sse_progress, ws_progress
from hookagent.api.rider import Rider
from hookagent.models import TaskStatus
from hookagent.store import Store
from hookagent.store import feed as feed_module
from hookagent.store.feed import TaskFeed
from hookagent.store.logs import NewLine
from tests.api.test_stream import eventually, live, new_task, produce, read_sse, server
from tests.helpers import move_to

__all__ = ["live", "server"]  # fixtures, used by name

ID = re.compile(rb"(?:^|\n)id: (\d+)\n(?!event: )")


def riders(feed: TaskFeed) -> list[Rider]:
    """Every follower a broadcaster of the feed writes for right now."""
    groups = broadcast._BROADCASTS.get(feed) or {}
    return [rider for broadcaster in groups.values() for rider in broadcaster.riders]


async def all_riding(app: FastAPI, task_id: str, count: int) -> list[Rider]:
    """Wait until ``count`` followers of the task ride a broadcaster; those riders."""

    async def check() -> bool:
        feed = app.state.feeds._feeds.get(task_id)
        return feed is not None and len(riders(feed)) == count

    assert await eventually(check), "the followers never all rode the broadcaster"
    return riders(app.state.feeds._feeds[task_id])


def dechunk(raw: bytes) -> bytes:
    """An HTTP/1.1 chunked body (after the head) as the bytes it carries."""
    out, at = bytearray(), 0
    while True:
        end = raw.index(b"\r\n", at)
        size = int(raw[at:end], 16)
        if size == 0:
            return bytes(out)
        out += raw[end + 2 : end + 2 + size]
        at = end + 2 + size + 2


async def read_until(sock: socket.socket, marker: bytes, got: bytes) -> bytes:
    """Read a bare non-blocking socket onto ``got`` until ``marker`` is in it."""
    loop, buf = asyncio.get_running_loop(), bytearray(got)
    while marker not in buf:
        data = await loop.sock_recv(sock, 1 << 20)
        if not data:
            raise ConnectionError("closed before the marker")
        buf += data
    return bytes(buf)


async def test_two_hundred_followers_get_every_line_in_order_by_direct_writes(
    live: tuple[str, FastAPI], store: Store
) -> None:
    url, app = live
    tid = await new_task(store)
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] first")])
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        followers = [
            asyncio.create_task(read_sse(http, f"{url}/tasks/{tid}/logs/stream"))
            for _ in range(200)
        ]
        # Caught up after the first line, every one of them rides, written to directly.
        riding = await all_riding(app, tid, 200)
        assert all(r.direct is not None and r.direct.ready() for r in riding)
        await produce(store, tid, 1000, batch=50)
        results = await asyncio.gather(*followers)
    for events, kinds in results:
        assert [e["id"] for e in events if e.get("event") is None] == list(range(1001))
        assert kinds[-2:] == ["status", "end"]


async def test_a_stalled_follower_catches_up_without_loss_and_holds_up_no_other(
    live: tuple[str, FastAPI], store: Store
) -> None:
    url, app = live
    tid = await new_task(store)
    host, _, port = url.removeprefix("http://").partition(":")
    # A bare socket: nothing reads it while it stalls (an asyncio stream would read on into
    # its buffer), and a small receive buffer (fixed, so not grown by the kernel) fills soon.
    loop = asyncio.get_running_loop()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
    stalled.setblocking(False)
    await loop.sock_connect(stalled, (host, int(port)))
    await loop.sock_sendall(
        stalled, f"GET /tasks/{tid}/logs/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    )
    raw = await read_until(stalled, b": following", b"")
    head, _, raw = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    total, batch = 60_000, 1_000
    lags: list[float] = []
    riding: list[int] = []
    async with httpx.AsyncClient(timeout=60) as http:
        url_stream = f"{url}/tasks/{tid}/logs/stream"
        async with (
            http.stream("GET", url_stream) as first,
            http.stream("GET", url_stream) as second,
        ):
            lines = [first.aiter_lines(), second.aiter_lines()]

            async def reach(seq: int) -> None:
                """Read each fast follower's stream until it has the event ``seq``."""
                for it in lines:
                    async for line in it:
                        if line == f"id: {seq}":
                            break

            await all_riding(app, tid, 3)  # the stalled one too: it reads nothing from here
            # ~9 MB of events, more than the stalled socket's buffers hold: the server's
            # writes to it must stop while the other two go on at the pace of the batches.
            for start in range(0, total, batch):
                lines_out = [
                    NewLine("2026-01-01T00:00:00.000Z", "stdout", f"[stdout] line {i}")
                    for i in range(start, start + batch)
                ]
                sent = time.perf_counter()
                await store.logs.append(tid, lines_out)
                await reach(start + batch - 1)
                lags.append(time.perf_counter() - sent)
                riding.append(len(riders(app.state.feeds._feeds[tid])))
    await move_to(store, tid, TaskStatus.COMPLETED, reason="done")
    # The stalled follower reads again: everything, in order, then the end.
    try:
        raw = await asyncio.wait_for(read_until(stalled, b"\r\n0\r\n\r\n", raw), timeout=60)
    finally:
        stalled.close()
    body = dechunk(raw)
    assert body.endswith(b'event: end\ndata: {"status": "completed"}\n\n')
    assert [int(n) for n in ID.findall(body)] == list(range(total))
    # Its socket filled: the broadcaster handed it back to its own loop (and wrote on to
    # the others), which then waited in uvicorn's flow control.
    assert riding[0] == 3 and min(riding) == 2, riding
    lags.sort()
    # Each batch reached both fast followers within a second or two (a stall of theirs
    # would show as the whole catch-up, tens of seconds) on a shared 2-core machine.
    assert lags[int(len(lags) * 0.99)] < 2.0, lags[-5:]


async def test_websocket_followers_ride_and_a_control_frame_moves_no_line(
    live: tuple[str, FastAPI], store: Store
) -> None:
    url, app = live
    tid = await new_task(store)
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] first")])
    ws_url = url.replace("http://", "ws://") + f"/tasks/{tid}/logs/ws"

    async def follow(refilter_at: int | None) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        # The client offers permessage-deflate (websockets does by default); the direct
        # frames are uncompressed, which the extension allows.
        async with websockets.connect(ws_url) as ws:
            async for text in ws:
                message = json.loads(text)
                got.append(message)
                if message.get("seq") == refilter_at:
                    # The same entries under an equal-looking new filter: no line twice, none lost.
                    await ws.send(json.dumps({"filter": {"stream": ["stdout"]}}))
                if message["type"] == "end":
                    break
        return got

    followers = [asyncio.create_task(follow(None)), asyncio.create_task(follow(700))]
    riding = await all_riding(app, tid, 2)
    assert all(r.direct is not None for r in riding)
    await produce(store, tid, 2000, batch=50)
    results = await asyncio.gather(*followers)
    for got in results:
        assert [m["seq"] for m in got if m["type"] == "log"] == list(range(2001))
        assert [m["type"] for m in got[-2:]] == ["status", "end"]
        assert got[-1] == {"type": "end", "status": "completed"}


def ws_texts(raw: bytes) -> tuple[list[str], bytes]:
    """The text messages in unmasked server frames (pings skipped); the incomplete rest."""
    texts, at = [], 0
    while len(raw) - at >= 2:
        opcode, size, start = raw[at] & 0x0F, raw[at + 1] & 0x7F, at + 2
        if size == 126:
            size, start = int.from_bytes(raw[at + 2 : at + 4]), at + 4
        elif size == 127:
            size, start = int.from_bytes(raw[at + 2 : at + 10]), at + 10
        if len(raw) < start + size:
            break
        if opcode == 0x1:
            texts.append(raw[start : start + size].decode())
        at = start + size
    return texts, raw[at:]


async def test_a_stalled_websocket_follower_catches_up_without_loss(
    live: tuple[str, FastAPI], store: Store
) -> None:
    url, app = live
    tid = await new_task(store)
    host, _, port = url.removeprefix("http://").partition(":")
    loop = asyncio.get_running_loop()
    stalled = socket.socket()  # as for SSE above: a bare socket with a small receive buffer
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
    stalled.setblocking(False)
    await loop.sock_connect(stalled, (host, int(port)))
    # No permessage-deflate offered, so every frame is plain text to read here.
    handshake = (
        f"GET /tasks/{tid}/logs/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(stalled, handshake.encode())
    head, _, rest = (await read_until(stalled, b"\r\n\r\n", b"")).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    # Under uvicorn's ping timeout (20 s): the stalled socket answers no ping meanwhile.
    total, batch = 40_000, 1_000
    riding: list[int] = []
    ws_url = url.replace("http://", "ws://") + f"/tasks/{tid}/logs/ws"
    async with websockets.connect(ws_url, max_size=None) as fast:
        await all_riding(app, tid, 2)
        for start in range(0, total, batch):
            await store.logs.append(
                tid,
                [
                    NewLine("2026-01-01T00:00:00.000Z", "stdout", f"[stdout] line {i}")
                    for i in range(start, start + batch)
                ],
            )
            async for text in fast:
                if json.loads(text).get("seq") == start + batch - 1:
                    break
            riding.append(len(riders(app.state.feeds._feeds[tid])))
    await move_to(store, tid, TaskStatus.COMPLETED, reason="done")
    messages: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while not messages or messages[-1]["type"] != "end":
                data = await loop.sock_recv(stalled, 1 << 20)
                assert data, "the server closed the stalled socket"
                texts, rest = ws_texts(rest + data)
                messages += [json.loads(t) for t in texts]
    finally:
        stalled.close()
    assert riding[0] == 2 and min(riding) == 1, riding  # handed back once its socket filled
    assert [m["seq"] for m in messages if m["type"] == "log"] == list(range(total))
    assert messages[-1] == {"type": "end", "status": "completed"}


def http_chunks(raw: bytes) -> tuple[list[bytes], bytes]:
    """The complete HTTP/1.1 chunks in ``raw`` (after the head), each with its framing."""
    out, at = [], 0
    while (end := raw.find(b"\r\n", at)) >= 0:
        stop = end + 2 + int(raw[at:end], 16) + 2
        if len(raw) < stop:
            break
        out.append(raw[at:stop])
        at = stop
    return out, raw[at:]


def ws_raw_frames(raw: bytes) -> tuple[list[bytes], bytes]:
    """The complete unmasked server frames in ``raw``, each with its header."""
    out, at = [], 0
    while len(raw) - at >= 2:
        size, start = raw[at + 1] & 0x7F, at + 2
        if size == 126:
            size, start = int.from_bytes(raw[at + 2 : at + 4]), at + 4
        elif size == 127:
            size, start = int.from_bytes(raw[at + 2 : at + 10]), at + 10
        if len(raw) < start + size:
            break
        out.append(raw[at : start + size])
        at = start + size
    return out, raw[at:]


class RawFollower:
    """A follower on a bare socket, to see the exact bytes the server writes to it."""

    def __init__(self, sock: socket.socket, rest: bytes, framing: Any) -> None:
        self.sock = sock
        self._rest = rest
        self._framing = framing  # splits what came so far into whole units and the rest
        self.units: list[bytes] = []

    @classmethod
    async def open(cls, url: str, request: str, framing: Any) -> RawFollower:
        host, _, port = url.removeprefix("http://").partition(":")
        sock = socket.socket()
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, int(port)))
        await loop.sock_sendall(sock, request.replace("{host}", host).encode())
        head, _, rest = (await read_until(sock, b"\r\n\r\n", b"")).partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 101")), head
        return cls(sock, rest, framing)

    async def unit_with(self, marker: bytes) -> bytes:
        """The first whole chunk (or frame) so far with ``marker`` in it (waits for it)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(10):
            while True:
                units, self._rest = self._framing(self._rest)
                self.units += units
                for unit in self.units:
                    if marker in unit:
                        return unit
                data = await loop.sock_recv(self.sock, 1 << 20)
                assert data, "the server closed the stream"
                self._rest += data


SSE_GET = "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
# No permessage-deflate offered: the server's own frames are then plain text too.
WS_GET = (
    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.mark.parametrize("wire", ["sse", "ws"])
async def test_a_rider_gets_the_very_bytes_of_a_progress_event_a_lone_follower_writes(
    live: tuple[str, FastAPI], store: Store, monkeypatch: pytest.MonkeyPatch, wire: str
) -> None:
    monkeypatch.setattr(feed_module, "PROGRESS_EVERY_S", 0.0)  # every change goes out
    url, app = live
    tid = await new_task(store)
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] first")])
    if wire == "sse":
        request = SSE_GET.replace("{path}", f"/tasks/{tid}/logs/stream")
        framing, marker = http_chunks, b"event: progress\n"
    else:
        request = WS_GET.replace("{path}", f"/tasks/{tid}/logs/ws")
        framing, marker = ws_raw_frames, b'{"type":"progress"'
    opened: list[RawFollower] = []
    try:
        first = await RawFollower.open(url, request, framing)
        opened.append(first)
        [rider] = await all_riding(app, tid, 1)
        assert rider.direct is not None  # written to by the broadcaster, not through ``send``
        progress = {"phase": "plan", "tool_calls": {"Bash": 2}, "note": "é ✓ \u2028"}
        await store.tasks.save_progress(tid, progress)
        await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] second")])
        ridden = await first.unit_with(marker)
        # It never left: the same rider (one that came back would be a new one).
        assert riders(app.state.feeds._feeds[tid]) == [rider]

        # A follower arriving now writes this progress from its own loop, through ``send``
        # and uvicorn's own framing: the broadcaster's bytes are exactly those.
        lone = await RawFollower.open(url, request, framing)
        opened.append(lone)
        assert await lone.unit_with(marker) == ridden
        if wire == "sse":
            assert ridden == http_chunk(sse_progress(progress))
        else:
            assert ridden == ws_text_frame(ws_progress(progress))

        # Both ride now; the next change reaches both, by the broadcaster, and nobody leaves.
        both = await all_riding(app, tid, 2)
        progress["tool_calls"] = {"Bash": 3}
        await store.tasks.save_progress(tid, progress)
        await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] third")])
        again = [await f.unit_with(b'"Bash": 3' if wire == "sse" else b'"Bash":3') for f in opened]
        assert again[0] == again[1] != ridden
        assert set(riders(app.state.feeds._feeds[tid])) == set(both)
    finally:
        for follower in opened:
            follower.sock.close()
