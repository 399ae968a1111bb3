"""Chunked logs: reads across chunk boundaries, the cap, fencing, status entries, feed, search."""

from __future__ import annotations

import itertools
import json
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from hookagent.errors import FencedOut
from hookagent.models import Action, EventKind, LogEntry, LogStream, NewTask, Phase, TaskStatus
from hookagent.store import LogStore, Store
from hookagent.store.feed import FeedHub
from hookagent.store.keys import Keys
from hookagent.store.logs import CHUNK_COLUMNS, Columns, NewLine, encode_chunk, encode_columns
from hookagent.store.writer import LogWriter
from tests.strategies import texts

pytestmark = pytest.mark.store

# Batches that leave chunks of every shape with 3-line chunks: full, partial, single.
BATCHES = (7, 3, 1, 10, 2, 5)


async def make_task(store: Store) -> str:
    new = NewTask(source="jira", repository="acme/x", title="t", prompt="p")
    return (await store.tasks.create(new)).task_id


def line(i: int) -> NewLine:
    """Line ``i``: its own timestamp, stream, kind and (every fifth) raw event."""
    stream = "stderr" if i % 4 == 3 else "stdout"
    return NewLine(
        f"2026-01-01T00:00:{i // 10:02d}.{i % 10:03d}Z",
        stream,
        f"[{stream}] l{i}",
        "tool_use" if i % 3 == 0 else "",
        f'{{"n": {i}}}' if i % 5 == 0 else "",
    )


def small_chunks(redis: Redis, prefix: str, *, max_lines: int = 10_000) -> LogStore:
    return LogStore(redis, Keys(prefix), ttl_seconds=60, max_lines=max_lines, chunk_lines=3)


async def test_reads_agree_with_a_list_at_every_offset_and_limit(
    redis: Redis, prefix: str, store: Store
) -> None:
    logs = small_chunks(redis, prefix)
    tid = await make_task(store)
    written: list[NewLine] = []
    for size in BATCHES:
        batch = [line(len(written) + i) for i in range(size)]
        written += batch
        assert await logs.append(tid, batch, attempt=2) == len(written)
    n = len(written)
    for offset in range(n + 3):  # past the end too
        for limit in (1, 2, 3, 4, 7, 100, -1):
            page, total = await logs.read(tid, offset=offset, limit=limit)
            wanted = written[offset:] if limit < 0 else written[offset : offset + limit]
            assert total == n
            assert [e.seq for e in page] == list(range(offset, offset + len(wanted)))
            assert [(e.timestamp, e.stream.value, e.message) for e in page] == [
                (w.timestamp, w.stream, w.message) for w in wanted
            ]
            assert [e.kind.value if e.kind else "" for e in page] == [w.kind for w in wanted]
            assert [e.raw for e in page] == [{"n": int(w.message[10:])} if w.raw else None
                                             for w in wanted]  # fmt: skip
            assert {e.attempt for e in page} <= {2}
    assert await logs.total(tid) == n


async def test_the_cap_cuts_a_chunk_and_ends_with_a_marker(
    redis: Redis, prefix: str, store: Store
) -> None:
    logs = small_chunks(redis, prefix, max_lines=10)
    tid = await make_task(store)
    await logs.append(tid, [line(i) for i in range(5)])
    # Seqs 5..8 fit; seq 9 is the marker, dated like the first line that was dropped.
    assert await logs.append(tid, [line(i) for i in range(5, 20)]) == 10
    assert await logs.append(tid, [line(20)]) == 10
    await store.tasks.advance(tid, Action.CANCEL)  # no status entry past the cap either
    page, total = await logs.read(tid, offset=0, limit=-1)
    assert total == 10 and [e.seq for e in page] == list(range(10))
    assert [e.message for e in page[:9]] == [line(i).message for i in range(9)]
    marker = page[9]
    assert "log limit of 10 lines reached" in marker.message
    assert (marker.stream, marker.kind, marker.timestamp) == (
        LogStream.SYSTEM,
        EventKind.ERROR,
        line(9).timestamp,
    )


async def test_status_entries_can_bring_the_cap_forward(
    redis: Redis, prefix: str, store: Store
) -> None:
    logs = small_chunks(redis, prefix, max_lines=3)
    tid = await make_task(store)
    await store.tasks.claim(tid, token="t", phase=Phase.PLAN)  # seq 0
    await logs.append(tid, [line(1)], token="t")  # seq 1
    await store.tasks.claim(tid, token="u", phase=Phase.PLAN)  # seq 2: the cap is reached
    assert await logs.append(tid, [line(2), line(5)], token="u") == 4
    page, _ = await logs.read(tid, offset=0, limit=-1)
    kinds = [e.kind for e in page]
    assert kinds == [EventKind.STATUS, None, EventKind.STATUS, EventKind.ERROR]
    assert page[3].timestamp == line(2).timestamp


