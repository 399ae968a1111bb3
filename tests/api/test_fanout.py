"""Encode once, fan out: followers at one cursor with equal filters share one encoded batch."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from redis.asyncio import Redis
from starlette.types import Message

from hookagent.api import broadcast
from hookagent.api.broadcast import MAX_INTERVAL_S, delivery_interval, ride
from hookagent.api.direct import Direct
from hookagent.api.fanout import BATCH, Batch, Follower
from hookagent.api.frames import SSE_KEEPALIVE, sse_event, sse_progress, ws_frame
from hookagent.api.logfilter import LogFilter
from hookagent.api.rider import Rider
from hookagent.models import NewTask
from hookagent.store import Store
from hookagent.store import feed as feed_module
from hookagent.store.feed import FeedHub, TaskFeed
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


async def written(sock: Socket, count: int, marker: bytes = b"") -> None:
    """Wait until ``sock`` has had ``count`` bodies, one of them with ``marker`` in it."""
    while len(sock.bodies) < count or not any(marker in body for body in sock.bodies):
        sock.wrote.clear()
        await sock.wrote.wait()


def riding(feed: TaskFeed) -> set[Rider]:
    """Every rider the feed's broadcasters write for right now."""
    groups = broadcast._BROADCASTS.get(feed) or {}
    return {rider for broadcaster in groups.values() for rider in broadcaster.riders}


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
    monkeypatch.setattr(broadcast, "INTERVAL_PER_RIDER_S", 0.025)
    monkeypatch.setattr(broadcast, "MAX_INTERVAL_S", 0.5)
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


async def test_a_progress_change_goes_to_every_rider_and_none_leaves(
    redis: Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The feed takes the task's progress on every wake (not at most once a second), so two
    # changes follow each other at once.
    monkeypatch.setattr(feed_module, "PROGRESS_EVERY_S", 0.0)
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
            rides = [
                asyncio.create_task(ride(hub, feed, LogFilter(), h, "sse", idle_s=30))
                for h in handles
            ]
            await asyncio.sleep(0)  # every rider joins (no I/O on the way)
            assert riding(feed) == set(handles)
            for n in (1, 2):
                progress = {"phase": "plan", "tool_calls": n, "note": "é"}
                await store.tasks.save_progress(tid, progress)
                await store.logs.append(tid, [line])
                async with asyncio.timeout(10):
                    await asyncio.gather(*(written(s, 2 * n) for s in sockets))
                for s in sockets:
                    # The batch, then the progress in its own body, as a follower's loop
                    # writes them: the same bytes objects for every rider (framed once).
                    assert s.bodies[-2].startswith(b"id: %d\n" % n)
                    assert s.bodies[-1] == sse_progress(progress)
                    assert s.bodies[-1] is sockets[0].bodies[-1]
            # Nobody was handed back: the same riders, none of their rides over (a follower
            # that left and came back would be a new Rider), each one up to date.
            assert riding(feed) == set(handles) and not any(r.done() for r in rides)
            assert all(h.progress == feed.progress_version == 2 for h in handles)
            assert all(h.cursor == 3 for h in handles)
            for r in rides:
                r.cancel()
            await asyncio.gather(*rides, return_exceptions=True)
    finally:
        await hub.close()


async def test_a_rider_behind_on_progress_gets_it_with_the_next_batch_only(
    redis: Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "PROGRESS_EVERY_S", 0.0)
    tid = (
        await store.tasks.create(NewTask(source="t", repository="o/r", title="t", prompt="p"))
    ).task_id
    line = NewLine("2026-01-01T00:00:00.000Z", "stdout", "line")
    progress = {"phase": "plan", "turns": 3}
    await store.tasks.save_progress(tid, progress)
    hub = FeedHub(redis, store.keys, logs=store.logs, tasks=store.tasks)
    try:
        async with hub.follow(tid) as feed:
            await store.logs.append(tid, [line])
            assert await feed.wait_beyond(0, timeout=10) and feed.progress_version == 1
            # One follower has sent this progress itself; the other has not (yet).
            sent, behind = Socket(), Socket()
            handles = [Rider(1, send=sent.send, progress=1), Rider(1, send=behind.send)]
            rides = [
                asyncio.create_task(ride(hub, feed, LogFilter(), h, "sse", idle_s=30))
                for h in handles
            ]
            await asyncio.sleep(0)
            await store.logs.append(tid, [line])
            async with asyncio.timeout(10):
                await asyncio.gather(written(sent, 1), written(behind, 2))
            assert sent.bodies == behind.bodies[:1] and sent.bodies[0].startswith(b"id: 1\n")
            assert behind.bodies[1] == sse_progress(progress)  # once, to the one without it
            assert all(h.progress == 1 for h in handles) and not any(r.done() for r in rides)
            for r in rides:
                r.cancel()
            await asyncio.gather(*rides, return_exceptions=True)
    finally:
        await hub.close()


async def test_a_quiet_broadcaster_writes_the_keep_alive_and_keeps_its_riders(
    redis: Redis, store: Store
) -> None:
    tid = (
        await store.tasks.create(NewTask(source="t", repository="o/r", title="t", prompt="p"))
    ).task_id
    line = NewLine("2026-01-01T00:00:00.000Z", "stdout", "line")
    await store.logs.append(tid, [line])
    hub = FeedHub(redis, store.keys, logs=store.logs, tasks=store.tasks)
    try:
        async with hub.follow(tid) as feed:
            sockets = [Socket() for _ in range(5)]
            handles = [Rider(1, send=s.send) for s in sockets]
            rides = [
                asyncio.create_task(ride(hub, feed, LogFilter(), h, "sse", idle_s=0.2))
                for h in handles
            ]
            async with asyncio.timeout(10):
                await asyncio.gather(*(written(s, 2) for s in sockets))
            # Two quiet spells, two comment lines (what each follower's loop writes), and
            # the riders stay for the next batch.
            assert all(s.bodies == [SSE_KEEPALIVE, SSE_KEEPALIVE] for s in sockets)
            assert riding(feed) == set(handles) and not any(r.done() for r in rides)
            await store.logs.append(tid, [line])
            async with asyncio.timeout(10):
                await asyncio.gather(*(written(s, 3, b"id: 1\n") for s in sockets))
            assert riding(feed) == set(handles) and all(h.cursor == 2 for h in handles)
            for r in rides:
                r.cancel()
            await asyncio.gather(*rides, return_exceptions=True)
    finally:
        await hub.close()
