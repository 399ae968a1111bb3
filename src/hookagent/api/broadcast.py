"""One broadcaster per feed, wire format and filter: one task writes each batch to every
follower that has caught up.

Followers that have caught up ride (``ride``): the broadcaster wakes once per batch and
writes it to all of them in one loop, so their own tasks do not wake at all until the end or
a full socket (see ``Broadcast``). Under uvicorn it frames the batch once and writes those
bytes to each follower's transport, skipping the ASGI send chain (see ``direct.py``); with
many followers it delivers at most once per a few tens of ms (``delivery_interval``), so
each write carries more lines. Progress events and SSE keep-alives go out the same way,
framed once, in the bytes each follower's own loop writes (``frames.py``). The batches come
from the shared cache of ``fanout.py``; the follower's side of a write is ``rider.py``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from hookagent.api.direct import http_chunk, ws_text_frame
from hookagent.api.fanout import Batch, Follower, filter_key
from hookagent.api.frames import (
    NOTHING,
    SSE_KEEPALIVE,
    Frames,
    Wire,
    sse_progress,
    ws_progress,
)
from hookagent.api.logfilter import LogFilter
from hookagent.api.rider import Rider
from hookagent.store.feed import FeedHub, TaskFeed

log = logging.getLogger(__name__)

# The least time between two deliveries of one broadcaster grows with its riders. A write to
# a follower's socket costs ~10 µs of CPU whatever it carries (the kernel's loopback TCP
# path, measured), so at most one delivery per 40 µs x riders keeps a broadcaster under about
# a quarter of a core however fast entries come: with 1,000 riders, appends closer than 40 ms
# share one write. The cap keeps the latency it can add inside the 100 ms budget beside the
# worker's flush interval (50 ms); entries that come slower than the interval wait not at all.
INTERVAL_PER_RIDER_S = 40e-6
MAX_INTERVAL_S = 0.04


def delivery_interval(riders: int) -> float:
    """The least time between two deliveries to ``riders`` followers (40 ms for 1,000)."""
    return min(MAX_INTERVAL_S, riders * INTERVAL_PER_RIDER_S)


class Broadcast:
    """Live followers of one feed in one wire format under one filter: one task writes to all.

    A follower that has caught up joins (``ride``); per batch the broadcaster wakes once,
    takes the shared batch, frames it once and writes the same bytes to every rider in one
    loop, with no wake-up of the riders' own tasks. A progress change goes out the same way,
    framed once and written right after the batch it came with (in the same write), and so
    does an SSE keep-alive when nothing came for ``idle_s``: with a worker reporting
    progress often, handing every rider back to its own loop for it cost one write through
    the ASGI chain and a rejoin per follower per change. Riders go back to their own loops
    (which send the end and catch up from their own cursors) when the task ends, or when
    their socket cannot take a write at once.
    """

    def __init__(
        self, feeds: FeedHub, feed: TaskFeed, flt: LogFilter, wire: Wire, idle_s: float, key: object
    ) -> None:
        self._feed = feed
        self._flt = flt
        self._wire: Wire = wire
        self._idle_s = idle_s
        self._key = key
        self._reader = Follower(feeds, feed, wire)
        self.cursor = feed.next_seq
        # The last progress framed, and its frames (framed at most once per change).
        self._progress = -1
        self._progress_frames = NOTHING
        self._keepalive = (
            Frames(http_chunk(SSE_KEEPALIVE), (SSE_KEEPALIVE,)) if wire == "sse" else NOTHING
        )
        self.riders: set[Rider] = set()
        self.task = asyncio.create_task(self._run(), name=f"broadcast-{feed.task_id}")
        self.task.add_done_callback(_noticed)

    @property
    def open(self) -> bool:
        """Whether followers may still join."""
        return not self.task.done() and not self.task.cancelling()

    async def _run(self) -> None:
        clock = asyncio.get_running_loop()
        last = float("-inf")
        try:
            while self.riders:
                if not await self._feed.wait_beyond(self.cursor, self._idle_s):
                    # What each rider's own loop would write now (SSE: a comment; WebSocket:
                    # nothing); a rider behind on progress gets it at the next batch.
                    self._deliver(self.cursor, self._keepalive, None)
                    continue
                wait = last + delivery_interval(len(self.riders)) - clock.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # gathers what arrives meanwhile into this write
                # From the start of one delivery to the next: a round of 1,000 writes takes
                # ~10 ms itself, which must not add to the interval (nor to the latency).
                last = clock.time()
                batch = await self._reader.next_batch(self.cursor, self._flt)
                self._write(batch)
                if self._feed.terminal:
                    return  # the riders send the end themselves
        finally:
            for rider in self.riders:
                rider.release()
            self.riders.clear()
            groups = _BROADCASTS.get(self._feed)
            if groups is not None and groups.get(self._key) is self:
                del groups[self._key]

    def _write(self, batch: Batch) -> None:
        """The batch, and the progress when it changed, to every rider at the batch's start."""
        frames = NOTHING
        if batch.sent:
            if self._wire == "ws":
                frames = Frames(batch.ws, ())
            else:
                frames = Frames(http_chunk(batch.sse), (batch.sse,))
        # Read after the batch, as a follower's own loop reads it: the progress the feed took
        # with these entries goes out right behind them.
        self._deliver(batch.cursor, frames, self._feed.progress_version)

    def _deliver(self, after: int, frames: Frames, progress: int | None) -> None:
        """``frames`` to every rider at the broadcaster's cursor, in one pass.

        A rider that has not had ``progress`` (a version; None: no check) gets the progress
        event in the same write.
        """
        cursor, plain = self.cursor, frames.direct
        joined: Frames | None = None  # ``frames`` and the progress, joined once
        # One call per rider and delivery (``take``, which checks and writes): the Python
        # around the write is paid riders x deliveries times a second.
        for rider in list(self.riders):
            if rider.cursor == cursor and not rider.released.done():
                version, sending = rider.progress, frames
                if progress is not None and version != progress:
                    if joined is None:
                        joined = self._with_progress(frames, progress)
                    sending, version = joined, progress
                elif not plain:
                    rider.cursor = after  # nothing for this filter: on to the next
                    continue
                if rider.take(after, sending, version):
                    continue
            # Handed back meanwhile (a control frame), standing elsewhere, or its socket full.
            rider.release()
            self.riders.discard(rider)
        self.cursor = after

    def _with_progress(self, frames: Frames, progress: int) -> Frames:
        """``frames`` and then the feed's progress event, framed once per change.

        The event is a chunk (or frame) of its own, as each follower's loop writes it, but
        in the same write to the transport.
        """
        if self._progress != progress:
            self._progress = progress
            self._progress_frames = self._frame_progress()
        event = self._progress_frames
        if not frames.direct:
            return event
        return Frames(frames.direct + event.direct, frames.bodies + event.bodies)

    def _frame_progress(self) -> Frames:
        progress = self._feed.progress
        if self._wire == "ws":
            return Frames(ws_text_frame(ws_progress(progress)), ())
        event = sse_progress(progress)
        return Frames(http_chunk(event), (event,))