async def test_a_fenced_out_append_writes_no_chunk(redis: Redis, prefix: str, store: Store) -> None:
    logs = small_chunks(redis, prefix)
    tid = await make_task(store)
    await store.tasks.claim(tid, token="old", phase=Phase.PLAN)
    await store.tasks.claim(tid, token="new", phase=Phase.PLAN)
    with pytest.raises(FencedOut):
        await logs.append(tid, [line(i) for i in range(8)], token="old")
    assert await logs.total(tid) == 2
    assert await redis.xlen(Keys(prefix).logs(tid)) == 2  # the two status entries


async def test_status_entries_interleave_with_output_in_order(
    redis: Redis, prefix: str, store: Store
) -> None:
    logs = small_chunks(redis, prefix)
    tid = await make_task(store)
    attempt = await store.tasks.claim(tid, token="t", phase=Phase.PLAN)
    await logs.append(tid, [line(i) for i in range(4)], token="t", attempt=attempt)
    await store.tasks.advance(tid, Action.PLAN_READY, token="t", reason="plan is ready")
    await logs.append(tid, [line(i) for i in range(4, 6)], attempt=attempt)
    await store.tasks.advance(tid, Action.APPROVE)
    page, total = await logs.read(tid, offset=0, limit=-1)
    assert total == 9 and [e.seq for e in page] == list(range(9))
    statuses = [(e.seq, e.status, e.message) for e in page if e.kind is EventKind.STATUS]
    assert statuses == [
        (0, TaskStatus.DISCOVERING, "[system] status discovering"),
        (5, TaskStatus.PENDING_APPROVAL, "[system] status pending_approval: plan is ready"),
        (8, TaskStatus.APPROVED, "[system] status approved"),
    ]
    assert {e.attempt for e in page} == {attempt}
    assert all(e.status is None for e in page if e.kind is not EventKind.STATUS)
    # A page that starts on a status entry and ends inside the next chunk.
    middle, _ = await logs.read(tid, offset=5, limit=2)
    assert [(e.seq, e.kind) for e in middle] == [(5, EventKind.STATUS), (6, None)]


async def test_the_feed_delivers_every_line_across_chunk_boundaries(
    redis: Redis, prefix: str, store: Store
) -> None:
    logs = small_chunks(redis, prefix)
    hub = FeedHub(redis, Keys(prefix), logs=logs, tasks=store.tasks, window=5)
    tid = await make_task(store)
    await logs.append(tid, [line(i) for i in range(4)])  # before the feed: read from Redis
    seen: list[LogEntry] = []
    try:
        async with hub.follow(tid) as feed:
            assert feed.next_seq == 4
            written = 4
            for size in BATCHES:
                await logs.append(tid, [line(written + i) for i in range(size)])
                written += size
                assert await feed.wait_beyond(written - 1, timeout=10)
                while len(seen) < feed.next_seq:
                    seen += await hub.read(feed, len(seen), 4)  # 4: never a chunk's edge
            assert feed.next_seq == written
            # The window holds the last 5 lines, one by one; older ones come from Redis.
            assert feed.recent_from(written - 6, 10) is None
            recent = feed.recent_from(written - 5, 10)
            assert recent is not None and [e.seq for e in recent] == list(
                range(written - 5, written)
            )
    finally:
        await hub.close()
    assert [e.seq for e in seen] == list(range(written))
    assert [e.message for e in seen] == [line(i).message for i in range(written)]


