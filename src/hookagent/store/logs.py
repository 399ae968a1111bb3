"""Task logs: one Redis Stream per task, one entry per chunk of up to 256 appended lines.

A chunk's entry id is ``0-<seq of its first line + 1>``: ``XREVRANGE`` with that bound finds
the chunk holding any offset, and an ``XRANGE`` by id bounds the chunks a page spans.
Each entry has two fields: ``n`` (its line count) and ``c``, the lines as one compact JSON
array ``[attempt, messages, timestamps, streams, kinds, raws(, status)]``. Every column but
the messages is run-length encoded (``[value, count, value, count, …]``): a batch's lines
mostly share them, so a line costs its message and little more. A few entries per batch
instead of one per line is what makes ingest cheap for the server (a few XADDs, not
thousands) and a line cost ~45 bytes of Redis memory instead of ~95. The next seq (= the
total) lives in the task hash, so the total is one HGET.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby, repeat
from typing import Any, NamedTuple

from pydantic import TypeAdapter
from redis.exceptions import ResponseError

from hookagent.errors import FencedOut, TaskNotFound, quoted
from hookagent.models import LogEntry
from hookagent.store.client import Client, register_script
from hookagent.store.keys import Keys

# A chunk's ``c`` field, column by column: encode_columns and decode_chunk write and read
# this order, and CHUNK_LUA is built from it for the scripts that write chunks on the server
# (a cut chunk and the limit marker here, a status line in store/tasks.py) or read them
# (store/search.py), so the format has this one definition.
CHUNK_COLUMNS = ("attempt", "messages", "timestamps", "streams", "kinds", "raws", "status")
CHUNK_LUA = """
local CHUNK_COLUMNS = {COLUMNS}
-- a chunk entry: id 0-<seq of its first line + 1>, its line count, its encoded columns
local function xadd_chunk(stream, seq, n, text)
  redis.call('XADD', stream, '0-' .. (seq + 1), 'n', n, 'c', text)
  return seq + n
end
-- columns by name (``status`` may be nil) appended after line ``seq``; returns the new seq
local function add_chunk(stream, seq, col)
  local c = {}
  for i, name in ipairs(CHUNK_COLUMNS) do c[i] = col[name] end
  return xadd_chunk(stream, seq, #col.messages, cjson.encode(c))
end
-- a chunk's ``c`` field as columns by name
local function read_chunk(text)
  local c, col = cjson.decode(text), {}
  for i, name in ipairs(CHUNK_COLUMNS) do col[name] = c[i] end
  return col
end
-- one line's columns, each column one run
local function line_chunk(attempt, msg, ts, stream, kind, status)
  return {attempt = attempt, messages = {msg}, timestamps = {ts, 1}, streams = {stream, 1},
    kinds = {kind, 1}, raws = {'', 1}, status = status}
end
-- run-length columns: the first k values, and the value at position k
local function cut(rle, k)
  local out, left, i = {}, k, 1
  while left > 0 do
    local take = math.min(left, rle[i + 1])
    out[#out + 1] = rle[i]; out[#out + 1] = take
    left = left - take; i = i + 2
  end
  return out
end
local function at(rle, k)
  local i = 1
  while k > rle[i + 1] do k = k - rle[i + 1]; i = i + 2 end
  return rle[i]
end
""".replace("{COLUMNS}", "{" + ", ".join(f"'{name}'" for name in CHUNK_COLUMNS) + "}")

# Appends a batch's chunks in one round trip, after the fence and the cap checks; chunks
# are encoded by the client, so the server only stores them. When the cap is reached the
# chunk that crosses it is cut (the one case the script decodes one) and a one-line marker
# chunk follows; later lines are dropped, so a runaway agent cannot fill the server.
# A batch id (ARGV[4], may be empty) is remembered: the same batch again (sent once more
# after its reply was lost) is not stored twice. A writer sends one batch at a time and
# repeats only the last, so the last id is all the script keeps.
_APPEND = (
    CHUNK_LUA
    + """
local token, ttl, cap, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOTFOUND') end
if token ~= '' and redis.call('HGET', KEYS[1], 'lease_token') ~= token then
  return redis.error_reply('FENCED')
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'log_seq') or '0')
if batch ~= '' then
  if redis.call('HGET', KEYS[1], 'log_batch') == batch then return seq end
  redis.call('HSET', KEYS[1], 'log_batch', batch)