def _noticed(task: asyncio.Task[None]) -> None:
    """Log a broadcaster that failed (its riders were handed back and read on by themselves)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("%s ended with %r", task.get_name(), error)


# Keyed weakly by the feed, like the batch cache; within it by wire format and filter.
_BROADCASTS: weakref.WeakKeyDictionary[TaskFeed, dict[object, Broadcast]] = (
    weakref.WeakKeyDictionary()
)


async def ride(
    feeds: FeedHub, feed: TaskFeed, flt: LogFilter, rider: Rider, wire: Wire, idle_s: float
) -> bool:
    """Let the feed's broadcaster write for this follower until it hands it back.

    Joins only at the broadcaster's cursor (a new broadcaster starts at the feed's end); a
    follower anywhere else gets False at once and waits by itself. Afterwards the rider holds
    the follower's new cursor and the progress version it has been sent. ``idle_s``: how long
    a quiet broadcaster waits before it writes an SSE keep-alive.
    """
    groups = _BROADCASTS.get(feed)
    if groups is None:
        groups = _BROADCASTS[feed] = {}
    key = (wire, filter_key(flt))
    broadcast = groups.get(key)
    if broadcast is None or not broadcast.open:
        if rider.cursor != feed.next_seq or feed.terminal:
            return False
        broadcast = groups[key] = Broadcast(feeds, feed, flt, wire, idle_s, key)
    if rider.cursor != broadcast.cursor or rider.released.done():
        return False
    if rider.direct is not None and not rider.direct.ready():
        # Checked in full once per ride; the broadcaster then checks only what can change.
        if rider.send is None:
            return False  # a WebSocket still opening or closing: it waits by itself
        rider.direct = None  # e.g. an HTTP/1.0 client (no chunks): written through ``send``
    broadcast.riders.add(rider)
    try:
        await rider.released
        if rider.pending is not None:
            await rider.pending
    except asyncio.CancelledError:
        if rider.pending is not None:
            rider.pending.cancel()  # the follower is gone: its half-written batch with it
        raise
    finally:
        broadcast.riders.discard(rider)
        if not broadcast.riders and broadcast.open:
            broadcast.task.cancel()  # nobody left to write for
    return True
