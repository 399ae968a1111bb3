"""Encode once, fan out: followers at one cursor with equal filters share one encoded batch."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from redis.asyncio import Redis
from starlette.types import Message

from hookagent.api import fanout
from hookagent.api.direct import Direct
from hookagent.api.fanout import (
    BATCH,
    MAX_INTERVAL_S,
    Batch,
    Follower,
    Rider,
    delivery_interval,
    ride,
    sse_event,
    ws_frame,
)
from hookagent.api.logfilter import LogFilter
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

            async def read(cursor: int, flt: LogFilter) -> Batch:
                """A new SSE follower's read: nothing shared but the feed's cache."""
                return await Follower(hub, feed, "sse").next_batch(cursor, flt)

            everything = [await read(0, LogFilter()) for _ in range(3)]
            # The very object, not an equal copy: one encode for every follower.
            assert everything[1] is everything[0] and everything[2] is everything[0]
            first = everything[0]
            assert (first.sent, first.cursor) == (BATCH, BATCH)
            entries, _ = await store.logs.read(tid, offset=0, limit=BATCH)
            assert first.sse == "".join(map(sse_event, entries)).encode()
            assert first.sse.startswith(b"id: 0\ndata: {") and first.sse.endswith(b"\n\n")

            rest = await read(BATCH, LogFilter())
            assert (rest.sent, rest.cursor) == (20, BATCH + 20)

            # Equal filters built apart share; a different regex does not.
            err_a = await read(0, LogFilter.build(stream=["stderr"]))
            err_b = await read(0, LogFilter.build(stream=["stderr"]))
            assert err_a is err_b and err_a.sent == len(range(0, BATCH, 3))
            one = await read(0, LogFilter.build(regex_text="^line 1$"))
            two = await read(0, LogFilter.build(regex_text="^line 2$"))
            assert b'"line 1"' in one.sse and b'"line 2"' in two.sse and one.sent == two.sent == 1

            frames = await Follower(hub, feed, "ws").next_batch(0, LogFilter())
            assert frames.frames[0] == ws_frame(entries[0])
            assert json.loads(frames.frames[0]) == {
                "type": "log",
                **entries[0].model_dump(mode="json", exclude_none=True),
            }
            # Nothing new past the end: an empty batch, not kept for later.
            tail = await read(BATCH + 20, LogFilter())
            assert (tail.sent, tail.sse, tail.cursor) == (0, b"", BATCH + 20)
            await store.logs.append(tid, lines[:1])
            assert await feed.wait_beyond(BATCH + 20, timeout=10)
            grown = await read(BATCH + 20, LogFilter())
            assert (grown.sent, grown.cursor) == (1, BATCH + 21)
    finally:
        await hub.close()


class Socket:
    """The ASGI ``send`` of one SSE response: records bodies; ``hold`` makes writes wait."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.wrote = asyncio.Event()
        self.hold: asyncio.Event | None = None

    async def send(self, message: Message) -> None:
        if self.hold is not None:
            await self.hold.wait()  # as uvicorn's send waits while the socket is full
        self.bodies.append(message["body"])
        self.wrote.set()