end
if redis.call('HEXISTS', KEYS[1], 'log_capped') == 1 then return seq end
local stream = KEYS[2]
for i = 5, #ARGV, 2 do
  local n, chunk, room = tonumber(ARGV[i]), ARGV[i + 1], cap - 1 - seq
  if n <= room then
    seq = xadd_chunk(stream, seq, n, chunk)
  else
    local c = read_chunk(chunk)
    if room > 0 then
      local msgs = {}
      for j = 1, room do msgs[j] = c.messages[j] end
      seq = add_chunk(stream, seq, {attempt = c.attempt, messages = msgs,
        timestamps = cut(c.timestamps, room), streams = cut(c.streams, room),
        kinds = cut(c.kinds, room), raws = cut(c.raws, room)})
    end
    local msg = '[system] log limit of ' .. cap .. ' lines reached; further output is dropped'
    local ts = at(c.timestamps, math.max(room, 0) + 1)
    seq = add_chunk(stream, seq, line_chunk(c.attempt, msg, ts, 'system', 'error'))
    redis.call('HSET', KEYS[1], 'log_capped', '1')
    break
  end
end
redis.call('HSET', KEYS[1], 'log_seq', seq)
redis.call('PEXPIRE', stream, ttl)
return seq
"""
)

_ENTRIES = TypeAdapter(list[LogEntry])
# Lines per chunk, at most: a page of 100 decodes one or two chunks, so their size bounds a
# read's cost (bench/results.md: 2,000-line chunks double it), while bigger chunks save
# little memory (0.6 B a line from 256 to 2,000).
CHUNK_LINES = 256
# (timestamp, stream, message, kind, raw): a NewLine, or the bare tuple the writer buffers.
Row = tuple[str, str, str, str, str]


class NewLine(NamedTuple):
    """A log line waiting to be written; ``kind`` and ``raw`` may be empty."""

    timestamp: str
    stream: str
    message: str
    kind: str = ""
    raw: str = ""


def _runs(column: Sequence[str]) -> list[Any]:
    out: list[Any] = []
    for value, group in groupby(column):
        out += (value, len(list(group)))
    return out


def _cut(runs: list[Any], lo: int, hi: int) -> list[Any]:
    """The run-length column of values ``lo`` to ``hi`` of ``runs``, still run-length."""
    out: list[Any] = []
    end = 0
    for i in range(0, len(runs), 2):
        start, end = end, end + runs[i + 1]
        if end > lo:
            out += (runs[i], min(end, hi) - max(start, lo))
            if end >= hi:
                break
    return out


def _slice(runs: list[Any], lo: int, hi: int) -> list[Any]:
    """Values ``lo`` to ``hi`` of a run-length column, expanding only the runs they touch."""
    out: list[Any] = []
    end = 0
    for value, count in zip(runs[::2], runs[1::2], strict=True):
        start, end = end, end + count
        if end > lo:
            out += repeat(value, min(end, hi) - max(start, lo))
            if end >= hi:
                break
    return out


@dataclass(slots=True)
class Columns:
    """Lines as a chunk stores them: the messages, and the other columns run-length encoded.

    ``runs`` holds the timestamps, streams, kinds and raws, each as ``[value, count, …]``.
    The log writer buffers lines this way, so a batch of plain text costs its messages and
    one run per column, not a tuple per line, and chunks are encoded without a transpose.
    """

    messages: list[str] = field(default_factory=list)
    runs: tuple[list[Any], ...] = field(default_factory=lambda: ([], [], [], []))

    @classmethod
    def of(cls, rows: Sequence[Row]) -> Columns:
        """The columns of ``rows``."""
        if not rows:
            return cls()
        ts, streams, messages, kinds, raws = zip(*rows, strict=True)
        return cls(list(messages), (_runs(ts), _runs(streams), _runs(kinds), _runs(raws)))

    def __len__(self) -> int:
        return len(self.messages)

    def extend(self, messages: list[str], ts: str, stream: str, kind: str, raw: str) -> None:
        """Add ``messages``, lines that share a timestamp, a stream, a kind and a raw event."""
        if not messages:
            return
        count = len(messages)
        self.messages += messages
        for runs, value in zip(self.runs, (ts, stream, kind, raw), strict=True):
            if runs and runs[-2] == value:
                runs[-1] += count
            else:
                runs += (value, count)

    def append(self, message: str, ts: str, stream: str, kind: str, raw: str) -> None:
        """Add one line: ``extend`` unrolled, as JSON agents' lines come event by event."""
        self.messages.append(message)
        ts_runs, stream_runs, kind_runs, raw_runs = self.runs
        if ts_runs and ts_runs[-2] == ts:
            ts_runs[-1] += 1
        else:
            ts_runs += (ts, 1)
        if stream_runs and stream_runs[-2] == stream:
            stream_runs[-1] += 1
        else:
            stream_runs += (stream, 1)
        if kind_runs and kind_runs[-2] == kind:
            kind_runs[-1] += 1
        else:
            kind_runs += (kind, 1)
        if raw_runs and raw_runs[-2] == raw:
            raw_runs[-1] += 1
        else:
            raw_runs += (raw, 1)

    def take(self, count: int) -> Columns:
        """Remove the first ``count`` lines and return them."""
        total = len(self.messages)
        head = Columns(self.messages[:count], tuple(_cut(r, 0, count) for r in self.runs))
        del self.messages[:count]
        self.runs = tuple(_cut(r, count, total) for r in self.runs)
        return head