async def test_search_hits_carry_the_seq_of_their_line(
    redis: Redis, prefix: str, store: Store
) -> None:
    logs = small_chunks(redis, prefix)
    tid = await make_task(store)
    texts = [f"step {i} fine" for i in range(20)]
    texts[4] = "wrote src/app.py"
    texts[8] = 'said "café" twice'
    texts[13] = "Needle in the haystack"
    async with LogWriter(
        logs, tid, index=store.search, token="", attempt=1,
        batch_lines=5, flush_ms=20, line_max=1000, raw_max=0,
    ) as writer:  # fmt: skip
        for i, text in enumerate(texts):
            writer.add(LogStream.STDERR if i == 13 else LogStream.STDOUT, text, ts=f"ts-{i}")
            await writer.wait_room()

    async def found(query: str) -> list[tuple[int, str, str]]:
        return [(h.seq, h.timestamp, h.stream) for h in await store.search.search(query)]

    assert await found("needle") == [(13, "ts-13", "stderr")]
    assert await found("src/app") == [(4, "ts-4", "stdout")]  # "/" may be escaped in JSON
    assert await found('"café"') == [(8, "ts-8", "stdout")]  # non-ASCII: \\u escapes
    assert await found('fine "step 1"') == [(1, "ts-1", "stdout")] + [
        (i, f"ts-{i}", "stdout") for i in range(10, 20) if i != 13
    ]


rows = st.lists(
    st.tuples(
        st.sampled_from(["t0", "t1"]),
        st.sampled_from(["stdout", "stderr"]),
        st.sampled_from(["a", "b", '\u00e9"\\']),
        st.sampled_from(["", "text"]),
        st.sampled_from(["", '{"n": 1}']),
    ).map(lambda row: NewLine(*row)),
    max_size=30,
)


@given(rows, st.lists(st.integers(min_value=1, max_value=7), min_size=1))
def test_columns_encode_as_rows_do(written: list[NewLine], cuts: list[int]) -> None:
    # The writer buffers columns, extended run by run and taken batch by batch; the chunks
    # must be the very text encode_chunk makes of the same rows.
    columns = Columns()
    for i, row in enumerate(written):
        if i % 2:
            columns.append(row.message, row.timestamp, row.stream, row.kind, row.raw)
        else:
            columns.extend([row.message], row.timestamp, row.stream, row.kind, row.raw)
    assert columns == Columns.of(written)
    done = 0
    while columns:
        size = cuts[done % len(cuts)]
        batch = columns.take(size)
        expected = written[done : done + size]
        assert len(batch) == len(expected)
        assert encode_columns(batch, 0, len(batch), 3) == encode_chunk(expected, 3)
        for lo in range(len(batch)):
            part = encode_columns(batch, lo, len(batch), 3)
            assert part == encode_chunk(expected[lo:], 3)
        done += size
    assert done >= len(written) and columns == Columns()


def runs_of(column: list[str]) -> list[str | int]:
    return [x for value, group in itertools.groupby(column) for x in (value, len(list(group)))]


@given(
    st.lists(texts | st.text(st.characters(min_codepoint=32, max_codepoint=126)), min_size=1),
    st.integers(min_value=0, max_value=3),
)
def test_chunk_text_is_compact_json_of_its_columns(messages: list[str], kinds: int) -> None:
    # The stored format: json.dumps of [attempt, messages, *run-length columns], compact.
    written = [
        NewLine("t", "stdout", m, "text" if i % 4 < kinds else "") for i, m in enumerate(messages)
    ]
    columns = [[line[k] for line in written] for k in (0, 1, 3, 4)]
    expected = json.dumps([7, messages, *map(runs_of, columns)], separators=(",", ":"))
    assert encode_chunk(written, 7) == expected


async def test_the_scripts_write_chunks_as_the_python_encoder_does(
    redis: Redis, prefix: str, store: Store
) -> None:
    """A status line, a cut chunk and the limit marker, written by Lua, in the one format."""
    logs = small_chunks(redis, prefix, max_lines=3)
    tid = await make_task(store)
    attempt = await store.tasks.claim(tid, token="t", phase=Phase.PLAN)
    await logs.append(tid, [line(i) for i in range(4)], token="t", attempt=attempt)
    rows = cast(list[tuple[str, dict[str, str]]], await redis.xrange(Keys(prefix).logs(tid)))
    assert [(eid, fields["n"]) for eid, fields in rows] == [
        ("0-1", "1"),
        ("0-2", "1"),
        ("0-3", "1"),
    ]
    status, cut, marker = (json.loads(fields["c"]) for _, fields in rows)
    [first, _, last] = (await logs.read(tid, offset=0, limit=-1))[0]
    said = NewLine(first.timestamp, "system", first.message, "status")
    assert status == [*json.loads(encode_chunk([said], attempt)), TaskStatus.DISCOVERING.value]
    assert cut == json.loads(encode_chunk([line(0)], attempt))
    ended = NewLine(line(1).timestamp, "system", last.message, "error")
    assert marker == json.loads(encode_chunk([ended], attempt))
    assert len(CHUNK_COLUMNS) == len(status)
