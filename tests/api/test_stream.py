"""Live logs over long-poll, SSE and WebSocket against a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from fastapi import FastAPI
from redis.asyncio import Redis

from hookagent.api import create_app
from hookagent.models import NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.logs import NewLine
from tests.helpers import move_to


@pytest.fixture
async def live(settings: Settings, redis: Redis) -> AsyncIterator[tuple[str, FastAPI]]:
    """A real uvicorn server on a free loopback port; yields its base URL and app."""
    app = create_app(settings, redis=redis)
    # Bound and listening before uvicorn starts: early clients wait in the backlog, so
    # there is nothing to poll for.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    serving = asyncio.create_task(web.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{port}", app
    web.should_exit = True
    await serving
    sock.close()


@pytest.fixture
def server(live: tuple[str, FastAPI]) -> str:
    """The live server's base URL."""
    return live[0]


async def new_task(store: Store) -> str:
    new = NewTask(source="sentry", repository="acme/x", title="t", prompt="p")
    return (await store.tasks.create(new)).task_id


async def produce(store: Store, task_id: str, total: int, batch: int = 100) -> None:
    """Append ``total`` lines in batches, yielding to the loop between them, then finish."""
    for start in range(0, total, batch):
        lines = [
            NewLine("2026-01-01T00:00:00.000Z", "stdout", f"[stdout] line {i}")
            for i in range(start, min(total, start + batch))
        ]
        await store.logs.append(task_id, lines)
        await asyncio.sleep(0)
    await move_to(store, task_id, TaskStatus.COMPLETED, reason="done")


