"""Buffered log writer: one Redis round trip per batch, flushed at least every few ms.

While Redis is unreachable the writer holds the lines (in memory up to a bound, then in a
spill file) and the agent goes on; once Redis answers they are written in order. Each
batch carries an id the append script remembers, so a batch whose reply was lost (it
landed, then the connection dropped) is not stored twice when it is sent again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import TimeoutError as LostTimeout

from hookagent.errors import TaskNotFound
from hookagent.models import LogStream, utc_iso
from hookagent.race import raise_if_cancelling
from hookagent.redact import Redactor
from hookagent.store.logs import CHUNK_LINES, Columns, LogStore
from hookagent.store.search import SearchIndex
from hookagent.store.spill import SpillFile, orphans

log = logging.getLogger(__name__)
# Looked up per line on the hot path; enum attribute access costs more than a dict hit.
_PREFIX = {stream: f"[{stream.value}] " for stream in LogStream}
_VALUE = {stream: stream.value for stream in LogStream}
# Redis unreachable or too slow: the lines are held and sent again, never dropped.
_AWAY = (LostConnection, LostTimeout, OSError)
# While Redis is away, a write is tried again after this long, doubling up to the cap: the
# cap is how soon after Redis returns the held lines start going out.
RETRY_S = 0.1
RETRY_MAX_S = 1.0


def clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters with a visible marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated {len(text) - limit} characters]"


class LogWriter:
    """Collects lines for one task attempt and writes them in batches.

    A batch goes out when it reaches ``batch_lines`` or ``flush_ms`` after its first line,
    whichever is first. Producers block (backpressure) once two batches are waiting, so a
    fast agent is slowed to Redis's pace instead of growing memory without bound. While
    Redis is unreachable they do not block: up to ``hold_lines`` lines wait in memory, the
    rest in a spill file in ``spill_dir`` (in memory only without one), and everything is
    written in order once Redis answers. A batch leaves the writer only once it is stored.
    """

    def __init__(
        self,
        store: LogStore,
        task_id: str,
        *,
        index: SearchIndex | None = None,
        token: str,
        attempt: int,
        batch_lines: int,
        flush_ms: int,
        line_max: int,
        raw_max: int,
        redactor: Redactor | None = None,
        hold_lines: int = 100_000,
        spill_dir: Path | None = None,
    ) -> None:
        self._store = store
        self._redactor = redactor
        self._index = index
        self.task_id = task_id
        self.token = token
        self._attempt = attempt
        self._batch_lines = batch_lines
        self._flush_s = flush_ms / 1000
        self._line_max = line_max
        self._raw_max = raw_max
        self._hold_lines = hold_lines
        self._spill_dir = spill_dir
        self._buffer = Columns()
        # Lines older than the buffer's, moved to disk during an outage.
        self._spill: SpillFile | None = None
        # The batch being written: kept until Redis confirms it, then the next one.
        self._inflight: Columns | None = None
        self._inflight_spilled = False
        # Batch ids are this writer's id and a count: the append script skips a batch id it
        # stored last, so a batch sent again after a lost reply is not stored twice.
        self._writer_id = token or secrets.token_hex(8)
        self._batches = 0
        self.away = False  # the last write found Redis unreachable
        self._pending = asyncio.Event()
        self._full = asyncio.Event()
        self._first_at = 0.0  # when the oldest line in memory arrived (time.monotonic())
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    @property
    def held(self) -> int:
        """Lines not stored yet: in flight, spilled to disk and in memory."""
        inflight = len(self._inflight) if self._inflight is not None else 0
        spilled = self._spill.lines if self._spill is not None else 0
        return inflight + spilled + len(self._buffer)

    async def __aenter__(self) -> LogWriter:
        self._flusher = asyncio.create_task(self._run(), name=f"log-flush-{self.task_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._close(exc_type is None)
        finally:
            if self._spill is not None:
                # The attempt is over: what it could not store is not kept for anyone.
                if self._spill.lines:
                    log.warning(
                        "log writer for %s: %d held lines not stored", self.task_id, self.held
                    )
                self._spill.remove()
                self._spill = None

    async def _close(self, clean: bool) -> None:
        if self._flusher is not None:
            # Never cancel the flusher halfway through a batch: take the lock first.
            async with self._lock:
                self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self.error is not None:
            return
        if clean:
            await self.drain()
            return
        try:
            await self.flush()
        except Exception as flush_error:
            # Leaving on an error (or a cancel): that one is what the caller must see.
            log.warning("log writer for %s: last flush failed: %r", self.task_id, flush_error)

    def add(
        self, stream: LogStream, text: str, *, kind: str = "", raw: str = "", ts: str = ""
    ) -> None:
        """Queue one line; the ``[stream] `` prefix is added here."""
        message = _PREFIX[stream] + text
        if len(message) > self._line_max:
            message = clip(message, self._line_max)
        if raw and len(raw) > self._raw_max:
            raw = clip(raw, self._raw_max)
        self._queue(message, ts, _VALUE[stream], kind, raw)

    def add_lines(
        self, stream: LogStream, texts: Sequence[str], *, kind: str = "", ts: str = ""
    ) -> None:
        """Queue lines of one stream and kind without a raw event, as ``add`` would each."""
        if not texts:
            return
        prefix = _PREFIX[stream]
        messages = [prefix + text for text in texts]
        limit = self._line_max
        if max(map(len, messages)) > limit:
            messages = [clip(message, limit) for message in messages]
        self._queue(messages, ts, _VALUE[stream], kind, "")

    def _queue(self, messages: str | list[str], ts: str, stream: str, kind: str, raw: str) -> None:
        """Buffer one message or a list sharing the other columns, waking the flusher."""
        buffer = self._buffer
        queued = buffer.messages  # len() of the list itself: this runs for every JSON event
        before = len(queued)
        if isinstance(messages, str):
            buffer.append(messages, ts or utc_iso(), stream, kind, raw)
        else:
            buffer.extend(messages, ts or utc_iso(), stream, kind, raw)
        # Only flush() shortens the buffer; it clears one event once the buffer is empty and
        # the other once less than a batch is left: so the events need setting only as the
        # length passes 1 and a full batch.
        if before == 0:
            self._first_at = time.monotonic()
            self._pending.set()
        if before < self._batch_lines <= len(queued):
            self._full.set()

    async def wait_room(self) -> None:
        """Hand a full batch to the flusher; block only when Redis is a batch behind.

        One batch is in flight while the next one fills, so parsing the agent's output and
        Redis appending it overlap instead of taking turns. While Redis is away nothing
        blocks: the lines are held (see the class docstring).
        """
        if self.error is not None:
            raise self.error
        if len(self._buffer) >= self._batch_lines:
            self._full.set()
        if self.away:
            self._hold()
        elif len(self._buffer) >= 2 * self._batch_lines:
            try:
                await self.flush()
            except _AWAY:
                self._hold()  # flush() marked the writer away

    def _hold(self) -> None:
        """Past the memory bound, move the buffered lines to the spill file (after its own)."""
        if self._spill_dir is None or len(self._buffer) <= self._hold_lines:
            return
        if self._spill is None:
            self._spill = SpillFile.create(
                self._spill_dir, task_id=self.task_id, attempt=self._attempt
            )
            log.warning(
                "log writer for %s: Redis away, lines spill to %s", self.task_id, self._spill.path
            )
        self._spill.write(self._buffer)
        self._buffer = Columns()

    def redact(self, text: str) -> str:
        """``text`` as this writer's lines show it (redacted, with a redactor)."""
        return text if self._redactor is None else self._redactor.redact(text)

    async def system(self, text: str) -> None:
        """Write a ``[system]`` line (redacted, with a redactor); returns once it is stored."""
        self.add(LogStream.SYSTEM, self.redact(text))
        await self.drain()

    async def drain(self) -> None:
        """Write everything held, waiting out a Redis outage (retried until it answers)."""
        backoff = RETRY_S
        while True:
            try:
                await self.flush()
                return
            except _AWAY:
                raise_if_cancelling()  # a cancel that came out of Redis as a timeout ends it
                await asyncio.sleep(backoff)  # waiting out an outage, not polling
                backoff = min(backoff * 2, RETRY_MAX_S)

    async def flush(self, *, due_only: bool = False) -> None:
        """Write everything held so far; a Redis outage raises, the lines stay held.

        ``due_only`` (the flusher's interval): the lines held when it began, and more only
        while a full batch waits. Lines that arrive during those writes wait for their own
        interval: written at once, they went out as a trail of one- and two-line appends
        behind every batch (an agent printing 1,000 lines a second made ~60 appends a second
        instead of 20), each one a wake-up of the task's feeds and a write to each follower.
        """
        async with self._lock:
            owed = self.held
            try:
                while (batch := self._next_batch()) is not None:
                    await self._write(batch)
                    owed -= len(batch)
                    if due_only and owed <= 0 and not self._backlog():
                        break
            except _AWAY as exc:
                if not self.away:
                    log.warning(
                        "log writer for %s: Redis away (%r); holding lines", self.task_id, exc
                    )
                self.away = True
                raise
            if self.away:
                log.warning("log writer for %s: Redis is back; held lines written", self.task_id)
            self.away = False
            self._full.clear()  # what is left (if anything) is less than a batch
            if not self._buffer:
                self._pending.clear()

    def _backlog(self) -> bool:
        """Whether a full batch (or spilled lines) waits: written on without a pause."""
        spilled = self._spill is not None and self._spill.lines > 0
        return spilled or len(self._buffer) >= self._batch_lines

    def _next_batch(self) -> Columns | None:
        """The batch in flight, else the oldest held lines: spilled first, then in memory."""
        if self._inflight is not None:
            return self._inflight
        if self._spill is not None and self._spill.lines:
            self._inflight, self._inflight_spilled = self._spill.read(self._batch_lines), True
        elif self._buffer:
            self._inflight = self._buffer.take(self._batch_lines)
            self._inflight_spilled = False
        else:
            if self._spill is not None:
                self._spill.remove()  # drained
                self._spill = None
            return None
        self._batches += 1
        return self._inflight

    async def _write(self, batch: Columns) -> None:
        total = await self._store.append_columns(
            self.task_id,
            batch,
            token=self.token,
            attempt=self._attempt,
            batch=f"{self._writer_id}#{self._batches}",
        )
        if self._inflight_spilled and self._spill is not None:
            self._spill.commit(len(batch))
        self._inflight = None
        if self._index is not None:
            # After the append: the postings point at lines the log holds (up to ``total``).
            await self._index.add(self.task_id, batch, total)

    async def _run(self) -> None:
        backoff = RETRY_S
        try:
            while True:
                raise_if_cancelling()  # redis-py can swallow a cancel (race.raise_if_cancelling)
                await self._pending.wait()
                if not self.away:
                    # From the oldest line's arrival: lines left by the last flush (they came
                    # during its writes) have waited part of their interval already.
                    due = self._first_at + self._flush_s - time.monotonic()
                    try:
                        async with asyncio.timeout(max(due, 0.0)):
                            await self._full.wait()
                    except TimeoutError:
                        pass  # the interval is up: flush what we have
                try:
                    await self.flush(due_only=True)
                    backoff = RETRY_S
                except _AWAY:
                    raise_if_cancelling()
                    await asyncio.sleep(backoff)  # waiting out an outage, not polling
                    backoff = min(backoff * 2, RETRY_MAX_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Kept for the worker, which stops the run: a fenced-out or failing writer
            # must not let the agent go on producing lines nobody stores.
            log.warning("log writer for %s stopped: %r", self.task_id, exc)
            self.error = exc


async def recover_spills(store: LogStore, directory: Path) -> int:
    """Store the lines a dead worker held in spill files; how many lines were recovered.

    A worker killed during an outage leaves the lines it could not store in its spill
    file. Whichever worker starts next on the same data dir appends them to the task's log,
    after a ``[system]`` line saying where they come from, with their attempt number, then
    deletes the file. They come after whatever the log took since (the attempt is over,
    so they are unfenced); each batch carries an id, so a worker killed while recovering
    does not store them twice. A file whose task is gone is deleted.
    """
    recovered = 0
    for spill in orphans(directory):
        try:
            recovered += await _recover(store, spill)
        except TaskNotFound:
            spill.remove()
        except _AWAY as exc:
            spill.close()  # kept for the next start
            log.warning("spill file %s not recovered yet: %r", spill.path, exc)
    return recovered


async def _recover(store: LogStore, spill: SpillFile) -> int:
    count = spill.lines
    note = (
        utc_iso(),
        LogStream.SYSTEM.value,
        f"[system] {count} lines of attempt {spill.attempt} held during a Redis outage by a "
        "worker that stopped before storing them, recovered from its spill file",
        "",
        "",
    )
    first = True
    while spill.lines:
        # The note goes with the first batch: a batch sent again after a crash is skipped
        # whole by its id (the offset it starts at), note included.
        rows = spill.read_rows(CHUNK_LINES)
        lines = Columns.of([note, *rows] if first else rows)
        batch = f"{spill.path.name}#{spill.done}"
        await store.append_columns(spill.task_id, lines, attempt=spill.attempt, batch=batch)
        spill.commit(len(rows))
        first = False
    spill.remove()
    return count
