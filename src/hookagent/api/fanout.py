"""Encode once, fan out: followers of a task at the same cursor with the same filter share
one encoded batch.

Every follower (SSE or WebSocket) still walks its own cursor through the task's feed, so a
slow follower never holds up a fast one and nothing is queued for it: its socket's send
buffer fills, its writes wait (uvicorn's flow control), and when it wakes it reads on from
its own cursor, out of the feed's memory window or, once it has fallen behind that, from
Redis. What followers share is the work: the first follower to ask for the batch after
``cursor`` under a filter reads it, filters it and encodes it (SSE: one byte string, all
its events, written in one send; WebSocket: one JSON text per entry); every other follower
at that cursor with an equal filter gets the same objects from a small per-feed cache.
Followers woken by the same new entries stand at the same cursor, so with 1,000 of them a
batch costs one encode and 1,000 socket writes.

Followers that have caught up go further: they ride a broadcaster (``broadcast.py``), which
reads its batches through a ``Follower`` of its own and so shares them too.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import NamedTuple

from hookagent.api.direct import ws_text_frame
from hookagent.api.frames import Wire, is_status, sse_event, ws_frame
from hookagent.api.logfilter import LogFilter
from hookagent.store.feed import FeedHub, TaskFeed

# Entries per read, for catching up and for the live tail alike.
BATCH = 500
# Batches kept per feed: followers in lockstep need one; a few more serve those a step
# behind. Each holds at most BATCH encoded entries.
CACHED_BATCHES = 32


class Batch(NamedTuple):
    """One read's worth of encoded entries and where the next read starts."""

    sse: bytes  # every event of the batch, ready to write at once ("" when none matched)
    frames: tuple[str, ...]  # WebSocket: one JSON text per entry
    ws: bytes  # WebSocket: the same texts as wire frames, for a direct write
    sent: int  # entries in the batch (matching ones plus status changes)
    cursor: int


def filter_key(flt: LogFilter) -> tuple[object, ...]:
    """What makes two filters select the same entries (the dataclass ignores the regex)."""
    pattern = None if flt.pattern is None else flt.pattern.pattern
    return (flt.streams, flt.kinds, flt.level, flt.q, pattern)


class _Shared:
    """The encoded batches of one feed, oldest dropped first."""

    def __init__(self) -> None:
        self.batches: OrderedDict[tuple[object, ...], Batch] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> Batch | None:
        return self.batches.get(key)

    def put(self, key: tuple[object, ...], batch: Batch) -> None:
        self.batches[key] = batch
        while len(self.batches) > CACHED_BATCHES:
            self.batches.popitem(last=False)


# Keyed weakly by the feed: the cache lives exactly as long as the hub keeps the feed (while
# it has followers), and feeds of different apps in one process never share anything.
_SHARED: weakref.WeakKeyDictionary[TaskFeed, _Shared] = weakref.WeakKeyDictionary()


class Follower:
    """One follower's reads: its feed's shared batches, its filter's key worked out once."""

    def __init__(self, feeds: FeedHub, feed: TaskFeed, wire: Wire) -> None:
        self._feeds = feeds
        self._feed = feed
        self._wire: Wire = wire
        # Looked up once per follower, not per read: a weak mapping's lookup is not free.
        shared = _SHARED.get(feed)
        if shared is None:
            shared = _SHARED[feed] = _Shared()
        self._shared = shared
        self._filter: LogFilter | None = None
        self._filter_key: tuple[object, ...] = ()

    async def next_batch(self, cursor: int, flt: LogFilter) -> Batch:
        """The encoded batch after ``cursor`` under ``flt``: shared when another made it."""
        if cursor >= self._feed.next_seq:
            return Batch(b"", (), b"", 0, cursor)  # nothing new: no read, nothing to share
        if flt is not self._filter:
            self._filter, self._filter_key = flt, filter_key(flt)
        key = (self._wire, cursor, self._filter_key)
        batch = self._shared.get(key)
        if batch is not None:
            return batch
        entries = await self._feeds.read(self._feed, cursor, BATCH)
        after = entries[-1].seq + 1 if entries else cursor
        chosen = [e for e in entries if is_status(e) or flt.matches(e)]
        if self._wire == "sse":
            batch = Batch("".join(map(sse_event, chosen)).encode(), (), b"", len(chosen), after)
        else:
            frames = tuple(map(ws_frame, chosen))
            wire = b"".join(map(ws_text_frame, frames))
            batch = Batch(b"", frames, wire, len(chosen), after)
        if entries:
            self._shared.put(key, batch)
        return batch