def broadcasters() -> list[asyncio.Task[object]]:
    """Broadcaster tasks still running in this event loop."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("broadcast-")]


async def test_one_broadcaster_writes_each_batch_to_every_rider(redis: Redis, store: Store) -> None:
    tid = (
        await store.tasks.create(NewTask(source="t", repository="o/r", title="t", prompt="p"))
    ).task_id
    line = NewLine("2026-01-01T00:00:00.000Z", "stdout", "line")
    await store.logs.append(tid, [line])
    hub = FeedHub(redis, store.keys, logs=store.logs, tasks=store.tasks)
    try:
        async with hub.follow(tid) as feed:
            sockets = [Socket() for _ in range(50)]
            slow = sockets[0]
            slow.hold = asyncio.Event()
            handles = [Rider(1, send=s.send) for s in sockets]
            riders = [
                asyncio.create_task(ride(hub, feed, LogFilter(), h, "sse", idle_s=30))
                for h in handles
            ]
            await asyncio.sleep(0)  # every rider joins (no I/O on the way)
            assert len(broadcasters()) == 1

            await store.logs.append(tid, [line, line])
            async with asyncio.timeout(10):
                await asyncio.gather(*(s.wrote.wait() for s in sockets[1:]))
            # Written by the broadcaster: no rider's own task has woken for the batch.
            assert not any(r.done() for r in riders[1:])
            first = sockets[1].bodies[0]
            assert first.startswith(b"id: 1\n") and b"id: 2\n" in first
            assert all(s.bodies == [first] for s in sockets[1:])
            assert all(s.bodies[0] is first for s in sockets[1:])  # one encode
            # The rider whose socket is full was handed back; it finishes its write itself.
            assert not riders[0].done() and slow.bodies == []
            slow.hold.set()
            assert await riders[0] and handles[0].cursor == 3 and slow.bodies == [first]

            # The others go on with the next batch while it is away.
            for s in sockets[1:]:
                s.wrote.clear()
            await store.logs.append(tid, [line])
            async with asyncio.timeout(10):
                await asyncio.gather(*(s.wrote.wait() for s in sockets[1:]))
            assert all(
                len(s.bodies) == 2 and s.bodies[1].startswith(b"id: 3\n") for s in sockets[1:]
            )

            # Followers that go away mid-broadcast leave no broadcaster behind.
            for r in riders[1:]:
                r.cancel()
            await asyncio.gather(*riders[1:], return_exceptions=True)
            if left := broadcasters():
                await asyncio.wait(left, timeout=10)
            assert not broadcasters()
    finally:
        await hub.close()


def test_the_delivery_interval_grows_with_riders_up_to_its_cap() -> None:
    intervals = [delivery_interval(n) for n in (1, 10, 100, 1000, 10_000)]
    assert intervals == sorted(intervals) and len(set(intervals)) == len(intervals) - 1
    assert intervals[0] < 0.001  # one follower waits for nothing it could notice
    assert 0.01 <= delivery_interval(1000) <= MAX_INTERVAL_S <= 0.05  # a few tens of ms
    assert intervals[-1] == MAX_INTERVAL_S


async def test_appends_within_the_interval_share_one_write(
    redis: Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interval long enough to see on a busy machine: 20 riders x 25 ms = 0.5 s.
    monkeypatch.setattr(fanout, "INTERVAL_PER_RIDER_S", 0.025)
    monkeypatch.setattr(fanout, "MAX_INTERVAL_S", 0.5)
    tid = (
        await store.tasks.create(NewTask(source="t", repository="o/r", title="t", prompt="p"))
    ).task_id
    line = NewLine("2026-01-01T00:00:00.000Z", "stdout", "line")
    await store.logs.append(tid, [line])
    hub = FeedHub(redis, store.keys, logs=store.logs, tasks=store.tasks)
    try:
        async with hub.follow(tid) as feed:
            sockets = [Socket() for _ in range(20)]
            handles = [Rider(1, send=s.send) for s in sockets]
            riders = [
                asyncio.create_task(ride(hub, feed, LogFilter(), h, "sse", idle_s=30))
                for h in handles
            ]
            await asyncio.sleep(0)  # every rider joins (no I/O on the way)
            await store.logs.append(tid, [line])
            async with asyncio.timeout(10):
                await asyncio.gather(*(s.wrote.wait() for s in sockets))
            first = asyncio.get_running_loop().time()
            for s in sockets:
                s.wrote.clear()
            # Two appends, each its own stream entry, come well inside the interval...
            await store.logs.append(tid, [line])
            await store.logs.append(tid, [line])
            async with asyncio.timeout(10):
                await asyncio.gather(*(s.wrote.wait() for s in sockets))
            second = asyncio.get_running_loop().time()
            # ...and go out together, one write per rider, no sooner than the interval.
            assert second - first >= 0.45
            for s in sockets:
                assert len(s.bodies) == 2 and s.bodies[0].startswith(b"id: 1\n")
                assert s.bodies[1].startswith(b"id: 2\n") and b"id: 3\n" in s.bodies[1]
            assert not any(r.done() for r in riders)
            for r in riders:
                r.cancel()
            await asyncio.gather(*riders, return_exceptions=True)
    finally:
        await hub.close()


async def test_a_transport_not_ready_when_a_follower_joins_is_not_written_to(
    redis: Redis, store: Store
) -> None:
    tid = (
        await store.tasks.create(NewTask(source="t", repository="o/r", title="t", prompt="p"))
    ).task_id
    line = NewLine("2026-01-01T00:00:00.000Z", "stdout", "line")
    await store.logs.append(tid, [line])
    hub = FeedHub(redis, store.keys, logs=store.logs, tasks=store.tasks)
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().create_unix_connection(
        asyncio.Protocol, sock=ours
    )
    try:
        # The full check fails at the join (say, a response that is not chunked): the
        # broadcaster's per-write check, which looks only at the flow control, never runs.
        unready = Direct(transport, lambda: False, flow=None)
        async with hub.follow(tid) as feed:
            # A WebSocket (no ``send``) waits by itself...
            alone = Rider(1, direct=unready)
            assert not await ride(hub, feed, LogFilter(), alone, "ws", idle_s=30)
            # ...an SSE follower rides, written through ``send``.
            sock = Socket()
            rider = Rider(1, send=sock.send, direct=unready)
            riding = asyncio.create_task(ride(hub, feed, LogFilter(), rider, "sse", idle_s=30))
            await asyncio.sleep(0)
            assert rider.direct is None
            await store.logs.append(tid, [line])
            async with asyncio.timeout(10):
                await sock.wrote.wait()
            assert sock.bodies[0].startswith(b"id: 1\n") and rider.cursor == 2
            theirs.setblocking(False)
            with pytest.raises(BlockingIOError):
                theirs.recv(1)  # nothing went to the transport
            riding.cancel()
            await asyncio.gather(riding, return_exceptions=True)
    finally:
        transport.close()
        theirs.close()
        await hub.close()
