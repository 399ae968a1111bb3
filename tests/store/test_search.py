"""Search against a brute-force scan of generated logs."""

from __future__ import annotations

import random

import httpx
import pytest

from hookagent.models import LogStream, NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.search import Query
from hookagent.store.writer import LogWriter
from tests.helpers import move_to

pytestmark = pytest.mark.store

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
]


async def make_logs(
    store: Store, settings: Settings, tasks: int, lines: int
) -> dict[str, list[str]]:
    rng = random.Random(7)
    logs: dict[str, list[str]] = {}
    for _ in range(tasks):
        new = NewTask(source="jira", repository="acme/x", title="t", prompt="p")
        tid = (await store.tasks.create(new)).task_id
        async with LogWriter(
            store.logs, tid, index=store.search, token="", attempt=1,
            batch_lines=100, flush_ms=20, line_max=1000, raw_max=0,
        ) as writer:  # fmt: skip
            for _ in range(lines):
                writer.add(LogStream.STDOUT, " ".join(rng.choices(WORDS, k=4)))
                await writer.wait_room()
        entries, _ = await store.logs.read(tid, offset=0, limit=-1)
        logs[tid] = [e.message for e in entries]
    return logs


def brute(logs: dict[str, list[str]], text: str) -> set[tuple[str, int]]:
    query = Query.parse(text)
    return {
        (tid, seq) for tid, msgs in logs.items() for seq, m in enumerate(msgs) if query.matches(m)
    }


@pytest.mark.parametrize(
    "text", ["alpha", "alpha bravo", '"golf hotel"', "juliet echo delta", "zulu"]
)
async def test_search_agrees_with_a_brute_force_scan(
    store: Store, settings: Settings, text: str
) -> None:
    logs = await make_logs(store, settings, tasks=12, lines=150)
    hits = await store.search.search(text, limit=100_000)
    assert {(h.task_id, h.seq) for h in hits} == brute(logs, text)


async def test_newest_first_status_filter_and_snippet(store: Store, settings: Settings) -> None:
    logs = await make_logs(store, settings, tasks=3, lines=20)
    newest = max(logs, key=lambda t: int(t.split("-")[1]))
    hits = await store.search.search("alpha", limit=1)
    assert hits[0].task_id == newest and "<mark>alpha</mark>" in hits[0].snippet
    some = next(iter(logs))
    await move_to(store, some, TaskStatus.FAILED)
    failed = await store.search.search("alpha", status=TaskStatus.FAILED, limit=1000)
    assert {h.task_id for h in failed} == {some}


async def test_search_endpoint(client: httpx.AsyncClient, store: Store, settings: Settings) -> None:
    await make_logs(store, settings, tasks=2, lines=30)
    body = (await client.get("/search", params={"q": '"alpha bravo"', "limit": 3})).json()
    assert body["count"] == len(body["hits"]) <= 3
    assert all("<mark>alpha bravo</mark>" in h["snippet"].lower() for h in body["hits"])
    assert (await client.get("/search", params={"q": ""})).status_code == 422
    assert (await client.get("/search", params={"q": "x", "since": "yesterday"})).status_code == 422
