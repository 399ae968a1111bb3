"""Encode once, fan out: followers at one cursor with equal filters share one encoded batch."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from hookagent.api.fanout import BATCH, next_batch, sse_event, ws_frame
from hookagent.logfilter import LogFilter
from hookagent.models import NewTask
from hookagent.store import Store
from hookagent.store.feed import FeedHub
from hookagent.store.logs import NewLine


async def test_followers_in_lockstep_share_the_same_bytes(redis: Redis, store: Store) -> None:
    tid = (
        await store.tasks.create(NewTask(source="t", repository="o/r", title="t", prompt="p"))
    ).task_id
    lines = [
        NewLine("2026-01-01T00:00:00.000Z", "stderr" if i % 3 == 0 else "stdout", f"line {i}")
        for i in range(BATCH + 20)
    ]
    await store.logs.append(tid, lines)
    hub = FeedHub(redis, store.keys, logs=store.logs, tasks=store.tasks)
    try:
        async with hub.follow(tid) as feed:
            everything = [await next_batch(hub, feed, 0, LogFilter(), "sse") for _ in range(3)]
            # The very object, not an equal copy: one encode for every follower.
            assert everything[1] is everything[0] and everything[2] is everything[0]
            first = everything[0]
            assert (first.sent, first.cursor) == (BATCH, BATCH)
            entries, _ = await store.logs.read(tid, offset=0, limit=BATCH)
            assert first.sse == "".join(map(sse_event, entries)).encode()
            assert first.sse.startswith(b"id: 0\ndata: {") and first.sse.endswith(b"\n\n")

            rest = await next_batch(hub, feed, BATCH, LogFilter(), "sse")
            assert (rest.sent, rest.cursor) == (20, BATCH + 20)

            # Equal filters built apart share; a different regex does not.
            err_a = await next_batch(hub, feed, 0, LogFilter.build(stream=["stderr"]), "sse")
            err_b = await next_batch(hub, feed, 0, LogFilter.build(stream=["stderr"]), "sse")
            assert err_a is err_b and err_a.sent == len(range(0, BATCH, 3))
            one = await next_batch(hub, feed, 0, LogFilter.build(regex_text="^line 1$"), "sse")
            two = await next_batch(hub, feed, 0, LogFilter.build(regex_text="^line 2$"), "sse")
            assert b'"line 1"' in one.sse and b'"line 2"' in two.sse and one.sent == two.sent == 1

            frames = await next_batch(hub, feed, 0, LogFilter(), "ws")
            assert frames.frames[0] == ws_frame(entries[0])
            assert json.loads(frames.frames[0]) == {
                "type": "log",
                **entries[0].model_dump(mode="json", exclude_none=True),
            }
            # Nothing new past the end: an empty batch, not kept for later.
            tail = await next_batch(hub, feed, BATCH + 20, LogFilter(), "sse")
            assert (tail.sent, tail.sse, tail.cursor) == (0, b"", BATCH + 20)
            await store.logs.append(tid, lines[:1])
            assert await feed.wait_beyond(BATCH + 20, timeout=10)
            grown = await next_batch(hub, feed, BATCH + 20, LogFilter(), "sse")
            assert (grown.sent, grown.cursor) == (1, BATCH + 21)
    finally:
        await hub.close()