# The bytes json.dumps escapes (ensure_ascii): controls, DEL and up, the quote, the backslash.
_ESCAPED = bytes(c for c in range(256) if not 32 <= c <= 126 or c in b'"\\')


def _json_strings(texts: list[str]) -> str:
    """``json.dumps(texts)``, compact; several times faster when no text needs escaping.

    Log lines are mostly printable ASCII, which JSON holds as is: then the array is the
    texts joined by ``","``. Whether any needs escaping is one pass over them in C: the
    only escaped bytes left must be the quotes of the separators.
    """
    joined = '","'.join(texts)
    if joined.isascii():
        data = joined.encode("ascii")
        if len(data) - len(data.translate(None, _ESCAPED)) == 2 * (len(texts) - 1):
            return f'["{joined}"]'
    return json.dumps(texts, separators=(",", ":"))


def encode_columns(columns: Columns, lo: int, hi: int, attempt: int) -> str:
    """The ``c`` field of a chunk holding lines ``lo`` to ``hi`` of ``columns``."""
    runs = json.dumps([_cut(runs, lo, hi) for runs in columns.runs], separators=(",", ":"))
    # The same text as json.dumps([attempt, messages, *runs]), the messages encoded apart.
    return f"[{attempt},{_json_strings(columns.messages[lo:hi])},{runs[1:]}"


def encode_chunk(rows: Sequence[Row], attempt: int) -> str:
    """The ``c`` field of a chunk holding ``rows`` (see the module docstring)."""
    return encode_columns(Columns.of(rows), 0, len(rows), attempt)


def decode_chunk(
    entry_id: str, fields: dict[str, str], start: int = 0, stop: int | None = None
) -> list[LogEntry]:
    """The lines of a chunk entry whose seq is in ``[start, stop)`` (all by default)."""
    # One pydantic-core call for the whole list: several times faster than an object each.
    return _ENTRIES.validate_python(chunk_rows(entry_id, fields, start, stop))


def chunk_rows(
    entry_id: str, fields: dict[str, str], start: int = 0, stop: int | None = None
) -> list[dict[str, Any]]:
    """:func:`decode_chunk`'s lines as plain dicts, in ``LogEntry``'s field order.

    What a page answers as it is (``/logs``): the chunk was written by our own writer, so
    there is nothing to validate, and a page of 100 skips building 100 models.
    """
    first = int(entry_id.partition("-")[2]) - 1
    attempt, messages, ts, streams, kinds, raws, *status = json.loads(fields["c"])
    lo = max(start - first, 0)
    hi = len(messages) if stop is None else min(stop - first, len(messages))
    if lo >= hi:
        return []
    state = status[0] if status else None
    return [
        {
            "seq": first + i,
            "timestamp": t,
            "stream": s,
            "message": m,
            "attempt": attempt,
            "kind": k or None,
            "status": state,
            "raw": _decode_raw(r) if r else None,
        }
        for i, t, s, m, k, r in zip(
            range(lo, hi),
            _slice(ts, lo, hi),
            _slice(streams, lo, hi),
            messages[lo:hi],
            _slice(kinds, lo, hi),
            _slice(raws, lo, hi),
            strict=True,
        )
    ]


