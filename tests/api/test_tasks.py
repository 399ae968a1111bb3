"""Task endpoints in the seed's shapes, and their errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from hookagent.api import create_app
from hookagent.errors import TaskNotFound
from hookagent.models import LogStream, NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.logs import NewLine
from tests.helpers import app_client, move_to
from tests.review_rounds import PENDING_BODY, PUSHED, REJECTED, seed_rounds


async def seeded(store: Store, lines: int = 45, *, task_id: str | None = None) -> str:
    new = NewTask(source="sentry", repository="acme/x", title="Boom", prompt="ctx")
    task = await store.tasks.create(new, task_id=task_id)
    batch = [
        NewLine("2026-01-24T10:00:00.000Z", "stdout", f"[stdout] line {i}") for i in range(lines)
    ]
    await store.logs.append(task.task_id, batch)
    return task.task_id


async def test_logs_page_matches_the_seed(client: httpx.AsyncClient, store: Store) -> None:
    tid = await seeded(store)
    body = (await client.get(f"/tasks/{tid}/logs", params={"limit": 10, "offset": 40})).json()
    assert set(body) == {"task_id", "logs", "offset", "limit", "total", "has_more", "next_offset"}
    assert (body["offset"], body["limit"], body["total"], body["has_more"]) == (40, 10, 45, False)
    assert [e["seq"] for e in body["logs"]] == [40, 41, 42, 43, 44]
    entry = body["logs"][0]
    assert entry["timestamp"] == "2026-01-24T10:00:00.000Z"
    assert entry["message"] == "[stdout] line 40" and entry["stream"] == LogStream.STDOUT
    first = (await client.get(f"/tasks/{tid}/logs")).json()
    assert (len(first["logs"]), first["has_more"]) == (45, False)
    some = (await client.get(f"/tasks/{tid}/logs", params={"limit": 20})).json()
    assert some["has_more"] is True
    everything = (await client.get(f"/tasks/{tid}/logs", params={"limit": -1})).json()
    assert len(everything["logs"]) == 45


@pytest.mark.parametrize(
    "params", [{"offset": -1}, {"limit": 0}, {"limit": 10_001}, {"limit": -2}, {"offset": "x"}]
)
async def test_bad_paging_is_422(
    client: httpx.AsyncClient, store: Store, params: dict[str, int | str]
) -> None:
    tid = await seeded(store, 1)
    response = await client.get(f"/tasks/{tid}/logs", params=params)
    assert response.status_code == 422
    assert "error" in response.json()


async def test_unknown_task_is_404_everywhere(client: httpx.AsyncClient) -> None:
    for path in ("/tasks/task-1-ff", "/tasks/task-1-ff/status", "/tasks/task-1-ff/logs"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "task_not_found"


async def test_status_and_details(client: httpx.AsyncClient, store: Store) -> None:
    tid = await seeded(store, 3)
    await move_to(store, tid, TaskStatus.FAILED, reason="boom", fields={"error": "boom"})
    status = (await client.get(f"/tasks/{tid}/status")).json()
    assert status["status"] == "failed"
    meta = status["metadata"]
    assert (meta["status"], meta["queue"], meta["error"]) == ("failed", "planning-queue", "boom")
    assert meta["updated_at"].endswith("Z") and "plan" in meta
    detail = (await client.get(f"/tasks/{tid}")).json()
    assert [h["status"] for h in detail["history"]] == ["queued", "failed"]
    assert detail["history"][1]["reason"] == "boom"
    assert (detail["source"], detail["repository"], detail["log_total"]) == ("sentry", "acme/x", 4)


async def test_list_newest_first_with_status_filter(
    client: httpx.AsyncClient, store: Store
) -> None:
    # Ids carry the creation time: spelled out, the order cannot hang on a clock tick, and
    # b is stored before a, so insertion order would not pass for newest first.
    ms = time.time_ns() // 1_000_000
    a, b, c = (f"task-{ms + n}-{letter * 12}" for n, letter in enumerate("abc"))
    for tid in (b, a, c):
        await seeded(store, 0, task_id=tid)
    await move_to(store, a, TaskStatus.FAILED)
    await move_to(store, c, TaskStatus.FAILED)
    for path in ("/tasks/", "/tasks"):
        listed = (await client.get(path)).json()
        assert [t["task_id"] for t in listed["tasks"]] == [c, b, a]
    failed = (await client.get("/tasks/", params={"status": "failed"})).json()
    assert [t["task_id"] for t in failed["tasks"]] == [c, a]
    bad = await client.get("/tasks/", params={"status": "sleeping"})
    assert bad.status_code == 422


async def test_healthz_and_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "redis": "ok"}
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200
    assert "/webhooks/sentry" in (await client.get("/openapi.json")).json()["paths"]


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_redis_down_is_503_json(settings: Settings) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True, socket_connect_timeout=1)
    async with app_client(settings, dead) as http:
        for path in ("/healthz", "/tasks/", "/tasks/task-1-aa/logs"):
            response = await http.get(path)
            assert response.status_code == 503, path
            assert response.json()["error"] == "store_unavailable"
    await dead.aclose()


async def test_huge_offset_is_422_without_internals(
    client: httpx.AsyncClient, store: Store
) -> None:
    tid = await seeded(store, 1)
    offsets: list[dict[str, str | int]] = [{"offset": "9" * 23}, {"offset": 2**53 + 1}]
    for params in offsets:
        response = await client.get(f"/tasks/{tid}/logs", params=params)
        assert response.status_code == 422, response.text
        assert "XRANGE" not in response.text and "hktest" not in response.text
    follow: dict[str, str | int] = {"offset": "9" * 23, "follow": "true", "wait": 0}
    assert (await client.get(f"/tasks/{tid}/logs", params=follow)).status_code == 422
    stream = await client.get(f"/tasks/{tid}/logs/stream", params={"offset": 2**60})
    assert stream.status_code == 422
    await move_to(store, tid, TaskStatus.FAILED)
    resume = {"Last-Event-ID": "9" * 30}  # not a seq we could have sent: start over
    async with client.stream("GET", f"/tasks/{tid}/logs/stream", headers=resume) as sse:
        text = (await sse.aread()).decode()
    assert sse.status_code == 200 and "id: 0\n" in text and "event: end" in text


async def test_an_internal_error_quotes_no_redis_command_or_key(
    store: Store, redis: Redis, settings: Settings
) -> None:
    tid = await seeded(store, 1)
    key = store.tasks._keys.task(tid)
    await redis.delete(key)
    await redis.set(key, "not a hash")  # real damage: WRONGTYPE from Redis
    app = create_app(settings, redis=redis)
    async with app.router.lifespan_context(app):
        # The server answers, then re-raises for its log: this transport must not re-raise.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hookagent") as http:
            response = await http.get(f"/tasks/{tid}")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert body["detail"] == "internal error; see the server log"
    assert set(body) <= {"error", "detail", "request_id"}
    assert "WRONGTYPE" not in response.text and settings.key_prefix not in response.text


async def test_a_huge_unknown_id_is_not_echoed_back(
    client: httpx.AsyncClient, store: Store
) -> None:
    with pytest.raises(TaskNotFound) as raised:
        await store.tasks.get("task-" + "x" * 100_000)
    assert len(raised.value.message) < 200
    with pytest.raises(TaskNotFound) as raised:
        await store.logs.read("task-" + "x" * 100_000, offset=0, limit=1)
    assert len(raised.value.message) < 200
    huge = "task-" + "x" * 60_000  # httpx refuses URLs of 64 KiB and more
    for path in (f"/tasks/{huge}", f"/tasks/{huge}/logs", f"/tasks/{huge}/status"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "task_not_found"
        assert len(response.content) < 400, len(response.content)


async def test_the_details_show_the_review_rounds_and_what_waits(
    settings: Settings, redis: Redis, store: Store, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[repo."acme/x"]\nmax_rounds = 3\n')
    token = "ghp_" + "A1b2C3d4" * 5  # pasted into a comment: shown redacted
    body = f"<img src=x onerror=alert(1)> use {token}\n" + "x" * 3000
    tid = await seeded(store, 1)
    other = NewTask(source="sentry", repository="acme/y", title="t", prompt="p")
    bare = (await store.tasks.create(other)).task_id  # no rounds, the default policy
    await seed_rounds(store, tid, inline_body=body)
    async with app_client(settings.model_copy(update={"policy_file": policy}), redis) as http:
        rounds = (await http.get(f"/tasks/{tid}")).json()["rounds"]
        empty = (await http.get(f"/tasks/{bare}")).json()["rounds"]
    assert (rounds["ran"], rounds["max_rounds"]) == (2, 3)
    first, second = rounds["finished"]
    assert (first["number"], first["kind"], first["item_count"]) == (1, "review", 2)
    assert first["outcome"] == f"pushed {PUSHED[:12]}; test passed"
    assert (first["commit"], first["test"], first["error"]) == (PUSHED, "passed", None)
    assert first["finished_at"].endswith("Z")
    inline, review = first["items"]
    assert (inline["kind"], inline["author"], inline["path"], inline["line"]) == (
        "inline", "rev-alice", "src/cart.py", 12,
    )  # fmt: skip
    # The text as written (JSON is no HTML: escaping is the page's), redacted and capped.
    assert inline["body"].startswith("<img src=x onerror=alert(1)> use [REDACTED:")
    assert token not in json.dumps(rounds) and token[:12] not in inline["body"]
    assert (len(inline["body"]), inline["truncated"]) == (1000, True)
    assert (review["body"], review["truncated"]) == ("Handle the empty cart too", False)
    assert (second["number"], second["kind"], second["item_count"]) == (2, "ci", 1)
    assert (second["commit"], second["test"], second["error"]) == (None, None, REJECTED)
    assert second["outcome"] == f"failed: {REJECTED}"
    assert second["items"][0]["author"] == "tests"  # the failed check
    assert (rounds["pending_count"], rounds["running_count"], rounds["running"]) == (1, 0, [])
    assert [(i["kind"], i["body"]) for i in rounds["pending"]] == [("comment", PENDING_BODY)]
    assert empty == {
        "ran": 0, "max_rounds": 5, "finished": [], "running": [], "running_count": 0,
        "pending": [], "pending_count": 0,
    }  # fmt: skip


async def test_a_running_round_shows_its_items_and_many_items_are_cut(
    client: httpx.AsyncClient, store: Store
) -> None:
    tid = await seeded(store, 1)
    for n in range(25):
        item = {"kind": "inline", "author": "a\x1b[31mb", "body": f"item {n}\x1b[2J", "line": n}
        await store.reviews.add(tid, item, feedback_id=f"review-comment:{n}", now_ms=1)
    await store.reviews.take(tid)
    rounds = (await client.get(f"/tasks/{tid}")).json()["rounds"]
    assert (rounds["ran"], rounds["running_count"], len(rounds["running"])) == (1, 25, 20)
    shown = rounds["running"][3]
    # No terminal escape gets through: the control character is written out.
    assert (shown["author"], shown["body"], shown["line"]) == ("a\\x1b[31mb", "item 3\\x1b[2J", 3)
