"""Log streams: dense seqs, fenced batches, the cap marker, TTL, the buffered writer."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from hookagent.errors import FencedOut
from hookagent.models import EventKind, LogStream, NewTask, Phase, TaskStatus
from hookagent.settings import Settings
from hookagent.store import LogStore, Store
from hookagent.store.keys import Keys
from hookagent.store.logs import NewLine
from hookagent.store.writer import LogWriter

pytestmark = pytest.mark.store


async def make_task(store: Store) -> str:
    new = NewTask(source="jira", repository="acme/x", title="t", prompt="p")
    return (await store.tasks.create(new)).task_id


def lines(n: int, start: int = 0) -> list[NewLine]:
    return [
        NewLine("2026-01-01T00:00:00.000Z", "stdout", f"[stdout] l{i}")
        for i in range(start, start + n)
    ]


async def test_offsets_map_to_entries(store: Store) -> None:
    tid = await make_task(store)
    assert await store.logs.append(tid, lines(250)) == 250
    page, total = await store.logs.read(tid, offset=100, limit=50)
    assert total == 250
    assert [e.seq for e in page] == list(range(100, 150))
    assert page[0].message == "[stdout] l100" and page[0].stream is LogStream.STDOUT
    everything, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert len(everything) == 250
    tail, _ = await store.logs.read(tid, offset=240, limit=100)
    assert [e.seq for e in tail] == list(range(240, 250))


async def test_cap_ends_with_a_visible_marker(redis: Redis, prefix: str, store: Store) -> None:
    capped = LogStore(redis, Keys(prefix), ttl_seconds=60, max_lines=10)
    tid = await make_task(store)
    await capped.append(tid, lines(6))
    await capped.append(tid, lines(20, start=6))
    await capped.append(tid, lines(5, start=26))
    page, total = await capped.read(tid, offset=0, limit=-1)
    assert total == 10
    assert page[8].message == "[stdout] l8"
    assert "log limit of 10 lines reached" in page[9].message
    assert page[9].stream is LogStream.SYSTEM


async def test_appends_are_fenced_by_the_lease_token(store: Store) -> None:
    tid = await make_task(store)
    await store.tasks.claim(tid, token="new", phase=Phase.PLAN)
    with pytest.raises(FencedOut):
        await store.logs.append(tid, lines(1), token="old")
    await store.logs.append(tid, lines(1), token="new", attempt=1)
    [status, entry], _ = await store.logs.read(tid, offset=0, limit=10)
    assert (status.kind, status.status, status.message) == (
        EventKind.STATUS,
        TaskStatus.DISCOVERING,
        "[system] status discovering",
    )
    assert entry.attempt == 1


async def test_log_ttl_is_set(redis: Redis, prefix: str, store: Store) -> None:
    tid = await make_task(store)
    await store.logs.append(tid, lines(1))
    ttl = await redis.ttl(Keys(prefix).logs(tid))
    assert 0 < ttl <= 86400


async def test_writer_batches_truncates_and_flushes_on_exit(
    store: Store, settings: Settings
) -> None:
    tid = await make_task(store)
    async with LogWriter(
        store.logs, tid, token="", attempt=0, batch_lines=100, flush_ms=20, line_max=100, raw_max=10
    ) as writer:
        for i in range(1050):
            writer.add(LogStream.STDOUT, f"n{i}")
            await writer.wait_room()
        writer.add(LogStream.STDERR, "y" * 500, raw='{"a": "' + "z" * 50 + '"}')
    page, total = await store.logs.read(tid, offset=1049, limit=-1)
    assert total == 1051
    assert page[0].message == "[stdout] n1049"
    assert (
        page[1].message.startswith("[stderr] yyy")
        and "[truncated 409 characters]" in page[1].message
    )
    assert isinstance(page[1].raw, str) and page[1].raw.endswith("[truncated 49 characters]")


async def test_writer_adds_a_batch_as_it_adds_each_line(store: Store) -> None:
    # add_lines is the plain-text fast path: the stored lines must be add()'s, cap included.
    texts = ["a", "b" * 200, "", "c\td", "é" * 95, "x" * 92]
    stored = []
    for bulk in (False, True):
        tid = await make_task(store)
        async with LogWriter(
            store.logs, tid, token="", attempt=1, batch_lines=4, flush_ms=5, line_max=100, raw_max=0
        ) as writer:
            if bulk:
                writer.add_lines(LogStream.STDOUT, texts, kind=EventKind.TEXT, ts="t0")
                writer.add_lines(LogStream.STDERR, texts[:2], ts="t1")
                writer.add_lines(LogStream.STDERR, [], ts="t2")
            else:
                for text in texts:
                    writer.add(LogStream.STDOUT, text, kind=EventKind.TEXT, ts="t0")
                for text in texts[:2]:
                    writer.add(LogStream.STDERR, text, ts="t1")
            await writer.wait_room()
        stored.append((await store.logs.read(tid, offset=0, limit=-1))[0])
    lines_one_by_one, lines_in_bulk = stored
    assert [(e.seq, e.message) for e in lines_in_bulk] == [
        (e.seq, e.message) for e in lines_one_by_one
    ]
    assert [e.model_dump(exclude={"seq"}) for e in lines_in_bulk] == [
        e.model_dump(exclude={"seq"}) for e in lines_one_by_one
    ]
    assert len(lines_in_bulk) == 8 and lines_in_bulk[1].message.endswith(
        "[truncated 109 characters]"
    )
    assert lines_in_bulk[5].message == "[stdout] " + "x" * 91 + "… [truncated 1 characters]"
    assert lines_in_bulk[6].stream == "stderr" and lines_in_bulk[6].kind is None


async def test_writer_never_drops_a_batch_in_flight_at_exit(store: Store) -> None:
    # A batch is sent while the next fills; leaving the writer must wait for it, not cancel it.
    for _ in range(5):
        tid = await make_task(store)
        async with LogWriter(
            store.logs,
            tid,
            token="",
            attempt=0,
            batch_lines=100,
            flush_ms=5,
            line_max=100,
            raw_max=0,
        ) as writer:
            for i in range(150):
                writer.add(LogStream.STDOUT, f"n{i}")
            await writer.wait_room()  # a full batch: the flusher takes it...
            for _ in range(3):
                await asyncio.sleep(0)  # ...and is awaiting Redis's reply when we leave
        assert await store.logs.total(tid) == 150
