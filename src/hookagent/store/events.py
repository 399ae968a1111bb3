"""The board stream: every task's creation and status change, for live task lists.

The task scripts (store/tasks.py) record one entry per change in the same atomic step as
the change, applied to a capped Redis Stream (``keys.events``) right after
(store/effects.py). A board follows that one stream
instead of every task's log. Like the log feeds, one blocking ``XREAD`` loop per process
serves every follower: it only notes the newest id and wakes the followers, who then read
what they have not seen with a short ``XRANGE`` from their own cursor (the SSE
``Last-Event-ID``), so a reconnecting board misses nothing still in the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hookagent.store.client import Client
from hookagent.store.keys import Keys
from hookagent.store.queue import block_slice_ms

log = logging.getLogger(__name__)

BLOCK_MS = 15_000
RETRY_S = 1.0
READ_COUNT = 200


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """A task was created (``previous`` empty) or changed status."""

    id: str
    task_id: str
    status: str
    previous: str = ""
    at: str = ""


def stream_id(text: str) -> tuple[int, int]:
    """A stream entry id as a comparable pair; ``(-1, -1)`` for anything else."""
    ms, _, seq = text.partition("-")
    if ms.isdigit() and seq.isdigit():
        return int(ms), int(seq)
    return -1, -1


class TaskEvents:
    """Reads the board stream; one shared loop waits for new entries."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        # Typed loosely on purpose, like the other stores: replies are str.
        self._redis: Any = redis
        self._key = keys.events()
        self._newest = (-1, -1)
        self._changed = asyncio.Condition()
        self._followers = 0
        self._loop: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def latest_id(self) -> str:
        """The id of the newest entry, ``0-0`` when the stream is empty."""
        rows: list[tuple[str, dict[str, str]]] = await self._redis.xrevrange(
            self._key, "+", "-", count=1
        )
        return rows[0][0] if rows else "0-0"

    async def after(self, cursor: str, *, count: int = READ_COUNT) -> list[TaskEvent]:
        """Entries newer than ``cursor`` (an entry id), oldest first."""
        # Shielded like FeedHub.read: a board that goes away must not cut a pooled command.
        rows: list[tuple[str, dict[str, str]]] = await asyncio.shield(
            self._redis.xrange(self._key, f"({cursor}", "+", count=count)
        )
        return [
            TaskEvent(
                id=entry_id,
                task_id=fields.get("task_id", ""),
                status=fields.get("status", ""),
                previous=fields.get("previous", ""),
                at=fields.get("at", ""),
            )
            for entry_id, fields in rows
        ]

    @contextlib.asynccontextmanager
    async def follow(self) -> AsyncIterator[TaskEvents]:
        """Hold the shared loop running (started by the first follower, stopped by the last)."""
        if self._loop is None:
            newest = await self.latest_id()
            if self._loop is None:
                self._newest = max(self._newest, stream_id(newest))
                self._stop = asyncio.Event()
                self._loop = asyncio.create_task(self._run(newest, self._stop), name="task-events")
        self._followers += 1
        try:
            yield self
        finally:
            self._followers -= 1
            if self._followers == 0 and self._loop is not None:
                # The flag ends the loop even when redis-py turns the cancel into an error.
                self._stop.set()
                self._loop.cancel()
                self._loop = None

    async def wait_beyond(self, cursor: str, timeout: float) -> bool:
        """Wait until the loop has seen an entry newer than ``cursor``; False on timeout."""
        mark = stream_id(cursor)
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: self._newest > mark)
            except TimeoutError:
                return False
        return True

    async def _run(self, last: str, stop: asyncio.Event) -> None:
        # Blocks in slices the shared client's socket timeout outlasts (redis-py 8: 5 s).
        block = block_slice_ms(self._redis, BLOCK_MS)
        while not stop.is_set():
            try:
                reply = await self._redis.xread({self._key: last}, block=block, count=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if stop.is_set():
                    return
                log.warning("task events: %r; retrying", exc)
                # Back off while Redis is away, but end at once when told to.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_S):
                        await stop.wait()
                continue
            for _, rows in reply or []:
                last = rows[-1][0]
                self._newest = max(self._newest, stream_id(last))
                async with self._changed:
                    self._changed.notify_all()
