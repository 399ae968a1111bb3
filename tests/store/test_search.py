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
from hookagent.store.logs import LogStore
from hookagent.store.search import Query, SearchIndex, terms_of, terms_of_blocks
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


TRICKY = [
    'say "alpha","bravo" here',
    'alpha","bravo',
    '"],[alpha bravo',
    "back\\slash alpha\\",
    "alpha\tbravo tab",
    "ünïcode alpha bravo",
    "ALPHA Bravo upper",
    "x" * 300 + " alpha far " + "y" * 300 + " bravo",
    "alpha",
    "bravo alpha alpha bravo",
]


@pytest.mark.parametrize(
    "text",
    ["alpha", "alpha bravo", '"alpha bravo"', '"alpha","bravo"', "alpha here", "slash alpha",
     "ünïcode", '"alpha\tbravo"', "upper bravo", "far bravo", '"\\slash"'],
)  # fmt: skip
async def test_lines_with_quotes_escapes_and_long_text_agree_with_a_brute_force_scan(
    store: Store, text: str
) -> None:
    # The scan finds lines in a chunk's JSON text without decoding it: quotes, backslashes,
    # separators inside messages, escapes and long lines must not move a match to another line.
    lines = [TRICKY[i % len(TRICKY)] + f" {i}" for i in range(300)]
    tid = await write_log(store, lines)
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    expected = brute({tid: [e.message for e in entries]}, text)
    assert expected
    hits = await store.search.search(text, limit=10_000)
    assert [(h.task_id, h.seq) for h in hits] == sorted(expected)


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


@given(
    st.lists(texts | st.sampled_from(["x1 line 2 of 3", "line 7 of 9", "Line\nof_it"])),
    st.integers(1, 5),
)
def test_terms_of_blocks_are_the_terms_of_each_block(batch: list[str], size: int) -> None:
    # Ingest maps a whole batch at once, then splits it into blocks: a text holding a
    # newline must not move another text's words into the wrong block.
    blocks = [terms_of(batch[lo : lo + size]) for lo in range(0, len(batch), size)]
    assert terms_of_blocks(batch, size) == blocks


async def log_reads(redis: Redis) -> int:
    """XRANGE and XREVRANGE calls the server (every primary of a cluster) has run so far."""
    client: Any = redis
    if isinstance(client, RedisCluster):
        stats = [await client.info("commandstats", target_nodes=n) for n in client.get_primaries()]
    else:
        stats = [await client.info("commandstats")]
    return sum(
        int(s.get(f"cmdstat_{c}", {}).get("calls", 0))
        for s in stats
        for c in ("xrange", "xrevrange")
    )


def task_id_at(ms: int) -> str:
    """A task id created at ``ms`` (ms since the epoch)."""
    return f"task-{ms}-{random.randbytes(6).hex()}"


async def test_a_common_word_fills_the_first_page_from_the_newest_task_alone(
    store: Store, redis: Redis
) -> None:
    # 20 tasks of 500 lines, every line holding "alpha": the first page is the newest task's
    # first 50 lines, in order, and reading it touches one block of one log, not 20 logs.
    ms = time.time_ns() // 1_000_000
    ids = [
        await write_log(store, [f"alpha {n} {i}" for i in range(500)], task_id=task_id_at(ms + n))
        for n in range(20)
    ]
    before = await log_reads(redis)
    hits = await store.search.search("alpha", limit=50)
    assert [(h.task_id, h.seq) for h in hits] == [(ids[-1], i) for i in range(50)]
    # One block read: the one chunk that starts it (XRANGE), nothing else.
    assert await log_reads(redis) - before <= 2


async def test_words_common_apart_but_rare_together_read_one_block(
    store: Store, redis: Redis
) -> None:
    # 30 tasks hold "bravo" on every line of their first block and "zulu" in their third;
    # only the oldest has a line with both. Every task holds both words, so a task-level
    # index would scan every log; the block postings meet in one block, the only one read.
    ms = time.time_ns() // 1_000_000
    bravo = [f"bravo line {i}" for i in range(100)]
    plain = [f"plain line {i}" for i in range(100)]
    zulu = [*plain[:50], "zulu here", *plain[50:99]]
    old = await write_log(store, [*bravo, *plain, *zulu[:50], "bravo zulu", *zulu[51:]],
                          task_id=task_id_at(ms))  # fmt: skip
    for n in range(1, 30):
        await write_log(store, [*bravo, *plain, *zulu], task_id=task_id_at(ms + n))
    before = await log_reads(redis)
    hits = await store.search.search("zulu bravo")
    assert [(h.task_id, h.seq) for h in hits] == [(old, 250)]
    assert "<mark>bravo</mark> <mark>zulu</mark>" in hits[0].snippet
    assert await log_reads(redis) - before <= 2
    # A block holding both words, but no line holding both, gives no hit.
    await write_log(store, ["charlie " * 3] * 120 + ["delta"], task_id=task_id_at(ms + 99))
    assert await store.search.search("charlie delta") == []
    assert await store.search.search("delta charlie") == []


