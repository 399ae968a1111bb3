"""Live log feeds: one blocking XREAD loop per followed task per process, shared by all followers.

A thousand followers of one task cost one XREAD BLOCK loop, not a thousand: the loop keeps
the newest entries in memory and wakes every follower when more arrive. A follower behind
that window catches up with XRANGE, one page at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from hookagent.models import TERMINAL_STATUSES, EventKind, LogEntry, TaskStatus
from hookagent.store.client import Client, dedicated
from hookagent.store.keys import Keys
from hookagent.store.logs import LogStore, decode_chunk
from hookagent.store.queue import block_slice_ms
from hookagent.store.tasks import TaskStore

log = logging.getLogger(__name__)

BLOCK_MS = 15_000
# For the hub's own client: long enough that a full BLOCK_MS fits (see ``block_slice_ms``).
FEED_SOCKET_TIMEOUT_S = BLOCK_MS / 1000 + 5.0
# Chunks, not lines: a chunk holds up to logs.CHUNK_LINES (256) lines.
READ_COUNT = 100
RETRY_S = 1.0
PROGRESS_EVERY_S = 1.0
STOP_WAIT_S = 2.0
NUDGE_S = 0.02


class TaskFeed:
    """The live tail of one task's log, with an event followers wait on (a fresh one per batch)."""

    def __init__(self, task_id: str, *, next_seq: int, status: TaskStatus, window: int) -> None:
        self.task_id = task_id
        self.next_seq = next_seq
        self.status = status
        self._recent: deque[LogEntry] = deque(maxlen=window)
        # Set and replaced on every publish: waking 1,000 followers is one pass over their
        # futures, where a Condition hands its lock from one waiter to the next, 1,000 times.
        self._changed = asyncio.Event()
        self.followers = 0
        self.progress: dict[str, Any] | None = None
        self.progress_version = 0

    @property
    def terminal(self) -> bool:
        """Whether the task's latest status (as the feed has seen it) is final."""
        return self.status in TERMINAL_STATUSES

    def recent_from(self, seq: int, limit: int) -> list[LogEntry] | None:
        """Entries from ``seq`` out of memory; None when ``seq`` is older than the window."""
        if seq >= self.next_seq:
            return []
        if not self._recent or seq < self._recent[0].seq:
            return None
        start = seq - self._recent[0].seq
        return [self._recent[i] for i in range(start, min(len(self._recent), start + limit))]

    async def publish(self, entries: list[LogEntry]) -> None:
        """Add entries read from Redis and wake every follower."""
        for entry in entries:
            self._recent.append(entry)
            if entry.kind is EventKind.STATUS and entry.status is not None:
                self.status = entry.status
        self.next_seq = entries[-1].seq + 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_beyond(self, seq: int, timeout: float) -> bool:
        """Wait until an entry at or after ``seq`` exists; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while self.next_seq <= seq:
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True


class _Loop(NamedTuple):
    """A running XREAD loop, the event that tells it to end and its one-connection client."""

    task: asyncio.Task[None]
    stop: asyncio.Event
    client: Any


async def _wait_for(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` passes, whichever is first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


class FeedHub:
    """Owns the per-task feeds of this process; ``follow`` hands one out while it is in use."""

    def __init__(
        self,
        blocking: Client,
        keys: Keys,
        *,
        logs: LogStore,
        tasks: TaskStore,
        window: int = 10_000,
    ) -> None:
        # A client of its own: XREAD BLOCK holds a connection, so it must not take them from
        # the pool that serves requests. Its socket timeout should exceed BLOCK_MS (see
        # FEED_SOCKET_TIMEOUT_S); with a shorter one the loop blocks for less.
        self._blocking: Any = blocking
        self._keys = keys
        self._logs = logs
        self._tasks = tasks
        self._window = window
        self._feeds: dict[str, TaskFeed] = {}
        self._progress_read: dict[str, float] = {}
        self._loops: dict[str, _Loop] = {}
        # Stops under way (each ends one loop); close() waits for them too.
        self._stopping: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def follow(self, task_id: str) -> AsyncIterator[TaskFeed]:
        """The task's feed (created on first use, its loop stopped after the last follower)."""
        feed = self._feeds.get(task_id)
        if feed is None:
            task = await self._tasks.get(task_id)  # 404 for unknown tasks, before any loop
            total = await self._logs.total(task_id)
            # Looked up again after the last await: followers arriving together all got
            # here, and only the first may create the feed (and its loop).
            feed = self._feeds.get(task_id)
            if feed is None:
                feed = TaskFeed(task_id, next_seq=total, status=task.status, window=self._window)
                self._feeds[task_id] = feed
                # A finished task's followers read what is there and leave; no loop for them.
                if not feed.terminal:
                    stop, client = asyncio.Event(), dedicated(self._blocking)
                    run = self._run(feed, stop, client)
                    self._loops[task_id] = _Loop(
                        asyncio.create_task(run, name=f"feed-{task_id}"), stop, client
                    )
        feed.followers += 1
        try:
            yield feed
        finally:
            feed.followers -= 1
            if feed.followers == 0 and self._feeds.get(task_id) is feed:
                del self._feeds[task_id]
                self._progress_read.pop(task_id, None)
                # Popped before awaiting: a follower arriving meanwhile starts a fresh loop.
                loop = self._loops.pop(task_id, None)
                if loop is not None:
                    await self._stop(loop)

    async def read(self, feed: TaskFeed, seq: int, limit: int) -> list[LogEntry]:
        """Entries from ``seq``: from memory when recent, else from Redis."""
        recent = feed.recent_from(seq, limit)
        if recent is not None:
            return recent
        # Shielded: a follower that goes away mid-read (SSE, WebSocket) must not cancel a
        # command on a pooled connection, which redis-py then drops without closing it.
        entries, _ = await asyncio.shield(self._logs.read(feed.task_id, offset=seq, limit=limit))
        return entries

    async def close(self) -> None:
        """Stop every loop and wait for them to end (app shutdown)."""
        loops = list(self._loops.values())
        self._loops.clear()
        self._feeds.clear()
        await asyncio.gather(*(self._stop(loop) for loop in loops))
        await asyncio.gather(*self._stopping, return_exceptions=True)

    async def _stop(self, loop: _Loop) -> None:
        # Stopping runs in a task of the hub's: a follower that is itself being cancelled
        # (Starlette cancels a gone client's stream on every await) must not cut it short.
        ender = asyncio.create_task(self._end(loop), name=f"stop-{loop.task.get_name()}")
        self._stopping.add(ender)
        ender.add_done_callback(self._stopping.discard)
        await asyncio.shield(ender)

    async def _end(self, loop: _Loop) -> None:
        # The event, not the cancel, is what ends the loop: redis-py may turn a cancel into
        # TimeoutError or ConnectionError (which the retry would swallow), or lose it outright
        # (while connecting or taking the connection) and go on blocking for BLOCK_MS. So a
        # loop still running after the cancel gets its socket closed, which ends any read.
        loop.stop.set()
        loop.task.cancel()
        deadline = asyncio.get_running_loop().time() + STOP_WAIT_S
        while not loop.task.done() and asyncio.get_running_loop().time() < deadline:
            done, _ = await asyncio.wait({loop.task}, timeout=NUDGE_S)
            if not done and loop.client.connection is not None:
                await loop.client.connection.disconnect(nowait=True)
        if not loop.task.done():
            log.warning("feed loop %s still running after its stop", loop.task.get_name())
            await asyncio.wait({loop.task})  # its BLOCK ends within BLOCK_MS, then the event
        if not loop.task.cancelled() and (error := loop.task.exception()) is not None:
            log.warning("feed loop %s ended with %r", loop.task.get_name(), error)

    async def _run(self, feed: TaskFeed, stop: asyncio.Event, client: Any) -> None:
        try:
            await self._follow_stream(feed, stop, client)
        finally:
            await client.aclose()  # hands its connection back to the pool

    async def _follow_stream(self, feed: TaskFeed, stop: asyncio.Event, client: Any) -> None:
        key = self._keys.logs(feed.task_id)
        last = f"0-{feed.next_seq}"
        block = block_slice_ms(client, BLOCK_MS)
        while not stop.is_set():
            try:
                reply = await client.xread({key: last}, block=block, count=READ_COUNT)
                for _, rows in reply or []:
                    entries = [e for eid, fields in rows for e in decode_chunk(eid, fields)]
                    last = rows[-1][0]
                    await self._refresh_progress(feed)
                    await feed.publish(entries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if stop.is_set():
                    return  # our own stop, surfaced by redis-py as an error
                log.warning("feed %s: %r; retrying", feed.task_id, exc)
                await _wait_for(stop, RETRY_S)  # back off while Redis is away

    async def _refresh_progress(self, feed: TaskFeed) -> None:
        # Progress changes when output arrives, so it is looked at on those wakes, at most
        # once a second per task: followers get it without a read of their own.
        now = asyncio.get_running_loop().time()
        if now - self._progress_read.get(feed.task_id, 0.0) < PROGRESS_EVERY_S:
            return
        self._progress_read[feed.task_id] = now
        progress = await self._tasks.progress(feed.task_id)
        if progress is not None and progress != feed.progress:
            feed.progress = progress
            feed.progress_version += 1
