"""Search against a brute-force scan of generated logs."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from hookagent.models import LogStream, NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.search import Query, terms_of
from hookagent.store.writer import LogWriter
from tests.helpers import move_to
from tests.strategies import texts

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


async def write_log(store: Store, lines: list[str], *, task_id: str | None = None) -> str:
    """A new task whose log holds ``lines`` on stdout, written and indexed by a LogWriter."""
    new = NewTask(source="jira", repository="acme/x", title="t", prompt="p")
    tid = (await store.tasks.create(new, task_id=task_id)).task_id
    async with LogWriter(
        store.logs, tid, index=store.search, token="", attempt=1,
        batch_lines=100, flush_ms=20, line_max=1000, raw_max=0,
    ) as writer:  # fmt: skip
        for line in lines:
            writer.add(LogStream.STDOUT, line)
            await writer.wait_room()
    return tid


async def make_logs(
    store: Store, settings: Settings, tasks: int, lines: int
) -> dict[str, list[str]]:
    rng = random.Random(7)
    logs: dict[str, list[str]] = {}
    # One millisecond apart in their ids, so "newest first" has one right answer.
    ms = time.time_ns() // 1_000_000
    for n in range(tasks):
        lines_of_task = [" ".join(rng.choices(WORDS, k=4)) for _ in range(lines)]
        tid = await write_log(
            store, lines_of_task, task_id=f"task-{ms + n}-{rng.randbytes(6).hex()}"
        )
        entries, _ = await store.logs.read(tid, offset=0, limit=-1)
        logs[tid] = [e.message for e in entries]
        assert len(logs[tid]) == lines
    return logs


def brute(logs: dict[str, list[str]], text: str) -> set[tuple[str, int]]:
    query = Query.parse(text)
    return {
        (tid, seq) for tid, msgs in logs.items() for seq, m in enumerate(msgs) if query.matches(m)
    }


@pytest.mark.parametrize(
    ("text", "found"),
    [("alpha", True), ("alpha bravo", True), ('"golf hotel"', True),
     ("juliet echo delta", True), ("zulu", False)],
)  # fmt: skip
async def test_search_agrees_with_a_brute_force_scan(
    store: Store, settings: Settings, text: str, found: bool
) -> None:
    logs = await make_logs(store, settings, tasks=12, lines=150)
    expected = brute(logs, text)
    assert bool(expected) is found  # two empty answers would agree about nothing
    hits = await store.search.search(text, limit=100_000)
    assert {(h.task_id, h.seq) for h in hits} == expected


async def test_newest_first_status_filter_and_snippet(store: Store, settings: Settings) -> None:
    logs = await make_logs(store, settings, tasks=3, lines=20)
    newest = max(logs, key=lambda t: int(t.split("-")[1]))
    hits = await store.search.search("alpha", limit=1)
    assert hits[0].task_id == newest and "<mark>alpha</mark>" in hits[0].snippet
    some = next(iter(logs))
    await move_to(store, some, TaskStatus.FAILED)
    failed = await store.search.search("alpha", status=TaskStatus.FAILED, limit=1000)
    assert {h.task_id for h in failed} == {some}


async def test_search_endpoint(client: httpx.AsyncClient, store: Store) -> None:
    tid = await write_log(
        store,
        [
            "alpha bravo",
            "alpha charlie bravo",
            "Alpha Bravo again",
            "bravo alpha",
            "x <alpha bravo>",
            "alpha bravo last",
        ],
    )
    # Newer and holding both words, so a candidate, but never the phrase: no hits from it.
    await write_log(store, ["alpha only", "bravo only"])
    body = (await client.get("/search", params={"q": '"alpha bravo"', "limit": 3})).json()
    assert body["query"] == '"alpha bravo"' and body["count"] == 3
    assert [(h["task_id"], h["seq"], h["stream"], h["snippet"]) for h in body["hits"]] == [
        (tid, 0, "stdout", "[stdout] <mark>alpha bravo</mark>"),
        (tid, 2, "stdout", "[stdout] <mark>Alpha Bravo</mark> again"),
        (tid, 4, "stdout", "[stdout] x &lt;<mark>alpha bravo</mark>&gt;"),
    ]
    everything = (await client.get("/search", params={"q": '"alpha bravo"'})).json()
    assert [h["seq"] for h in everything["hits"]] == [0, 2, 4, 5]
    assert (await client.get("/search", params={"q": ""})).status_code == 422
    assert (await client.get("/search", params={"q": "x", "since": "yesterday"})).status_code == 422


def test_terms_are_ascii_letter_runs_lowercased() -> None:
    texts = ["Deploy_Canary x12y rollout42ok", "café naïve ab abc", "a" * 41 + " " + "b" * 40]
    assert terms_of(texts) == {"deploy_canary", "rollout", "abc", "b" * 40}


@given(st.lists(texts | st.sampled_from(["x1 line 2 of 3", "line 7 of 9", "Line\nof_it"])))
def test_terms_of_a_batch_are_the_terms_of_its_lines(batch: list[str]) -> None:
    # terms_of splits only a batch's distinct lines into words: repeats must change nothing.
    # A word is a run of ASCII letters, underscores and non-ASCII characters; only the
    # all-ASCII ones of 3 to 40 characters are terms.
    runs = (w for text in batch for w in re.findall(r"[A-Za-z_\x80-\U0010ffff]+", text))
    assert terms_of(batch) == {w.lower() for w in runs if w.isascii() and 3 <= len(w) <= 40}


async def sadd_calls(redis: Redis, key: str) -> int:
    """SADDs the server holding ``key`` has run (on a cluster: the node serving its slot)."""
    client: Any = redis
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        stats = await client.info("commandstats", target_nodes=node)
    else:
        stats = await client.info("commandstats")
    return int(stats.get("cmdstat_sadd", {}).get("calls", 0))


async def test_a_writer_indexes_each_term_of_its_task_once(store: Store, redis: Redis) -> None:
    # Terms the writer has indexed for its task are not sent again with later batches.
    tid = (
        await store.tasks.create(NewTask(source="jira", repository="a/b", title="t", prompt="p"))
    ).task_id
    async with LogWriter(
        store.logs, tid, index=store.search, token="", attempt=1,
        batch_lines=10, flush_ms=20, line_max=1000, raw_max=0,
    ) as writer:  # fmt: skip
        writer.add_lines(LogStream.STDOUT, [f"alpha bravo {i}" for i in range(10)])
        await writer.flush()
        term_key = store.keys.term("alpha")
        before = await sadd_calls(redis, term_key)
        writer.add_lines(LogStream.STDOUT, [f"bravo alpha {i}" for i in range(30)])
        await writer.flush()
        assert await sadd_calls(redis, term_key) == before
        writer.add_lines(LogStream.STDOUT, ["bravo charlie"])
    assert await sadd_calls(redis, term_key) == before + 1
    hits = await store.search.search("charlie")
    assert [(h.task_id, h.seq) for h in hits] == [(tid, 40)]
