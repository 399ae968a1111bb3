"""The lean path answers exactly as the declared routes do, and counts what they count."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.types import ASGIApp

from hookagent.api import create_app
from hookagent.api.access_log import AccessLog
from hookagent.models import NewTask, utc_iso
from hookagent.services.intake import Created, Intake
from hookagent.settings import Settings
from hookagent.store import NewLine, Store
from tests.helpers import FIXTURES, app_client

SECRET = "front-test-sentry-secret"
ALERT = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())


@asynccontextmanager
async def two_ways(settings: Settings, redis: Redis) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two apps on two prefixes: one entered through its front, one past it (declared routes)."""
    clients = []
    async with asyncio.timeout(60):
        apps = [
            create_app(settings.model_copy(update={"key_prefix": f"{settings.key_prefix}-{n}"}))
            for n in ("lean", "declared")
        ]
        lean, declared = apps
        assert declared.front is not None
        entries: list[ASGIApp] = [lean, declared.front.rest]
        async with lean.router.lifespan_context(lean), declared.router.lifespan_context(declared):
            for entry in entries:
                transport = httpx.ASGITransport(app=entry, client=("127.0.0.1", 123))
                clients.append(httpx.AsyncClient(transport=transport, base_url="http://h"))
            try:
                yield clients
            finally:
                for http in clients:
                    await http.aclose()


def signed(payload: dict[str, Any], *, secret: str = SECRET) -> dict[str, Any]:
    """A Sentry delivery's request arguments, signed with ``secret``."""
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "sentry-hook-resource": "event_alert",
        "sentry-hook-signature": signature,
    }
    return {"content": body, "headers": headers}


def alert(issue: str) -> dict[str, Any]:
    """The event alert fixture for another incident."""
    payload: dict[str, Any] = json.loads(json.dumps(ALERT))
    payload["data"]["event"]["issue_id"] = issue
    return payload


def seen(response: httpx.Response) -> tuple[int, str, str | None, Any]:
    """What a client sees, task ids aside (each app makes its own)."""
    body = response.json()
    if isinstance(body, dict) and "task_id" in body:
        body["task_id"] = "task-…"
    return (
        response.status_code,
        response.headers["content-type"],
        response.headers.get("retry-after"),
        body,
    )


async def test_the_lean_path_answers_as_the_declared_routes(
    settings: Settings, redis: Redis
) -> None:
    """Probes, a new task, its duplicate, refusals, the rate limit: the same answers each way."""
    limited = settings.model_copy(
        update={"sentry_client_secret": SecretStr(SECRET), "rate_limit": 3}
    )
    issue = uuid.uuid4().hex
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/healthz", {}),
        ("GET", "/readyz", {}),
        ("POST", "/webhooks/sentry", signed(alert(issue))),
        ("POST", "/webhooks/sentry/", signed(alert(issue))),  # the same incident: a duplicate
        ("POST", "/webhooks/sentry", signed(alert("x"), secret="wrong")),
        ("POST", "/webhooks/sentry", {"content": b'{"id": ', "headers": {"x": "y"}}),
        ("POST", "/webhooks/sentry?agent=nobody", signed(alert("y"))),  # 422 from FastAPI
        ("POST", "/webhooks/sentry?agent=codex", signed(alert(uuid.uuid4().hex))),
        ("POST", "/webhooks/sentry", signed(alert(uuid.uuid4().hex))),  # over the rate: 429
    ]
    async with two_ways(limited, redis) as (lean, declared):
        for method, path, options in requests:
            answers = [await http.request(method, path, **options) for http in (lean, declared)]
            assert seen(answers[0]) == seen(answers[1]), (method, path)
    assert seen(answers[0])[:3] == (429, "application/json", seen(answers[0])[2])
    assert answers[0].headers["retry-after"].isdigit()
    counts = []
    for way in ("lean", "declared"):
        store = Store.build(
            redis, limited.model_copy(update={"key_prefix": f"{limited.key_prefix}-{way}"})
        )
        counts.append((await store.metrics.snapshot()).webhooks)
        keys = [k async for k in redis.scan_iter(match=f"{limited.key_prefix}-{way}:*")]
        if keys:
            await redis.delete(*keys)
    assert counts[0] == counts[1]
    assert counts[0][("sentry", "created")] == 2 and counts[0][("sentry", "rate_limited")] == 1