async def test_hits_come_newest_task_first_then_in_line_order_across_blocks(
    store: Store,
) -> None:
    # Three tasks written out of creation order, each over several blocks (batches of 100
    # lines): hits come by creation time, newest first, and within a task by line.
    ms = time.time_ns() // 1_000_000
    created = [ms + 2, ms, ms + 1]
    ids = {}
    for at_ms in created:
        rng = random.Random(at_ms)
        lines = [" ".join(rng.choices(WORDS, k=3)) + f" echo {i}" for i in range(350)]
        ids[at_ms] = await write_log(store, lines, task_id=task_id_at(at_ms))
    hits = await store.search.search("echo", limit=10_000)
    expected = [(ids[at_ms], seq) for at_ms in sorted(created, reverse=True) for seq in range(350)]
    assert [(h.task_id, h.seq) for h in hits] == expected
    # A page stops where asked, and the rest follows on from the same order.
    page = await store.search.search("echo", limit=420)
    assert [(h.task_id, h.seq) for h in page] == expected[:420]
    # since= keeps the tasks created at or after it, in the same order.
    since = await store.search.search("echo", since_ms=ms + 1, limit=10_000)
    assert [(h.task_id, h.seq) for h in since] == expected[:700]


async def test_postings_of_expired_logs_are_trimmed(
    store: Store, redis: Redis, settings: Settings
) -> None:
    # A posting lives 1.25 log TTLs past its task's creation: a later write of the same
    # word (by a process that has not trimmed it for a tenth of the TTL) removes it, and the
    # key itself expires 1.25 TTLs after such a write, outliving every posting's log.
    ms = time.time_ns() // 1_000_000
    old = await write_log(store, ["kilo old"], task_id=task_id_at(ms - 600_000))
    short = Store.build(redis, settings.model_copy(update={"log_ttl": 100}))
    # A task created as long ago that still logs now (it waited for an approval) ranks as
    # created a quarter TTL ago, so its postings outlive its log's TTL.
    late = await write_log(short, ["kilo late"], task_id=task_id_at(ms - 600_000))
    fresh = await write_log(short, ["kilo new"])
    key = store.keys.postings("kilo")
    members = [str(m) for m in await redis.zrange(key, 0, -1)]
    assert {m.rsplit(":", 2)[0] for m in members} == {late, fresh}
    assert 100 < await redis.ttl(key) <= 125
    hits = await short.search.search("kilo")
    assert [h.task_id for h in hits] == [fresh, late]
    assert old not in {h.task_id for h in await store.search.search("kilo")}


async def test_blocks_that_do_not_start_a_chunk_find_every_line(
    store: Store, redis: Redis, settings: Settings
) -> None:
    # Blocks of 256 lines over chunks of 100 (another chunk size): a block starting inside
    # a chunk reads that chunk too, and only the block's own lines count.
    logs = LogStore(redis, store.keys, ttl_seconds=60, max_lines=10_000, chunk_lines=100)
    tid = (
        await store.tasks.create(NewTask(source="jira", repository="a/b", title="t", prompt="p"))
    ).task_id
    rng = random.Random(5)
    lines = [" ".join(rng.choices(WORDS, k=3)) for _ in range(700)]
    async with LogWriter(
        logs, tid, index=store.search, token="", attempt=1,
        batch_lines=350, flush_ms=20, line_max=1000, raw_max=0,
    ) as writer:  # fmt: skip
        writer.add_lines(LogStream.STDOUT, lines[:350])
        await writer.flush()
        writer.add_lines(LogStream.STDOUT, lines[350:])
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    for text in ("alpha", "alpha bravo", '"golf hotel"'):
        hits = await store.search.search(text, limit=10_000)
        expected = sorted(brute({tid: [e.message for e in entries]}, text))
        assert [(h.task_id, h.seq) for h in hits] == expected


async def test_a_log_cut_by_its_cap_posts_only_the_lines_it_stored(
    store: Store, redis: Redis, settings: Settings
) -> None:
    # The cap stores 149 lines and a marker of the 300 written in batches of 100: search
    # finds each stored line once (the cut batch's postings point at its own lines only).
    capped = Store.build(redis, settings.model_copy(update={"log_max_lines": 150}))
    tid = await write_log(capped, [f"alpha {i}" for i in range(300)])
    entries, total = await capped.logs.read(tid, offset=0, limit=-1)
    assert total == 150 and "log limit" in entries[-1].message
    hits = await capped.search.search("alpha", limit=10_000)
    assert [h.seq for h in hits] == list(range(149))


async def test_a_log_of_random_words_stops_adding_postings_at_the_budget(
    store: Store, redis: Redis, settings: Settings
) -> None:
    # An agent printing random words must not grow the index without bound: once a batch
    # would take a task past its budget, neither it nor any later batch is posted.
    rng = random.Random(3)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=8)) for _ in range(400)]
    batch = [" ".join(words[i : i + 4]) for i in range(0, 400, 4)]  # 100 lines, 400 terms
    index = SearchIndex(
        store.redis, store.keys, tasks=store.tasks, logs=store.logs,
        ttl_seconds=settings.log_ttl, max_postings=1_000,
    )  # fmt: skip
    tid = (
        await store.tasks.create(NewTask(source="jira", repository="a/b", title="t", prompt="p"))
    ).task_id
    async with LogWriter(
        store.logs, tid, index=index, token="", attempt=1,
        batch_lines=100, flush_ms=20, line_max=1000, raw_max=0,
    ) as writer:  # fmt: skip
        for _ in range(4):
            writer.add_lines(LogStream.STDOUT, batch)
            await writer.flush()
        writer.add_lines(LogStream.STDOUT, ["one more line"])
    postings = [m for w in words for m in await redis.zrange(store.keys.postings(w), 0, -1)]
    assert len(postings) == 800  # two blocks of 400 terms; the third would pass 1,000
    assert await store.search.search("line") == []
    assert len(await store.search.search(words[0], limit=1000)) == 2