def _decode_raw(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        # A raw event cut at the size cap is no longer JSON; keep it as text.
        return raw


class LogStore:
    """Appends to and reads a task's log stream."""

    def __init__(
        self,
        redis: Client,
        keys: Keys,
        *,
        ttl_seconds: int,
        max_lines: int,
        chunk_lines: int = CHUNK_LINES,
    ) -> None:
        # Typed loosely on purpose: redis-py's annotations differ from 5.x to 8.x, and with
        # decode_responses=True every reply here is str.
        self._redis: Any = redis
        self._keys = keys
        self._ttl_ms = ttl_seconds * 1000
        self._max_lines = max_lines
        self._chunk_lines = chunk_lines
        self._append = register_script(redis, _APPEND)

    async def append(
        self, task_id: str, lines: Sequence[Row], *, token: str = "", attempt: int = 0
    ) -> int:
        """Append ``lines`` (as chunks) in one round trip; returns the new total. Fenced."""
        return await self.append_columns(task_id, Columns.of(lines), token=token, attempt=attempt)

    async def append_columns(
        self, task_id: str, lines: Columns, *, token: str = "", attempt: int = 0, batch: str = ""
    ) -> int:
        """``append`` for lines already in columns (the log writer's buffer).

        ``batch``: an id of these lines; sent again with the same id (its reply was lost),
        they are stored once.
        """
        if not lines:
            return await self.total(task_id)
        args: list[str | int] = [token, self._ttl_ms, self._max_lines, batch]
        count = len(lines)
        for start in range(0, count, self._chunk_lines):
            stop = min(start + self._chunk_lines, count)
            args += (stop - start, encode_columns(lines, start, stop, attempt))
        keys = [self._keys.task(task_id), self._keys.logs(task_id)]
        try:
            total: int = await self._append(keys=keys, args=args)
        except ResponseError as exc:
            if str(exc).startswith("FENCED"):
                raise FencedOut(f"task {task_id} is held by another attempt") from None
            if str(exc).startswith("NOTFOUND"):
                raise TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)") from None
            raise
        return total

    async def read(self, task_id: str, *, offset: int, limit: int) -> tuple[list[LogEntry], int]:
        """Entries from ``offset`` (``limit`` -1 for all) and the total count; one round trip."""
        rows, total = await self.read_rows(task_id, offset=offset, limit=limit)
        return _ENTRIES.validate_python(rows), total

    async def read_rows(
        self, task_id: str, *, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """:meth:`read`'s entries as plain dicts (:func:`chunk_rows`)."""
        key = self._keys.logs(task_id)
        stop = None if limit < 0 else offset + limit
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._keys.task(task_id), ["status", "log_seq"])
            pipe.exists(key)
            # The chunk holding ``offset``, then every later chunk starting before ``stop``.
            pipe.xrevrange(key, f"0-{offset + 1}", "-", count=1)
            pipe.xrange(key, f"(0-{offset + 1}", "+" if stop is None else f"0-{stop}")
            (status, seq), exists, head, rest = await pipe.execute()
        if status is None:
            raise TaskNotFound(f"no task {quoted(task_id)} (unknown or expired)")
        rows = [
            row
            for entry_id, fields in [*head, *rest]
            for row in chunk_rows(entry_id, fields, offset, stop)
        ]
        return rows, int(seq or 0) if exists else 0

    async def total(self, task_id: str) -> int:
        """How many entries the task's log holds (0 once the log has expired)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._keys.task(task_id), "log_seq")
            pipe.exists(self._keys.logs(task_id))
            seq, exists = await pipe.execute()
        return int(seq or 0) if exists else 0
