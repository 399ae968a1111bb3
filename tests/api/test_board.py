"""The board's endpoints: /tasks/events (SSE, resumable), /tasks/counts, /ui/meta, UI files."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from hookagent.api import create_app
from hookagent.models import TRANSITIONS, Action, NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import move_to


@pytest.fixture
async def server(settings: Settings, redis: Redis) -> AsyncIterator[str]:
    """A real uvicorn server: SSE needs a real connection to be cut and resumed."""
    app = create_app(settings, redis=redis)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(web.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    web.should_exit = True
    await serving
    sock.close()


async def new_task(store: Store, title: str = "t") -> str:
    new = NewTask(source="sentry", repository="acme/x", title=title, prompt="p")
    return (await store.tasks.create(new)).task_id


async def read_events(
    http: httpx.AsyncClient, count: int, after: str | None = None
) -> tuple[list[dict[str, Any]], list[str], str]:
    """The first ``count`` ``task`` events after ``after``, their ids, and the greeting's id
    (the cursor the server starts from); ``count`` 0 returns after the greeting."""
    events: list[dict[str, Any]] = []
    ids: list[str] = []
    greeting = ""
    headers = {"Last-Event-ID": after} if after else {}
    async with http.stream("GET", "/tasks/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        block: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line:
                name, _, value = line.partition(":")
                block[name] = value.strip()
                continue
            if block.get("event") == "task":
                events.append(json.loads(block["data"]))
                ids.append(block["id"])
            elif "id" in block and not greeting:
                greeting = block["id"]
            block = {}
            if len(events) == count:
                break
    return events, ids, greeting


async def test_events_stream_creations_and_changes_and_resumes(server: str, store: Store) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        _, _, start = await read_events(http, 0)
        task_id = await new_task(store)
        await move_to(store, task_id, TaskStatus.DISCOVERING)
        await move_to(store, task_id, TaskStatus.PENDING_APPROVAL)
        # Reconnecting with Last-Event-ID gets exactly what came after it, in order.
        events, ids, _ = await read_events(http, 3, after=start)
        assert [(e["task_id"], e["status"], e["previous"]) for e in events] == [
            (task_id, "queued", ""),
            (task_id, "discovering", "queued"),
            (task_id, "pending_approval", "discovering"),
        ]
        assert events[1]["at"]
        # A follower waiting at the end is woken by the next change (the shared XREAD loop).
        waiting = asyncio.create_task(read_events(http, 1, after=ids[-1]))
        other = asyncio.create_task(read_events(http, 1, after=ids[-1]))
        await move_to(store, task_id, TaskStatus.CANCELLED, reason="stop")
        for reader in (waiting, other):
            (event,), _, _ = await asyncio.wait_for(reader, 10)
            assert event == {
                "task_id": task_id,
                "status": "cancelled",
                "previous": "pending_approval",
                "at": event["at"],
            }


async def test_counts_per_status(client: httpx.AsyncClient, store: Store) -> None:
    first, second = await new_task(store), await new_task(store)
    await new_task(store)
    await move_to(store, first, TaskStatus.FAILED)
    await move_to(store, second, TaskStatus.PENDING_APPROVAL)
    body = (await client.get("/tasks/counts")).json()
    assert body["total"] == 3
    assert body["counts"]["queued"] == 1
    assert body["counts"]["failed"] == 1
    assert body["counts"]["pending_approval"] == 1
    assert set(body["counts"]) == {s.value for s in TaskStatus}


async def test_list_rows_carry_cost_and_result(client: httpx.AsyncClient, store: Store) -> None:
    task_id = await new_task(store)
    fields = {"total_cost_usd": "0.25", "pr_url": "https://example.invalid/pr/1"}
    await move_to(store, task_id, TaskStatus.COMPLETED, fields=fields)
    (row,) = (await client.get("/tasks/")).json()["tasks"]
    assert row["total_cost_usd"] == 0.25
    assert row["pr_url"] == "https://example.invalid/pr/1"


async def test_ui_meta_mirrors_the_transition_table(client: httpx.AsyncClient) -> None:
    meta = (await client.get("/ui/meta")).json()
    assert meta["statuses"] == [s.value for s in TaskStatus]
    assert meta["actions"]["approve"] == ["pending_approval"]
    assert set(meta["actions"]["cancel"]) == {s.value for s in TRANSITIONS[Action.CANCEL].allowed}
    retry = TRANSITIONS[Action.RETRY_PLAN].allowed | TRANSITIONS[Action.RETRY_EXECUTE].allowed
    assert set(meta["actions"]["retry"]) == {s.value for s in retry}


@pytest.mark.parametrize("path", ["/", "/ui/tasks/task-1-abc", "/ui/queue"])
async def test_pages_carry_a_strict_csp(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    # No inline script or style: everything is a file of ours.
    assert "<script>" not in response.text and "style=" not in response.text
    assert "<style" not in response.text and "http" not in response.text.replace("http-equiv", "")


async def test_assets_are_served_and_nothing_else(client: httpx.AsyncClient) -> None:
    js = await client.get("/ui/static/js/api.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert js.headers["x-content-type-options"] == "nosniff"
    css = await client.get("/ui/static/css/app.css")
    assert css.headers["content-type"].startswith("text/css")
    for bad in ("/ui/static/../routes/ui.py", "/ui/static/%2e%2e/keys.py", "/ui/static/nope.js"):
        assert (await client.get(bad)).status_code == 404