async def test_a_new_task_made_in_one_trip_is_whole(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Hash, history, marks, indexes, planning job, outbox event and board entry, all at once."""
    response = await client.post("/webhooks/sentry", json=alert("one-trip"))
    assert response.status_code == 202, response.text
    tid = response.json()["task_id"]
    task = await store.tasks.get(tid)
    assert task.status == "queued" and [h.status for h in await store.tasks.history(tid)] == [
        "queued"
    ]
    delivery = f"one-trip:{ALERT['action']}"
    assert await store.refs.seen("sentry", delivery=delivery, ref="one-trip") == (
        tid,
        tid,
    )
    assert [t.task_id for t in await store.tasks.list(status=task.status, limit=5)] == [tid]
    await store.jobs.ensure_group()
    job = await store.jobs.claim("test", block_ms=100)
    assert job is not None and job.task_id == tid
    redis: Any = store.redis
    outbox = await redis.xrange(store.keys.outbox())
    assert [fields["event"] for _, fields in outbox] == ["created"]
    board = await redis.xrange(store.keys.events())
    assert [(f["task_id"], f["status"]) for _, f in board] == [(tid, "queued")]
    assert await store.tasks.effects.unsettled(0, 10) == []
    again = await client.post("/webhooks/sentry", json=alert("one-trip"))
    assert again.json()["duplicate"] is True and again.json()["task_id"] == tid


async def test_a_log_page_is_served_lean_as_the_declared_route_serves_it(
    settings: Settings, redis: Redis
) -> None:
    """Pages, refusals by the viewer check, bad values and filters: the same answers each way."""
    viewer, operator = "front-viewer-token-0123456789abcdef", "front-ops-token-0123456789abcdef"
    tokens = SecretStr(f"viewer:{viewer},operator:ops:{operator}")
    guarded = settings.model_copy(update={"api_tokens": tokens})
    as_viewer = {"authorization": f"Bearer {viewer}"}
    tids, stamp = [], utc_iso()
    for way in ("lean", "declared"):
        store = Store.build(
            redis, guarded.model_copy(update={"key_prefix": f"{guarded.key_prefix}-{way}"})
        )
        task = await store.tasks.create(
            NewTask(source="t", repository="o/r", title="t", prompt="p"), task_id="task-1-front"
        )
        rows = [NewLine(stamp, "stdout", f"line {n} \u00e9", "text") for n in range(250)]
        await store.logs.append(task.task_id, rows, attempt=1)
        tids.append(task.task_id)
    path = f"/tasks/{tids[0]}/logs"
    requests: list[tuple[str, dict[str, str]]] = [
        (path, as_viewer),
        (f"{path}?offset=120&limit=50", as_viewer),
        (f"{path}?limit=-1&offset=5", as_viewer),
        (f"{path}?offset=999", as_viewer),
        (f"{path}?limit=0", as_viewer),  # 422 (PayloadError) from the declared route
        (f"{path}?offset=-1", as_viewer),  # 422 from FastAPI's validation
        (f"{path}?q=line%201", as_viewer),  # a filter: the declared route
        (f"{path}?offset=1&offset=2", as_viewer),
        ("/tasks/task-unknown/logs", as_viewer),
        (path, {}),  # no token: 401 with its challenge
        (path, {"authorization": "Bearer nope"}),
    ]
    async with two_ways(guarded, redis) as (lean, declared):
        for target, headers in requests:
            answers = [await http.get(target, headers=headers) for http in (lean, declared)]
            assert answers[0].status_code == answers[1].status_code, target
            assert answers[0].json() == answers[1].json(), target
            for name in ("content-type", "www-authenticate"):
                assert answers[0].headers.get(name) == answers[1].headers.get(name), target
    first = (await lean_page(guarded, redis, path, as_viewer)).json()
    assert [e["seq"] for e in first["logs"]] == list(range(100))
    assert first["logs"][0] == {
        "seq": 0,
        "timestamp": stamp,
        "stream": "stdout",
        "message": "line 0 \u00e9",
        "attempt": 1,
        "kind": "text",
        "status": None,
        "raw": None,
    }
    assert (first["total"], first["has_more"], first["next_offset"]) == (250, True, 100)
    for way in ("lean", "declared"):
        keys = [k async for k in redis.scan_iter(match=f"{guarded.key_prefix}-{way}:*")]
        if keys:
            await redis.delete(*keys)


async def lean_page(
    settings: Settings, redis: Redis, path: str, headers: dict[str, str]
) -> httpx.Response:
    """One GET through a fresh app's front, on the lean side's prefix."""
    lean = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}-lean"})
    async with app_client(lean, redis) as http:
        return await http.get(path, headers=headers)


async def test_a_task_made_in_one_trip_reads_back_as_made(store: Store, settings: Settings) -> None:
    """Every field the one-trip script stores reads back as the task made (any text)."""
    new = NewTask(
        source="sentry",
        repository="acme/payments-api",
        title='émoji 🚀 "quoted" \\ back\nslash\t\x01',
        prompt="p" * 5000 + " ünïcode",
        external_id="one-trip-text",
        labels=["a", "ß"],
    )
    outcome = await Intake(store, settings).new_task(new, delivery="d-1", signed=True)
    assert isinstance(outcome, Created)
    assert await store.tasks.get(outcome.task.task_id) == outcome.task


async def test_every_http_request_gets_one_access_line(settings: Settings, redis: Redis) -> None:
    """Lean, declared and refused requests each leave one line: status, no secret value."""
    out = io.StringIO()
    access = AccessLog(out)
    app = create_app(settings, redis=redis, access=access)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
            lean = await http.get("/healthz", params={"token": "s3cret", "x": "1"})
            declared = await http.get("/tasks/task-unknown")
            refused = await http.post("/tasks/t/cancel", headers={"origin": "http://evil.test"})
    access.flush()
    assert [lean.status_code, declared.status_code, refused.status_code] == [200, 404, 403]
    assert out.getvalue().splitlines() == [
        f'INFO:     [{os.getpid()}] 127.0.0.1:123 - "GET /healthz?token=[REDACTED]&x=1 '
        'HTTP/1.1" 200 OK',
        f'INFO:     [{os.getpid()}] 127.0.0.1:123 - "GET /tasks/task-unknown HTTP/1.1" '
        "404 Not Found",
        f'INFO:     [{os.getpid()}] 127.0.0.1:123 - "POST /tasks/t/cancel HTTP/1.1" 403 Forbidden',
    ]
