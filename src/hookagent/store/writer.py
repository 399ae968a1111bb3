"""Buffered log writer: one Redis round trip per batch, flushed at least every few ms."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType

from hookagent.models import LogStream, utc_iso
from hookagent.redact import Redactor
from hookagent.store.logs import Columns, LogStore
from hookagent.store.search import SearchIndex

log = logging.getLogger(__name__)
# Looked up per line on the hot path; enum attribute access costs more than a dict hit.
_PREFIX = {stream: f"[{stream.value}] " for stream in LogStream}
_VALUE = {stream: stream.value for stream in LogStream}


def clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters with a visible marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated {len(text) - limit} characters]"


class LogWriter:
    """Collects lines for one task attempt and writes them in batches.

    A batch goes out when it reaches ``batch_lines`` or ``flush_ms`` after its first line,
    whichever is first. Producers block (backpressure) once two batches are waiting, so a
    fast agent is slowed to Redis's pace instead of growing memory without bound.
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
        self._buffer = Columns()
        self._pending = asyncio.Event()
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    async def __aenter__(self) -> LogWriter:
        self._flusher = asyncio.create_task(self._run(), name=f"log-flush-{self.task_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._flusher is not None:
            # Never cancel the flusher halfway through a batch: that batch is already out of
            # the buffer, and cancelling its append would drop it. Take the lock first.
            async with self._lock:
                self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self.error is not None:
            return
        if exc_type is None:
            await self.flush()
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
        # Only flush() shortens the buffer, and it clears both events once it is empty: so
        # the events need setting only as the length passes 1 and a full batch.
        if before == 0:
            self._pending.set()
        if before < self._batch_lines <= len(queued):
            self._full.set()

    async def wait_room(self) -> None:
        """Hand a full batch to the flusher; block only when Redis is a batch behind.

        One batch is in flight while the next one fills, so parsing the agent's output and
        Redis appending it overlap instead of taking turns.
        """
        if self.error is not None:
            raise self.error
        if len(self._buffer) >= self._batch_lines:
            self._full.set()
        if len(self._buffer) >= 2 * self._batch_lines:
            await self.flush()

    async def system(self, text: str) -> None:
        """Write a ``[system]`` line (redacted, with a redactor) and flush it at once."""
        if self._redactor is not None:
            text = self._redactor.redact(text)
        self.add(LogStream.SYSTEM, text)
        await self.flush()

    async def flush(self) -> None:
        """Write everything buffered so far."""
        async with self._lock:
            while self._buffer:
                batch = self._buffer.take(self._batch_lines)
                total = await self._store.append_columns(
                    self.task_id, batch, token=self.token, attempt=self._attempt
                )
                if self._index is not None:
                    await self._index.add(self.task_id, batch, total)
            self._pending.clear()
            self._full.clear()

    async def _run(self) -> None:
        try:
            while True:
                await self._pending.wait()
                try:
                    async with asyncio.timeout(self._flush_s):
                        await self._full.wait()
                except TimeoutError:
                    pass  # the interval is up: flush what we have
                await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Kept for the worker, which stops the run: a fenced-out or failing writer
            # must not let the agent go on producing lines nobody stores.
            log.warning("log writer for %s stopped: %r", self.task_id, exc)
            self.error = exc
