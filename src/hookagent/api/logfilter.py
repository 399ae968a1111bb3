"""Log filters shared by paging, long-poll, SSE and WebSocket: stream, kind, level, q, regex."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import regex

from hookagent.errors import PayloadError
from hookagent.models import EventKind, LogEntry, LogStream, TaskStatus

REGEX_MAX_CHARS = 200
# Per entry: a pattern that backtracks catastrophically is stopped here, not in production.
REGEX_TIMEOUT_S = 0.05


class Level(StrEnum):
    """Minimum severity: info is everything, warning adds nothing quieter, error only errors."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class LogFilter:
    """Which entries a reader wants; the empty filter matches everything."""

    streams: frozenset[LogStream] = frozenset()
    kinds: frozenset[EventKind] = frozenset()
    level: Level = Level.INFO
    q: str = ""
    pattern: regex.Pattern[str] | None = field(default=None, compare=False)

    @classmethod
    def build(
        cls,
        *,
        stream: Iterable[str] = (),
        kind: Iterable[str] = (),
        level: str | None = None,
        q: str | None = None,
        regex_text: str | None = None,
    ) -> LogFilter:
        """Validate raw parameters; a bad value is a :class:`PayloadError` (422)."""
        try:
            streams = frozenset(LogStream(s) for s in stream if s)
            kinds = frozenset(EventKind(k) for k in kind if k)
            lvl = Level(level) if level else Level.INFO
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
        return cls(streams, kinds, lvl, (q or "").lower(), _compile(regex_text))

    @property
    def empty(self) -> bool:
        """True when nothing is filtered out."""
        return (
            not (self.streams or self.kinds or self.q or self.pattern) and self.level is Level.INFO
        )

    def matches(self, entry: LogEntry) -> bool:
        """Whether ``entry`` passes every criterion."""
        if self.streams and entry.stream not in self.streams:
            return False
        if self.kinds and (entry.kind or EventKind.RAW) not in self.kinds:
            return False
        if self.level is not Level.INFO and not _at_least(entry, self.level):
            return False
        if self.q and self.q not in entry.message.lower():
            return False
        if self.pattern is not None:
            try:
                return self.pattern.search(entry.message, timeout=REGEX_TIMEOUT_S) is not None
            except TimeoutError:
                raise PayloadError("regex is too expensive to evaluate; simplify it") from None
        return True


def _at_least(entry: LogEntry, level: Level) -> bool:
    error = (
        entry.stream is LogStream.STDERR
        or entry.kind is EventKind.ERROR
        or entry.status is TaskStatus.FAILED
    )
    if level is Level.ERROR:
        return error
    return error or "warning" in entry.message.lower()


def _compile(text: str | None) -> regex.Pattern[str] | None:
    if not text:
        return None
    if len(text) > REGEX_MAX_CHARS:
        raise PayloadError(f"regex longer than {REGEX_MAX_CHARS} characters")
    try:
        return regex.compile(text, regex.IGNORECASE)
    except regex.error as exc:
        raise PayloadError(f"bad regex: {exc}") from None


SCAN_PAGE = 1000
SCAN_MAX = 20_000


async def collect(
    read: Callable[[int, int], Awaitable[list[LogEntry]]],
    flt: LogFilter,
    *,
    offset: int,
    limit: int,
) -> tuple[list[LogEntry], int]:
    """Matching entries from ``offset`` (``limit`` -1: all) and the cursor to continue from.

    An unfiltered read is one page; a filtered one scans forward page by page, at most
    :data:`SCAN_MAX` entries per call, so a rare match cannot make one request unbounded.
    """
    if flt.empty:
        entries = await read(offset, limit)
        return entries, offset + len(entries)
    found: list[LogEntry] = []
    cursor, scanned = offset, 0
    while scanned < SCAN_MAX and (limit < 0 or len(found) < limit):
        page = await read(cursor, SCAN_PAGE)
        if not page:
            break
        for entry in page:
            cursor = entry.seq + 1
            if flt.matches(entry):
                found.append(entry)
                if 0 <= limit <= len(found):
                    break
        scanned += len(page)
    return found, cursor