async def read_sse(
    http: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse an SSE stream into (events, event types); disconnect after ``stop_after`` events."""
    events: list[dict[str, Any]] = []
    kinds: list[str] = []
    async with http.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("event: "):
                event["event"] = line[7:]
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif line == "" and "data" in event:
                kinds.append(event.get("event", "message"))
                events.append(event)
                event = {}
                if kinds[-1] == "end" or (stop_after is not None and len(events) >= stop_after):
                    break
    return events, kinds


async def test_sse_resume_with_last_event_id_has_no_gap_or_duplicate(
    server: str, store: Store
) -> None:
    tid = await new_task(store)
    producing = asyncio.create_task(produce(store, tid, 3000))
    async with httpx.AsyncClient(timeout=30) as http:
        first, _ = await read_sse(http, f"{server}/tasks/{tid}/logs/stream", stop_after=1000)
        last = first[-1]["id"]
        rest, kinds = await read_sse(
            http, f"{server}/tasks/{tid}/logs/stream", headers={"Last-Event-ID": str(last)}
        )
    await producing
    logs = [e for e in first + rest if e.get("event") is None]
    assert [e["id"] for e in logs] == list(range(3000))
    assert [e["data"]["message"] for e in logs[:2]] == ["[stdout] line 0", "[stdout] line 1"]
    assert kinds[-2:] == ["status", "end"]
    assert rest[-2]["data"]["status"] == "completed" and rest[-1]["data"] == {"status": "completed"}


async def test_two_hundred_followers_all_get_every_line(
    server: str, store: Store, settings: Settings
) -> None:
    tid = await new_task(store)
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        followers = [
            asyncio.create_task(read_sse(http, f"{server}/tasks/{tid}/logs/stream"))
            for _ in range(200)
        ]
        await produce(store, tid, 500)
        results = await asyncio.gather(*followers)
    for events, kinds in results:
        assert [e["id"] for e in events if e.get("event") is None] == list(range(500))
        assert kinds[-1] == "end"


async def test_sse_filters_and_unknown_task(server: str, store: Store) -> None:
    tid = await new_task(store)
    await store.logs.append(
        tid,
        [
            NewLine("2026-01-01T00:00:00.000Z", "stdout", "[stdout] all good"),
            NewLine("2026-01-01T00:00:00.000Z", "stderr", "[stderr] Traceback: boom"),
        ],
    )
    await move_to(store, tid, TaskStatus.FAILED, reason="boom")
    async with httpx.AsyncClient(timeout=10) as http:
        events, kinds = await read_sse(http, f"{server}/tasks/{tid}/logs/stream?level=error")
        missing = await http.get(f"{server}/tasks/task-1-00/logs/stream")
    messages = [e["data"]["message"] for e in events if e.get("event") is None]
    assert messages == ["[stderr] Traceback: boom"]
    assert kinds == ["message", "status", "end"]
    assert missing.status_code == 404 and missing.json()["error"] == "task_not_found"


async def test_websocket_follow_seek_and_filter(server: str, store: Store) -> None:
    tid = await new_task(store)
    await produce(store, tid, 50, batch=10)
    ws_url = server.replace("http://", "ws://") + f"/tasks/{tid}/logs/ws?offset=40&q=line%204"
    async with websockets.connect(ws_url) as ws:
        got = [json.loads(message) async for message in ws]  # until the server closes
    assert [m["seq"] for m in got if m["type"] == "log"] == list(range(40, 50))
    assert [m["type"] for m in got[-2:]] == ["status", "end"]

    live = await new_task(store)
    async with websockets.connect(
        server.replace("http://", "ws://") + f"/tasks/{live}/logs/ws"
    ) as ws:
        await store.logs.append(
            live, [NewLine("t", "stdout", "[stdout] one"), NewLine("t", "stderr", "[stderr] two")]
        )
        first = json.loads(await ws.recv())
        assert first["message"] == "[stdout] one"
        await ws.send(json.dumps({"offset": 0, "filter": {"stream": ["stderr"]}}))
        again = json.loads(await ws.recv())
        assert (again["seq"], again["message"]) == (1, "[stderr] two")
        await ws.send(json.dumps({"filter": {"regex": "("}}))
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and "bad regex" in error["detail"]


async def test_long_poll_waits_for_the_next_entry(client: httpx.AsyncClient, store: Store) -> None:
    tid = await new_task(store)
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] first")])
    now = await client.get(f"/tasks/{tid}/logs", params={"follow": "true", "offset": 0})
    assert [e["message"] for e in now.json()["logs"]] == ["[stdout] first"]
    waiting = asyncio.create_task(
        client.get(f"/tasks/{tid}/logs", params={"follow": "true", "offset": 1, "wait": 20})
    )
    await asyncio.sleep(0.2)
    assert not waiting.done(), "nothing new yet: the request waits"
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] second")])
    body = (await waiting).json()
    assert [(e["seq"], e["message"]) for e in body["logs"]] == [(1, "[stdout] second")]
    assert body["next_offset"] == 2
    empty = await client.get(
        f"/tasks/{tid}/logs", params={"follow": "true", "offset": 2, "wait": 0.2}
    )
    assert empty.json()["logs"] == [] and empty.json()["next_offset"] == 2


async def test_filters_on_paging_report_the_cursor(client: httpx.AsyncClient, store: Store) -> None:
    tid = await new_task(store)
    lines = [NewLine("t", "stdout", f"[stdout] tick {i}") for i in range(3000)]
    lines[2500] = NewLine("t", "stderr", "[stderr] Error: disk full")
    await store.logs.append(tid, lines)
    body = (await client.get(f"/tasks/{tid}/logs", params={"q": "DISK", "limit": 10})).json()
    assert [e["seq"] for e in body["logs"]] == [2500]
    assert body["next_offset"] == 3000 and body["has_more"] is False
    by_regex = (
        await client.get(f"/tasks/{tid}/logs", params={"regex": r"tick 1\d{3}$", "limit": 5})
    ).json()
    assert [e["seq"] for e in by_regex["logs"]] == [1000, 1001, 1002, 1003, 1004]
    assert by_regex["next_offset"] == 1005
    for bad in ({"regex": "("}, {"regex": "x" * 300}, {"stream": "nope"}, {"level": "loud"}):
        response = await client.get(f"/tasks/{tid}/logs", params=bad)
        assert response.status_code == 422, bad


async def test_catastrophic_regex_is_422_not_a_hang(
    client: httpx.AsyncClient, store: Store
) -> None:
    tid = await new_task(store)
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] " + "a" * 40 + "!")])
    response = await client.get(f"/tasks/{tid}/logs", params={"regex": "(a|aa)+$"})
    assert response.status_code == 422
    assert "too expensive" in response.json()["detail"]


async def test_long_poll_loop_reads_thousands_of_lines_without_gaps(
    server: str, store: Store
) -> None:
    tid = await new_task(store)
    producing = asyncio.create_task(produce(store, tid, 3000))
    seen: list[int] = []
    async with httpx.AsyncClient(timeout=30) as http:
        cursor = 0
        while True:
            params: dict[str, str | int] = {
                "follow": "true",
                "offset": cursor,
                "limit": 700,
                "wait": 10,
            }
            body = (await http.get(f"{server}/tasks/{tid}/logs", params=params)).json()
            seen += [e["seq"] for e in body["logs"] if e.get("kind") != "status"]
            cursor = body["next_offset"]
            if any(e.get("status") == "completed" for e in body["logs"]):
                break
    await producing
    assert seen == list(range(3000))


async def test_websocket_reconnect_at_offset_has_no_gap(server: str, store: Store) -> None:
    tid = await new_task(store)
    producing = asyncio.create_task(produce(store, tid, 2000))
    base = server.replace("http://", "ws://") + f"/tasks/{tid}/logs/ws"
    seqs: list[int] = []
    async with websockets.connect(base) as ws:
        while len(seqs) < 700:
            message = json.loads(await ws.recv())
            if message["type"] == "log":
                seqs.append(message["seq"])
    async with websockets.connect(f"{base}?offset={seqs[-1] + 1}") as ws:
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "log":
                seqs.append(message["seq"])
            if message["type"] == "end":
                break
    await producing
    assert seqs == list(range(2000))


async def test_followers_share_one_redis_read_loop(server: str, store: Store, redis: Redis) -> None:
    async def xread_calls() -> int:
        stats = await redis.info("commandstats")
        return int(stats.get("cmdstat_xread", {}).get("calls", 0))

    tid = await new_task(store)
    limits = httpx.Limits(max_connections=120)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        followers = [
            asyncio.create_task(read_sse(http, f"{server}/tasks/{tid}/logs/stream"))
            for _ in range(100)
        ]
        before = await xread_calls()
        await produce(store, tid, 1000, batch=50)
        await asyncio.gather(*followers)
        used = await xread_calls() - before
    # 21 writes (20 batches and the final status) wake one shared loop: about one XREAD
    # each, not one per follower (which would be over 2,000). None at all would mean the
    # count measured nothing.
    assert 1 <= used <= 60, used


async def test_a_gone_client_stops_the_redis_loop(live: tuple[str, FastAPI], store: Store) -> None:
    url, app = live
    tid = await new_task(store)
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] hello")])
    feeds = app.state.feeds
    async with httpx.AsyncClient(timeout=10) as http:
        events, _ = await read_sse(http, f"{url}/tasks/{tid}/logs/stream", stop_after=1)
        assert events[0]["data"]["message"] == "[stdout] hello"
        assert tid in feeds._feeds
    # The client closed its connection: the server cancels the stream and, with no
    # follower left, the task's XREAD loop. There is no event to wait on from outside.
    async with asyncio.timeout(10):
        while tid in feeds._feeds:
            await asyncio.sleep(0.05)


def feed_loops(prefix: str = "feed-") -> list[asyncio.Task[Any]]:
    """Feed loop tasks still running in this event loop (the server runs in it too)."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(prefix) and not t.done()]


async def feed_clients(redis: Redis, settings: Settings) -> int:
    """Connections the app's feed client holds, told apart by their CLIENT SETNAME."""
    name = f"{settings.key_prefix}:feed"
    return sum(1 for c in await redis.client_list() if c.get("name") == name)


async def eventually(check: Any, timeout: float = 10) -> bool:
    """Whether ``check()`` became true within ``timeout``; the server's cleanup has no signal."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    return bool(await check())


@pytest.mark.slow
async def test_finished_and_gone_followers_leave_no_loop_or_connection(
    live: tuple[str, FastAPI], store: Store, redis: Redis, settings: Settings
) -> None:
    url, app = live
    done, running = await new_task(store), await new_task(store)
    await produce(store, done, 3)
    await store.logs.append(running, [NewLine("t", "stdout", "[stdout] working")])
    before = await feed_clients(redis, settings)
    async with httpx.AsyncClient(timeout=10) as http:
        for i in range(100):
            await http.get(f"{url}/tasks/{done}/logs", params={"follow": "true", "wait": 3})
            await http.get(
                f"{url}/tasks/{running}/logs",
                params={"follow": "true", "offset": 1, "wait": 0.05},
            )
            if i % 10 == 0:  # SSE too: to the end of a finished task, and away mid-stream
                await read_sse(http, f"{url}/tasks/{done}/logs/stream")
                await read_sse(http, f"{url}/tasks/{running}/logs/stream", stop_after=1)

    async def settled() -> bool:
        return not feed_loops() and await feed_clients(redis, settings) <= before + 1

    if not await eventually(settled):
        after = await feed_clients(redis, settings)
        pytest.fail(f"{len(feed_loops())} loops left; feed connections {before} -> {after}")
    assert not app.state.feeds._loops and not app.state.feeds._feeds


@pytest.mark.slow
async def test_long_poll_past_the_socket_timeout_logs_no_error(
    client: httpx.AsyncClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    tid = await new_task(store)
    params: dict[str, str | int] = {"follow": "true", "wait": 20}
    waiting = asyncio.create_task(client.get(f"/tasks/{tid}/logs", params=params))
    await asyncio.sleep(6)  # past redis-py 8's 5 s socket timeout; nothing to wait on
    assert not waiting.done()
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] late")])
    body = (await waiting).json()
    assert loop.time() - sent < 1.0
    assert [e["message"] for e in body["logs"]] == ["[stdout] late"]
    assert [r.getMessage() for r in caplog.records] == []


async def test_websocket_bad_control_frames_get_an_error_and_the_socket_stays(
    server: str, store: Store
) -> None:
    tid = await new_task(store)
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] hello")])
    url = server.replace("http://", "ws://") + f"/tasks/{tid}/logs/ws"
    bad: list[str | bytes] = [
        "not json",
        b"\x00\x01binary",
        json.dumps({"filter": "x"}),
        json.dumps([1, 2]),
        "5",
        "[" * 1000 + "]" * 1000,
        json.dumps({"offset": -1}),
        json.dumps({"offset": "x" * 500}),
    ]
    async with websockets.connect(url) as ws:
        assert json.loads(await ws.recv())["message"] == "[stdout] hello"
        for frame in bad:
            await ws.send(frame)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "error" and reply["error"] and reply["detail"], frame
            assert len(reply["detail"]) < 300
        await ws.send(json.dumps({"offset": 0}))  # still serving
        again = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (again["type"], again["seq"]) == ("log", 0)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("offset=-1", 4422),
        ("offset=x", 4422),
        ("offset=99999999999999999999999", 4422),
        ("level=loud", 4422),
        ("regex=(", 4422),
    ],
)
async def test_websocket_bad_query_is_an_error_then_a_close_code(
    server: str, store: Store, query: str, code: int
) -> None:
    tid = await new_task(store)
    url = server.replace("http://", "ws://") + f"/tasks/{tid}/logs/ws?{query}"
    async with websockets.connect(url) as ws:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    assert reply["type"] == "error" and reply["error"] and reply["detail"]
    assert ws.close_code == code and ws.close_reason


async def test_websocket_unknown_task_closes_4404(server: str) -> None:
    url = server.replace("http://", "ws://") + "/tasks/task-1-00/logs/ws"
    async with websockets.connect(url) as ws:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    assert reply == {"type": "error", "error": "task_not_found", "detail": reply["detail"]}
    assert ws.close_code == 4404 and ws.close_reason == "task_not_found"


async def test_a_follower_that_stops_reading_holds_up_no_other(server: str, store: Store) -> None:
    tid = await new_task(store)
    host, _, port = server.removeprefix("http://").partition(":")
    stalled_reader, stalled = await asyncio.open_connection(host, int(port))
    stalled.write(f"GET /tasks/{tid}/logs/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await stalled_reader.readuntil(b": following")  # connected; it reads nothing from here
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            reading = asyncio.create_task(read_sse(http, f"{server}/tasks/{tid}/logs/stream"))
            # ~15 MB of events: far more than the stalled socket's buffers can hold, so
            # the server's writes to it block while the other follower must go on.
            await produce(store, tid, 100_000, batch=2000)
            events, kinds = await reading
    finally:
        stalled.close()
    assert [e["id"] for e in events if e.get("event") is None] == list(range(100_000))
    assert kinds[-1] == "end"


async def test_followers_gone_mid_broadcast_leave_no_broadcaster(
    live: tuple[str, FastAPI], store: Store
) -> None:
    url, app = live
    tid = await new_task(store)
    await store.logs.append(tid, [NewLine("t", "stdout", "[stdout] first")])
    async with httpx.AsyncClient(timeout=10) as http:

        async def follow() -> list[dict[str, Any]]:
            events, _ = await read_sse(http, f"{url}/tasks/{tid}/logs/stream", stop_after=3)
            return events

        followers = [asyncio.create_task(follow()) for _ in range(20)]
        # Caught up after the first line, the followers ride the broadcaster for the rest.
        async with asyncio.timeout(10):
            while not feed_loops("broadcast-"):
                await asyncio.sleep(0.02)
        for i in range(2):
            await store.logs.append(tid, [NewLine("t", "stdout", f"[stdout] more {i}")])
        got = await asyncio.gather(*followers)
    assert all([e["id"] for e in events] == [0, 1, 2] for events in got)

    async def settled() -> bool:
        return not feed_loops("broadcast-") and not feed_loops()

    assert await eventually(settled), "a broadcaster or feed loop outlived its followers"
    assert not app.state.feeds._feeds
